"""Exporters: humanoid clips -> BVH (Blender and other viewers) or DeepMimic files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sccl.motion.deepmimic import list_clip_files, read_clip, write_clip
from sccl.motion.errors import UserError
from sccl.motion.importers.bvh import write_bvh

log = logging.getLogger(__name__)

EXPORT_FORMATS = {"bvh": ".bvh", "deepmimic": ".txt"}


def export_directory(src: str | os.PathLike, dst: str | os.PathLike, fmt: str = "bvh", *, order: str = "ZYX",
                     units: str = "cm") -> list[Path]:
    """Export every DeepMimic clip of SRC (a file or a directory) into the folder DST."""
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"--format: unknown export format {fmt!r} (expected {', '.join(EXPORT_FORMATS)})")
    out: list[Path] = []
    files = list_clip_files(src)
    for i, path in enumerate(files, 1):
        motion = read_clip(path).motion  # native frames (uniform-rate files are exact)
        target = Path(dst) / (Path(path).stem + EXPORT_FORMATS[fmt])
        if fmt == "bvh":
            write_bvh(motion, target, order=order, units=units)
        else:
            write_clip(motion, target)
        log.info("[%d/%d] %s -> %s", i, len(files), path, target)
        out.append(target)
    return out
