"""Can a controller without lookahead keep the 8 named clips up honestly? Prints one JSON object.

Why this exists: the speed target of issue 15 (>= 10x real time per core) leaves room for about
one simulation per committed step, and every search costs far more (docs/PHYSICS.md). So a
fast honest mode has to be *reactive*: a feedback law from the current state, no rollouts.
This probe measures the reactive candidates the issue and ``../shared/PHYSICS.md`` name,
each on top of ``assist_mode=stance_ik`` (stance-leg IK balance, nothing external):

* ``stance_ik``: its stiffness and rate settings (``damping_scale`` x
  ``balance_stance_kd_scale`` x ``control_hz``) and the clip's ground alignment;
* ``foot_placement``: swing-foot placement feedback (SIMBICON, Yin et al. 2007; capture
  point): while one reference foot is planted and the other swings, the swing leg gets IK
  targets that put its ankle at the reference ankle moved by the root's drift from the
  reference plus ``gain_position`` x that drift plus ``gain_velocity`` x the root's velocity
  error (horizontal only), so the next step lands where it catches the body;
* ``stance_ik_budget``: the same with the legacy root constraint capped at a declared
  residual budget (``assist_cap_g``), which the library allows only for the root-constraint
  and sampling modes; the probe lifts that restriction for itself.

The foot placement and the budget are probe-only substitutions (a subclass swapped in for
``StanceBalance``, a widened ``ROOT_CONSTRAINT_MODES``), not library settings: they were
measured here, kept no more clips than ``stance_ik`` alone, and so were not added.

Per setting: the clips kept, each clip's status and fall time, the mean residual, and the
speed (simulated seconds per CPU second of this process).

Usage: ``python bench/reactive_balance.py [--grids stance_ik,foot_placement,stance_ik_budget]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys

# This folder holds scripts named like packages (loop.py, metrics.py): keep them from shadowing.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.append(os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import correction  # noqa: E402  (bench/correction.py: timing, rows, target clips)

BASE = {"assist_mode": "stance_ik", "control_hz": 240.0}
STIFFNESS_GRID = {"damping_scale": (1.0, 0.3, 0.1), "balance_stance_kd_scale": (0.3, 1.0), "control_hz": (240.0, 480.0)}
GROUND_GRID = ({"ground_align": "none"}, {"ground_percentile": 50.0}, {"ground_percentile": 30.0})
FOOT_GAINS = ((0.0, 0.0), (0.5, 0.0), (1.0, 0.0), (0.0, 0.1), (0.5, 0.1), (1.0, 0.1), (0.0, 0.3), (0.5, 0.3),
              (1.0, 0.3))
BUDGETS = (0.035, 0.05, 0.1)


def foot_placement_class(gain_position: float, gain_velocity: float):
    """A :class:`simulators.balance.StanceBalance` that also places the swing foot (see the
    module docstring), with the given feedback gains (dimensionless, and seconds)."""
    from sccl.motion import quaternion as quat
    from sccl.simulators import balance

    class FootPlacementBalance(balance.StanceBalance):
        def __init__(self, ref, **kwargs) -> None:
            super().__init__(ref, **kwargs)
            self.dt = float(ref.times[1] - ref.times[0]) if ref.num_samples > 1 else 1.0
            self.previous_root: np.ndarray | None = None

        def targets(self, k, sph, rev, root_pos, root_rot, feet) -> bool:
            active = super().targets(k, sph, rev, root_pos, root_rot, feet)
            ref = self.ref
            k = min(k, ref.num_samples - 1)
            velocity = np.zeros(3) if self.previous_root is None else (root_pos - self.previous_root) / self.dt
            self.previous_root = root_pos.copy()
            drift = root_pos - ref.root_pos[k]
            shift = (1.0 + gain_position) * drift + gain_velocity * (velocity - ref.root_lin_vel[k])
            shift[1] = 0.0
            placed = False
            for i, (leg, other) in enumerate(zip(self.legs, self.legs[::-1])):
                swinging = (leg["ref_low"][k] > self.ref_stance_height_m
                            and other["ref_low"][k] <= self.ref_stance_height_m)
                if self.stance[i] or not swinging:
                    continue
                knee = balance._rotz(float(rev[leg["knee_slot"]]))
                hip = quat.to_matrix(sph[leg["hip_slot"]])
                foot = hip @ knee @ quat.to_matrix(sph[leg["ankle_slot"]])
                target = root_rot.T @ (leg["ref_ankle"][k] + shift - root_pos) - leg["o_h"]
                placed |= balance._leg_ik(leg, k, target, foot, sph, rev, hip_base=hip)
            return active or placed

    return FootPlacementBalance


def run(config: dict, clips: list) -> dict:
    """The 8 clips under one config: kept, per-clip status / fall time, residual, speed."""
    out = correction.run_mode("probe", config, clips)
    rows = out["rows"]
    return {
        "settings": {k: v for k, v in config.items() if BASE.get(k) != v},
        "kept": sum(r["status"] == "ok" for r in rows.values()),
        "clips": {name: {"status": r["status"], "fall_time_s": r["fall_time_s"],
                         "root_relative_error_mm": r["root_relative_error_mm"]} for name, r in rows.items()},
        "mean_residual_g": correction._mean(r["residual_g"] for r in rows.values()),
        "realtime_factor_per_core_cpu": out["speed"]["realtime_factor_per_core_cpu"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", default="stance_ik,foot_placement,stance_ik_budget")
    args = parser.parse_args()
    grids = [g.strip() for g in args.grids.split(",") if g.strip()]
    unknown = set(grids) - {"stance_ik", "foot_placement", "stance_ik_budget"}
    if unknown:
        parser.error(f"--grids: unknown {', '.join(sorted(unknown))}; "
                     "known: stance_ik, foot_placement, stance_ik_budget")

    from sccl.motion.deepmimic import read_directory
    from sccl.simulators import humanoid

    clips = [m for m in (rc.motion for rc in read_directory()) if m.label in correction.TARGET_CLIPS]
    report: dict = {"clips": sorted(c.label for c in clips)}
    if "stance_ik" in grids:
        keys = list(STIFFNESS_GRID)
        settings = [dict(zip(keys, values)) for values in itertools.product(*STIFFNESS_GRID.values())]
        report["stance_ik"] = [run(BASE | s, clips) for s in settings + list(GROUND_GRID)]
    if "foot_placement" in grids:
        original = humanoid.StanceBalance
        rows = []
        try:
            for gp, gv in FOOT_GAINS:
                humanoid.StanceBalance = foot_placement_class(gp, gv)
                row = run(BASE, clips)
                row["settings"] = {"gain_position": gp, "gain_velocity_s": gv}
                rows.append(row)
        finally:
            humanoid.StanceBalance = original
        report["foot_placement"] = rows
    if "stance_ik_budget" in grids:
        original_modes = humanoid.ROOT_CONSTRAINT_MODES
        humanoid.ROOT_CONSTRAINT_MODES = original_modes + ("stance_ik",)
        try:
            report["stance_ik_budget"] = [run(BASE | {"assist_cap_g": cap}, clips) for cap in BUDGETS]
        finally:
            humanoid.ROOT_CONSTRAINT_MODES = original_modes
    best = max((r["kept"] for g in grids for r in report[g]), default=0)
    report["most_clips_kept"] = best
    report["settings_run"] = sum(len(report[g]) for g in grids)
    print(json.dumps(report, indent=1, default=lambda v: None if isinstance(v, float) and not math.isfinite(v) else v))


if __name__ == "__main__":
    main()
