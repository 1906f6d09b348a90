"""Summarise ``bench/correction_shift.py`` output per corrected arm: how far the corrector lowers
the samples it keeps, how often it moves them away from the data in the evaluator's embedding,
and how the generator's own root height drifts over the run. Prints one JSON object.

    python bench/correction_shift_summary.py docs/results/bandai_stiff/correction_shift.json \\
        [docs/results/bandai_collapse/correction_shift.json ...] [--arms-prefix self_correcting_l1]

Per arm, over every generation in the file:

- ``lowered_mm``: mean, min and max of (raw kept − corrected) mean root height, in mm;
- ``fid_ratio_median``: median of FID(corrected) / FID(raw versions of the kept samples), and
  ``batches_farther``: in how many generations that ratio is above 1;
- ``root_height_first_m`` / ``root_height_last_m``: mean root height of all raw samples in the
  first and the last generation (the generator's drift).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def summarise_arm(generations: dict[str, dict]) -> dict | None:
    rows = [generations[k] for k in sorted(generations, key=int)]
    kept = [r for r in rows if "root_height_corrected_m" in r and "root_height_raw_kept_m" in r]
    if not kept:
        return None  # an uncorrected arm: nothing was moved
    lowered = [(r["root_height_raw_kept_m"] - r["root_height_corrected_m"]) * 1000 for r in kept]
    ratios = [r["fid_corrected"] / r["fid_raw_kept"] for r in kept if r.get("fid_raw_kept", 0) > 0]
    return {"generations": len(kept),
            "lowered_mm": {"mean": round(statistics.mean(lowered), 1), "min": round(min(lowered), 1),
                           "max": round(max(lowered), 1)},
            "fid_ratio_median": round(statistics.median(ratios), 2) if ratios else None,
            "batches_farther": f"{sum(x > 1 for x in ratios)}/{len(ratios)}",
            "root_height_first_m": rows[0].get("root_height_raw_m"),
            "root_height_last_m": rows[-1].get("root_height_raw_m")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path, help="correction_shift.json files")
    ap.add_argument("--arms-prefix", default="", help="only arms whose name starts with this")
    args = ap.parse_args()
    out: dict = {}
    for path in args.files:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SystemExit(f"error: {path}: not a readable correction_shift.json ({exc})") from None
        for arm, generations in sorted(data.get("arms", {}).items()):
            if arm.startswith(args.arms_prefix):
                summary = summarise_arm(generations)
                if summary is not None:
                    out[f"{data.get('run', path.parent.name)}/{arm}"] = summary
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
