"""Importers of other people's mocap (AMASS/SMPL through smplx, BVH, HumanML3D) and exporters
of humanoid clips (BVH, DeepMimic). Every importer goes through one retargeting core
(:mod:`motion.importers.retarget`) and yields :class:`motion.Motion` clips of the simulation
humanoid; :func:`import_directory` writes them as a DeepMimic-format dataset directory that
an experiment's ``data.path`` can point at.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from motion.clip import Motion
from motion.deepmimic import write_clip
from motion.errors import UserError

log = logging.getLogger(__name__)

FORMATS: dict[str, tuple[str, ...]] = {"amass": (".npz",), "bvh": (".bvh",), "humanml3d": (".npy",)}


def import_file(path: str | os.PathLike, fmt: str, *, label: str | None = None, body_models: str | None = None,
                joint_map: str | None = None, up: str = "y", units: str = "auto", ground: bool = True,
                trust_pickle: bool = False) -> Motion:
    """One source file -> one humanoid clip."""
    if fmt == "amass":
        from motion.importers.amass import import_amass

        return import_amass(path, body_models, label=label, ground=ground, trust_pickle=trust_pickle)
    if fmt == "bvh":
        from motion.importers.bvh import import_bvh

        return import_bvh(path, joint_map=joint_map, label=label, up=up, units=units, ground=ground)
    if fmt == "humanml3d":
        from motion.importers.humanml3d import import_humanml3d

        return import_humanml3d(path, label=label, ground=ground)
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


def import_directory(src: str | os.PathLike, dst: str | os.PathLike, fmt: str, *, label: str | None = None,
                     **options) -> list[Path]:
    """Import every source file under SRC into DST (one DeepMimic clip each, atomic writes).

    DeepMimic files carry no label: the dataset reader takes it from the file name. Clips are
    named ``<stem>.txt`` (label = stem) or, with ``label``, ``<label>__<stem>.txt`` -- the
    naming ``sccl sample`` uses too."""
    src_root = Path(src)
    files = source_files(src_root, fmt)
    out: list[Path] = []
    for i, path in enumerate(files, 1):
        stem = output_stem(path, src_root)
        motion = import_file(path, fmt, label=label or stem, **options)
        target = Path(dst) / (f"{label}__{stem}.txt" if label else f"{stem}.txt")
        write_clip(motion, target)
        log.info("[%d/%d] %s -> %s (%d frames at %g fps, label %s)", i, len(files), path, target,
                 motion.num_frames, motion.fps, motion.label)
        out.append(target)
    return out
