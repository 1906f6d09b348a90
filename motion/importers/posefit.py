"""Position-based retargeting: fit the humanoid's joint rotations to the source's *world*
joint positions (bone directions), independently of the source's rest pose and local axes.

Why: the rotation path (:func:`motion.importers.retarget.retarget`) re-expresses each source
joint's world rotation *relative to the source's rest pose*. That is exact for SMPL/AMASS,
whose rest pose is a known T-pose, but a BVH file's rest pose (all channels at zero) can be
anything: Unity-style exports (e.g. the Bandai Namco dataset) lay every bone along its
joint's local x axis, so their "rest" is a folded skeleton with the spine and legs
horizontal. World joint *positions*, on the other hand, mean the same thing in every file.
This module therefore only reads positions, the way position-based retargeters do:

* **Facing.** The scene is turned about the vertical so that the pelvis faces +x on the
  first frame (the humanoid faces +x; the rotation path likewise turns the source's rest
  facing onto +x).
* **Root.** Primary axis: the source's right hip -> left hip line goes onto the humanoid's
  (hip to hip, -z); secondary: hips midpoint -> first spine joint (rigid with the pelvis;
  the chest when there is none) onto the humanoid's root -> chest.
* **Every other body** gets the rotation that turns its rest bone (from the URDF offsets:
  thigh, shin, upper arm, forearm, chest -> neck, neck -> head, ankle -> toe) onto the source
  bone *exactly*, with the twist about the bone fixed by a secondary direction (TRIAD):
  the thigh's twist puts the knee's bend in the humanoid knee's hinge plane (the shin's
  direction off the thigh, exact from 10 degrees of bend; below that the foot's direction
  takes over smoothly, so the twist never flips on a straight leg); the upper arm likewise with the forearm and the chest; the
  chest's by the shoulder line; the foot's roll follows the shin's hinge axis (a foot
  has only two source points, its roll is not observable).
* **Hinges** (knees, elbows) take the angle of the child bone in the hinge plane, clamped
  to the URDF limits; the clamp amount is recorded for the quality report.
* **Foot slope.** A source ankle sits higher than its toe joint when the foot is flat, the
  humanoid's rest foot is flat: the source's ankle -> toe slope is measured on frames where
  the foot is planted (both joints slow and low) and used as the humanoid's rest foot
  direction, so a planted source foot gives a flat humanoid foot. A clip that never plants
  a whole foot (a sprint on the forefoot) takes the slope from each joint's lowest height
  over the clip instead.
* **Scale and root.** Lengths are rescaled by humanoid leg length / source leg length
  (measured from the positions), and the humanoid is placed so that its hip-joint midpoint
  is on the (scaled) source's.
* **Ground.** Then shifted vertically so that, on the frames where the source has a foot
  planted, the humanoid's lowest foot point sits on y = 0 (10th percentile of those frames;
  the minimum over the whole clip when the source never plants a foot).

Everything works per frame on whole arrays (no optimisation loop), so a 30-second clip
takes milliseconds.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from sccl.motion import quaternion as quat
from sccl.motion.clip import Motion, MotionError
from sccl.motion.importers.retarget import (
    REVOLUTE_LIMITS, JointMap, SourceMotion, axis_rotation, continuous_quaternions, humanoid_leg_length, shortest_rotation,
)
from sccl.motion.skeleton import REVOLUTE_JOINTS, SPHERICAL_JOINTS, load_skeleton

log = logging.getLogger(__name__)

SIDES = ("right", "left")
#: Semantic source points a point map names (humanoid joint names plus toes, wrists, head).
POINTS: tuple[str, ...] = (
    "root", "spine", "chest", "neck", "head",
    "right_hip", "right_knee", "right_ankle", "right_toe",
    "right_clavicle", "right_shoulder", "right_elbow", "right_wrist",
    "left_hip", "left_knee", "left_ankle", "left_toe",
    "left_clavicle", "left_shoulder", "left_elbow", "left_wrist",
)
REQUIRED_POINTS: tuple[str, ...] = ("right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle")

#: Humanoid body -> (start point, end point) of the source bone it follows.
BONES: dict[str, tuple[str, str]] = {
    "chest": ("chest", "neck"),
    "neck": ("neck", "head"),
    **{f"{s}_{b}": (f"{s}_{p}", f"{s}_{q}") for s in SIDES for b, p, q in (
        ("hip", "hip", "knee"), ("knee", "knee", "ankle"), ("ankle", "ankle", "toe"),
        ("shoulder", "shoulder", "elbow"), ("elbow", "elbow", "wrist"))},
}

# Naming conventions for automatic maps: point -> candidate names, compared after dropping a
# namespace ("mixamorig:"), case and spaces/underscores/dashes. "{S}" is Left/Right, "{s}" l/r.
_CONVENTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    # CMU, and Mixamo once its "mixamorig:" namespace is dropped (Mixamo's Spine2 is the chest).
    "cmu/mixamo": {
        "root": ("Hips",), "spine": ("LowerBack", "Spine"), "chest": ("Spine2", "Spine1", "Chest", "Spine"),
        "neck": ("Neck",), "head": ("Head", "Neck_end"), "hip": ("{S}UpLeg",), "clavicle": ("{S}Shoulder",), "knee": ("{S}Leg",), "ankle": ("{S}Foot",),
        "toe": ("{S}ToeBase", "{S}Toe", "{S}Foot_end"),
        "shoulder": ("{S}Arm",), "elbow": ("{S}ForeArm",), "wrist": ("{S}Hand",),
    },
    # Unity humanoid naming: suffixed (Bandai Namco: UpperLeg_L) or prefixed (LeftUpperLeg).
    "unity": {
        "root": ("Hips",), "spine": ("Spine",), "chest": ("UpperChest", "Chest", "Spine"), "neck": ("Neck",),
        "head": ("Head",), "clavicle": ("Shoulder_{s}", "{S}Shoulder"), "hip": ("UpperLeg_{s}", "{S}UpperLeg"), "knee": ("LowerLeg_{s}", "{S}LowerLeg"),
        "ankle": ("Foot_{s}", "{S}Foot"), "toe": ("Toes_{s}", "{S}Toes", "Foot_{s}_end", "{S}Foot_end"),
        "shoulder": ("UpperArm_{s}", "{S}UpperArm"), "elbow": ("LowerArm_{s}", "{S}LowerArm"),
        "wrist": ("Hand_{s}", "{S}Hand"),
    },
    # SMPL / AMASS joint names (as SMPL-to-BVH converters write them).
    "smpl": {
        "root": ("Pelvis",), "spine": ("Spine1",), "chest": ("Spine3",), "neck": ("Neck",), "head": ("Head",),
        "clavicle": ("{s}_Collar", "{S}_Collar"), "hip": ("{s}_Hip", "{S}_Hip"), "knee": ("{s}_Knee", "{S}_Knee"), "ankle": ("{s}_Ankle", "{S}_Ankle"),
        "toe": ("{s}_Foot", "{S}_Foot"), "shoulder": ("{s}_Shoulder", "{S}_Shoulder"),
        "elbow": ("{s}_Elbow", "{S}_Elbow"), "wrist": ("{s}_Wrist", "{S}_Wrist"),
    },
    # Plain anatomical names (LeftHip/LeftKnee/..., where LeftShoulder is the shoulder joint).
    "anatomical": {
        "root": ("Hips", "Hip", "Pelvis", "Root"), "spine": ("Abdomen", "LowerBack"),
        "chest": ("Chest", "Spine2", "Spine1", "Spine"), "neck": ("Neck",), "head": ("Head",),
        "clavicle": ("{S}Clavicle", "{S}Collar", "{s}Collar"),
        "hip": ("{S}Hip", "{S}Thigh", "{s}Thigh"), "knee": ("{S}Knee", "{S}Shin", "{s}Shin"),
        "ankle": ("{S}Ankle", "{S}Foot", "{s}Foot"), "toe": ("{S}Toe", "{S}ToeBase", "{S}Ankle_end", "{S}Foot_end"),
        "shoulder": ("{S}Shoulder", "{s}Shldr"), "elbow": ("{S}Elbow", "{s}ForeArm"), "wrist": ("{S}Wrist", "{s}Hand"),
    },
}


def normalise_name(name: str) -> str:
    """Joint-name key for matching: namespace dropped, lower case, no separators."""
    return re.sub(r"[\s_\-.]+", "", name.rsplit(":", 1)[-1]).lower()


@dataclass(frozen=True)
class PointMap:
    """Semantic point (:data:`POINTS`) -> source joint name; ``convention`` says where it came from."""

    points: Mapping[str, str]
    convention: str = "joint map"

    def __post_init__(self) -> None:
        unknown = set(self.points) - set(POINTS)
        if unknown:
            raise MotionError(f"joint map: unknown entries {sorted(unknown)} (expected some of {', '.join(POINTS)})")
        missing = [p for p in REQUIRED_POINTS if p not in self.points]
        if missing:
            raise MotionError(f"joint map: entries for {', '.join(missing)} are required")

    @classmethod
    def from_dict(cls, data: Mapping[str, object], where: str = "joint map") -> "PointMap":
        """From JSON: ``{"right_hip": "UpperLeg_R", "right_toe": "Toes_R", ...}``. The older form
        ``{"right_knee": {"joint": "RightLeg", "end": "RightFoot", "mode": "bone"}}`` is read too:
        ``joint`` names the point, and ``end`` fills the next point down the chain if that one
        is not given (``mode`` does not matter here)."""
        if not isinstance(data, Mapping):
            raise MotionError(f"{where}: expected an object mapping humanoid joints to source joints")
        points: dict[str, str] = {}
        ends: dict[str, str] = {}
        for key, value in data.items():
            if isinstance(value, str):
                points[key] = value
            elif isinstance(value, Mapping) and isinstance(value.get("joint"), str):
                unknown = set(value) - {"joint", "end", "mode"}
                if unknown:
                    raise MotionError(f"{where}: {key}: unknown keys {sorted(unknown)} (expected joint, end, mode)")
                points[key] = str(value["joint"])
                if isinstance(value.get("end"), str):
                    ends[key] = str(value["end"])
            else:
                raise MotionError(f"{where}: {key}: expected a joint name or {{'joint': ..., 'end': ...}}")
        for body, end in ends.items():
            nxt = BONES.get(body, (None, None))[1]
            if nxt and nxt not in points:
                points[nxt] = end
        try:
            return cls(points, "joint map")
        except MotionError as exc:
            raise MotionError(f"{where}: {exc.args[0].removeprefix('joint map: ')}") from None

    @classmethod
    def from_joint_map(cls, jmap: JointMap) -> "PointMap":
        """The points of a rotation-path :class:`JointMap` (its ``end`` joints fill gaps)."""
        data = {body: {"joint": e.joint, **({"end": e.end} if e.end else {})} for body, e in jmap.entries.items()}
        return cls.from_dict(data)


def auto_point_map(names: Sequence[str], where: str = "source") -> PointMap:
    """Recognise the skeleton's naming convention (CMU/Mixamo, Unity, SMPL, anatomical) and
    map its joints. An unmappable skeleton raises one error naming the missing joints."""
    present: dict[str, str] = {}
    for n in names:
        present.setdefault(normalise_name(n), n)
    best: tuple[int, int, str, dict[str, str], list[str]] | None = None
    for conv, table in _CONVENTIONS.items():
        found: dict[str, str] = {}
        missing: list[str] = []
        for point in POINTS:
            side, _, part = point.partition("_") if point.startswith(SIDES) else ("", "", point)
            cands = table[part]
            if side:
                cands = tuple(c.replace("{S}", side.capitalize()).replace("{s}", side[0]) for c in cands)
            hit = next((present[normalise_name(c)] for c in cands if normalise_name(c) in present), None)
            if hit is not None:
                found[point] = hit
            elif point in REQUIRED_POINTS:
                missing.append(f"{point} ({' or '.join(cands)})")
        score = (-len(missing), len(found))
        if best is None or score > best[:2]:
            best = (score[0], score[1], conv, found, missing)
    assert best is not None
    _, _, conv, found, missing = best
    if missing:
        raise MotionError(
            f"{where}: cannot map this skeleton onto the humanoid: missing {', '.join(missing)} "
            f"(closest convention: {conv}); pass --joint-map FILE.json (see docs/IMPORTERS.md)"
        )
    absent = [p for p in POINTS if p not in found]
    if absent:
        log.info("%s: %s naming; no joint for %s (those humanoid joints keep their rest pose)", where, conv,
                 ", ".join(absent))
    return PointMap(found, conv)


# ----------------------------------------------------------------------------- maths
def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n < 1e-12, 1.0, n)


def _perp(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Component of v orthogonal to the unit vectors ``axis``."""
    return v - np.sum(v * axis, axis=-1, keepdims=True) * axis


def _triad(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Orthonormal frames (..., 3, 3) whose columns are primary, secondary (orthogonalised), their cross.
    A secondary parallel to the primary is replaced by an arbitrary perpendicular (never NaN)."""
    e1 = _unit(primary)
    e2 = _perp(np.broadcast_to(secondary, e1.shape), e1)
    bad = np.linalg.norm(e2, axis=-1, keepdims=True) < 1e-9
    if np.any(bad):
        alt = np.where(np.abs(e1[..., :1]) < 0.9, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
        e2 = np.where(bad, _perp(alt, e1), e2)
    e2 = _unit(e2)
    return np.stack([e1, e2, np.cross(e1, e2)], axis=-1)


def _bend_blend(bend_dir: np.ndarray, fallback: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Twist reference of a limb from its hinge: the child bone's offset from the parent bone
    (``bend_dir``, its length is the sine of the bend) when the limb is bent by 10 degrees or
    more -- then the hinge plane holds the child bone exactly -- blending smoothly into the
    unit ``fallback`` below that, and only the fallback under 2 degrees (a straight limb's
    bend plane is noise). Where ``bend_dir`` points against ``side`` (the parent's forward
    swung onto the limb), the limb bends the wrong way (a hyperextended knee): the reference
    is flipped so that the bone stays in the hinge plane and the hinge limit clamps it -- the
    alternative, a limb twisted by 180 degrees, would hide the problem."""
    bend_dir = np.where(np.sum(bend_dir * side, axis=-1, keepdims=True) < 0.0, -bend_dir, bend_dir)
    n = np.linalg.norm(bend_dir, axis=-1, keepdims=True)
    lo, hi = np.sin(np.radians(2.0)), np.sin(np.radians(10.0))
    g = np.clip((n - lo) / (hi - lo), 0.0, 1.0)
    g = g * g * (3.0 - 2.0 * g)
    return g * _unit(bend_dir) + (1.0 - g) * fallback


def align(rest_primary: np.ndarray, rest_secondary: np.ndarray, primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Rotations R (T, 3, 3) with R·rest_primary ∥ primary exactly and R·rest_secondary as close
    to secondary as that allows (TRIAD)."""
    a = _triad(np.asarray(rest_primary, dtype=np.float64), np.asarray(rest_secondary, dtype=np.float64))
    b = _triad(primary, secondary)
    return b @ np.swapaxes(a, -1, -2)


def _rz(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    out[..., 0, 0], out[..., 0, 1], out[..., 1, 0], out[..., 1, 1], out[..., 2, 2] = c, -s, s, c, 1.0
    return out


def hinge_angle(rest_dir: np.ndarray, child_local: np.ndarray) -> np.ndarray:
    """Angle about local z that best turns ``rest_dir`` (3,) towards ``child_local`` (T, 3)."""
    d = rest_dir[:2] / np.linalg.norm(rest_dir[:2])
    px, py = child_local[..., 0], child_local[..., 1]
    return np.arctan2(d[0] * py - d[1] * px, d[0] * px + d[1] * py)


# ----------------------------------------------------------------------------- contacts
#: Foot-contact rule (source and humanoid alike): the point is within CONTACT_HEIGHT of its
#: ground level and moves slower than CONTACT_SPEED (metres, humanoid scale).
CONTACT_HEIGHT_M = 0.05
CONTACT_SPEED_MS = 0.5


def point_contacts(points: np.ndarray, fps: float, ground: np.ndarray | float) -> np.ndarray:
    """(T, K) contact flags of points (T, K, 3) (humanoid-scale metres, y up) over ``ground``."""
    low = points[..., 1] - ground < CONTACT_HEIGHT_M
    if points.shape[0] < 2:
        return low
    v = np.linalg.norm(np.gradient(points[..., [0, 2]], axis=0), axis=-1) * fps
    return low & (v < CONTACT_SPEED_MS)


@dataclass
class FitResult:
    """A position-fitted clip and what the quality report needs from the fit."""

    motion: Motion
    #: body -> (T, 3) source bone direction (unit; NaN-free) the body was fitted to.
    source_dirs: dict[str, np.ndarray]
    #: body -> (3,) the body's rest bone direction in its own frame.
    rest_dirs: dict[str, np.ndarray]
    #: hinge -> (T,) requested angle before clamping to the URDF limits (radians).
    raw_hinges: dict[str, np.ndarray]
    #: (T, 2) source foot contacts (right, left).
    source_contacts: np.ndarray
    scale: float
    foot_slope_deg: float
    ground_shift_m: float
    point_map: PointMap
    missing_bodies: list[str] = field(default_factory=list)


def fit_positions(
    src: SourceMotion,
    pmap: PointMap,
    *,
    label: str | None = None,
    name: str | None = None,
    ground: bool = True,
    foot_slope_deg: float | None = None,
) -> FitResult:
    """Fit the humanoid to the source's world joint positions (see module docstring).
    ``foot_slope_deg`` overrides the measured ankle -> toe rest slope."""
    where = name or src.name or "source"
    t = src.positions.shape[0]
    if t == 0:
        raise MotionError(f"{where}: the source has no frames")
    sk = load_skeleton()
    off = {n: sk.joint_offsets[i] for i, n in enumerate(sk.body_names)}
    raw: dict[str, np.ndarray] = {p: src.positions[:, src.index(j)].astype(np.float64) for p, j in pmap.points.items()}
    if not all(np.isfinite(v).all() for v in raw.values()):
        raise MotionError(f"{where}: non-finite joint positions")

    # scale: humanoid leg length over the source's (median over frames, both legs)
    legs = [np.linalg.norm(raw[f"{s}_knee"] - raw[f"{s}_hip"], axis=-1)
            + np.linalg.norm(raw[f"{s}_ankle"] - raw[f"{s}_knee"], axis=-1) for s in SIDES]
    src_leg = float(np.median(0.5 * (legs[0] + legs[1])))
    if not src_leg > 1e-9:
        raise MotionError(f"{where}: the source's legs have zero length")
    scale = humanoid_leg_length() / src_leg
    # facing: turn the scene about the vertical so that the pelvis faces +x on the first frame
    # (as the rotation path turns the source's rest facing onto +x)
    fwd0 = np.cross(raw["left_hip"][0] - raw["right_hip"][0], [0.0, 1.0, 0.0])
    if np.hypot(fwd0[0], fwd0[2]) < 1e-9:
        raise MotionError(f"{where}: the source's hips are not side by side on the first frame (cannot tell its facing)")
    turn = axis_rotation("y", np.arctan2(fwd0[2], fwd0[0]))
    p = {k: (v @ turn.T) * scale for k, v in raw.items()}
    fps = float(src.fps)

    def has(*names: str) -> bool:
        return all(n in p for n in names)

    # source foot contacts (ground = a low percentile of each point's height)
    foot_pts = []
    for s in SIDES:
        pts = [p[f"{s}_ankle"]] + ([p[f"{s}_toe"]] if has(f"{s}_toe") else [])
        foot_pts.append(np.stack(pts, axis=1))
    # each point's own ground level: a low percentile of its height (an ankle sits above its toe)
    grounds = [np.percentile(fp[..., 1], 2, axis=0) for fp in foot_pts]
    source_contacts = np.stack([point_contacts(fp, fps, g).any(axis=1) for fp, g in zip(foot_pts, grounds)], axis=1)

    # foot slope: ankle -> toe below horizontal where both are planted
    slopes = []
    for i, s in enumerate(SIDES):
        if has(f"{s}_toe"):
            fp = foot_pts[i]
            planted = point_contacts(fp, fps, grounds[i]).all(axis=1)
            if planted.sum() >= 3:
                d = _unit(fp[planted, 1] - fp[planted, 0])
                slopes.append(np.degrees(np.arcsin(np.clip(-d[:, 1], -1, 1))))
    if slopes:
        slope = float(np.median(np.concatenate(slopes)))
    else:  # never both planted (a sprint on the forefoot): each joint's own low height when planted
        drops = [(g[0] - g[1]) / np.median(np.linalg.norm(fp[:, 1] - fp[:, 0], axis=-1))
                 for fp, g, s in zip(foot_pts, grounds, SIDES) if has(f"{s}_toe")]
        slope = float(np.degrees(np.arcsin(np.clip(np.mean(drops), -1.0, 1.0)))) if drops else 0.0
    if foot_slope_deg is not None:
        slope = float(foot_slope_deg)
    beta = np.radians(slope)

    ey, ex, ez = np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    rest_dirs: dict[str, np.ndarray] = {
        "chest": _unit(off["neck"]), "neck": ey,
        **{f"{s}_hip": _unit(off[f"{s}_knee"]) for s in SIDES},
        **{f"{s}_knee": _unit(off[f"{s}_ankle"]) for s in SIDES},
        **{f"{s}_ankle": np.array([np.cos(beta), -np.sin(beta), 0.0]) for s in SIDES},
        **{f"{s}_shoulder": _unit(off[f"{s}_elbow"]) for s in SIDES},
        **{f"{s}_elbow": _unit(off[f"{s}_wrist"]) for s in SIDES},
    }
    source_dirs: dict[str, np.ndarray] = {}
    for body, (a, b) in BONES.items():
        if has(a, b):
            d = p[b] - p[a]
            if np.any(np.linalg.norm(d, axis=-1) < 1e-9):
                raise MotionError(f"{where}: bone {pmap.points[a]} -> {pmap.points[b]} has zero length on some frame")
            source_dirs[body] = _unit(d)

    world: dict[str, np.ndarray] = {}
    raw_hinges: dict[str, np.ndarray] = {}
    hinges: dict[str, np.ndarray] = {}
    missing: list[str] = []

    def swing_forward(parent: np.ndarray, rest_dir: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Forward (x) axis of the body after the shortest swing of its rest bone onto target."""
        q = shortest_rotation(parent @ rest_dir, target)
        return np.einsum("tij,tj->ti", q, parent @ ex)

    # root: hip line exact, hips -> chest as close as possible
    hip_mid = 0.5 * (p["right_hip"] + p["left_hip"])
    rest_left = _unit(off["left_hip"] - off["right_hip"])
    rest_up = _unit(off["chest"] - 0.5 * (off["left_hip"] + off["right_hip"]))
    # the pelvis's own up: its first spine joint, rigid with the hips (the chest bends with the spine)
    up = None
    if has("spine"):
        up = p["spine"] - hip_mid
        if np.median(np.linalg.norm(up, axis=-1)) < 0.02:  # a spine joint at the hips tells nothing
            up = None
    if up is None:
        up = p["chest"] - hip_mid if has("chest") else np.broadcast_to(ey, (t, 3))
    world["root"] = align(rest_left, rest_up, p["left_hip"] - p["right_hip"], up)

    # chest: chest -> neck exact, shoulder line as close as possible
    if "chest" in source_dirs:
        # lateral: the clavicles' roots (rigid with the chest; the shoulder joints move with shrugs)
        if has("left_clavicle", "right_clavicle"):
            side = p["left_clavicle"] - p["right_clavicle"]
        elif has("left_shoulder", "right_shoulder"):
            side = p["left_shoulder"] - p["right_shoulder"]
        else:
            side = world["root"] @ -ez
        world["chest"] = align(rest_dirs["chest"], _unit(off["left_shoulder"] - off["right_shoulder"]),
                               source_dirs["chest"], side)
    else:
        world["chest"] = world["root"]
        missing.append("chest")
    if "neck" in source_dirs:
        world["neck"] = align(ey, ex, source_dirs["neck"], swing_forward(world["chest"], ey, source_dirs["neck"]))
    else:
        world["neck"] = world["chest"]
        missing.append("neck")

    for s in SIDES:
        # legs
        hip, knee, ankle = f"{s}_hip", f"{s}_knee", f"{s}_ankle"
        u, v = source_dirs[hip], source_dirs[knee]
        swung = _unit(_perp(swing_forward(world["root"], rest_dirs[hip], u), u))
        ref = _unit(_perp(source_dirs[ankle], u)) if ankle in source_dirs else swung
        fwd = _bend_blend(-_perp(v, u), ref, swung)  # the shin goes backward when the knee flexes
        world[hip] = align(rest_dirs[hip], ex, u, fwd)
        a = hinge_angle(rest_dirs[knee], np.einsum("tji,tj->ti", world[hip], v))
        raw_hinges[knee] = a
        hinges[knee] = np.clip(a, *REVOLUTE_LIMITS[knee])
        world[knee] = world[hip] @ _rz(hinges[knee])
        if ankle in source_dirs:
            world[ankle] = align(rest_dirs[ankle], ez, source_dirs[ankle], world[knee] @ ez)
        else:
            world[ankle] = world[knee]
            missing.append(ankle)
        # arms
        sh, el = f"{s}_shoulder", f"{s}_elbow"
        if sh in source_dirs:
            u = source_dirs[sh]
            ref = _unit(_perp(swing_forward(world["chest"], rest_dirs[sh], u), u))
            # flexion: forearm forward. No wrong-way test here: the upper arm twists over a wide
            # range (a raised, waving arm has its elbow bend point anywhere), elbows do not hyperextend
            bend = _perp(source_dirs[el], u) if el in source_dirs else None
            fwd = _bend_blend(bend, ref, bend) if bend is not None else ref
            world[sh] = align(rest_dirs[sh], ex, u, fwd)
        else:
            world[sh] = world["chest"]
            missing.append(sh)
        if el in source_dirs:
            a = hinge_angle(rest_dirs[el], np.einsum("tji,tj->ti", world[sh], source_dirs[el]))
            raw_hinges[el] = a
            hinges[el] = np.clip(a, *REVOLUTE_LIMITS[el])
        else:
            hinges[el] = np.zeros(t)
            missing.append(el)

    parent_of = {n: (sk.body_names[pi] if pi >= 0 else None) for n, pi in zip(sk.body_names, sk.parents)}
    joint_mats = np.stack([np.swapaxes(world[parent_of[b]], -1, -2) @ world[b] for b in SPHERICAL_JOINTS], axis=1)
    angles = np.stack([hinges[b] for b in REVOLUTE_JOINTS], axis=1)
    root_pos = hip_mid - world["root"] @ (0.5 * (off["left_hip"] + off["right_hip"]))
    motion = Motion(
        fps=fps,
        root_pos=root_pos,
        root_rot=continuous_quaternions(quat.from_matrix(world["root"])),
        joint_rots=continuous_quaternions(quat.from_matrix(joint_mats)),
        joint_angles=angles,
        label=label,
        name=name or src.name,
    )
    shift = 0.0
    if ground:
        shift = contact_ground_level(motion, source_contacts)
        motion = motion.replace(root_pos=motion.root_pos - np.array([0.0, shift, 0.0]))
    if missing:
        log.debug("%s: no source bone for %s (rest pose kept)", where, ", ".join(missing))
    return FitResult(motion, source_dirs, rest_dirs, raw_hinges, source_contacts, scale, slope, shift, pmap, missing)


def foot_lowest(motion: Motion) -> np.ndarray:
    """(T, 2) lowest collision point of the right and left foot."""
    from sccl.motion.kinematics import body_lowest_points, forward_kinematics

    sk = load_skeleton()
    lows = body_lowest_points(forward_kinematics(motion))
    return lows[:, [sk.index("right_ankle"), sk.index("left_ankle")]]


def contact_ground_level(motion: Motion, source_contacts: np.ndarray) -> float:
    """Height to subtract so the humanoid's planted feet stand on y = 0: the 10th percentile
    of the lowest foot point over the frames where the source plants that foot (the whole
    clip's minimum when it never does: a clip in the air stays above the floor)."""
    low = foot_lowest(motion)
    planted = low[source_contacts]
    if planted.size >= 3:
        return float(np.percentile(planted, 10))
    return float(low.min())
