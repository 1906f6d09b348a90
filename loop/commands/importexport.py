"""``sccl import`` (AMASS / BVH / HumanML3D -> a DeepMimic-format dataset directory) and
``sccl export`` (humanoid clips -> BVH or DeepMimic)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    imp = sub.add_parser(
        "import",
        help="retarget AMASS, BVH or HumanML3D motion onto the humanoid (writes a dataset directory)",
        description="Retarget mocap onto the simulation humanoid and write one DeepMimic-format clip per source "
        "file into DST, usable as an experiment's data.path. See docs/IMPORTERS.md.",
    )
    imp.add_argument("--format", required=True, choices=["amass", "bvh", "humanml3d"], help="source format")
    imp.add_argument("src", metavar="SRC", help="a source file, or a directory searched recursively")
    imp.add_argument("dst", metavar="DST", help="output directory (created)")
    imp.add_argument("--body-models", metavar="DIR", default=None,
                     help="amass: your SMPL/SMPL-H/SMPL-X body models (e.g. DIR/smplh/SMPLH_MALE.npz)")
    imp.add_argument("--trust-pickle", action="store_true",
                     help="amass: allow .pkl body models (Python pickles can run code when loaded; .npz models are "
                          "checked for pickled content and need no flag)")
    imp.add_argument("--joint-map", metavar="FILE.json", default=None, help="bvh: joint map for non-CMU skeletons")
    imp.add_argument("--up", choices=["y", "z"], default="y", help="bvh: up axis of the file (default y)")
    imp.add_argument("--units", choices=["auto", "m", "cm", "mm", "inch"], default="auto",
                     help="bvh: length unit (default: auto; only matters for reporting, the root is rescaled by leg length)")
    imp.add_argument("--label", default=None, help="label for every clip (default: from each file name)")
    imp.add_argument("--no-ground", action="store_true", help="do not shift clips so the lowest foot touches y=0")
    imp.set_defaults(func=run_import)

    exp = sub.add_parser("export", help="export humanoid clips (DeepMimic format) to BVH for Blender and other viewers")
    exp.add_argument("--format", default="bvh", choices=["bvh", "deepmimic"], help="output format (default bvh)")
    exp.add_argument("src", metavar="SRC", help="a DeepMimic clip or a directory of them (e.g. sccl sample output)")
    exp.add_argument("dst", metavar="DST", help="output directory (created)")
    exp.add_argument("--order", default="ZYX", help="bvh: rotation channel order (default ZYX, as CMU)")
    exp.add_argument("--units", choices=["cm", "m"], default="cm", help="bvh: length unit (default cm)")
    exp.set_defaults(func=run_export)


def run_import(args: argparse.Namespace) -> int:
    from motion.importers import import_directory

    written = import_directory(
        args.src, args.dst, args.format, label=args.label, body_models=args.body_models, joint_map=args.joint_map,
        up=args.up, units=args.units, ground=not args.no_ground,
        **({"trust_pickle": True} if args.trust_pickle else {}),
    )
    print(f"wrote {len(written)} clip(s) to {args.dst} (inspect: sccl data info --path {args.dst})")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from motion.importers.export import export_directory

    written = export_directory(args.src, args.dst, args.format, order=args.order, units=args.units)
    print(f"wrote {len(written)} file(s) to {args.dst}")
    return 0
