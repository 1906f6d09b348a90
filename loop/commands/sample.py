"""``sccl sample CHECKPOINT --n N [--label walk] --out DIR``: write generated clips.

The clips are DeepMimic-format files (``<label>__<index>.txt``), so the folder can be used
again as a dataset (``data.path``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from sccl.loop.commands import Subparsers
from sccl.motion.errors import UserError

log = logging.getLogger(__name__)


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "sample",
        help="write motion clips sampled from a diffusion checkpoint",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", help="generator checkpoint (.safetensors) written by sccl")
    p.add_argument("--n", type=int, default=8, help="number of clips (default 8)")
    p.add_argument("--label", action="append", default=None,
                   help="motion label (repeatable; 'all' cycles through every label; default: unconditional)")
    p.add_argument("--out", required=True, help="output folder for the clips")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (default: checkpoint's)")
    p.add_argument("--steps", type=int, default=None, help="DDIM sampling steps (default: checkpoint's)")
    p.add_argument("--device", default="cpu", help="torch device, or 'auto' (default cpu)")
    p.set_defaults(func=cmd_sample)


def _labels(names: list[str] | None, requested: list[str] | None, n: int) -> np.ndarray | None:
    if not requested:
        return None
    if not names:
        raise UserError("--label: this checkpoint has no label names (trained unconditionally or without label_names)")
    wanted: list[str] = []
    for item in requested:
        if item == "all":
            wanted.extend(names)
        elif item in names:
            wanted.append(item)
        else:
            raise UserError(f"--label: unknown label {item!r}; this checkpoint knows {', '.join(names)}")
    idx = np.array([names.index(w) for w in wanted], dtype=np.int64)
    return idx[np.arange(n) % len(idx)]


def cmd_sample(args: argparse.Namespace) -> int:
    from sccl.generators import load_generator
    from sccl.generators.diffusion import MotionDiffusion, samples_to_motions
    from sccl.motion.deepmimic import write_clip

    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    gen = load_generator(args.checkpoint, device=args.device)
    if not isinstance(gen, MotionDiffusion):
        raise UserError(f"{args.checkpoint}: holds a {gen.name!r} generator; only motion generators ('diffusion') produce clips")
    if not gen.is_fitted:
        raise UserError(f"{args.checkpoint}: the generator was saved before it was trained")
    labels = _labels(gen.label_names if gen.config["cond"] else None, args.label, args.n)
    feats = gen.sample(args.n, labels, seed=args.seed, guidance_scale=args.guidance, sample_steps=args.steps)
    motions = samples_to_motions(feats, gen.fps, gen.label_names, labels)
    out = Path(args.out)
    for i, m in enumerate(motions):
        write_clip(m, out / f"{m.label or 'sample'}__{i:04d}.txt")
    print(f"wrote {len(motions)} clips ({feats.shape[1]} frames at {gen.fps:g} fps) to {out}")
    return 0
