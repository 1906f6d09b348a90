"""``sccl report RUN_DIR --out DIR``: a static HTML page of a sweep's collapse curves."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="static HTML report of a run: every arm's curves per metric, final-generation table with 95%% CIs",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory (with arms/<arm>/metrics.jsonl)")
    p.add_argument("--out", default=None, help="output directory (default: RUN_DIR/report)")
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from metrics.report import build_report

    run_dir = Path(args.run_dir)
    out = Path(args.out) if args.out else run_dir / "report"
    path = build_report(run_dir, out)
    print(path)
    return 0
