"""How reproducible is an arm's number, and how many seeds does it need? Prints one JSON object.

For every group of arms that differ only by seed, and every metric asked for: each seed's mean
or median over a range of generations (the quantity RESULTS.md tables report), the spread of those
summaries between seeds, the generation-to-generation noise within a seed, and the number of seeds that
would bring the 95 % t-interval's half-width down to ``--rel`` of the mean. A seed's number is a
draw from that between-seed spread, which is also what a different machine gives (the physics
arm's low-bit differences across CPUs act like another seed once training amplifies them; see
RESULTS.md §3b), so the spread is the honest answer to "how reproducible is this figure".

    python bench/seed_spread.py docs/results/bandai_collapse --generations 1-15 [--rel 0.1]
        [--statistic median] [--keys quality/fid,quality/fid_k] [--groups self_correcting_l1,baseline]

Reads only the run directory's ``arms/*/metrics.jsonl`` (a committed report folder is one).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


def seeds_needed(sd: float, mean: float, rel: float, max_seeds: int = 1000) -> int | None:
    """Smallest n ≥ 2 with t(0.975, n-1)·sd/√n ≤ rel·|mean| (None if not within ``max_seeds``)."""
    from scipy import stats

    if not (math.isfinite(sd) and math.isfinite(mean)) or mean == 0:
        return None
    target = rel * abs(mean)
    for n in range(2, max_seeds + 1):
        if stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) <= target:
            return n
    return None


def spread(values_per_seed: list[list[float]], rel: float, statistic: str = "mean") -> dict:
    """Between-seed spread of per-seed summaries (mean or median over the generations), and the
    within-seed generation-to-generation noise."""
    from sccl.metrics.report import mean_ci
    from sccl.metrics.tables import STATISTICS

    summaries = [float(STATISTICS[statistic](v)) if v else math.nan for v in values_per_seed]
    finite = [m for m in summaries if math.isfinite(m)]
    mean, half, n = mean_ci(finite)
    sd = float(np.std(finite, ddof=1)) if n > 1 else math.nan
    within = [float(np.std(v, ddof=1)) for v in values_per_seed if len(v) > 1]
    return {
        "per_seed": [round(m, 4) for m in summaries],
        "mean": round(mean, 4),
        "between_seed_sd": round(sd, 4),
        "between_seed_cv": round(sd / abs(mean), 4) if mean else None,
        "ci95_half_width": round(half, 4) if math.isfinite(half) else None,
        "within_seed_generation_sd": round(float(np.mean(within)), 4) if within else None,
        f"seeds_for_ci95_within_{rel:g}_of_mean": seeds_needed(sd, mean, rel) if n > 1 else None,
    }


def main() -> None:
    from sccl.metrics.report import ReportError, _num, group_arms, load_run
    from sccl.metrics.tables import DEFAULT_KEYS, arm_values, parse_generations

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", help="a run directory or a committed report folder (arms/*/metrics.jsonl)")
    ap.add_argument("--generations", default="1-15", help="inclusive range A-B averaged per seed")
    ap.add_argument("--rel", type=float, default=0.1, help="target 95%% half-width as a fraction of the mean")
    ap.add_argument("--keys", default=",".join(DEFAULT_KEYS), help="comma-separated metric keys")
    ap.add_argument("--statistic", default="mean", choices=["mean", "median"],
                    help="summary of each seed's generations (median resists single-generation spikes)")
    ap.add_argument("--groups", default="", help="comma-separated arm groups (default: all)")
    args = ap.parse_args()
    try:
        lo, hi = parse_generations(args.generations)
        if not 0 < args.rel < 1:
            raise ReportError(f"--rel {args.rel}: expected a fraction between 0 and 1")
        groups = group_arms(load_run(args.run_dir))
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    wanted = [g for g in args.groups.split(",") if g]
    unknown = [g for g in wanted if g not in groups]
    if unknown:
        print(f"error: --groups {','.join(unknown)}: not in the run (it has {', '.join(groups)})", file=sys.stderr)
        raise SystemExit(2)
    keys = [k for k in args.keys.split(",") if k]
    out: dict = {"run": os.path.basename(os.path.abspath(args.run_dir)), "generations": [lo, hi], "rel": args.rel,
                 "statistic": args.statistic, "groups": {}}
    for gname, members in groups.items():
        if wanted and gname not in wanted:
            continue
        members = sorted(members, key=lambda a: _num(a.params.get("seed")))
        out["groups"][gname] = {"seeds": [a.params.get("seed") for a in members], "metrics": {}}
        for key in keys:
            per_seed = [arm_values(a, key, lo, hi) for a in members]
            if any(per_seed):
                out["groups"][gname]["metrics"][key] = spread(per_seed, args.rel, args.statistic)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
