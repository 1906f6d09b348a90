"""The simulation humanoid's skeleton, read from the URDF that ships with PyBullet.

The URDF (`pybullet_data/humanoid/humanoid.urdf`) is the single source of truth: joint
offsets, joint types, link masses, centres of mass and collision shapes are parsed from it
and scaled by :data:`SCALE` (DeepMimic loads the file with ``globalScaling=0.25``; the
motion clips are in that scaled, metric frame). World convention: y-up, metres.

Bodies are indexed like PyBullet link indices: 0 = ``root`` (fixed to the base, so it
shares the base frame), 1 = ``chest`` … 14 = ``left_wrist``.
"""

from __future__ import annotations

import functools
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

SCALE = 0.25

#: Spherical (3-DoF) joints in the order used by :class:`motion.Motion.joint_rots`.
SPHERICAL_JOINTS: tuple[str, ...] = (
    "chest", "neck", "right_hip", "right_ankle", "right_shoulder", "left_hip", "left_ankle", "left_shoulder",
)
#: Revolute (1-DoF, about the local z axis) joints in the order of :class:`motion.Motion.joint_angles`.
REVOLUTE_JOINTS: tuple[str, ...] = ("right_knee", "right_elbow", "left_knee", "left_elbow")
#: The 12 actuated joints in DeepMimic frame order (after duration, root position, root rotation).
DEEPMIMIC_JOINT_ORDER: tuple[str, ...] = (
    "chest", "neck", "right_hip", "right_knee", "right_ankle", "right_shoulder", "right_elbow",
    "left_hip", "left_knee", "left_ankle", "left_shoulder", "left_elbow",
)
#: Left/right permutations used by mirroring (index i of the mirrored clip takes index perm[i]).
SPHERICAL_MIRROR_PERM: tuple[int, ...] = (0, 1, 5, 6, 7, 2, 3, 4)
REVOLUTE_MIRROR_PERM: tuple[int, ...] = (2, 3, 0, 1)
#: Bodies that legitimately touch the ground in ordinary locomotion (feet).
FOOT_BODIES: tuple[str, ...] = ("right_ankle", "left_ankle")


@dataclass(frozen=True)
class CollisionShape:
    """A link's collision primitive in the link frame (scaled, metres)."""

    kind: str  # "sphere" | "capsule" | "box"
    offset: np.ndarray  # (3,) centre in the link frame
    rotation: np.ndarray  # (3, 3) shape frame in the link frame
    radius: float = 0.0
    length: float = 0.0  # capsule: distance between the two sphere centres (along local z)
    half_extents: np.ndarray | None = None  # box


@dataclass(frozen=True)
class Skeleton:
    """Parsed, scaled humanoid description; see module docstring for indexing."""

    body_names: tuple[str, ...]
    parents: tuple[int, ...]  # -1 = the base
    joint_types: tuple[str, ...]
    joint_offsets: np.ndarray  # (B, 3) joint origin in the parent link frame
    masses: np.ndarray  # (B,)
    com_offsets: np.ndarray  # (B, 3) centre of mass in the link frame
    collision: tuple[CollisionShape | None, ...]
    base_mass: float

    @property
    def num_bodies(self) -> int:
        return len(self.body_names)

    def index(self, name: str) -> int:
        return self.body_names.index(name)

    @property
    def total_mass(self) -> float:
        return float(self.masses.sum() + self.base_mass)


def urdf_path() -> str:
    """Path of the humanoid URDF inside the installed ``pybullet_data`` package."""
    import pybullet_data  # a path-only module; importing it does not start PyBullet

    return os.path.join(pybullet_data.getDataPath(), "humanoid", "humanoid.urdf")


def _vec(text: str | None) -> np.ndarray:
    return np.array([float(v) for v in (text or "0 0 0").split()], dtype=np.float64)


def _rpy_matrix(rpy: np.ndarray) -> np.ndarray:
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


@functools.lru_cache(maxsize=1)
def load_skeleton(path: str | None = None) -> Skeleton:
    """Parse the humanoid URDF once (cached)."""
    # The shipped file ends with a NUL byte that strict XML parsers reject.
    text = open(path or urdf_path(), "rb").read().rstrip(b"\x00\r\n ").decode("utf-8")
    robot = ET.fromstring(text)
    links = {link.get("name"): link for link in robot.findall("link")}
    joints = robot.findall("joint")
    names: list[str] = []
    parents: list[int] = []
    types: list[str] = []
    offsets: list[np.ndarray] = []
    masses: list[float] = []
    coms: list[np.ndarray] = []
    shapes: list[CollisionShape | None] = []
    for joint in joints:  # URDF order == PyBullet link order (URDF_MAINTAIN_LINK_ORDER)
        child = joint.find("child").get("link")
        parent = joint.find("parent").get("link")
        names.append(child)
        parents.append(-1 if parent == "base" else names.index(parent))
        types.append(joint.get("type"))
        origin = joint.find("origin")
        offsets.append(_vec(origin.get("xyz") if origin is not None else None) * SCALE)
        link = links[child]
        inertial = link.find("inertial")
        masses.append(float(inertial.find("mass").get("value")))
        coms.append(_vec(inertial.find("origin").get("xyz")) * SCALE)
        shapes.append(_parse_collision(link))
    base_mass = float(links["base"].find("inertial").find("mass").get("value"))
    return Skeleton(
        body_names=tuple(names),
        parents=tuple(parents),
        joint_types=tuple(types),
        joint_offsets=np.stack(offsets),
        masses=np.array(masses),
        com_offsets=np.stack(coms),
        collision=tuple(shapes),
        base_mass=base_mass,
    )


def _parse_collision(link: ET.Element) -> CollisionShape | None:
    col = link.find("collision")
    if col is None:
        return None
    origin = col.find("origin")
    offset = _vec(origin.get("xyz")) * SCALE
    rotation = _rpy_matrix(_vec(origin.get("rpy")))
    geom = col.find("geometry")
    if geom.find("sphere") is not None:
        return CollisionShape("sphere", offset, rotation, radius=float(geom.find("sphere").get("radius")) * SCALE)
    if geom.find("capsule") is not None:
        cap = geom.find("capsule")
        return CollisionShape(
            "capsule", offset, rotation, radius=float(cap.get("radius")) * SCALE, length=float(cap.get("length")) * SCALE
        )
    if geom.find("box") is not None:
        size = _vec(geom.find("box").get("size")) * SCALE
        return CollisionShape("box", offset, rotation, half_extents=size / 2.0)
    return None


def actuated_body_indices() -> tuple[list[int], list[int]]:
    """Body (= PyBullet joint) indices of the spherical and revolute joints, in Motion order."""
    sk = load_skeleton()
    return [sk.index(n) for n in SPHERICAL_JOINTS], [sk.index(n) for n in REVOLUTE_JOINTS]
