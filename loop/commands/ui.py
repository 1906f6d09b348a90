"""``sccl ui``: the MLflow UI on 127.0.0.1 against the configured store."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


def register(sub: argparse._SubParsersAction) -> None:
    ui = sub.add_parser("ui", help="open the MLflow UI (binds 127.0.0.1 unless --host is given)")
    ui.add_argument("--tracking-uri", default=None,
                    help="store to show (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db in this directory)")
    ui.add_argument("--host", default="127.0.0.1", help="interface to bind (default %(default)s: this machine only)")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(func=cmd_ui)


def cmd_ui(args: argparse.Namespace) -> int:
    from loop.tracking import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri()
    if uri.startswith("http://") or uri.startswith("https://"):
        print(f"the tracking store is a server already: open {uri} in a browser")
        return 0
    # argument list, never a shell string: nothing from the config reaches a shell
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", args.host,
           "--port", str(args.port)]
    print(f"MLflow UI for {uri} on http://{args.host}:{args.port}  (Ctrl-C to stop)")
    env = dict(os.environ)
    env.pop("MLFLOW_EXPERIMENT_ID", None)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0
