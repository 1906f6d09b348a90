"""Iterative learning control of the joint targets (``SimConfig.ilc_passes``): the offsets it
learns, and on real PyBullet that the learning passes cut the crouch of a loaded clip without
adding anything external."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sccl.correctors import build_corrector
from sccl.motion import quaternion as quat
from sccl.motion.deepmimic import bundled_motion_dir, read_clip
from sccl.simulators import HumanoidSim, SimConfig, SimulatorConfigError, ground_align
from sccl.simulators.humanoid import _learn_offsets, _offsets_at, joint_errors
from sccl.correctors.physics import crouch_mm


@pytest.fixture(scope="module")
def jump():
    """The first 1.5 s of jump: the legs carry the body through a crouch and a push-off, and the
    plain pass comes back ~40 mm lower above its feet than the reference."""
    clip = read_clip(bundled_motion_dir() / "humanoid3d_jump.txt").motion
    return ground_align(clip.slice(0, 45), "percentile", 10)[0]


def test_rotvec_round_trip_and_short_way():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(200, 3))
    v *= (rng.uniform(0, 3.1, size=(200, 1)) / np.linalg.norm(v, axis=-1, keepdims=True))
    assert np.allclose(quat.to_rotvec(quat.from_rotvec(v)), v, atol=1e-12)
    assert np.allclose(quat.to_rotvec(-quat.from_rotvec(v)), v, atol=1e-12)  # q and -q: one rotation
    assert np.array_equal(quat.to_rotvec(np.array([0.0, 0.0, 0.0, 1.0])), np.zeros(3))


def test_joint_errors_are_the_rotation_from_output_to_reference(jump):
    turn = np.array([0.1, -0.2, 0.05])
    output = jump.replace(joint_rots=quat.multiply(jump.joint_rots, quat.from_rotvec(-turn)),
                          joint_angles=jump.joint_angles - 0.3)
    err_s, err_r = joint_errors(jump, output)
    assert np.allclose(err_s, turn, atol=1e-9) and np.allclose(err_r, 0.3)
    same_s, same_r = joint_errors(jump, jump)
    assert np.abs(same_s).max() < 1e-9 and np.abs(same_r).max() == 0.0


def test_learned_offsets_accumulate_smooth_and_keep_unreached_frames():
    frames = 10
    err_s = np.zeros((6, 8, 3))
    err_s[3, 0, 0] = 0.5  # one noisy frame
    err_r = np.full((6, 4), 0.2)
    first = _learn_offsets(None, err_s, err_r, frames, gain=0.5, smooth=1)
    # smoothed over ±1 frame, then scaled by the gain; frames 6–9 (not reached: a fall) stay 0
    assert first[0][2:5, 0, 0] == pytest.approx([0.5 * 0.5 / 3] * 3)
    assert first[0][5:, 0, 0].tolist() == [0.0] * 5
    assert np.allclose(first[1][:6], 0.1) and np.all(first[1][6:] == 0.0)
    second = _learn_offsets(first, err_s, err_r, frames, gain=0.5, smooth=1)
    assert np.allclose(second[1][:6], 0.2)  # accumulated
    at = _offsets_at(second, fps=30.0, times=np.array([0.0, 1 / 60, 9 / 30]))
    assert at[1][:, 0] == pytest.approx([0.2, 0.2, 0.0])


def test_ilc_settings_are_checked():
    with pytest.raises(SimulatorConfigError, match="ilc_gain"):
        SimConfig.from_dict({"ilc_passes": 2, "ilc_gain": 0})
    with pytest.raises(SimulatorConfigError, match="ilc_passes"):
        SimConfig.from_dict({"ilc_passes": -1})


def test_learning_passes_cut_the_crouch_and_add_nothing_external(jump):
    """Real PyBullet, default legacy assist: three learning passes bring jump's joints closer to
    the reference and its root higher above its feet; the residual stays the assist's (no new
    external force), and the result says how many passes ran."""
    with HumanoidSim() as sim:
        plain = sim.track(jump)
    with HumanoidSim({"ilc_passes": 3, "ilc_gain": 0.5, "ilc_smooth_frames": 5}) as sim:
        learned = sim.track(jump)
    assert not plain.fell and not learned.fell
    assert learned.extra["ilc_passes_run"] == 4.0
    assert learned.extra["ilc_joint_error_deg"] < 0.9 * learned.extra["ilc_joint_error_first_deg"]
    assert "ilc_passes_run" not in plain.extra
    plain_crouch, learned_crouch = crouch_mm(jump, plain.motion), crouch_mm(jump, learned.motion)
    assert learned_crouch < 0.7 * plain_crouch, (plain_crouch, learned_crouch)
    assert learned.root_relative_error_mm < plain.root_relative_error_mm
    assert abs(learned.extra["residual_g"] - plain.extra["residual_g"]) < 0.15
    assert learned.total_seconds >= learned.step_seconds > plain.step_seconds


def test_the_corrector_reports_the_passes_per_sample(jump):
    corrector = build_corrector("physics", {"ilc_passes": 1})
    try:
        res = corrector.correct([jump.slice(0, 20)], seed=0)
    finally:
        corrector.close()
    diag = res.diagnostics[0]
    assert res.status[0] == "ok"
    assert diag["ilc_passes_run"] == 2.0 and math.isfinite(diag["ilc_joint_error_deg"])
    # Phys-Err's parts before and after, so added skating is visible per sample
    assert all(math.isfinite(diag[k]) for k in ("skate_before_mm", "skate_after_mm", "float_before_mm", "float_after_mm"))


def test_ilc_is_refused_where_there_are_no_pd_targets_to_learn():
    for mode in ("wbc", "sampling"):
        with pytest.raises(SimulatorConfigError, match=f"ilc_passes.*assist_mode={mode}"):
            SimConfig.from_dict({"assist_mode": mode, "ilc_passes": 1})
    SimConfig.from_dict({"assist_mode": "stance_ik", "ilc_passes": 1})
