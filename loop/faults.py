"""Fault injection for the reliability tests (a test-only hook, inert unless asked for).

``SCCL_FAULT=POINT:GENERATION`` makes the process that reaches that point SIGKILL itself
there, exactly as if the machine, the scheduler or an operator had killed it. Points:

* ``train`` — halfway through the training steps of the generation;
* ``sample`` — after sampling the synthetic batch, before correcting it;
* ``correct`` — after correction has produced its result, before ``synthetic.npz`` is renamed
  into place (the temporary file is complete, the target is not yet written);
* ``checkpoint`` — while writing the generator checkpoint: the temporary file is written, the
  rename over ``generator.safetensors`` has not happened;
* ``log`` — while delivering the generation to MLflow: its metrics are logged, nothing else
  (artifacts, the driver's bookkeeping) has happened yet.

In inline mode (``ray.enabled=false``) every point runs in the driver process; with Ray the
arm points (all but ``log``) kill the arm's Ray worker instead. Several points may be given
separated by commas. Never set this outside tests.

The arm points are a :class:`FaultInjection` callback (:mod:`sccl.loop.callbacks`) that the
arm runner and generation-0 training add only when ``SCCL_FAULT`` is set
(:func:`fault_callbacks`); the generation loop itself knows nothing of faults. ``log`` is a
point of the driver's MLflow delivery (:mod:`sccl.loop.tracking`).
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from sccl.loop.callbacks import LoopCallback

log = logging.getLogger(__name__)

ENV = "SCCL_FAULT"
POINTS = ("train", "sample", "correct", "checkpoint", "log")


def _armed(point: str, generation: int) -> bool:
    spec = os.environ.get(ENV)
    if not spec:
        return False
    for item in spec.split(","):
        name, _, gen = item.strip().partition(":")
        if name == point and (gen == "" or gen == "*" or gen == str(int(generation))):
            return True
    return False


def fault_point(point: str, generation: int) -> None:
    """SIGKILL this process if ``SCCL_FAULT`` names (point, generation)."""
    if _armed(point, generation):
        log.warning("SCCL_FAULT: killing process %d at %s of generation %d", os.getpid(), point, generation)
        for handler in logging.getLogger().handlers:
            try:
                handler.flush()
            except Exception:  # noqa: BLE001
                pass
        os.kill(os.getpid(), signal.SIGKILL)


class FaultInjection(LoopCallback):
    """The arm's fault points as a callback: ``train`` halfway through a generation's training,
    ``sample`` when sampling ends, ``correct`` and ``checkpoint`` when ``synthetic.npz`` and the
    checkpoint are complete in their temporary files."""

    _COMMITS = {"synthetic": "correct", "checkpoint": "checkpoint"}

    def on_progress(self, g: int, phase: str, step: int, steps: int, loss: float) -> None:
        if phase == "train" and 2 * step >= steps:
            fault_point("train", g)

    def on_phase_end(self, g: int, phase: str, seconds: float) -> None:
        if phase == "sample":
            fault_point("sample", g)

    def on_commit(self, g: int, what: str, tmp: Path) -> None:
        if what in self._COMMITS:
            fault_point(self._COMMITS[what], g)


def fault_callbacks() -> list[LoopCallback]:
    """``[FaultInjection()]`` while ``SCCL_FAULT`` is set (tests), else nothing."""
    return [FaultInjection()] if os.environ.get(ENV) else []
