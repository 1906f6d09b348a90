"""AMASS (SMPL / SMPL-H / SMPL-X parameters, z-up) -> humanoid clips, through ``smplx``.

SMPL body models cannot be redistributed, so the user points ``--body-models DIR`` at
their own copy. Looked up, in order (``TYPE`` = smpl | smplh | smplx, gender from the file):

* ``DIR/TYPE/TYPE_GENDER.npz`` or ``.pkl`` (the layout of ``smplx.create``, e.g.
  ``DIR/smplh/SMPLH_MALE.npz``),
* ``DIR/TYPE/gender/model.npz`` (the layout of AMASS's own body-model download),
* the same names directly under ``DIR``;
* if the gendered file is missing, the neutral one.

Only the 22 body joints are used (hands, jaw and eyes do not exist on the humanoid). Their
world transforms come from smplx's own kinematics (``blend_shapes``, ``vertices2joints``,
``batch_rodrigues``, ``batch_rigid_transform``) rather than the full forward pass: the
joints are all we need, and skipping the skinning of ~7k-10k vertices keeps long
sequences fast. Shape (``betas``) changes the rest skeleton and hence the leg length.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import zipfile
from pathlib import Path

import numpy as np

from sccl.motion.clip import Motion, MotionError
from sccl.motion.errors import UserError
from sccl.motion.importers.retarget import JointMap, MapEntry, SourceMotion, retarget

log = logging.getLogger(__name__)

#: The 22 body joints shared by SMPL, SMPL-H and SMPL-X, and their parents.
SMPL_BODY_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
    "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)
SMPL_BODY_PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)

#: Humanoid body <- SMPL joint. World rotations compose the chains in between: chest takes
#: spine3 (pelvis->spine1->spine2->spine3), neck takes head (neck+head), shoulder takes the
#: SMPL shoulder (collar+shoulder).
SMPL_JOINT_MAP = JointMap({
    "root": MapEntry("pelvis"),
    "chest": MapEntry("spine3"),
    "neck": MapEntry("head"),
    "right_hip": MapEntry("right_hip", "right_knee", "bone"),
    "right_knee": MapEntry("right_knee", "right_ankle", "bone"),
    "right_ankle": MapEntry("right_ankle"),
    "right_shoulder": MapEntry("right_shoulder", "right_elbow", "bone"),
    "right_elbow": MapEntry("right_elbow", "right_wrist", "bone"),
    "left_hip": MapEntry("left_hip", "left_knee", "bone"),
    "left_knee": MapEntry("left_knee", "left_ankle", "bone"),
    "left_ankle": MapEntry("left_ankle"),
    "left_shoulder": MapEntry("left_shoulder", "left_elbow", "bone"),
    "left_elbow": MapEntry("left_elbow", "left_wrist", "bone"),
})

#: AMASS world (z-up) -> project world (y-up): a -90 degree turn about x; (x, y, z) -> (x, z, -y).
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

INSTALL_HINT = "smplx is not installed: pip install 'sccl[smpl]' (or pip install smplx)"


def _require_smplx():
    try:
        import smplx  # noqa: F401
        import smplx.lbs  # noqa: F401
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return smplx


def _text(value) -> str:
    v = np.asarray(value)
    v = v.item() if v.shape == () else v.tolist()
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return str(v).strip().lower()


def model_candidates(body_models: str | os.PathLike, model_type: str, gender: str) -> list[Path]:
    """Files where the body model is looked for, in order (see module docstring)."""
    root = Path(body_models)
    out: list[Path] = []
    for g in dict.fromkeys([gender, "neutral"]):
        for base in (root / model_type, root):
            for ext in ("npz", "pkl"):
                out.append(base / f"{model_type.upper()}_{g.upper()}.{ext}")
            out.append(base / g / "model.npz")
    return out


def find_body_model(body_models: str | os.PathLike | None, model_type: str, gender: str) -> Path:
    if body_models is None:
        raise UserError(
            f"AMASS import needs the {model_type.upper()} body models, which cannot be redistributed: download them "
            f"(https://smpl-x.is.tue.mpg.de, https://mano.is.tue.mpg.de) and pass --body-models DIR with e.g. "
            f"DIR/{model_type}/{model_type.upper()}_{gender.upper()}.npz"
        )
    cands = model_candidates(body_models, model_type, gender)
    if not Path(body_models).is_dir():
        raise UserError(f"--body-models {body_models}: not a directory (expected e.g. {cands[0]})")
    for c in cands:
        if c.is_file():
            return c
    shown = ", ".join(str(c) for c in cands[:4])
    raise UserError(
        f"no {model_type.upper()} body model for gender {gender!r} under {body_models}: expected one of {shown} "
        f"(or {model_type}/{gender}/model.npz as in the AMASS download)"
    )


_MODEL_CACHE: dict[tuple[str, str, int], object] = {}


def check_plain_arrays(path: Path) -> None:
    """Refuse a body-model .npz holding anything but plain numeric/text arrays.

    smplx opens .npz models with pickles allowed, so an object array in a crafted file
    would run code as smplx reads it. Reading every member here with ``allow_pickle=False``
    first means smplx only ever sees files in which pickling cannot occur."""
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                data[key]  # raises ValueError for an object (pickled) array
    except ValueError as exc:
        raise UserError(f"{path}: body model holds a pickled (object) array, refused: it could run code when "
                        f"loaded ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable .npz body model ({type(exc).__name__}: {exc})") from None


def load_body_model(path: Path, model_type: str, gender: str, num_betas: int, trust_pickle: bool = False):
    """Build the smplx model (cached per file): float64, no PCA hands. .npz files are checked
    for pickled content first; .pkl files (pickles by nature) load only with `trust_pickle`."""
    smplx = _require_smplx()
    import torch

    key = (str(path), model_type, num_betas)
    if key in _MODEL_CACHE:
        return _MODEL_CACHE[key]
    kwargs = dict(gender=gender, num_betas=max(num_betas, 1), dtype=torch.float64, batch_size=1)
    ext = path.suffix.lstrip(".")
    if ext == "npz":
        check_plain_arrays(path)
    elif not trust_pickle:
        raise UserError(f"{path}: a .pkl body model is a Python pickle, which can run code when loaded; use the "
                        ".npz models (the AMASS download), or pass --trust-pickle if you trust this file")
    captured = io.StringIO()  # smplx prints notices (e.g. "only 10 shape coefficients"): log them instead
    try:
        with contextlib.redirect_stdout(captured):
            model = _construct(smplx, path, model_type, ext, kwargs)
    except UserError:
        raise
    except ModuleNotFoundError as exc:  # e.g. original SMPL-H .pkl files pickle chumpy objects
        raise UserError(f"{path}: loading the body model needs the module {exc.name!r}; "
                        "use the .npz models (AMASS download) or install it") from None
    except Exception as exc:
        raise UserError(f"{path}: not a usable {model_type.upper()} body model ({type(exc).__name__}: {exc})") from None
    for line in captured.getvalue().splitlines():
        log.debug("smplx: %s", line)
    _MODEL_CACHE[key] = model
    return model


def _construct(smplx, path: Path, model_type: str, ext: str, kwargs: dict):
    if model_type == "smpl":
        if ext != "pkl":
            raise UserError(f"{path}: smplx reads SMPL models from .pkl files only")
        return smplx.SMPL(str(path), **kwargs)
    if model_type == "smplh":
        return smplx.SMPLH(str(path), ext=ext, use_pca=False, **kwargs)
    if model_type == "smplx":
        return smplx.SMPLX(str(path), ext=ext, use_pca=False, **kwargs)
    raise UserError(f"unknown body model type {model_type!r} (expected smpl, smplh or smplx)")


def smpl_body_kinematics(model, poses: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World rotations (T, 22, 3, 3) and positions (T, 22, 3) of the 22 body joints at
    ``poses`` (T, 66 axis-angle: global orient + 21 body joints), plus the rest joint
    positions (22, 3), in the model's own frame (no translation), using smplx.lbs."""
    import torch
    from smplx.lbs import batch_rigid_transform, batch_rodrigues, blend_shapes, vertices2joints

    n = len(SMPL_BODY_JOINTS)
    dtype = model.shapedirs.dtype
    nb = min(int(betas.shape[0]), int(model.shapedirs.shape[-1]))
    b = torch.zeros((1, model.shapedirs.shape[-1]), dtype=dtype)
    b[0, :nb] = torch.as_tensor(betas[:nb], dtype=dtype)
    with torch.no_grad():
        v_shaped = model.v_template[None] + blend_shapes(b, model.shapedirs)
        joints = vertices2joints(model.J_regressor, v_shaped)[:, :n]  # (1, 22, 3)
        parents = model.parents[:n].clone()
        if list(parents[1:].tolist()) != list(SMPL_BODY_PARENTS[1:]):
            raise UserError(f"body model has an unexpected kinematic tree {parents.tolist()} (expected SMPL's)")
        t = poses.shape[0]
        rot = batch_rodrigues(torch.as_tensor(poses[:, : 3 * n].reshape(-1, 3), dtype=dtype)).view(t, n, 3, 3)
        posed, transforms = batch_rigid_transform(rot, joints.expand(t, n, 3), parents, dtype=dtype)
    return transforms[..., :3, :3].numpy().astype(np.float64), posed.numpy().astype(np.float64), joints[0].numpy().astype(np.float64)


def read_amass(path: str | os.PathLike) -> dict:
    """The arrays of an AMASS .npz, validated; raises MotionError naming the file."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
        keys = set(data.files)
    except Exception as exc:
        raise MotionError(f"{path}: not a readable .npz file ({exc})") from None
    missing = [k for k in ("poses", "trans") if k not in keys]
    if missing:
        raise MotionError(f"{path}: not an AMASS motion file: missing {', '.join(missing)} (keys: {', '.join(sorted(keys))})")
    fps_key = "mocap_framerate" if "mocap_framerate" in keys else "mocap_frame_rate" if "mocap_frame_rate" in keys else None
    if fps_key is None:
        raise MotionError(f"{path}: missing the frame rate (mocap_framerate for SMPL-H, mocap_frame_rate for SMPL-X)")
    poses = np.asarray(data["poses"], dtype=np.float64)
    trans = np.asarray(data["trans"], dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] < 66 or poses.shape[1] % 3:
        raise MotionError(f"{path}: poses must have shape (T, 3*J) with J >= 22, got {poses.shape}")
    if trans.shape != (poses.shape[0], 3):
        raise MotionError(f"{path}: trans must have shape ({poses.shape[0]}, 3), got {trans.shape}")
    if not (np.isfinite(poses).all() and np.isfinite(trans).all()):
        raise MotionError(f"{path}: poses/trans contain non-finite values")
    fps = float(np.asarray(data[fps_key]))
    if not fps > 0:
        raise MotionError(f"{path}: {fps_key} must be positive, got {fps}")
    if "surface_model_type" in keys:
        model_type = _text(data["surface_model_type"]).replace("+", "").replace("-", "")
    elif fps_key == "mocap_frame_rate" or poses.shape[1] == 165:
        model_type = "smplx"
    elif poses.shape[1] == 72:
        model_type = "smpl"
    else:
        model_type = "smplh"
    gender = _text(data["gender"]) if "gender" in keys else "neutral"
    if gender not in ("male", "female", "neutral"):
        raise MotionError(f"{path}: gender must be male, female or neutral, got {gender!r}")
    betas = np.asarray(data["betas"], dtype=np.float64).reshape(-1) if "betas" in keys else np.zeros(10)
    return dict(poses=poses, trans=trans, fps=fps, model_type=model_type, gender=gender, betas=betas)


def amass_source(path: str | os.PathLike, body_models: str | os.PathLike | None, model_type: str | None = None,
                 trust_pickle: bool = False) -> SourceMotion:
    """The 22 SMPL body joints of an AMASS file as a y-up :class:`SourceMotion` (metres)."""
    _require_smplx()
    data = read_amass(path)
    mtype = model_type or data["model_type"]
    model_file = find_body_model(body_models, mtype, data["gender"])
    model = load_body_model(model_file, mtype, data["gender"], int(data["betas"].shape[0]), trust_pickle)
    rots, pos, rest = smpl_body_kinematics(model, data["poses"], data["betas"])
    # smplx rotates about the pelvis joint and then adds trans: pelvis at rest[0] + trans.
    pos = pos + data["trans"][:, None, :]
    c = Z_UP_TO_Y_UP
    world = c @ rots  # canonical (y-up, standing) rest -> y-up world
    pos = pos @ c.T
    log.debug("%s: %s %s model %s, %d frames at %g fps", path, mtype, data["gender"], model_file, len(pos), data["fps"])
    return SourceMotion(data["fps"], SMPL_BODY_JOINTS, world, pos, rest, None, Path(path).name,
                        {"model_file": str(model_file), "model_type": mtype})


def import_amass(
    path: str | os.PathLike,
    body_models: str | os.PathLike | None,
    *,
    label: str | None = None,
    model_type: str | None = None,
    ground: bool = True,
    trust_pickle: bool = False,
) -> Motion:
    """Read an AMASS .npz and retarget it to the humanoid (`trust_pickle`: see :func:`load_body_model`)."""
    src = amass_source(path, body_models, model_type, trust_pickle)
    return retarget(src, SMPL_JOINT_MAP, label=label, name=Path(path).name, ground=ground)
