"""Real PyBullet: the honest "sampling" mode (simulators.sampling) — no external force, rollouts
that leave the state as they found it, a search that beats plain tracking, bad input counted."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import hanging_pose

from sccl.correctors import build_corrector
from sccl.motion import quaternion as quat
from sccl.motion.kinematics import forward_kinematics_matrices
from sccl.motion.deepmimic import bundled_motion_dir, read_clip
from sccl.simulators import HumanoidSim, SimConfig, SimulatorConfigError, ground_align, resample
from sccl.simulators.sampling import SamplingPlanner

#: A small, fast budget: 6 candidates, two cross-entropy passes, 0.4 s rollouts every 0.1 s
#: (measured on walk's first 0.9 s: 90 mm mean body error against 204 mm for plain PD; one pass
#: with 0.2 s rollouts does worse than plain PD, 230 mm, so the horizon matters).
SMALL = {"assist_mode": "sampling", "sampling_candidates": 6, "sampling_iterations": 2,
         "sampling_horizon_s": 0.4, "sampling_window_s": 0.1}


def bundled(name: str):
    return read_clip(bundled_motion_dir() / f"humanoid3d_{name}.txt").motion


@pytest.fixture(scope="module")
def walk():
    return ground_align(bundled("walk"), "percentile", 10)[0]


def _body_positions(ref) -> np.ndarray:
    """(N, 15, 3) body-origin positions of a resampled reference, as the simulator gives its planner."""
    return forward_kinematics_matrices(ref.root_pos, quat.to_matrix(ref.root_rot), quat.to_matrix(ref.joint_rots),
                                       ref.joint_angles).positions


def _snapshot(sim: HumanoidSim) -> np.ndarray:
    p, body, cid = sim._p, sim.body, sim._cid
    pos, orn = p.getBasePositionAndOrientation(body, physicsClientId=cid)
    lin, ang = p.getBaseVelocity(body, physicsClientId=cid)
    states = p.getJointStatesMultiDof(body, sim._joints, physicsClientId=cid)
    flat = [x for s in states for part in (s[0], s[1]) for x in part]
    return np.array([*pos, *orn, *lin, *ang, *flat])


def test_plan_leaves_the_state_as_it_found_it(walk):
    s = HumanoidSim(SMALL)
    try:
        ref = resample(walk, 1.0 / s.config.control_hz)
        s.reset_to(ref, 0)
        for _ in range(5):  # a state with contacts and velocities, not the reset pose
            s._p.stepSimulation(physicsClientId=s._cid)
        before = _snapshot(s)
        planner = SamplingPlanner(s, ref, _body_positions(ref))
        base = s._layout(ref.joint_rots, ref.joint_angles)
        vel = s._layout(ref.joint_vels, ref.joint_angle_vels)
        planner.plan(0, base, vel)
        assert planner.rollouts == 12 and planner.rollout_steps > 0
        np.testing.assert_allclose(_snapshot(s), before, atol=1e-9)
        assert set(planner.committed) == set(range(1, planner.window + 1))
    finally:
        s.close()


def _plain_and(clip, settings: dict):
    """The clip tracked by plain stable PD without assist (at the sampling mode's damping) and
    by a simulator with ``settings``, both to the end."""
    plain, other = HumanoidSim({"assist_cap_g": 0.0, "damping_scale": 1.0}), HumanoidSim(settings)
    try:
        return plain.track(clip, early_stop=False), other.track(clip, early_stop=False)
    finally:
        plain.close()
        other.close()


def test_one_zero_candidate_is_plain_tracking(walk):
    """With one candidate and no warm start the committed offsets are zero: the result must be
    exactly pure stable-PD tracking without assist, i.e. the replay after restoreState is exact."""
    a, b = _plain_and(walk.slice(0, 12), {**SMALL, "sampling_candidates": 1})
    assert b.extra["sampling_rollouts"] > 0
    assert a.motion.allclose(b.motion, atol=1e-6)


def test_sampling_is_honest_and_tracks_better_than_plain_pd(walk):
    """Nothing but joint motors acts (assist and residual exactly 0), and the search keeps the
    body closer to the reference than plain PD tracking over the first 0.9 s of walk."""
    a, b = _plain_and(walk.slice(0, 27), SMALL)
    assert b.extra["assist_g"] == 0.0 and b.extra["residual_g"] == 0.0
    assert b.extra["sampling_rollouts"] >= 9 * 6 * 2
    assert b.tracking_error_mm < 0.8 * a.tracking_error_mm


def test_sampling_settings_are_checked():
    with pytest.raises(SimulatorConfigError, match="sampling_joints"):
        SimConfig.from_dict({"assist_mode": "sampling", "sampling_joints": "chest,tail"})
    with pytest.raises(SimulatorConfigError, match="sampling_horizon_s"):
        SimConfig.from_dict({"sampling_window_s": 0.2, "sampling_horizon_s": 0.1})
    with pytest.raises(SimulatorConfigError, match="sampling_candidates"):
        SimConfig.from_dict({"sampling_candidates": 0})


def test_exploding_clip_is_a_counted_failure_not_a_crash(walk):
    """A state beyond the simulator's range (|root| >= 1e4 m) is status "nan" for that sample
    only; the next clip in the batch is corrected as usual."""
    far = walk.slice(0, 10)
    far = far.replace(root_pos=far.root_pos + np.array([2e4, 0.0, 0.0]))
    corrector = build_corrector("physics", {**SMALL, "ground_align": "none"})
    try:
        res = corrector.correct([far, walk.slice(0, 6)], seed=0)
    finally:
        corrector.close()
    assert res.status[0] == "nan" and res.status[1] == "ok"


def test_non_finite_costs_fall_back_to_plain_tracking(walk):
    """Every rollout scoring non-finite (here: a reference with NaN body positions) is a counted
    bad window with zero offsets, never an exception."""
    s = HumanoidSim(SMALL)
    try:
        ref = resample(walk.slice(0, 8), 1.0 / s.config.control_hz)
        s.reset_to(ref, 0)
        nan_pos = np.full((ref.num_samples, 15, 3), math.nan)
        planner = SamplingPlanner(s, ref, nan_pos)
        base = s._layout(ref.joint_rots, ref.joint_angles)
        planner.plan(0, base, s._layout(ref.joint_vels, ref.joint_angle_vels))
        assert planner.bad_windows == 1
        assert planner.target(1, base) == base[1]  # zero offset: the reference's own target
    finally:
        s.close()


def test_restarts_retry_a_fall_and_count_the_attempts(walk):
    """A budget too small to keep walk up falls on every pass: each restart is one more pass,
    counted, and the pass that stood longest is returned."""
    clip = walk
    tiny = {**SMALL, "sampling_candidates": 2, "sampling_iterations": 1, "sampling_horizon_s": 0.1}
    one = HumanoidSim({**tiny, "sampling_restarts": 0})
    three = HumanoidSim({**tiny, "sampling_restarts": 2})
    try:
        a = one.track(clip)
        b = three.track(clip)
    finally:
        one.close()
        three.close()
    assert a.fell and a.extra["sampling_attempts"] == 1.0
    assert b.fell and b.extra["sampling_attempts"] == 3.0
    assert b.fall_time_s >= a.fall_time_s  # the first pass is the same seed, so never worse
    assert b.total_seconds > a.total_seconds


def test_a_residual_budget_holds_the_rollouts_too_and_is_all_residual(walk):
    """With ``sampling_assist_cap_g`` the capped root constraint acts in the rollouts as in the
    committed pass: a hanging body is held, no window's rollouts all fall, and the whole weight is
    reported as residual. Off in flight, the same body falls in the rollouts and in the pass."""
    clip = hanging_pose(walk, 24)
    tiny = {**SMALL, "sampling_candidates": 2, "sampling_iterations": 1, "sampling_horizon_s": 0.2,
            "sampling_restarts": 0, "sampling_assist_cap_g": 1.5}
    with HumanoidSim(tiny) as held, HumanoidSim({**tiny, "assist_in_flight": False}) as dropped:
        a = held.track(clip)
        b = dropped.track(clip)
    assert not a.fell and np.abs(a.motion.root_pos[:, 1] - 2.0).max() < 0.02
    assert a.extra["sampling_all_fell_windows"] == 0.0 and a.extra["sampling_rollouts"] > 0
    assert a.extra["residual_force_g"] == pytest.approx(1.0, abs=0.1)
    assert a.extra["residual_flight_share"] == pytest.approx(1.0)
    # (the first step is assisted: before any contact query the reference counts as grounded)
    assert b.fell and b.extra["sampling_all_fell_windows"] > 0 and b.extra["residual_g"] < 0.05


def test_a_residual_budget_is_capped_and_checked(walk):
    """On walk the budget's residual force and torque stay within its cap, and a negative budget is refused."""
    with HumanoidSim({**SMALL, "sampling_assist_cap_g": 0.05}) as sim:
        res = sim.track(walk.slice(0, 27), early_stop=False)
    # the engine caps each of the constraint's axes (force in N, torque in N·m, i.e. per 1 m of
    # lever), so force and torque vectors stay within √3 × the cap, the wrench within √6 × it
    bound = math.sqrt(3.0) * 0.05 + 1e-6
    assert 0.0 < res.extra["residual_force_g"] <= bound
    assert 0.0 < res.extra["residual_torque_g"] <= bound
    assert res.extra["residual_g"] <= math.sqrt(2.0) * bound
    with pytest.raises(SimulatorConfigError, match="sampling_assist_cap_g"):
        SimConfig.from_dict({"sampling_assist_cap_g": -0.1})


def test_the_pose_term_charges_a_bent_joint_only_when_set(walk):
    """``sampling_pose_scale_m`` adds the root-relative body error to a rollout's cost: a body in
    the reference pose costs the same with or without it, the same body with a knee bent by 0.8 rad
    costs more with it; the setting is checked."""
    costs = []
    for scale in (0.0, 0.05):
        with HumanoidSim({**SMALL, "sampling_pose_scale_m": scale}) as s:
            ref = resample(walk, 1.0 / s.config.control_hz)
            planner = SamplingPlanner(s, ref, _body_positions(ref))
            s.reset_to(ref, 0)
            at_ref = planner._cost(0)
            knee = s._rev_idx[0]
            s._p.resetJointState(s.body, knee, float(ref.joint_angles[0, 0]) - 0.8, physicsClientId=s._cid)
            costs.append((at_ref, planner._cost(0)))
    (ref0, bent0), (ref1, bent1) = costs
    assert ref1 == pytest.approx(ref0, abs=1e-3)
    # the knee moves the shin and foot ~2 cm on average over the 15 bodies: (0.02 / 0.05)² ≈ 0.18
    # on top of the global body-error term, which alone barely sees it, (0.02 / 0.1)² ≈ 0.04
    assert bent1 - ref1 > 3.0 * (bent0 - ref0) > 0.0
    with pytest.raises(SimulatorConfigError, match="sampling_pose_scale_m"):
        SimConfig.from_dict({"sampling_pose_scale_m": -1.0})


def test_priced_offsets_pull_the_search_back_to_the_clip(walk):
    """``sampling_offset_scale_rad`` charges (RMS offset / scale)² at every checkpoint: zero
    offsets cost nothing, and at a prohibitive price the plain-tracking candidate (zero offsets)
    wins, so the committed targets are the reference's own."""
    with HumanoidSim({**SMALL, "sampling_iterations": 1, "sampling_offset_scale_rad": 1e-4}) as s:
        ref = resample(walk, 1.0 / s.config.control_hz)
        planner = SamplingPlanner(s, ref, _body_positions(ref))
        assert planner._offset_cost(np.zeros(planner.dim)) == 0.0
        assert planner._offset_cost(np.full(planner.dim, 1e-4)) == pytest.approx(planner.checkpoint_weight)
        s.reset_to(ref, 0)
        base = s._layout(ref.joint_rots, ref.joint_angles)
        planner.plan(0, base, s._layout(ref.joint_vels, ref.joint_angle_vels))
        assert all(planner.target(k, base) == base[k] for k in range(1, planner.window + 1))
    with pytest.raises(SimulatorConfigError, match="sampling_offset_scale_rad"):
        SimConfig.from_dict({"sampling_offset_scale_rad": math.inf})


def test_an_accepted_mean_skips_the_search_and_a_fallen_one_never_is(walk):
    """``sampling_accept_cost``: a window whose warm-started mean tracks below the bound is
    committed after that one rollout, with the mean's own targets; over a clip that means fewer
    rollouts. A mean whose rollout falls is never accepted, whatever the bound (a hanging body:
    every rollout falls)."""
    with HumanoidSim({**SMALL, "sampling_accept_cost": 1e3}) as s:
        ref = resample(walk, 1.0 / s.config.control_hz)
        planner = SamplingPlanner(s, ref, _body_positions(ref))
        planner.mean = np.full(planner.dim, 0.01)
        s.reset_to(ref, 0)
        base = s._layout(ref.joint_rots, ref.joint_angles)
        expected = planner._targets(planner.mean, 0, planner.window, base)
        planner.plan(0, base, s._layout(ref.joint_vels, ref.joint_angle_vels))
        assert planner.rollouts == 1 and planner.accepted_windows == 1
        assert [planner.target(k, base) for k in range(1, planner.window + 1)] == expected
    clip = walk.slice(0, 27)
    with HumanoidSim({**SMALL, "sampling_restarts": 0}) as s:
        searched = s.track(clip, early_stop=False)
    with HumanoidSim({**SMALL, "sampling_restarts": 0, "sampling_accept_cost": 1e3}) as s:
        accepted = s.track(clip, early_stop=False)
    assert searched.extra["sampling_accepted_share"] == 0.0
    assert accepted.extra["sampling_accepted_share"] > 0.25
    assert accepted.extra["sampling_rollouts"] < 0.75 * searched.extra["sampling_rollouts"]
    assert accepted.extra["residual_g"] == 0.0
    with HumanoidSim({**SMALL, "sampling_restarts": 0, "sampling_accept_cost": 1e3}) as s:
        res = s.track(hanging_pose(walk, 24))
    assert res.fell and res.extra["sampling_accepted_share"] == 0.0 and res.extra["sampling_all_fell_windows"] > 0
    with pytest.raises(SimulatorConfigError, match="sampling_accept_cost"):
        SimConfig.from_dict({"sampling_accept_cost": -1.0})


def test_restarts_reseed_only_when_asked(walk):
    """``sampling_restart_reseed``: each restart draws its candidates from seed + attempt instead of
    the same seed, so a clip that falls on every pass is retried with different candidates."""
    tiny = {**SMALL, "sampling_candidates": 2, "sampling_iterations": 1, "sampling_horizon_s": 0.1,
            "sampling_restarts": 2}
    seen: dict[bool, list[int]] = {}
    for reseed in (False, True):
        with HumanoidSim({**tiny, "sampling_restart_reseed": reseed, "sampling_seed": 5}) as s:
            once = s._track_once
            seeds: list[int] = []

            def spy(*args, seed, **kw):
                seeds.append(seed)
                return once(*args, seed=seed, **kw)

            s._track_once = spy
            res = s.track(walk)
        assert res.fell and res.extra["sampling_attempts"] == 3.0
        seen[reseed] = seeds
    assert seen == {False: [5, 5, 5], True: [5, 6, 7]}


def test_the_yaw_rate_term_charges_turning_only_when_set(walk):
    """``sampling_yaw_rate_scale`` adds (yaw-rate error / scale)² to a checkpoint's cost: a body
    turning at 1 rad/s more than the reference about the vertical costs 1/scale² more with it, and
    the same turn about a horizontal axis costs nothing extra."""
    extra = {}
    for scale in (0.0, 0.5):
        with HumanoidSim({**SMALL, "sampling_yaw_rate_scale": scale}) as s:
            ref = resample(walk, 1.0 / s.config.control_hz)
            planner = SamplingPlanner(s, ref, _body_positions(ref))
            s.reset_to(ref, 0)
            lin, ang = s._p.getBaseVelocity(s.body, physicsClientId=s._cid)
            costs = []
            for axis in (1, 0):
                turned = np.array(ang, dtype=float)
                turned[axis] += 1.0
                s._p.resetBaseVelocity(s.body, lin, turned.tolist(), physicsClientId=s._cid)
                costs.append(planner._cost(0))
            extra[scale] = costs
    (yaw0, roll0), (yaw1, roll1) = extra[0.0], extra[0.5]
    assert yaw1 - yaw0 == pytest.approx(1.0 / 0.5 ** 2, rel=0.05)
    assert roll1 == pytest.approx(roll0, abs=1e-6)
    with pytest.raises(SimulatorConfigError, match="sampling_yaw_rate_scale"):
        SimConfig.from_dict({"sampling_yaw_rate_scale": math.nan})


def test_a_ramp_moves_the_targets_smoothly_from_the_last_window(walk):
    """``sampling_ramp_s``: a window's offsets start where the last committed window's ended and
    reach the chosen ones after the ramp, instead of jumping at the boundary. Off (0), they jump."""
    for ramp_s in (0.0, 0.05):
        with HumanoidSim({**SMALL, "sampling_candidates": 1, "sampling_iterations": 1,
                          "sampling_ramp_s": ramp_s}) as s:
            ref = resample(walk, 1.0 / s.config.control_hz)
            planner = SamplingPlanner(s, ref, _body_positions(ref))
            planner.mean = np.full(planner.dim, 0.1)  # the only candidate: committed whatever it costs
            s.reset_to(ref, 0)
            base = s._layout(ref.joint_rots, ref.joint_angles)
            planner.plan(0, base, s._layout(ref.joint_vels, ref.joint_angle_vels))
            slot, j = planner.rev_slots[0], planner.rev[0]
            knee = np.array([planner.target(k, base)[slot][0] - ref.joint_angles[k, j]
                             for k in range(1, planner.window + 1)])
            ramp = int(round(ramp_s * s.config.control_hz))
            if ramp:
                expected = 0.1 * np.minimum(1.0, np.arange(1, planner.window + 1) / ramp)
                assert knee == pytest.approx(expected, abs=1e-9)
                assert ramp < planner.window and knee[0] == pytest.approx(0.1 / ramp)
            else:
                assert knee == pytest.approx(np.full(planner.window, 0.1), abs=1e-9)
            assert planner.committed_offsets == pytest.approx(np.full(planner.dim, 0.1))
    with pytest.raises(SimulatorConfigError, match="sampling_ramp_s"):
        SimConfig.from_dict({"sampling_ramp_s": -0.1})


def test_coarse_rollouts_leave_the_committed_physics_rate_alone(walk):
    """``sampling_rollout_substeps``: the rollouts run at fewer physics sub-steps per control step
    (cheaper), and the committed pass afterwards steps exactly as a body that never planned: the
    state and the engine's sub-step count are both restored. Coarse rollouts see different
    physics, so the plan itself may differ."""
    after = []
    for substeps, plan in ((0, False), (2, True)):
        with HumanoidSim({**SMALL, "sampling_rollout_substeps": substeps}) as s:
            ref = resample(walk, 1.0 / s.config.control_hz)
            s.reset_to(ref, 0)
            for _ in range(5):
                s._p.stepSimulation(physicsClientId=s._cid)
            if plan:
                planner = SamplingPlanner(s, ref, _body_positions(ref))
                assert planner.rollout_substeps == 2 and s._substeps == 4
                planner.plan(0, s._layout(ref.joint_rots, ref.joint_angles),
                             s._layout(ref.joint_vels, ref.joint_angle_vels))
                assert planner.rollouts > 0
            for _ in range(3):
                s._p.stepSimulation(physicsClientId=s._cid)
            after.append(_snapshot(s))
    np.testing.assert_allclose(after[1], after[0], atol=1e-9)
    with pytest.raises(SimulatorConfigError, match="sampling_rollout_substeps"):
        SimConfig.from_dict({"sampling_rollout_substeps": -1})


def test_rollouts_use_the_committed_pass_swing_damping(walk):
    """``swing_damping_scale`` changes the leg gains with the reference's stance; a rollout must use
    the gains the committed pass will use at the same step, or it plans for another body. Zero
    offsets rolled out for 0.4 s from the first frame land exactly where plain tracking under the
    same schedule is at that time, and the schedule itself moves that body."""
    clip = walk.slice(0, 16)  # 0.5 s: the right foot lifts within the first 0.4 s
    plain = {}
    for key, extra in (("swing", {"swing_damping_scale": 1.0}), ("off", {})):
        sim = HumanoidSim({"assist_cap_g": 0.0, "damping_scale": 0.1, **extra})
        try:
            plain[key] = sim.track(clip, early_stop=False)
        finally:
            sim.close()
    s = HumanoidSim({**SMALL, "damping_scale": 0.1, "swing_damping_scale": 1.0})
    try:
        ref = resample(clip, 1.0 / s.config.control_hz)
        s._kd_schedule = s._swing_damping_schedule(ref)  # as each tracking pass sets it
        assert len({tuple(kds) for kds in s._kd_schedule[:48]}) >= 2  # the gains do change in the horizon
        s.reset_to(ref, 0)
        planner = SamplingPlanner(s, ref, _body_positions(ref))
        assert planner.horizon == 48  # 0.4 s at 120 Hz: frame 12 of the 30 fps clip
        base = s._layout(ref.joint_rots, ref.joint_angles)
        vel = s._layout(ref.joint_vels, ref.joint_angle_vels)
        planner._rollout(np.zeros(planner.dim), 0, base, vel, math.inf)
        rolled = np.array(s._p.getBasePositionAndOrientation(s.body, physicsClientId=s._cid)[0])
    finally:
        s.close()
    np.testing.assert_allclose(rolled, plain["swing"].motion.root_pos[12], atol=1e-9)
    assert np.abs(plain["off"].motion.root_pos[12] - rolled).max() > 1e-4
