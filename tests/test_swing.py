"""Swing-foot clearance (``SimConfig.swing_clearance``): the leg IK raises a swing foot that
would pass lower than the reference's, leaves stance legs, flight and high feet alone, and on
real PyBullet cuts the foot sliding of a walk without adding anything external."""

from __future__ import annotations

import numpy as np
import pytest

from sccl.motion import quaternion as quat
from sccl.motion.deepmimic import bundled_motion_dir, read_clip
from sccl.motion.kinematics import forward_kinematics_matrices
from sccl.motion.skeleton import REVOLUTE_JOINTS, SPHERICAL_JOINTS, load_skeleton
from sccl.simulators import HumanoidSim, SimConfig, SimulatorConfigError, ground_align, physics_metrics
from sccl.simulators.balance import SwingClearance
from sccl.simulators.reference import resample


@pytest.fixture(scope="module")
def walk():
    clip = read_clip(bundled_motion_dir() / "humanoid3d_walk.txt").motion
    return ground_align(clip, "percentile", 5.0)[0]


def _ankles(root_pos, root_mat, sph, rev):
    kin = forward_kinematics_matrices(root_pos[None], root_mat[None], quat.to_matrix(sph)[None], rev[None])
    sk = load_skeleton()
    return kin.positions[0, [sk.index("right_ankle"), sk.index("left_ankle")]]


def test_raises_only_a_single_support_swing_foot_to_the_reference_height(walk):
    ref = resample(walk, 1.0 / 120.0)
    swing = SwingClearance(ref)
    low = np.stack([leg["ref_low"] for leg in swing.legs], axis=1)  # (N, 2)
    single = np.flatnonzero((low[:, 0] > 0.02) & (low[:, 1] <= 0.02))
    both_down = np.flatnonzero((low <= 0.02).all(axis=1))
    assert single.size and both_down.size
    k = int(single[single.size // 2])
    root_mat = quat.to_matrix(ref.root_rot[k])
    sph, rev = ref.joint_rots[k].copy(), ref.joint_angles[k].copy()
    # at the reference's own root pose the foot is exactly as high as asked: nothing to do
    assert not swing.targets(k, sph, rev, ref.root_pos[k], root_mat)
    assert np.array_equal(sph, ref.joint_rots[k]) and np.array_equal(rev, ref.joint_angles[k])
    # 6 cm lower, the swing foot (right) is raised back to the reference's ankle height; the
    # stance leg (left) keeps its reference targets
    lowered = ref.root_pos[k] - np.array([0.0, 0.06, 0.0])
    assert swing.targets(k, sph, rev, lowered, root_mat)
    ankles = _ankles(lowered, root_mat, sph, rev)
    assert ankles[0, 1] == pytest.approx(swing.legs[0]["ref_ankle"][k, 1], abs=1e-6)
    for name in ("left_hip", "left_ankle"):
        i = SPHERICAL_JOINTS.index(name)
        assert np.array_equal(sph[i], ref.joint_rots[k][i])
    assert rev[REVOLUTE_JOINTS.index("left_knee")] == ref.joint_angles[k][REVOLUTE_JOINTS.index("left_knee")]
    # the raised foot keeps its orientation relative to the root
    def foot_rot(s, r):
        kin = forward_kinematics_matrices(lowered[None], root_mat[None], quat.to_matrix(s)[None], r[None])
        return kin.rotations[0, load_skeleton().index("right_ankle")]
    assert np.allclose(foot_rot(sph, rev), foot_rot(ref.joint_rots[k], ref.joint_angles[k]), atol=1e-9)
    # both feet down (double support): nothing is raised however low the body is
    j = int(both_down[0])
    sph2, rev2 = ref.joint_rots[j].copy(), ref.joint_angles[j].copy()
    assert not swing.targets(j, sph2, rev2, ref.root_pos[j] - np.array([0.0, 0.06, 0.0]), quat.to_matrix(ref.root_rot[j]))
    # a non-finite state leaves the targets alone
    assert not swing.targets(k, sph2, rev2, np.full(3, np.nan), root_mat)


def test_walk_slides_less_with_clearance_and_nothing_external_is_added(walk):
    """Real PyBullet, default corrector settings: the walk's swing foot, carried low by the
    crouched body, otherwise lands early and skids."""
    with HumanoidSim(SimConfig()) as plain, HumanoidSim(SimConfig(swing_clearance=True)) as lifted:
        a, b = plain.track(walk), lifted.track(walk)
    assert not a.fell and not b.fell
    slide_a, slide_b = (physics_metrics(r.motion)["skate_sliding_mm"] for r in (a, b))
    assert slide_b < 0.8 * slide_a, (slide_a, slide_b)
    assert b.extra["residual_g"] <= a.extra["residual_g"] + 0.05


def test_only_modes_that_set_pd_targets_from_the_reference_take_it():
    SimConfig(swing_clearance=True, assist_mode="contact").validate()
    for mode in ("stance_ik", "wbc", "sampling"):
        with pytest.raises(SimulatorConfigError, match="swing_clearance"):
            SimConfig(swing_clearance=True, assist_mode=mode).validate()
