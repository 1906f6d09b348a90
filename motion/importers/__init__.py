"""Importers of other people's mocap (AMASS/SMPL through smplx, BVH, HumanML3D) and exporters
of humanoid clips (BVH, DeepMimic). Every importer goes through one retargeting core
(:mod:`motion.importers.retarget`) and yields :class:`motion.Motion` clips of the simulation
humanoid; :func:`import_directory` writes them as a DeepMimic-format dataset directory that
an experiment's ``data.path`` can point at.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sccl.motion.clip import Motion
from sccl.motion.deepmimic import write_clip
from sccl.motion.errors import UserError
from sccl.motion.importers.labels import LabelRule

log = logging.getLogger(__name__)

FORMATS: dict[str, tuple[str, ...]] = {"amass": (".npz",), "bvh": (".bvh",), "humanml3d": (".npy",)}


def import_file(path: str | os.PathLike, fmt: str, *, label: str | None = None, body_models: str | None = None,
                joint_map: str | None = None, up: str = "y", units: str = "auto", ground: bool = True,
                method: str = "positions", trust_pickle: bool = False) -> Motion:
    """One source file -> one humanoid clip."""
    return import_with_report(path, fmt, label=label, body_models=body_models, joint_map=joint_map, up=up,
                              units=units, ground=ground, method=method, trust_pickle=trust_pickle)[0]


def import_with_report(path: str | os.PathLike, fmt: str, *, label: str | None = None, body_models: str | None = None,
                       joint_map: str | None = None, up: str = "y", units: str = "auto", ground: bool = True,
                       method: str = "positions", trust_pickle: bool = False) -> tuple[Motion, dict]:
    """One source file -> (humanoid clip, quality report); see :mod:`motion.importers.quality`.
    The full report needs source positions: BVH through the position fit; the other paths
    report what the clip alone tells (physics metrics, hinge variation)."""
    from sccl.motion.importers.quality import fit_report, motion_report

    if fmt == "amass":
        from sccl.motion.importers.amass import import_amass

        motion = import_amass(path, body_models, label=label, ground=ground, trust_pickle=trust_pickle)
        return motion, motion_report(motion)
    if fmt == "bvh":
        from sccl.motion.importers.bvh import bvh_fit, import_bvh, is_sccl_export, read_bvh

        bvh = read_bvh(path)
        if method == "positions" and not is_sccl_export(bvh):
            fit = bvh_fit(path, joint_map=joint_map, label=label, up=up, units=units, ground=ground, bvh=bvh)
            return fit.motion, fit_report(fit)
        motion = import_bvh(path, joint_map=joint_map, label=label, up=up, units=units, ground=ground, method=method)
        return motion, motion_report(motion)
    if fmt == "humanml3d":
        from sccl.motion.importers.humanml3d import import_humanml3d

        motion = import_humanml3d(path, label=label, ground=ground)
        return motion, motion_report(motion)
    raise UserError(f"--format: unknown format {fmt!r} (expected {', '.join(FORMATS)})")


def source_files(src: str | os.PathLike, fmt: str) -> list[Path]:
    """The files of a format under SRC (a file, or a directory searched recursively)."""
    src = Path(src)
    exts = FORMATS.get(fmt)
    if exts is None:
        raise UserError(f"--format: unknown format {fmt!r} (expected {', '.join(FORMATS)})")
    if not src.exists():
        raise UserError(f"{src}: does not exist")
    if src.is_file():
        return [src]
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in exts and not p.name.startswith("."))
    if fmt == "amass":  # AMASS folders also hold shape.npz files (betas only, no motion)
        files = [p for p in files if p.name != "shape.npz"]
    if not files:
        raise UserError(f"{src}: no {fmt} files ({', '.join('*' + e for e in exts)})")
    return files


def output_stem(path: Path, src_root: Path) -> str:
    """File stem of the clip written for ``path``: its path under SRC joined with ``-``
    (``CMU/01/01_01_poses.npz`` -> ``CMU-01-01_01_poses``); ``__`` is left free for labels."""
    rel = path.relative_to(src_root) if src_root.is_dir() else Path(path.name)
    stem = "-".join(rel.with_suffix("").parts)
    return re.sub(r"_{2,}", "_", re.sub(r"[^A-Za-z0-9_.-]+", "_", stem))


@dataclass
class ClipRecord:
    """What happened to one source file: where it went (or why not), and its quality report."""

    source: Path
    target: Path | None
    label: str | None
    report: dict
    refused: list[str] = field(default_factory=list)


REPORT_NAME = "import_report.csv"


def import_dataset(src: str | os.PathLike, dst: str | os.PathLike, fmt: str, *, label: str | None = None,
                   labels: LabelRule | None = None, accept_all: bool = False,
                   thresholds: dict[str, float] | None = None, **options) -> list[ClipRecord]:
    """Import every source file under SRC into DST (one DeepMimic clip each, atomic writes),
    measure each clip and refuse those beyond the quality thresholds (``accept_all`` writes
    them anyway, marked in the report). The per-clip report is written to
    ``DST/import_report.csv`` (not a clip: the dataset reader only reads ``*.txt``/``*.json``).

    DeepMimic files carry no label: the dataset reader takes it from the file name. Clips are
    named ``<stem>.txt`` (label = stem) or, with a label, ``<label>__<stem>.txt`` -- the naming
    ``sccl sample`` uses too."""
    from sccl.motion.importers.quality import THRESHOLDS, refusal_reasons

    rule = labels or LabelRule(label=label)
    src_root = Path(src)
    files = source_files(src_root, fmt)
    labeler = rule.labeler(src_root)
    records: list[ClipRecord] = []
    for i, path in enumerate(files, 1):
        stem = output_stem(path, src_root)
        lab = labeler(path)
        motion, report = import_with_report(path, fmt, label=lab or stem, **options)
        reasons = refusal_reasons(report, thresholds if thresholds is not None else THRESHOLDS)
        target = Path(dst) / (f"{lab}__{stem}.txt" if lab else f"{stem}.txt")
        if reasons and not accept_all:
            log.warning("[%d/%d] %s refused: %s", i, len(files), path, "; ".join(reasons))
            if target.exists():  # a clip from an earlier import of this file must not stay behind
                target.unlink()
                log.warning("%s: removed the clip of an earlier import", target)
            records.append(ClipRecord(path, None, lab, report, reasons))
            continue
        write_clip(motion, target)
        log.info("[%d/%d] %s -> %s (%d frames at %g fps, label %s)", i, len(files), path, target,
                 motion.num_frames, motion.fps, motion.label)
        records.append(ClipRecord(path, target, lab, report, reasons))
    write_report(records, Path(dst) / REPORT_NAME)
    return records


def write_report(records: list[ClipRecord], path: Path) -> Path:
    """The per-clip quality report as CSV (atomic write)."""
    from sccl.motion.importers.quality import FIELDS

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(("source", "clip", "label", "status") + FIELDS + ("reasons",))
        for r in records:
            status = "refused" if r.target is None else ("accepted" if r.refused else "ok")
            vals = []
            for k in FIELDS:
                v = r.report.get(k, "")
                vals.append(f"{v:.4g}" if isinstance(v, float) else v)
            w.writerow([str(r.source), r.target.name if r.target else "", r.label or "", status, *vals,
                        "; ".join(r.refused)])
    os.replace(tmp, path)
    return path


def import_directory(src: str | os.PathLike, dst: str | os.PathLike, fmt: str, *, label: str | None = None,
                     **options) -> list[Path]:
    """:func:`import_dataset`, returning the written clips only."""
    return [r.target for r in import_dataset(src, dst, fmt, label=label, **options) if r.target is not None]
