"""``sccl import`` (AMASS / BVH / HumanML3D -> a DeepMimic-format dataset directory) and
``sccl export`` (humanoid clips -> BVH or DeepMimic)."""

from __future__ import annotations

import argparse
import logging
import sys

from sccl.loop.commands import Subparsers

log = logging.getLogger(__name__)


def register(sub: Subparsers) -> None:
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
    imp.add_argument("--retarget", choices=["positions", "rotations"], default="positions",
                     help="bvh: fit the humanoid to the source's joint positions (default; any rest pose) or re-express "
                     "its rotations relative to its rest pose (the older path, exact for T-pose rests such as CMU)")
    lab = imp.add_argument_group("labels (at most one; default: each clip is labelled by its file name)")
    lab.add_argument("--label", default=None, help="one label for every clip")
    lab.add_argument("--label-regex", metavar="PATTERN", default=None,
                     help="label = the group 'label' (or the first group) of PATTERN searched in the file name, "
                     "e.g. 'dataset-1_(?P<label>[^_]+)_'")
    lab.add_argument("--label-sidecar", metavar="KEY", default=None,
                     help="label = KEY of the JSON file beside each source (same name, .json); an integer indexes --label-list")
    lab.add_argument("--label-list", metavar="FILE", default=None, help="labels, one per line, for --label-sidecar indices")
    lab.add_argument("--label-csv", metavar="FILE", default=None,
                     help="CSV with 'file' and 'label' columns (file: path under SRC, file name or stem)")
    imp.add_argument("--accept-all", action="store_true",
                     help="write clips that fail the quality thresholds too (marked 'accepted' in DST/import_report.csv)")
    imp.add_argument("--no-ground", action="store_true", help="do not shift clips so the lowest foot touches y=0")
    imp.set_defaults(func=cmd_import)

    exp = sub.add_parser("export", help="export humanoid clips (DeepMimic format) to BVH for Blender and other viewers")
    exp.add_argument("--format", default="bvh", choices=["bvh", "deepmimic"], help="output format (default bvh)")
    exp.add_argument("src", metavar="SRC", help="a DeepMimic clip or a directory of them (e.g. sccl sample output)")
    exp.add_argument("dst", metavar="DST", help="output directory (created)")
    exp.add_argument("--order", default="ZYX", help="bvh: rotation channel order (default ZYX, as CMU)")
    exp.add_argument("--units", choices=["cm", "m"], default="cm", help="bvh: length unit (default cm)")
    exp.set_defaults(func=cmd_export)


def cmd_import(args: argparse.Namespace) -> int:
    import time

    from sccl.motion.importers import REPORT_NAME, import_dataset
    from sccl.motion.importers.labels import LabelRule

    rule = LabelRule(label=args.label, regex=args.label_regex, sidecar_key=args.label_sidecar,
                     label_list=args.label_list, csv_path=args.label_csv)
    t0 = time.perf_counter()
    records = import_dataset(
        args.src, args.dst, args.format, labels=rule, accept_all=args.accept_all, body_models=args.body_models,
        joint_map=args.joint_map, up=args.up, units=args.units, ground=not args.no_ground, method=args.retarget,
        trust_pickle=args.trust_pickle,
    )
    elapsed = time.perf_counter() - t0
    for r in records:
        print(format_record(r))
    written = [r for r in records if r.target is not None]
    refused = [r for r in records if r.target is None]
    print(f"wrote {len(written)} clip(s) to {args.dst}, refused {len(refused)} ({len(records) / elapsed:.1f} clips/s); "
          f"report: {args.dst}/{REPORT_NAME} (inspect: sccl data info --path {args.dst})")
    if not written:
        print("error: every clip was refused by the quality thresholds (see above; --accept-all writes them anyway)",
              file=sys.stderr)
        return 1
    return 0


def format_record(r) -> str:  # noqa: ANN001 - motion.importers.ClipRecord
    """One line per clip: status, name, and the report's key figures."""
    rep = r.report

    def num(key: str, fmt: str) -> str:
        v = rep.get(key)
        return "-" if v is None or v != v else format(v, fmt)

    status = "REFUSED" if r.target is None else ("accepted" if r.refused else "ok")
    line = (f"{status:8s} {r.source.name}  label={r.label or '-'}  bone={num('bone_err_mean_deg', '.1f')}deg "
            f"contacts={num('contact_agreement', '.0%')} float={num('float_mm', '.1f')}mm "
            f"contact_float={num('contact_float_mm', '.1f')}mm penetrate={num('penetrate_mm', '.1f')}mm "
            f"clamped={num('clamped_pct', '.0f')}%")
    if r.refused:
        line += "  reason: " + "; ".join(r.refused)
    return line


def cmd_export(args: argparse.Namespace) -> int:
    from sccl.motion.importers.export import export_directory

    written = export_directory(args.src, args.dst, args.format, order=args.order, units=args.units)
    print(f"wrote {len(written)} file(s) to {args.dst}")
    return 0
