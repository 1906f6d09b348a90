"""HumanML3D ``new_joint_vecs`` (263-d features, 20 fps) -> humanoid clips, via the rotation slice.

Layout of one frame (Guo et al. 2022, ``motion_process.py``), J = 22 SMPL body joints:

====================  =====  ==============================================================
slice                 width  content
====================  =====  ==============================================================
0                     1      root angular velocity about y (a *half*-angle increment: the
                             code stores ``arcsin`` of the quaternion's y component)
1:3                   2      root linear velocity (x, z) in the body-facing frame
3                     1      root height y
4:67                  63     ric: joints 1..21 relative to the root, in the facing frame
67:193                126    rot: 6-D rotations (first two matrix columns) of joints 1..21
193:259               66     local velocities of the 22 joints
259:263               4      foot contacts
====================  =====  ==============================================================

How the rotations are defined (and why they are lossy). HumanML3D's rotations are not mocap
rotations: they come from an inverse kinematics on joint *positions*
(``Skeleton.inverse_kinematics_np``). For every kinematic chain ([0,2,5,8,11],
[0,1,4,7,10], [0,3,6,9,12,15], [9,14,17,19,21], [9,13,16,18,20]) the rotation stored at a
joint c is the *shortest* rotation turning a fixed raw direction u_c (``t2m_raw_offsets``:
legs and arms along -y, spine along +y, feet and head along +z) onto the actual bone
(parent -> c), expressed relative to the previous bone of the chain -- and every chain,
the arm chains included, starts from the root's facing rotation, not from spine3. So:

* the rotation at c describes the bone *into* c (the knee's entry orients the thigh);
* there is no twist about the bones (shortest arcs), and the pelvis has heading only;
* the arm chains are relative to the root's heading, not to the chest.

This importer rebuilds each bone's world rotation as HumanML3D's own
``forward_kinematics_cont6d`` does, with the root heading integrated from the angular
velocity. Because those shortest arcs are taken in the *world* frame, a bone's twist follows
the world rather than the body (a hanging thigh has the identity rotation whatever way the
body faces), which would twist the humanoid's legs against its pelvis; each bone is therefore
re-expressed as heading x shortest arc in the body-facing frame (same bone direction -- all
the rotations hold -- with the twist carried by the body). The bones go to the retargeting
core as joints whose rest pose is the raw direction skeleton (bone lengths measured from the ric positions). Twist that the features do
not hold cannot come back (forearm and shin twist, torso twist about the spine). The feet's
rest rotation is the slope of the ankle -> toe bone measured on planted frames (foot contacts),
so that a flat source foot gives a flat humanoid foot.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from sccl.motion import quaternion as quat
from sccl.motion.clip import Motion, MotionError
from sccl.motion.importers.amass import SMPL_BODY_JOINTS, SMPL_BODY_PARENTS, SMPL_JOINT_MAP
from sccl.motion.importers.retarget import JointMap, MapEntry, SourceMotion, axis_rotation, retarget, shortest_rotation

log = logging.getLogger(__name__)

FEATURE_DIM = 263
FPS = 20.0
NUM_JOINTS = 22
KINEMATIC_CHAINS: tuple[tuple[int, ...], ...] = (
    (0, 2, 5, 8, 11), (0, 1, 4, 7, 10), (0, 3, 6, 9, 12, 15), (9, 14, 17, 19, 21), (9, 13, 16, 18, 20),
)
#: ``t2m_raw_offsets``: rest direction of the bone into each joint.
RAW_OFFSETS = np.array([
    [0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0],
    [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1], [0, -1, 0], [0, -1, 0],
    [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0],
], dtype=np.float64)

#: As SMPL's map, but the neck in "bone" mode: HumanML3D's rest head bone points forward (+z).
HUMANML3D_JOINT_MAP = JointMap({**SMPL_JOINT_MAP.entries, "neck": MapEntry("neck", "head", "bone")})

SLICES = {
    "root_rot_velocity": slice(0, 1), "root_linear_velocity": slice(1, 3), "root_y": slice(3, 4),
    "ric": slice(4, 67), "rot": slice(67, 193), "local_velocity": slice(193, 259), "foot_contact": slice(259, 263),
}


def read_features(path: str | os.PathLike) -> np.ndarray:
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise MotionError(f"{path}: not a readable .npy file ({exc})") from None
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != FEATURE_DIM:
        raise MotionError(f"{path}: expected HumanML3D new_joint_vecs of shape (T, {FEATURE_DIM}), got {data.shape}")
    if data.shape[0] == 0:
        raise MotionError(f"{path}: no frames")
    if not np.isfinite(data).all():
        raise MotionError(f"{path}: frame {int(np.argmax(~np.isfinite(data).all(axis=1)))} has a non-finite value")
    return data


def recover_root(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Root heading angle (T,) -- the angle of HumanML3D's ``r_rot`` about +y, which maps the
    world into the body-facing frame -- and the root position (T, 3), as recover_root_rot_pos."""
    half = np.zeros(data.shape[0])
    half[1:] = np.cumsum(data[:-1, 0])
    ang = 2.0 * half
    vel = np.zeros((data.shape[0], 3))
    vel[1:, [0, 2]] = data[:-1, 1:3]
    vel = np.einsum("tij,tj->ti", axis_rotation("y", -ang), vel)  # qinv(r_rot) applied
    pos = np.cumsum(vel, axis=0)
    pos[:, 1] = data[:, 3]
    return ang, pos


def features_source(data: np.ndarray, fps: float = FPS, name: str | None = None) -> SourceMotion:
    """Bone world rotations (as HumanML3D's forward_kinematics_cont6d) and joint positions."""
    t = data.shape[0]
    ang, root = recover_root(data)
    r_rot = axis_rotation("y", ang)  # world -> facing frame
    inv = np.swapaxes(r_rot, -1, -2)
    ric = data[:, SLICES["ric"]].reshape(t, NUM_JOINTS - 1, 3)
    pos = np.empty((t, NUM_JOINTS, 3))
    pos[:, 0] = root
    pos[:, 1:] = np.einsum("tij,tkj->tki", inv, ric)
    pos[:, 1:, 0] += root[:, None, 0]
    pos[:, 1:, 2] += root[:, None, 2]
    local = quat.sixd_to_matrix(data[:, SLICES["rot"]].reshape(t, NUM_JOINTS - 1, 6))
    bone = np.broadcast_to(np.eye(3), (t, NUM_JOINTS, 3, 3)).copy()  # world rotation of the bone into c
    for chain in KINEMATIC_CHAINS:
        r = r_rot
        for c in chain[1:]:
            r = r @ local[:, c - 1]
            bone[:, c] = r
    # HumanML3D's bone rotations are shortest arcs from the raw directions *in the world
    # frame*, so a bone's twist follows the world, not the body (a hanging thigh keeps the
    # identity whatever the heading). Rebuild each bone as heading x shortest arc in the
    # body-facing frame: same bone direction, twist carried by the body.
    dirs = np.einsum("tcij,cj->tci", bone, RAW_OFFSETS)
    facing_dirs = np.einsum("tij,tcj->tci", r_rot, dirs)
    body_bone = inv[:, None] @ shortest_rotation(np.broadcast_to(RAW_OFFSETS[1:], facing_dirs[:, 1:].shape), facing_dirs[:, 1:])
    bone[:, 1:] = body_bone
    # a joint's rotation is that of the bone leaving it (along its chain); leaves keep their own
    world = bone.copy()
    world[:, 0] = inv  # the pelvis: heading only (its body frame faces +z)
    for chain in KINEMATIC_CHAINS:
        for a, b in zip(chain[:-1], chain[1:]):
            if a != 0 and not (a == 9 and b in (13, 14)):
                world[:, a] = bone[:, b]
    lengths = np.zeros(NUM_JOINTS)
    for c in range(1, NUM_JOINTS):
        lengths[c] = float(np.median(np.linalg.norm(pos[:, c] - pos[:, SMPL_BODY_PARENTS[c]], axis=-1)))
    rest = np.zeros((NUM_JOINTS, 3))
    for c in range(1, NUM_JOINTS):
        rest[c] = rest[SMPL_BODY_PARENTS[c]] + RAW_OFFSETS[c] * lengths[c]
    # The raw rest direction of the foot bone is horizontal (+z), but a real foot's ankle ->
    # toe bone slopes down; a flat humanoid foot must correspond to the flat *source* foot.
    # Its slope is measured while the foot is planted (ankle and toe contacts both set).
    rest_rots = np.broadcast_to(np.eye(3), (NUM_JOINTS, 3, 3)).copy()
    contacts = data[:, SLICES["foot_contact"]] > 0.5  # l_ankle, l_toe, r_ankle, r_toe
    for ankle, toe, cols in ((7, 10, (0, 1)), (8, 11, (2, 3))):
        d = pos[:, toe] - pos[:, ankle]
        elev = np.arcsin(np.clip(d[:, 1] / np.maximum(np.linalg.norm(d, axis=-1), 1e-9), -1.0, 1.0))
        planted = contacts[:, cols[0]] & contacts[:, cols[1]]
        slope = float(np.median(elev[planted] if planted.any() else elev))
        rest_rots[ankle] = axis_rotation("x", -slope)
    return SourceMotion(fps, SMPL_BODY_JOINTS, world, pos, rest, rest_rots, name)


def import_humanml3d(
    path: str | os.PathLike, *, label: str | None = None, fps: float = FPS, ground: bool = True
) -> Motion:
    """Read a HumanML3D new_joint_vecs .npy and retarget it onto the humanoid."""
    data = read_features(path)
    src = features_source(data, fps, Path(path).name)
    return retarget(src, HUMANML3D_JOINT_MAP, label=label, name=Path(path).name, ground=ground)
