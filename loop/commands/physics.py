"""``sccl physics IN``: physical plausibility metrics of clips (no simulation)."""

from __future__ import annotations

import argparse
import json

from sccl.loop.commands import Subparsers


def register(sub: Subparsers) -> None:
    p = sub.add_parser("physics", help="physics plausibility metrics of clips (penetrate, float, skate, jitter)",
                              description="Penetrate/float/skate (mm, PhysDiff definitions on the humanoid's collision "
                                          "shapes), their sum Phys-Err, and jitter (mean body acceleration, m/s^2).")
    p.add_argument("input", metavar="IN", help="a clip file or a directory of clips (DeepMimic format)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_physics)


def cmd_physics(args: argparse.Namespace) -> int:
    from sccl.motion.deepmimic import read_clip
    from sccl.loop.commands.correct import input_files
    from sccl.simulators.plausibility import METRIC_KEYS, physics_metrics

    files = input_files(args.input)
    rows = [{"clip": f.name, **physics_metrics(read_clip(f).motion)} for f in files]
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in METRIC_KEYS}
    if args.json:
        print(json.dumps({"clips": rows, "mean": mean}, indent=2))
    else:
        print(f"{'clip':36s} " + " ".join(f"{k:>13s}" for k in METRIC_KEYS))
        for r in rows + [{"clip": "mean", **mean}]:
            print(f"{r['clip']:36s} " + " ".join(f"{r[k]:13.2f}" for k in METRIC_KEYS))
    return 0
