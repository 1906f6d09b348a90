"""``sccl run CONFIG [key=value ...]`` and ``sccl resume RUN_DIR``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from sccl.loop.commands import Subparsers
from sccl.loop.config import load_config
from sccl.loop.interrupts import exit_status, stop_like_ctrl_c_on_sigterm


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


def _until_stopped(run_dir: Path, work: Callable[[], object]) -> int:
    """Run the sweep; Ctrl-C or SIGTERM ends it with the exit status a shell expects and says
    what to do next (the generations completed so far are on disk)."""
    stop_like_ctrl_c_on_sigterm()
    try:
        return _finish(work())
    except KeyboardInterrupt:
        print(f"\nstopped: the generations completed so far are kept in {run_dir}; "
              f"continue with `sccl resume {run_dir}`", file=sys.stderr)
        return exit_status()


def cmd_run(args: argparse.Namespace) -> int:
    from sccl.loop.sweep import run_config

    cfg = load_config(args.config, args.overrides)
    return _until_stopped(Path(cfg.run_dir), lambda: run_config(cfg, sys.stderr))


def cmd_resume(args: argparse.Namespace) -> int:
    from sccl.loop.sweep import resume_run_dir

    return _until_stopped(Path(args.run_dir), lambda: resume_run_dir(args.run_dir, args.overrides, sys.stderr))
