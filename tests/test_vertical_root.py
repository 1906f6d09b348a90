"""``assist_mode="vertical_root"``: the legacy root constraint without its horizontal force.
On real PyBullet: a hanging body is held at the reference height and its full weight is
reported as residual; the carriage does not drag it sideways; walk needs far less residual
than with the legacy constraint; the fall check ignores horizontal drift only in this mode."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import hanging_pose

from sccl.motion.deepmimic import bundled_motion_dir, read_clip
from sccl.motion.kinematics import body_lowest_points, forward_kinematics
from sccl.motion.skeleton import FOOT_BODIES, load_skeleton
from sccl.simulators import HumanoidSim, SimConfig, ground_align
from sccl.simulators.humanoid import fall_check


@pytest.fixture(scope="module")
def walk():
    clip = read_clip(bundled_motion_dir() / "humanoid3d_walk.txt").motion
    return ground_align(clip, "percentile", 5.0)[0]


@pytest.fixture(scope="module")
def sims():
    out = {mode: HumanoidSim(SimConfig(assist_mode=mode, assist_cap_g=2.0)) for mode in ("legacy_root", "vertical_root")}
    yield out
    for sim in out.values():
        sim.close()


def test_a_hanging_body_is_held_and_its_weight_is_residual(walk, sims):
    clip = hanging_pose(walk, 30)
    res = sims["vertical_root"].track(clip)
    assert not res.fell
    assert np.abs(res.motion.root_pos[:, 1] - 2.0).max() < 0.01
    # nothing touches the body, so the carriage carries all of its weight: all residual
    assert res.extra["residual_force_g"] == pytest.approx(1.0, abs=0.1)
    assert res.extra["residual_flight_share"] == pytest.approx(1.0)


def test_the_carriage_does_not_drag_the_body_sideways(walk, sims):
    clip = hanging_pose(walk, 30, accel_x=2.0)  # the reference moves ~0.94 m in 0.97 s from rest
    dragged = sims["legacy_root"].track(clip).motion.root_pos
    free = sims["vertical_root"].track(clip).motion.root_pos
    assert dragged[-1, 0] == pytest.approx(clip.root_pos[-1, 0], abs=0.1)
    assert abs(free[-1, 0] - free[0, 0]) < 0.05
    assert np.abs(free[:, 1] - 2.0).max() < 0.01


def test_walk_needs_far_less_residual_without_the_horizontal_force(walk):
    with HumanoidSim(SimConfig()) as legacy, HumanoidSim(SimConfig(assist_mode="vertical_root")) as vertical:
        a, b = legacy.track(walk), vertical.track(walk)
    assert not a.fell and not b.fell
    assert b.extra["residual_g"] < 0.5 * a.extra["residual_g"], (a.extra["residual_g"], b.extra["residual_g"])
    assert b.root_relative_error_mm < 30.0


def test_fall_check_ignores_horizontal_drift_only_in_this_mode(walk):
    kin = forward_kinematics(walk)
    low = body_lowest_points(kin)
    feet = [load_skeleton().index(n) for n in FOOT_BODIES]
    sideways = kin.positions + np.array([1.0, 0.0, 0.0])
    down = kin.positions - np.array([0.0, 0.6, 0.0])
    for mode, expected in (("legacy_root", "error"), ("vertical_root", None)):
        cfg = SimConfig(assist_mode=mode)
        found = fall_check(sideways, low, kin.positions, low, feet, cfg)
        assert (found[0] if found else None) == expected, mode
        assert fall_check(down, low + 0.0, kin.positions, low, feet, cfg)[0] == "error", mode
