"""The ``sccl`` command line.

Bad input (a :class:`motion.errors.UserError`) is reported on one line naming the file or
field, with exit code 2 and no traceback; ``--debug`` shows the traceback anyway.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

import sccl.loop.commands as commands
from sccl.motion.errors import UserError

log = logging.getLogger("sccl")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sccl", description="Self-correcting self-consuming training loops for human motion."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"sccl.loop.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not args.debug:
        for noisy in ("mlflow", "alembic", "urllib3", "ray", "filelock"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
