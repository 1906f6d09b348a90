"""Correction functions behind one interface (:class:`Corrector`): none, physics, ideal
(toy), nearest_cluster, and third-party plugins found through the ``sccl.correctors``
entry-point group or a ``module:Class`` path. Imports :mod:`motion` and :mod:`simulators`
only (PyBullet is loaded when a physics corrector first simulates)."""

from sccl.correctors.base import (
    POLICIES, CorrectionResult, Corrector, CorrectorError, SampleOutcome, apply_policy, indexed_normal,
    indexed_uniform, sample_seed, summarize,
)
from sccl.correctors.registry import ENTRY_POINT_GROUP, available_correctors, build_corrector, resolve_corrector

__all__ = [
    "Corrector", "CorrectionResult", "CorrectorError", "SampleOutcome", "apply_policy", "summarize", "POLICIES",
    "indexed_uniform", "indexed_normal", "sample_seed",
    "build_corrector", "available_correctors", "resolve_corrector", "ENTRY_POINT_GROUP",
]
