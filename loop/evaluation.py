"""Glue between the motion task (:class:`sccl.loop.tasks.MotionTask`) and :mod:`sccl.metrics`:
the frozen evaluator and the real-data reference statistics are built once per process and
reused by every generation of every arm."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from sccl.loop.realdata import RealData

log = logging.getLogger(__name__)


_EVALUATORS: dict[tuple[int, str], Any] = {}


def prepare_evaluator(real: RealData, cache_dir: Path, steps: int = 600) -> Any:
    """Train (or load from the run's cache) the motion evaluator of motion data ``real``; the
    driver calls this once (through :meth:`sccl.loop.tasks.MotionTask.prepare`) before arms
    start so that parallel arms never race to train it."""
    key = (id(real), str(cache_dir), steps)
    if key not in _EVALUATORS:
        from sccl.metrics.evaluator import get_evaluator

        _EVALUATORS[key] = get_evaluator(real.dataset, Path(cache_dir), steps=steps)
    return _EVALUATORS[key]


def evaluate_motion_samples(samples: np.ndarray, labels: np.ndarray | None, real: RealData,
                            cache_dir: Path, evaluator_steps: int = 600,
                            corrector_summary: dict | None = None) -> dict[str, float | str]:
    from sccl.metrics.motion_metrics import evaluate_generation
    from sccl.metrics.report import EVALUATOR_HASH_KEY

    evaluator = prepare_evaluator(real, cache_dir, evaluator_steps)
    metrics: dict = evaluate_generation(samples, labels, real.dataset, evaluator, corrector_summary=corrector_summary,
                                        fps=real.fps)
    metrics[EVALUATOR_HASH_KEY] = evaluator.info.get("hash", "")  # a string: the spool keeps it, MLflow skips it
    return metrics


def render_generation(samples: np.ndarray, labels: np.ndarray | None, real: RealData, out: Path,
                      count: int = 3) -> Path | None:
    """A short GIF of a few generated motions beside real held-out ones (best effort: a
    rendering failure is logged, never fatal to the run)."""
    try:
        from sccl.metrics.plots import render_motions_gif
        from sccl.motion.features import features_to_motion

        names = real.label_names
        gen = [features_to_motion(samples[i], real.fps, label=names[labels[i]] if labels is not None else None)
               for i in range(min(count, len(samples)))]
        pool = real.dataset.heldout if len(real.dataset.heldout) else real.dataset.train
        step = max(1, len(pool) // count)
        reals = [pool.motions[i] for i in range(0, len(pool), step)][:count]
        out.parent.mkdir(parents=True, exist_ok=True)
        render_motions_gif(reals, gen, out, real.fps)
        return out
    except Exception as exc:  # noqa: BLE001 - pictures are a convenience
        log.warning("could not render %s: %s", out, exc)
        return None
