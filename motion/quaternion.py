"""Vectorised quaternion and rotation helpers (numpy).

Convention, stated once for the whole project: quaternions are stored **x, y, z, w**
(the order of PyBullet and SciPy). The DeepMimic file format stores w, x, y, z; the
reader/writer convert at the boundary and nowhere else.

All functions broadcast over leading dimensions so that whole clips and batches are
processed without Python loops (per-frame Python work dominates simulation cost).
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray


def normalize(q: Array) -> Array:
    """Unit-normalise quaternions along the last axis."""
    q = np.asarray(q, dtype=np.float64)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def canonical(q: Array) -> Array:
    """Pick the representative with w >= 0 (q and -q are the same rotation)."""
    q = np.asarray(q, dtype=np.float64)
    return np.where(q[..., 3:4] < 0.0, -q, q)


def conjugate(q: Array) -> Array:
    q = np.asarray(q, dtype=np.float64)
    return np.concatenate([-q[..., :3], q[..., 3:4]], axis=-1)


def multiply(a: Array, b: Array) -> Array:
    """Hamilton product a ⊗ b (apply b first, then a)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        axis=-1,
    )


def from_rotvec(v: Array) -> Array:
    """(..., 3) rotation vectors (axis × angle, rad) → (..., 4) unit quaternions."""
    v = np.asarray(v, dtype=np.float64)
    angle = np.linalg.norm(v, axis=-1, keepdims=True)
    half = 0.5 * angle
    scale = np.where(angle > 1e-12, np.sin(half) / np.maximum(angle, 1e-12), 0.5)
    return np.concatenate([v * scale, np.cos(half)], axis=-1)


def to_rotvec(q: Array) -> Array:
    """(..., 4) unit quaternions → (..., 3) rotation vectors with angle in [0, π] (the short way)."""
    q = canonical(q)
    s = np.linalg.norm(q[..., :3], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, q[..., 3:4])
    # angle / sin(angle / 2) → 2 as the angle → 0
    scale = np.where(s > 1e-12, angle / np.maximum(s, 1e-12), 2.0)
    return q[..., :3] * scale


def rotate(q: Array, v: Array) -> Array:
    """Rotate vectors v (..., 3) by unit quaternions q (..., 4)."""
    q = np.asarray(q, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    u = q[..., :3]
    w = q[..., 3:4]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def to_matrix(q: Array) -> Array:
    """Unit quaternions (..., 4) -> rotation matrices (..., 3, 3)."""
    q = np.asarray(q, dtype=np.float64)
    x, y, z, w = np.moveaxis(q, -1, 0)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    m = np.stack(
        [
            1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
            2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
            2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
        ],
        axis=-1,
    )
    return m.reshape(q.shape[:-1] + (3, 3))


def from_matrix(m: Array) -> Array:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4), w >= 0.

    Uses the numerically robust branch selection (largest diagonal term)."""
    m = np.asarray(m, dtype=np.float64)
    shape = m.shape[:-2]
    m = m.reshape(-1, 3, 3)
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    diag = np.stack([m[:, 0, 0], m[:, 1, 1], m[:, 2, 2], tr], axis=-1)
    branch = np.argmax(diag, axis=-1)
    q = np.empty((m.shape[0], 4))
    # w largest
    s = np.sqrt(np.maximum(1.0 + tr, 1e-12)) * 2.0
    qw = np.stack(
        [(m[:, 2, 1] - m[:, 1, 2]) / s, (m[:, 0, 2] - m[:, 2, 0]) / s, (m[:, 1, 0] - m[:, 0, 1]) / s, 0.25 * s],
        axis=-1,
    )
    s0 = np.sqrt(np.maximum(1.0 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2], 1e-12)) * 2.0
    q0 = np.stack(
        [0.25 * s0, (m[:, 0, 1] + m[:, 1, 0]) / s0, (m[:, 0, 2] + m[:, 2, 0]) / s0, (m[:, 2, 1] - m[:, 1, 2]) / s0],
        axis=-1,
    )
    s1 = np.sqrt(np.maximum(1.0 + m[:, 1, 1] - m[:, 0, 0] - m[:, 2, 2], 1e-12)) * 2.0
    q1 = np.stack(
        [(m[:, 0, 1] + m[:, 1, 0]) / s1, 0.25 * s1, (m[:, 1, 2] + m[:, 2, 1]) / s1, (m[:, 0, 2] - m[:, 2, 0]) / s1],
        axis=-1,
    )
    s2 = np.sqrt(np.maximum(1.0 + m[:, 2, 2] - m[:, 0, 0] - m[:, 1, 1], 1e-12)) * 2.0
    q2 = np.stack(
        [(m[:, 0, 2] + m[:, 2, 0]) / s2, (m[:, 1, 2] + m[:, 2, 1]) / s2, 0.25 * s2, (m[:, 1, 0] - m[:, 0, 1]) / s2],
        axis=-1,
    )
    q = np.where((branch == 3)[:, None], qw, q)
    q = np.where((branch == 0)[:, None], q0, q)
    q = np.where((branch == 1)[:, None], q1, q)
    q = np.where((branch == 2)[:, None], q2, q)
    return canonical(normalize(q)).reshape(shape + (4,))


def from_axis_angle(axis: Array, angle: Array) -> Array:
    """Quaternions for rotations of `angle` radians about unit `axis`."""
    axis = np.asarray(axis, dtype=np.float64)
    half = 0.5 * np.asarray(angle, dtype=np.float64)[..., None]
    return np.concatenate([axis * np.sin(half), np.cos(half)], axis=-1)


def yaw(angle: Array) -> Array:
    """Rotation about the world up axis (+y) by `angle` radians."""
    angle = np.asarray(angle, dtype=np.float64)
    return from_axis_angle(np.array([0.0, 1.0, 0.0]), angle)


def heading_angle(q: Array) -> Array:
    """Yaw about +y of each rotation, from its swing–twist decomposition q = yaw ⊗ tilt.

    The twist about y is the projection (0, q_y, 0, q_w); it is well defined except for
    rotations by exactly 180° about a horizontal axis (measure zero)."""
    q = np.asarray(q, dtype=np.float64)
    return 2.0 * np.arctan2(q[..., 1], q[..., 3])


def slerp(q0: Array, q1: Array, t: Array) -> Array:
    """Spherical linear interpolation, shortest arc, vectorised over leading dims."""
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0.0, -q1, q1)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    small = sin_theta < 1e-6
    safe = np.where(small, 1.0, sin_theta)
    w0 = np.where(small, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    w1 = np.where(small, t, np.sin(t * theta) / safe)
    return normalize(w0 * q0 + w1 * q1)


def angular_velocity(q: Array, dt: float) -> Array:
    """Finite-difference angular velocity (..., T, 3) in the frame q is expressed in.

    For local joint rotations this is the joint-frame velocity that PyBullet expects for
    spherical joint targets. The last frame repeats the previous value."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape[-2] < 2:
        return np.zeros(q.shape[:-1] + (3,))
    # relative rotation expressed in the child (local) frame: d = q_t^-1 ⊗ q_{t+1}
    d = multiply(conjugate(q[..., :-1, :]), q[..., 1:, :])
    d = canonical(d)
    vec = d[..., :3]
    s = np.linalg.norm(vec, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, d[..., 3:4])
    axis = np.where(s > 1e-12, vec / np.where(s > 1e-12, s, 1.0), 0.0)
    w = axis * angle / dt
    return np.concatenate([w, w[..., -1:, :]], axis=-2)


def matrix_to_6d(m: Array) -> Array:
    """Continuous 6-D rotation representation (Zhou et al. 2019): the first two columns."""
    m = np.asarray(m, dtype=np.float64)
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def sixd_to_matrix(d6: Array) -> Array:
    """Inverse of :func:`matrix_to_6d` by Gram–Schmidt; exact for valid inputs and a
    projection onto SO(3) for arbitrary network outputs."""
    d6 = np.asarray(d6, dtype=np.float64)
    a1, a2 = d6[..., :3], d6[..., 3:6]
    b1 = a1 / np.maximum(np.linalg.norm(a1, axis=-1, keepdims=True), 1e-12)
    a2p = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    b2 = a2p / np.maximum(np.linalg.norm(a2p, axis=-1, keepdims=True), 1e-12)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)
