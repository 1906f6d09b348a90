"""``sccl ui [RUN_DIR]``: the MLflow UI on 127.0.0.1 against the configured store, with the deep
link to each sweep's collapse curves printed first."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from sccl.loop.commands import Subparsers
from sccl.motion.errors import UserError

log = logging.getLogger(__name__)


def register(sub: Subparsers) -> None:
    ui = sub.add_parser("ui", help="open the MLflow UI (binds 127.0.0.1 unless --host is given)",
                        description="Serve the MLflow UI for a local store and print the link to the collapse "
                                    "curves of a sweep (RUN_DIR) or of the newest sweeps in the store.")
    ui.add_argument("run_dir", nargs="?", default=None, metavar="RUN_DIR",
                    help="a run directory (runs/NAME): link to its sweep and use its tracking store")
    ui.add_argument("--tracking-uri", default=None,
                    help="store to show (default: RUN_DIR's store, else MLFLOW_TRACKING_URI or sqlite:///mlflow.db "
                         "in this directory)")
    ui.add_argument("--host", default="127.0.0.1", help="interface to bind (default %(default)s: this machine only)")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--open", action="store_true", help="open the collapse curves in a browser once the UI answers")
    ui.set_defaults(func=cmd_ui)


def sweep_links(tracking_uri: str, base_url: str, run_dir: str | None, newest: int = 5) -> list[tuple[str, str]]:
    """(description, deep link) of RUN_DIR's sweep, or of the `newest` sweeps in the store."""
    from sccl.loop.store import read_json
    from sccl.loop.tracking import SHARED_VIEW_PREFIX, Tracker, chart_view_url

    if run_dir is not None:
        sweep = read_json(Path(run_dir) / "sweep.json")
        if not sweep or "experiment_id" not in sweep or "parent_run_id" not in sweep:
            raise UserError(f"{run_dir}: not a run directory of `sccl run` (no sweep.json with MLflow ids)")
        return [(f"sweep {sweep.get('name')} ({run_dir})",
                 chart_view_url(base_url, sweep["experiment_id"], sweep["parent_run_id"]))]
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri[len("sqlite:///"):]).exists():
        return []  # no store yet: opening one with a client would create the database file
    tracker = Tracker(tracking_uri)
    tracker.check()
    experiments = {e.experiment_id: e for e in tracker.client.search_experiments()}
    if not experiments:
        return []
    runs = tracker.client.search_runs(list(experiments), filter_string="tags.`sccl.kind` = 'sweep'",
                                      order_by=["attributes.start_time DESC"], max_results=newest)
    links = []
    for run in runs:
        exp = experiments[run.info.experiment_id]
        if SHARED_VIEW_PREFIX + run.info.run_id in exp.tags:
            where = run.data.tags.get("sccl.run_dir", "")
            links.append((f"sweep {run.info.run_name} in experiment {exp.name} ({where})",
                          chart_view_url(base_url, exp.experiment_id, run.info.run_id)))
    return links


def _open_when_up(base_url: str, link: str, timeout: float = 120.0) -> None:
    import webbrowser

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=2):
                webbrowser.open(link)
                return
        except OSError:
            time.sleep(0.5)
    log.warning("the MLflow UI did not answer within %.0f s; open %s yourself", timeout, link)


def cmd_ui(args: argparse.Namespace) -> int:
    from sccl.loop.store import read_json
    from sccl.loop.tracking import default_tracking_uri, ui_base_url

    uri = args.tracking_uri
    if uri is None and args.run_dir is not None:
        uri = (read_json(Path(args.run_dir) / "sweep.json") or {}).get("tracking_uri")
    uri = uri or default_tracking_uri()
    remote = uri.startswith(("http://", "https://"))
    base_url = ui_base_url(uri, "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host, args.port)
    links = sweep_links(uri, base_url, args.run_dir)
    for text, link in links:
        print(f"collapse curves of {text}:\n  {link}")
    if not links:
        print("no sweep with a chart view in this store yet (run `sccl run CONFIG` first)")
    if remote:
        print(f"the tracking store is a server already: {uri}")
        if args.open and links:
            import webbrowser

            webbrowser.open(links[0][1])
        return 0
    # argument list, never a shell string: nothing from the config reaches a shell
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", args.host,
           "--port", str(args.port)]
    print(f"MLflow UI for {uri} on http://{args.host}:{args.port}  (Ctrl-C to stop)", flush=True)
    env = dict(os.environ)
    env.pop("MLFLOW_EXPERIMENT_ID", None)
    if args.open and links:
        threading.Thread(target=_open_when_up, args=(base_url, links[0][1]), daemon=True).start()
    proc = subprocess.Popen(cmd, env=env)
    # the UI server must not outlive this command: a SIGTERM (a job scheduler, `timeout`) is
    # passed on; Ctrl-C reaches both processes through the terminal's process group
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.wait()
        return 0
