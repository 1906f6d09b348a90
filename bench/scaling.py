"""How the cost of one generation grows with the data and with the samples per generation;
prints one JSON object.

Each point runs in its own process (so that peak memory, the high-water mark of the resident
set, belongs to that point alone) and times the phases of one generation as the loop runs them:
``data_load`` (read, resample, window, split), ``gen0_train`` (a few steps of the diffusion
generator: per-step cost plus whatever it does once per data set), ``sample`` (λ·n synthetic
windows, here a fixed count or the axis), ``correct`` (the physics corrector on a few samples),
``evaluate`` (reference statistics, built once per dataset, and one ``evaluate_generation``),
``log`` (metrics.jsonl, CSV and the collapse-curve PNG). The evaluator is trained once per
dataset and cached; its training is timed separately (``evaluator_train``, fixed steps).

Axes: the data tiled ×1, ×4, ×16 (the clip files linked k times under new names in a temporary
folder: the same motion, k times the windows) at a fixed sample count; then the sample count at
×1. ``growth`` gives, per phase, the exponent b of cost ∝ size^b between the smallest and the
largest point (1 = linear; > 1.2 = faster than linear).

    python bench/scaling.py --data /tmp/bandai [--tiles 1 4 16] [--samples 32 128 512] [--steps 20]

Keep it short: ``tiny`` preset, few steps. Never point ``--data`` into the repository's tree
for tiling output: the tiles go to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def tile(src: Path, k: int, out: Path) -> Path:
    """``out`` holding every clip of ``src`` k times (symbolic links named ``<label>__t<j>_<name>``,
    so labels read from names stay those of the source)."""
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix == ".txt")
    if not files:
        raise SystemExit(f"{src}: no .txt clip files (import the data first, see docs/IMPORTERS.md)")
    for j in range(k):
        for p in files:
            label, sep, rest = p.name.partition("__")
            name = f"{label}__t{j}_{rest}" if sep else f"t{j}_{p.name}"
            (out / name).symlink_to(p.resolve())
    return out


def one_point(data: str, samples: int, correct: int, steps: int, preset: str, window: float | None) -> dict:
    """Times and peak memory of one generation's phases on one dataset (this process)."""
    import torch

    torch.set_num_threads(1)
    from sccl.correctors.registry import build_corrector
    from sccl.generators.registry import build_generator
    from sccl.loop.arm import write_metrics_table
    from sccl.loop.store import atomic_write_bytes
    from sccl.metrics.evaluator import get_evaluator
    from sccl.metrics.motion_metrics import evaluate_generation, get_reference_stats
    from sccl.metrics.plots import plot_collapse_curves
    from sccl.motion.dataset import DataConfig, build_dataset
    from sccl.motion.features import features_to_motion

    t: dict[str, float] = {}
    mem: dict[str, float] = {}

    def phase(name, fn):
        t0 = time.perf_counter()
        out = fn()
        t[name] = round(time.perf_counter() - t0, 3)
        mem[name] = round(_peak_mib(), 1)
        return out

    cfg = DataConfig(path=data)
    if window:
        cfg.window = window
    ds = phase("data_load", lambda: build_dataset(cfg))
    gen = build_generator("diffusion", {"preset": preset, "sample_steps": 10, "label_names": ds.label_names,
                                        "fps": ds.fps, "device": "cpu"})
    phase("gen0_train", lambda: gen.fit(ds.train.features, ds.train.labels, steps, seed=0))
    labels = np.random.default_rng(0).integers(0, len(ds.label_names), samples)
    syn = phase("sample", lambda: gen.sample(samples, labels, seed=1))
    corr = build_corrector("physics", {"policy": "reject"})
    motions = [features_to_motion(s, ds.fps, label=ds.label_names[y]) for s, y in zip(syn[:correct], labels)]

    def run_correct():
        corr.prepare(ds.train.motions)
        return corr.correct(motions, seed=0)

    phase("correct", run_correct)
    corr.close()
    with tempfile.TemporaryDirectory() as tmp:
        ev = phase("evaluator_train", lambda: get_evaluator(ds, Path(tmp), steps=100))
        phase("reference_stats", lambda: get_reference_stats(ds, ev))
        m = phase("evaluate", lambda: evaluate_generation(syn, labels, ds, ev))
        records = [{"generation": g, **m} for g in range(5)]

        def log_phase():
            atomic_write_bytes(Path(tmp) / "metrics.jsonl",
                               "".join(json.dumps(r, default=float) + "\n" for r in records).encode())
            write_metrics_table(records, Path(tmp) / "metrics.csv")
            plot_collapse_curves(records, Path(tmp) / "c.png")

        phase("log", log_phase)
    return {"train_windows": len(ds.train), "heldout_windows": len(ds.heldout), "samples": samples,
            "corrected": len(motions), "seconds": t, "peak_rss_mib_after": mem}


def _growth(points: list[dict], size_key: str) -> dict[str, float]:
    """Per phase, b in cost ∝ size^b between the first and the last point."""
    a, b = points[0], points[-1]
    ratio = b[size_key] / a[size_key]
    out = {}
    for k, ta in a["seconds"].items():
        tb = b["seconds"].get(k, math.nan)
        out[k] = round(math.log(max(tb, 1e-3) / max(ta, 1e-3)) / math.log(ratio), 2) if ratio > 1 else math.nan
    out["peak_rss"] = round(math.log(b["peak_rss_mib_after"]["log"] / a["peak_rss_mib_after"]["log"]) / math.log(ratio), 2)
    return out


def _child(args: argparse.Namespace, data: str, samples: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--one", data, "--samples", str(samples),
           "--correct", str(args.correct), "--steps", str(args.steps), "--preset", args.preset]
    if args.window:
        cmd += ["--window", str(args.window)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=False, help="folder of imported clips (e.g. /tmp/bandai)")
    ap.add_argument("--tiles", type=int, nargs="*", default=[1, 4, 16])
    ap.add_argument("--samples", type=int, nargs="*", default=[32, 128, 512])
    ap.add_argument("--fixed-samples", type=int, default=64, help="samples per generation on the data axis")
    ap.add_argument("--correct", type=int, default=4, help="samples the physics corrector runs on (≈1 s each)")
    ap.add_argument("--steps", type=int, default=20, help="generator training steps")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--window", type=float, default=None, help="data.window in seconds (default: the data default)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        samples = args.samples[0]
        print(json.dumps(one_point(args.one, samples, min(args.correct, samples), args.steps, args.preset,
                                   args.window)))
        return
    if not args.data or not Path(args.data).is_dir():
        raise SystemExit(f"--data {args.data}: not a folder of imported clips (see docs/IMPORTERS.md)")
    out: dict = {"data": args.data, "preset": args.preset, "steps": args.steps, "by_data": [], "by_samples": []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.tiles:
            folder = tile(Path(args.data), k, Path(tmp) / f"x{k}")
            point = {"tiles": k, **_child(args, str(folder), args.fixed_samples)}
            out["by_data"].append(point)
            print(json.dumps(point), file=sys.stderr, flush=True)
        for n in args.samples:
            point = _child(args, str(Path(tmp) / f"x{args.tiles[0]}"), n)
            out["by_samples"].append(point)
            print(json.dumps(point), file=sys.stderr, flush=True)
    ok = [p for p in out["by_data"] if "seconds" in p]
    if len(ok) > 1:
        out["growth_with_data"] = _growth(ok, "train_windows")
    ok = [p for p in out["by_samples"] if "seconds" in p]
    if len(ok) > 1:
        out["growth_with_samples"] = _growth(ok, "samples")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
