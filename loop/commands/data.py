"""``sccl data info``: what a dataset directory yields with the current settings."""

from __future__ import annotations

import argparse
import json

from sccl.loop.commands import Subparsers
from sccl.motion.dataset import DataConfig, build_dataset


def register(sub: Subparsers) -> None:
    data = sub.add_parser("data", help="inspect motion datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    data_sub.required = True
    info = data_sub.add_parser("info", help="clips, labels, frames, frame rates, duration and windows of a dataset")
    info.add_argument("--path", default=None, help="directory of DeepMimic-format clips (default: the 15 bundled clips)")
    info.add_argument("--fps", type=float, default=DataConfig.fps, help="resampling rate (default %(default)s)")
    info.add_argument("--window", type=int, default=DataConfig.window, help="frames per window (default %(default)s)")
    info.add_argument("--stride", type=int, default=DataConfig.stride, help="frames between windows (default %(default)s)")
    info.add_argument("--no-mirror", action="store_true", help="do not count mirrored windows")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=cmd_data_info)


def cmd_data_info(args: argparse.Namespace) -> int:
    cfg = DataConfig(path=args.path, fps=args.fps, window=args.window, stride=args.stride, mirror=not args.no_mirror)
    ds = build_dataset(cfg)
    info = ds.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"dataset: {info['path']}")
    print(
        f"{info['clips']} clips, {info['source_frames']} source frames at {', '.join(f'{f:g}' for f in info['source_fps'])} fps, "
        f"total {info['total_duration_s']:.1f} s"
    )
    print(
        f"settings: {cfg.fps:g} fps, windows of {cfg.window} frames ({cfg.window / cfg.fps:.2f} s), stride {cfg.stride}, "
        f"mirror {'on' if cfg.mirror else 'off'}, split by {cfg.split}"
    )
    print(f"windows: {info['train_windows']} train, {info['heldout_windows']} held-out; {len(info['labels'])} labels")
    header = f"{'clip':32} {'label':16} {'frames':>6} {'fps':>6} {'sec':>6} {'loop':>5} {'train':>6} {'held':>5}"
    print(header)
    print("-" * len(header))
    for c in info["per_clip"]:
        print(
            f"{c['name']:32} {c['label']:16} {c['source_frames']:6d} {c['source_fps']:6.1f} {c['duration_s']:6.2f} "
            f"{'yes' if c['loop'] else 'no':>5} {c['train_windows']:6d} {c['heldout_windows']:5d}"
        )
    return 0
