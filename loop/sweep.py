"""The driver: expands a config into arms, trains shared generation-0 models once, runs the
arms (in this process, or as Ray tasks: :mod:`sccl.loop.ray_exec`), shows live progress
(:mod:`sccl.loop.progress`) and delivers every generation to MLflow
(:mod:`sccl.loop.bookkeeping`); bad input is refused before compute (:mod:`sccl.loop.validation`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import yaml

from sccl.loop.arm import ArmPaths, ArmRunner, evaluator_cache_dir, train_generation0
from sccl.loop.bookkeeping import Delivery, chart_metrics, register_runs
from sccl.loop.config import ArmSpec, ExperimentConfig, config_from_dict, expand_arms
from sccl.loop.progress import Progress
from sccl.loop.ray_exec import _task_device, init_ray, run_on_ray
from sccl.loop.realdata import load_real_data
from sccl.loop.store import RunDirError, RunDirLock, atomic_write_bytes, read_json, read_jsonl, write_json
from sccl.loop.summary import SweepResult, summary_text
from sccl.loop.tasks import build_task, task_class
from sccl.loop.tracking import Tracker, default_tracking_uri
from sccl.loop.validation import RESUME_OVERRIDABLE, check_resume_overrides, config_fingerprint, validate_arms
from sccl.metrics.report import REFERENCE_FILE

log = logging.getLogger(__name__)

#: Names other modules and tests import from here.
__all__ = ["Driver", "Progress", "RESUME_OVERRIDABLE", "SweepResult", "chart_metrics", "config_fingerprint",
           "init_ray", "resume_run_dir", "run_config", "summary_text", "_task_device"]


class Driver:
    def __init__(self, cfg: ExperimentConfig, run_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir or cfg.run_dir).resolve()
        self.arms = expand_arms(cfg)
        self.experiment = cfg.mlflow.experiment or cfg.name
        self.tracker = Tracker(cfg.mlflow.tracking_uri or default_tracking_uri(), cfg.mlflow.artifact_location)
        self.sweep_path = self.run_dir / "sweep.json"
        self.sweep: dict[str, Any] = {}
        self.delivery = Delivery(self.tracker, self.run_dir, self.arms)
        self._lock = RunDirLock(self.run_dir)

    # --------------------------------------------------------------- set-up
    def prepare(self) -> None:
        """Everything that can fail on bad input or an unreachable tracker, before compute."""
        existing = read_json(self.sweep_path)
        fp = config_fingerprint(self.cfg)
        if existing and existing.get("fingerprint") != fp:
            raise RunDirError(
                f"{self.run_dir} holds a run of a different configuration; use another output_dir "
                f"(e.g. output_dir=runs/{self.cfg.name}-2) or `sccl resume {self.run_dir}` to continue that run"
            )
        self.validate()
        self.tracker.check()
        self._lock.acquire()  # creates the directory; refused while another driver holds it
        atomic_write_bytes(self.run_dir / "config.yaml", yaml.safe_dump(self.cfg.to_dict(), sort_keys=False).encode())
        sweep = existing or {"name": self.cfg.name, "fingerprint": fp, "created": time.time(), "runs": {}}
        sweep["experiment"] = self.experiment
        sweep["tracking_uri"] = self.tracker.tracking_uri
        register_runs(self.tracker, self.cfg, self.arms, self.run_dir, self.experiment, sweep, self.sweep_path)
        self.sweep = sweep
        write_json(self.sweep_path, sweep)

    def validate(self) -> None:
        """Bad input, before anything is written or computed (see :func:`validate_arms`)."""
        validate_arms(self.arms, self.run_dir)

    def pending_arms(self) -> list[ArmSpec]:
        out = []
        for arm in self.arms:
            st = read_json(ArmPaths(self.run_dir / "arms" / arm.name).state, default={}) or {}
            if st.get("completed", -1) < arm.config.generations:
                out.append(arm)
        return out

    def gen0_path(self, arm: ArmSpec) -> Path:
        return self.run_dir / "shared" / f"gen0-{arm.gen0_key()}.safetensors"

    # --------------------------------------------------------------- delivery
    def deliver(self, force: bool = False) -> int:
        """Send spooled generation records to MLflow; returns how many remain undelivered
        (-1: not attempted, the last attempt was too recent)."""
        return self.delivery.deliver(self.sweep["runs"], force)

    def statuses(self) -> dict[str, dict[str, Any]]:
        out = {}
        for arm in self.arms:
            paths = ArmPaths(self.run_dir / "arms" / arm.name)
            try:
                out[arm.name] = read_json(paths.status, default={}) or {}
            except RunDirError:
                out[arm.name] = {}
            st = read_json(paths.state, default={}) or {}
            if st.get("completed", -1) >= arm.config.generations:
                out[arm.name].update(phase="done", generation=arm.config.generations)
        return out

    # --------------------------------------------------------------- run
    def run(self, progress_stream=None) -> SweepResult:
        try:
            return self._run(progress_stream)
        finally:
            self._lock.release()

    def _run(self, progress_stream=None) -> SweepResult:
        t0 = time.time()
        self.prepare()
        result = SweepResult(self.run_dir, self.experiment, self.tracker.tracking_uri,
                             chart_url=self.sweep.get("chart_url", ""))
        pending = self.pending_arms()
        progress = Progress([a.name for a in self.arms], {a.name: a.config.generations for a in self.arms},
                            progress_stream)
        self.deliver(force=True)
        if pending:
            if self.cfg.ray.enabled:
                self._run_ray(pending, progress, result)
            else:
                self._run_inline(pending, progress, result)
        result.undelivered = self.deliver(force=True)
        progress.update(self.statuses(), force=True)
        for arm in self.arms:
            run_id = self.sweep["runs"][arm.name]
            records = read_jsonl(ArmPaths(self.run_dir / "arms" / arm.name).metrics)
            result.arms[arm.name] = records[-1] if records else {}
            try:
                self.tracker.finish(run_id, "FAILED" if arm.name in result.failed else "FINISHED")
            except Exception:  # noqa: BLE001
                pass
        try:
            self.tracker.finish(self.sweep["parent_run_id"], "FAILED" if result.failed else "FINISHED")
        except Exception:  # noqa: BLE001
            pass
        result.wall_s = time.time() - t0
        return result

    def _prepare_shared(self, pending: list[ArmSpec], result: SweepResult) -> None:
        t0 = time.perf_counter()
        self._prepare_evaluator(pending)
        driver = result.timings.setdefault("driver", {})
        driver["evaluate"] = driver.get("evaluate", 0.0) + time.perf_counter() - t0

    def _prepare_evaluator(self, pending: list[ArmSpec]) -> None:
        """Train (or load) the evaluator that arms share (the motion task's) once, before arms
        start (no race between parallel arms), and log the real-data floor (the training windows scored as if they
        were samples) to the sweep's parent run, once, so the curves have a reference."""
        shared = [a for a in pending if task_class(a.config.data.kind).shares_evaluator]
        if not shared:
            return
        first = shared[0]
        task = build_task(first.config, evaluator_cache_dir(first.config))
        evaluator = task.prepare()
        if self.sweep.get("reference_logged"):
            return
        try:
            floor = task.reference_metrics(evaluator, shared)
            # beside the arms too, so a report folder (and RESULTS.md tables) carry the floor
            write_json(self.run_dir / REFERENCE_FILE, dict(sorted(floor.items())))
            self.tracker.log_generations(self.sweep["parent_run_id"], [{"generation": 0, **floor}])
            self.sweep["reference_logged"] = True
            write_json(self.sweep_path, self.sweep)
        except Exception as exc:  # noqa: BLE001 - a missing floor never stops a run
            log.warning("could not log the real-data reference metrics: %s", exc)

    def _gen0_jobs(self, pending: list[ArmSpec]) -> dict[str, ArmSpec]:
        jobs: dict[str, ArmSpec] = {}
        for arm in pending:
            st = read_json(ArmPaths(self.run_dir / "arms" / arm.name).state, default={}) or {}
            if st.get("completed", -1) < 0 and not self.gen0_path(arm).exists() and not self._adopt_gen0(arm):
                jobs.setdefault(arm.gen0_key(), arm)
        return jobs

    def _adopt_gen0(self, arm: ArmSpec) -> bool:
        """Copy this arm's generation-0 model from ``train.gen0_from`` if that run trained the
        same one (the file name is the hash of everything generation 0 depends on)."""
        source_dir = arm.config.train.gen0_from
        if not source_dir:
            return False
        target = self.gen0_path(arm)
        source = Path(source_dir).expanduser() / "shared" / target.name
        if not source.is_file():
            log.info("%s: %s has no generation 0 for this arm's data, generator and seed; training it",
                     arm.name, source_dir)
            return False
        atomic_write_bytes(target, source.read_bytes())
        log.info("%s: generation 0 reused from %s", arm.name, source)
        return True

    def _run_inline(self, pending: list[ArmSpec], progress: Progress, result: SweepResult) -> None:
        self._prepare_shared(pending, result)
        driver = result.timings.setdefault("driver", {})
        for key, arm in self._gen0_jobs(pending).items():
            real = load_real_data(arm.config.data, arm.config.seed)
            t0 = time.perf_counter()
            train_generation0(arm, real).save(self.gen0_path(arm))
            driver["train"] = driver.get("train", 0.0) + time.perf_counter() - t0
        for arm in pending:
            def on_record(_record: dict) -> None:
                try:  # the generation is complete on disk: nothing here may fail the arm
                    self.deliver(force=True)
                    progress.update(self.statuses())
                except Exception as exc:  # noqa: BLE001
                    log.warning("delivery after a generation failed (%s: %s); the record stays spooled",
                                type(exc).__name__, exc)

            try:
                out = ArmRunner(arm, self.run_dir, self.gen0_path(arm), on_record=on_record).run()
                result.timings[arm.name] = out["timings"]
            except Exception as exc:  # noqa: BLE001 - one failing arm must not sink the sweep
                log.error("arm %s failed: %s", arm.name, exc, exc_info=log.isEnabledFor(logging.DEBUG))
                result.failed[arm.name] = f"{type(exc).__name__}: {exc}"

    def _run_ray(self, pending: list[ArmSpec], progress: Progress, result: SweepResult) -> None:
        run_on_ray(self, pending, progress, result)


def run_config(cfg: ExperimentConfig, progress_stream=None) -> SweepResult:
    return Driver(cfg).run(progress_stream)


def resume_run_dir(run_dir: str | Path, overrides: list[str] | None = None, progress_stream=None) -> SweepResult:
    """Continue every arm of RUN_DIR from its last completed generation (same MLflow runs)."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        raise RunDirError(f"{run_dir}: not a run directory (no config.yaml); start one with `sccl run CONFIG`")
    raw = yaml.safe_load(cfg_path.read_text())
    check_resume_overrides(overrides)
    cfg = config_from_dict(raw, overrides)
    return Driver(cfg, run_dir).run(progress_stream)
