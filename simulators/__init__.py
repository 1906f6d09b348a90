"""Physics worlds in PyBullet: the humanoid body, stable-PD tracking with a bounded assist,
fall detection, contact-consistency accounting of the assist, and FK-based plausibility metrics. Imports only :mod:`motion`.

PyBullet itself is imported lazily by :class:`HumanoidSim`, so metrics stay numpy-only.
"""

from sccl.simulators.humanoid import HumanoidSim, SimConfig, SimulatorConfigError, TrackResult
from sccl.simulators.contact import ContactAccounting, project_on_contact_cone
from sccl.simulators.plausibility import (
    FLIGHT_KEYS, METRIC_KEYS, SKATE_PART_KEYS, flight_metrics, mean_metrics, physics_metrics,
)
from sccl.simulators.reference import ground_align, ground_offset, resample

__all__ = [
    "HumanoidSim", "SimConfig", "SimulatorConfigError", "TrackResult",
    "physics_metrics", "mean_metrics", "METRIC_KEYS", "SKATE_PART_KEYS", "flight_metrics", "FLIGHT_KEYS",
    "ContactAccounting", "project_on_contact_cone", "ground_align", "ground_offset", "resample",
]
