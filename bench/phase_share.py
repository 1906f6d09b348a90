"""Where a generation's time goes, per arm: each phase's share of ``time/generation_s``
(train, sample, correct, evaluate; and ``timing/metrics_s``, the metrics alone, inside evaluate),
from the records of a run directory or committed report folder. Prints one JSON object.

    python bench/phase_share.py runs/evalshare --generations 1-3

Issue 17 asks that evaluation stay within 10 % of a generation; ``evaluate`` is the whole phase
(drawing ``eval.num_samples`` samples from the new generator, then scoring them), ``metrics``
the scoring alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

PHASES = ("train", "sample", "correct", "evaluate")


def shares(records: list[dict], lo: int, hi: int) -> dict:
    rows = [r for r in records if lo <= r["generation"] <= hi and r.get("time/generation_s")]
    if not rows:
        return {}
    out: dict = {"generations": len(rows),
                 "generation_s_median": round(statistics.median(r["time/generation_s"] for r in rows), 2)}
    for phase in PHASES:
        key = f"time/{phase}_s"
        if any(key in r for r in rows):
            values = [r.get(key, 0.0) / r["time/generation_s"] for r in rows]
            out[f"{phase}_share_median"] = round(statistics.median(values), 4)
            out[f"{phase}_share_max"] = round(max(values), 4)
            out[f"{phase}_s_median"] = round(statistics.median(r.get(key, 0.0) for r in rows), 2)
    if all("timing/metrics_s" in r for r in rows):
        out["metrics_share_median"] = round(statistics.median(r["timing/metrics_s"] / r["time/generation_s"]
                                                              for r in rows), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--generations", default="1-1000000", help="A-B: the generations to summarise (default: all ≥ 1)")
    args = ap.parse_args()
    from sccl.metrics.report import ReportError, load_run

    lo, _, hi = args.generations.partition("-")
    try:
        arms = load_run(args.run_dir)  # read as `sccl report` reads them
    except ReportError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps({arm.name: shares(arm.history, int(lo), int(hi or lo)) for arm in arms}, indent=1))


if __name__ == "__main__":
    main()
