"""``sccl correct IN OUT``: pass DeepMimic clips through a corrector and write the result."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from sccl.loop.commands import Subparsers
from sccl.motion.errors import UserError


def parse_settings(items: list[str] | None) -> dict:
    """``key=value`` pairs to a dict; values are parsed as JSON when possible
    (``assist_cap_g=0.3``, ``self_collision=true``), else kept as strings."""
    out: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected key=value")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def input_files(path: str) -> list:
    """Clip files of IN; the bundled motion directory is filtered to its humanoid clips
    (it also holds a quadruped clip in another layout)."""
    from sccl.motion.deepmimic import bundled_motion_dir, list_clip_files

    if Path(path).resolve() == bundled_motion_dir().resolve():
        return list_clip_files(None)
    return list_clip_files(path)


def _clean(value):
    """JSON-safe floats (NaN -> null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _cell(value) -> str:
    if isinstance(value, (int, float)):
        return format(value, ".3g")
    return "-" if value is None else str(value)[:24]


def diagnostics_table(rows: list[dict], diagnostics: list[dict], columns: str | None) -> str:
    """One line per clip. Every key any clip reported is a column unless ``columns`` picks some
    (a plugin's own diagnostics show up without configuration); a picked key no clip reported
    is an error naming the keys that exist."""
    reported = list(dict.fromkeys(k for d in diagnostics for k in d))
    if columns:
        keys = [k.strip() for k in columns.split(",") if k.strip()]
        unknown = [k for k in keys if k not in reported]
        if unknown:
            raise UserError(f"--columns: no clip reported {', '.join(unknown)}; reported: {', '.join(reported) or 'nothing'}")
    else:
        keys = reported
    width = max([36, *(len(r["clip"]) for r in rows)])
    status_width = max([8, *(len(r["status"]) for r in rows)])  # "unfaithful" is wider than the header
    lines = [f"{'clip':{width}s} {'status':{status_width}s} " + " ".join(f"{k:>{max(9, len(k))}s}" for k in keys)]
    for r in rows:
        cells = " ".join(f"{_cell(r.get(k)):>{max(9, len(k))}s}" for k in keys)
        lines.append(f"{r['clip']:{width}s} {r['status']:{status_width}s} {cells}")
    return "\n".join(lines)


def register(sub: Subparsers) -> None:
    p = sub.add_parser("correct", help="correct motion clips (default: physics simulation)",
                              description="Pass clips (DeepMimic format) through a corrector and write the kept ones "
                                          "to OUT, one file per input with the same name.")
    p.add_argument("input", metavar="IN", help="a clip file or a directory of clips")
    p.add_argument("output", metavar="OUT", help="output directory")
    p.add_argument("--corrector", default="physics", help="built-in name, plugin name or module:Class (default physics)")
    p.add_argument("--set", dest="settings", action="append", metavar="KEY=VALUE", default=[],
                   help="corrector setting, repeatable (e.g. --set assist_cap_g=0.3 --set policy=keep_partial)")
    p.add_argument("--workers", type=int, default=0, help="Ray workers (0 = in this process, default)")
    p.add_argument("--batch-size", type=int, default=4, help="clips per Ray task (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print per-clip diagnostics as JSON")
    p.add_argument("--columns", default=None, metavar="KEY,KEY",
                   help="diagnostic columns of the table (default: every diagnostic the corrector reported)")
    p.set_defaults(func=cmd_correct)


def cmd_correct(args: argparse.Namespace) -> int:
    from sccl.correctors import summarize
    from sccl.loop.correction_pool import correct_batch
    from sccl.motion.deepmimic import read_clip, write_clip

    if args.workers < 0:
        raise UserError(f"--workers must be >= 0, got {args.workers}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    files = input_files(args.input)
    clips = [read_clip(f).motion for f in files]
    config = parse_settings(args.settings)
    progress = None
    bar = None
    if not args.json and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(clips), desc="correct", unit="clip")
        progress = lambda done, total: bar.update(done - bar.n)  # noqa: E731
    result = correct_batch(args.corrector, config, clips, args.seed, workers=args.workers,
                           batch_size=args.batch_size, progress=progress)
    if bar is not None:
        bar.close()
    out_dir = Path(args.output)
    written = {}
    for i, motion in zip(result.kept_index, result.samples):
        written[int(i)] = str(write_clip(motion, out_dir / files[int(i)].name))
    rows = []
    for i, f in enumerate(files):
        rows.append({"clip": f.name, "status": result.status[i], "written": written.get(i),
                     **{k: _clean(v) for k, v in result.diagnostics[i].items()}})
    summary = {k: _clean(v) for k, v in summarize([result]).items()}
    if args.json:
        print(json.dumps({"clips": rows, "counts": result.counts, "summary": summary}, indent=2))
    else:
        print(diagnostics_table(rows, result.diagnostics, args.columns))
        print(f"kept {result.num_kept}/{result.num_inputs}  counts {result.counts}  -> {out_dir}")
    return 0
