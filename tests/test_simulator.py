"""Real PyBullet: tracking, resets, falls, reference resampling, plausibility metrics."""

from __future__ import annotations

import numpy as np
import pytest

from sccl.motion import quaternion as quat
from sccl.motion.deepmimic import bundled_motion_dir, read_clip
from sccl.motion.kinematics import body_lowest_points, forward_kinematics
from sccl.motion.skeleton import FOOT_BODIES, load_skeleton
from sccl.simulators import (
    HumanoidSim, SimConfig, SimulatorConfigError, flight_metrics, ground_align, physics_metrics,
    project_on_contact_cone, resample,
)
from sccl.simulators.contact import cone_edges, constraint_wrench_world
from sccl.simulators.humanoid import DEEPMIMIC_KD
from sccl.simulators.plausibility import vertical_support_g


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


def test_skate_split_sliding_and_hovering(walk):
    """A frozen pose dragged along the floor slides; the same drag 1 cm up only hovers in the
    contact band; 3 cm up it is out of the band and no skate is counted at all."""
    frames = 20
    identity = np.array([0.0, 0.0, 0.0, 1.0])
    still = walk.slice(0, frames).replace(  # standing straight, every joint at zero
        root_pos=np.tile([0.0, 1.0, 0.0], (frames, 1)), root_rot=np.tile(identity, (frames, 1)),
        joint_rots=np.tile(identity, (frames, 8, 1)), joint_angles=np.zeros((frames, 4)))
    on_floor, _ = ground_align(still, "min")
    drag = np.zeros((frames, 3))
    drag[:, 0] = np.arange(frames) * 0.01  # 10 mm per frame
    feet_down = body_lowest_points(forward_kinematics(on_floor))[0, [load_skeleton().index(n) for n in FOOT_BODIES]]
    assert (feet_down < 0.005).all(), "the test pose needs both feet on the floor"
    sliding = physics_metrics(on_floor.replace(root_pos=on_floor.root_pos + drag))
    assert sliding["skate_mm"] == pytest.approx(20.0, abs=1e-6)  # two feet × 10 mm per frame pair
    assert sliding["skate_sliding_mm"] == pytest.approx(20.0, abs=1e-6)
    assert sliding["skate_hovering_mm"] == pytest.approx(0.0, abs=1e-6)
    lifted = on_floor.root_pos + drag + np.array([0.0, 0.01, 0.0])
    hovering = physics_metrics(on_floor.replace(root_pos=lifted))
    assert hovering["skate_mm"] == pytest.approx(20.0, abs=1e-6)
    assert hovering["skate_sliding_mm"] == 0.0
    assert hovering["skate_hovering_mm"] == pytest.approx(20.0, abs=1e-6)
    clear = physics_metrics(on_floor.replace(root_pos=lifted + np.array([0.0, 0.02, 0.0])))
    assert clear["skate_mm"] == clear["skate_sliding_mm"] == clear["skate_hovering_mm"] == 0.0


def test_config_errors():
    with pytest.raises(SimulatorConfigError, match="unknown simulator setting"):
        SimConfig.from_dict({"assist_capg": 0.3})
    with pytest.raises(SimulatorConfigError, match="physics_hz"):
        SimConfig.from_dict({"physics_hz": "fast"})
    with pytest.raises(SimulatorConfigError, match="control_hz"):
        SimConfig.from_dict({"physics_hz": 480, "control_hz": 100})
    assert SimConfig.from_dict({"self_collision": "true"}).self_collision is True


# ---------------------------------------------------------------- contact-consistency accounting
def _square(half: float = 0.1, y: float = -1.0) -> np.ndarray:
    """Four contact points of a 20 cm square footprint, 1 m below the reference point."""
    return np.array([[sx * half, y, sz * half] for sx in (-1, 1) for sz in (-1, 1)], dtype=np.float64)


def test_projection_accepts_support_and_rejects_what_contacts_cannot_do():
    edges = cone_edges(0.9)
    up = np.array([0.0, 400.0, 0.0, 0.0, 0.0, 0.0])
    _, res = project_on_contact_cone(up, _square(), edges)
    assert np.linalg.norm(res) < 1e-6  # weight borne by the feet: fully explained
    # the same force with its centre of pressure 0.5 m outside the 10 cm half-width footprint
    tipped = up + np.array([0.0, 0.0, 0.0, 0.0, 0.0, 400.0 * 0.5])
    real, res = project_on_contact_cone(tipped, _square(), edges)
    assert np.allclose(real + res, tipped)
    assert np.linalg.norm(res) > 50.0
    # a pull downward: the ground cannot pull
    _, res = project_on_contact_cone(-up, _square(), edges)
    assert np.allclose(res, -up, atol=1e-6)
    # sideways force beyond friction: only the part outside the cone remains
    side = np.array([300.0, 100.0, 0.0, 0.0, 0.0, 0.0])
    _, res = project_on_contact_cone(side, np.zeros((1, 3)), edges)
    assert 0.0 < np.linalg.norm(res[:3]) < 300.0
    # no contact (flight): everything is residual
    _, res = project_on_contact_cone(up, np.zeros((0, 3)), edges)
    assert np.allclose(res, up)


def test_constraint_torque_is_read_in_world_axes():
    """An external world-frame torque held by the assist constraint (gravity off, base tilted and
    turned) must come back as the opposite torque in world axes."""
    s = HumanoidSim()
    p, cid, body = s._p, s._cid, s.body
    try:
        p.setGravity(0, 0, 0, physicsClientId=cid)
        orn = list(p.getQuaternionFromEuler([0.3, 0.0, 1.2]))
        p.resetBasePositionAndOrientation(body, [0, 2.0, 0], orn, physicsClientId=cid)
        c = p.createConstraint(body, -1, -1, -1, p.JOINT_FIXED, [0, 0, 0], [0, 0, 0], [0, 2.0, 0],
                               childFrameOrientation=orn, physicsClientId=cid)
        p.changeConstraint(c, [0, 2.0, 0], orn, maxForce=1e5, physicsClientId=cid)
        baseline = None
        for torque in ([0.0, 0.0, 0.0], [50.0, 0.0, 0.0]):
            for _ in range(3):
                p.applyExternalTorque(body, -1, torque, p.WORLD_FRAME, physicsClientId=cid)
                p.stepSimulation(physicsClientId=cid)
            w = constraint_wrench_world(p.getConstraintState(c, physicsClientId=cid),
                                        p.getBasePositionAndOrientation(body, physicsClientId=cid)[1])
            if baseline is None:
                baseline = w
        held = w[3:] - baseline[3:]
        assert np.allclose(held, [-50.0, 0.0, 0.0], atol=5.0), held
    finally:
        s.close()


def test_walk_reports_residual(sim, walk):
    res = sim.track(ground_align(walk.slice(0, 30), "percentile", 10)[0])
    e = res.extra
    assert 0.0 < e["residual_g"] <= e["assist_g"] + 1e-9
    assert e["residual_flight_share"] == 0.0 and e["sim_airborne_share"] == 0.0
    assert 0.0 <= e["contact_violation_share"] <= 1.0


def test_assist_in_flight_off_drops_a_hanging_body(walk):
    """A reference 1.5 m up, 0.4 s long: with the legacy assist all its help is in flight (residual share 1);
    with assist_in_flight off the assist stops after the first step."""
    up = walk.slice(0, 12).replace(root_pos=walk.root_pos[:12] + np.array([0.0, 1.5, 0.0]))  # 0.4 s: still in the air
    legacy = HumanoidSim()
    honest = HumanoidSim({"assist_in_flight": False})
    try:
        a = legacy.track(up, early_stop=False).extra
        b = honest.track(up, early_stop=False).extra
    finally:
        legacy.close()
        honest.close()
    assert a["sim_airborne_share"] == 1.0 and a["residual_flight_share"] == pytest.approx(1.0)
    assert a["residual_g"] == pytest.approx(a["assist_g"])
    assert b["assist_g"] < 0.1 * a["assist_g"]


def test_flight_metrics_ballistic_vs_hovering(walk):
    frame = ground_align(walk.slice(0, 1), "min")[0]
    n, fps = 16, 30.0
    t = np.arange(n) / fps
    lift = 0.3 + 3.0 * t - 0.5 * 9.8 * t ** 2  # 0.5 s, never lower than at the start (0.3 m)

    def clip(heights):
        return walk.slice(0, n).replace(root_pos=frame.root_pos[0] + np.outer(heights, [0.0, 1.0, 0.0]),
                                        root_rot=np.repeat(frame.root_rot, n, 0),
                                        joint_rots=np.repeat(frame.joint_rots, n, 0),
                                        joint_angles=np.repeat(frame.joint_angles, n, 0))
    ballistic = flight_metrics(clip(lift))
    assert ballistic["airborne_share"] == 1.0 and ballistic["flight_unexplained_g"] < 1e-3
    hover = flight_metrics(clip(np.full(n, 0.3)))
    # clear of the floor but held up: not airborne, and the flight check still sees the hover
    assert hover["airborne_share"] == 0.0 and hover["flight_unexplained_g"] == pytest.approx(1.0)
    floating_feet = flight_metrics(clip(np.full(n, 0.04)))  # mocap's feet a few cm above the floor
    assert floating_feet["airborne_share"] == 0.0
    single = frame.replace(root_pos=frame.root_pos + [0.0, 0.3, 0.0])  # too short to differentiate
    assert flight_metrics(single)["airborne_share"] == 1.0
    assert np.isnan(flight_metrics(single)["flight_unexplained_g"])


def test_vertical_support_free_fall_and_standing():
    fps = 30.0
    t = np.arange(12) / fps
    assert np.allclose(vertical_support_g(1.0 + 2.0 * t - 0.5 * 9.8 * t ** 2, fps), 0.0, atol=1e-9)
    assert np.allclose(vertical_support_g(np.full(12, 1.0), fps), 1.0)
    assert np.allclose(vertical_support_g(1.0 - 0.5 * 9.8 * t[:4] ** 2, fps), 0.0, atol=1e-9)  # ±1 frame
    assert np.isnan(vertical_support_g(np.ones(2), fps)).all()


@pytest.mark.parametrize("name, low, high", [("jump", 0.15, 0.35), ("run", 0.20, 0.45), ("walk", 0.0, 0.0)])
def test_airborne_share_of_bundled_mocap_is_plausible(name, low, high):
    """Mocap feet float a few cm while they push (jump: 41 %, run: 88 % of frames clear of the
    floor); only frames that are clear *and* in free fall count as airborne."""
    aligned, _ = ground_align(bundled(name), "percentile", 10)
    assert low <= flight_metrics(aligned)["airborne_share"] <= high


def test_contact_mode_applies_only_contact_forces(walk):
    """The "contact" assist acts through the ground only: it helps (assist > 0) and every bit of
    it is explained by friction-cone forces at points in contact (residual ~ 0)."""
    s = HumanoidSim({"assist_mode": "contact"})
    try:
        res = s.track(ground_align(walk.slice(0, 15), "percentile", 10)[0])
    finally:
        s.close()
    assert res.extra["assist_g"] > 0.05
    assert res.extra["residual_g"] < 1e-3 * res.extra["assist_g"] + 1e-6
    with pytest.raises(SimulatorConfigError, match="assist_mode"):
        SimConfig.from_dict({"assist_mode": "magic"})


def _held_horizontal(sim: HumanoidSim, seconds: float = 3.0):
    """The body lying face-down in the air, its root held by a stiff constraint, every joint
    tracking the zero pose: each joint holds its subtree's weight on a horizontal lever."""
    import pybullet as p

    cid, body = sim._cid, sim.body
    p.restoreState(sim._state, physicsClientId=cid)
    q = p.getQuaternionFromEuler([np.pi / 2, 0.0, 0.0])
    p.resetBasePositionAndOrientation(body, [0, 2, 0], q, physicsClientId=cid)
    hold = p.createConstraint(body, -1, -1, -1, p.JOINT_FIXED, [0, 0, 0], [0, 0, 0], [0, 2, 0], physicsClientId=cid)
    p.changeConstraint(hold, [0, 2, 0], q, maxForce=1e6, physicsClientId=cid)
    targets = [[0, 0, 0, 1] if kind == "s" else [0.0] for kind, _ in sim._slots]
    speeds = [[0, 0, 0] if kind == "s" else [0.0] for kind, _ in sim._slots]
    for _ in range(int(seconds * sim.config.control_hz)):
        p.setJointMotorControlMultiDofArray(body, sim._joints, p.STABLE_PD_CONTROL, targetPositions=targets,
                                            targetVelocities=speeds, forces=sim._forces, positionGains=sim._kps,
                                            velocityGains=sim._kds, physicsClientId=cid)
        p.stepSimulation(physicsClientId=cid)
    states = p.getJointStatesMultiDof(body, sim._joints, physicsClientId=cid)
    p.removeConstraint(hold, physicsClientId=cid)
    return states


def _gravity_torque(sim: HumanoidSim, joint: int) -> float:
    """Largest per-axis component (in the joint's child frame) of the torque of gravity on the
    subtree below `joint` about the joint's origin, from link masses: what the joint must hold."""
    import pybullet as p

    cid, body = sim._cid, sim.body
    parents = {j: p.getJointInfo(body, j, physicsClientId=cid)[16]
               for j in range(p.getNumJoints(body, physicsClientId=cid))}
    subtree, grew = {joint}, True
    while grew:
        new = {j for j, parent in parents.items() if parent in subtree} - subtree
        subtree |= new
        grew = bool(new)
    origin = np.asarray(p.getLinkState(body, joint, physicsClientId=cid)[4])
    torque = np.zeros(3)
    for j in subtree:
        mass = p.getDynamicsInfo(body, j, physicsClientId=cid)[0]
        com = np.asarray(p.getLinkState(body, j, physicsClientId=cid)[0])
        torque += np.cross(com - origin, [0.0, -9.8 * mass, 0.0])
    frame = np.asarray(p.getMatrixFromQuaternion(p.getLinkState(body, joint, physicsClientId=cid)[5])).reshape(3, 3)
    return float(np.abs(frame.T @ torque).max())


def test_peak_torque_ratio_matches_static_gravity_torque():
    """Stable PD reports no motor torque; the joint sensors' wrench moved to the joint origin does,
    and holding a leg horizontal takes exactly its weight times its lever."""
    sim = HumanoidSim()
    try:
        states = _held_horizontal(sim)
        ratios = sim.joint_torque_ratios(states)
        expected = np.array([_gravity_torque(sim, j) for j in sim._joints]) / sim._limits
    finally:
        sim.close()
    names = [load_skeleton().body_names[j] for j in sim._joints]
    for name in ("chest", "neck", "right_hip", "left_hip", "right_shoulder", "left_shoulder"):
        i = names.index(name)
        assert expected[i] > 0.02 and ratios[i] == pytest.approx(expected[i], rel=0.03), name


def test_peak_torque_ratio_saturates_at_the_limit(walk):
    weak = HumanoidSim({"torque_scale": 0.05})  # hip limit 10 N·m, far below the leg's ~35 N·m
    try:
        states = _held_horizontal(weak)
        assert weak._torque_ratio(states) == pytest.approx(1.0, abs=0.05)
    finally:
        weak.close()
    sim = HumanoidSim()
    try:
        res = sim.track(ground_align(walk, "percentile", 10)[0])
    finally:
        sim.close()
    assert 0.05 < res.extra["peak_torque_ratio"] <= 1.05
    blind = HumanoidSim({"joint_torques": False})
    try:
        assert np.isnan(blind.track(ground_align(walk, "percentile", 10)[0]).extra["peak_torque_ratio"])
    finally:
        blind.close()


def test_default_damping_stops_the_assisted_body_sagging():
    """With DeepMimic's full stable-PD damping the legs push far less than their stiffness asks,
    and under the root assist the punch's body sinks and drifts from the reference; the
    legacy mode's default (kd x 0.1) follows it. The honest joint-level modes keep full kd."""
    punch = ground_align(bundled("punch"), "percentile", 10)[0]
    errors = {}
    for scale in (None, 1.0):
        sim = HumanoidSim({"damping_scale": scale} if scale else {})
        try:
            res = sim.track(punch)
        finally:
            sim.close()
        assert not res.fell
        errors[scale] = res.root_relative_error_mm
    assert errors[None] < 60.0 < 100.0 < errors[1.0], errors
    sampling = HumanoidSim({"assist_mode": "sampling"})
    try:
        names = load_skeleton().body_names
        gains = dict(zip((names[j] for j in sampling._joints), sampling._kds))
        assert gains == {n: DEEPMIMIC_KD[n] for n in gains}
    finally:
        sampling.close()


def test_per_joint_damping_overrides_the_scale_joint_by_joint(walk):
    """``damping_joint_scales`` replaces ``damping_scale`` on the named joints only: naming every
    joint with the same scale steps exactly as the plain setting does, while a group changes the
    gains of its own joints and leaves the rest, and a bad pair is refused by name."""
    names = load_skeleton().body_names
    motion = ground_align(walk, "percentile", 10)[0]
    results, gains = {}, {}
    for key, settings in {
        "plain": {"damping_scale": 0.1},
        "named": {"damping_scale": 1.0, "damping_joint_scales": "upper=0.1,legs=0.1"},
        "upper": {"damping_scale": 0.1, "damping_joint_scales": "upper=1"},
    }.items():
        sim = HumanoidSim(settings)
        try:
            gains[key] = dict(zip((names[j] for j in sim._joints), sim._kds))
            results[key] = sim.track(motion)
        finally:
            sim.close()
    assert gains["named"] == gains["plain"]
    assert np.array_equal(results["named"].motion.root_pos, results["plain"].motion.root_pos)
    assert np.array_equal(results["named"].motion.joint_rots, results["plain"].motion.joint_rots)
    upper = {"chest", "neck", "right_shoulder", "right_elbow", "left_shoulder", "left_elbow"}
    for joint, kd in gains["upper"].items():
        assert kd == pytest.approx(DEEPMIMIC_KD[joint] * (1.0 if joint in upper else 0.1)), joint
    assert not np.array_equal(results["upper"].motion.joint_rots, results["plain"].motion.joint_rots)
    for bad in ("arms=0", "hands=1", "chest", "chest=x"):
        with pytest.raises(SimulatorConfigError, match="damping_joint_scales"):
            HumanoidSim({"damping_joint_scales": bad})
