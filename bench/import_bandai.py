"""Benchmark of BVH import on the Bandai Namco Research Motion Dataset 1; prints one JSON object.

* ``import``: the whole dataset through ``sccl import``'s own code path (position fit, quality
  report, refusal, labels from the file name) into ``--out`` (outside the repository):
  clips/s, refused clips, mean and worst bone-direction error vs the source, degenerate
  (constant) hinges, and per content (walk, run, dash, ...) the float, the float where the
  source plants a foot, penetration and foot-contact agreement.
* ``physics``: the physics corrector at its default settings on the imported walk/run/dash
  clips (and on every locomotion clip: + walk-back/left/right): share kept without a fall;
  for reference, the bundled walk and run extended cyclically to 3 s (``bundled_walk_run_3s``).
* ``cmu``: CMU-convention files (T-pose rest, CMU joint names and hierarchy, cm, facing +z)
  written from the 15 bundled humanoid clips -- the exact answer is the bundled clip itself --
  imported by the older rotation path (today's default for CMU) and by the position fit:
  hinge-angle error, bone-direction error, float and penetration, physics corrector keeps.
  (No real CMU file is on this machine; these files have the humanoid's proportions.)

Usage: ``python bench/import_bandai.py [--data DIR] [--out /tmp/bandai] [--skip-physics] [--skip-cmu]
[--set gain_scale=2 ...]`` (``--set``: physics corrector settings; default: its defaults)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path

# This folder holds scripts named like packages (loop.py, metrics.py): keep them from shadowing.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "bandai-namco-1"
LOCOMOTION = ("walk", "run", "dash")


def _clean(v):
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(v) else round(float(v), 4)
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def content_of(name: str) -> str:
    m = re.match(r"dataset-1_([^_]+)_", name)
    return m.group(1) if m else "?"


def bench_import(data: Path, out: Path) -> tuple[dict, list]:
    from sccl.motion.importers import import_dataset
    from sccl.motion.importers.labels import LabelRule
    from sccl.motion.importers.quality import DEGENERATE_STD_DEG

    t0 = time.perf_counter()
    records = import_dataset(data / "data", out, "bvh", labels=LabelRule(regex=r"dataset-1_(?P<label>[^_]+)_"))
    wall = time.perf_counter() - t0
    reps = [r.report for r in records]
    degenerate = []
    for r in records:
        for hinge, std in r.report["_hinge_std"].items():
            if std < DEGENERATE_STD_DEG:
                degenerate.append(f"{r.source.name}:{hinge}")
    by_content: dict[str, dict] = {}
    for r in records:
        by_content.setdefault(content_of(r.source.name), []).append(r.report)  # type: ignore[arg-type]
    keys = ("float_mm", "contact_float_mm", "penetrate_mm", "contact_agreement", "bone_err_mean_deg", "clamped_pct")
    per_content = {c: {"clips": len(v), **{k: float(np.mean([x[k] for x in v])) for k in keys}}
                   for c, v in sorted(by_content.items())}
    frames = sum(r["frames"] for r in reps)
    summary = {
        "clips": len(records),
        "frames": frames,
        "wall_s": wall,
        "clips_per_s": len(records) / wall,
        "frames_per_s": frames / wall,
        "written": sum(r.target is not None for r in records),
        "refused": [f"{r.source.name}: {'; '.join(r.refused)}" for r in records if r.target is None],
        "bone_err_mean_deg": float(np.mean([r["bone_err_mean_deg"] for r in reps])),
        "bone_err_worst_clip_mean_deg": float(np.max([r["bone_err_mean_deg"] for r in reps])),
        "bone_err_p95_worst_clip_deg": float(np.max([r["bone_err_p95_deg"] for r in reps])),
        "degenerate_hinges": degenerate,
        "hinge_min_std_deg": float(np.min([r["hinge_min_std_deg"] for r in reps])),
        "clamped_pct_mean": float(np.mean([r["clamped_pct"] for r in reps])),
        "clamp_max_deg": float(np.max([r["clamp_max_deg"] for r in reps])),
        "contact_agreement_mean": float(np.mean([r["contact_agreement"] for r in reps])),
        "walk_run_float_mm_mean": float(np.mean([r.report["float_mm"] for r in records
                                                 if content_of(r.source.name) in ("walk", "run")])),
        "walk_run_contact_float_mm_mean": float(np.mean([r.report["contact_float_mm"] for r in records
                                                         if content_of(r.source.name) in ("walk", "run")])),
        "root_height_m_mean": None,
        "per_content": per_content,
    }
    return summary, records


def bench_physics(motions: dict[str, list], settings: dict | None = None) -> dict:
    """Physics corrector keep rate per group of clips (default settings unless ``settings``)."""
    from sccl.correctors.physics import PhysicsCorrector

    corr = PhysicsCorrector(dict(settings or {}))
    out = {}
    try:
        for group, clips in motions.items():
            t0 = time.perf_counter()
            outcomes = [(m.name, corr.correct_one(m)) for m in clips]
            falls = [f"{n} ({o.status}, {o.diagnostics.get('fall_time_s', float('nan')):.2f} s)"
                     for n, o in outcomes if o.status != "ok"]
            out[group] = {
                "clips": len(clips),
                "kept": sum(o.status == "ok" for _, o in outcomes),
                "kept_rate": sum(o.status == "ok" for _, o in outcomes) / max(1, len(clips)),
                "not_kept": falls,
                "tracking_error_mm_mean": float(np.nanmean([o.diagnostics["tracking_error_mm"] for _, o in outcomes])),
                "wall_s": time.perf_counter() - t0,
            }
    finally:
        corr.close()
    return out


# --------------------------------------------------------------------- CMU-convention files
#: CMU hierarchy: name, parent, humanoid body it moves with, point in that body (None: its origin).
CMU_JOINTS = [
    ("Hips", None, "root", None), ("LHipJoint", "Hips", "root", None), ("LeftUpLeg", "LHipJoint", "left_hip", None),
    ("LeftLeg", "LeftUpLeg", "left_knee", None), ("LeftFoot", "LeftLeg", "left_ankle", None),
    ("LeftToeBase", "LeftFoot", "left_ankle", (0.13, -0.035, 0.0)),
    ("RHipJoint", "Hips", "root", None), ("RightUpLeg", "RHipJoint", "right_hip", None),
    ("RightLeg", "RightUpLeg", "right_knee", None), ("RightFoot", "RightLeg", "right_ankle", None),
    ("RightToeBase", "RightFoot", "right_ankle", (0.13, -0.035, 0.0)),
    ("LowerBack", "Hips", "root", None), ("Spine", "LowerBack", "root", (0.0, 0.12, 0.0)),
    ("Spine1", "Spine", "chest", None), ("Neck", "Spine1", "neck", None), ("Neck1", "Neck", "neck", (0.0, 0.06, 0.0)),
    ("Head", "Neck1", "neck", (0.0, 0.12, 0.0)),
    ("LeftShoulder", "Spine1", "chest", (-0.02, 0.22, -0.08)), ("LeftArm", "LeftShoulder", "left_shoulder", None),
    ("LeftForeArm", "LeftArm", "left_elbow", None), ("LeftHand", "LeftForeArm", "left_wrist", None),
    ("RightShoulder", "Spine1", "chest", (-0.02, 0.22, 0.08)), ("RightArm", "RightShoulder", "right_shoulder", None),
    ("RightForeArm", "RightArm", "right_elbow", None), ("RightHand", "RightForeArm", "right_wrist", None),
]


def cmu_bvh_text(motion) -> str:
    """A CMU-convention BVH of a humanoid clip: T-pose rest with identity joint frames, facing +z, cm."""
    from scipy.spatial.transform import Rotation

    from sccl.motion import quaternion as quat
    from sccl.motion.clip import Motion
    from sccl.motion.importers.retarget import axis_rotation
    from sccl.motion.kinematics import forward_kinematics
    from sccl.motion.skeleton import load_skeleton

    sk = load_skeleton()
    bi = {n: i for i, n in enumerate(sk.body_names)}
    t = motion.num_frames
    # the humanoid in a T-pose: its bodies' rest orientations O_b (arms out sideways)
    o = {n: np.eye(3) for n in sk.body_names}
    for side, ang in (("right", -90.0), ("left", 90.0)):
        for part in ("shoulder", "elbow", "wrist"):
            o[f"{side}_{part}"] = axis_rotation("x", np.radians(ang))
    jr = np.tile([0.0, 0.0, 0.0, 1.0], (1, 8, 1))
    for side, ang in (("right", -90.0), ("left", 90.0)):
        from sccl.motion.skeleton import SPHERICAL_JOINTS

        jr[0, SPHERICAL_JOINTS.index(f"{side}_shoulder")] = quat.from_axis_angle([1.0, 0, 0], np.radians(ang))
    tpose = Motion(motion.fps, np.array([[0.0, 0.9, 0.0]]), np.array([[0.0, 0, 0, 1]]), jr, np.zeros((1, 4)))
    turn = axis_rotation("y", -np.pi / 2)  # the humanoid faces +x; CMU faces +z

    def points(kin):
        out = {}
        for j, _, body, pt in CMU_JOINTS:
            b = bi[body]
            out[j] = kin.positions[:, b] + (0.0 if pt is None else kin.rotations[:, b] @ np.array(pt))
        return out

    rest_kin = forward_kinematics(tpose)
    rest = {k: (v[0] @ turn.T) * 100.0 for k, v in points(rest_kin).items()}
    kin = forward_kinematics(motion)
    pos = {k: (v @ turn.T) * 100.0 for k, v in points(kin).items()}
    glob = {j: turn @ kin.rotations[:, bi[body]] @ o[body].T @ turn.T for j, _, body, _ in CMU_JOINTS}
    children = {j: [c for c, p, _, _ in CMU_JOINTS if p == j] for j, *_ in CMU_JOINTS}
    lines, cols = ["HIERARCHY"], []

    def emit(j, parent, depth):
        pad = "\t" * depth
        off = np.zeros(3) if parent is None else rest[j] - rest[parent]
        lines.extend([pad + ("ROOT " if parent is None else "JOINT ") + j, pad + "{",
                      pad + "\tOFFSET " + " ".join(f"{v:.6f}" for v in off)])
        if parent is None:
            lines.append(pad + "\tCHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation")
            local = glob[j]
            cols.append(pos[j])
        else:
            lines.append(pad + "\tCHANNELS 3 Zrotation Yrotation Xrotation")
            local = np.swapaxes(glob[parent], -1, -2) @ glob[j]
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            cols.append(Rotation.from_matrix(local).as_euler("ZYX", degrees=True))
        for c in children[j]:
            emit(c, j, depth + 1)
        if not children[j]:
            lines.extend([pad + "\tEnd Site", pad + "\t{", pad + "\t\tOFFSET 0.000000 -2.000000 0.000000", pad + "\t}"])
        lines.append(pad + "}")

    emit("Hips", None, 0)
    lines += ["MOTION", f"Frames: {t}", f"Frame Time: {1.0 / motion.fps:.8f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in np.concatenate(cols, axis=1)]
    return "\n".join(lines) + "\n"


#: Joint pairs (humanoid body origins) whose directions are compared with the exact answer.
BONE_PAIRS = [("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("left_hip", "left_knee"),
              ("left_knee", "left_ankle"), ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
              ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("root", "chest"), ("chest", "neck")]


def _bone_dirs(motion) -> np.ndarray:
    from sccl.motion.kinematics import forward_kinematics
    from sccl.motion.skeleton import load_skeleton

    sk = load_skeleton()
    p = forward_kinematics(motion).positions
    d = np.stack([p[:, sk.index(b)] - p[:, sk.index(a)] for a, b in BONE_PAIRS], axis=1)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def bench_cmu(tmp: Path, physics: bool, settings: dict | None = None) -> dict:
    """Both BVH paths on CMU-convention files whose exact answer is known (the bundled clips)."""
    from sccl.motion import quaternion as quat
    from sccl.motion.deepmimic import read_directory
    from sccl.motion.importers.bvh import import_bvh
    from sccl.motion.importers.retarget import axis_rotation
    from sccl.simulators.plausibility import physics_metrics

    tmp.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list] = {"truth": [], "rotations": [], "positions": []}
    motions: dict[str, list] = {"rotations": [], "positions": []}
    for rc in read_directory():
        truth = rc.motion
        path = tmp / f"{truth.name.removesuffix('.txt')}.bvh"
        path.write_text(cmu_bvh_text(truth))
        want = _bone_dirs(truth)
        rows["truth"].append({k: physics_metrics(truth)[k] for k in ("float_mm", "penetrate_mm")})
        for method in ("rotations", "positions"):
            m = import_bvh(path, method=method)
            # the position fit turns the scene so that its first frame faces +x: undo that constant yaw
            yaw = float(quat.heading_angle(truth.root_rot[0]) - quat.heading_angle(m.root_rot[0]))
            got = _bone_dirs(m) @ axis_rotation("y", yaw).T
            err = np.degrees(np.arccos(np.clip(np.sum(got * want, axis=-1), -1.0, 1.0)))
            phys = physics_metrics(m)
            rows[method].append({
                "hinge_err_deg": float(np.degrees(np.abs(m.joint_angles - truth.joint_angles)).mean()),
                "bone_err_deg": float(err.mean()), "bone_err_p95_deg": float(np.percentile(err, 95)),
                "float_mm": phys["float_mm"], "penetrate_mm": phys["penetrate_mm"],
            })
            motions[method].append(m.replace(name=truth.name))
    out: dict = {"clips": len(rows["truth"]),
                 "truth": {k: float(np.mean([r[k] for r in rows["truth"]])) for k in ("float_mm", "penetrate_mm")}}
    for method in ("rotations", "positions"):
        out[method] = {k: float(np.mean([r[k] for r in rows[method]]))
                       for k in ("hinge_err_deg", "bone_err_deg", "bone_err_p95_deg", "float_mm", "penetrate_mm")}
    if physics:
        truth_m = [rc.motion for rc in read_directory()]
        phys = bench_physics({"cmu_truth": truth_m, **{f"cmu_{k}": v for k, v in motions.items()}}, settings)
        for k in ("truth", "rotations", "positions"):
            out[k]["physics_kept"] = f"{phys[f'cmu_{k}']['kept']}/{phys[f'cmu_{k}']['clips']}"
            out[k]["physics_not_kept"] = phys[f"cmu_{k}"]["not_kept"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="the dataset folder (holding data/ and cfg/)")
    parser.add_argument("--out", default="/tmp/bandai", help="import destination (outside the repository)")
    parser.add_argument("--skip-physics", action="store_true")
    parser.add_argument("--skip-cmu", action="store_true")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="physics corrector setting (e.g. gain_scale=2); default: the corrector's defaults")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.ERROR)
    data = Path(args.data)
    if not (data / "data").is_dir():
        print(json.dumps({"error": f"{data}/data not found (Bandai Namco Research Motion Dataset 1)"}))
        sys.exit(2)
    result: dict = {"data": str(data), "out": args.out}
    summary, records = bench_import(data, Path(args.out))
    from sccl.motion.deepmimic import read_clip

    written = {r.source.name: read_clip(r.target).motion for r in records if r.target is not None}
    summary["root_height_m_mean"] = float(np.mean([m.root_pos[:, 1].mean() for m in written.values()]))
    result["import"] = summary
    if not args.skip_physics:
        groups = {
            "walk_run_dash": [m.replace(name=n) for n, m in written.items() if content_of(n) in LOCOMOTION],
            "walk_back_left_right": [m.replace(name=n) for n, m in written.items() if content_of(n).startswith("walk-")],
        }
        from sccl.loop.commands.correct import parse_settings

        settings = parse_settings(args.settings)
        result["physics_settings"] = settings or "defaults"
        # reference: the bundled walk and run, extended cyclically to 3 s as the dataset pipeline does
        from sccl.motion.dataset import extend_cyclic
        from sccl.motion.deepmimic import read_directory

        groups["bundled_walk_run_3s"] = [extend_cyclic(rc, 3.0).motion for rc in read_directory()
                                         if rc.motion.name in ("humanoid3d_walk.txt", "humanoid3d_run.txt")]
        result["physics"] = bench_physics(groups, settings)
        per: dict[str, int] = {}
        for line in result["physics"]["walk_run_dash"]["not_kept"]:
            per.setdefault(content_of(line), 0)
            per[content_of(line)] += 1
        for c in LOCOMOTION:
            n = sum(content_of(k) == c for k in written)
            result["physics"][f"kept_{c}"] = f"{n - per.get(c, 0)}/{n}"
    if not args.skip_cmu:
        from sccl.loop.commands.correct import parse_settings

        result["cmu"] = bench_cmu(Path(args.out + "_cmu_src"), physics=not args.skip_physics,
                                  settings=parse_settings(args.settings))
    print(json.dumps(_clean(result), indent=1))


if __name__ == "__main__":
    main()
