"""Honest balance through the stance legs: joint targets only, no external force on the body.

``assist_mode="stance_ik"`` (see :class:`StanceBalance`). The stable-PD joint tracking of
:mod:`simulators.humanoid` is kept; what changes is *which* targets a stance leg gets, and how
stiff a stance leg is.

**Stance-leg targets.** With the reference's own joint angles as targets, a planted foot fixes
the body's pose relative to where that foot happens to be: for a rigid stance, joint tracking
*is* root tracking with gain 1, and nothing acts on the root's drift beyond that. Here every
leg whose foot is planted gets hip, knee and ankle targets from inverse kinematics: the
targets that would put the root at the reference root pose, over-corrected by
``root_gain`` × the root error (position, and tilt but not yaw), while the foot stays where
it actually is with its sole flat. The root target is also shifted vertically by how far the
actual stance ankles sit above or below the reference's (mocap feet float or sink by
centimetres; otherwise the targets ask for a leg longer than it is). The PD controllers then
push against the ground toward the reference: ankle and hip strategies realised only by joint
torques, which are internal, so the ground must supply whatever force results. Legs in the air
keep the reference's targets.

**Stance-leg stiffness.** PyBullet's stable PD (Tan et al. 2011) predicts each joint's motion
from the articulated mass matrix *without* the ground, so a joint whose child subtree is light
gets only the small torque that would swing that subtree to its target within one step.
Measured (root held, foot on the floor, ankle target 0.15 rad toward the floor, DeepMimic
gains): the foot pressed on the floor with 4.8 N; with the ankle's kd × 0.1, 87 N; × 0.01,
413 N (the intended ~60 N·m needs ~1400 N at the heel). The damping gain multiplies the
predicted (free-foot) acceleration, so ``gain_scale`` cannot fix it. The stance legs' kd is
therefore scaled by :attr:`SimConfig.balance_stance_kd_scale` while their foot is planted.

Tried and dropped (measured, see docs/PHYSICS.md): the reference's foot orientation as the
ankle target (tiptoe mocap feet fight the flat simulated foot); root *velocity* feedback and
yaw feedback (both unstable at 120–240 Hz); explicit PD torques (TORQUE_CONTROL) on the
stance legs (unstable: the twist axes' inertia is tiny).

The leg IK is closed-form for this humanoid (hip spherical, knee revolute about local z,
ankle spherical, bone offsets along -y): the knee angle from the hip-ankle distance, the hip
as the smallest rotation of the reference hip that points the leg at the target, the ankle as
what is left of the foot orientation. Unreachable targets are clamped to a just-bent leg.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from sccl.motion import quaternion as quat
from sccl.motion.kinematics import body_lowest_points, forward_kinematics_matrices
from sccl.motion.skeleton import SPHERICAL_JOINTS, REVOLUTE_JOINTS, load_skeleton

log = logging.getLogger(__name__)

#: Legs: (hip, knee, ankle) body names.
LEGS: tuple[tuple[str, str, str], ...] = (("right_hip", "right_knee", "right_ankle"),
                                          ("left_hip", "left_knee", "left_ankle"))
#: Smallest |knee angle| (rad) the IK returns: a fully straight knee is a singular pose.
MIN_KNEE_BEND = 0.05


def _quat_from_matrix(r: np.ndarray) -> np.ndarray:
    """(x, y, z, w) of one rotation matrix (Shepperd's method, scalar code: the vectorised
    :func:`motion.quaternion.from_matrix` costs ~1 ms per call on a single matrix, which was
    most of this mode's time at 240 control steps per second)."""
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = r.tolist()
    tr = m00 + m11 + m22
    if tr > 0.0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = ((m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s, 0.25 * s)
    elif m00 > m11 and m00 > m22:
        s = 2.0 * math.sqrt(1.0 + m00 - m11 - m22)
        q = (0.25 * s, (m01 + m10) / s, (m02 + m20) / s, (m21 - m12) / s)
    elif m11 > m22:
        s = 2.0 * math.sqrt(1.0 + m11 - m00 - m22)
        q = ((m01 + m10) / s, 0.25 * s, (m12 + m21) / s, (m02 - m20) / s)
    else:
        s = 2.0 * math.sqrt(1.0 + m22 - m00 - m11)
        q = ((m02 + m20) / s, (m12 + m21) / s, 0.25 * s, (m10 - m01) / s)
    out = np.array(q)
    return out / math.sqrt(float(out @ out))


def _rot_between(u: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Smallest rotation matrix taking direction u onto direction w (Rodrigues)."""
    u = u / np.linalg.norm(u)
    w = w / np.linalg.norm(w)
    axis = np.array([u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2], u[0] * w[1] - u[1] * w[0]])
    s = float(np.linalg.norm(axis))
    c = float(u @ w)
    if s < 1e-9:
        return np.eye(3)  # (anti-)parallel: the anti-parallel case cannot occur for a leg near its reference
    k = axis / s
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + s * kx + (1.0 - c) * (kx @ kx)


def _flatten(rot: np.ndarray) -> np.ndarray:
    """The foot orientation with the same heading but the sole flat (local y = world up)."""
    x = rot[:, 0].copy()
    x[1] = 0.0
    n = float(np.linalg.norm(x))
    if n < 1e-6:
        return rot
    x /= n
    y = np.array([0.0, 1.0, 0.0])
    z = np.array([-x[2], 0.0, x[0]])  # x × (0, 1, 0)
    return np.column_stack((x, y, z))


def _log_rotation(r: np.ndarray) -> np.ndarray:
    """Rotation vector (axis · angle) of a rotation matrix."""
    q = _quat_from_matrix(r)
    if q[3] < 0.0:
        q = -q
    n = float(np.linalg.norm(q[:3]))
    return q[:3] * (2.0 * math.atan2(n, q[3]) / n) if n > 1e-12 else np.zeros(3)


def _exp_rotation(v: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector (Rodrigues)."""
    a = float(np.linalg.norm(v))
    if a < 1e-12:
        return np.eye(3)
    k = v / a
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + math.sin(a) * kx + (1.0 - math.cos(a)) * (kx @ kx)


def _rotz(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class StanceBalance:
    """Per-clip controller: replaces the stance legs' stable-PD targets by leg IK toward the reference root.

    Args:
        ref: the resampled reference (:class:`simulators.reference.Reference`), one sample per
            control step.
        root_gain: the IK's root target is ``ref + root_gain · (ref − actual)`` (position and
            orientation); 0 aims the legs at the reference root itself, > 0 over-corrects
            so the PD pushes harder toward it.
        stance_height_m: a foot whose lowest point is below this height counts as planted
            (a margin, because contact points chatter at the physics rate).
        ref_stance_height_m: ... and only while the reference's foot is below this height too,
            so that a foot the clip lifts is released for its swing.
    """

    def __init__(self, ref, root_gain: float = 0.0, stance_height_m: float = 0.01,
                 ref_stance_height_m: float = 0.05) -> None:
        self.ref = ref
        self.root_gain = float(root_gain)
        self.stance_height_m = float(stance_height_m)
        self.legs, self.root_mats = _leg_table(ref)
        self.ref_stance_height_m = float(ref_stance_height_m)
        self.stance_steps = np.zeros(2, dtype=np.int64)
        self.stance = [False, False]

    def leg_joints(self, joints: str) -> list[tuple[int, str, int]]:
        """(PyBullet joint, kind "s"/"r", Motion slot) of the planted legs' joints named by
        `joints` ("ankle", "ankle_knee" or "leg" = hip, knee and ankle), as of the last
        :meth:`targets` call."""
        names = {"ankle": ("ankle",), "ankle_knee": ("ankle", "knee"), "leg": ("ankle", "knee", "hip")}[joints]
        out = []
        for leg, st in zip(self.legs, self.stance):
            if not st:
                continue
            for part in names:
                if part == "knee":
                    out.append((leg["knee"], "r", leg["knee_slot"]))
                else:
                    out.append((leg[part], "s", leg[part + "_slot"]))
        return out

    def foot_lowest(self, leg: dict, pos: np.ndarray, rot: np.ndarray) -> float:
        """Lowest point (m above the ground) of the foot box at link pose (pos, rot)."""
        r = rot @ leg["box_r"]
        centre_y = pos[1] + rot[1] @ leg["box_c"]
        return float(centre_y - np.abs(r[1]) @ leg["box_h"])

    def targets(self, k: int, sph: np.ndarray, rev: np.ndarray, root_pos: np.ndarray, root_rot: np.ndarray,
                feet: list[tuple[np.ndarray, np.ndarray]]) -> bool:
        """Overwrite stance-leg targets in place for control sample k.

        Args:
            sph: (8, 4) spherical targets (x, y, z, w), a copy of the reference's; rev: (4,).
            root_pos / root_rot: the body's actual root position and rotation matrix.
            feet: actual (ankle position, ankle rotation matrix) per leg, LEGS order.
        Returns whether any leg was treated as stance.
        """
        if not (np.isfinite(root_pos).all() and np.isfinite(root_rot).all()
                and all(np.isfinite(p).all() and np.isfinite(r).all() for p, r in feet)):
            self.stance = [False, False]
            return False  # a blown-up state: keep the reference targets; the fall check reports "nan"
        ref = self.ref
        r_ref = self.root_mats[k]
        p_d = ref.root_pos[k]
        r_d = r_ref
        if self.root_gain > 0.0:
            # over-correction of the root target: the legs then push harder than plain joint
            # tracking (which for a rigid stance is exactly root tracking with gain 1)
            p_d = p_d + self.root_gain * (ref.root_pos[k] - root_pos)
            e_r = _log_rotation(r_ref @ root_rot.T)
            e_r[1] = 0.0  # tilt only: yaw feedback through planted feet twists the legs (measured: unstable)
            r_d = _exp_rotation(self.root_gain * e_r) @ r_ref
        stance = [leg["ref_low"][k] <= self.ref_stance_height_m
                  and self.foot_lowest(leg, a_pos, a_rot) <= self.stance_height_m
                  for leg, (a_pos, a_rot) in zip(self.legs, feet)]
        self.stance = stance
        if not any(stance):
            return False
        # The clip's feet float or sink by centimetres (tiptoes, mocap noise): aim the root at the
        # reference's height above the *actual* stance ankles, else the targets ask for a leg
        # longer than it is and the knees lock straight.
        dy = np.mean([a_pos[1] - leg["ref_ankle"][k, 1]
                      for leg, (a_pos, _), st in zip(self.legs, feet, stance) if st])
        p_d = p_d + np.array([0.0, float(dy), 0.0])
        for i, (leg, (a_pos, a_rot)) in enumerate(zip(self.legs, feet)):
            if not stance[i]:
                continue
            self.stance_steps[i] += 1
            # targets in the desired root frame
            _leg_ik(leg, k, r_d.T @ (a_pos - p_d) - leg["o_h"], r_d.T @ _flatten(a_rot), sph, rev)
        return True


class SwingClearance:
    """Keeps a swing foot at least as high above the floor as the reference's: joint targets only.

    Why: when the simulated body stands lower than the clip (the crouch under load, a flight it
    does not fly), the reference's joint angles carry the swing foot lower over the floor than
    the clip does, so it lands early while still moving at swing speed and skids (bundled run:
    touchdown several frames early at 6–8 m/s). For every leg whose
    reference foot is off the floor (lowest point above ``swing_height_m``), the ankle that the
    reference's hip, knee and ankle targets would give from the body's *actual* root pose is
    compared with the reference ankle's height; if it would pass lower, the leg gets IK targets
    that put it at the reference's height instead, with the same foot orientation relative to
    the root. Only raising: a foot above its reference is left alone, and stance legs are never
    touched. Nothing external acts, so the residual accounting is unchanged.

    Args:
        ref: the resampled reference, one sample per control step.
        swing_height_m: a reference foot whose lowest point is above this is in swing.
    """

    def __init__(self, ref, swing_height_m: float = 0.02) -> None:
        self.legs, _ = _leg_table(ref)
        self.swing_height_m = float(swing_height_m)

    def targets(self, k: int, sph: np.ndarray, rev: np.ndarray, root_pos: np.ndarray, root_rot: np.ndarray) -> bool:
        """Raise swing-leg targets in place for control sample k (sph (8, 4) and rev (4,), the
        targets the leg would otherwise get); root_pos / root_rot: the body's actual root
        position and rotation matrix. Returns whether any leg was raised."""
        if not (np.isfinite(root_pos).all() and np.isfinite(root_rot).all()):
            return False  # a blown-up state: the fall check reports it
        raised = False
        for leg, other in zip(self.legs, self.legs[::-1]):
            # single support only: in the reference's flight both feet are up, and a body that
            # does not fly as high would pull both legs in and land on its knees
            if leg["ref_low"][k] <= self.swing_height_m or other["ref_low"][k] > self.swing_height_m:
                continue
            rz = _rotz(float(rev[leg["knee_slot"]]))
            r_h = quat.to_matrix(sph[leg["hip_slot"]])
            ankle = root_pos + root_rot @ (leg["o_h"] + r_h @ _hip_to_ankle(leg, rz))
            lift = float(leg["ref_ankle"][k, 1] - ankle[1])
            if not lift > 0.0:
                continue
            foot_rel = r_h @ rz @ quat.to_matrix(sph[leg["ankle_slot"]])
            w = root_rot.T @ (ankle + np.array([0.0, lift, 0.0]) - root_pos) - leg["o_h"]
            raised |= _leg_ik(leg, k, w, foot_rel, sph, rev, hip_base=r_h)
        return raised


def _hip_to_ankle(leg: dict, rz: np.ndarray) -> np.ndarray:
    """The ankle's offset from the hip joint in the hip's frame, for the knee rotation `rz`
    (thigh and shank along -y)."""
    return np.array([0.0, -leg["l_k"], 0.0]) + rz @ np.array([0.0, -leg["l_a"], 0.0])


def _leg_table(ref) -> tuple[list[dict], np.ndarray]:
    """Per leg (LEGS order) the skeleton's indices, bone lengths and foot box, and the
    reference's foot heights, ankle positions and hip rotations per control sample; and the
    reference's root rotation matrices. What the leg IK of both controllers here needs."""
    sk = load_skeleton()
    kin = forward_kinematics_matrices(ref.root_pos, quat.to_matrix(ref.root_rot), quat.to_matrix(ref.joint_rots),
                                      ref.joint_angles)
    low = body_lowest_points(kin)
    legs = []
    for hip, knee, ankle in LEGS:
        h, k, a = sk.index(hip), sk.index(knee), sk.index(ankle)
        foot = sk.collision[a]
        legs.append({
            "hip": h, "knee": k, "ankle": a,
            "hip_slot": SPHERICAL_JOINTS.index(hip), "knee_slot": REVOLUTE_JOINTS.index(knee),
            "ankle_slot": SPHERICAL_JOINTS.index(ankle),
            "o_h": sk.joint_offsets[h], "l_k": float(np.linalg.norm(sk.joint_offsets[k])),
            "l_a": float(np.linalg.norm(sk.joint_offsets[a])),
            "ref_low": low[:, a],  # (N,) reference foot's lowest point
            "ref_ankle": kin.positions[:, a],
            "box_c": foot.offset, "box_r": foot.rotation, "box_h": foot.half_extents,
            "ref_hip": quat.to_matrix(ref.joint_rots[:, SPHERICAL_JOINTS.index(hip)]),
        })
    return legs, quat.to_matrix(ref.root_rot)


def _leg_ik(leg: dict, k: int, w: np.ndarray, foot_rel: np.ndarray, sph: np.ndarray, rev: np.ndarray,
            hip_base: np.ndarray | None = None) -> bool:
    """Overwrite one leg's hip, knee and ankle targets in place so that the ankle sits at `w`
    (from the hip joint, in the root frame) with the foot at orientation `foot_rel` (root
    frame); the knee bends the way `rev`'s does, and the hip is the smallest rotation of
    `hip_base` (default: the reference's hip at k) that points the leg at `w`. False (targets
    untouched) for a degenerate or non-finite `w`."""
    lk, la = leg["l_k"], leg["l_a"]
    d = float(np.linalg.norm(w))
    if not d > 1e-6:
        return False
    cos_t = (d * d - lk * lk - la * la) / (2.0 * lk * la)
    theta_ref = float(rev[leg["knee_slot"]])
    sign = 1.0 if theta_ref > 0 else -1.0  # knees bend backward (negative angles)
    theta = sign * max(math.acos(min(1.0, max(-1.0, cos_t))), MIN_KNEE_BEND)
    rz = _rotz(theta)
    v = _hip_to_ankle(leg, rz)
    r_h_ref = leg["ref_hip"][k] if hip_base is None else hip_base
    r_h = _rot_between(r_h_ref @ v, w) @ r_h_ref
    r_a = (r_h @ rz).T @ foot_rel
    sph[leg["hip_slot"]] = _quat_from_matrix(r_h)
    sph[leg["ankle_slot"]] = _quat_from_matrix(r_a)
    rev[leg["knee_slot"]] = theta
    return True
