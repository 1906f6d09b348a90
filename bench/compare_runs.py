"""Where do two runs of the same config part ways? Per arm and generation: are the metric records
bit-identical, how far apart are the headline metrics, and (when the runs' archives are there)
are the raw samples, the correction verdicts and the corrected samples the same bits.

Made for issue 17 §3b (a physics arm that differs between machines): run the same config twice
on one machine and once with glibc's libm forced onto its generic code path, then::

    python bench/compare_runs.py runs/qs_default_a runs/qs_libm_nofma --names default libm
    python bench/compare_runs.py docs/results/issue17/libm_quickstart/default_a \\
        docs/results/issue17/libm_quickstart/libm_nofma --markdown

Either argument may be a run directory or a committed report folder (``sccl report --out``);
only run directories have the ``synthetic.npz`` archives. Prints one JSON object (or a markdown
table with ``--markdown``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

HEADLINE = ("quality/fid", "quality/fid_k", "quality/recognition_acc", "physics/phys_err_mm",
            "correction/acceptance_rate")
#: record fields that measure the machine (wall-clock seconds), not the result
IGNORED_PREFIXES = ("time/", "timing/", "artifacts")
IGNORED_SUFFIXES = ("_step_seconds", "_wall_seconds")


def _same(a: object, b: object) -> bool:
    """Equal values, NaN equal to NaN (a diagnostic a mode does not produce is NaN in both)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _records(run: Path) -> dict[str, dict[int, dict]]:
    """Every arm's records by generation (read as ``sccl report`` reads them)."""
    from sccl.metrics.report import ReportError, load_run

    try:
        arms = load_run(run)
    except ReportError as exc:
        raise SystemExit(f"error: {exc}") from None
    return {a.name: {int(r["generation"]): r for r in a.history} for a in arms if a.history}


def _relative(a: float, b: float) -> float:
    if a == b:
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def _archive_diff(a: Path, b: Path) -> dict | None:
    """Raw samples, verdicts and corrected samples of one generation in both runs (None: absent)."""
    if not (a.exists() and b.exists()):
        return None
    with np.load(a) as x, np.load(b) as y:
        out = {"raw_identical": bool(np.array_equal(x["raw"], y["raw"])),
               "raw_max_abs_diff": float(np.max(np.abs(x["raw"] - y["raw"]))) if x["raw"].shape == y["raw"].shape
               else math.inf,
               "verdicts_identical": bool(np.array_equal(x["status"], y["status"])),
               "verdicts_differing": int(np.sum(x["status"] != y["status"])) if x["status"].shape == y["status"].shape
               else -1}
        same_kept = np.array_equal(x["kept_index"], y["kept_index"])
        out["corrected_identical"] = bool(same_kept and np.array_equal(x["corrected"], y["corrected"]))
        out["corrected_max_abs_diff"] = (float(np.max(np.abs(x["corrected"] - y["corrected"])))
                                         if same_kept and x["corrected"].size else (0.0 if same_kept else math.inf))
    return out


def compare(run_a: Path, run_b: Path) -> dict:
    records_a, records_b = _records(run_a), _records(run_b)
    arms = sorted(set(records_a) & set(records_b))
    if not arms:
        raise SystemExit(f"error: {run_a} and {run_b} share no arm with a metrics.jsonl")
    out: dict = {"a": str(run_a), "b": str(run_b), "arms": {}}
    for arm in arms:
        ra, rb = records_a[arm], records_b[arm]
        rows = []
        for g in sorted(set(ra) & set(rb)):
            x, y = ra[g], rb[g]
            keys = sorted(k for k in set(x) & set(y) if not k.startswith(IGNORED_PREFIXES)
                          and not k.endswith(IGNORED_SUFFIXES) and k != "generation")
            differing = [k for k in keys if not _same(x[k], y[k])]
            row = {"generation": g, "records_identical": not differing, "fields_differing": len(differing)}
            for k in HEADLINE:
                if k in x and k in y:
                    row[k] = [x[k], y[k]]
                    row[f"{k}:relative_diff"] = _relative(float(x[k]), float(y[k]))
            archive = _archive_diff(run_a / "arms" / arm / f"gen_{g:03d}" / "synthetic.npz",
                                    run_b / "arms" / arm / f"gen_{g:03d}" / "synthetic.npz")
            if archive is not None:
                row["archive"] = archive
            rows.append(row)
        out["arms"][arm] = {"generations": rows,
                            "first_differing_generation": next((r["generation"] for r in rows
                                                                if not r["records_identical"]), None)}
    return out


def markdown(result: dict, names: tuple[str, str]) -> str:
    lines = [f"| arm | generation | records identical | FID ({names[0]} / {names[1]}) | FID_k | recognition | "
             "acceptance | raw samples identical | verdicts differing | corrected samples identical |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def pair(row: dict, key: str, fmt: str) -> str:
        if key not in row:
            return "—"
        a, b = row[key]
        return format(a, fmt) if a == b else f"{format(a, fmt)} / {format(b, fmt)}"

    for arm, info in result["arms"].items():
        for row in info["generations"]:
            arc = row.get("archive") or {}
            lines.append("| " + " | ".join([
                arm, str(row["generation"]), "yes" if row["records_identical"] else f"no ({row['fields_differing']} fields)",
                pair(row, "quality/fid", ".1f"), pair(row, "quality/fid_k", ".1f"),
                pair(row, "quality/recognition_acc", ".3f"), pair(row, "correction/acceptance_rate", ".3f"),
                {True: "yes", False: "no"}.get(arc.get("raw_identical"), "—"),
                str(arc["verdicts_differing"]) if "verdicts_differing" in arc else "—",
                {True: "yes", False: "no"}.get(arc.get("corrected_identical"), "—")]) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("--names", nargs=2, default=("a", "b"), help="labels of the two runs in the table")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table instead of JSON")
    args = ap.parse_args()
    result = compare(args.run_a, args.run_b)
    print(markdown(result, tuple(args.names)) if args.markdown else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
