"""``sccl run CONFIG [key=value ...]`` and ``sccl resume RUN_DIR``."""

from __future__ import annotations

import argparse
import sys

from sccl.loop.commands import Subparsers
from sccl.loop.config import load_config


def register(sub: Subparsers) -> None:
    run = sub.add_parser("run", help="run an experiment (all arms of its sweep), resuming if its output exists")
    run.add_argument("config", help="experiment YAML (see configs/)")
    run.add_argument("overrides", nargs="*", metavar="key=value",
                     help="override config keys, e.g. generations=3 ray.enabled=false")
    run.set_defaults(func=cmd_run)
    resume = sub.add_parser("resume", help="continue every arm of RUN_DIR from its last completed generation")
    resume.add_argument("run_dir")
    resume.add_argument("overrides", nargs="*", metavar="key=value", help="only ray.*, mlflow.* may change")
    resume.set_defaults(func=cmd_resume)


def _finish(result) -> int:
    from sccl.loop.sweep import summary_text

    print(summary_text(result))
    return 1 if result.failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    from sccl.loop.sweep import run_config

    cfg = load_config(args.config, args.overrides)
    return _finish(run_config(cfg, sys.stderr))


def cmd_resume(args: argparse.Namespace) -> int:
    from sccl.loop.sweep import resume_run_dir

    return _finish(resume_run_dir(args.run_dir, args.overrides, sys.stderr))
