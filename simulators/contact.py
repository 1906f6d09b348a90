"""Contact-consistency accounting: which part of an external wrench could the ground have supplied?

A floating-base body changes its momentum only through gravity and contact forces. At one
instant, the wrenches the ground can exert are the non-negative combinations of forces
inside the friction cone at the points actually in contact (the *contact wrench cone*). An
external "hand of god" wrench on the root (the legacy assist) is honest exactly where the
total non-gravity wrench — engine contact forces plus assist — still lies in that cone: the
ground could then have produced it, with the centre of pressure inside the support polygon.
Whatever is left outside is the **residual**: force (and torque) no real body could get.

Method, per control step:

* contact points are PyBullet's (``getContactPoints(body, ground)``, closer than
  :data:`CONTACT_DISTANCE_M`), each with its own friction cone of coefficient ``mu``,
  approximated by an inscribed pyramid of :data:`CONE_EDGES` edges — conservative: every
  wrench it accepts is inside the true cone;
* the total wrench (force, and torque about the root) is projected onto the cone spanned by
  those edges with non-negative least squares (``scipy.optimize.nnls``), torques scaled by
  :data:`TORQUE_LENGTH_M` so force and torque share units (N);
* the residual is the part not spanned, capped at the assist's own size (the assist is the
  only non-contact term; any excess would be the engine's box friction vs our inscribed cone);
* with no contact at all (flight) the cone is {0} and the whole assist is residual.

The engine reports forces of its last physics sub-step only; with 4 sub-steps per control
step the accounting samples the wrench at the control rate (120 Hz by default). For contacts
that sample is rough (measured: over a 0.1 s drop onto the floor the reported normal forces
account for 40 % of the true vertical contact impulse), which only matters through the
tightening: leaving the engine's contact forces out (the assist alone against the cone, an
upper bound since the contacts' own wrench lies in the cone) raises the mean residual of the
15 bundled clips from 0.446 to 0.467 m·g.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: Edges of the inscribed friction pyramid per contact point (8: within 7.6 % of the cone).
CONE_EDGES = 8
#: Contact points farther than this from the ground (m) are not in contact.
CONTACT_DISTANCE_M = 0.002
#: Torques are divided by this length (m) so that a torque counts like the force that would
#: produce it at the root's height above the feet (~1 m for this humanoid).
TORQUE_LENGTH_M = 1.0
#: A control step violates contact consistency when its residual exceeds this share of m·g.
VIOLATION_TOLERANCE_G = 0.02


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross product of (N, 3) arrays (np.cross costs ~20 µs of overhead per call,
    which dominated the accounting at 120 calls per simulated second)."""
    ax, ay, az = a[:, 0], a[:, 1], a[:, 2]
    bx, by, bz = b[:, 0], b[:, 1], b[:, 2]
    out = np.empty(np.broadcast_shapes(a.shape, b.shape))
    out[:, 0] = ay * bz - az * by
    out[:, 1] = az * bx - ax * bz
    out[:, 2] = ax * by - ay * bx
    return out


def _rotate(q: tuple, v: np.ndarray) -> np.ndarray:
    """Rotate vector v by the unit quaternion q = (x, y, z, w)."""
    u = np.array(q[:3], dtype=np.float64)
    t = 2.0 * np.array([u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]])
    return v + q[3] * t + np.array([u[1] * t[2] - u[2] * t[1], u[2] * t[0] - u[0] * t[2], u[0] * t[1] - u[1] * t[0]])


def constraint_wrench_world(state: tuple, base_orn: tuple) -> np.ndarray:
    """(6,) force and torque a world→base JOINT_FIXED constraint applies to the body, in world axes.

    Measured on PyBullet 3.2.7 (external force/torque held by the constraint, gravity off):
    ``getConstraintState`` gives the force on the body in world axes but the torque on the
    body in the *base* frame, so the torque is rotated by the base orientation here."""
    a = np.asarray(state[:6], dtype=np.float64)
    a[3:] = _rotate(base_orn, a[3:])
    return a


def any_in_contact(contacts: list) -> bool:
    """Whether any of PyBullet's contact tuples is a point in contact (within
    :data:`CONTACT_DISTANCE_M`): the one stance test the assist and its accounting share."""
    return any(c[8] <= CONTACT_DISTANCE_M for c in contacts)


def cone_edges(mu: float, n: int = CONE_EDGES) -> np.ndarray:
    """(n, 3) unit generators of the friction pyramid inscribed in the cone |f_t| <= mu f_n
    about the +y normal (y-up world)."""
    a = 2.0 * math.pi * np.arange(n) / n
    e = np.stack([mu * np.cos(a), np.ones(n), mu * np.sin(a)], axis=1)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def project_on_contact_cone(wrench: np.ndarray, points: np.ndarray, edges: np.ndarray,
                            length: float = TORQUE_LENGTH_M) -> tuple[np.ndarray, np.ndarray]:
    """Split a wrench into the part contacts at `points` could supply and the residual.

    Args:
        wrench: (6,) force (N) and torque (N·m) about the reference point (the root).
        points: (P, 3) contact points relative to the same reference point.
        edges: (E, 3) friction-pyramid generators (:func:`cone_edges`).
    Returns:
        (realisable, residual), both (6,) in N and N·m, summing to `wrench`.
    """
    wrench = np.asarray(wrench, dtype=np.float64)
    forces = contact_forces(wrench, points, edges, length)
    realisable = np.zeros(6)
    if forces.shape[0]:
        realisable[:3] = forces.sum(0)
        realisable[3:] = _cross(points, forces).sum(0)
    return realisable, wrench - realisable


def contact_forces(wrench: np.ndarray, points: np.ndarray, edges: np.ndarray,
                   length: float = TORQUE_LENGTH_M) -> np.ndarray:
    """(P, 3) forces, each inside its point's friction pyramid, whose wrench about the reference
    point is the closest to `wrench` (non-negative least squares over the pyramid edges)."""
    if points.shape[0] == 0:
        return np.zeros((0, 3))
    from scipy.optimize import nnls

    n_p, n_e = points.shape[0], edges.shape[0]
    forces = np.tile(edges, (n_p, 1))  # (P*E, 3)
    arms = np.repeat(points, n_e, axis=0)
    basis = np.empty((6, n_p * n_e))
    basis[:3] = forces.T
    basis[3:] = _cross(arms, forces).T / length
    target = np.empty(6)
    target[:3] = wrench[:3]
    target[3:] = wrench[3:] / length
    coef, _ = nnls(basis, target, maxiter=50 * basis.shape[1])
    return (coef[:, None] * forces).reshape(n_p, n_e, 3).sum(1)


def wrench_size(wrench: np.ndarray, length: float = TORQUE_LENGTH_M) -> float:
    """Size of a wrench in N: ``sqrt(|f|² + (|τ|/length)²)``."""
    fx, fy, fz, tx, ty, tz = wrench.tolist()
    return math.sqrt(fx * fx + fy * fy + fz * fz + (tx * tx + ty * ty + tz * tz) / (length * length))


@dataclass
class ContactAccounting:
    """Accumulates, control step by control step, the assist and how much of it contacts explain.

    Feed :meth:`add` once per control step; :meth:`summary` gives the per-sample diagnostics
    (all per second of motion, in units of the body weight m·g)."""

    weight: float  # m·g (N)
    mu: float
    edges: np.ndarray = field(init=False)
    steps: int = 0
    airborne_steps: int = 0
    assist: float = 0.0  # Σ |assist wrench| (N)
    assist_force: float = 0.0
    residual: float = 0.0  # Σ |residual wrench| (N)
    residual_force: float = 0.0
    residual_torque: float = 0.0  # Σ |residual torque| / length (N)
    residual_flight: float = 0.0
    violations: int = 0
    bad_steps: int = 0  # steps whose assist wrench was not finite (the state is not trustworthy)
    solver_failures: int = 0  # steps whose projection failed; their whole assist counts as residual

    def __post_init__(self) -> None:
        self.edges = cone_edges(self.mu)

    def add(self, assist: np.ndarray | None, contacts: list, root: np.ndarray) -> bool:
        """One control step. `assist`: (6,) constraint force and torque on the body (or None);
        `contacts`: PyBullet contact tuples (body as A, ground as B); `root`: (3,) reference
        point of the torques. Returns whether the body was touching the ground."""
        self.steps += 1
        touching_c = [c for c in contacts if c[8] <= CONTACT_DISTANCE_M]
        touching = bool(touching_c)
        if not touching:
            self.airborne_steps += 1
        if assist is None:
            return touching
        a = np.asarray(assist, dtype=np.float64)
        size = wrench_size(a)
        if not math.isfinite(size):
            self.bad_steps += 1
            return touching
        self.assist += size
        self.assist_force += math.sqrt(float(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]))
        if size <= 1e-9:
            return touching
        if touching:
            # points on the ground and the ground's own forces this step, on the body
            rows = np.array([(*c[6], *c[7], c[9], *c[11], c[10], *c[13], c[12]) for c in touching_c])
            rel = rows[:, 0:3] - root
            f = rows[:, 3:6] * rows[:, 6:7] + rows[:, 7:10] * rows[:, 10:11] + rows[:, 11:14] * rows[:, 14:15]
            total = a.copy()
            total[:3] += f.sum(0)
            total[3:] += _cross(rel, f).sum(0)
            res = None
            if math.isfinite(wrench_size(total)) and np.isfinite(rel).all():
                try:
                    _, res = project_on_contact_cone(total, rel, self.edges)
                except (RuntimeError, ValueError):  # NNLS did not converge: count all as residual
                    res = None
            if res is None:
                self.solver_failures += 1
                res = a
        else:
            res = a
        full = wrench_size(res)
        r = min(full, size)
        scale = r / full if full > 0.0 else 0.0
        fx, fy, fz, tx, ty, tz = res.tolist()
        rf = math.sqrt(fx * fx + fy * fy + fz * fz) * scale
        rt = math.sqrt(tx * tx + ty * ty + tz * tz) / TORQUE_LENGTH_M * scale
        if not touching:
            self.residual_flight += r
        self.residual += r
        self.residual_force += rf
        self.residual_torque += rt
        if r > VIOLATION_TOLERANCE_G * self.weight:
            self.violations += 1
        return touching

    def summary(self) -> dict[str, float]:
        """Per-sample means over control steps, in m·g (= m·g·s of impulse per second of motion)."""
        n = max(self.steps, 1)
        w = self.weight
        return {
            "assist_g": self.assist / n / w,
            "assist_force_g": self.assist_force / n / w,
            "residual_g": self.residual / n / w,
            "residual_force_g": self.residual_force / n / w,
            "residual_torque_g": self.residual_torque / n / w,
            "residual_flight_share": self.residual_flight / self.residual if self.residual > 0 else 0.0,
            "contact_violation_share": self.violations / n,
            "sim_airborne_share": self.airborne_steps / n,
            "accounting_failures": float(self.solver_failures),
        }
