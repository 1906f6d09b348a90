"""Real PyBullet: tracking, resets, falls, reference resampling, plausibility metrics."""

from __future__ import annotations

import numpy as np
import pytest

from motion import quaternion as quat
from motion.deepmimic import bundled_motion_dir, read_clip
from motion.kinematics import body_lowest_points, forward_kinematics
from simulators import HumanoidSim, SimConfig, SimulatorConfigError, ground_align, physics_metrics, resample


def bundled(name: str):
    return read_clip(bundled_motion_dir() / f"humanoid3d_{name}.txt").motion


@pytest.fixture(scope="module")
def sim():
    s = HumanoidSim()
    yield s
    s.close()


@pytest.fixture(scope="module")
def walk():
    return bundled("walk")


def test_walk_tracked_without_fall(sim, walk):
    aligned, _ = ground_align(walk, "percentile", 10)
    res = sim.track(aligned)
    assert not res.fell and not res.blew_up
    assert res.motion.num_frames == walk.num_frames and res.motion.fps == walk.fps
    assert res.root_relative_error_mm <= 60.0
    assert physics_metrics(res.motion)["penetrate_mm"] <= 5.0
    assert 0.0 < res.assist_fraction_g < 1.0


def test_reset_through_saved_state_is_deterministic(sim, walk):
    clip = walk.slice(0, 20)
    a = sim.track(clip)
    sim.track(bundled("run").slice(0, 10))  # something else in between
    b = sim.track(clip)
    assert a.motion.allclose(b.motion, atol=1e-9)


def test_pure_physics_floating_reference_falls(sim, walk):
    """A reference hanging 1.5 m up keeps every body clear; without assist the body drops."""
    cfg = HumanoidSim({"assist_cap_g": 0.0})
    try:
        up = walk.replace(root_pos=walk.root_pos + np.array([0.0, 1.5, 0.0]))
        res = cfg.track(up)
        assert res.fell and res.fall_reason in ("contact", "error")
        assert 0.0 < res.fall_time_s < 1.0
        # cut at the fall
        assert res.motion.num_frames <= int(round(res.fall_time_s * walk.fps)) + 1
    finally:
        cfg.close()


def test_resample_hits_frames_and_velocities(walk):
    dt = 1.0 / 120.0
    ref = resample(walk, dt)
    step = int(round(1.0 / walk.fps / dt))  # 4 samples per frame at 30 fps
    assert np.allclose(ref.root_pos[::step], walk.root_pos[: len(ref.root_pos[::step])], atol=1e-4)
    got = quat.canonical(ref.joint_rots[::step])
    assert np.allclose(got, quat.canonical(walk.joint_rots[: len(got)]), atol=1e-3)
    # velocities match finite differences of the interpolated trajectory
    k = len(ref.root_pos[::step]) - 1
    assert np.allclose(ref.root_lin_vel[::step][:k], np.diff(walk.root_pos, axis=0)[:k] * walk.fps, atol=1e-9)
    assert np.allclose(ref.joint_angle_vels[::step][:k], np.diff(walk.joint_angles, axis=0)[:k] * walk.fps, atol=1e-9)
    # inside a frame interval the velocity is that of the interpolation
    fd = (ref.root_pos[2] - ref.root_pos[1]) / dt
    assert np.allclose(fd, ref.root_lin_vel[1], atol=1e-9)


def test_ground_align_modes(walk):
    sunk = walk.replace(root_pos=walk.root_pos - np.array([0.0, 0.1, 0.0]))
    aligned, shift = ground_align(sunk, "min")
    assert shift == pytest.approx(0.1 - body_lowest_points(forward_kinematics(walk)).min(), abs=1e-9)
    assert body_lowest_points(forward_kinematics(aligned)).min() == pytest.approx(0.0, abs=1e-9)
    same, zero = ground_align(sunk, "none")
    assert zero == 0.0 and same is sunk


def test_physics_metrics_definitions(walk):
    aligned, _ = ground_align(walk, "min")
    base = physics_metrics(aligned)
    assert base["penetrate_mm"] == pytest.approx(0.0, abs=1e-6)
    floating = physics_metrics(aligned.replace(root_pos=aligned.root_pos + np.array([0.0, 0.2, 0.0])))
    lowest = body_lowest_points(forward_kinematics(aligned)).min(-1)
    assert floating["float_mm"] == pytest.approx(1000 * np.mean(lowest + 0.2 - 0.005), abs=1e-6)
    assert floating["skate_mm"] == 0.0  # no foot in contact
    sunk = physics_metrics(aligned.replace(root_pos=aligned.root_pos - np.array([0.0, 0.1, 0.0])))
    assert sunk["penetrate_mm"] == pytest.approx(1000 * np.mean(np.maximum(0, 0.1 - lowest)), abs=1e-6)
    rng = np.random.default_rng(0)
    noisy = aligned.replace(joint_angles=aligned.joint_angles + rng.normal(0, 0.1, aligned.joint_angles.shape))
    assert physics_metrics(noisy)["jitter"] > 2 * base["jitter"]
    for m in (base, floating, sunk):
        assert m["phys_err_mm"] == pytest.approx(m["penetrate_mm"] + m["float_mm"] + m["skate_mm"])


def test_config_errors():
    with pytest.raises(SimulatorConfigError, match="unknown simulator setting"):
        SimConfig.from_dict({"assist_capg": 0.3})
    with pytest.raises(SimulatorConfigError, match="physics_hz"):
        SimConfig.from_dict({"physics_hz": "fast"})
    with pytest.raises(SimulatorConfigError, match="control_hz"):
        SimConfig.from_dict({"physics_hz": 480, "control_hz": 100})
    assert SimConfig.from_dict({"self_collision": "true"}).self_collision is True
