"""Pictures: collapse curves per arm and short GIFs of generated next to real motions.

Matplotlib with the Agg backend (headless, no display); GIFs are assembled with Pillow. The
stick figures are drawn from forward-kinematics positions with a fixed oblique camera (a plain
2-D projection: several times faster than matplotlib's 3-D axes and good enough to see a fall,
a foot through the floor or a frozen pose).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

#: Order of namespaces in figures and tables.
NAMESPACE_ORDER = ("quality", "diversity", "memorisation", "physics", "correction", "toy")


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def metric_sort_key(key: str) -> tuple[int, str]:
    ns = key.split("/", 1)[0]
    return (NAMESPACE_ORDER.index(ns) if ns in NAMESPACE_ORDER else len(NAMESPACE_ORDER), key)


def metric_keys(history: Sequence[dict], skip_prefixes: tuple[str, ...] = ("timing/",)) -> list[str]:
    """Numeric metric keys present in any row (excluding "generation" and timings), in display order."""
    keys: set[str] = set()
    for row in history:
        for k, v in row.items():
            if k == "generation" or k.startswith(skip_prefixes) or isinstance(v, bool):
                continue
            if isinstance(v, (int, float)):
                keys.add(k)
    return sorted(keys, key=metric_sort_key)


def plot_collapse_curves(
    history: Sequence[dict], out_png: Path, title: str | None = None, keys: Sequence[str] | None = None
) -> Path:
    """One small panel per metric against generation (NaN/missing points are skipped)."""
    plt = _mpl()
    keys = list(keys) if keys is not None else metric_keys(history)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    ncols = min(4, max(1, len(keys)))
    nrows = max(1, math.ceil(len(keys) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False)
    gens = np.array([row.get("generation", i) for i, row in enumerate(history)], dtype=float)
    for ax, key in zip(axes.flat, keys):
        vals = np.array([_num(row.get(key)) for row in history])
        ok = np.isfinite(vals)
        ax.plot(gens[ok], vals[ok], marker="o", ms=3, lw=1.5)
        ax.set_title(key, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.set_xlabel("generation", fontsize=7)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return out_png


def _num(v: object) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


# ---------------------------------------------------------------------------- GIFs
def _project(p: np.ndarray) -> np.ndarray:
    """(..., 3) y-up world points -> (..., 2) screen coordinates of an oblique camera."""
    az, el = np.radians(35.0), np.radians(15.0)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    u = np.cos(az) * x - np.sin(az) * z
    depth = np.sin(az) * x + np.cos(az) * z
    v = np.cos(el) * y - np.sin(el) * depth
    return np.stack([u, v], axis=-1)


def render_motions_gif(
    motions_real: Sequence,
    motions_generated: Sequence,
    out_gif: Path,
    fps: float,
    max_per_row: int = 4,
) -> Path:
    """A GIF with real clips on the top row and generated clips on the bottom row.

    Each figure is centred on its own first-frame root (ground position) so clips that walk
    away stay in view for a window's length; the floor is drawn at y = 0. Clips of different
    lengths loop on the longest."""
    from PIL import Image

    from sccl.motion.kinematics import forward_kinematics
    from sccl.motion.skeleton import load_skeleton

    plt = _mpl()
    parents = load_skeleton().parents
    rows = [list(motions_real)[:max_per_row], list(motions_generated)[:max_per_row]]
    names = ["real", "generated"]
    cols = max(1, max(len(r) for r in rows))
    pos = [[forward_kinematics(m).positions for m in r] for r in rows]
    frames = max((p.shape[0] for r in pos for p in r), default=1)
    fig, axes = plt.subplots(2, cols, figsize=(1.8 * cols, 3.6), squeeze=False)
    lines = []
    for ri, r in enumerate(pos):
        for ci in range(cols):
            ax = axes[ri][ci]
            ax.set_xlim(-1.2, 1.2)
            ax.set_ylim(-0.3, 2.0)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if ci >= len(r):
                ax.axis("off")
                continue
            ax.axhline(0.0, color="0.6", lw=1)
            label = getattr(rows[ri][ci], "label", None)
            ax.set_title(f"{names[ri]}: {label}" if label else names[ri], fontsize=7)
            colour = "tab:blue" if ri == 0 else "tab:red"
            segs = [ax.plot([], [], color=colour, lw=2)[0] for b in parents if b >= 0]
            lines.append((r[ci], segs))
    fig.tight_layout()
    images = []
    for t in range(frames):
        for p, segs in lines:
            q = p[t % p.shape[0]] - p[0, 0] * np.array([1.0, 0.0, 1.0])
            s = _project(q)
            for seg, (b, parent) in zip(segs, [(b, pa) for b, pa in enumerate(parents) if pa >= 0]):
                seg.set_data([s[parent, 0], s[b, 0]], [s[parent, 1], s[b, 1]])
        fig.canvas.draw()
        buf = np.asarray(fig.canvas.buffer_rgba())[..., :3]
        images.append(Image.fromarray(buf.copy()).quantize(colors=64))
    plt.close(fig)
    out_gif = Path(out_gif)
    out_gif.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(out_gif, save_all=True, append_images=images[1:], duration=int(round(1000.0 / fps)), loop=0)
    return out_gif
