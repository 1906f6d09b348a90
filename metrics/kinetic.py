"""Kinetic features (AIST++ / Bailando FID_k), adapted to the simulation humanoid's 15 bodies.

Per body and per window: average horizontal kinetic energy ½⟨v_x² + v_z²⟩ (y is up),
average vertical kinetic energy ½⟨v_y²⟩, and average energy expenditure ⟨‖a‖⟩ (mean
acceleration magnitude), all with unit mass from finite differences of forward-kinematics
positions. They depend on velocities only, so a clip translated in space has the same
features (and the same FID_k). Layout of the 45-d vector: [h_0..h_14, v_0..v_14, e_0..e_14].
"""

from __future__ import annotations

import numpy as np

NUM_BODIES = 15
KINETIC_DIM = 3 * NUM_BODIES


def kinetic_features(positions: np.ndarray, fps: float) -> np.ndarray:
    """(N, 45) kinetic features of (N, T, 15, 3) positions (or (T, 15, 3) -> (45,)).

    Needs T >= 3 (one acceleration)."""
    p = np.asarray(positions, np.float64)
    single = p.ndim == 3
    if single:
        p = p[None]
    if p.ndim != 4 or p.shape[-1] != 3 or p.shape[1] < 3:
        raise ValueError(f"expected positions of shape (N, T>=3, B, 3), got {np.shape(positions)}")
    v = np.diff(p, axis=1) * fps  # (N, T-1, B, 3)
    a = np.diff(v, axis=1) * fps  # (N, T-2, B, 3)
    horizontal = 0.5 * (v[..., 0] ** 2 + v[..., 2] ** 2).mean(axis=1)
    vertical = 0.5 * (v[..., 1] ** 2).mean(axis=1)
    expenditure = np.linalg.norm(a, axis=-1).mean(axis=1)
    out = np.concatenate([horizontal, vertical, expenditure], axis=-1)
    return out[0] if single else out
