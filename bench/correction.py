"""Benchmark of the physics corrector; prints one JSON object.

* ``bundled``: per-clip results of the default physics corrector on the 15 bundled clips
  (success, fall time, tracking errors, assist, penetration before/after).
* ``speed``: simulated seconds per wall-second on one core (in-process, over the bundled
  clips) and the share of wall time spent outside ``stepSimulation``.
* ``ray``: wall time for N windows (~1.5 s each, cut from the bundled clips) on 1 and 2 Ray
  workers, and the speed-up (pool start-up excluded; Ray start-up reported separately).

Usage: ``python bench/correction.py [--clips 200] [--skip-ray] [--set key=value ...]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

# This folder holds scripts named like packages (loop.py, metrics.py): keep them from shadowing.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import numpy as np  # noqa: E402


def _clean(v):
    if isinstance(v, float):
        return None if not math.isfinite(v) else round(v, 4)
    return v


def windows(n: int, seconds: float = 1.5):
    """n clips of ~`seconds`, cut round-robin from the bundled clips at varying offsets."""
    from motion.deepmimic import read_directory

    sources = [rc.motion for rc in read_directory()]
    out = []
    i = 0
    while len(out) < n:
        m = sources[i % len(sources)]
        length = max(2, int(round(seconds * m.fps)))
        start = (i // len(sources) * 7) % max(1, m.num_frames - length) if m.num_frames > length else 0
        out.append(m.slice(start, min(m.num_frames, start + length)).replace(name=f"{m.name}@{start}"))
        i += 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    from correctors import build_corrector
    from loop.commands.correct import parse_settings
    from motion.deepmimic import read_directory

    config = parse_settings(args.settings)
    corrector = build_corrector("physics", config)
    clips = [rc.motion for rc in read_directory()]
    corrector.sim  # load outside the timing
    t0 = time.perf_counter()
    res = corrector.correct(clips, seed=0)
    wall = time.perf_counter() - t0
    keys = ["success", "fall_time_s", "tracking_error_mm", "root_relative_error_mm", "assist_fraction_g",
            "penetrate_before_mm", "penetrate_after_mm", "phys_err_before_mm", "phys_err_after_mm"]
    bundled = {}
    for clip, status, d in zip(clips, res.status, res.diagnostics):
        bundled[clip.label] = {"status": status, **{k: _clean(d[k]) for k in keys}}
    sim_s = sum(d["sim_seconds"] for d in res.diagnostics)
    step_s = sum(d["step_seconds"] for d in res.diagnostics)
    ok = [d for d in res.diagnostics if d["success"] == 1.0]
    report = {
        "config": corrector.sim_config.to_dict() | {k: v for k, v in config.items()},
        "bundled": bundled,
        "bundled_summary": {
            "succeeded": [c.label for c, s in zip(clips, res.status) if s == "ok"],
            "failed": [c.label for c, s in zip(clips, res.status) if s != "ok"],
            "mean_penetrate_after_mm_succeeded": _clean(float(np.mean([d["penetrate_after_mm"] for d in ok]))) if ok else None,
            "mean_penetrate_before_mm_all": _clean(float(np.mean([d["penetrate_before_mm"] for d in res.diagnostics]))),
        },
        "speed": {
            "simulated_seconds": round(sim_s, 3),
            "wall_seconds": round(wall, 3),
            "realtime_factor_per_core": round(sim_s / wall, 2),
            "share_outside_step": round(1.0 - step_s / wall, 3),
        },
    }
    corrector.close()

    if not args.skip_ray:
        import ray

        from loop.correction_pool import CorrectionPool

        batch = windows(args.clips)
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        times = {}
        total_sim = sum(c.duration for c in batch)
        for workers in (1, 2):
            pool = CorrectionPool("physics", config, num_workers=workers, batch_size=args.batch_size)
            pool.correct(batch[:workers], seed=0)  # actors up and PyBullet loaded
            t0 = time.perf_counter()
            out = pool.correct(batch, seed=0)
            times[workers] = time.perf_counter() - t0
            pool.close()
        report["ray"] = {
            "clips": len(batch),
            "simulated_seconds_reference": round(total_sim, 2),
            "ray_init_seconds": round(ray_start, 2),
            "wall_seconds_1_worker": round(times[1], 2),
            "wall_seconds_2_workers": round(times[2], 2),
            "speedup_1_to_2": round(times[1] / times[2], 2),
            "acceptance_rate": round(out.num_kept / out.num_inputs, 3),
            "counts": out.counts,
        }
        ray.shutdown()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
