"""MLflow tracking for sweeps: one experiment per sweep name, one *sweep run* (the sweep's
parameters and the real-data floor ``reference/*``) and one run per arm, metrics with
``step=generation`` (one ``log_batch`` per generation).

Arm runs are top-level runs tagged with their sweep (``sccl.sweep_run_id``), not nested under
the sweep run: MLflow's UI collapses nested runs under their parent in the runs table and the
charts, which hid every collapse curve. The experiment is tagged as a model-training
experiment (else the UI opens on its GenAI overview), and each sweep stores a *chart view* in
the experiment (the UI's own shared-view format) so one printed link opens the collapse
curves of exactly that sweep's arms, one line per arm (or per arm group, mean and band, when
seeds repeat an arm).

Only the driver talks to MLflow. Arms write each generation's record to their run
directory first (the *spool*); the driver delivers records to MLflow and remembers what it
delivered. Delivery is idempotent — before the first delivery to a run in a process, the run's
``loop/generation`` history is read back, so a crash between logging and bookkeeping never
duplicates a step — and a tracking outage only delays delivery: records stay spooled and are
retried later (or by ``sccl resume``).

The explicit :class:`mlflow.MlflowClient` API is used throughout, never the fluent
``mlflow.set_experiment``, which exports ``MLFLOW_EXPERIMENT_ID`` into the environment of the
process (and of Ray workers started from it).
"""

from __future__ import annotations

import json
import logging
import math
import os
import urllib.parse
import time
from pathlib import Path
from typing import Any

from sccl.motion.errors import UserError

log = logging.getLogger(__name__)

#: The metric every generation record carries; its history tells which steps exist.
GENERATION_KEY = "loop/generation"

#: Metrics drawn first in a sweep's chart view (those a sweep never logs are left out).
KEY_METRICS = ("quality/fid", "quality/fid_k", "quality/recall", "physics/phys_err_mm",
               "correction/acceptance_rate", "toy/w2", "toy/mean_error", "toy/cov_trace")

#: Experiment tag the MLflow UI (3.x) reads to choose between its GenAI and training views.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"
#: Experiment-tag prefix under which the MLflow UI looks up ``?viewStateShareKey=KEY``.
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
#: Tag that ties an arm run to its sweep run.
SWEEP_TAG = "sccl.sweep_run_id"


class TrackingError(UserError):
    """The tracking server cannot be reached or refused a request at start-up."""


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<cwd>/mlflow.db`` (absolute, so Ray
    workers started elsewhere and ``sccl ui`` all see the same store)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def ui_base_url(tracking_uri: str, ui_host: str = "127.0.0.1", ui_port: int = 5000) -> str:
    """Where a browser finds the MLflow UI of this store: the server itself for an http(s)
    store, else what ``sccl ui`` serves."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return f"http://{ui_host}:{ui_port}"


def chart_view_url(base_url: str, experiment_id: str, share_key: str) -> str:
    """The deep link to a sweep's chart view (see :meth:`Tracker.save_chart_view`)."""
    query = urllib.parse.urlencode({"compareRunsMode": "CHART", "viewStateShareKey": share_key,
                                    "workflowType": "machine_learning"})
    return f"{base_url}/#/experiments/{experiment_id}/runs?{query}"


def _configure_http_retries() -> None:
    # MLflow's defaults retry for minutes; a dead server must be noticed in seconds.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


class Tracker:
    """Thin, idempotent wrapper around :class:`mlflow.MlflowClient` for one sweep."""

    def __init__(self, tracking_uri: str | None = None, artifact_root: str | None = None) -> None:
        _configure_http_retries()
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.artifact_root = artifact_root
        self._client = None
        self._known_steps: dict[str, set[int]] = {}

    @property
    def client(self):
        """The MLflow client, created on first use (for the SQLite store that creates the
        database file: nothing is written before the configuration has been validated)."""
        if self._client is None:
            import mlflow

            self._client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    # --------------------------------------------------------------- set-up
    def check(self) -> None:
        """Fail fast (before any compute) when the store is unreachable."""
        try:
            self.client.search_experiments(max_results=1)
        except Exception as exc:  # noqa: BLE001 - any failure here means "cannot track"
            raise TrackingError(
                f"MLflow tracking store {self.tracking_uri} is not reachable: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200] if str(exc) else ''} "
                "(start the server, or unset MLFLOW_TRACKING_URI to use the local SQLite store)"
            ) from None

    def experiment_id(self, name: str) -> str:
        """The experiment called `name` (created or restored), tagged as model training."""
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            exp_id = exp.experiment_id
            if exp.tags.get(EXPERIMENT_KIND_TAG) == TRAINING_KIND:
                return exp_id
        else:
            location = None
            if self.tracking_uri.startswith("sqlite:") or self.tracking_uri.startswith("file:"):
                root = Path(self.artifact_root or Path.cwd() / "mlartifacts").resolve()
                location = (root / name).as_uri()
            exp_id = self.client.create_experiment(name, artifact_location=location)
        self.client.set_experiment_tag(exp_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)
        return exp_id

    def save_chart_view(self, experiment_id: str, sweep_run_id: str, metrics: list[str],
                        group_by_tag: str | None = None, n_runs: int = 10) -> str:
        """Store the chart view of one sweep in its experiment; returns the share key.

        The key is the sweep run's id, so rewriting it (every start and resume) is idempotent.
        The view filters the runs table to the sweep's arms, shows every run (the UI's default
        hides all but the first 10 from charts), and opens with a "Collapse curves" section of
        line charts over ``step = generation`` for `metrics`; the UI adds its own charts for
        every other metric below. `group_by_tag` groups runs by that tag (mean and min-max band)."""
        charts = [{
            "uuid": f"sccl-{i}", "type": "LINE", "runsCountToCompare": max(10, n_runs),
            "metricSectionId": "sccl-collapse", "deleted": False, "isGenerated": False,
            "displayName": key, "metricKey": key, "selectedMetricKeys": [key], "lineSmoothness": 0,
            "xAxisScaleType": "linear", "scaleType": "linear", "range": {}, "xAxisKey": "step",
            "selectedXAxisMetricKey": "", "yAxisKey": "metric", "yAxisExpressions": [], "ignoreOutliers": False,
            "useGlobalXaxisKey": True, "useGlobalLineSmoothing": True,
        } for i, key in enumerate(metrics)]
        state: dict[str, Any] = {
            "searchFilter": f"tags.`{SWEEP_TAG}` = '{sweep_run_id}'",
            "runsHiddenMode": "SHOW_ALL",
            "compareRunCharts": charts,
            "compareRunSections": [{"uuid": "sccl-collapse", "name": "Collapse curves", "display": True,
                                    "isReordered": False, "deleted": False, "isGenerated": False}],
            "hideEmptyCharts": True,
            "useGroupedValuesInCharts": True,
            "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
            "groupBy": ({"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": group_by_tag}]}
                        if group_by_tag else None),
        }
        self.client.set_experiment_tag(experiment_id, SHARED_VIEW_PREFIX + sweep_run_id, json.dumps(state))
        return sweep_run_id

    def create_run(self, experiment_id: str, name: str, tags: dict[str, str] | None = None) -> str:
        run = self.client.create_run(experiment_id, tags=dict(tags or {}), run_name=name)
        return run.info.run_id

    def unnest(self, run_id: str) -> None:
        """Make a run top-level (arm runs of sweeps started before arms were top-level)."""
        if "mlflow.parentRunId" in self.client.get_run(run_id).data.tags:
            self.client.delete_tag(run_id, "mlflow.parentRunId")

    def find_run(self, experiment_id: str, tags: dict[str, str]) -> str | None:
        """The live run carrying all these tags (e.g. the arm and run directory), if any."""
        parts = []
        for key, value in tags.items():
            value = str(value)
            if "'" not in value:
                parts.append(f"tags.`{key}` = '{value}'")
            elif '"' not in value:
                parts.append(f'tags.`{key}` = "{value}"')
            else:  # not expressible in MLflow's filter grammar: fall back to creating a run
                return None
        query = " and ".join(parts)
        runs = self.client.search_runs([experiment_id], filter_string=query, max_results=1)
        return runs[0].info.run_id if runs else None

    def run_exists(self, run_id: str, experiment_id: str | None = None) -> bool:
        """The run is live (and, if given, in that experiment: a resume may point a run at
        another experiment or store, and its curves must then start there)."""
        try:
            run = self.client.get_run(run_id)
        except Exception:  # noqa: BLE001
            return False
        if experiment_id is not None and run.info.experiment_id != experiment_id:
            return False
        return run.info.lifecycle_stage != "deleted"

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(run_id).data.params
        new = [Param(k[:250], _param_value(v)) for k, v in params.items() if k[:250] not in existing]
        for i in range(0, len(new), 100):
            self.client.log_batch(run_id, params=new[i:i + 100])

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    # --------------------------------------------------------------- metrics
    def logged_steps(self, run_id: str) -> set[int]:
        if run_id not in self._known_steps:
            history = self.client.get_metric_history(run_id, GENERATION_KEY)
            self._known_steps[run_id] = {int(m.step) for m in history}
        return self._known_steps[run_id]

    def log_generations(self, run_id: str, records: list[dict[str, Any]]) -> int:
        """Log spooled generation records, one ``log_batch`` per generation (records that piled
        up while the driver was busy or the server was down go out one after another).

        A record is ``{"generation": g, <metric>: value, ..., "artifacts": [[path, subdir]]}``.
        Steps already in MLflow are skipped (idempotent). Per generation the artifacts go
        first and the metrics (with ``loop/generation``) last, so a step that is in MLflow
        has its files too; a crash in between only re-uploads the same files. After a failed
        request the step cache is dropped and re-read from the server next time (a request that
        failed on our side may have succeeded on the server). Returns the number of records sent."""
        from mlflow.entities import Metric

        from sccl.loop.faults import fault_point

        known = self.logged_steps(run_id)
        todo = [r for r in records if int(r["generation"]) not in known]
        try:
            for i, record in enumerate(todo):
                g = int(record["generation"])
                # per-generation files (sub-directory set); refreshed files (the collapse curves,
                # no sub-directory) once, from the newest record
                for path, sub in record.get("artifacts", []):
                    if (sub or i == len(todo) - 1) and Path(path).exists():
                        self.client.log_artifact(run_id, path, artifact_path=sub or None)
                ts = int(time.time() * 1000)
                batch = []
                for key, value in record.items():
                    if key in ("generation", "artifacts", GENERATION_KEY) or isinstance(value, bool):
                        continue
                    if not isinstance(value, (int, float)) or math.isnan(value) or math.isinf(value):
                        continue  # MLflow rejects non-finite values; the spool (metrics.jsonl) keeps them
                    batch.append(Metric(key, float(value), ts, g))
                batch.append(Metric(GENERATION_KEY, float(g), ts, g))  # last: marks the step complete
                for j in range(0, len(batch), 1000):
                    self.client.log_batch(run_id, metrics=batch[j:j + 1000])
                fault_point("log", g)
                known.add(g)
        except BaseException:
            self._known_steps.pop(run_id, None)
            raise
        return len(todo)
