"""Real PyBullet: the honest "stance_ik" balance mode (simulators/balance.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sccl.motion import quaternion as quat
from sccl.motion.deepmimic import bundled_motion_dir, read_clip
from sccl.motion.kinematics import forward_kinematics_matrices
from sccl.simulators import HumanoidSim, SimulatorConfigError, ground_align, resample
from sccl.simulators.balance import StanceBalance


def bundled(name: str):
    return read_clip(bundled_motion_dir() / f"humanoid3d_{name}.txt").motion


@pytest.fixture(scope="module")
def walk():
    aligned, _ = ground_align(bundled("walk"), "percentile", 10)
    return aligned


def _fk(root_pos, root_rot, sph, rev):
    return forward_kinematics_matrices(root_pos, quat.to_matrix(root_rot), quat.to_matrix(sph), rev)


def test_leg_ik_reproduces_the_reference_and_pins_the_feet(walk):
    """From the reference's own state the IK returns the reference pose; for a shifted root it
    returns the pose that leaves both ankles exactly where they were, soles flat."""
    ref = resample(walk, 1.0 / 120.0)
    sb = StanceBalance(ref, stance_height_m=1.0, ref_stance_height_m=1.0)  # every leg counts as stance
    for k in (0, 40, 80):
        kin = _fk(ref.root_pos[k], ref.root_rot[k], ref.joint_rots[k], ref.joint_angles[k])
        feet = [(kin.positions[leg["ankle"]], kin.rotations[leg["ankle"]]) for leg in sb.legs]
        # soles flat in the reference too, so that only the root moves
        from sccl.simulators.balance import _flatten

        feet = [(p, _flatten(r)) for p, r in feet]
        shift = np.array([0.03, -0.02, 0.01])
        ref.root_pos[k] += shift  # the IK aims at the (shifted) reference root
        try:
            sph, rev = ref.joint_rots[k].copy(), ref.joint_angles[k].copy()
            assert sb.targets(k, sph, rev, ref.root_pos[k], quat.to_matrix(ref.root_rot[k]), feet)
            moved = _fk(ref.root_pos[k], ref.root_rot[k], sph, rev)
        finally:
            ref.root_pos[k] -= shift
        for leg, (pos, rot) in zip(sb.legs, feet):
            np.testing.assert_allclose(moved.positions[leg["ankle"]], pos, atol=1e-9)
            np.testing.assert_allclose(moved.rotations[leg["ankle"]], rot, atol=1e-9)
        assert np.abs(quat.canonical(sph) - quat.canonical(ref.joint_rots[k])).max() > 1e-3  # the legs did change


def test_targets_on_a_blown_up_state_keep_the_reference(walk):
    ref = resample(walk.slice(0, 5), 1.0 / 120.0)
    sb = StanceBalance(ref)
    sph, rev = ref.joint_rots[1].copy(), ref.joint_angles[1].copy()
    feet = [(np.full(3, math.nan), np.eye(3)), (np.zeros(3), np.eye(3))]
    assert not sb.targets(1, sph, rev, np.zeros(3), np.eye(3), feet)
    np.testing.assert_array_equal(sph, ref.joint_rots[1])
    np.testing.assert_array_equal(rev, ref.joint_angles[1])


def test_stance_ik_keeps_walk_where_pure_physics_falls_and_applies_nothing(walk):
    """The measured frontier point: at 240 Hz control, pure physics falls on walk, stance_ik
    finishes it within the walk targets, and nothing external ever acts (residual 0)."""
    pure = HumanoidSim({"assist_mode": "contact", "assist_cap_g": 0.0, "control_hz": 240.0, "damping_scale": 1.0})
    honest = HumanoidSim({"assist_mode": "stance_ik", "control_hz": 240.0})
    try:
        assert pure.track(walk).fell
        res = honest.track(walk)
    finally:
        pure.close()
        honest.close()
    assert not res.fell and not res.blew_up
    assert res.root_relative_error_mm <= 60.0
    assert res.extra["residual_g"] == 0.0 and res.extra["assist_g"] == 0.0
    assert res.assist_fraction_g == 0.0


def test_stance_kd_scale_is_what_lets_an_ankle_press_on_the_floor(walk):
    """Stable PD predicts a joint's motion without the ground: an ankle told to pitch toward the
    floor presses with almost nothing unless its damping gain is lowered (why
    balance_stance_kd_scale exists)."""
    import pybullet as p

    frame = walk.slice(0, 2)
    neutral = frame.replace(root_rot=np.tile([0.0, 0.0, 0.0, 1.0], (2, 1)),
                            joint_rots=np.tile([0.0, 0.0, 0.0, 1.0], (2, 8, 1)), joint_angles=np.zeros((2, 4)))
    root = ground_align(neutral, "min")[0].root_pos[0].tolist()  # upright, soles on the floor

    def heel_force(kd_scale: float) -> float:
        sim = HumanoidSim({"assist_cap_g": 0.0, "assist_mode": "contact", "damping_scale": 1.0})
        try:
            cid, body, joints = sim._cid, sim.body, sim._joints
            p.resetBasePositionAndOrientation(body, root, [0, 0, 0, 1], physicsClientId=cid)
            p.createConstraint(body, -1, -1, -1, p.JOINT_FIXED, [0, 0, 0], [0, 0, 0], root, physicsClientId=cid)
            ankles = {sim._sph_idx[3], sim._sph_idx[6]}  # right_ankle, left_ankle
            pitch = list(p.getQuaternionFromEuler([0.0, 0.0, 0.15]))
            targets = [pitch if j in ankles else ([0, 0, 0, 1] if j in sim._sph_idx else [0]) for j in joints]
            vels = [[0, 0, 0] if len(t) == 4 else [0] for t in targets]
            kds = [kd * (kd_scale if j in ankles else 1.0) for kd, j in zip(sim._kds, joints)]
            for _ in range(120):
                p.setJointMotorControlMultiDofArray(body, joints, p.STABLE_PD_CONTROL, targetPositions=targets,
                                                    targetVelocities=vels, forces=sim._forces,
                                                    positionGains=sim._kps, velocityGains=kds, physicsClientId=cid)
                p.stepSimulation(physicsClientId=cid)
            return sum(c[9] for c in p.getContactPoints(body, sim.plane, physicsClientId=cid))
        finally:
            sim.close()

    weak, strong = heel_force(1.0), heel_force(0.1)
    assert weak < 20.0  # N: the default gains barely press (measured 4.8 N)
    assert strong > 50.0  # measured 87 N


def test_stance_settings_are_checked():
    for bad in ({"balance_root_gain": -1.0}, {"balance_stance_kd_scale": 0.0}, {"balance_stance_m": -0.1},
                {"balance_stance_kd_joints": "arm"}):
        with pytest.raises(SimulatorConfigError):
            HumanoidSim({"assist_mode": "stance_ik", **bad})


def test_probe_foot_placement_moves_the_swing_ankle_by_the_drift_feedback(walk, bench_script):
    """bench/reactive_balance.py's swing-foot placement: with the root displaced by d, moving at
    velocity v and turned about the vertical, the swing leg's IK targets put its ankle at the
    reference ankle moved horizontally by (1 + gain_position) * d + gain_velocity * (v - v_ref);
    the vertical parts of d and v do not move it, and the other leg is left to StanceBalance."""
    probe = bench_script("reactive_balance")
    ref = resample(walk, 1.0 / 240.0)
    gain_position, gain_velocity = 0.5, 0.2
    sb = probe.foot_placement_class(gain_position, gain_velocity)(ref, root_gain=0.0, stance_height_m=0.01,
                                                                  ref_stance_height_m=0.05)
    # a sample where the right foot swings and the left is planted in the reference
    right, left = sb.legs
    k = next(i for i in range(ref.num_samples)
             if right["ref_low"][i] > 0.05 and left["ref_low"][i] <= 0.05 and i > 10)
    d = np.array([0.06, -0.02, 0.04])  # lower, not higher: a higher root could leave the target out of reach
    v = np.array([0.3, -0.2, 0.1])
    root_pos = ref.root_pos[k] + d
    turned = quat.multiply(quat.yaw(0.2), ref.root_rot[k])
    kin = _fk(ref.root_pos[k], ref.root_rot[k], ref.joint_rots[k], ref.joint_angles[k])
    # both simulated feet well above the floor: no stance IK, only the placement acts
    feet = [(kin.positions[leg["ankle"]] + np.array([0.0, 0.5, 0.0]), kin.rotations[leg["ankle"]]) for leg in sb.legs]
    sb.previous_root = root_pos - v * sb.dt  # so that the velocity it measures is v
    sph, rev = ref.joint_rots[k].copy(), ref.joint_angles[k].copy()
    assert sb.targets(k, sph, rev, root_pos, quat.to_matrix(turned), feet)
    placed = _fk(root_pos, turned, sph, rev).positions[right["ankle"]]
    shift = (1.0 + gain_position) * d + gain_velocity * (v - ref.root_lin_vel[k])
    shift[1] = 0.0
    assert np.allclose(placed, right["ref_ankle"][k] + shift, atol=2e-3), (placed, right["ref_ankle"][k] + shift)
    # the other leg keeps the reference's targets (not stance: its simulated foot is in the air)
    assert np.allclose(sph[left["hip_slot"]], ref.joint_rots[k][left["hip_slot"]])
