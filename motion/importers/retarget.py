"""The retargeting core shared by every importer: source skeleton motion -> humanoid clip.

Input (:class:`SourceMotion`): per frame, the *world* rotation and position of each named
source joint, plus the source's rest pose (world joint positions and orientations), all in
a y-up frame (the importer converts z-up data first). Units are free: the root trajectory is
rescaled by the ratio of leg lengths, so centimetres, metres and inches all come out right.

Method (one rule, applied per humanoid body; see docs/IMPORTERS.md):

1. *Facing.* The source faces ``forward = left x up`` in its rest pose (``left`` from its
   right hip to its left hip). A fixed rotation ``M`` takes the source's (forward, up, left)
   to the humanoid's (+x, +y, -z). It rotates positions and rotations alike, so the whole
   scene turns with it and a yaw of the pelvis stays a yaw of the root by the same angle.
2. *Rest-pose offsets.* The source's rest pose (SMPL and CMU: a T-pose) and the humanoid's
   (every joint at identity: arms and legs hanging straight down) differ. Each humanoid body
   gets a constant offset rotation ``O_b``: ``"frame"`` entries (root, chest, neck, ankles)
   take the source joint's rest frame as the humanoid's rest frame (``O_b = I``); ``"bone"``
   entries (hips, knees, shoulders, elbows) take the shortest rotation that turns the
   humanoid's bone (e.g. upper arm, hanging along -y) onto the source's rest bone direction
   (e.g. horizontal in a T-pose). The humanoid's target world rotation is then
   ``W_b(t) = M · R_s(t) · R_s0^-1 · M^-1 · O_b``: at the source's rest pose the humanoid
   stands in the source's rest pose (a T-pose stays a T-pose), and a source pose equal to
   the humanoid's rest pose gives identity rotations.
3. *Local rotations* are ``W_parent^-1 · W_child`` down the humanoid tree, using the
   *reconstructed* parent (so what a hinge cannot express is not propagated: after a knee
   loses its swing, the ankle still ends up with the source foot's world orientation).
   Knees and elbows keep only the twist about their hinge axis (local z), by swing–twist
   decomposition, clamped to the URDF limits (knee [-pi, 0], elbow [0, pi]).
4. *Root.* The humanoid root (at hip height, hips on either side) follows the midpoint of
   the source hips, rotated by ``M`` and scaled by humanoid leg length / source leg length.
   Optionally the clip is then shifted vertically so that the lowest foot point touches
   the ground (y = 0) once over the clip.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import numpy as np

from sccl.motion import quaternion as quat
from sccl.motion.clip import Motion, MotionError
from sccl.motion.skeleton import REVOLUTE_JOINTS, SPHERICAL_JOINTS, load_skeleton

log = logging.getLogger(__name__)

#: URDF limits of the revolute joints (radians), in REVOLUTE_JOINTS order.
REVOLUTE_LIMITS: dict[str, tuple[float, float]] = {
    "right_knee": (-np.pi, 0.0),
    "left_knee": (-np.pi, 0.0),
    "right_elbow": (0.0, np.pi),
    "left_elbow": (0.0, np.pi),
}

#: Direction of each humanoid body's bone in its own (rest) frame, used by "bone" entries.
HUMANOID_BONE_DIRECTIONS: dict[str, tuple[float, float, float]] = {
    "chest": (0.0, 1.0, 0.0),
    "neck": (0.0, 1.0, 0.0),
    "right_hip": (0.0, -1.0, 0.0),
    "right_knee": (0.0, -1.0, 0.0),
    "right_ankle": (1.0, 0.0, 0.0),
    "right_shoulder": (0.0, -1.0, 0.0),
    "right_elbow": (0.0, -1.0, 0.0),
    "left_hip": (0.0, -1.0, 0.0),
    "left_knee": (0.0, -1.0, 0.0),
    "left_ankle": (1.0, 0.0, 0.0),
    "left_shoulder": (0.0, -1.0, 0.0),
    "left_elbow": (0.0, -1.0, 0.0),
}

Mode = Literal["frame", "bone"]


@dataclass(frozen=True)
class MapEntry:
    """Which source joint drives a humanoid body.

    Attributes:
        joint: source joint whose world rotation becomes the body's world rotation (the
            source joints between it and the parent body's joint are thereby composed).
        end: source joint at the far end of the bone (needed for ``mode="bone"``).
        mode: ``"frame"`` (rest frames coincide) or ``"bone"`` (rest bone directions are
            aligned by the shortest rotation); see the module docstring.
    """

    joint: str
    end: str | None = None
    mode: Mode = "frame"


@dataclass(frozen=True)
class JointMap:
    """Humanoid body name -> :class:`MapEntry` (``"root"`` included). Bodies left out keep
    their rest rotation relative to their parent."""

    entries: Mapping[str, MapEntry]

    def __post_init__(self) -> None:
        known = set(SPHERICAL_JOINTS) | set(REVOLUTE_JOINTS) | {"root"}
        for body, entry in self.entries.items():
            if body not in known:
                raise MotionError(f"joint map: unknown humanoid body {body!r} (expected one of {sorted(known)})")
            if entry.mode not in ("frame", "bone"):
                raise MotionError(f"joint map: {body}: mode must be 'frame' or 'bone', got {entry.mode!r}")
            if entry.mode == "bone" and not entry.end:
                raise MotionError(f"joint map: {body}: mode 'bone' needs an 'end' joint")
        for need in ("root", "right_hip", "left_hip", "right_knee", "left_knee"):
            if need not in self.entries:
                raise MotionError(f"joint map: an entry for {need!r} is required")
        for knee in ("right_knee", "left_knee"):
            if not self.entries[knee].end:
                raise MotionError(f"joint map: {knee} needs an 'end' joint (the ankle) to measure leg length")

    def source_joints(self) -> set[str]:
        names = set()
        for e in self.entries.values():
            names.add(e.joint)
            if e.end:
                names.add(e.end)
        return names

    @classmethod
    def from_dict(cls, data: Mapping[str, object], where: str = "joint map") -> "JointMap":
        """From JSON-like data: ``{"right_knee": {"joint": "RightLeg", "end": "RightFoot",
        "mode": "bone"}, "root": "Hips", ...}`` (a bare string means a "frame" entry)."""
        entries: dict[str, MapEntry] = {}
        if not isinstance(data, Mapping):
            raise MotionError(f"{where}: expected an object mapping humanoid bodies to source joints")
        for body, value in data.items():
            if isinstance(value, str):
                entries[body] = MapEntry(value)
            elif isinstance(value, Mapping) and isinstance(value.get("joint"), str):
                unknown = set(value) - {"joint", "end", "mode"}
                if unknown:
                    raise MotionError(f"{where}: {body}: unknown keys {sorted(unknown)} (expected joint, end, mode)")
                entries[body] = MapEntry(str(value["joint"]), value.get("end"), value.get("mode", "frame"))  # type: ignore[arg-type]
            else:
                raise MotionError(f"{where}: {body}: expected a joint name or {{'joint': ..., 'end': ..., 'mode': ...}}")
        try:
            return cls(entries)
        except MotionError as exc:
            raise MotionError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class SourceMotion:
    """A source skeleton's motion in world terms (y-up; any length unit).

    Attributes:
        fps: frame rate.
        names: joint names (J).
        world_rots: (T, J, 3, 3) world orientation of each joint frame.
        positions: (T, J, 3) world position of each joint.
        rest_positions: (J, 3) joint positions in the rest pose.
        rest_rots: (J, 3, 3) joint orientations in the rest pose (default identity, which
            holds for BVH, SMPL and HumanML3D).
    """

    fps: float
    names: tuple[str, ...]
    world_rots: np.ndarray
    positions: np.ndarray
    rest_positions: np.ndarray
    rest_rots: np.ndarray | None = None
    name: str | None = None
    extra: dict = field(default_factory=dict)

    def index(self, joint: str) -> int:
        try:
            return self.names.index(joint)
        except ValueError:
            raise MotionError(
                f"{self.name or 'source'}: no joint named {joint!r} (joints: {', '.join(self.names)}); "
                "pass a joint map for this skeleton"
            ) from None


# ----------------------------------------------------------------------------- helpers
def shortest_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of the shortest arcs turning directions a onto b (...,3)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a, b = np.broadcast_arrays(a, b)
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    v = np.cross(a, b)
    c = np.sum(a * b, axis=-1)
    z = np.zeros_like(c)
    vx = np.stack([np.stack([z, -v[..., 2], v[..., 1]], -1), np.stack([v[..., 2], z, -v[..., 0]], -1),
                   np.stack([-v[..., 1], v[..., 0], z], -1)], -2)
    opposite = c < -1.0 + 1e-9
    k = 1.0 / np.where(opposite, 1.0, 1.0 + c)
    out = np.eye(3) + vx + (vx @ vx) * k[..., None, None]
    if np.any(opposite):  # half turn about an axis orthogonal to a
        ax = np.cross(a, [1.0, 0.0, 0.0])
        ax = np.where(np.linalg.norm(ax, axis=-1, keepdims=True) < 1e-6, np.cross(a, [0.0, 1.0, 0.0]), ax)
        ax = ax / np.linalg.norm(ax, axis=-1, keepdims=True)
        half = 2.0 * ax[..., :, None] * ax[..., None, :] - np.eye(3)
        out = np.where(opposite[..., None, None], half, out)
    return out


def facing_rotation(up: np.ndarray, left: np.ndarray) -> np.ndarray:
    """``M`` taking the source's (forward, up, left) to the humanoid's (+x, +y, -z)."""
    up = np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    left = np.asarray(left, dtype=np.float64)
    left = left - np.dot(left, up) * up
    if np.linalg.norm(left) < 1e-9:
        raise MotionError("retarget: the source's hips are not side by side in its rest pose (cannot tell its facing)")
    left /= np.linalg.norm(left)
    forward = np.cross(left, up)
    src = np.stack([forward, up, left], axis=1)  # columns
    dst = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]]).T
    return dst @ src.T


def twist_angle_z(m: np.ndarray) -> np.ndarray:
    """Angle of the twist about local z of rotations m (..., 3, 3) (swing–twist)."""
    q = quat.from_matrix(m)
    return 2.0 * np.arctan2(q[..., 2], q[..., 3])


def continuous_quaternions(q: np.ndarray) -> np.ndarray:
    """Flip signs along time (axis 0) so that consecutive quaternions have dot >= 0."""
    q = np.array(q, dtype=np.float64)
    if q.shape[0] < 2:
        return q
    dots = np.sum(q[1:] * q[:-1], axis=-1)
    flips = np.cumprod(np.where(dots < 0.0, -1.0, 1.0), axis=0)
    q[1:] *= flips[..., None]
    return q


def humanoid_leg_length() -> float:
    """Hip -> knee -> ankle length of the humanoid (metres)."""
    sk = load_skeleton()
    return float(
        np.linalg.norm(sk.joint_offsets[sk.index("right_knee")]) + np.linalg.norm(sk.joint_offsets[sk.index("right_ankle")])
    )


def ground_offset(motion: Motion) -> float:
    """Height of the lowest foot point over the whole clip (what to subtract to ground it)."""
    from sccl.motion.kinematics import body_lowest_points, forward_kinematics

    sk = load_skeleton()
    lows = body_lowest_points(forward_kinematics(motion))
    feet = [sk.index("right_ankle"), sk.index("left_ankle")]
    return float(lows[:, feet].min())


# ------------------------------------------------------------------------------- core
def retarget(
    src: SourceMotion,
    joint_map: JointMap,
    *,
    label: str | None = None,
    name: str | None = None,
    scale_root: bool = True,
    ground: bool = True,
) -> Motion:
    """Retarget a source motion onto the simulation humanoid (see module docstring).

    Args:
        scale_root: scale the root trajectory by humanoid / source leg length (otherwise
            the source units must already be metres).
        ground: shift the clip vertically so its lowest foot point touches y = 0.
    """
    where = name or src.name or "source"
    t = src.world_rots.shape[0]
    j = len(src.names)
    if src.world_rots.shape != (t, j, 3, 3) or src.positions.shape != (t, j, 3) or src.rest_positions.shape != (j, 3):
        raise MotionError(f"{where}: inconsistent source arrays {src.world_rots.shape}, {src.positions.shape}, {src.rest_positions.shape}")
    if t == 0:
        raise MotionError(f"{where}: the source has no frames")
    rest_rots = src.rest_rots if src.rest_rots is not None else np.broadcast_to(np.eye(3), (j, 3, 3))
    idx = {body: src.index(e.joint) for body, e in joint_map.entries.items()}
    end_idx = {body: src.index(e.end) for body, e in joint_map.entries.items() if e.end}
    rest = src.rest_positions

    # 1. facing and scale from the rest pose
    r_hip, l_hip = rest[idx["right_hip"]], rest[idx["left_hip"]]
    m = facing_rotation(np.array([0.0, 1.0, 0.0]), l_hip - r_hip)
    src_leg = 0.5 * sum(
        np.linalg.norm(rest[idx[knee]] - rest[idx[hip]]) + np.linalg.norm(rest[end_idx[knee]] - rest[idx[knee]])
        for hip, knee in (("right_hip", "right_knee"), ("left_hip", "left_knee"))
    )
    if not src_leg > 0:
        raise MotionError(f"{where}: the source's legs have zero length in its rest pose")
    scale = humanoid_leg_length() / src_leg if scale_root else 1.0

    # 2. target world rotations of the mapped bodies
    targets: dict[str, np.ndarray] = {}
    for body, entry in joint_map.entries.items():
        s = idx[body]
        delta = src.world_rots[:, s] @ rest_rots[s].T  # world rotation relative to rest
        offset = np.eye(3)
        if entry.mode == "bone":
            src_dir = m @ (rest[end_idx[body]] - rest[s])
            if np.linalg.norm(src_dir) < 1e-9:
                raise MotionError(f"{where}: {body}: bone {entry.joint} -> {entry.end} has zero length in the rest pose")
            offset = shortest_rotation(np.array(HUMANOID_BONE_DIRECTIONS[body]), src_dir)
        targets[body] = m @ delta @ m.T @ offset

    # 3. local rotations down the humanoid tree, from reconstructed parents
    sk = load_skeleton()
    world: list[np.ndarray] = []
    joint_mats = np.broadcast_to(np.eye(3), (t, len(SPHERICAL_JOINTS), 3, 3)).copy()
    angles = np.zeros((t, len(REVOLUTE_JOINTS)))
    root_world = targets["root"]
    for b, (body, parent, jtype) in enumerate(zip(sk.body_names, sk.parents, sk.joint_types)):
        pw = root_world if parent < 0 else world[parent]
        if jtype == "fixed" or body not in targets:
            world.append(pw)
            continue
        local = np.swapaxes(pw, -1, -2) @ targets[body]
        if jtype == "revolute":
            lo, hi = REVOLUTE_LIMITS[body]
            a = np.clip(twist_angle_z(local), lo, hi)
            angles[:, REVOLUTE_JOINTS.index(body)] = a
            c, s_ = np.cos(a), np.sin(a)
            rz = np.zeros((t, 3, 3))
            rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = c, -s_, s_, c, 1.0
            world.append(pw @ rz)
        else:
            joint_mats[:, SPHERICAL_JOINTS.index(body)] = local
            world.append(targets[body])

    # 4. root trajectory: midpoint of the source hips, turned and scaled
    hips_mid = 0.5 * (src.positions[:, idx["right_hip"]] + src.positions[:, idx["left_hip"]])
    root_pos = scale * hips_mid @ m.T
    motion = Motion(
        fps=src.fps,
        root_pos=root_pos,
        root_rot=continuous_quaternions(quat.from_matrix(root_world)),
        joint_rots=continuous_quaternions(quat.from_matrix(joint_mats)),
        joint_angles=angles,
        label=label,
        name=name or src.name,
    )
    if ground:
        dy = ground_offset(motion)
        motion = motion.replace(root_pos=motion.root_pos - np.array([0.0, dy, 0.0]))
    log.debug("%s: retargeted %d frames, root scale %.4f", where, t, scale)
    return motion


def axis_rotation(axis: str, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about the x, y or z axis by angles (radians)."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    i = "xyz".index(axis.lower())
    j, k = (i + 1) % 3, (i + 2) % 3
    out[..., i, i] = 1.0
    out[..., j, j] = c
    out[..., k, k] = c
    out[..., k, j] = s
    out[..., j, k] = -s
    return out


def source_from_local(
    fps: float,
    names: Sequence[str],
    parents: Sequence[int],
    offsets: np.ndarray,
    local_rots: np.ndarray,
    root_pos: np.ndarray,
    *,
    name: str | None = None,
    extra: dict | None = None,
) -> SourceMotion:
    """Forward kinematics of a tree with identity rest rotations (BVH, HumanML3D-style).

    Args:
        parents: parent index per joint (-1 for the root; parents precede children).
        offsets: (J, 3) joint offsets in the parent frame (rest pose).
        local_rots: (T, J, 3, 3) local rotations; root_pos: (T, 3) root position.
    """
    t, j = local_rots.shape[:2]
    world = np.empty((t, j, 3, 3))
    pos = np.empty((t, j, 3))
    rest = np.empty((j, 3))
    for i, p in enumerate(parents):
        if p < 0:
            world[:, i] = local_rots[:, i]
            pos[:, i] = root_pos
            rest[i] = offsets[i]
        else:
            world[:, i] = world[:, p] @ local_rots[:, i]
            pos[:, i] = pos[:, p] + np.einsum("tij,j->ti", world[:, p], offsets[i])
            rest[i] = rest[p] + offsets[i]
    return SourceMotion(fps, tuple(names), world, pos, rest, None, name, dict(extra or {}))
