"""The driver: expands a config into arms, trains shared generation-0 models once, runs the
arms in parallel on Ray, shows live progress and delivers every generation to MLflow.

Why Ray core and not Ray Tune: an arm is a long, stateful, multi-generation job with its own
atomic checkpoints, resume semantics and MLflow run id. Tune would add a second experiment
state, a second checkpoint format and its own MLflow callback that would fight ours over run
ids and steps, and we need none of its schedulers or search algorithms (the grid is known up
front). Ray core gives exactly what is needed: one task per arm inside a placement group that
also holds the arm's correction actors (so nested resources never deadlock the cluster).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sccl.loop.provenance import provenance
from sccl.loop.arm import ArmPaths, ArmRunner, evaluator_cache_dir, train_generation0
from sccl.loop.placement import (alive_nodes, bundles as _bundles, check_device, check_fits_cluster,
                            check_requests_feasible, gen0_cpus, task_device)
from sccl.loop.config import ArmSpec, ConfigError, ExperimentConfig, config_from_dict, expand_arms, flatten
from sccl.generators.base import CheckpointError
from sccl.loop.realdata import load_real_data
from sccl.loop.store import RunDirError, RunDirLock, atomic_write_bytes, read_json, read_jsonl, write_json
from sccl.loop.tracking import KEY_METRICS, SWEEP_TAG, Tracker, chart_view_url, default_tracking_uri, ui_base_url
from sccl.motion.errors import UserError

log = logging.getLogger(__name__)


#: Config keys (dotted prefixes) that ``sccl resume RUN_DIR key=value`` may change: where a run
#: executes and reports, never what it computes. The fingerprint ignores exactly these (and
#: output_dir, which RUN_DIR replaces).
RESUME_OVERRIDABLE = ("ray", "mlflow", "eval.gif", "eval.plots")


def config_fingerprint(cfg: ExperimentConfig) -> str:
    """What must not change between a run and its resumption."""
    d = cfg.to_dict()
    for key in ("output_dir", *RESUME_OVERRIDABLE):
        *path, last = key.split(".")
        node = d
        for part in path:
            node = node.get(part, {})
        node.pop(last, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class SweepResult:
    run_dir: Path
    experiment: str
    tracking_uri: str
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    undelivered: int = 0
    chart_url: str = ""  #: deep link to the sweep's collapse curves in the MLflow UI
    wall_s: float = 0.0
    timings: dict[str, dict[str, float]] = field(default_factory=dict)  #: seconds per phase, per arm (+ "driver")


class Progress:
    """Live status lines, one per arm: generation g/G, phase, step, ETA.

    On a terminal the block is redrawn in place; otherwise a line is printed whenever an
    arm's generation or phase changes (readable in CI logs and ``ray job logs``)."""

    def __init__(self, arms: list[str], generations: dict[str, int], stream=None) -> None:
        self.arms, self.generations = arms, generations
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._drawn = 0
        self._last_key: dict[str, tuple] = {}
        self.t0 = time.time()
        # Wide enough for whole names (arms of a sweep often differ only in their last
        # characters, e.g. the seed), capped so a redrawn line does not wrap on a terminal.
        self.name_width = min(60, max([3, *(len(a) for a in arms)]))

    def line(self, arm: str, st: dict[str, Any]) -> str:
        big_g = self.generations[arm]
        g = st.get("generation", 0)
        phase = st.get("phase", "waiting")
        step, steps = st.get("step"), st.get("steps")
        detail = f" {step}/{steps}" if phase == "train" and steps else ""
        loss = f" loss {st['loss']:.3f}" if phase == "train" and "loss" in st else ""
        started = st.get("started")
        eta = ""
        if started and g > 0 and phase != "done":
            per_gen = (time.time() - started) / g
            eta = f" ETA {_fmt_s(per_gen * (big_g + 1 - g))}"
        return f"{_fit(arm, self.name_width)} gen {g}/{big_g} {phase:10}{detail}{loss}{eta}"

    def update(self, statuses: dict[str, dict[str, Any]], force: bool = False) -> None:
        lines = [self.line(a, statuses.get(a, {})) for a in self.arms]
        if self.tty:
            if self._drawn:
                self.stream.write(f"\x1b[{self._drawn}F")
            for text in lines:
                self.stream.write("\x1b[2K" + text + "\n")
            self._drawn = len(lines)
            self.stream.flush()
            return
        for arm, text in zip(self.arms, lines):
            st = statuses.get(arm, {})
            key = (st.get("generation"), st.get("phase") == "done")
            if force or self._last_key.get(arm) != key:
                self._last_key[arm] = key
                self.stream.write(f"[{_fmt_s(time.time() - self.t0)}] {text}\n")
        self.stream.flush()


def _fit(name: str, width: int) -> str:
    """`name` padded to `width`; if longer, its middle is elided so the distinguishing end stays."""
    if len(name) <= width:
        return f"{name:{width}}"
    tail = width // 3
    return name[: width - tail - 1] + "…" + name[-tail:]


def _fmt_s(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


# ------------------------------------------------------------------------ Ray helpers
def init_ray(cfg: ExperimentConfig) -> bool:
    """Connect to RAY_ADDRESS / ray.address, or start an embedded local Ray. Returns True
    if this call started Ray (and so should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                              "configure_logging": True, "log_to_driver": True}
    if address:
        log.info("connecting to Ray cluster at %s", address)
        ray.init(address=address, **kwargs)
    else:
        # Ray >= 2.5x turns token authentication on for a new local cluster (and writes
        # ~/.ray/auth_token) and warns about it on every start. For an embedded cluster that
        # lives as long as this command, that is the right default and the warning is noise;
        # the warning alone is dropped, the authentication stays.
        token_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
        token_log.addFilter(_drop_default_token_notice)
        try:
            ray.init(num_cpus=cfg.ray.num_cpus, **kwargs)
        finally:
            token_log.removeFilter(_drop_default_token_notice)
    return True


def _drop_default_token_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


def _total_need(arm: ArmSpec) -> dict[str, float]:
    """Everything an arm's placement group reserves, summed (it must fit one node)."""
    need: dict[str, float] = {}
    for b in _bundles(arm.config):
        for k, v in b.items():
            need[k] = need.get(k, 0.0) + v
    return need


def _set_threads(cpus: float) -> None:
    import torch

    torch.set_num_threads(max(1, int(round(cpus))))


def _task_device(spec: ArmSpec, who: str) -> str | None:
    """The arm's torch device inside its Ray task: follows the GPUs Ray reserved for it (see
    :mod:`loop.placement`). None for generators without a device (the Gaussian toys)."""
    if spec.config.generator.name != "diffusion":
        return None
    return task_device(spec.config.generator.params.get("device", "auto"), who)


def _gen0_task(spec: ArmSpec, out: str, cpus: float) -> str:
    _set_threads(cpus)
    real = load_real_data(spec.config.data, spec.config.seed)
    gen = train_generation0(spec, real, device=_task_device(spec, f"generation 0 of {spec.name}"))
    gen.save(Path(out))
    return out


def _arm_task(spec: ArmSpec, run_dir: str, gen0: str | None) -> dict[str, Any]:
    _set_threads(spec.config.ray.arm_cpus)
    return ArmRunner(spec, Path(run_dir), Path(gen0) if gen0 else None,
                     device=_task_device(spec, f"arm {spec.name}")).run()


# ---------------------------------------------------------------------------- driver
class Driver:
    def __init__(self, cfg: ExperimentConfig, run_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir or cfg.run_dir).resolve()
        self.arms = expand_arms(cfg)
        self.experiment = cfg.mlflow.experiment or cfg.name
        self.tracker = Tracker(cfg.mlflow.tracking_uri or default_tracking_uri(), cfg.mlflow.artifact_location)
        self.sweep_path = self.run_dir / "sweep.json"
        self.sweep: dict[str, Any] = {}
        self.delivered: dict[str, set[int]] = {}
        self._last_delivery_attempt = 0.0
        self._outage_logged = False
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
        exp_id = self.tracker.experiment_id(self.experiment)
        sweep["experiment_id"] = exp_id
        parent = sweep.get("parent_run_id")
        if not parent or not self.tracker.run_exists(parent, exp_id):
            # a crash between creating the run and writing sweep.json must not leave a twin
            parent_tags = {"sccl.run_dir": str(self.run_dir), "sccl.kind": "sweep"}
            parent = (self.tracker.find_run(exp_id, parent_tags)
                      or self.tracker.create_run(exp_id, f"sweep:{self.cfg.name}", tags=parent_tags))
            sweep["parent_run_id"] = parent
            write_json(self.sweep_path, sweep)
            axes = sorted({k for a in self.arms for k in a.params})
            self.tracker.log_params(parent, {"sweep.arms": len(self.arms), "sweep.axes": ",".join(axes), **provenance(),
                                             **{f"base.{k}": v for k, v in flatten(self.cfg.to_dict()).items()
                                                if k not in ("arms", "grid")}})
            self.tracker.client.log_artifact(parent, str(self.run_dir / "config.yaml"))
        migrated = set() if sweep.get("layout") != "top-level-arms" else {a.name for a in self.arms}
        sweep["layout"] = "top-level-arms"
        for arm in self.arms:
            run_id = sweep["runs"].get(arm.name)
            if not run_id or not self.tracker.run_exists(run_id, exp_id):
                arm_tags = {"sccl.arm": arm.name, "sccl.group": arm.group, "sccl.run_dir": str(self.run_dir),
                            SWEEP_TAG: parent}
                run_id = (self.tracker.find_run(exp_id, {"sccl.arm": arm.name, "sccl.run_dir": str(self.run_dir)})
                          or self.tracker.create_run(exp_id, arm.name, tags=arm_tags))
                sweep["runs"][arm.name] = run_id
                write_json(self.sweep_path, sweep)  # before any compute: a crash never duplicates runs
                params = {**{f"axis.{k}": v for k, v in arm.params.items()},
                          **{k: v for k, v in flatten(arm.config.to_dict()).items() if k not in ("arms", "grid")},
                          **provenance()}  # versions, CPU flags, threads: what explains a machine-dependent result
                self.tracker.log_params(run_id, params)
            paths = ArmPaths(self.run_dir / "arms" / arm.name)
            arm_json = paths.root / "arm.json"
            first_time = not arm_json.exists()
            write_json(arm_json, {"name": arm.name, "group": arm.group, "params": arm.params,
                                  "mlflow_run_id": run_id, "config": arm.config.to_dict()})
            if first_time:
                self.tracker.client.log_artifact(run_id, str(arm_json))  # the arm's resolved config
            elif arm.name not in migrated:
                # runs of sweeps started when arms were nested under the sweep run
                self.tracker.unnest(run_id)
                self.tracker.set_tags(run_id, {SWEEP_TAG: parent})
        groups = [a.group for a in self.arms]
        share_key = self.tracker.save_chart_view(
            exp_id, parent, self._chart_metrics(), group_by_tag="sccl.group" if len(set(groups)) < len(groups) else None,
            n_runs=len(self.arms))
        sweep["chart_url"] = chart_view_url(ui_base_url(self.tracker.tracking_uri), exp_id, share_key)
        self.sweep = sweep
        write_json(self.sweep_path, sweep)

    def _chart_metrics(self) -> list[str]:
        """The key metrics this sweep logs, in :data:`KEY_METRICS` order."""
        toy = any(a.config.data.kind != "motion" for a in self.arms)
        corrected = any(a.config.corrector.name != "none" for a in self.arms)
        return [k for k in KEY_METRICS
                if k.startswith("toy/") == toy and (corrected or not k.startswith("correction/"))]

    def validate(self) -> None:
        """Bad input that would otherwise surface hours into a run, checked before anything is
        written or computed: the generator and corrector of every arm can be resolved, built
        from their config (a failing plugin import is caught here; the generator on CPU, so the
        driver needs no GPU), the configured device suits the arm's Ray resources, the real data loads, and
        the checkpoint an arm would resume from is readable and holds the right generator."""
        from sccl.correctors.registry import build_corrector
        from sccl.generators.base import read_state
        from sccl.generators.registry import build_generator
        from sccl.loop.arm import expected_checkpoint, generator_config

        built: set[str] = set()
        for arm in self.arms:
            c = arm.config
            where = f"arm {arm.name}: " if len(self.arms) > 1 else ""
            key = json.dumps([dataclasses.asdict(c.generator), dataclasses.asdict(c.corrector)], sort_keys=True,
                             default=str)
            check_device(c)  # the device against the arm's Ray resources (no GPU needed here)
            if key not in built:
                built.add(key)
                try:
                    # Built on CPU: the driver never trains, so a CPU-only head validates a GPU
                    # sweep and a GPU head holds no CUDA context for the whole sweep.
                    gcfg = generator_config(c)
                    if c.generator.name == "diffusion":
                        gcfg["device"] = "cpu"
                    build_generator(c.generator.name, gcfg)
                except UserError as exc:
                    raise ConfigError(f"{where}config key 'generator': {exc}") from None
                try:
                    build_corrector(c.corrector.name, {**c.corrector.params, "policy": c.corrector.policy}).close()
                except UserError as exc:
                    raise ConfigError(f"{where}config key 'corrector': {exc}") from None
            try:
                load_real_data(c.data, c.seed)
            except UserError as exc:
                raise ConfigError(f"{where}config key 'data': {exc}") from None
            state = read_json(ArmPaths(self.run_dir / "arms" / arm.name).state, default={}) or {}
            completed = state.get("completed", -1)
            if 0 <= completed < c.generations:
                path = ArmPaths(self.run_dir / "arms" / arm.name).checkpoint(completed)
                header = read_state(path)  # CheckpointError names the file
                for k, want in expected_checkpoint(c).items():
                    have = header["kind"] if k == "kind" else header["meta"].get(k, header["config"].get(k))
                    if have != want:
                        raise CheckpointError(f"{path}: checkpoint has {k} = {have!r}, but arm {arm.name} "
                                              f"needs {want!r}; it does not belong to this run")

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
        """Send spooled generation records to MLflow; returns how many remain undelivered."""
        now = time.time()
        if not force and now - self._last_delivery_attempt < (30.0 if self._outage_logged else 0.5):
            return -1
        self._last_delivery_attempt = now
        remaining = 0
        for arm in self.arms:
            run_id = self.sweep["runs"][arm.name]
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
        """Train (or load) the motion evaluator once, before arms start (no race between
        parallel arms), and log the real-data floor (the training windows scored as if they
        were samples) to the sweep's parent run, once, so the curves have a reference."""
        motion_arms = [a for a in pending if a.config.data.kind == "motion"]
        if not motion_arms:
            return
        from sccl.loop.evaluation import prepare_evaluator

        first = motion_arms[0]
        real = load_real_data(first.config.data, first.config.seed)
        evaluator = prepare_evaluator(real, evaluator_cache_dir(first.config), first.config.eval.evaluator_steps)
        if self.sweep.get("reference_logged"):
            return
        try:
            from sccl.loop.floors import floor_metrics

            floor = floor_metrics(motion_arms, evaluator)  # the split's floor, and one per data.n seed
            self.tracker.log_generations(self.sweep["parent_run_id"], [{"generation": 0, **floor}])
            self.sweep["reference_logged"] = True
            write_json(self.sweep_path, self.sweep)
        except Exception as exc:  # noqa: BLE001 - a missing floor never stops a run
            log.warning("could not log the real-data reference metrics: %s", exc)

    def _gen0_jobs(self, pending: list[ArmSpec]) -> dict[str, ArmSpec]:
        jobs: dict[str, ArmSpec] = {}
        for arm in pending:
            st = read_json(ArmPaths(self.run_dir / "arms" / arm.name).state, default={}) or {}
            if st.get("completed", -1) < 0 and not self.gen0_path(arm).exists():
                jobs.setdefault(arm.gen0_key(), arm)
        return jobs

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
        import ray
        from ray.util.placement_group import placement_group, remove_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        owns = init_ray(self.cfg)
        try:
            check_fits_cluster(pending)
            self._prepare_shared(pending, result)
            gen0_remote = ray.remote(_gen0_task)
            arm_remote = ray.remote(_arm_task)
            gen0_refs = []
            jobs = self._gen0_jobs(pending)
            # generation 0 runs before any arm: spread the CPUs of the largest node that can
            # hold the request (its GPU share included) over the jobs (see loop.placement)
            nodes = alive_nodes()
            gen0_needs: dict[Any, tuple[str, dict[str, float]]] = {}
            for key, arm in jobs.items():
                cpus = gen0_cpus(arm.config, len(jobs), nodes)
                opts = {"num_cpus": cpus, "num_gpus": arm.config.ray.arm_gpus}
                ref = gen0_remote.options(**opts).remote(arm, str(self.gen0_path(arm)), cpus)
                gen0_refs.append(ref)
                gen0_needs[ref] = (f"generation 0 of arm {arm.name}", {"CPU": cpus, "GPU": arm.config.ray.arm_gpus})
            last_check = time.time()
            while gen0_refs:
                done, gen0_refs = ray.wait(gen0_refs, timeout=1.0)
                for ref in done:
                    ray.get(ref)
                if time.time() - last_check > 10.0:  # a node that left must not leave us waiting for ever
                    check_requests_feasible([gen0_needs[r] for r in gen0_refs])
                    last_check = time.time()
                progress.update({a.name: {"phase": "gen0", "generation": 0} for a in pending})
            refs: dict[Any, tuple[ArmSpec, Any]] = {}
            # longest arms first (physics correction, then more synthetic data), so that on a
            # small machine the short arms fill the gaps instead of a long one running alone last
            for arm in sorted(pending, key=lambda a: (a.config.corrector.name in ("none",),
                                                     -a.config.synthetic_ratio)):
                pg = placement_group(_bundles(arm.config), strategy="PACK")
                strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0,
                                                            placement_group_capture_child_tasks=True)
                opts = {"num_cpus": max(arm.config.ray.arm_cpus, 0.01), "num_gpus": arm.config.ray.arm_gpus,
                        "scheduling_strategy": strategy, "max_retries": 0}
                ref = arm_remote.options(**opts).remote(arm, str(self.run_dir), str(self.gen0_path(arm)))
                refs[ref] = (arm, pg)
            while refs:
                done, _ = ray.wait(list(refs), timeout=1.0)
                if not done and time.time() - last_check > 10.0:  # see the generation-0 loop
                    check_requests_feasible([(f"arm {a.name}", _total_need(a)) for a, _ in refs.values()])
                    last_check = time.time()
                for ref in done:
                    arm, pg = refs.pop(ref)
                    try:
                        result.timings[arm.name] = ray.get(ref)["timings"]
                    except Exception as exc:  # noqa: BLE001
                        cause = getattr(exc, "cause", None) or exc
                        log.error("arm %s failed: %s: %s", arm.name, type(cause).__name__, cause)
                        result.failed[arm.name] = f"{type(cause).__name__}: {cause}"
                    remove_placement_group(pg)
                self.deliver()
                progress.update(self.statuses())
        finally:
            if owns:
                ray.shutdown()


def run_config(cfg: ExperimentConfig, progress_stream=None) -> SweepResult:
    return Driver(cfg).run(progress_stream)


def resume_run_dir(run_dir: str | Path, overrides: list[str] | None = None, progress_stream=None) -> SweepResult:
    """Continue every arm of RUN_DIR from its last completed generation (same MLflow runs)."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        raise RunDirError(f"{run_dir}: not a run directory (no config.yaml); start one with `sccl run CONFIG`")
    raw = yaml.safe_load(cfg_path.read_text())
    for text in overrides or []:
        key = text.split("=", 1)[0].strip()
        if not any(key == k or key.startswith(k + ".") for k in RESUME_OVERRIDABLE):
            raise ConfigError(f"override {text!r}: only {', '.join(k + ('' if '.' in k else '.*') for k in RESUME_OVERRIDABLE)} "
                              "may change on resume (they do not change what the run computes)")
    cfg = config_from_dict(raw, overrides)
    return Driver(cfg, run_dir).run(progress_stream)


def summary_text(result: SweepResult) -> str:
    lines = ["", f"output directory : {result.run_dir}", f"MLflow experiment: {result.experiment}",
             f"tracking store   : {result.tracking_uri}"]
    wanted = ["quality/fid", "quality/fid_k", "quality/recognition_acc", "diversity/diversity",
              "physics/phys_err_mm", "toy/w2", "toy/mean_error", "toy/cov_trace", "correction/acceptance_rate"]
    keys = [k for k in wanted if any(isinstance(r.get(k), (int, float)) for r in result.arms.values())]
    width = max([3, *(len(n) for n in result.arms)])  # full names: seeds differ only at the end
    header = f"{'arm':{width}} " + " ".join(f"{k.split('/')[-1]:>14}" for k in keys)
    lines += ["", header, "-" * len(header)]
    for name, rec in result.arms.items():
        vals = " ".join(f"{rec[k]:14.4g}" if isinstance(rec.get(k), (int, float)) else f"{'-':>14}" for k in keys)
        lines.append(f"{name:{width}} {vals}" + ("   FAILED" if name in result.failed else ""))
    for name, why in result.failed.items():
        lines.append(f"arm {name} failed: {why}  (fix, then `sccl resume {result.run_dir}`)")
    if result.undelivered > 0:
        lines.append(f"{result.undelivered} generation record(s) are not yet in MLflow; "
                     f"`sccl resume {result.run_dir}` delivers them once the server is reachable")
    if result.tracking_uri.startswith(("http://", "https://")):
        lines.append(f"collapse curves : {result.chart_url}")
    else:
        lines.append(f"collapse curves : sccl ui {result.run_dir}   (serves the store, then open:)")
        lines.append(f"                  {result.chart_url}")
    lines.append(f"static report   : sccl report {result.run_dir} --out {result.run_dir}/report")
    return "\n".join(lines)
