"""Whole-body inverse-dynamics tracking with contact forces (``assist_mode="wbc"``): honest by construction.

Every control step, with the floating-base model of :mod:`simulators.wholebody`
(M q̈ + h = Sᵀτ + Σ Jᵢᵀ fᵢ), one non-negative least-squares problem chooses joint and base
accelerations q̈ and contact forces f = G λ (λ ≥ 0 on the edges of a 4-sided friction pyramid,
μ = ``friction``, at the 4 sole corners of every planted foot) that best

* track PD-stabilised reference accelerations: joints ``kp``·e + ``kd``·ė (mass-normalised,
  1/s², so equally stiff on a foot and a torso — unlike stable PD, whose stance joints are
  soft, see :mod:`simulators.balance`), the root ``root_kp``/``root_kd`` with weight
  :data:`ROOT_WEIGHT`;
* satisfy the floating-base rows exactly enough (weight √:data:`DYNAMICS_WEIGHT`: only contact
  forces and gravity may move the root) and keep planted feet from accelerating (weight
  √:data:`FOOT_WEIGHT`, with a velocity damping :data:`FOOT_DAMPING`);
* keep the joint torques small relative to their limits (``torque_weight`` / limit per row).

q̈ is eliminated in closed form (QR of its rows), leaving an NNLS in λ. The joint torques
τ = (M q̈ + h − Jᵀ G λ)ⱼ are clipped at the DeepMimic limits and applied with
``TORQUE_CONTROL``; nothing else acts, so the residual is zero. A foot is planted when its
lowest sole corner is within :data:`SOLE_CONTACT_M` of the ground and the reference's foot is
within :data:`REF_STANCE_M`.

Limits measured on the bundled clips (docs/PHYSICS.md): it tracks walk with a few cm
of root error, and the other clips still fall — the QP balances within the current support
but does not plan steps, and the clips start in states that need them.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from sccl.motion import quaternion as quat
from sccl.motion.kinematics import body_lowest_points, forward_kinematics_matrices
from sccl.motion.skeleton import load_skeleton
from sccl.simulators.balance import _quat_from_matrix
from sccl.simulators.contact import cone_edges
from sccl.simulators.wholebody import WholeBodyModel

log = logging.getLogger(__name__)

#: Weight of the root's acceleration error against a joint's (both in 1/s²).
ROOT_WEIGHT = 10.0
#: Weight (squared) of the floating-base equations of motion.
DYNAMICS_WEIGHT = 1e3
#: Weight (squared) of "a planted foot does not accelerate".
FOOT_WEIGHT = 10.0
#: 1/s: a planted foot's desired acceleration is −FOOT_DAMPING × its velocity.
FOOT_DAMPING = 10.0
#: A foot is planted when a sole corner is this close to the ground (m) ...
SOLE_CONTACT_M = 0.015
#: ... and the reference's foot is this close too (m).
REF_STANCE_M = 0.05
#: Regularisation of the contact-force coefficients.
FORCE_REG = 1e-3
FEET: tuple[str, ...] = ("right_ankle", "left_ankle")


def _qmul_conj(a, b) -> np.ndarray:
    """conj(a) ⊗ b for two (x, y, z, w) quaternions (scalar code: the vectorised helpers cost
    tens of µs per single quaternion)."""
    ax, ay, az, aw = -a[0], -a[1], -a[2], a[3]
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz])


def _rotvec(q: np.ndarray) -> np.ndarray:
    if q[3] < 0.0:
        q = -q
    n = float(np.linalg.norm(q[:3]))
    return q[:3] * (2.0 * math.atan2(n, q[3]) / n) if n > 1e-12 else np.zeros(3)


class WholeBodyQP:
    """Per-clip controller; :meth:`torques` gives the joint torques for one control step."""

    def __init__(self, sim, ref, kp: float, kd: float, root_kp: float, root_kd: float, torque_weight: float,
                 friction: float) -> None:
        from scipy.optimize import nnls

        self._nnls = nnls
        self.sim, self.ref = sim, ref
        self.kp, self.kd, self.root_kp, self.root_kd = kp, kd, root_kp, root_kd
        self.torque_weight = torque_weight
        self.model = WholeBodyModel(sim)
        sk = load_skeleton()
        self.feet = [sk.index(n) for n in FEET]
        box = sk.collision[self.feet[0]]
        signs = np.array([[sx, -1.0, sz] for sx in (-1.0, 1.0) for sz in (-1.0, 1.0)])
        self.corners = signs * box.half_extents + box.offset  # sole corners, foot link frame
        self.edges = cone_edges(friction, 4)
        kin = forward_kinematics_matrices(ref.root_pos, quat.to_matrix(ref.root_rot), quat.to_matrix(ref.joint_rots),
                                          ref.joint_angles)
        self.ref_low = body_lowest_points(kin)
        self.root_mats = quat.to_matrix(ref.root_rot)
        self.limits = np.concatenate([np.full(len(f), f[0]) for f in sim._forces])
        self.sph_slot = {j: i for i, j in enumerate(sim._sph_idx)}
        self.rev_slot = {j: i for i, j in enumerate(sim._rev_idx)}
        self.peak_torque_ratio = 0.0
        self.planted_steps = 0

    def torques(self, k: int) -> np.ndarray | None:
        """(28,) joint torques (PyBullet joint order, spherical = 3 child-frame components) for
        control sample k, or None when the state or the solve is not finite."""
        m = self.model
        m.update()
        if not (np.isfinite(m.M).all() and np.isfinite(m.h).all()):
            return None
        ref, nv = self.ref, m.nv
        qdd_des = np.empty(nv)
        r_act = self.sim._p.getMatrixFromQuaternion(self.sim._p.getBasePositionAndOrientation(
            self.sim.body, physicsClientId=self.sim._cid)[1])
        r_act = np.asarray(r_act).reshape(3, 3)
        qdd_des[0:3] = self.root_kp * (ref.root_pos[k] - m.pb) + self.root_kd * (ref.root_lin_vel[k] - m.qd[0:3])
        qdd_des[3:6] = self.root_kp * _rotvec(_quat_from_matrix(self.root_mats[k] @ r_act.T)) \
            + self.root_kd * (ref.root_ang_vel[k] - m.qd[3:6])
        for j, qj in zip(self.sim._joints, m.q):
            c, w = m.col[j]
            if w == 3:
                s = self.sph_slot[j]
                e = _rotvec(_qmul_conj(qj, ref.joint_rots[k, s]))
                qdd_des[c:c + 3] = self.kp * e + self.kd * (ref.joint_vels[k, s] - m.qd[c:c + 3])
            else:
                s = self.rev_slot[j]
                qdd_des[c] = self.kp * (ref.joint_angles[k, s] - qj[0]) + self.kd * (ref.joint_angle_vels[k, s] - m.qd[c])
        foot_rows, foot_rhs, force_cols = [], [], []
        for f in self.feet:
            pts = m.org[f] + self.corners @ m.R[f].T
            if pts[:, 1].min() > SOLE_CONTACT_M or self.ref_low[k, f] > REF_STANCE_M:
                continue
            jf = np.vstack([m.Jv[f], m.Jw[f]])
            foot_rows.append(jf)
            foot_rhs.append(-np.concatenate([m.abias[f], m.albias[f]]) - FOOT_DAMPING * (jf @ m.qd))
            for pt in pts:
                jp, _ = m.point_jacobian(f, pt)
                force_cols.extend(jp.T @ e for e in self.edges)
        if foot_rows:
            self.planted_steps += 1
        qc = np.array(force_cols).T if force_cols else np.zeros((nv, 0))
        nl = qc.shape[1]
        w = np.ones(nv)
        w[:6] = ROOT_WEIGHT
        eq = [m.M[:6]] + foot_rows
        rhs = [-m.h[:6]] + foot_rhs
        bm = [qc[:6]] + [np.zeros((6, nl))] * len(foot_rows)
        wts = np.array([math.sqrt(DYNAMICS_WEIGHT)] * 6 + [math.sqrt(FOOT_WEIGHT)] * 6 * len(foot_rows))
        eq, rhs, bm = np.vstack(eq), np.concatenate(rhs), np.vstack(bm)
        wt = self.torque_weight / self.limits
        a_q = np.vstack([np.diag(w), eq * wts[:, None], wt[:, None] * m.M[6:], np.zeros((nl, nv))])
        a_l = np.vstack([np.zeros((nv, nl)), -bm * wts[:, None], -wt[:, None] * qc[6:], FORCE_REG * np.eye(nl)])
        b = np.concatenate([w * qdd_des, rhs * wts, -wt * m.h[6:], np.zeros(nl)])
        if not (np.isfinite(a_q).all() and np.isfinite(a_l).all() and np.isfinite(b).all()):
            return None
        q_m, r_m = np.linalg.qr(a_q)
        lam = np.zeros(nl)
        if nl:
            pa = a_l - q_m @ (q_m.T @ a_l)
            pb = b - q_m @ (q_m.T @ b)
            lam, _ = self._nnls(pa, pb, maxiter=30 * nl)  # RuntimeError on non-convergence: the caller counts it
        qdd = np.linalg.solve(r_m, q_m.T @ (b - a_l @ lam))
        tau = m.M[6:] @ qdd + m.h[6:] - qc[6:] @ lam
        if not np.isfinite(tau).all():
            return None
        self.peak_torque_ratio = max(self.peak_torque_ratio, float(np.max(np.abs(tau) / self.limits)))
        return np.clip(tau, -self.limits, self.limits)
