"""MLflow bookkeeping of a sweep: its runs (one sweep run, one top-level run per arm, recorded in
``sweep.json`` before any compute so that a crash never duplicates one), their params, the
shared chart view, and delivery of the arms' spooled generation records.

The driver alone talks to MLflow; arms only write ``metrics.jsonl`` (docs/ARCHITECTURE.md,
"The driver alone talks to MLflow")."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from sccl.loop.arm import ArmPaths
from sccl.loop.config import ArmSpec, ExperimentConfig, flatten
from sccl.loop.provenance import provenance
from sccl.loop.store import read_jsonl, write_json
from sccl.loop.tasks import task_class
from sccl.loop.tracking import KEY_METRICS, SWEEP_TAG, Tracker, chart_view_url, ui_base_url

log = logging.getLogger(__name__)


def register_runs(tracker: Tracker, cfg: ExperimentConfig, arms: list[ArmSpec], run_dir: Path, experiment: str,
                  sweep: dict[str, Any], sweep_path: Path) -> None:
    """Create (or find again) the sweep's MLflow runs and chart view, recording each in
    ``sweep`` (written to ``sweep_path`` as soon as a run exists)."""
    exp_id = tracker.experiment_id(experiment)
    sweep["experiment_id"] = exp_id
    # versions, CPU flags, threads, math fingerprints: what explains a machine-dependent result
    # (the driver's machine; each arm records its own in provenance.jsonl)
    env = provenance()
    parent = sweep.get("parent_run_id")
    if not parent or not tracker.run_exists(parent, exp_id):
        # a crash between creating the run and writing sweep.json must not leave a twin
        parent_tags = {"sccl.run_dir": str(run_dir), "sccl.kind": "sweep"}
        parent = (tracker.find_run(exp_id, parent_tags)
                  or tracker.create_run(exp_id, f"sweep:{cfg.name}", tags=parent_tags))
        sweep["parent_run_id"] = parent
        write_json(sweep_path, sweep)
        axes = sorted({k for a in arms for k in a.params})
        tracker.log_params(parent, {"sweep.arms": len(arms), "sweep.axes": ",".join(axes), **env,
                                    **{f"base.{k}": v for k, v in flatten(cfg.to_dict()).items()
                                       if k not in ("arms", "grid")}})
        tracker.client.log_artifact(parent, str(run_dir / "config.yaml"))
    older_nested_layout = sweep.get("layout") != "top-level-arms"
    sweep["layout"] = "top-level-arms"
    for arm in arms:
        run_id = sweep["runs"].get(arm.name)
        if not run_id or not tracker.run_exists(run_id, exp_id):
            arm_tags = {"sccl.arm": arm.name, "sccl.group": arm.group, "sccl.run_dir": str(run_dir),
                        SWEEP_TAG: parent}
            run_id = (tracker.find_run(exp_id, {"sccl.arm": arm.name, "sccl.run_dir": str(run_dir)})
                      or tracker.create_run(exp_id, arm.name, tags=arm_tags))
            sweep["runs"][arm.name] = run_id
            write_json(sweep_path, sweep)  # before any compute: a crash never duplicates runs
            params = {**{f"axis.{k}": v for k, v in arm.params.items()},
                      **{k: v for k, v in flatten(arm.config.to_dict()).items() if k not in ("arms", "grid")},
                      **env}
            tracker.log_params(run_id, params)
        paths = ArmPaths(run_dir / "arms" / arm.name)
        arm_json = paths.root / "arm.json"
        first_time = not arm_json.exists()
        write_json(arm_json, {"name": arm.name, "group": arm.group, "params": arm.params,
                              "mlflow_run_id": run_id, "config": arm.config.to_dict()})
        if first_time:
            tracker.client.log_artifact(run_id, str(arm_json))  # the arm's resolved config
        elif older_nested_layout:
            # runs of sweeps started when arms were nested under the sweep run
            tracker.unnest(run_id)
            tracker.set_tags(run_id, {SWEEP_TAG: parent})
    groups = [a.group for a in arms]
    share_key = tracker.save_chart_view(
        exp_id, parent, chart_metrics(arms), group_by_tag="sccl.group" if len(set(groups)) < len(groups) else None,
        n_runs=len(arms))
    sweep["chart_url"] = chart_view_url(ui_base_url(tracker.tracking_uri), exp_id, share_key)


def chart_metrics(arms: list[ArmSpec]) -> list[str]:
    """The key metrics this sweep logs, in :data:`KEY_METRICS` order."""
    charted = {k for a in arms for k in task_class(a.config.data.kind).charts(KEY_METRICS)}
    corrected = any(a.config.corrector.name != "none" for a in arms)
    return [k for k in KEY_METRICS if k in charted and (corrected or not k.startswith("correction/"))]


class Delivery:
    """Sends spooled generation records to MLflow, each at most once per driver; during an
    outage it retries every 30 s and the records stay spooled."""

    def __init__(self, tracker: Tracker, run_dir: Path, arms: list[ArmSpec]) -> None:
        self.tracker, self.run_dir, self.arms = tracker, run_dir, arms
        self.delivered: dict[str, set[int]] = {}
        self._last_delivery_attempt = 0.0
        self._outage_logged = False

    def deliver(self, runs: dict[str, str], force: bool = False) -> int:
        """Send spooled generation records to MLflow; returns how many remain undelivered."""
        now = time.time()
        if not force and now - self._last_delivery_attempt < (30.0 if self._outage_logged else 0.5):
            return -1
        self._last_delivery_attempt = now
        remaining = 0
        for arm in self.arms:
            run_id = runs[arm.name]
            records = read_jsonl(ArmPaths(self.run_dir / "arms" / arm.name).metrics)
            done = self.delivered.setdefault(arm.name, set())
            todo = [r for r in records if int(r["generation"]) not in done]
            if not todo:
                continue
            try:
                self.tracker.log_generations(run_id, todo)
                done.update(int(r["generation"]) for r in todo)
                if self._outage_logged:
                    log.warning("MLflow reachable again; spooled generations delivered")
                    self._outage_logged = False
            except Exception as exc:  # noqa: BLE001 - an outage must not stop the run
                if not self._outage_logged:
                    log.warning("MLflow unreachable (%s); metrics stay spooled in %s and are retried",
                                type(exc).__name__, self.run_dir)
                    self._outage_logged = True
                remaining += len(todo)
        return remaining
