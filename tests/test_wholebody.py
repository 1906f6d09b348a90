"""Real PyBullet: the floating-base model (simulators/wholebody.py) predicts what the engine does."""

from __future__ import annotations

import numpy as np
import pybullet as p

from sccl.simulators import HumanoidSim
from sccl.simulators.wholebody import WholeBodyModel


def test_model_torques_produce_the_planned_accelerations():
    """τ = (M q̈ + h) on the joints, with the base's q̈ from the floating-base rows, makes PyBullet
    accelerate exactly as planned: a random pose, velocities and gravity (the model would fail
    this with any wrong frame, sign, inertia or velocity-product term)."""
    sim = HumanoidSim()
    try:
        cid, body = sim._cid, sim.body
        dt = 1.0 / 2000.0
        p.setTimeStep(dt, physicsClientId=cid)
        p.setPhysicsEngineParameter(numSubSteps=1, physicsClientId=cid)
        rng = np.random.default_rng(1)
        p.resetBasePositionAndOrientation(body, [0, 3, 0], p.getQuaternionFromEuler([0.4, 0.3, 0.2]), physicsClientId=cid)
        p.resetBaseVelocity(body, rng.normal(size=3).tolist(), rng.normal(size=3).tolist(), physicsClientId=cid)
        for j in sim._joints:
            if j in sim._sph_idx:
                q = rng.normal(size=4) * 0.3
                q[3] = 1.0
                p.resetJointStateMultiDof(body, j, (q / np.linalg.norm(q)).tolist(), rng.normal(size=3).tolist(),
                                          physicsClientId=cid)
            else:  # inside the URDF limits (knees [-π, 0], elbows [0, π])
                p.resetJointState(body, j, -0.5 if j in (4, 10) else 0.5, float(rng.normal()), physicsClientId=cid)
        model = WholeBodyModel(sim)
        model.update()
        qdd_j = rng.normal(size=model.nv - 6) * 5.0
        qdd_b = -np.linalg.solve(model.M[:6, :6], model.M[:6, 6:] @ qdd_j + model.h[:6])
        qdd = np.concatenate([qdd_b, qdd_j])
        tau = model.M[6:] @ qdd + model.h[6:]
        qd0 = model.qd.copy()
        for j in sim._joints:
            c, w = model.col[j]
            p.setJointMotorControlMultiDof(body, j, p.TORQUE_CONTROL, force=tau[c - 6:c - 6 + w].tolist(),
                                           physicsClientId=cid)
        p.stepSimulation(physicsClientId=cid)
        model.update()
        measured = (model.qd - qd0) / dt
        assert np.linalg.norm(measured - qdd) / np.linalg.norm(qdd) < 1e-3
        # and a point Jacobian gives the point's velocity (foot corner)
        corner = model.org[5] + model.R[5] @ np.array([0.13, -0.05, 0.04])
        jac, _ = model.point_jacobian(5, corner)
        ls = p.getLinkState(body, 5, computeLinkVelocity=1, physicsClientId=cid)
        v_corner = np.asarray(ls[6]) + np.cross(ls[7], corner - np.asarray(ls[0]))
        np.testing.assert_allclose(jac @ model.qd, v_corner, atol=1e-6)
    finally:
        sim.close()


def _walk():
    from sccl.motion.deepmimic import bundled_motion_dir, read_clip
    from sccl.simulators import ground_align

    return ground_align(read_clip(bundled_motion_dir() / "humanoid3d_walk.txt").motion, "percentile", 10)[0]


def test_wbc_tracks_walk_with_joint_torques_only():
    """The whole-body QP keeps walk within the issue's targets where pure physics falls, with
    nothing external (residual 0) and its torques measured (clipped at the limits)."""
    sim = HumanoidSim({"assist_mode": "wbc", "control_hz": 240.0})
    try:
        res = sim.track(_walk())
    finally:
        sim.close()
    assert not res.fell and not res.blew_up
    assert res.root_relative_error_mm <= 60.0 and res.tracking_error_mm <= 100.0
    assert res.extra["residual_g"] == 0.0 and res.extra["assist_g"] == 0.0
    assert 0.1 < res.extra["wbc_planned_torque_ratio"] < 100.0
    assert 0.0 < res.extra["peak_torque_ratio"] <= 1.05  # what the joints applied: clamped at the limit
    assert res.extra["wbc_solve_failures"] == 0.0


def test_wbc_failed_solves_are_counted_not_raised(monkeypatch):
    """A solver that fails every step gives a counted failure (and, without torques, a fall),
    never an exception out of track()."""
    import scipy.optimize

    def broken(*args, **kwargs):
        raise RuntimeError("too many iterations")

    monkeypatch.setattr(scipy.optimize, "nnls", broken)
    sim = HumanoidSim({"assist_mode": "wbc", "control_hz": 240.0})
    try:
        res = sim.track(_walk().slice(0, 12))
    finally:
        sim.close()
    assert res.extra["wbc_solve_failures"] > 0
