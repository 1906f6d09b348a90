"""The physics corrector: what the simulated humanoid actually manages to do.

Per clip: ground-align the reference (the bundled clips themselves penetrate the floor by up
to ~10 cm on single frames), track it in PyBullet with stable PD and the bounded root assist
(:class:`simulators.HumanoidSim`), and return the simulated clip at the reference frame
rate. A fall (a body other than feet/shins touching the ground where the reference keeps it
clear, or mean body-position error > 0.5 m) or a blow-up is a failure handled by the policy.

Config keys: every :class:`simulators.SimConfig` field (``physics_hz``, ``assist_cap_g`` ...),
plus ``ground_align`` ("percentile" | "min" | "none") and ``ground_percentile`` (default
10: the 10th percentile of the per-frame lowest collision point is put on the ground — it
ignores the few frames where a rolled foot box dips deep, which "min" would turn into a
floating clip), and the common ``policy``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import fields

from correctors.base import (
    STATUS_ERROR, STATUS_FALL, STATUS_NAN, STATUS_OK, CorrectionResult, Corrector, CorrectorError, SampleOutcome,
    apply_policy, check_domain,
)
from motion.clip import Motion
from motion.errors import UserError
from simulators.humanoid import HumanoidSim, SimConfig
from simulators.plausibility import physics_metrics
from simulators.reference import ground_align

log = logging.getLogger(__name__)

_SIM_KEYS = tuple(f.name for f in fields(SimConfig))
GROUND_MODES = ("percentile", "min", "none")


class PhysicsCorrector(Corrector):
    """PyBullet tracking corrector (domain "motion"); see the module docstring."""

    name = "physics"
    domain = "motion"
    config_keys = _SIM_KEYS + ("ground_align", "ground_percentile")

    def __init__(self, config: dict | None = None) -> None:
        super().__init__(config)
        sim_cfg = {k: v for k, v in self.config.items() if k in _SIM_KEYS}
        try:
            self.sim_config = SimConfig.from_dict(sim_cfg)
        except UserError as exc:
            raise CorrectorError(f"corrector physics: {exc}") from None
        self.ground_mode = str(self.config.get("ground_align", "percentile"))
        if self.ground_mode not in GROUND_MODES:
            raise CorrectorError(
                f"corrector physics: ground_align={self.ground_mode!r}, expected one of {', '.join(GROUND_MODES)}"
            )
        try:
            self.ground_percentile = float(self.config.get("ground_percentile", 10.0))
        except (TypeError, ValueError):
            raise CorrectorError("corrector physics: ground_percentile must be a number in [0, 100]") from None
        if not 0.0 <= self.ground_percentile <= 100.0:
            raise CorrectorError(f"corrector physics: ground_percentile={self.ground_percentile}, expected [0, 100]")
        self._sim: HumanoidSim | None = None

    # The PyBullet client is created lazily and never pickled: each worker makes its own.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_sim"] = None
        return state

    @property
    def sim(self) -> HumanoidSim:
        if self._sim is None:
            self._sim = HumanoidSim(self.sim_config)
        return self._sim

    def close(self) -> None:
        if self._sim is not None:
            self._sim.close()
            self._sim = None

    def correct_one(self, motion: Motion) -> SampleOutcome:
        """Simulate one clip; never raises (an exception becomes status "error")."""
        diag: dict[str, float] = {
            "success": 0.0, "fall_time_s": math.nan, "tracking_error_mm": math.nan, "root_relative_error_mm": math.nan,
            "assist_fraction_g": math.nan, "penetrate_before_mm": math.nan, "penetrate_after_mm": math.nan,
            "phys_err_before_mm": math.nan, "phys_err_after_mm": math.nan, "ground_shift_mm": math.nan,
            "sim_seconds": 0.0, "wall_seconds": 0.0, "step_seconds": 0.0,
        }
        t0 = time.perf_counter()
        try:
            before = physics_metrics(motion)
            diag["penetrate_before_mm"] = before["penetrate_mm"]
            diag["phys_err_before_mm"] = before["phys_err_mm"]
            aligned, shift = ground_align(motion, self.ground_mode, self.ground_percentile)
            diag["ground_shift_mm"] = shift * 1000.0
            res = self.sim.track(aligned)
            diag["sim_seconds"] = res.steps / self.sim_config.physics_hz
            diag["step_seconds"] = res.step_seconds
            diag["assist_fraction_g"] = res.assist_fraction_g
            if res.blew_up or res.motion is None:
                diag["wall_seconds"] = time.perf_counter() - t0
                return SampleOutcome(STATUS_NAN, diagnostics=diag)
            diag["tracking_error_mm"] = res.tracking_error_mm
            diag["root_relative_error_mm"] = res.root_relative_error_mm
            after = physics_metrics(res.motion)
            diag["penetrate_after_mm"] = after["penetrate_mm"]
            diag["phys_err_after_mm"] = after["phys_err_mm"]
            diag["wall_seconds"] = time.perf_counter() - t0
            if res.fell:
                diag["fall_time_s"] = float(res.fall_time_s)
                return SampleOutcome(STATUS_FALL, partial=res.motion, diagnostics=diag)
            diag["success"] = 1.0
            return SampleOutcome(STATUS_OK, corrected=res.motion, diagnostics=diag)
        except Exception as exc:  # a broken clip must not take down a whole batch
            log.warning("physics corrector: %s failed: %s: %s", motion.name or "clip", type(exc).__name__, exc)
            diag["wall_seconds"] = time.perf_counter() - t0
            return SampleOutcome(STATUS_ERROR, diagnostics=diag)

    def correct(self, batch: list[Motion], seed: int, *, offset: int = 0) -> CorrectionResult:
        """Simulate every clip (deterministic: `seed` is unused by the physics)."""
        check_domain(self, batch)
        outcomes = [self.correct_one(m) for m in batch]
        return apply_policy(batch, outcomes, self.policy, self.domain)

