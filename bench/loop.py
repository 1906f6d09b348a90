"""Loop overhead. Prints JSON: for each config, the wall time of a full run, the seconds spent
in training, sampling, correction and evaluation (summed over arms and the driver), the share
of wall time spent outside them (orchestration, logging, checkpointing; target ≤ 5 % for the
quickstart) and the peak resident memory.

Arms run in-process (``ray.enabled=false``) so that every second is attributed exactly; add
``--ray`` to measure the Ray driver instead (then arms overlap and the share is computed
against the summed arm time).

Usage: ``python bench/loop.py [--configs smoke,quickstart] [--ray] [key=value ...]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from sccl.loop.config import load_config  # noqa: E402
from sccl.loop.sweep import run_config  # noqa: E402

WORK = ("train", "sample", "correct", "evaluate")


def bench(name: str, use_ray: bool, overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        over = [f"output_dir={tmp}/run", f"mlflow.tracking_uri=sqlite:///{tmp}/mlflow.db",
                f"ray.enabled={'true' if use_ray else 'false'}", *overrides]
        cfg = load_config(REPO / "configs" / f"{name}.yaml", over)
        t0 = time.perf_counter()
        result = run_config(cfg, open(os.devnull, "w"))
        wall = time.perf_counter() - t0
    phases: dict[str, float] = {}
    for timings in result.timings.values():
        for phase, seconds in timings.items():
            phases[phase] = phases.get(phase, 0.0) + seconds
    work = sum(phases.get(p, 0.0) for p in WORK)
    other = {p: round(s, 2) for p, s in phases.items() if p not in WORK}
    accounted = wall if not use_ray else sum(sum(t.values()) for t in result.timings.values())
    return {
        "config": name,
        "ray": use_ray,
        "arms": len(result.arms),
        "generations": cfg.generations,
        "failed_arms": sorted(result.failed),
        "wall_s": round(wall, 2),
        "phase_s": {p: round(phases.get(p, 0.0), 2) for p in WORK},
        "other_measured_s": other,
        "outside_work_s": round(wall - work, 2) if not use_ray else None,
        "outside_work_share": round(1.0 - work / accounted, 4) if accounted > 0 else None,
        "target_share": 0.05,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="smoke,quickstart")
    parser.add_argument("--ray", action="store_true", help="run arms as Ray tasks")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    out = {"machine": {"cpus": os.cpu_count()}, "results": []}
    for name in args.configs.split(","):
        out["results"].append(bench(name, args.ray, args.overrides))
        print(json.dumps(out["results"][-1]), file=sys.stderr)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
