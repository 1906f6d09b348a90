"""Floating-base rigid-body model of the PyBullet humanoid, built from the engine's own link states.

Why our own: a whole-body controller needs M(q), the bias forces h(q, q̇) and contact
Jacobians in *exactly* the coordinates PyBullet integrates, and PyBullet's
``calculateMassMatrix`` / ``calculateJacobian`` are awkward for a floating base with spherical
joints (quaternion positions vs. 3-D velocities; no floating-base Jacobian option). This model
reads the link frames each control step (``getLinkStates``) and assembles

* generalised velocities q̇ = [base COM linear velocity (world), base angular velocity
  (world), then per actuated joint in PyBullet order: spherical 3 (relative angular velocity in
  the child frame, as ``getJointStateMultiDof`` reports it), revolute 1] — 6 + 28 = 34;
* per link the Jacobians of its centre-of-mass velocity and angular velocity;
* M = Σ mᵢ Jᵥᵢᵀ Jᵥᵢ + J_ωᵢᵀ Iᵢ J_ωᵢ and h = Σ Jᵥᵢᵀ mᵢ (ȧᵢ − g) + J_ωᵢᵀ (Iᵢ α̇ᵢ + ωᵢ × Iᵢ ωᵢ), with the
  velocity-product accelerations (ȧ, α̇ at q̈ = 0) from one recursion over the tree.

Joint torques in the generalised-force convention here are exactly what ``TORQUE_CONTROL``
applies (spherical: child frame). Checked against PyBullet itself (``tests/test_wholebody.py``):
torques τ = (M q̈ + h)ⱼ for a random q̈ at a random pose and velocity reproduce q̈ to 1e-5
relative error (joint limits must not be touched: a revolute joint outside its URDF limits is
pushed back by the engine, which an early probe here mistook for a wrong mass matrix).
"""

from __future__ import annotations

import numpy as np


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a × b for two 3-vectors (``np.cross`` costs ~30 µs of axis handling per call, which was
    two thirds of this model's time)."""
    a0, a1, a2 = a
    b0, b1, b2 = b
    return np.array([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0])


def skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrix: skew(a) @ b == a × b."""
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


class WholeBodyModel:
    """M, h and Jacobians of a :class:`simulators.humanoid.HumanoidSim` body; call :meth:`update` each step."""

    def __init__(self, sim, gravity: float = 9.8) -> None:
        import pybullet as p

        self.p = p
        self.gravity = gravity
        self.sim = sim
        cid, b = sim._cid, sim.body
        self.n_links = p.getNumJoints(b, physicsClientId=cid)
        self.parent = [p.getJointInfo(b, j, physicsClientId=cid)[16] for j in range(self.n_links)]
        self.jtype = [p.getJointInfo(b, j, physicsClientId=cid)[2] for j in range(self.n_links)]
        self.mass = np.array([p.getDynamicsInfo(b, j, physicsClientId=cid)[0] for j in range(self.n_links)])
        self.Iloc = [np.diag(p.getDynamicsInfo(b, j, physicsClientId=cid)[2]) for j in range(self.n_links)]
        # generalized velocity columns per actuated joint
        self.col = {}
        c = 6
        for j in sim._joints:
            w = 3 if self.jtype[j] == p.JOINT_SPHERICAL else 1
            self.col[j] = (c, w)
            c += w
        self.nv = c
        # chain of actuated ancestors (including self) per link
        self.chain = []
        for j in range(self.n_links):
            ch = []
            k = j
            while k >= 0:
                if k in self.col:
                    ch.append(k)
                k = self.parent[k]
            self.chain.append(ch[::-1])

    def update(self) -> None:
        """Read the current state from PyBullet and rebuild M, h, Jacobians and bias accelerations."""
        p = self.p
        sim = self.sim
        cid, b = sim._cid, sim.body
        bp, bo = p.getBasePositionAndOrientation(b, physicsClientId=cid)
        bv, bw = p.getBaseVelocity(b, physicsClientId=cid)
        ls = p.getLinkStates(b, list(range(self.n_links)), computeForwardKinematics=1, physicsClientId=cid)
        js = p.getJointStatesMultiDof(b, sim._joints, physicsClientId=cid)
        self.pb = np.asarray(bp)
        self.com = np.array([l[0] for l in ls])
        self.org = np.array([l[4] for l in ls])
        self.R = [np.asarray(p.getMatrixFromQuaternion(l[5])).reshape(3, 3) for l in ls]
        qd = np.zeros(self.nv)
        qd[0:3] = bv
        qd[3:6] = bw
        for j, s in zip(sim._joints, js):
            c, w = self.col[j]
            qd[c:c + w] = s[1]
        self.qd = qd
        self.q = [s[0] for s in js]
        # axes (world) per actuated joint
        self.axes = {}
        for j in sim._joints:
            if self.jtype[j] == p.JOINT_SPHERICAL:
                self.axes[j] = self.R[j]
            else:
                self.axes[j] = self.R[j][:, 2:3]
        # Jacobians (COM linear, angular) per link
        self.Jv, self.Jw = [], []
        for i in range(self.n_links):
            Jv = np.zeros((3, self.nv))
            Jw = np.zeros((3, self.nv))
            Jv[:, 0:3] = np.eye(3)
            Jv[:, 3:6] = -skew(self.com[i] - self.pb)
            Jw[:, 3:6] = np.eye(3)
            for k in self.chain[i]:
                c, w = self.col[k]
                A = self.axes[k]
                Jw[:, c:c + w] = A
                Jv[:, c:c + w] = -skew(self.com[i] - self.org[k]) @ A
            self.Jv.append(Jv)
            self.Jw.append(Jw)
        # velocities and bias accelerations (qdd = 0), recursive in link order (parents first)
        w_l = [None] * self.n_links
        a_l = [None] * self.n_links  # COM linear bias acc
        al_l = [None] * self.n_links  # angular bias acc
        wb = qd[3:6]
        for i in range(self.n_links):
            par = self.parent[i]
            if par < 0:
                w_p, al_p, a_p, c_p = wb, np.zeros(3), np.zeros(3), self.pb
            else:
                w_p, al_p, a_p, c_p = w_l[par], al_l[par], a_l[par], self.com[par]
            w_rel = np.zeros(3)
            if i in self.col:
                c, w = self.col[i]
                w_rel = self.axes[i] @ qd[c:c + w]
            w_i = w_p + w_rel
            al_i = al_p + cross(w_i, w_rel)
            r_po = self.org[i] - c_p
            a_o = a_p + cross(al_p, r_po) + cross(w_p, cross(w_p, r_po))
            r_oc = self.com[i] - self.org[i]
            a_c = a_o + cross(al_i, r_oc) + cross(w_i, cross(w_i, r_oc))
            w_l[i], al_l[i], a_l[i] = w_i, al_i, a_c
        self.w_l, self.abias, self.albias = w_l, a_l, al_l
        g = np.array([0.0, -self.gravity, 0.0])
        M = np.zeros((self.nv, self.nv))
        h = np.zeros(self.nv)
        for i in range(self.n_links):
            m = self.mass[i]
            I = self.R[i] @ self.Iloc[i] @ self.R[i].T
            Jv, Jw = self.Jv[i], self.Jw[i]
            M += m * Jv.T @ Jv + Jw.T @ I @ Jw
            h += Jv.T @ (m * (a_l[i] - g)) + Jw.T @ (I @ al_l[i] + cross(w_l[i], I @ w_l[i]))
        self.M, self.h = M, h

    def point_jacobian(self, link: int, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(3, nv) linear Jacobian of a world point rigidly attached to link, and its bias acc."""
        J = self.Jv[link] + skew(self.com[link] - point) @ self.Jw[link]
        r = point - self.com[link]
        w = self.w_l[link]
        bias = self.abias[link] + cross(self.albias[link], r) + cross(w, cross(w, r))
        return J, bias
