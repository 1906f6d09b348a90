"""Benchmark of the per-generation metrics at the quickstart settings; prints one JSON object.

Figures: evaluator training (once per dataset, cached afterwards), reference statistics (once
per process), ``evaluate_generation`` for the quickstart's 128 evaluation samples and for 520
samples, the collapse-curve PNG and the GIF, against the wall time of one quickstart generation
(diffusion preset ``small``: 300 fine-tuning steps, sampling λ·n = 256 synthetic windows and 128
evaluation windows with 20 DDIM steps; correction not included, so the ratio is pessimistic).
Sanity figures: FID train-vs-held-out, against an untrained model, and under growing noise.

    python bench/metrics.py [--no-generation | --generation-seconds S] [--evaluator-steps N]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# run as a script, this file's folder comes first on sys.path and "metrics" would be this file
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


def _time(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _generation_seconds(ds, n_train: int = 256, steps: int = 300, n_syn: int = 256, n_eval: int = 128) -> dict:
    from sccl.generators.registry import build_generator

    gen = build_generator(
        "diffusion", {"preset": "small", "sample_steps": 20, "label_names": ds.label_names, "fps": ds.fps}
    )
    x, y = ds.train.features[:n_train], ds.train.labels[:n_train]
    gen.fit(x, y, 5, seed=0)  # build the model (excluded)
    t_fit, _ = _time(lambda: gen.fit(x, y, steps, seed=1))
    labels = np.random.default_rng(0).integers(0, len(ds.label_names), n_syn)
    t_syn, _ = _time(lambda: gen.sample(n_syn, labels, seed=2))
    t_eval, samples = _time(lambda: gen.sample(n_eval, labels[:n_eval], seed=3))
    untrained = build_generator(
        "diffusion", {"preset": "small", "sample_steps": 20, "label_names": ds.label_names, "fps": ds.fps}
    )
    untrained.fit(x, y, 1, seed=0)
    return {
        "fit_s": t_fit, "sample_synthetic_s": t_syn, "sample_eval_s": t_eval,
        "total_s": t_fit + t_syn + t_eval, "trained_samples": samples,
        "untrained_samples": untrained.sample(n_eval, labels[:n_eval], seed=3), "eval_labels": labels[:n_eval],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evaluator-steps", type=int, default=600)
    ap.add_argument("--no-generation", action="store_true", help="do not time a quickstart generation")
    ap.add_argument("--generation-seconds", type=float, default=None, help="use this generation wall time")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from sccl.metrics.evaluator import get_evaluator
    from sccl.metrics.motion_metrics import ReferenceStats, evaluate_generation, reference_metrics
    from sccl.metrics.plots import plot_collapse_curves, render_motions_gif
    from sccl.motion.dataset import build_dataset
    from sccl.motion.features import features_to_motion

    ds = build_dataset()
    out: dict = {"train_windows": len(ds.train), "heldout_windows": len(ds.heldout)}
    with tempfile.TemporaryDirectory() as tmp:
        t_train, ev = _time(lambda: get_evaluator(ds, Path(tmp), steps=args.evaluator_steps))
        t_load, ev = _time(lambda: get_evaluator(ds, Path(tmp), steps=args.evaluator_steps))
    out["evaluator"] = {"steps": args.evaluator_steps, "train_s": round(t_train, 2), "load_s": round(t_load, 3),
                        **{k: ev.info[k] for k in ("train_accuracy", "heldout_accuracy") if k in ev.info}}
    t_ref, ref = _time(lambda: ReferenceStats(ds, ev))
    out["reference_stats_s"] = round(t_ref, 2)

    rng = np.random.default_rng(0)

    def noisy(sigma: float) -> np.ndarray:
        f = ds.train.features
        return (f + sigma * ds.stats.std * rng.standard_normal(f.shape)).astype(np.float32)

    s128 = noisy(0.1)[rng.choice(len(ds.train), 128, replace=False)]
    l128 = ds.train.labels[:128]
    t128, _ = _time(lambda: evaluate_generation(s128, l128, ds, ev, reference=ref), repeat=2)
    t520, _ = _time(lambda: evaluate_generation(noisy(0.1), ds.train.labels, ds, ev, reference=ref), repeat=2)
    t520_nophys, _ = _time(
        lambda: evaluate_generation(noisy(0.1), ds.train.labels, ds, ev, reference=ref, physics=False), repeat=2
    )
    history = [{"generation": g, **evaluate_generation(s128, l128, ds, ev, reference=ref)} for g in range(5)]
    with tempfile.TemporaryDirectory() as tmp:
        t_png, _ = _time(lambda: plot_collapse_curves(history, Path(tmp) / "c.png"))
        gen_m = [features_to_motion(s128[i], ds.fps) for i in range(3)]
        t_gif, _ = _time(lambda: render_motions_gif(ds.heldout.motions[:3], gen_m, Path(tmp) / "m.gif", ds.fps))
    out["evaluate_s"] = {"n128": round(t128, 2), "n520": round(t520, 2), "n520_without_physics": round(t520_nophys, 2),
                         "collapse_png": round(t_png, 2), "gif_3v3": round(t_gif, 2)}
    per_gen = t128 + t_png + t_gif

    keys = ("quality/fid", "quality/fid_train", "quality/fid_k", "quality/fid_g", "quality/recognition_acc",
            "physics/phys_err_mm", "physics/jitter")
    floor = reference_metrics(ds, ev, reference=ref)
    out["sanity"] = {"train_vs_heldout": {k: round(floor[k], 3) for k in keys}}
    noise = {}
    for sigma in (0.0, 0.3, 0.6, 1.2):
        m = evaluate_generation(noisy(sigma), ds.train.labels, ds, ev, reference=ref)
        noise[str(sigma)] = {k: round(m[k], 3) for k in keys}
    out["sanity"]["noise_sigma_std_units"] = noise
    f = ds.train.features
    iid = (ds.stats.mean + ds.stats.std * rng.standard_normal(f.shape)).astype(np.float32)
    m = evaluate_generation(iid, ds.train.labels, ds, ev, reference=ref)
    out["sanity"]["iid_noise_with_data_stats"] = {k: round(m[k], 3) for k in keys}

    gen_s = args.generation_seconds
    if not args.no_generation and gen_s is None:
        g = _generation_seconds(ds)
        gen_s = g["total_s"]
        out["quickstart_generation"] = {k: round(v, 2) for k, v in g.items() if k.endswith("_s")}
        for name in ("untrained_samples", "trained_samples"):
            m = evaluate_generation(g[name], g["eval_labels"], ds, ev, reference=ref)
            out["sanity"][f"diffusion_small_{name}"] = {k: round(m[k], 3) for k in keys}
    out["per_generation_metrics_s"] = round(per_gen, 2)
    if gen_s:
        out["generation_s"] = round(gen_s, 2)
        out["metrics_fraction_of_generation"] = round(per_gen / gen_s, 4)
        out["target_fraction"] = 0.10
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
