"""Markdown tables of a run's per-generation records, for docs/RESULTS.md.

Every published table must be recomputable from committed files with one command. These tables
average each arm over a range of generations (single generations of FID on 128 samples are
mostly noise), list every seed's value, and give the mean with a 95 % t-interval over seeds only
where all of a group's seeds were scored by one evaluator (evaluator metrics from different
embedding spaces are never averaged).
"""

from __future__ import annotations

import math
import re

import numpy as np

from sccl.metrics.report import (
    BETTER,
    EVALUATOR_PREFIXES,
    Arm,
    ReportError,
    _fmt,
    _num,
    group_arms,
    mean_ci,
)

#: Columns of the default table: the collapse metrics the paper and RESULTS.md discuss.
DEFAULT_KEYS = (
    "quality/fid", "quality/fid_k", "quality/fid_g", "quality/recall", "quality/recognition_acc",
    "diversity/div_k", "physics/phys_err_mm", "correction/acceptance_rate",
)


def parse_generations(text: str) -> tuple[int, int]:
    """``"A-B"`` or ``"A"`` → inclusive generation range; a clear error otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+))?\s*", text or "")
    if not m:
        raise ReportError(f"--generations {text!r}: expected A-B (e.g. 1-15) or one generation number")
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) is not None else lo
    if hi < lo:
        raise ReportError(f"--generations {text!r}: the range is empty ({hi} < {lo})")
    return lo, hi


#: How an arm's generations lo..hi are summarised. The median resists single-generation spikes:
#: FID on 128 samples is heavy-tailed (a few samples far out in the embedding can multiply one
#: generation's value), so a mean over generations can be one spike.
STATISTICS = {"mean": np.mean, "median": np.median}


def arm_values(arm: Arm, key: str, lo: int, hi: int) -> list[float]:
    """The arm's finite values of ``key`` in generations ``lo..hi``, in generation order."""
    vals = [_num(r.get(key)) for r in arm.history if lo <= _num(r.get("generation")) <= hi]
    return [v for v in vals if math.isfinite(v)]


def arm_statistic(arm: Arm, key: str, lo: int, hi: int, statistic: str = "mean") -> float:
    """``statistic`` (mean or median) of :func:`arm_values` (NaN if there are none)."""
    vals = arm_values(arm, key, lo, hi)
    return float(STATISTICS[statistic](vals)) if vals else math.nan


def reference_row(reference: dict[str, float], keys: list[str]) -> str | None:
    """The real-data floor as a table row: the split's value, then each seed's own floor where
    seeds train on different ``data.n`` subsamples (what that seed's arms could reach at best)."""
    seeds = sorted({int(m.group(1)) for k in reference for m in [re.match(r"reference/seed(\d+)/", k)] if m})
    cells = []
    for key in keys:
        split = reference.get(f"reference/{key}", math.nan)
        per_seed = [reference.get(f"reference/seed{s}/{key}", math.nan) for s in seeds]
        if math.isnan(split) and all(math.isnan(v) for v in per_seed):
            cells.append("—")
            continue
        cell = _fmt(split)
        if seeds and not all(math.isnan(v) for v in per_seed):
            cell += " (" + " / ".join(_fmt(v) for v in per_seed) + ")"
        cells.append(cell)
    if all(c == "—" for c in cells):
        return None
    label = "real data: split" + (f" (seeds {', '.join(map(str, seeds))})" if seeds else "")
    return f"| {label} | " + " | ".join(cells) + " |"


def markdown_table(arms: list[Arm], keys: list[str], lo: int, hi: int,
                   reference: dict[str, float] | None = None, statistic: str = "mean") -> str:
    """One row per group of arms (arms differing only by seed), one column per metric.

    Cell: ``mean ± half-width`` over seeds, then every seed's value in seed order, e.g.
    ``52.1 ± 4.0 (50.3 / 51.8 / 54.2)``. A group whose seeds' evaluators differ gets the seeds'
    values only, for evaluator metrics, and is flagged. ``reference`` (the run's real-data floor,
    :func:`sccl.metrics.report.load_reference`) adds a first row to read the arms against.
    ``statistic`` summarises each seed's generations (``mean`` or ``median``); the interval is
    always over seeds."""
    if statistic not in STATISTICS:
        raise ReportError(f"--statistic {statistic!r}: expected one of {', '.join(STATISTICS)}")
    missing = [k for k in keys if not any(k in r for a in arms for r in a.history)]
    if missing:
        raise ReportError(f"no generation record has {', '.join(missing)} (check --keys against metrics.jsonl)")
    groups = group_arms(arms)
    head = "| arm (seeds) | " + " | ".join(f"{k} {BETTER.get(k, '')}".rstrip() for k in keys) + " |"
    lines = [head, "|" + "---|" * (len(keys) + 1)]
    floor = reference_row(reference or {}, keys)
    if floor:
        lines.append(floor)
    for gname, members in groups.items():
        members = sorted(members, key=lambda a: _num(a.params.get("seed")))
        mixed = len(set().union(*(a.evaluators for a in members))) > 1
        cells = []
        for key in keys:
            values = [arm_statistic(a, key, lo, hi, statistic) for a in members]
            per_seed = " / ".join(_fmt(v) for v in values)
            if all(math.isnan(v) for v in values):
                cells.append("—")
                continue
            if mixed and key.startswith(EVALUATOR_PREFIXES):
                cells.append(f"({per_seed}) evaluators differ")
                continue
            m, half, n = mean_ci(values)
            mean = _fmt(m) + (f" ± {_fmt(half)}" if math.isfinite(half) else "")
            cells.append(mean if n == 1 else f"{mean} ({per_seed})")
        lines.append(f"| {gname} ({len(members)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
