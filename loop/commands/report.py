"""``sccl report RUN_DIR --out DIR``: a static HTML page of a sweep's collapse curves."""

from __future__ import annotations

import argparse
from pathlib import Path

from sccl.loop.commands import Subparsers


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "report",
        help="static HTML report of a run: every arm's curves per metric, final-generation table with 95%% CIs",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory (with arms/<arm>/metrics.jsonl)")
    p.add_argument("--out", default=None, help="output directory (default: RUN_DIR/report)")
    p.add_argument("--smooth", type=int, default=None, metavar="K",
                   help="draw a moving average over K generations over the raw curves "
                        "(default: none up to 60 generations, then about 1/20 of the run; 1 = raw)")
    p.add_argument("--window", type=int, default=1, metavar="K",
                   help="table: average each arm over its last K generations before the interval over seeds "
                        "(default 1 = last generation)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from sccl.metrics.report import build_report

    run_dir = Path(args.run_dir)
    out = Path(args.out) if args.out else run_dir / "report"
    path = build_report(run_dir, out, smooth=args.smooth, window=args.window)
    print(path)
    return 0
