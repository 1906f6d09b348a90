"""One arm of an experiment: generation 0 on real data, then G rounds of
sample → correct → mix → retrain → evaluate → checkpoint.

Everything an arm needs to continue lives in its directory (``RUN_DIR/arms/<name>/``):

* ``state.json`` — the last *completed* generation and its checkpoint (written last, atomically:
  a generation counts only once this file says so);
* ``gen_XXX/generator.safetensors`` — the model after generation XXX (the last few are kept);
* ``gen_XXX/synthetic.npz`` — every synthetic sample of generation XXX *before* and *after*
  correction, its label, its correction status and diagnostics (kept for audit and replay);
* ``metrics.jsonl`` — one record per generation (the spool the driver delivers to MLflow);
* ``status.json`` — live progress (phase, step) for the driver's display.

Every random draw is seeded from (arm seed, generation, purpose), so a resumed arm repeats
exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sccl.generators.base import save_state
from sccl.loop.config import ArmSpec, ExperimentConfig
from sccl.loop.faults import fault_point
from sccl.loop.realdata import RealData, load_real_data
from sccl.loop.store import read_json, read_jsonl, read_npz, remove_stale_temp_files, write_json, write_jsonl, write_npz

log = logging.getLogger(__name__)

_PURPOSES = {"gen0": 1, "sample": 2, "correct": 3, "fit": 4, "eval": 5, "labels": 6, "eval_labels": 7, "scratch": 8}


def derive_seed(seed: int, generation: int, purpose: str) -> int:
    """Independent, reproducible 31-bit seed for one random draw of one generation."""
    ss = np.random.SeedSequence([int(seed), int(generation), _PURPOSES[purpose]])
    return int(ss.generate_state(1)[0] & 0x7FFFFFFF)


def generator_config(cfg: ExperimentConfig, real: RealData | None = None, device: str | None = None) -> dict[str, Any]:
    """The generator's config dict: preset + params, plus what the data implies. ``device``
    (the diffusion model only) replaces the configured one: under Ray it is the device the
    arm's reserved resources give it (:func:`loop.placement.task_device`)."""
    out = {"preset": cfg.generator.preset, **cfg.generator.params}
    if cfg.generator.name in ("gaussian", "gaussian_mixture"):
        out.pop("preset", None)
    elif cfg.generator.name == "diffusion":
        if device is not None:
            out["device"] = device
        out.setdefault("keep_optimizer", cfg.train.carry_optimizer)
        if real is not None and real.kind == "motion":
            out.setdefault("fps", real.fps)
            out.setdefault("label_names", list(real.label_names))
    return out


def corrector_config(cfg: ExperimentConfig, real: RealData) -> dict[str, Any]:
    out = {**cfg.corrector.params, "policy": cfg.corrector.policy}
    if cfg.corrector.name == "ideal" and real.kind == "gaussian":
        out.setdefault("target_mean", real.target_mean.tolist())
        out.setdefault("target_cov", real.target_cov.tolist())
    return out


def draw_labels(real: RealData, n: int, seed: int) -> np.ndarray | None:
    """Labels for conditional sampling, drawn from the real label frequencies."""
    freqs = real.label_frequencies()
    if freqs is None:
        return None
    return np.random.default_rng(seed).choice(len(freqs), size=n, p=freqs).astype(np.int64)


def mix_training_set(regime: str, real_x: np.ndarray, real_y: np.ndarray | None,
                     syn_x: np.ndarray | None, syn_y: np.ndarray | None,
                     history: list[tuple[np.ndarray, np.ndarray | None]] = ()) -> tuple[np.ndarray, np.ndarray | None]:
    """The training set of one generation (pure; the arm runner's mixing step).

    ``augment``: D_real + this generation's kept synthetic samples; ``replace``: the synthetic
    samples only (nothing at all if every one was rejected); ``accumulate``: D_real + the kept
    synthetic samples of every earlier generation (``history``, oldest first) + this one's.
    Without synthetic samples (λ = 0) every regime trains on D_real. Returns float32 x and
    the matching labels (None for unlabelled data)."""
    parts_x: list[np.ndarray] = []
    parts_y: list[np.ndarray] = []
    if regime in ("augment", "accumulate") or syn_x is None:
        parts_x.append(real_x)
        if real_y is not None:
            parts_y.append(real_y)
    if regime == "accumulate":
        for old_x, old_y in history:
            parts_x.append(old_x)
            if real_y is not None:
                parts_y.append(old_y)
    if syn_x is not None:
        parts_x.append(syn_x)
        if syn_y is not None:
            parts_y.append(syn_y)
    x = np.concatenate([p for p in parts_x if len(p)], axis=0) if any(len(p) for p in parts_x) else real_x
    y = np.concatenate(parts_y) if parts_y and real_y is not None else None
    if regime == "replace" and syn_x is not None and len(syn_x) == 0:
        x, y = real_x[:0], (real_y[:0] if real_y is not None else None)
    return x.astype(np.float32), y


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


class ArmRunner:
    """Runs (or resumes) one arm to its last generation."""

    def __init__(self, spec: ArmSpec, run_dir: Path, gen0_checkpoint: Path | None = None,
                 on_record: Callable[[dict], None] | None = None, device: str | None = None) -> None:
        self.spec = spec
        #: torch device of the arm's generator (None: the configured one); under Ray, what the
        #: arm's reserved resources give it. Checkpoints are loaded onto it, whatever device
        #: wrote them.
        self.device = device
        self.cfg = spec.config
        self.paths = ArmPaths(Path(run_dir) / "arms" / spec.name)
        self.gen0_checkpoint = gen0_checkpoint
        self.cache_dir = evaluator_cache_dir(spec.config)
        self.on_record = on_record
        self.timings: dict[str, float] = {}

    # ----------------------------------------------------------------- helpers
    def _timed(self, phase: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - t0

    def _build_generator(self):
        from sccl.generators.registry import build_generator

        real = load_real_data(self.cfg.data, self.cfg.seed)
        return build_generator(self.cfg.generator.name, generator_config(self.cfg, real, self.device))

    def _load_generator(self, path: Path):
        from sccl.generators import load_generator

        device = self.device
        if device is None and self.cfg.generator.name == "diffusion":
            device = self.cfg.generator.params.get("device", "auto")
        return load_generator(path, expect=expected_checkpoint(self.cfg), device=device)

    def _remove_stale_temps(self) -> None:
        """Temporary files of writes that a crash interrupted (never read; removed on restart,
        also when Ray retries the arm within one driver's run)."""
        removed = remove_stale_temp_files(self.paths.root)
        if removed:
            log.info("%s: removed %d temporary file(s) left by an interrupted write", self.spec.name, removed)

    # ------------------------------------------------------------------- main
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temps()
        status = StatusWriter(self.paths.status, self.spec.name, cfg.generations)
        state = read_json(self.paths.state, default={}) or {}
        completed = state.get("completed", -1)
        records = [r for r in read_jsonl(self.paths.metrics) if r["generation"] <= completed]
        real = load_real_data(cfg.data, cfg.seed)
        evaluator = _Evaluator(real, self.cache_dir, cfg)
        pool = None
        try:
            if completed < 0:
                status.state["gen_started"] = time.time()
                status.update(force=True, phase="train", generation=0, step=0, steps=cfg.train.steps_gen0)
                gen = self._generation0(real, status)
                self._finish_generation(0, gen, real, evaluator, {}, status, records)
                completed = 0
            else:
                gen = self._load_generator(self.paths.checkpoint(completed))
                log.info("%s: resuming after generation %d", self.spec.name, completed)
            for g in range(completed + 1, cfg.generations + 1):
                status.state["gen_started"] = time.time()
                n_syn = int(round(cfg.synthetic_ratio * real.n))
                correction: dict[str, float] = {}
                synthetic_x = synthetic_labels = None
                if n_syn > 0:
                    status.update(force=True, phase="sample", generation=g, step=0, steps=n_syn)
                    labels = draw_labels(real, n_syn, derive_seed(cfg.seed, g, "labels"))
                    raw = self._timed("sample", lambda: gen.sample(n_syn, labels, derive_seed(cfg.seed, g, "sample")))
                    fault_point("sample", g)
                    status.update(force=True, phase="correct")
                    if pool is None:
                        pool = self._make_pool(real)
                    synthetic_x, synthetic_labels, correction = self._timed(
                        "correct", lambda: self._correct(pool, raw, labels, real, g)
                    )
                x, y = self._mix(real, synthetic_x, synthetic_labels, g)
                status.update(force=True, phase="train", step=0, steps=self._steps(g))
                gen = self._train(gen, x, y, g, status)
                self._finish_generation(g, gen, real, evaluator, correction, status, records)
                completed = g
            status.update(force=True, phase="done", generation=cfg.generations)
            return {"arm": self.spec.name, "completed": completed, "timings": self.timings,
                    "final": records[-1] if records else {}}
        finally:
            if pool is not None:
                pool.close()

    # ------------------------------------------------------------- phases
    def _steps(self, g: int) -> int:
        if g == 0 or not self.cfg.train.finetune:
            return self.cfg.train.steps_gen0
        return self.cfg.train.steps_per_generation

    def _generation0(self, real: RealData, status: StatusWriter):
        if self.gen0_checkpoint is not None and Path(self.gen0_checkpoint).exists():
            log.info("%s: generation 0 shared from %s", self.spec.name, self.gen0_checkpoint)
            return self._load_generator(Path(self.gen0_checkpoint))
        return train_generation0(self.spec, real, status, timings=self.timings, device=self.device)

    def _train(self, gen, x: np.ndarray, y: np.ndarray | None, g: int, status: StatusWriter):
        cfg = self.cfg
        steps = self._steps(g)
        if not cfg.train.finetune:
            gen = self._build_generator()
        seed = derive_seed(cfg.seed, g, "fit")

        def progress(step: int, loss: float) -> None:
            status.update(step=step, loss=float(loss))
            if 2 * step >= steps:
                fault_point("train", g)

        self._timed("train", lambda: gen.fit(x, y, steps, seed, continue_training=cfg.train.finetune,
                                             progress=progress))
        return gen

    def _make_pool(self, real: RealData):
        """Ray actors for correction, or the arm's own process when that is all there is
        (``ray.correction_workers: 0``, Ray disabled, or the identity corrector)."""
        cfg = self.cfg
        reference = real.dataset.train.motions if real.kind == "motion" else real.train_x
        if cfg.ray.correction_workers == 0 or not cfg.ray.enabled or cfg.corrector.name == "none":
            return InlineCorrection(cfg.corrector.name, corrector_config(cfg, real), reference,
                                    cfg.ray.correction_batch)
        from sccl.loop.correction_pool import CorrectionPool

        return CorrectionPool(cfg.corrector.name, corrector_config(cfg, real), cfg.ray.correction_workers,
                              reference=reference, batch_size=cfg.ray.correction_batch,
                              actor_num_cpus=cfg.ray.worker_cpus)

    def _correct(self, pool, raw: np.ndarray, labels: np.ndarray | None, real: RealData, g: int):
        """Correct a synthetic batch; returns kept features, their labels and summary metrics.

        Every sample is stored with its status and diagnostics, kept or not."""
        seed = derive_seed(self.cfg.seed, g, "correct")
        if real.kind == "motion" and _pool_domain(pool, self.cfg.corrector.name) in ("motion", "any"):
            from sccl.motion.features import features_to_motion, motion_to_features

            names = real.label_names
            batch = [
                features_to_motion(raw[i], real.fps, label=names[labels[i]] if labels is not None else None,
                                   name=f"gen{g:03d}_{i:05d}")
                for i in range(len(raw))
            ]
            result = pool.correct(batch, seed)
            kept = (np.stack([motion_to_features(m) for m in result.samples]).astype(np.float32)
                    if result.samples else np.zeros((0,) + raw.shape[1:], np.float32))
        else:
            result = pool.correct(raw, seed)
            kept = np.asarray(result.samples, dtype=np.float32) if len(result.kept_index) else \
                np.zeros((0,) + raw.shape[1:], np.float32)
        kept_index = np.asarray(result.kept_index, dtype=np.int64)
        kept_labels = labels[kept_index] if labels is not None else None
        diag_keys = sorted({k for d in result.diagnostics for k in d})
        diag = {f"diag_{k}": np.array([float(d.get(k, np.nan)) for d in result.diagnostics]) for k in diag_keys}
        write_npz(
            self.paths.synthetic(g),
            raw=raw.astype(np.float32),
            raw_labels=labels if labels is not None else np.zeros(0, np.int64),
            corrected=kept,
            kept_index=kept_index,
            status=np.array(result.status, dtype=str),
            before_replace=lambda _tmp: fault_point("correct", g),
            **diag,
        )
        summary = result.summary()
        return kept, kept_labels, {f"correction/{k}": float(v) for k, v in summary.items()}

    def _mix(self, real: RealData, syn_x: np.ndarray | None, syn_y: np.ndarray | None, g: int):
        """Training set of generation g under the arm's regime (see :func:`mix_training_set`)."""
        history: list[tuple[np.ndarray, np.ndarray | None]] = []
        if self.cfg.regime == "accumulate":
            for h in range(1, g):
                path = self.paths.synthetic(h)
                if path.exists():
                    old = read_npz(path)
                    history.append((old["corrected"], old["raw_labels"][old["kept_index"]]
                                    if real.train_labels is not None else None))
        x, y = mix_training_set(self.cfg.regime, real.train_x, real.train_labels, syn_x, syn_y, history)
        if self.cfg.regime == "replace" and syn_x is not None and len(syn_x) == 0:
            log.warning("%s gen %d: every synthetic sample was rejected; training on nothing new", self.spec.name, g)
        return x, y

    def _finish_generation(self, g: int, gen, real: RealData, evaluator: "_Evaluator",
                           correction: dict[str, float], status: StatusWriter, records: list[dict]) -> dict:
        cfg = self.cfg
        record: dict[str, Any] = {"generation": g}
        artifacts: list[list[str]] = []
        if g % cfg.eval.every == 0 or g == cfg.generations:
            status.update(force=True, phase="evaluate", generation=g)
            metrics, files = self._timed("evaluate", lambda: evaluator.evaluate(gen, g, self.paths.gen_dir(g)))
            record.update(metrics)
            artifacts += [[str(f), f"generations/gen_{g:03d}"] for f in files]
        record.update(correction)
        record["time/generation_s"] = round(time.time() - status.state.get("gen_started", status.state["started"]), 3)
        records.append(record)
        # checkpoint, then the spool, then state: a generation is complete only once state says so
        status.update(force=True, phase="checkpoint")
        self._timed("checkpoint", lambda: save_state(gen.state_dict(), self.paths.checkpoint(g),
                                                     before_replace=lambda _tmp: fault_point("checkpoint", g)))
        # about 20 refreshes per run: redrawing a growing figure every generation would cost more
        # than a toy generation itself
        plot_due = g in (0, cfg.generations) or g % max(1, cfg.generations // 20) == 0
        if cfg.eval.plots and plot_due:
            png = self._timed("evaluate", lambda: evaluator.plot(records, self.paths.root / "collapse_curves.png"))
            if png:
                artifacts.append([str(png), ""])
        table = write_metrics_table(records, self.paths.root / "metrics.csv")
        artifacts.append([str(table), ""])
        record["artifacts"] = artifacts
        write_jsonl(self.paths.metrics, records)
        write_json(self.paths.state, {"completed": g, "checkpoint": str(self.paths.checkpoint(g).name),
                                      "arm": self.spec.name, "updated": time.time()})
        self._prune(g)
        if self.on_record:
            self.on_record(record)
        return record

    def _prune(self, g: int) -> None:
        """Keep generator checkpoints of the last two generations (synthetic data is kept)."""
        for old in range(0, g - 1):
            ckpt = self.paths.checkpoint(old)
            if ckpt.exists():
                ckpt.unlink()


class InlineCorrection:
    """Correction in the calling process, with the same interface as the Ray pool."""

    def __init__(self, name: str, config: dict, reference: Any, batch_size: int) -> None:
        from sccl.correctors.registry import build_corrector

        self.corrector = build_corrector(name, config)
        self.domain = self.corrector.domain
        if reference is not None:
            self.corrector.prepare(reference)
        self.batch_size = batch_size

    def correct(self, batch: Any, seed: int):
        from sccl.loop.correction_pool import correct_in_process

        return correct_in_process(self.corrector, batch, seed, self.batch_size)

    def close(self) -> None:
        self.corrector.close()


def _pool_domain(pool: Any, name: str) -> str:
    domain = getattr(pool, "domain", None)
    if domain is None:
        from sccl.correctors.registry import resolve_corrector

        domain = resolve_corrector(name).domain
    return domain


def train_generation0(spec: ArmSpec, real: RealData, status: StatusWriter | None = None,
                      timings: dict[str, float] | None = None, device: str | None = None):
    """Train generation 0 on real data only (shared by every arm with the same gen0 key).
    ``device``: see :func:`generator_config`."""
    from sccl.generators.registry import build_generator

    cfg = spec.config
    gen = build_generator(cfg.generator.name, generator_config(cfg, real, device))

    def progress(step: int, loss: float) -> None:
        if status is not None:
            status.update(step=step, loss=float(loss))
        if 2 * step >= cfg.train.steps_gen0:
            fault_point("train", 0)

    t0 = time.perf_counter()
    gen.fit(real.train_x, real.train_labels, cfg.train.steps_gen0, derive_seed(cfg.seed, 0, "gen0"),
            continue_training=False, progress=progress)
    if timings is not None:
        timings["train"] = timings.get("train", 0.0) + time.perf_counter() - t0
    return gen


class _Evaluator:
    """Per-generation evaluation of an arm: metrics on fresh samples, pictures."""

    def __init__(self, real: RealData, cache_dir: Path, cfg: ExperimentConfig) -> None:
        self.real, self.cache_dir, self.cfg = real, cache_dir, cfg
        self._motion_eval = None

    def evaluate(self, gen, g: int, gen_dir: Path) -> tuple[dict[str, float], list[Path]]:
        cfg, real = self.cfg, self.real
        n = cfg.eval.num_samples
        labels = draw_labels(real, n, derive_seed(cfg.seed, g, "eval_labels"))
        samples = gen.sample(n, labels, derive_seed(cfg.seed, g, "eval"))
        files: list[Path] = []
        if real.kind == "gaussian":
            from sccl.metrics.toy import toy_metrics

            return toy_metrics(samples, real.target_mean, real.target_cov), files
        from sccl.loop.evaluation import evaluate_motion_samples, render_generation

        metrics = evaluate_motion_samples(samples, labels, real, self.cache_dir, cfg.eval.evaluator_steps)
        if cfg.eval.gif:
            gif = render_generation(samples, labels, real, gen_dir / "samples.gif")
            if gif is not None:
                files.append(gif)
        return metrics, files

    def plot(self, records: list[dict], out: Path) -> Path | None:
        try:
            from sccl.metrics.plots import plot_collapse_curves
        except ImportError:  # pragma: no cover - metrics package incomplete
            return None
        plot_collapse_curves([{k: v for k, v in r.items() if k != "artifacts"} for r in records], out)
        return out


def expected_checkpoint(cfg: ExperimentConfig) -> dict[str, Any]:
    """What a checkpoint of this arm must hold (checked on resume): the generator kind and,
    for the diffusion model, the preset."""
    name = cfg.generator.name
    if name not in ("diffusion", "gaussian", "gaussian_mixture"):
        return {}  # a plugin: its registry name need not be its kind
    out: dict[str, Any] = {"kind": name}
    if name == "diffusion":
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
