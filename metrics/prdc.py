"""Precision, recall, density and coverage on k-nearest-neighbour manifolds.

Precision/recall: Kynkäänniemi et al. 2019; density/coverage: Naeem et al. 2020. Each real
point gets a ball whose radius is the distance to its k-th nearest real neighbour (and each
fake point likewise among fakes, for recall). Precision = share of fakes inside some real ball
(quality); recall = share of reals inside some fake ball (diversity); density = mean number of
real balls containing a fake / k (≈1 for matched distributions, robust to outliers);
coverage = share of real balls that contain at least one fake.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest neighbour in the same set (self excluded)."""
    x = np.asarray(x, np.float64)
    if x.shape[0] <= k:
        raise ValueError(f"need more than k={k} points, got {x.shape[0]}")
    # in row blocks: the full (N, N) matrix grows quadratically in memory with the reference
    # set (8 000 held-out windows would need 0.5 GB); each row's k-th distance needs only its row
    out = np.empty(x.shape[0])
    step = max(1, (1 << 22) // max(x.shape[0], 1))  # ~32 MB of distances per block
    for i in range(0, x.shape[0], step):
        d = cdist(x[i : i + step], x)
        # index 0 after sorting is the point itself (distance 0)
        out[i : i + step] = np.partition(d, k, axis=1)[:, k]
    return out


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5, real_radii: np.ndarray | None = None) -> dict[str, float]:
    """Precision, recall, density, coverage of ``fake`` against ``real`` (both (N, D)).

    ``real_radii`` may be precomputed with :func:`knn_radii` (the real set is fixed across
    generations). Returns a dict with keys precision, recall, density, coverage."""
    real = np.asarray(real, np.float64)
    fake = np.asarray(fake, np.float64)
    if real_radii is None:
        real_radii = knn_radii(real, k)
    d_rf = cdist(real, fake)  # (R, F)
    inside_real = d_rf < real_radii[:, None]  # fake j inside real ball i
    precision = float(inside_real.any(axis=0).mean())
    density = float(inside_real.sum(axis=0).mean() / k)
    coverage = float((d_rf.min(axis=1) < real_radii).mean())
    if fake.shape[0] > k:
        fake_radii = knn_radii(fake, k)
        recall = float((d_rf < fake_radii[None, :]).any(axis=1).mean())
    else:
        recall = float("nan")
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}
