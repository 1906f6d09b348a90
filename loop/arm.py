"""One arm of an experiment on disk: the generation kernel (:mod:`sccl.loop.kernel`) run
generation after generation, with checkpoints, archives, the metrics spool and live status
around it.

Everything an arm needs to continue lives in its directory (``RUN_DIR/arms/<name>/``):

* ``state.json`` — the last *completed* generation and its checkpoint (written last, atomically:
  a generation counts only once this file says so);
* ``gen_XXX/generator.safetensors`` — the model after generation XXX (the last few are kept);
* ``gen_XXX/synthetic.npz`` — every synthetic sample of generation XXX *before* and *after*
  correction, its label, its correction status and diagnostics (kept for audit and replay;
  regime ``accumulate`` reads them back on resume);
* ``metrics.jsonl`` — one record per generation (the spool the driver delivers to MLflow);
* ``status.json`` — live progress (phase, step) for the driver's display.

The kernel seeds every random draw from (arm seed, generation, purpose), so a resumed arm
repeats exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

import logging
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sccl.generators.base import Generator, save_state
from sccl.loop.callbacks import CallbackList, GenerationPhaseSeconds, LoopCallback, OnRecord, StatusFile, Timings
from sccl.loop.config import ArmSpec, ExperimentConfig
from sccl.loop.faults import fault_callbacks
from sccl.loop.kernel import (CorrectedBatch, Generation, GenerationKernel, InlineCorrection, corrector_config,
                              derive_seed, generator_config, mix_training_set)
from sccl.loop.realdata import RealData
from sccl.loop.store import read_json, read_jsonl, read_npz, remove_stale_temp_files, write_json, write_jsonl, write_npz
from sccl.loop.tasks import Task, build_task, draw_labels, task_class

log = logging.getLogger(__name__)

__all__ = ["ArmPaths", "ArmRunner", "InlineCorrection", "StatusWriter", "clear_arm", "corrector_config",
           "derive_seed", "draw_labels", "evaluator_cache_dir", "expected_checkpoint", "generator_config",
           "mix_training_set", "train_generation0", "write_metrics_table"]


@dataclass
class ArmPaths:
    root: Path

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def provenance(self) -> Path:
        return self.root / "provenance.jsonl"

    def gen_dir(self, g: int) -> Path:
        return self.root / f"gen_{g:03d}"

    def checkpoint(self, g: int) -> Path:
        return self.gen_dir(g) / "generator.safetensors"

    def synthetic(self, g: int) -> Path:
        return self.gen_dir(g) / "synthetic.npz"


class StatusWriter:
    """Throttled live status (phase, generation, step) for the driver's progress display."""

    def __init__(self, path: Path, arm: str, generations: int) -> None:
        self.path, self.arm, self.generations = path, arm, generations
        self.state: dict[str, Any] = {"arm": arm, "generations": generations, "started": time.time()}
        self._last = 0.0

    def update(self, force: bool = False, **fields: Any) -> None:
        self.state.update(fields, updated=time.time())
        if force or time.time() - self._last > 1.0:
            write_json(self.path, self.state)
            self._last = time.time()


class _Archive(LoopCallback):
    """Writes each generation's corrected batch to ``gen_XXX/synthetic.npz`` as soon as the
    correction is done (for audit and replay, and the ``accumulate`` history on resume)."""

    def __init__(self, paths: ArmPaths, callbacks: LoopCallback) -> None:
        self.paths, self.callbacks = paths, callbacks

    def on_correction(self, g: int, batch: CorrectedBatch) -> None:
        result = batch.result
        diag_keys = sorted({k for d in result.diagnostics for k in d})
        diag = {f"diag_{k}": np.array([float(d.get(k, np.nan)) for d in result.diagnostics]) for k in diag_keys}
        write_npz(
            self.paths.synthetic(g),
            raw=batch.raw.astype(np.float32),
            raw_labels=batch.labels if batch.labels is not None else np.zeros(0, np.int64),
            corrected=batch.kept,
            kept_index=batch.kept_index,
            status=np.array(result.status, dtype=str),
            before_replace=lambda tmp: self.callbacks.on_commit(g, "synthetic", tmp),
            **diag,
        )


class ArmRunner:
    """Runs (or resumes) one arm to its last generation: the kernel's generations, each made
    durable (archive → checkpoint → curves, table → spool → state) before the next begins.

    ``callbacks`` watch every generation (:mod:`sccl.loop.callbacks`); ``on_record`` is a
    shorthand for a callback that only wants each completed generation's record."""

    def __init__(self, spec: ArmSpec, run_dir: Path, gen0_checkpoint: Path | None = None,
                 on_record: Callable[[dict], None] | None = None, device: str | None = None,
                 callbacks: list[LoopCallback] | None = None) -> None:
        self.spec = spec
        #: torch device of the arm's generator (None: the configured one); under Ray, what the
        #: arm's reserved resources give it. Checkpoints are loaded onto it, whatever device
        #: wrote them.
        self.device = device
        self.cfg = spec.config
        self.paths = ArmPaths(Path(run_dir) / "arms" / spec.name)
        self.gen0_checkpoint = gen0_checkpoint
        self.cache_dir = evaluator_cache_dir(spec.config)
        self.user_callbacks: list[LoopCallback] = list(callbacks or []) + ([OnRecord(on_record)] if on_record else [])
        self.timings: dict[str, float] = {}
        self._provenance_due = False  #: provenance.jsonl goes with the first record of a start or resume

    # ----------------------------------------------------------------- helpers
    def _load_generator(self, path: Path) -> Generator:
        from sccl.generators import generator_class, load_generator

        device = self.device
        if device is None and generator_class(self.cfg.generator.name).uses_device:
            device = self.cfg.generator.params.get("device", "auto")
        return load_generator(path, expect=expected_checkpoint(self.cfg), device=device)

    def _remove_stale_temps(self) -> None:
        """Temporary files of writes that a crash interrupted (never read; removed on restart,
        also when Ray retries the arm within one driver's run)."""
        removed = remove_stale_temp_files(self.paths.root)
        if removed:
            log.info("%s: removed %d temporary file(s) left by an interrupted write", self.spec.name, removed)

    def _timed(self, g: int, phase: str, fn: Callable[[], Any]) -> Any:
        """Time the runner's own work on a phase's files (the GIF, the curves) as that phase."""
        t0 = time.perf_counter()
        out = fn()
        self.callbacks.on_phase_end(g, phase, time.perf_counter() - t0)
        return out

    def _history(self, completed: int, real: RealData) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """The kept synthetic samples of generations 1..completed, from their archives (the
        ``accumulate`` regime trains on them)."""
        history: list[tuple[np.ndarray, np.ndarray | None]] = []
        if self.cfg.regime != "accumulate":
            return history
        for h in range(1, completed + 1):
            path = self.paths.synthetic(h)
            if path.exists():
                old = read_npz(path)
                history.append((old["corrected"], old["raw_labels"][old["kept_index"]]
                                if real.train_labels is not None else None))
        return history

    # ------------------------------------------------------------------- main
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temps()
        status = StatusWriter(self.paths.status, self.spec.name, cfg.generations)
        # the archive comes first: a callback that fails on a corrected batch finds it on disk
        self.callbacks = CallbackList()
        self.phase_seconds = GenerationPhaseSeconds()
        self.callbacks.callbacks = [_Archive(self.paths, self.callbacks), StatusFile(status), Timings(self.timings),
                                    self.phase_seconds,
                                    *self.user_callbacks, *fault_callbacks()]
        state = read_json(self.paths.state, default={}) or {}
        completed = state.get("completed", -1)
        records = [r for r in read_jsonl(self.paths.metrics) if r["generation"] <= completed]
        self._record_where_it_runs(completed + 1)
        self._provenance_due = True
        task = build_task(cfg, self.cache_dir)
        kernel = GenerationKernel(cfg, task, device=self.device, callbacks=self.callbacks,
                                  make_pool=lambda: self._make_pool(task))
        try:
            if completed < 0:
                started = time.time()
                out = kernel.generation0(self._shared_generation0())
                self._commit(out, task, records, started)
                completed = 0
            else:
                gen = self._load_generator(self.paths.checkpoint(completed))
                kernel.history = self._history(completed, task.real)
                out = Generation(completed, gen, {})
                log.info("%s: resuming after generation %d", self.spec.name, completed)
            for g in range(completed + 1, cfg.generations + 1):
                started = time.time()
                out = kernel.step(g, out.generator)
                self._commit(out, task, records, started)
                completed = g
            self.callbacks.on_phase(cfg.generations, "done")
            return {"arm": self.spec.name, "completed": completed, "timings": self.timings,
                    "final": records[-1] if records else {}}
        finally:
            kernel.close()

    def _record_where_it_runs(self, first_generation: int) -> None:
        """Append the machine this process runs on (host, versions, CPU, threads, math
        fingerprints) to the arm's ``provenance.jsonl``, one line per start or resume.

        The sweep's ``env.*`` MLflow params describe the driver; on a cluster, or when an arm is
        resumed elsewhere, the arm's generations were computed on other machines, and a physics
        arm's numbers depend on that machine's libm (docs/RESULTS.md §3b)."""
        from sccl.loop.provenance import MATH_FINGERPRINTS, provenance

        segments = read_jsonl(self.paths.provenance)
        here = {"from_generation": first_generation, "host": socket.gethostname(), "started": time.time(),
                **provenance()}
        if segments:
            before = segments[-1]
            changed = [k for k in MATH_FINGERPRINTS if k in before and before.get(k) != here.get(k)]
            if changed:
                log.warning("%s: resumed at generation %d on a machine whose math differs from the one that "
                            "computed the earlier generations (%s): later generations are not bit-comparable "
                            "with an uninterrupted run", self.spec.name, first_generation, ", ".join(changed))
        write_jsonl(self.paths.provenance, [*segments, here])

    def _shared_generation0(self) -> Generator | None:
        """Generation 0 trained once for every arm with the same gen0 key (None: train it here)."""
        if self.gen0_checkpoint is not None and Path(self.gen0_checkpoint).exists():
            log.info("%s: generation 0 shared from %s", self.spec.name, self.gen0_checkpoint)
            return self._load_generator(Path(self.gen0_checkpoint))
        return None

    def _make_pool(self, task: Task) -> Any:
        """Ray actors for correction, or the arm's own process when that is all there is
        (``ray.correction_workers: 0``, Ray disabled, or the identity corrector)."""
        cfg = self.cfg
        reference = task.reference()
        if cfg.ray.correction_workers == 0 or not cfg.ray.enabled or cfg.corrector.name == "none":
            return InlineCorrection(cfg.corrector.name, corrector_config(cfg, task.real), reference,
                                    cfg.ray.correction_batch)
        from sccl.loop.correction_pool import CorrectionPool

        return CorrectionPool(cfg.corrector.name, corrector_config(cfg, task.real), cfg.ray.correction_workers,
                              reference=reference, batch_size=cfg.ray.correction_batch,
                              actor_num_cpus=cfg.ray.worker_cpus)

    def _commit(self, out: Generation, task: Task, records: list[dict], started: float) -> dict:
        """Make generation ``out.g`` durable: checkpoint, then curves and table, then the spool,
        then state (a generation is complete only once state says so)."""
        cfg, g = self.cfg, out.g
        record = out.record
        artifacts: list[list[str]] = []
        if out.eval_samples is not None:
            gif = self._timed(g, "evaluate", lambda: task.render(out.eval_samples, out.eval_labels,
                                                                 self.paths.gen_dir(g) / "samples.gif"))
            if gif is not None:
                artifacts.append([str(gif), f"generations/gen_{g:03d}"])
        # train, sample, correct and evaluate of this generation (checkpoint and logging follow)
        record.update(self.phase_seconds.record_fields())
        record["time/generation_s"] = round(time.time() - started, 3)
        records.append(record)
        self.callbacks.on_phase(g, "checkpoint")
        t0 = time.perf_counter()
        save_state(out.generator.state_dict(), self.paths.checkpoint(g),
                   before_replace=lambda tmp: self.callbacks.on_commit(g, "checkpoint", tmp))
        self.callbacks.on_phase_end(g, "checkpoint", time.perf_counter() - t0)
        # about 20 refreshes per run: redrawing a growing figure every generation would cost more
        # than a toy generation itself
        plot_due = g in (0, cfg.generations) or g % max(1, cfg.generations // 20) == 0
        if cfg.eval.plots and plot_due:
            png = self._timed(g, "evaluate", lambda: plot_curves(records, self.paths.root / "collapse_curves.png"))
            if png:
                artifacts.append([str(png), ""])
        table = write_metrics_table(records, self.paths.root / "metrics.csv")
        artifacts.append([str(table), ""])
        if self._provenance_due:
            artifacts.append([str(self.paths.provenance), ""])
            self._provenance_due = False
        record["artifacts"] = artifacts
        write_jsonl(self.paths.metrics, records)
        write_json(self.paths.state, {"completed": g, "checkpoint": str(self.paths.checkpoint(g).name),
                                      "arm": self.spec.name, "updated": time.time()})
        self._prune(g)
        self.callbacks.on_record(record)
        return record

    def _prune(self, g: int) -> None:
        """Keep generator checkpoints of the last two generations (synthetic data is kept)."""
        for old in range(0, g - 1):
            ckpt = self.paths.checkpoint(old)
            if ckpt.exists():
                ckpt.unlink()


def train_generation0(spec: ArmSpec, real: RealData, callbacks: list[LoopCallback] | None = None,
                      device: str | None = None) -> Generator:
    """Train generation 0 on real data only (shared by every arm with the same gen0 key).
    ``device``: see :func:`generator_config`."""
    cfg = spec.config
    task = task_class(real.kind)(real, cfg.eval, evaluator_cache_dir(cfg))
    kernel = GenerationKernel(cfg, task, device=device, callbacks=[*(callbacks or []), *fault_callbacks()])
    return kernel.train_generation0()


def plot_curves(records: list[dict], out: Path) -> Path | None:
    """The arm's collapse curves so far (None where the plotting extra is missing)."""
    try:
        from sccl.metrics.plots import plot_collapse_curves
    except ImportError:  # pragma: no cover - metrics package incomplete
        return None
    plot_collapse_curves([{k: v for k, v in r.items() if k != "artifacts"} for r in records], out)
    return out


def expected_checkpoint(cfg: ExperimentConfig) -> dict[str, Any]:
    """What a checkpoint of this arm must hold (checked on resume): the generator kind and,
    for the diffusion model, the preset."""
    from sccl.generators.registry import generator_class, is_builtin_generator

    name = cfg.generator.name
    if not is_builtin_generator(name):
        return {}  # a plugin: its registry name need not be its kind
    out: dict[str, Any] = {"kind": name}
    if generator_class(name).uses_preset:
        out["preset"] = cfg.generator.preset
    return out


def write_metrics_table(records: list[dict], path: Path) -> Path:
    """The per-generation metrics of an arm as one CSV table (a row per generation)."""
    import csv
    import io

    keys = ["generation"] + sorted({k for r in records for k in r if k not in ("generation", "artifacts")})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for r in records:
        writer.writerow({k: r.get(k, "") for k in keys})
    from sccl.loop.store import atomic_write_bytes

    return atomic_write_bytes(path, buf.getvalue().encode())


def evaluator_cache_dir(cfg: ExperimentConfig) -> Path:
    """Where trained evaluators are cached (keyed by a hash of data and settings, so sharing
    one cache between runs is safe and saves retraining)."""
    import os

    if cfg.eval.cache_dir:
        return Path(cfg.eval.cache_dir).expanduser().resolve()
    env = os.environ.get("SCCL_CACHE_DIR")
    return Path(env).expanduser().resolve() if env else Path.home() / ".cache" / "sccl"


def clear_arm(run_dir: Path, name: str) -> None:
    shutil.rmtree(Path(run_dir) / "arms" / name, ignore_errors=True)
