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
    p.add_argument("--markdown", action="store_true",
                   help="print a Markdown table instead of writing HTML: per group of arms, the mean over "
                        "--generations with a 95%% t-interval over seeds and every seed's value, "
                        "and the real-data floor (reference.json) as the first row")
    p.add_argument("--generations", default=None, metavar="A-B",
                   help="--markdown: average each arm over generations A..B (default: 1 to the last)")
    p.add_argument("--statistic", default="mean", choices=["mean", "median"],
                   help="--markdown: summarise each seed's generations A..B by their mean (default) or median "
                        "(robust to single-generation spikes)")
    p.add_argument("--keys", default=None, metavar="K1,K2",
                   help="--markdown: metric columns (default: FID, FID_k, FID_g, recall, recognition, Div_k, "
                        "Phys-Err, acceptance)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from sccl.metrics.report import build_report, load_reference, load_run

    run_dir = Path(args.run_dir)
    if args.markdown:
        from sccl.metrics.tables import DEFAULT_KEYS, markdown_table, parse_generations

        arms = load_run(run_dir)
        last = max(int(r.get("generation", 0)) for a in arms for r in a.history)
        lo, hi = parse_generations(args.generations) if args.generations else (1, last)
        keys = [k.strip() for k in args.keys.split(",") if k.strip()] if args.keys else list(DEFAULT_KEYS)
        keys = keys if args.keys else [k for k in keys if any(k in r for a in arms for r in a.history)]
        print(markdown_table(arms, keys, lo, hi, reference=load_reference(run_dir), statistic=args.statistic), end="")
        return 0
    out = Path(args.out) if args.out else run_dir / "report"
    path = build_report(run_dir, out, smooth=args.smooth, window=args.window)
    print(path)
    return 0
