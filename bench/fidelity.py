"""How faithfully does a run's corrector return the motion it is given? Prints one JSON object.

A self-correcting arm retrains on what its corrector returns, so a systematic change the
corrector makes is inherited generation after generation. Two signed per-sample diagnostics of
the physics corrector measure the vertical part of that change:

- ``root_height_bias_mm``: output − input root height. It also counts a floating input being
  put on the ground, which physics demands.
- ``crouch_mm``: loss of the root's height above the body's own lowest point. Posture only:
  the body compressing under its load, which physics does not demand.

For the run's real training windows (``--real N``, drawn with a fixed seed) and for the raw
generator samples of chosen arm generations (``--arm``, ``--generations``), this re-runs the
arm's corrector and reports each diagnostic's quantiles and the share of samples within
``--limits`` mm: the pass rate a ``max_crouch_mm`` / ``max_root_height_bias_mm`` threshold would
have. Real windows need no correction, so their distribution is what a threshold must let through.

    python bench/fidelity.py runs/bandai_collapse --arm self_correcting_l1_seed=0 \\
        --generations 1,10 --real 128 [--limits 20,30,40,50] [--set gain_scale=4 ...]

``--set key=value`` overrides the arm's corrector settings (as ``sccl correct --set``): what
another corrector setting would have done to the same samples.

Needs the run directory (``synthetic.npz`` files) and the run's data at its ``data.path``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

DIAGNOSTICS = ("root_height_bias_mm", "crouch_mm")


def summarise(diagnostics: list[dict], kept: int, limits: list[float]) -> dict:
    """Quantiles (5/25/50/75/95) and pass shares of each diagnostic over the tracked samples."""
    row: dict = {"n": len(diagnostics), "kept": kept}
    for key in DIAGNOSTICS:
        values = np.array([d.get(key, np.nan) for d in diagnostics], dtype=float)
        values = values[np.isfinite(values)]
        if not values.size:
            row[key] = None
            continue
        row[key] = {
            "tracked": int(values.size),
            "quantiles_5_25_50_75_95": np.percentile(values, [5, 25, 50, 75, 95]).round(1).tolist(),
            "share_within": {f"{limit:g}": round(float(np.mean(np.abs(values) <= limit)), 3) for limit in limits},
        }
    return row


def main() -> None:
    from sccl.correctors.registry import build_corrector
    from sccl.loop.arm import evaluator_cache_dir
    from sccl.loop.commands.correct import parse_settings
    from sccl.loop.config import config_from_dict
    from sccl.loop.kernel import corrector_config
    from sccl.loop.realdata import load_real_data
    from sccl.loop.store import read_npz
    from sccl.loop.tasks import build_task

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--arm", required=True, help="a corrected arm of the run (its corrector and data are used)")
    ap.add_argument("--generations", default="", help="comma-separated generations whose raw samples to correct")
    ap.add_argument("--real", type=int, default=128, help="real training windows to correct (0: none)")
    ap.add_argument("--limits", default="20,30,40,50", help="comma-separated thresholds (mm) to report pass shares at")
    ap.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                    help="override a corrector setting (repeatable)")
    args = ap.parse_args()
    arm_dir = Path(args.run_dir) / "arms" / args.arm
    if not (arm_dir / "arm.json").is_file():
        print(f"error: {arm_dir}: no arm.json (expected --arm to name an arm of the run)", file=sys.stderr)
        raise SystemExit(2)
    cfg = config_from_dict(json.loads((arm_dir / "arm.json").read_text())["config"])
    if cfg.corrector.name == "none":
        print(f"error: arm {args.arm} has no corrector (corrector.name: none)", file=sys.stderr)
        raise SystemExit(2)
    limits = [float(v) for v in args.limits.split(",") if v]
    real = load_real_data(cfg.data, cfg.seed)
    task = build_task(cfg, evaluator_cache_dir(cfg))
    overrides = parse_settings(args.settings)
    settings = corrector_config(cfg, real) | overrides
    corrector = build_corrector(cfg.corrector.name, settings)
    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if args.real:
        train = real.dataset.train
        pick = np.random.default_rng(1).choice(len(train), min(args.real, len(train)), replace=False)
        batches["real"] = (train.features[pick], train.labels[pick])
    for g in (int(v) for v in args.generations.split(",") if v):
        path = arm_dir / f"gen_{g:03d}" / "synthetic.npz"
        if not path.is_file():
            print(f"error: {path}: not found (generation {g} has no saved samples)", file=sys.stderr)
            raise SystemExit(2)
        d = read_npz(path)
        batches[f"generation_{g}_raw"] = (d["raw"], d["raw_labels"])
    out: dict = {"run": Path(args.run_dir).resolve().name, "arm": args.arm,
                 "corrector": {"name": cfg.corrector.name, "params": cfg.corrector.params, "overrides": overrides}, "batches": {}}
    for name, (x, y) in batches.items():
        t0 = time.perf_counter()
        result = corrector.correct(task.to_corrector(x, y, 0, "motion"), seed=0)
        row = summarise(result.diagnostics, int(len(result.kept_index)), limits)
        row["correct_seconds"] = round(time.perf_counter() - t0, 1)
        out["batches"][name] = row
        print(f"{name}: {row['n']} samples in {row['correct_seconds']} s", file=sys.stderr)
    corrector.close()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
