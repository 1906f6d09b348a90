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
  and sampling modes; the probe lifts that restriction for itself;
* ``traces``: what a fall under ``stance_ik`` looks like: each clip tracked past its fall
  (``early_stop=False``, the corrector's ground alignment), with the root's height change and
  tilt against the reference every 0.1 s and the reference's foot phase at the fall (both feet
  planted, one, or none: a foot is planted when its lowest point is within ``balance_ref_stance_m``
  (5 cm) of the floor).

The foot placement and the budget are probe-only substitutions (a subclass swapped in for
``StanceBalance``, a widened ``ROOT_CONSTRAINT_MODES``), not library settings: they were
measured here, kept no more clips than ``stance_ik`` alone, and so were not added.

Per setting: the clips kept, each clip's status and fall time, the mean residual, and the
speed (simulated seconds per CPU second of this process).

Usage: ``python bench/reactive_balance.py [--grids stance_ik,foot_placement,stance_ik_budget,traces]``
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


def traces(clips: list) -> dict:
    """Per clip under ``stance_ik`` (BASE), tracked past the fall: time, root height change (mm,
    output - reference), tilt (degrees between the up axes) every 0.1 s, the fall time, and how
    many reference feet are planted then."""
    from sccl.correctors.physics import PhysicsSettings
    from sccl.motion import quaternion as quat
    from sccl.motion.kinematics import body_lowest_points, forward_kinematics
    from sccl.motion.skeleton import load_skeleton
    from sccl.simulators import HumanoidSim, ground_align

    skeleton = load_skeleton()
    feet = [skeleton.index("right_ankle"), skeleton.index("left_ankle")]
    settings = PhysicsSettings(**BASE)  # the corrector's ground alignment, stance_ik's planted-foot height
    out = {}
    with HumanoidSim(BASE) as sim:
        for clip in clips:
            aligned, _ = ground_align(clip, settings.ground_align, settings.ground_percentile)
            result = sim.track(aligned, early_stop=False)
            planted = body_lowest_points(forward_kinematics(aligned))[:, feet] <= settings.balance_ref_stance_m
            rows = []
            step = max(1, int(round(0.1 * aligned.fps)))
            for f in range(0, result.motion.num_frames, step):
                up_out = quat.to_matrix(result.motion.root_rot[f])[:, 1]
                up_ref = quat.to_matrix(aligned.root_rot[f])[:, 1]
                tilt = math.degrees(math.acos(max(-1.0, min(1.0, float(up_out @ up_ref)))))
                drop = 1000.0 * float(result.motion.root_pos[f, 1] - aligned.root_pos[f, 1])
                rows.append({"t_s": round(f / aligned.fps, 3), "root_height_change_mm": round(drop, 1),
                             "tilt_deg": round(tilt, 1)})
            fall = result.fall_time_s
            frame = None if fall is None else min(aligned.num_frames - 1, int(round(fall * aligned.fps)))
            out[clip.label] = {"fall_time_s": fall, "fall_reason": result.fall_reason,
                               "reference_feet_planted_at_fall": None if frame is None else int(planted[frame].sum()),
                               "every_0.1_s": rows}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", default="stance_ik,foot_placement,stance_ik_budget,traces")
    args = parser.parse_args()
    grids = [g.strip() for g in args.grids.split(",") if g.strip()]
    known = {"stance_ik", "foot_placement", "stance_ik_budget", "traces"}
    unknown = set(grids) - known
    if unknown:
        parser.error(f"--grids: unknown {', '.join(sorted(unknown))}; "
                     f"known: {', '.join(sorted(known))}")

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
    if "traces" in grids:
        report["traces"] = traces(clips)
    measured = [g for g in grids if g != "traces"]
    report["most_clips_kept"] = max((r["kept"] for g in measured for r in report[g]), default=0)
    report["settings_run"] = sum(len(report[g]) for g in measured)
    print(json.dumps(report, indent=1, default=lambda v: None if isinstance(v, float) and not math.isfinite(v) else v))


if __name__ == "__main__":
    main()
