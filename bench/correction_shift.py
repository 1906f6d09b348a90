"""Where does the corrector move the samples a self-correcting arm trains on? Prints one JSON object.

A self-correcting arm trains generation g+1 on the *corrected* samples of generation g, so any
systematic change the corrector makes is inherited by the generator. For every corrected arm
of a run and every generation whose ``synthetic.npz`` is on disk, this compares the raw
generated samples with what the corrector kept, in the loop's own frozen evaluator (for an
uncorrected arm, only ``fid_raw`` and ``root_height_raw_m``, the drift to compare against):

- ``fid_raw`` (all raw samples), ``fid_raw_kept`` (the raw versions of the kept ones) and
  ``fid_corrected`` (the kept, corrected ones), against the held-out reference;
- recognition accuracy of the kept samples, raw and corrected;
- mean root height (feature 3) of the kept samples, raw and corrected, in m.

``--real N`` adds the same comparison for N real training windows of the arm's data put through
the arm's corrector: what the corrector does to motion that needs no correction.

    python bench/correction_shift.py runs/bandai_collapse [--arms self_correcting_l1_seed=0]
        [--generations 1,4,10,15] [--real 128]

Needs the run directory itself (``synthetic.npz`` files are not copied into report folders) and
the run's data at its ``data.path``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

from sccl.motion.features import SLICES  # noqa: E402 - after the sys.path fix above

ROOT_HEIGHT = SLICES["root_height"].start  #: feature index of the root height


def compare(evaluator, reference, raw: np.ndarray, labels: np.ndarray, corrected: np.ndarray | None,
            kept: np.ndarray) -> dict[str, float]:
    """Evaluator FID, recognition and root height of raw vs corrected samples (raw only for an
    uncorrected arm, ``corrected`` None)."""
    def fid(x: np.ndarray) -> float:  # the loop's quality/fid: the held-out reference's space
        return round(float(reference.emb.fid(evaluator.embed(x))), 2)

    def accuracy(x: np.ndarray, y: np.ndarray) -> float:
        return round(float((evaluator.predict(x) == y).mean()), 4)

    row = {"n": int(len(raw)), "kept": int(len(kept)), "fid_raw": fid(raw),
           "root_height_raw_m": round(float(raw[..., ROOT_HEIGHT].mean()), 4)}
    if corrected is not None and len(kept) >= 2:
        row.update({
            "fid_raw_kept": fid(raw[kept]), "fid_corrected": fid(corrected),
            "recognition_raw_kept": accuracy(raw[kept], labels[kept]),
            "recognition_corrected": accuracy(corrected, labels[kept]),
            "root_height_raw_kept_m": round(float(raw[kept][..., ROOT_HEIGHT].mean()), 4),
            "root_height_corrected_m": round(float(corrected[..., ROOT_HEIGHT].mean()), 4),
        })
    return row


def add_run_arguments(ap: argparse.ArgumentParser) -> None:
    """The run directory and the --arms/--generations selection (read by :func:`run_arms`)."""
    ap.add_argument("run_dir")
    ap.add_argument("--arms", default="", help="comma-separated arm names (default: every arm with synthetic samples)")
    ap.add_argument("--generations", default="", help="comma-separated generations (default: all on disk)")


def run_arms(args: argparse.Namespace) -> Iterator[tuple[Path, Any, dict[int, Path]]]:
    """Per selected arm of ``args.run_dir``: its folder, its loop config and the
    ``synthetic.npz`` of each selected generation on disk. Exits 2 with a one-line error for a
    folder without ``arms/`` or a malformed ``--generations``."""
    from sccl.loop.config import config_from_dict

    run = Path(args.run_dir)
    if not (run / "arms").is_dir():
        print(f"error: {run}: no arms/ folder (expected a run directory)", file=sys.stderr)
        raise SystemExit(2)
    try:
        gens = {int(g) for g in args.generations.split(",") if g}
    except ValueError:
        print(f"error: --generations {args.generations!r}: expected comma-separated integers", file=sys.stderr)
        raise SystemExit(2) from None
    wanted = [a for a in args.arms.split(",") if a]
    for arm_dir in sorted((run / "arms").iterdir()):
        meta_path = arm_dir / "arm.json"
        if not meta_path.exists() or (wanted and arm_dir.name not in wanted):
            continue
        files = {}
        for gen_dir in sorted(arm_dir.glob("gen_*")):
            g = int(gen_dir.name.split("_")[1])
            if (gen_dir / "synthetic.npz").exists() and (not gens or g in gens):
                files[g] = gen_dir / "synthetic.npz"
        yield arm_dir, config_from_dict(json.loads(meta_path.read_text())["config"]), files


def main() -> None:
    from sccl.correctors.registry import build_corrector
    from sccl.loop.arm import evaluator_cache_dir
    from sccl.loop.evaluation import prepare_evaluator
    from sccl.loop.kernel import corrector_config
    from sccl.loop.realdata import load_real_data
    from sccl.loop.store import read_npz
    from sccl.loop.tasks import build_task
    from sccl.metrics.motion_metrics import get_reference_stats

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(ap)
    ap.add_argument("--real", type=int, default=0, help="also correct this many real training windows per seed")
    args = ap.parse_args()
    out: dict = {"run": Path(args.run_dir).resolve().name, "arms": {}, "real": {}}
    cache: dict = {}
    for arm_dir, cfg, files in run_arms(args):
        corrected_arm = cfg.corrector.name != "none"
        key = (json.dumps(dataclasses.asdict(cfg.data), sort_keys=True, default=str), cfg.seed)
        if key not in cache:
            real = load_real_data(cfg.data, cfg.seed)
            evaluator = prepare_evaluator(real, evaluator_cache_dir(cfg), cfg.eval.evaluator_steps)
            cache[key] = (real, evaluator, get_reference_stats(real.dataset, evaluator))
        real, evaluator, reference = cache[key]
        rows = {}
        for g, path in files.items():
            d = read_npz(path)
            rows[g] = compare(evaluator, reference, d["raw"], d["raw_labels"], d["corrected"] if corrected_arm else None,
                              d["kept_index"])
        out["arms"][arm_dir.name] = rows
        print(f"{arm_dir.name}: {len(rows)} generations", file=sys.stderr)
        real_key = f"seed{cfg.seed}/{cfg.corrector.name}"
        if args.real and corrected_arm and real_key not in out["real"]:
            train = real.dataset.train
            pick = np.random.default_rng(0).choice(len(train), min(args.real, len(train)), replace=False)
            x, y = train.features[pick], train.labels[pick]
            task = build_task(cfg, evaluator_cache_dir(cfg))
            corrector = build_corrector(cfg.corrector.name, corrector_config(cfg, real))
            t0 = time.perf_counter()
            result = corrector.correct(task.to_corrector(x, y, 0, "motion"), seed=0)
            corrected = task.from_corrector(result, x, "motion")
            row = compare(evaluator, reference, x, y, corrected, np.asarray(result.kept_index))
            row["correct_seconds"] = round(time.perf_counter() - t0, 1)
            out["real"][real_key] = row
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
