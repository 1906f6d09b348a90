"""BVH motion capture files: reader (-> humanoid through the retargeting core) and writer
(humanoid clips -> BVH, so generated motion opens in Blender and other viewers).

Reader conventions: y-up (``up="z"`` for z-up files); rotation channels in any order and
number, applied as intrinsic rotations in the order listed (``Zrotation Yrotation
Xrotation`` means R = Rz · Ry · Rx), in degrees; the root's position is its OFFSET plus its
position channels; position channels on other joints are added to their OFFSET too. Length
units do not matter to the retargeted clip (the root trajectory is rescaled by leg length);
``units`` only matters with ``scale_root=False``.

Joint names: the CMU conventions by default (``Hips``, ``LowerBack``/``Spine``/``Spine1``,
``Neck``/``Neck1``/``Head``, ``LeftUpLeg``/``LeftLeg``/``LeftFoot``, ``LeftShoulder``
(clavicle) + ``LeftArm``/``LeftForeArm``/``LeftHand``); other skeletons take a joint map
(JSON, see docs/IMPORTERS.md).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sccl.motion.clip import Motion, MotionError
from sccl.motion.importers.posefit import FitResult, PointMap
from sccl.motion.importers.retarget import JointMap, MapEntry, SourceMotion, axis_rotation, retarget
from sccl.motion.kinematics import forward_kinematics
from sccl.motion.skeleton import REVOLUTE_JOINTS, SPHERICAL_JOINTS, load_skeleton

log = logging.getLogger(__name__)

_CHANNELS = ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")


@dataclass(frozen=True)
class BvhJoint:
    name: str
    parent: int
    offset: np.ndarray  # (3,) in file units
    channels: tuple[str, ...]
    end_site: np.ndarray | None = None  # offset of an End Site child, if any


@dataclass(frozen=True)
class Bvh:
    """A parsed BVH file: skeleton, frame time and the (T, C) channel values."""

    joints: tuple[BvhJoint, ...]
    frame_time: float
    values: np.ndarray
    path: str = "bvh"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    def local_rotations(self) -> np.ndarray:
        """(T, J, 3, 3) local rotations from the rotation channels (intrinsic, listed order)."""
        t = self.values.shape[0]
        out = np.broadcast_to(np.eye(3), (t, len(self.joints), 3, 3)).copy()
        col = 0
        for i, j in enumerate(self.joints):
            r = np.broadcast_to(np.eye(3), (t, 3, 3))
            for ch in j.channels:
                if ch.endswith("rotation"):
                    r = r @ axis_rotation(ch[0], np.radians(self.values[:, col]))
                col += 1
            out[:, i] = r
        return out

    def channel_translations(self) -> np.ndarray:
        """(T, J, 3) position-channel values (zero where a joint has none)."""
        t = self.values.shape[0]
        out = np.zeros((t, len(self.joints), 3))
        col = 0
        for i, j in enumerate(self.joints):
            for ch in j.channels:
                if ch.endswith("position"):
                    out[:, i, "XYZ".index(ch[0])] = self.values[:, col]
                col += 1
        return out


# ----------------------------------------------------------------------------- reader
def parse_bvh(text: str, path: str = "bvh") -> Bvh:
    """Parse BVH text; errors name the file and line."""
    lines = text.splitlines()
    pos = 0  # index of the next line

    def fail(msg: str, line: int | None = None) -> MotionError:
        where = f"{path}:{line}" if line is not None else path
        return MotionError(f"{where}: {msg}")

    def next_tokens() -> tuple[list[str], int]:
        nonlocal pos
        while pos < len(lines):
            toks = lines[pos].split()
            pos += 1
            if toks:
                return toks, pos
        raise fail("unexpected end of file in the HIERARCHY section", len(lines))

    toks, ln = next_tokens()
    if toks[0].upper() != "HIERARCHY":
        raise fail(f"expected HIERARCHY, got {toks[0]!r}", ln)
    joints: list[BvhJoint] = []
    stack: list[int] = []  # joint indices of open blocks (-2 marks an End Site block)
    pending: dict | None = None
    end_offset: np.ndarray | None = None

    def floats(vals: list[str], n: int, what: str, line: int) -> np.ndarray:
        if len(vals) != n:
            raise fail(f"{what} needs {n} numbers, got {len(vals)}", line)
        try:
            arr = np.array([float(v) for v in vals])
        except ValueError:
            raise fail(f"{what}: not a number in {' '.join(vals)!r}", line) from None
        if not np.isfinite(arr).all():
            raise fail(f"{what}: non-finite value", line)
        return arr

    def close_pending() -> None:
        nonlocal pending
        if pending is not None:
            if pending["offset"] is None:
                raise fail(f"joint {pending['name']!r} has no OFFSET", pending["line"])
            joints.append(BvhJoint(pending["name"], pending["parent"], pending["offset"], tuple(pending["channels"])))
            stack.append(len(joints) - 1)
            pending = None

    while True:
        toks, ln = next_tokens()
        key = toks[0].upper()
        if key in ("ROOT", "JOINT"):
            close_pending()
            if key == "ROOT" and joints:
                raise fail("only one ROOT is supported", ln)
            if key == "JOINT" and not stack:
                raise fail("JOINT outside of a ROOT block", ln)
            if len(toks) < 2:
                raise fail(f"{toks[0]} without a name", ln)
            parent = -1 if key == "ROOT" else stack[-1]
            if parent == -2:
                raise fail("JOINT inside an End Site", ln)
            name = " ".join(toks[1:])
            if any(j.name == name for j in joints):
                raise fail(f"duplicate joint name {name!r}", ln)
            pending = {"name": name, "parent": parent, "offset": None, "channels": [], "line": ln, "open": False}
        elif key == "END":
            close_pending()
            if not stack or stack[-1] < 0:
                raise fail("End Site outside of a joint", ln)
            stack.append(-2)
            end_offset = None
        elif key == "{":
            if pending is not None:
                if pending["open"]:
                    raise fail("unexpected '{'", ln)
                pending["open"] = True
            elif not stack or stack[-1] != -2:
                raise fail("unexpected '{'", ln)
        elif key == "}":
            close_pending()
            if not stack:
                raise fail("unbalanced '}'", ln)
            top = stack.pop()
            if top == -2 and end_offset is not None:
                j = joints[stack[-1]]
                joints[stack[-1]] = BvhJoint(j.name, j.parent, j.offset, j.channels, end_offset)
            if not stack:
                break
        elif key == "OFFSET":
            vals = floats(toks[1:], 3, "OFFSET", ln)
            if pending is not None:
                pending["offset"] = vals
            elif stack and stack[-1] == -2:
                end_offset = vals
            else:
                raise fail("OFFSET outside of a joint", ln)
        elif key == "CHANNELS":
            if pending is None:
                raise fail("CHANNELS outside of a joint header", ln)
            try:
                n = int(toks[1])
            except (IndexError, ValueError):
                raise fail("CHANNELS needs a count", ln) from None
            chans = toks[2:]
            if len(chans) != n:
                raise fail(f"CHANNELS says {n} but lists {len(chans)}", ln)
            for c in chans:
                if c not in _CHANNELS:
                    raise fail(f"unknown channel {c!r} (expected one of {', '.join(_CHANNELS)})", ln)
            pending["channels"] = chans
        else:
            raise fail(f"unexpected {toks[0]!r} in HIERARCHY", ln)
    if not joints:
        raise fail("no joints")

    toks, ln = next_tokens()
    if toks[0].upper() != "MOTION":
        raise fail(f"expected MOTION, got {toks[0]!r}", ln)
    toks, ln = next_tokens()
    if toks[0].lower() != "frames:" or len(toks) != 2 or not toks[1].isdigit():
        raise fail("expected 'Frames: N'", ln)
    num_frames = int(toks[1])
    toks, ln = next_tokens()
    if len(toks) != 3 or toks[0].lower() != "frame" or toks[1].lower() != "time:":
        raise fail("expected 'Frame Time: SECONDS'", ln)
    try:
        frame_time = float(toks[2])
    except ValueError:
        raise fail(f"frame time {toks[2]!r} is not a number", ln) from None
    if not (np.isfinite(frame_time) and frame_time > 0):
        raise fail(f"frame time must be positive, got {toks[2]}", ln)
    width = sum(len(j.channels) for j in joints)
    rows: list[list[float]] = []
    for i in range(pos, len(lines)):
        toks = lines[i].split()
        if not toks:
            continue
        if len(toks) != width:
            raise fail(f"frame {len(rows)} has {len(toks)} values, expected {width} (one per channel)", i + 1)
        try:
            rows.append([float(v) for v in toks])
        except ValueError:
            raise fail(f"frame {len(rows)}: not a number", i + 1) from None
    if len(rows) != num_frames:
        raise fail(f"'Frames: {num_frames}' but {len(rows)} frames follow")
    if num_frames == 0:
        raise fail("no frames")
    values = np.asarray(rows, dtype=np.float64).reshape(num_frames, width)
    if not np.isfinite(values).all():
        bad = int(np.argmax(~np.isfinite(values).all(axis=1)))
        raise fail(f"frame {bad} has a non-finite value")
    return Bvh(tuple(joints), frame_time, values, path)


def read_bvh(path: str | os.PathLike) -> Bvh:
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise MotionError(f"{path}: cannot read file: {exc.strerror or exc}") from None
    return parse_bvh(text, str(path))


#: Default map: humanoid body -> candidate BVH joint names (the first present wins).
CMU_CANDIDATES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    # body: (joint candidates, end-joint candidates, mode)
    "root": (("Hips", "hip", "pelvis"), (), "frame"),
    "chest": (("Spine1", "Chest", "Spine2", "chest", "Spine"), (), "frame"),
    "neck": (("Head", "head", "Neck1", "Neck", "neck"), (), "frame"),
    "right_hip": (("RightUpLeg", "RightHip", "rThigh"), ("RightLeg", "RightKnee", "rShin"), "bone"),
    "right_knee": (("RightLeg", "RightKnee", "rShin"), ("RightFoot", "RightAnkle", "rFoot"), "bone"),
    "right_ankle": (("RightFoot", "RightAnkle", "rFoot"), (), "frame"),
    "right_shoulder": (("RightArm", "RightShoulder", "rShldr"), ("RightForeArm", "RightElbow", "rForeArm"), "bone"),
    "right_elbow": (("RightForeArm", "RightElbow", "rForeArm"), ("RightHand", "RightWrist", "rHand"), "bone"),
    "left_hip": (("LeftUpLeg", "LeftHip", "lThigh"), ("LeftLeg", "LeftKnee", "lShin"), "bone"),
    "left_knee": (("LeftLeg", "LeftKnee", "lShin"), ("LeftFoot", "LeftAnkle", "lFoot"), "bone"),
    "left_ankle": (("LeftFoot", "LeftAnkle", "lFoot"), (), "frame"),
    "left_shoulder": (("LeftArm", "LeftShoulder", "lShldr"), ("LeftForeArm", "LeftElbow", "lForeArm"), "bone"),
    "left_elbow": (("LeftForeArm", "LeftElbow", "lForeArm"), ("LeftHand", "LeftWrist", "lHand"), "bone"),
}


def default_joint_map(names: tuple[str, ...], where: str = "bvh") -> JointMap:
    """The CMU-style map resolved against a file's joint names (first candidate present).

    ``LeftShoulder`` is the clavicle in CMU files, so ``LeftArm`` is tried first: its world
    rotation already composes the clavicle's."""
    present = set(names)
    entries: dict[str, MapEntry] = {}
    for body, (cands, ends, mode) in CMU_CANDIDATES.items():
        joint = next((c for c in cands if c in present), None)
        end = next((c for c in ends if c in present), None)
        if joint is None or (mode == "bone" and end is None):
            if body in ("chest", "neck", "right_ankle", "left_ankle", "right_elbow", "left_elbow"):
                log.warning("%s: no joint for the humanoid %s (tried %s); it keeps its rest pose", where, body, ", ".join(cands))
                continue
            raise MotionError(
                f"{where}: cannot find a joint for the humanoid {body} (tried {', '.join(cands)}; the file has "
                f"{', '.join(names)}); pass --joint-map FILE.json"
            )
        entries[body] = MapEntry(joint, end, mode)  # type: ignore[arg-type]
    return JointMap(entries)


def _read_json(path: str | os.PathLike) -> object:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise MotionError(f"{path}: cannot read joint map: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise MotionError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def load_joint_map(path: str | os.PathLike) -> JointMap:
    """A joint map from JSON: ``{"root": "pelvis", "right_knee": {"joint": "rknee",
    "end": "rankle", "mode": "bone"}, ...}``."""
    return JointMap.from_dict(_read_json(path), str(path))  # type: ignore[arg-type]


UNIT_SCALES = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254}


def position_channels_absolute(bvh: Bvh) -> bool:
    """Whether the file's position channels *replace* the joints' OFFSETs instead of adding to them.

    Files that put 6 channels on every joint (MotionBuilder / Unity exports, e.g. the Bandai
    Namco dataset) store each joint's full local translation in its position channels: on the
    joints that do not stretch, the channel values equal the OFFSET. Adding them would double
    every bone. Detected when a non-root joint's position channels equal its (non-zero) OFFSET
    on the first frame."""
    trans = bvh.channel_translations()[0]
    for i, j in enumerate(bvh.joints):
        if j.parent < 0 or not any(c.endswith("position") for c in j.channels):
            continue
        scale = max(float(np.linalg.norm(j.offset)), 1e-9)
        if np.linalg.norm(j.offset) > 1e-6 and np.linalg.norm(trans[i] - j.offset) < 1e-4 * scale + 1e-6:
            return True
    return False


def bvh_source(bvh: Bvh, *, up: str = "y", units: str = "auto", end_sites: bool = False) -> SourceMotion:
    """World joint rotations and positions of a parsed BVH (metres, y-up).

    With ``end_sites``, each non-zero End Site becomes an extra joint ``<joint>_end`` (a toe
    or head tip that some skeletons only have as an End Site)."""
    parents = [j.parent for j in bvh.joints]
    raw_rest = np.zeros((len(parents), 3))
    for i, p in enumerate(parents):
        raw_rest[i] = bvh.joints[i].offset + (raw_rest[p] if p >= 0 else 0.0)
    if units == "auto":
        # a standing human is 1-2.5 m tall: a taller rest skeleton is in cm (CMU, Mixamo)
        if up not in ("y", "z"):
            raise MotionError(f"up must be 'y' or 'z', got {up!r}")
        scale = 0.01 if np.ptp(raw_rest[:, "xyz".index(up)]) > 5.0 else 1.0
    elif units in UNIT_SCALES:
        scale = UNIT_SCALES[units]
    else:
        raise MotionError(f"units must be auto, {', '.join(UNIT_SCALES)}; got {units!r}")
    offsets = np.array([j.offset for j in bvh.joints]) * scale
    local = bvh.local_rotations()
    trans = bvh.channel_translations() * scale
    t, n = local.shape[:2]
    names = list(bvh.names)
    # local translation per frame: OFFSET + channels, or the channels alone (see above)
    has_pos = np.array([any(c.endswith("position") for c in j.channels) for j in bvh.joints])
    absolute = position_channels_absolute(bvh)
    if absolute:
        log.debug("%s: position channels hold full local translations (they replace the OFFSETs)", bvh.path)
    local_t = np.where((has_pos & absolute)[None, :, None], trans, offsets[None] + trans)
    ends = [(i, j.end_site * scale) for i, j in enumerate(bvh.joints)
            if end_sites and j.end_site is not None and np.linalg.norm(j.end_site) > 1e-9]
    world = np.empty((t, n + len(ends), 3, 3))
    pos = np.empty((t, n + len(ends), 3))
    rest = np.empty((n + len(ends), 3))
    for i, p in enumerate(parents):
        if p < 0:
            world[:, i] = local[:, i]
            pos[:, i] = local_t[:, i]
            rest[i] = offsets[i]
        else:
            world[:, i] = world[:, p] @ local[:, i]
            pos[:, i] = pos[:, p] + np.einsum("tij,tj->ti", world[:, p], local_t[:, i])
            rest[i] = rest[p] + offsets[i]
    for k, (i, end) in enumerate(ends):
        world[:, n + k] = world[:, i]
        pos[:, n + k] = pos[:, i] + np.einsum("tij,j->ti", world[:, i], end)
        rest[n + k] = rest[i] + end
        names.append(f"{bvh.joints[i].name}_end")
    if up == "z":
        from sccl.motion.importers.amass import Z_UP_TO_Y_UP as c

        world = c @ world @ c.T
        pos = pos @ c.T
        rest = rest @ c.T
    elif up != "y":
        raise MotionError(f"up must be 'y' or 'z', got {up!r}")
    return SourceMotion(1.0 / bvh.frame_time, tuple(names), world, pos, rest, None, Path(bvh.path).name)


RETARGET_METHODS = ("positions", "rotations")


def is_sccl_export(bvh: Bvh) -> bool:
    """Whether the file is a humanoid clip written by :func:`write_bvh` (same joints, same
    offsets): such a file is read back exactly instead of being retargeted."""
    if set(bvh.names) != set(EXPORT_NAMES.values()):
        return False
    sk = load_skeleton()
    inv = {v: k for k, v in EXPORT_NAMES.items()}
    chest = next(j for j in bvh.joints if inv[j.name] == "chest")
    k = 0.01 if np.linalg.norm(chest.offset) > 5 else 1.0
    return all(j.parent < 0 or np.allclose(j.offset * k, sk.joint_offsets[sk.index(inv[j.name])], atol=1e-5)
               for j in bvh.joints)


def resolve_point_map(names: tuple[str, ...], joint_map: "JointMap | PointMap | str | os.PathLike | None",
                      where: str) -> PointMap:
    """The position path's map: automatic, or from a JointMap / PointMap / JSON file."""
    from sccl.motion.importers.posefit import auto_point_map

    if joint_map is None:
        return auto_point_map(names, where)
    if isinstance(joint_map, PointMap):
        return joint_map
    if isinstance(joint_map, JointMap):
        return PointMap.from_joint_map(joint_map)
    return PointMap.from_dict(_read_json(joint_map), str(joint_map))


def bvh_fit(
    path: str | os.PathLike,
    *,
    joint_map: "JointMap | PointMap | str | os.PathLike | None" = None,
    label: str | None = None,
    up: str = "y",
    units: str = "auto",
    ground: bool = True,
    bvh: Bvh | None = None,
) -> "FitResult":
    """Read a BVH file and fit the humanoid to its joint positions (with what the quality
    report needs); see :mod:`motion.importers.posefit`."""
    from sccl.motion.importers.posefit import fit_positions

    bvh = bvh if bvh is not None else read_bvh(path)
    pmap = resolve_point_map(bvh.names, joint_map, str(path))
    src = bvh_source(bvh, up=up, units=units, end_sites=True)
    return fit_positions(src, pmap, label=label, name=Path(path).name, ground=ground)


def import_bvh(
    path: str | os.PathLike,
    *,
    joint_map: "JointMap | PointMap | str | os.PathLike | None" = None,
    label: str | None = None,
    up: str = "y",
    units: str = "auto",
    ground: bool = True,
    method: str = "positions",
) -> Motion:
    """Read a BVH file and retarget it onto the humanoid.

    ``method="positions"`` (default) fits the humanoid to the source's world joint positions,
    whatever its rest pose and local axes; ``"rotations"`` is the older path that re-expresses
    world rotations relative to the source's rest pose (exact only for T-pose rests such as
    CMU's). A humanoid BVH written by ``sccl export`` is read back exactly either way (and
    not shifted: ``ground`` does not apply to it)."""
    if method not in RETARGET_METHODS:
        raise MotionError(f"retarget method must be one of {', '.join(RETARGET_METHODS)}, got {method!r}")
    bvh = read_bvh(path)
    if is_sccl_export(bvh):  # already the humanoid, already grounded when it was imported: as written
        return bvh_to_motion_exact(path, label=label)
    if method == "positions":
        return bvh_fit(path, joint_map=joint_map, label=label, up=up, units=units, ground=ground, bvh=bvh).motion
    if joint_map is None:
        jmap = default_joint_map(bvh.names, str(path))
    elif isinstance(joint_map, JointMap):
        jmap = joint_map
    elif isinstance(joint_map, PointMap):
        raise MotionError("the rotations method needs a JointMap, not a PointMap")
    else:
        jmap = load_joint_map(joint_map)
    src = bvh_source(bvh, up=up, units=units)
    return retarget(src, jmap, label=label, name=Path(path).name, ground=ground)


# ----------------------------------------------------------------------------- writer
#: BVH joint names for the humanoid's bodies (CMU style, so the default map reads them back).
EXPORT_NAMES: dict[str, str] = {
    "root": "Hips", "chest": "Chest", "neck": "Neck",
    "right_hip": "RightUpLeg", "right_knee": "RightLeg", "right_ankle": "RightFoot",
    "right_shoulder": "RightArm", "right_elbow": "RightForeArm", "right_wrist": "RightHand",
    "left_hip": "LeftUpLeg", "left_knee": "LeftLeg", "left_ankle": "LeftFoot",
    "left_shoulder": "LeftArm", "left_elbow": "LeftForeArm", "left_wrist": "LeftHand",
}
#: End Sites (metres, in the body frame): head top, toes, finger tips.
_END_SITES: dict[str, tuple[float, float, float]] = {
    "neck": (0.0, 0.18, 0.0), "right_ankle": (0.18, -0.05, 0.0), "left_ankle": (0.18, -0.05, 0.0),
    "right_wrist": (0.0, -0.08, 0.0), "left_wrist": (0.0, -0.08, 0.0),
}


def _euler(m: np.ndarray, order: str) -> np.ndarray:
    """Intrinsic Euler angles (degrees) in channel order, e.g. 'ZYX' (R = Rz·Ry·Rx)."""
    import warnings

    from scipy.spatial.transform import Rotation

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # gimbal lock: still an exact rotation
        return Rotation.from_matrix(m.reshape(-1, 3, 3)).as_euler(order.upper(), degrees=True).reshape(m.shape[:-2] + (3,))


def motion_to_bvh(motion: Motion, order: str = "ZYX", units: str = "cm") -> str:
    """BVH text of a humanoid clip: the humanoid's own skeleton (rest = every joint at
    identity, y-up, facing +x), its local rotations as Euler angles in ``order``."""
    order = order.upper()
    if sorted(order) != ["X", "Y", "Z"]:
        raise MotionError(f"rotation order must be a permutation of XYZ, got {order!r}")
    if units not in UNIT_SCALES:
        raise MotionError(f"units must be one of {', '.join(UNIT_SCALES)}, got {units!r}")
    k = 1.0 / UNIT_SCALES[units]
    sk = load_skeleton()
    kin = forward_kinematics(motion)
    t = motion.num_frames
    # local rotation of each body (root: world)
    locals_: list[np.ndarray] = []
    for b, parent in enumerate(sk.parents):
        if parent < 0:
            locals_.append(kin.rotations[:, b])  # the root link shares the base frame
        else:
            locals_.append(np.swapaxes(kin.rotations[:, parent], -1, -2) @ kin.rotations[:, b])
    rot_chans = " ".join(f"{a}rotation" for a in order)
    children = {b: [c for c, p in enumerate(sk.parents) if p == b] for b in range(sk.num_bodies)}
    out: list[str] = ["HIERARCHY"]

    def fmt(v: np.ndarray) -> str:
        return " ".join(f"{x * k:.6f}" for x in v)

    def emit(b: int, depth: int) -> None:
        pad = "  " * depth
        name = sk.body_names[b]
        if sk.parents[b] < 0:
            out.append(f"ROOT {EXPORT_NAMES[name]}")
            out.append(pad + "{")
            out.append(pad + "  OFFSET 0.000000 0.000000 0.000000")
            out.append(pad + f"  CHANNELS 6 Xposition Yposition Zposition {rot_chans}")
        else:
            out.append(pad + f"JOINT {EXPORT_NAMES[name]}")
            out.append(pad + "{")
            out.append(pad + f"  OFFSET {fmt(sk.joint_offsets[b])}")
            out.append(pad + f"  CHANNELS 3 {rot_chans}")
        for c in children[b]:
            emit(c, depth + 1)
        if name in _END_SITES:
            out.append(pad + "  End Site")
            out.append(pad + "  {")
            out.append(pad + f"    OFFSET {fmt(np.array(_END_SITES[name]))}")
            out.append(pad + "  }")
        out.append(pad + "}")

    order_of_bodies: list[int] = []

    def walk(b: int) -> None:
        order_of_bodies.append(b)
        for c in children[b]:
            walk(c)

    emit(0, 0)
    walk(0)
    out.append("MOTION")
    out.append(f"Frames: {t}")
    out.append(f"Frame Time: {1.0 / motion.fps:.8f}")
    cols = [motion.root_pos * k]
    for b in order_of_bodies:
        cols.append(_euler(locals_[b], order))
    frame = np.concatenate(cols, axis=1)
    out.extend(" ".join(f"{v:.6f}" for v in row) for row in frame)
    return "\n".join(out) + "\n"


def write_bvh(motion: Motion, path: str | os.PathLike, order: str = "ZYX", units: str = "cm") -> Path:
    """Write a clip as BVH atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(motion_to_bvh(motion, order, units))
    os.replace(tmp, path)
    return path


def bvh_to_motion_exact(path: str | os.PathLike, label: str | None = None) -> Motion:
    """Read back a BVH written by :func:`write_bvh` without retargeting (same skeleton):
    local rotations are the humanoid's own. Used to check exports bit for bit."""
    from sccl.motion import quaternion as quat
    from sccl.motion.importers.retarget import twist_angle_z

    bvh = read_bvh(path)
    inv = {v: k for k, v in EXPORT_NAMES.items()}
    try:
        bodies = [inv[n] for n in bvh.names]
    except KeyError as exc:
        raise MotionError(f"{path}: not a humanoid BVH written by sccl (joint {exc.args[0]!r})") from None
    local = bvh.local_rotations()
    scale = 0.01 if np.linalg.norm(bvh.joints[bodies.index("chest")].offset) > 5 else 1.0
    root_pos = bvh.channel_translations()[:, 0] * scale
    jr = np.stack([local[:, bodies.index(n)] for n in SPHERICAL_JOINTS], axis=1)
    ja = np.stack([twist_angle_z(local[:, bodies.index(n)]) for n in REVOLUTE_JOINTS], axis=1)
    return Motion(1.0 / bvh.frame_time, root_pos, quat.from_matrix(local[:, bodies.index("root")]),
                  quat.from_matrix(jr), ja, label=label, name=Path(path).name)
