"""Per-clip quality report of an import, and the gate that refuses clips beyond thresholds.

Why: an importer that writes every clip without looking lets a wrong joint map, a skeleton
convention it does not understand or a broken take through as silent garbage (a knee stuck
at 0 degrees, a body floating 10 cm above the floor). Each clip is therefore measured
against its own source after retargeting, and refused with the reason when it is off:

* ``bone_err_mean_deg`` / ``bone_err_p95_deg`` / ``worst_bone``: angle between each fitted
  humanoid bone (forward kinematics of the written clip) and the source bone it follows
  (thigh, shin, foot, upper arm, forearm, chest, neck), mean and 95th percentile over bones x
  frames. What a hinge cannot bend (a knee bent sideways) shows up here.
* ``contact_agreement``: fraction of frames x feet where the source and the humanoid agree on
  "this foot is planted" (within 5 cm of the ground and slower than 0.5 m/s; the source's
  ground is each foot joint's own low percentile, the humanoid's is y = 0 after grounding).
* ``contact_float_mm``: mean height of the humanoid's lowest foot point on the frames where
  the source plants a foot -- floating where the source stands. ``float_mm`` and
  ``penetrate_mm`` are :func:`simulators.plausibility.physics_metrics` of the written clip
  (``float_mm`` counts the flight phases of a run as floating, as PhysDiff does).
* ``clamped_pct`` / ``clamp_max_deg``: frames where a knee or elbow had to be clamped to its
  URDF range by more than 5 degrees (a hyperextended knee), and the largest clamp.
* ``hinge_min_std_deg``: the smallest standard deviation over the clip of a hinge angle; a
  hinge that stays constant while the source bends it is reported as degenerate.
"""

from __future__ import annotations

import logging
import math
from typing import Mapping

import numpy as np

from sccl.motion.clip import Motion
from sccl.motion.importers.posefit import CONTACT_HEIGHT_M, CONTACT_SPEED_MS, FitResult, foot_lowest
from sccl.motion.skeleton import REVOLUTE_JOINTS, load_skeleton

log = logging.getLogger(__name__)

#: Default refusal thresholds (a clip beyond any of them is refused; ``--accept-all`` overrides).
THRESHOLDS: dict[str, float] = {
    "bone_err_mean_deg": 10.0,  # max
    "contact_agreement": 0.6,  # min
    "contact_float_mm": 30.0,  # max
    "penetrate_mm": 20.0,  # max
    "clamped_pct": 25.0,  # max
}
CLAMP_DEG = 5.0
#: A hinge is degenerate when its angle varies by less than this while the source bends it by more than 1 degree.
DEGENERATE_STD_DEG = 0.1

FIELDS = ("frames", "fps", "convention", "bone_err_mean_deg", "bone_err_p95_deg", "worst_bone", "contact_agreement",
          "contact_float_mm", "float_mm", "penetrate_mm", "clamped_pct", "clamp_max_deg", "hinge_min_std_deg",
          "foot_slope_deg", "scale", "missing")


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)))


def humanoid_contacts(motion: Motion) -> np.ndarray:
    """(T, 2) humanoid foot contacts (right, left): lowest foot point within 5 cm of y = 0 and
    ankle slower than 0.5 m/s horizontally -- the rule used for the source."""
    from sccl.motion.kinematics import forward_kinematics

    sk = load_skeleton()
    low = foot_lowest(motion)
    pos = forward_kinematics(motion).positions[:, [sk.index("right_ankle"), sk.index("left_ankle")]]
    if motion.num_frames < 2:
        return low < CONTACT_HEIGHT_M
    v = np.linalg.norm(np.gradient(pos[..., [0, 2]], axis=0), axis=-1) * motion.fps
    return (low < CONTACT_HEIGHT_M) & (v < CONTACT_SPEED_MS)


def fit_report(fit: FitResult) -> dict:
    """The quality report of one position-fitted clip (see module docstring)."""
    from sccl.motion.kinematics import forward_kinematics
    from sccl.simulators.plausibility import physics_metrics

    m = fit.motion
    sk = load_skeleton()
    kin = forward_kinematics(m)
    errs: dict[str, np.ndarray] = {}
    for body, src_dir in fit.source_dirs.items():
        got = np.einsum("tij,j->ti", kin.rotations[:, sk.index(body)], fit.rest_dirs[body])
        errs[body] = _angle_deg(got, src_dir)
    allerr = np.concatenate(list(errs.values())) if errs else np.zeros(1)
    worst = max(errs, key=lambda b: float(errs[b].mean())) if errs else ""
    contacts = humanoid_contacts(m)
    low = foot_lowest(m)
    src_c = fit.source_contacts
    cf = float(np.maximum(low[src_c], 0.0).mean() * 1000.0) if src_c.any() else 0.0
    clamps = {h: np.degrees(np.abs(raw - np.clip(raw, *_limits(h)))) for h, raw in fit.raw_hinges.items()}
    clamp_any = np.max(np.stack(list(clamps.values())), axis=0) if clamps else np.zeros(m.num_frames)
    phys = physics_metrics(m)
    stds = np.degrees(m.joint_angles.std(axis=0))
    return {
        "frames": m.num_frames,
        "fps": round(float(m.fps), 4),
        "convention": fit.point_map.convention,
        "bone_err_mean_deg": float(allerr.mean()),
        "bone_err_p95_deg": float(np.percentile(allerr, 95)),
        "worst_bone": worst,
        "contact_agreement": float((contacts == src_c).mean()),
        "contact_float_mm": cf,
        "float_mm": phys["float_mm"],
        "penetrate_mm": phys["penetrate_mm"],
        "clamped_pct": float((clamp_any > CLAMP_DEG).mean() * 100.0),
        "clamp_max_deg": float(clamp_any.max()),
        "hinge_min_std_deg": float(stds.min()),
        "foot_slope_deg": float(fit.foot_slope_deg),
        "scale": float(fit.scale),
        "missing": " ".join(fit.missing_bodies),
        "_hinge_std": {h: float(s) for h, s in zip(REVOLUTE_JOINTS, stds)},
        "_source_bend_std": _source_bend_std(fit),
    }


def motion_report(motion: Motion) -> dict:
    """What can be measured without source positions (AMASS, HumanML3D, exact BVH read-back):
    physics metrics and hinge variation; the other fields are left empty."""
    from sccl.simulators.plausibility import physics_metrics

    phys = physics_metrics(motion)
    stds = np.degrees(motion.joint_angles.std(axis=0))
    out = {k: math.nan for k in FIELDS}
    out.update(frames=motion.num_frames, fps=round(float(motion.fps), 4), convention="", worst_bone="", missing="",
               float_mm=phys["float_mm"], penetrate_mm=phys["penetrate_mm"], hinge_min_std_deg=float(stds.min()))
    return out


def _limits(hinge: str) -> tuple[float, float]:
    from sccl.motion.importers.retarget import REVOLUTE_LIMITS

    return REVOLUTE_LIMITS[hinge]


def _source_bend_std(fit: FitResult) -> dict[str, float]:
    """Std (degrees) of the source's bend at each hinge: angle between the two bones."""
    out = {}
    for hinge, parent in (("right_knee", "right_hip"), ("left_knee", "left_hip"),
                          ("right_elbow", "right_shoulder"), ("left_elbow", "left_shoulder")):
        if hinge in fit.source_dirs and parent in fit.source_dirs:
            out[hinge] = float(_angle_deg(fit.source_dirs[parent], fit.source_dirs[hinge]).std())
    return out


def refusal_reasons(report: Mapping, thresholds: Mapping[str, float] = THRESHOLDS) -> list[str]:
    """Why a clip should be refused (empty: keep it). NaN fields (not measured) never refuse."""
    reasons = []

    def over(key: str, unit: str) -> None:
        v = report.get(key, math.nan)
        if key in thresholds and not math.isnan(v) and v > thresholds[key]:
            reasons.append(f"{key} {v:.1f}{unit} > {thresholds[key]:g}{unit}")

    over("bone_err_mean_deg", " deg")
    v = report.get("contact_agreement", math.nan)
    if "contact_agreement" in thresholds and not math.isnan(v) and v < thresholds["contact_agreement"]:
        reasons.append(f"contact_agreement {v:.2f} < {thresholds['contact_agreement']:g}")
    over("contact_float_mm", " mm")
    over("penetrate_mm", " mm")
    over("clamped_pct", "%")
    for hinge, std in report.get("_hinge_std", {}).items():
        bend = report.get("_source_bend_std", {}).get(hinge, 0.0)
        if std < DEGENERATE_STD_DEG and bend > 1.0:
            reasons.append(f"{hinge} is constant (std {std:.2f} deg) while the source bends it (std {bend:.1f} deg)")
    return reasons
