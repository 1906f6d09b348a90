"""The generation loop itself: sample → correct → mix → retrain → evaluate, without I/O.

:class:`GenerationKernel` is the one implementation of the algorithm. The arm runner
(:mod:`sccl.loop.arm`) wraps it with checkpoints, archives, the metrics spool and live status;
the theory tests (``tests/test_theory.py``) run it directly, hundreds of seeds at a time. It
writes no file: what a generation produced comes back as a :class:`Generation`, the corrected
batch reaches callbacks as a :class:`CorrectedBatch`, and everything domain-specific is asked
of the arm's :class:`~sccl.loop.tasks.Task`.

Every random draw is seeded from (arm seed, generation, purpose) (:func:`derive_seed`), so
generation g computes the same thing whether the arm ran uninterrupted or resumed before g.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from sccl.correctors.base import CorrectionResult
from sccl.generators.base import Generator
from sccl.generators.registry import build_generator
from sccl.loop.callbacks import CallbackList, LoopCallback
from sccl.loop.config import ExperimentConfig
from sccl.loop.realdata import RealData
from sccl.loop.tasks import Task, task_class

log = logging.getLogger(__name__)

_PURPOSES = {"gen0": 1, "sample": 2, "correct": 3, "fit": 4, "eval": 5, "labels": 6, "eval_labels": 7, "scratch": 8}


def derive_seed(seed: int, generation: int, purpose: str) -> int:
    """Independent, reproducible 31-bit seed for one random draw of one generation."""
    ss = np.random.SeedSequence([int(seed), int(generation), _PURPOSES[purpose]])
    return int(ss.generate_state(1)[0] & 0x7FFFFFFF)


def generator_config(cfg: ExperimentConfig, real: RealData | None = None, device: str | None = None) -> dict[str, Any]:
    """The generator's config dict: preset + params, plus what the data implies. ``device``
    (for generators that declare ``uses_device``) replaces the configured one: under Ray it is the device the
    arm's reserved resources give it (:func:`sccl.loop.placement.task_device`)."""
    from sccl.generators import generator_class

    traits = generator_class(cfg.generator.name)
    out = {"preset": cfg.generator.preset, **cfg.generator.params}
    if not traits.uses_preset:
        out.pop("preset", None)
    if traits.uses_device and device is not None:
        out["device"] = device
    if traits.takes_training_defaults:
        out.setdefault("keep_optimizer", cfg.train.carry_optimizer)
        if real is not None:
            for key, value in task_class(real.kind)(real, cfg.eval).generator_defaults().items():
                out.setdefault(key, value)
    return out


def corrector_config(cfg: ExperimentConfig, real: RealData) -> dict[str, Any]:
    """The corrector's config dict: params and failure policy, plus what the data implies."""
    out = {**cfg.corrector.params, "policy": cfg.corrector.policy}
    for key, value in task_class(real.kind)(real, cfg.eval).corrector_defaults(cfg.corrector.name).items():
        out.setdefault(key, value)
    return out


def mix_training_set(regime: str, real_x: np.ndarray, real_y: np.ndarray | None,
                     syn_x: np.ndarray | None, syn_y: np.ndarray | None,
                     history: list[tuple[np.ndarray, np.ndarray | None]] = ()) -> tuple[np.ndarray, np.ndarray | None]:
    """The training set of one generation (pure; the kernel's mixing step).

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
class CorrectedBatch:
    """One generation's synthetic batch before and after correction (every sample, kept or not)."""

    raw: np.ndarray  #: (n, ...) the generator's samples
    labels: np.ndarray | None  #: (n,) their conditioning labels
    kept: np.ndarray  #: (k, ...) float32, the kept samples after correction, in input order
    result: CorrectionResult  #: the corrector's bookkeeping (status, diagnostics per sample)

    @property
    def kept_index(self) -> np.ndarray:
        return np.asarray(self.result.kept_index, dtype=np.int64)

    @property
    def kept_labels(self) -> np.ndarray | None:
        return self.labels[self.kept_index] if self.labels is not None else None

    def summary(self) -> dict[str, float]:
        """The ``correction/*`` metrics of the generation."""
        return {f"correction/{k}": float(v) for k, v in self.result.summary().items()}


@dataclass
class Generation:
    """What one generation produced."""

    g: int
    generator: Generator  #: the model after generation g
    record: dict[str, Any]  #: ``generation``, evaluation metrics (when due), ``correction/*``
    correction: CorrectedBatch | None = None  #: None at generation 0 or when λ·n rounds to 0
    eval_samples: np.ndarray | None = None  #: the samples the metrics scored (when evaluated)
    eval_labels: np.ndarray | None = None


class InlineCorrection:
    """Correction in the calling process, with the same interface as the Ray pool."""

    def __init__(self, name: str, config: dict, reference: Any, batch_size: int) -> None:
        from sccl.correctors.registry import build_corrector

        self.corrector = build_corrector(name, config)
        self.domain = self.corrector.domain
        if reference is not None:
            self.corrector.prepare(reference)
        self.batch_size = batch_size

    def correct(self, batch: Any, seed: int) -> CorrectionResult:
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


class GenerationKernel:
    """One arm's generations as pure steps (see the module docstring).

    ``make_pool`` builds the correction pool on first use (the arm runner passes Ray actors
    when it has them; default: :class:`InlineCorrection`). ``history`` holds the kept synthetic
    samples of earlier generations (regime ``accumulate`` only); a resumed arm refills it from
    its archives before the next :meth:`step`."""

    def __init__(self, cfg: ExperimentConfig, task: Task, *, device: str | None = None,
                 callbacks: LoopCallback | list[LoopCallback] | None = None,
                 make_pool: Callable[[], Any] | None = None) -> None:
        self.cfg, self.task, self.device = cfg, task, device
        if isinstance(callbacks, CallbackList):
            self.callbacks = callbacks
        else:
            self.callbacks = CallbackList([callbacks] if isinstance(callbacks, LoopCallback) else (callbacks or []))
        self._make_pool = make_pool or self._inline_pool
        self._pool: Any = None
        self.history: list[tuple[np.ndarray, np.ndarray | None]] = []

    # ----------------------------------------------------------------- building blocks
    def steps(self, g: int) -> int:
        """Training steps of generation g (from scratch: as many as generation 0)."""
        if g == 0 or not self.cfg.train.finetune:
            return self.cfg.train.steps_gen0
        return self.cfg.train.steps_per_generation

    def build_generator(self) -> Generator:
        """A fresh, untrained generator of the arm."""
        return build_generator(self.cfg.generator.name, generator_config(self.cfg, self.task.real, self.device))

    @contextmanager
    def phase(self, g: int, name: str, steps: int | None = None) -> Iterator[None]:
        """Report a phase to the callbacks: its start, and its wall time once it succeeded."""
        self.callbacks.on_phase(g, name, steps)
        t0 = time.perf_counter()
        yield
        self.callbacks.on_phase_end(g, name, time.perf_counter() - t0)

    def _fit(self, gen: Generator, g: int, x: np.ndarray, y: np.ndarray | None, seed: int,
             continue_training: bool) -> None:
        steps = self.steps(g)

        def progress(step: int, loss: float) -> None:
            self.callbacks.on_progress(g, "train", step, steps, loss)

        with self.phase(g, "train", steps):
            gen.fit(x, y, steps, seed, continue_training=continue_training, progress=progress)

    # ----------------------------------------------------------------- generations
    def train_generation0(self) -> Generator:
        """Generation 0's model: trained on D_real only."""
        real = self.task.real
        gen = self.build_generator()
        self._fit(gen, 0, real.train_x, real.train_labels, derive_seed(self.cfg.seed, 0, "gen0"),
                  continue_training=False)
        return gen

    def generation0(self, gen: Generator | None = None) -> Generation:
        """Generation 0: train on D_real (unless ``gen``, a shared generation-0 model, is
        given), then evaluate."""
        self.callbacks.on_generation_start(0)
        if gen is None:
            gen = self.train_generation0()
        return self._evaluate(0, gen, None)

    def step(self, g: int, gen: Generator) -> Generation:
        """Generation g ≥ 1 from the model of generation g − 1: sample → correct → mix →
        retrain → evaluate."""
        cfg, real = self.cfg, self.task.real
        self.callbacks.on_generation_start(g)
        n_syn = int(round(cfg.synthetic_ratio * real.n))
        batch = None
        if n_syn > 0:
            with self.phase(g, "sample", n_syn):
                labels = self.task.draw_labels(n_syn, derive_seed(cfg.seed, g, "labels"))
                raw = gen.sample(n_syn, labels, derive_seed(cfg.seed, g, "sample"))
            with self.phase(g, "correct"):
                batch = self.correct(g, raw, labels)
                self.callbacks.on_correction(g, batch)
        x, y = self.mix(g, batch)
        if not cfg.train.finetune:
            gen = self.build_generator()
        self._fit(gen, g, x, y, derive_seed(cfg.seed, g, "fit"), continue_training=cfg.train.finetune)
        return self._evaluate(g, gen, batch)

    def generations(self) -> Iterator[Generation]:
        """Generations 0..G of an arm from scratch (no resume; what the theory tests run)."""
        try:
            out = self.generation0()
            yield out
            for g in range(1, self.cfg.generations + 1):
                out = self.step(g, out.generator)
                yield out
        finally:
            self.close()

    def correct(self, g: int, raw: np.ndarray, labels: np.ndarray | None) -> CorrectedBatch:
        """Correct a synthetic batch (the pool is built on first use)."""
        if self._pool is None:
            self._pool = self._make_pool()
        domain = _pool_domain(self._pool, self.cfg.corrector.name)
        result = self._pool.correct(self.task.to_corrector(raw, labels, g, domain),
                                    derive_seed(self.cfg.seed, g, "correct"))
        return CorrectedBatch(raw, labels, self.task.from_corrector(result, raw, domain), result)

    def mix(self, g: int, batch: CorrectedBatch | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Training set of generation g under the arm's regime (see :func:`mix_training_set`);
        remembers this generation's kept samples for ``accumulate``."""
        real, regime = self.task.real, self.cfg.regime
        syn_x = batch.kept if batch is not None else None
        syn_y = batch.kept_labels if batch is not None else None
        x, y = mix_training_set(regime, real.train_x, real.train_labels, syn_x, syn_y, self.history)
        if regime == "replace" and syn_x is not None and len(syn_x) == 0:
            log.warning("gen %d: every synthetic sample was rejected; training on nothing new", g)
        if regime == "accumulate" and batch is not None:
            self.history.append((batch.kept, syn_y if real.train_labels is not None else None))
        return x, y

    def evaluation_due(self, g: int) -> bool:
        return g % self.cfg.eval.every == 0 or g == self.cfg.generations

    def _evaluate(self, g: int, gen: Generator, batch: CorrectedBatch | None) -> Generation:
        cfg = self.cfg
        out = Generation(g, gen, {"generation": g}, batch)
        if self.evaluation_due(g):
            with self.phase(g, "evaluate"):
                n = cfg.eval.num_samples
                labels = self.task.draw_labels(n, derive_seed(cfg.seed, g, "eval_labels"))
                samples = gen.sample(n, labels, derive_seed(cfg.seed, g, "eval"))
                out.record.update(self.task.evaluate(samples, labels))
            out.eval_samples, out.eval_labels = samples, labels
        if batch is not None:
            out.record.update(batch.summary())
        self.callbacks.on_generation_end(g, out)
        return out

    # ----------------------------------------------------------------- resources
    def _inline_pool(self) -> InlineCorrection:
        cfg = self.cfg
        return InlineCorrection(cfg.corrector.name, corrector_config(cfg, self.task.real), self.task.reference(),
                                cfg.ray.correction_batch)

    def close(self) -> None:
        """Release the correction pool (actors, PyBullet clients)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
