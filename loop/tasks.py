"""Data domains behind one interface: what the generation loop needs to know about its data.

The loop itself (:mod:`sccl.loop.kernel`) never asks what kind of data it runs on; it asks the
arm's :class:`Task`. A task knows how its samples travel to a corrector and back, what the
generator and corrector learn from the data, how a generation is scored and drawn, and what
the driver prepares once for all arms (the motion evaluator). Two tasks ship:

* :class:`MotionTask` — windows of motion-clip features; correctors of the ``motion`` domain
  receive :class:`~sccl.motion.clip.Motion` clips, metrics come from the frozen evaluator;
* :class:`VectorTask` — draws from the toy Gaussian; correctors receive the arrays themselves,
  metrics are closed-form distances to the target.

A new domain is a :class:`Task` subclass with an entry in :data:`TASKS`, a loader in
:data:`sccl.loop.realdata.LOADERS` and its ``data.kind`` in the config check; no orchestration
code changes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from sccl.correctors.base import CorrectionResult
from sccl.loop.config import EvalSection, ExperimentConfig
from sccl.loop.realdata import RealData, load_real_data

log = logging.getLogger(__name__)


def draw_labels(real: RealData, n: int, seed: int) -> np.ndarray | None:
    """Labels for conditional sampling, drawn from the real label frequencies (None: unlabelled)."""
    freqs = real.label_frequencies()
    if freqs is None:
        return None
    return np.random.default_rng(seed).choice(len(freqs), size=n, p=freqs).astype(np.int64)


class Task:
    """One data domain of the loop (the base class is the plain-array behaviour)."""

    #: ``data.kind`` of the config this task serves.
    kind: ClassVar[str] = ""
    #: Whether this task logs the ``toy/`` metrics (else the motion families ``quality/``,
    #: ``physics/``, ...); :meth:`charts` keeps the key metrics that belong to it.
    toy_metrics: ClassVar[bool] = False
    #: Whether :meth:`prepare` builds something (an evaluator) that the driver should build
    #: once before the arms start.
    shares_evaluator: ClassVar[bool] = False

    def __init__(self, real: RealData, eval_cfg: EvalSection, cache_dir: Path | None = None) -> None:
        self.real = real
        self.eval_cfg = eval_cfg
        #: where a trained evaluator is cached (only tasks with a learned evaluator use it)
        self.cache_dir = cache_dir

    # ------------------------------------------------------------ what the data implies
    def generator_defaults(self) -> dict[str, Any]:
        """Generator settings the data implies (filled in only where the config is silent)."""
        return {}

    def corrector_defaults(self, corrector: str) -> dict[str, Any]:
        """Corrector settings the data implies for corrector ``corrector``."""
        return {}

    def reference(self) -> Any:
        """What correctors are prepared on (``Corrector.prepare``): the real training set."""
        return self.real.train_x

    def draw_labels(self, n: int, seed: int) -> np.ndarray | None:
        """Labels for conditional sampling, drawn from the real label frequencies."""
        return draw_labels(self.real, n, seed)

    # ------------------------------------------------------------ correction round trip
    def to_corrector(self, raw: np.ndarray, labels: np.ndarray | None, generation: int, domain: str) -> Any:
        """The batch a corrector of ``domain`` receives for the generated arrays ``raw``."""
        return raw

    def from_corrector(self, result: CorrectionResult, raw: np.ndarray, domain: str) -> np.ndarray:
        """The kept samples of ``result`` (a corrector of ``domain``'s output for ``raw``) as
        float32 arrays shaped like ``raw``'s samples."""
        if not len(result.kept_index):
            return np.zeros((0,) + raw.shape[1:], np.float32)
        return np.asarray(result.samples, dtype=np.float32)

    # ------------------------------------------------------------ scoring
    def prepare(self) -> Any:
        """Whatever every arm's evaluation shares and should be built once, before arms start
        (so parallel arms never race to build it); None when there is nothing."""
        return None

    def reference_metrics(self, prepared: Any, arms: Sequence[Any] = ()) -> dict[str, float]:
        """The real data scored as if it were generated (the floor the curves are read
        against), as ``reference/...`` keys; ``prepared``: what :meth:`prepare` returned;
        ``arms``: the sweep's arms sharing it (a task may give each seed its own floor)."""
        return {}

    def evaluate(self, samples: np.ndarray, labels: np.ndarray | None) -> dict[str, float]:
        """Metrics of one generation's evaluation samples."""
        raise NotImplementedError

    def render(self, samples: np.ndarray, labels: np.ndarray | None, out: Path) -> Path | None:
        """A picture of a few samples at ``out`` (None: this task draws none, or drawing failed)."""
        return None

    @classmethod
    def charts(cls, key_metrics: tuple[str, ...]) -> list[str]:
        """The key metrics (in their order) that this task's arms log."""
        return [k for k in key_metrics if k.startswith("toy/") == cls.toy_metrics]


class VectorTask(Task):
    """The toy: vectors drawn from a known Gaussian, scored by closed-form distances to it."""

    kind = "gaussian"
    toy_metrics = True

    def corrector_defaults(self, corrector: str) -> dict[str, Any]:
        # the idealised corrector pulls towards the true distribution, which only the data knows
        if corrector == "ideal":
            return {"target_mean": self.real.target_mean.tolist(), "target_cov": self.real.target_cov.tolist()}
        return {}

    def evaluate(self, samples: np.ndarray, labels: np.ndarray | None) -> dict[str, float]:
        from sccl.metrics.toy import toy_metrics

        return toy_metrics(samples, self.real.target_mean, self.real.target_cov)


class MotionTask(Task):
    """Motion: windows of 62-d clip features; motion-domain correctors get clips."""

    kind = "motion"
    shares_evaluator = True

    def generator_defaults(self) -> dict[str, Any]:
        return {"fps": self.real.fps, "label_names": list(self.real.label_names)}

    def reference(self) -> Any:
        return self.real.dataset.train.motions

    def to_corrector(self, raw: np.ndarray, labels: np.ndarray | None, generation: int, domain: str) -> Any:
        if domain not in ("motion", "any"):
            return raw
        from sccl.motion.features import features_to_motion

        names = self.real.label_names
        return [features_to_motion(raw[i], self.real.fps, label=names[labels[i]] if labels is not None else None,
                                   name=f"gen{generation:03d}_{i:05d}")
                for i in range(len(raw))]

    def from_corrector(self, result: CorrectionResult, raw: np.ndarray, domain: str) -> np.ndarray:
        if domain not in ("motion", "any"):
            return super().from_corrector(result, raw, domain)
        from sccl.motion.features import motion_to_features

        if not result.samples:
            return np.zeros((0,) + raw.shape[1:], np.float32)
        return np.stack([motion_to_features(m) for m in result.samples]).astype(np.float32)

    def prepare(self) -> Any:
        from sccl.loop.evaluation import prepare_evaluator

        return prepare_evaluator(self.real, self._cache_dir(), self.eval_cfg.evaluator_steps)

    def reference_metrics(self, prepared: Any, arms: Sequence[Any] = ()) -> dict[str, float]:
        from sccl.loop.floors import floor_metrics

        return floor_metrics(arms, prepared)  # the split's floor, and one per data.n seed

    def evaluate(self, samples: np.ndarray, labels: np.ndarray | None) -> dict[str, float]:
        from sccl.loop.evaluation import evaluate_motion_samples

        return evaluate_motion_samples(samples, labels, self.real, self._cache_dir(), self.eval_cfg.evaluator_steps)

    def render(self, samples: np.ndarray, labels: np.ndarray | None, out: Path) -> Path | None:
        if not self.eval_cfg.gif:
            return None
        from sccl.loop.evaluation import render_generation

        return render_generation(samples, labels, self.real, out)

    def _cache_dir(self) -> Path:
        if self.cache_dir is None:
            raise ValueError("MotionTask needs a cache_dir for its evaluator")
        return self.cache_dir


#: ``data.kind`` → its task.
TASKS: dict[str, type[Task]] = {VectorTask.kind: VectorTask, MotionTask.kind: MotionTask}


def task_class(kind: str) -> type[Task]:
    """The task serving ``data.kind`` (the config check has already refused unknown kinds)."""
    return TASKS[kind]


def build_task(cfg: ExperimentConfig, cache_dir: Path | None = None) -> Task:
    """The task of an arm: its D_real (cached per process) in the domain ``cfg.data.kind`` names."""
    real = load_real_data(cfg.data, cfg.seed)
    return task_class(real.kind)(real, cfg.eval, cache_dir)
