"""Callbacks: everything that watches an arm's generations without changing what they compute.

The generation kernel (:mod:`sccl.loop.kernel`) and the arm runner that persists its results
(:mod:`sccl.loop.arm`) report to one :class:`LoopCallback` interface, in the spirit of
Stable-Baselines3's callbacks. Live status, phase timings, delivery to MLflow after each
generation and the reliability tests' fault injection are all callbacks; none of them can
change a result, because the kernel passes them values and never reads anything back.

Events of one generation ``g``, in order::

    on_generation_start(g)
      on_phase(g, phase, steps) ... on_progress(g, phase, step, steps, loss)* ... on_phase_end(g, phase, s)
      on_correction(g, batch)                      (after the "correct" phase, when there was one)
    on_generation_end(g, generation)               (the kernel's result; nothing written yet)
      on_phase(g, "checkpoint") ... on_commit(g, what, tmp) ... on_phase_end(g, "checkpoint", s)
    on_record(record)                              (generation g is complete on disk)

Phases: ``sample``, ``correct``, ``train``, ``evaluate`` (kernel), ``checkpoint`` (runner) and
``done`` (once, after the last generation). ``on_commit`` fires when a file of the generation
is complete in its temporary file, before it replaces the target (``what``: ``synthetic`` or
``checkpoint``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from sccl.loop.kernel import CorrectedBatch, Generation


class LoopCallback:
    """Base class: every event is a no-op; override the ones you need."""

    def on_generation_start(self, g: int) -> None:
        """Generation ``g`` begins (generation 0: training on D_real)."""

    def on_phase(self, g: int, phase: str, steps: int | None = None) -> None:
        """A phase of generation ``g`` begins; ``steps``: its length where it has one."""

    def on_progress(self, g: int, phase: str, step: int, steps: int, loss: float) -> None:
        """Training progress inside a phase (``step`` of ``steps`` done, current loss)."""

    def on_phase_end(self, g: int, phase: str, seconds: float) -> None:
        """A phase of generation ``g`` finished after ``seconds`` of wall time."""

    def on_correction(self, g: int, batch: "CorrectedBatch") -> None:
        """Generation ``g``'s synthetic batch, before and after correction (every sample)."""

    def on_generation_end(self, g: int, generation: "Generation") -> None:
        """The kernel finished generation ``g`` (its model, metrics and record; nothing persisted)."""

    def on_commit(self, g: int, what: str, tmp: Path) -> None:
        """A file of generation ``g`` is complete in ``tmp``, not yet renamed into place."""

    def on_record(self, record: dict) -> None:
        """Generation ``record["generation"]`` is complete on disk (its record spooled)."""


class CallbackList(LoopCallback):
    """Several callbacks as one, called in the order given."""

    def __init__(self, callbacks: Iterable[LoopCallback] = ()) -> None:
        self.callbacks = [c for c in callbacks if c is not None]

    def on_generation_start(self, g: int) -> None:
        for c in self.callbacks:
            c.on_generation_start(g)

    def on_phase(self, g: int, phase: str, steps: int | None = None) -> None:
        for c in self.callbacks:
            c.on_phase(g, phase, steps)

    def on_progress(self, g: int, phase: str, step: int, steps: int, loss: float) -> None:
        for c in self.callbacks:
            c.on_progress(g, phase, step, steps, loss)

    def on_phase_end(self, g: int, phase: str, seconds: float) -> None:
        for c in self.callbacks:
            c.on_phase_end(g, phase, seconds)

    def on_correction(self, g: int, batch: "CorrectedBatch") -> None:
        for c in self.callbacks:
            c.on_correction(g, batch)

    def on_generation_end(self, g: int, generation: "Generation") -> None:
        for c in self.callbacks:
            c.on_generation_end(g, generation)

    def on_commit(self, g: int, what: str, tmp: Path) -> None:
        for c in self.callbacks:
            c.on_commit(g, what, tmp)

    def on_record(self, record: dict) -> None:
        for c in self.callbacks:
            c.on_record(record)


class Timings(LoopCallback):
    """Wall seconds per phase, summed over generations (the sweep's timing summary)."""

    def __init__(self, into: dict[str, float] | None = None) -> None:
        self.seconds: dict[str, float] = into if into is not None else {}

    def on_phase_end(self, g: int, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds


class GenerationPhaseSeconds(Timings):
    """:class:`Timings` of the current generation only, for its record (``time/<phase>_s``):
    the share each phase takes (evaluation against training, correction against sampling) is
    then readable from any run's ``metrics.jsonl``, not only from a live progress display."""

    def on_generation_start(self, g: int) -> None:
        self.seconds = {}

    def record_fields(self) -> dict[str, float]:
        return {f"time/{phase}_s": round(s, 3) for phase, s in sorted(self.seconds.items())}


class StatusFile(LoopCallback):
    """Live status (phase, generation, step, loss) in ``status.json`` for the driver's progress
    display; written at every phase change and at most once a second in between."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer  #: a :class:`sccl.loop.arm.StatusWriter`

    def on_generation_start(self, g: int) -> None:
        self.writer.state["gen_started"] = time.time()

    def on_phase(self, g: int, phase: str, steps: int | None = None) -> None:
        fields: dict[str, Any] = {"phase": phase, "generation": g}
        if steps is not None:
            fields.update(step=0, steps=steps)
        self.writer.update(force=True, **fields)

    def on_progress(self, g: int, phase: str, step: int, steps: int, loss: float) -> None:
        self.writer.update(step=step, loss=float(loss))


class OnRecord(LoopCallback):
    """A plain function called with each completed generation's record."""

    def __init__(self, fn: Callable[[dict], None]) -> None:
        self.fn = fn

    def on_record(self, record: dict) -> None:
        self.fn(record)
