"""Foot skating of a run's samples, split into feet sliding on the floor and feet hovering in the
contact band; prints one JSON object.

Phys-Err's ``skate_mm`` counts a foot's horizontal motion whenever its lowest point is below
2 cm on two consecutive frames. A simulated foot rests on the floor where mocap feet float a
few cm above it, so a corrector moves frames into that band, and a low swing foot there is
counted as skating without touching anything. :func:`sccl.simulators.plausibility.physics_metrics`
splits the figure: ``skate_sliding_mm`` (the foot within 5 mm of the floor on both frames)
and ``skate_hovering_mm`` (the rest). This reads every ``synthetic.npz`` of a run directory
and gives, per arm and generation, the mean of each part (the loop's ``physics/*`` definition:
windows decoded to clips, :func:`sccl.metrics.motion_metrics.physics_per_sample`):

* ``raw``: all samples the generator drew;
* ``raw_kept`` and ``corrected``: for a corrected arm, the kept samples before and after
  correction (the same samples), i.e. what the corrector adds;
* ``real``: ``--real N`` training windows of each seed's data, the floor.

Only numpy and forward kinematics: no simulation and no evaluator, so it runs in seconds.

    python bench/skate_split.py runs/bandai_ilc [--arms A,B] [--generations 1,5,10,15] [--real 256]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

PARTS = ("skate_mm", "skate_sliding_mm", "skate_hovering_mm")


def _correction_shift():
    """``bench/correction_shift.py`` as a module (bench/ is not a package): its run-directory
    arguments and arm iteration are reused, not copied."""
    spec = importlib.util.spec_from_file_location("bench_correction_shift", os.path.join(_HERE, "correction_shift.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def skate_parts(features: np.ndarray, fps: float) -> dict[str, float]:
    """Mean of each skate part over the windows (N, T, 62); NaN parts for no windows."""
    from sccl.metrics.motion_metrics import physics_per_sample

    if len(features) == 0:
        return {k: float("nan") for k in PARTS} | {"n": 0}
    rows = physics_per_sample(features, fps)
    return {k: round(float(np.mean([r[k] for r in rows])), 3) for k in PARTS} | {"n": int(len(rows))}


def main() -> None:
    from sccl.loop.store import read_npz

    shift = _correction_shift()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shift.add_run_arguments(ap)
    ap.add_argument("--real", type=int, default=0, help="also split this many real training windows per seed")
    args = ap.parse_args()
    out: dict = {"run": Path(args.run_dir).resolve().name, "arms": {}, "real": {}}
    for arm_dir, cfg, files in shift.run_arms(args):
        fps = float(cfg.data.fps)
        corrected_arm = cfg.corrector.name != "none"
        rows = {}
        for g, path in files.items():
            d = read_npz(path)
            row = {"raw": skate_parts(d["raw"], fps)}
            if corrected_arm:
                row["raw_kept"] = skate_parts(d["raw"][d["kept_index"]], fps)
                row["corrected"] = skate_parts(d["corrected"], fps)
            rows[g] = row
        out["arms"][arm_dir.name] = rows
        print(f"{arm_dir.name}: {len(rows)} generations", file=sys.stderr)
        real_key = f"seed{cfg.seed}"
        if args.real and real_key not in out["real"]:
            from sccl.loop.realdata import load_real_data

            real = load_real_data(cfg.data, cfg.seed)
            train = real.dataset.train
            pick = np.random.default_rng(0).choice(len(train), min(args.real, len(train)), replace=False)
            out["real"][real_key] = skate_parts(train.features[pick], fps)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
