"""Geometric (boolean relational) features in the style of Müller et al. 2005 (Bailando FID_g).

Each feature is a yes/no relation between bodies in one frame (a hand above the neck, a knee
bent, a foot in front of the other, the torso lying down, ...); the window descriptor is the
share of frames where each relation holds. Thresholds are in units of the humanoid's own
proportions (humerus length ``hl``, shoulder width ``sw``, hip width ``hw``) read from the
URDF, as Müller et al. express theirs, so a different skeleton scale keeps their meaning.
Body frame: up = world +y, "right" = left hip → right hip (horizontal), forward = up × right
(the humanoid faces +x at rest). Everything is translation- and heading-invariant.
"""

from __future__ import annotations

import functools

import numpy as np

# body indices (see motion.skeleton)
ROOT, CHEST, NECK = 0, 1, 2
R_HIP, R_KNEE, R_ANKLE, R_SHOULDER, R_ELBOW, R_WRIST = 3, 4, 5, 6, 7, 8
L_HIP, L_KNEE, L_ANKLE, L_SHOULDER, L_ELBOW, L_WRIST = 9, 10, 11, 12, 13, 14


@functools.lru_cache(maxsize=1)
def body_proportions() -> dict[str, float]:
    """Humerus length, shoulder width, hip width and rest ankle height of the humanoid (m)."""
    from sccl.motion.skeleton import load_skeleton

    off = load_skeleton().joint_offsets
    return {
        "hl": float(np.linalg.norm(off[R_ELBOW])),
        "sw": float(np.linalg.norm(off[R_SHOULDER] - off[L_SHOULDER])),
        "hw": float(np.linalg.norm(off[R_HIP] - off[L_HIP])),
    }


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Angle in degrees between vectors (..., 3)."""
    c = np.sum(_unit(u) * _unit(v), axis=-1)
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


def _relations(p: np.ndarray, fps: float) -> tuple[list[str], list[np.ndarray]]:
    """Names and boolean arrays (N, T) of all relations on positions (N, T, 15, 3)."""
    pr = body_proportions()
    hl, sw, hw = pr["hl"], pr["sw"], pr["hw"]
    up = np.array([0.0, 1.0, 0.0])
    y = p[..., 1]
    right = p[..., R_HIP, :] - p[..., L_HIP, :]
    right[..., 1] = 0.0
    right = _unit(right)
    forward = np.cross(up, right)  # at rest right = +z, so forward = y × z = +x
    vel = np.zeros_like(p)
    vel[:, 1:] = (p[:, 1:] - p[:, :-1]) * fps
    vel[:, 0] = vel[:, 1] if p.shape[1] > 1 else 0.0
    speed = np.linalg.norm(vel, axis=-1)

    def along(j: int, origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
        return np.sum((p[..., j, :] - origin) * direction, axis=-1)

    names: list[str] = []
    rels: list[np.ndarray] = []

    def add(name: str, value: np.ndarray) -> None:
        names.append(name)
        rels.append(value)

    torso = p[..., NECK, :] - p[..., ROOT, :]
    torso_tilt = _angle(torso, np.broadcast_to(up, torso.shape))
    for side, (hip, knee, ankle, sho, elb, wri, ohip, oankle, osho) in {
        "r": (R_HIP, R_KNEE, R_ANKLE, R_SHOULDER, R_ELBOW, R_WRIST, L_HIP, L_ANKLE, L_SHOULDER),
        "l": (L_HIP, L_KNEE, L_ANKLE, L_SHOULDER, L_ELBOW, L_WRIST, R_HIP, R_ANKLE, R_SHOULDER),
    }.items():
        outward = _unit(p[..., sho, :] - p[..., osho, :])
        add(f"{side}_hand_in_front", along(wri, p[..., ROOT, :], forward) > 0.5 * hl)
        add(f"{side}_hand_behind", along(wri, p[..., ROOT, :], forward) < -0.3 * hl)
        add(f"{side}_hand_above_neck", y[..., wri] > y[..., NECK] + 0.2 * hl)
        add(f"{side}_hand_below_knee", y[..., wri] < y[..., knee])
        add(f"{side}_hand_sideways", along(wri, p[..., sho, :], outward) > 0.5 * hl)
        add(f"{side}_hand_near_neck", np.linalg.norm(p[..., wri, :] - p[..., NECK, :], axis=-1) < hl)
        add(f"{side}_elbow_bent", _angle(p[..., elb, :] - p[..., sho, :], p[..., wri, :] - p[..., elb, :]) > 60.0)
        add(f"{side}_knee_bent", _angle(p[..., knee, :] - p[..., hip, :], p[..., ankle, :] - p[..., knee, :]) > 45.0)
        add(f"{side}_foot_raised", y[..., ankle] > y[..., oankle] + 0.4 * hl)
        add(f"{side}_foot_in_front", along(ankle, p[..., oankle, :], forward) > 1.0 * hl)
        add(f"{side}_foot_above_hip", y[..., ankle] > y[..., hip])
        add(f"{side}_hand_fast", speed[..., wri] > 5.0 * hl)
        add(f"{side}_foot_fast", speed[..., ankle] > 5.0 * hl)
        add(f"{side}_hand_moving_up", vel[..., wri, 1] > 2.0 * hl)
    add("hands_apart", np.linalg.norm(p[..., R_WRIST, :] - p[..., L_WRIST, :], axis=-1) > 2.0 * sw)
    add("hands_together", np.linalg.norm(p[..., R_WRIST, :] - p[..., L_WRIST, :], axis=-1) < 0.5 * sw)
    add("feet_apart", np.linalg.norm(p[..., R_ANKLE, :] - p[..., L_ANKLE, :], axis=-1) > 2.5 * hw)
    add("both_feet_up", np.minimum(y[..., R_ANKLE], y[..., L_ANKLE]) > 0.7 * hl)
    add("root_low", y[..., ROOT] < 2.2 * hl)
    add("root_fast", speed[..., ROOT] > 5.0 * hl)
    add("root_moving_up", vel[..., ROOT, 1] > 1.5 * hl)
    add("root_moving_down", vel[..., ROOT, 1] < -1.5 * hl)
    add("torso_upright", torso_tilt < 30.0)
    add("torso_lying", (torso_tilt > 60.0) & (torso_tilt < 120.0))
    add("upside_down", torso_tilt > 120.0)
    return names, rels


def geometric_feature_names() -> list[str]:
    """Names of the relations, in the order of :func:`geometric_features`' columns."""
    names, _ = _relations(np.zeros((1, 2, 15, 3)) + np.arange(15)[None, None, :, None] * 0.1, 20.0)
    return names


GEOMETRIC_DIM = 2 * 14 + 11


def geometric_features(positions: np.ndarray, fps: float) -> np.ndarray:
    """(N, GEOMETRIC_DIM) share of frames in which each relation holds, from (N, T, 15, 3)
    positions (or (T, 15, 3) -> (GEOMETRIC_DIM,))."""
    p = np.asarray(positions, np.float64)
    single = p.ndim == 3
    if single:
        p = p[None]
    if p.ndim != 4 or p.shape[-2:] != (15, 3):
        raise ValueError(f"expected positions of shape (N, T, 15, 3), got {np.shape(positions)}")
    _, rels = _relations(p, fps)
    out = np.stack([r.astype(np.float64).mean(axis=1) for r in rels], axis=-1)
    return out[0] if single else out
