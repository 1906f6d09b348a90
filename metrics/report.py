"""Sweep report: every arm's collapse curves overlaid per metric, and a final-generation table.

Reads the run directory the loop writes::

    RUN_DIR/arms/<arm>/metrics.jsonl   one JSON object per generation ("generation" + metric keys)
    RUN_DIR/arms/<arm>/arm.json        {"name", "params": {... "seed"}, "group": arm name without seed}

Arms with the same ``group`` differ only by seed: a curve shows their mean per generation with a
min–max band, and the table shows mean ± the half-width of a 95 % t-interval over seeds (n = 1:
no interval).

Long runs of a noisy metric (a toy refit on 75 points, FID on 128 samples) make both the last
generation and the raw curves mostly noise. ``smooth`` draws a trailing moving average over that
many generations on top of the faint raw curve (auto: about 1/20 of the run beyond 60
generations), and ``window`` makes the table report each arm's mean over its last ``window``
generations before the interval over seeds is taken.

Output is static: ``index.html`` with relative links to PNGs in ``img/``, plus ``final.json``
with the same numbers for scripts. No JavaScript, nothing fetched from the network.

The report also copies every arm's ``arm.json`` and ``metrics.jsonl`` into ``OUT/arms/``, so the
output folder is itself a run directory: committed under ``docs/results/<run>/``, it lets anyone
recompute every published table (``sccl report --markdown`` or ``bench/seed_spread.py`` over it) without
the original, uncommitted ``runs/`` folder.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sccl.metrics.plots import _mpl, metric_keys
from sccl.motion.errors import UserError

log = logging.getLogger(__name__)

#: Direction of "better" per key prefix/key (shown in the table header); see docs/METRICS.md.
BETTER: dict[str, str] = {
    "quality/fid": "↓", "quality/fid_train": "↓", "quality/fid_k": "↓", "quality/fid_g": "↓",
    "quality/precision": "↑", "quality/recall": "↑", "quality/density": "→1", "quality/coverage": "↑",
    "quality/recognition_acc": "↑", "diversity/diversity": "→real", "diversity/multimodality": "→real",
    "diversity/div_k": "→real", "diversity/div_g": "→real", "memorisation/nn_train_dist": "→real",
    "memorisation/nn_ratio": "→1", "memorisation/copy_fraction": "↓", "physics/penetrate_mm": "↓",
    "physics/float_mm": "↓", "physics/skate_mm": "↓", "physics/skate_sliding_mm": "↓", "physics/phys_err_mm": "↓", "physics/jitter": "→real",
    "correction/acceptance_rate": "↑", "toy/w2": "↓", "toy/mean_error": "↓", "toy/cov_trace": "→target",
    "toy/cov_logdet": "→target",
}


#: The real-data floor (``reference/<metric>`` and ``reference/seed<s>/<metric>``) the sweep
#: writes beside ``arms/``; a report folder copies it so tables can show the floor.
REFERENCE_FILE = "reference.json"

#: Generation-record key of the evaluator's hash (written by ``sccl.loop.evaluation``).
EVALUATOR_HASH_KEY = "evaluator/hash"
#: Metrics measured in the evaluator's embedding or with its normalisation statistics: numbers
#: under different evaluator hashes are in different spaces and are never averaged together.
EVALUATOR_PREFIXES = ("quality/", "diversity/", "memorisation/")


class ReportError(UserError):
    """The run directory cannot be read (names the file and what is wrong)."""


@dataclass
class Arm:
    name: str
    group: str
    params: dict
    history: list[dict] = field(default_factory=list)

    @property
    def evaluators(self) -> set[str]:
        """Hashes of the evaluators that scored this arm's generations (empty: not recorded)."""
        return {str(r[EVALUATOR_HASH_KEY]) for r in self.history if r.get(EVALUATOR_HASH_KEY)}

    def final(self, key: str, window: int = 1) -> tuple[float, float]:
        """(generation, value) of the last finite value of ``key``, or with ``window`` > 1 the mean
        of its finite values over the last ``window`` generations; NaNs if none."""
        if window > 1:
            last = max((_num(r.get("generation")) for r in self.history), default=math.nan)
            vals = [
                _num(r.get(key)) for r in self.history if _num(r.get("generation")) > last - window
            ]
            vals = [v for v in vals if math.isfinite(v)]
            return (last, float(np.mean(vals))) if vals else (math.nan, math.nan)
        for row in reversed(self.history):
            v = _num(row.get(key))
            if math.isfinite(v):
                return float(row.get("generation", math.nan)), v
        return math.nan, math.nan


def _num(v: object) -> float:
    if isinstance(v, bool):
        return float("nan")
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def load_run(run_dir: Path) -> list[Arm]:
    """Arms of a run directory, sorted by group then name."""
    run_dir = Path(run_dir)
    arms_dir = run_dir / "arms"
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a directory (expected a run directory with arms/<arm>/metrics.jsonl)")
    if not arms_dir.is_dir():
        raise ReportError(f"{run_dir}: no arms/ folder (expected arms/<arm>/metrics.jsonl)")
    arms = []
    for d in sorted(p for p in arms_dir.iterdir() if p.is_dir()):
        meta_path = d / "arm.json"
        meta: dict = {}
        if meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text())
            except json.JSONDecodeError as exc:
                raise ReportError(f"{meta_path}: not valid JSON ({exc})") from None
        history = []
        metrics_path = d / "metrics.jsonl"
        if metrics_path.exists():
            for i, line in enumerate(metrics_path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    # the last line of a running arm may be half-written
                    log.warning("%s:%d: skipping unreadable line", metrics_path, i)
                    continue
                if isinstance(row, dict):
                    history.append(row)
        history.sort(key=lambda r: _num(r.get("generation", 0)))
        name = str(meta.get("name", d.name))
        arms.append(Arm(name, str(meta.get("group", name)), dict(meta.get("params", {})), history))
    if not arms:
        raise ReportError(f"{arms_dir}: no arm folders")
    if not any(a.history for a in arms):
        raise ReportError(f"{arms_dir}: no arm has any metrics.jsonl rows yet")
    return sorted(arms, key=lambda a: (a.group, a.name))


def load_reference(run_dir: Path) -> dict[str, float]:
    """The run's real-data floor (``{}`` when the run has none, e.g. a toy run or an older one)."""
    path = Path(run_dir) / REFERENCE_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: unreadable ({exc}); expected a JSON object of reference metrics") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object of reference metrics")
    return {str(k): _num(v) for k, v in data.items()}


def group_arms(arms: list[Arm]) -> dict[str, list[Arm]]:
    groups: dict[str, list[Arm]] = {}
    for a in arms:
        groups.setdefault(a.group, []).append(a)
    return groups


def mean_ci(values: list[float], level: float = 0.95) -> tuple[float, float, int]:
    """(mean, half-width of the t confidence interval, n) over finite values; half-width NaN for n < 2."""
    from scipy import stats

    v = np.array([x for x in values if math.isfinite(x)], dtype=float)
    n = int(v.size)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(v[0]), math.nan, 1
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return float(v.mean()), half, n


def _curve(arms: list[Arm], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    gens = sorted({_num(r.get("generation")) for a in arms for r in a.history} - {math.nan})
    mean, lo, hi = [], [], []
    for g in gens:
        vals = [
            _num(r.get(key)) for a in arms for r in a.history if _num(r.get("generation")) == g
        ]
        vals = [v for v in vals if math.isfinite(v)]
        mean.append(np.mean(vals) if vals else np.nan)
        lo.append(np.min(vals) if vals else np.nan)
        hi.append(np.max(vals) if vals else np.nan)
    return np.array(gens), np.array(mean), np.array(lo), np.array(hi)


def moving_average(values: np.ndarray, k: int) -> np.ndarray:
    """Trailing mean over the last ``k`` points (fewer at the start); NaNs are skipped."""
    values = np.asarray(values, dtype=float)
    ok = np.isfinite(values)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, values, 0.0))])
    ccnt = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(1, values.size + 1)
    lo = np.maximum(0, idx - k)
    cnt = ccnt[idx] - ccnt[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, (csum[idx] - csum[lo]) / np.maximum(cnt, 1), np.nan)


def auto_smooth(num_generations: int) -> int:
    """Smoothing window used when none is given: none up to 60 generations, then ~1/20 of the run."""
    return 1 if num_generations <= 60 else max(2, round(num_generations / 20))


def _slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key)


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return "–" if math.isnan(x) else ("∞" if x > 0 else "−∞")
    return f"{x:.4g}"


def build_report(run_dir: Path, out_dir: Path, *, smooth: int | None = None, window: int = 1) -> Path:
    """Write ``out_dir/index.html`` (+ ``img/*.png``, ``final.json``); returns the HTML path.

    ``smooth``: moving-average window of the curves in generations (None = :func:`auto_smooth`,
    1 = raw); ``window``: the table averages each arm over its last ``window`` generations."""
    if smooth is not None and smooth < 1:
        raise ReportError(f"smooth={smooth}: expected a number of generations >= 1")
    if window < 1:
        raise ReportError(f"window={window}: expected a number of generations >= 1")
    plt = _mpl()
    arms = load_run(run_dir)
    if smooth is None:
        smooth = auto_smooth(max(len(a.history) for a in arms))
    groups = group_arms(arms)
    keys = metric_keys([r for a in arms for r in a.history])
    out_dir = Path(out_dir)
    (out_dir / "img").mkdir(parents=True, exist_ok=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    figures = []
    for key in keys:
        fig, ax = plt.subplots(figsize=(5.0, 3.2))
        for i, (gname, members) in enumerate(groups.items()):
            gens, mean, lo, hi = _curve(members, key)
            ok = np.isfinite(mean)
            if not ok.any():
                continue
            c = colours[i % len(colours)]
            label = f"{gname} (n={len(members)})"
            if smooth > 1:
                ax.plot(gens[ok], mean[ok], color=c, lw=0.6, alpha=0.25)
                ax.plot(gens[ok], moving_average(mean[ok], smooth), color=c, lw=1.6, label=label)
            else:
                marker = {"marker": "o", "ms": 3} if ok.sum() <= 60 else {}
                ax.plot(gens[ok], mean[ok], color=c, label=label, **marker)
                if len(members) > 1:
                    ax.fill_between(gens[ok], lo[ok], hi[ok], color=c, alpha=0.2, lw=0)
        title = f"{key}  ({BETTER.get(key, '')})" if key in BETTER else key
        ax.set_title(title + (f"  [moving avg {smooth}]" if smooth > 1 else ""), fontsize=10)
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = f"img/{_slug(key)}.png"
        fig.savefig(out_dir / name, dpi=80)
        plt.close(fig)
        figures.append((key, name))
    final: dict[str, dict] = {}
    for gname, members in groups.items():
        row = {}
        evaluators = sorted(set().union(*(a.evaluators for a in members)))
        mixed = len(evaluators) > 1
        if mixed:
            log.warning("group %s: its arms were scored by %d different evaluators (%s); evaluator metrics "
                        "are not aggregated", gname, len(evaluators), ", ".join(evaluators))
        for key in keys:
            finals = [a.final(key, window) for a in members]
            gen = max((g for g, _ in finals if math.isfinite(g)), default=math.nan)
            if mixed and key.startswith(EVALUATOR_PREFIXES):
                row[key] = {"mean": math.nan, "ci95": math.nan, "n": 0, "generation": gen, "window": window,
                            "refused": "evaluators differ"}
                continue
            m, half, n = mean_ci([v for _, v in finals])
            row[key] = {"mean": m, "ci95": half, "n": n, "generation": gen, "window": window}
        final[gname] = {"arms": [a.name for a in members], "params": _common_params(members),
                        "evaluators": evaluators, "evaluators_differ": mixed, "metrics": row}
    (out_dir / "final.json").write_text(json.dumps(final, indent=2, default=float))
    if out_dir.resolve() != Path(run_dir).resolve():  # the source is already a run directory
        export_arms(arms, out_dir)
        reference = load_reference(run_dir)
        if reference:
            (out_dir / REFERENCE_FILE).write_text(json.dumps(reference, indent=1, sort_keys=True) + "\n")
    path = out_dir / "index.html"
    path.write_text(_html(Path(run_dir), arms, groups, keys, figures, final, smooth, window), encoding="utf-8")
    log.info("report for %d arms (%d groups, %d metrics) at %s", len(arms), len(groups), len(keys), path)
    return path


def export_arms(arms: list[Arm], out_dir: Path) -> None:
    """Write each arm's metadata and per-generation records to ``out_dir/arms/<arm>/``.

    The records are rewritten from what :func:`load_run` read (sorted, unreadable lines dropped),
    so a report folder is a clean, self-contained run directory even when the source was still
    running. :func:`build_report` never calls it with the source itself as ``out_dir``: that
    would rewrite a live run's own records (without their ``artifacts``) under its feet."""
    for arm in arms:
        d = Path(out_dir) / "arms" / arm.name
        d.mkdir(parents=True, exist_ok=True)
        meta = {"name": arm.name, "group": arm.group, "params": arm.params}
        (d / "arm.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str) + "\n")
        # "artifacts" holds this machine's absolute paths: meaningless anywhere else
        lines = [json.dumps({k: v for k, v in row.items() if k != "artifacts"}, sort_keys=True, default=float)
                 for row in arm.history]
        (d / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))


def _common_params(members: list[Arm]) -> dict:
    params = [{k: v for k, v in a.params.items() if k != "seed"} for a in members]
    return {k: v for k, v in params[0].items() if all(p.get(k) == v for p in params)} if params else {}


def _html(run_dir: Path, arms, groups, keys, figures, final, smooth: int = 1, window: int = 1) -> str:
    e = html.escape
    # the folder's name, not its path: a committed report must not carry this machine's paths
    name = run_dir.resolve().name
    head = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>sccl report: {e(name)}</title><style>"
        "body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f3f3f3}"
        "td:first-child,th:first-child{text-align:left}.figs{display:flex;flex-wrap:wrap;gap:8px}"
        ".figs img{width:400px}</style></head><body>"
    )
    parts = [head, f"<h1>Collapse report: {e(name)}</h1>"]
    curves = (
        f"mean over seeds, faint; bold: its trailing moving average over {smooth} generations"
        if smooth > 1 else "mean over seeds, band = min–max"
    )
    per_arm = f"each arm's mean over its last {window} generations" if window > 1 else "value at each arm's last generation"
    parts.append(
        f"<p>{len(arms)} arms in {len(groups)} groups (arms differing only by seed). Curves: {curves}. "
        f"Table: {per_arm}, mean ± half-width of the 95% "
        "t-interval over seeds (no interval for one seed). Metric definitions and directions: docs/METRICS.md.</p>"
    )
    mixed = [g for g in groups if final[g]["evaluators_differ"]]
    if mixed:
        parts.append(
            "<p style='color:#b00'><b>Evaluators differ</b> within "
            f"{e(', '.join(mixed))}: its arms were scored in different embedding spaces, so their "
            f"{e('/'.join(p.rstrip('/') for p in EVALUATOR_PREFIXES))} metrics are not averaged "
            "(cells read 'evaluators differ'). Rerun them with one evaluator per dataset and split.</p>"
        )
    all_hashes = {h for g in groups for h in final[g]["evaluators"]}
    if len(all_hashes) > 1 and not mixed:
        parts.append(
            "<p style='color:#b00'><b>Groups were scored by different evaluators</b> "
            f"({e(', '.join(sorted(all_hashes)))}): compare their evaluator metrics across columns with care; "
            "they are in different embedding spaces.</p>"
        )
    if not all_hashes and any(k.startswith(EVALUATOR_PREFIXES) for k in keys):  # toys have no evaluator
        parts.append("<p><small>These arms do not record their evaluator's hash (runs before it was recorded): "
                     "whether seeds share an evaluator cannot be checked.</small></p>")
    heading = f"Last {window} generations" if window > 1 else "Final generation"
    parts.append(f"<h2>{heading}</h2><div style='overflow-x:auto'><table><tr><th>metric</th><th>better</th>")
    parts += [f"<th>{e(g)}<br><small>n={len(m)}</small></th>" for g, m in groups.items()]
    parts.append("</tr>")
    for key in keys:
        parts.append(f"<tr><td>{e(key)}</td><td>{e(BETTER.get(key, ''))}</td>")
        for g in groups:
            cell = final[g]["metrics"][key]
            if cell.get("refused"):
                parts.append(f"<td style='color:#b00'>{e(cell['refused'])}</td>")
                continue
            txt = _fmt(cell["mean"]) + (f" ± {_fmt(cell['ci95'])}" if math.isfinite(cell["ci95"]) else "")
            parts.append(f"<td title='generation {_fmt(cell['generation'])}'>{e(txt)}</td>")
        parts.append("</tr>")
    parts.append("</table></div><h2>Curves</h2><div class='figs'>")
    parts += [f"<a href='{e(src)}'><img src='{e(src)}' alt='{e(k)}'></a>" for k, src in figures]
    parts.append("</div><h2>Arms</h2><table><tr><th>arm</th><th>group</th><th>generations</th><th>params</th></tr>")
    for a in arms:
        gens = len(a.history)
        parts.append(
            f"<tr><td>{e(a.name)}</td><td>{e(a.group)}</td><td>{gens}</td>"
            f"<td>{e(json.dumps(a.params, sort_keys=True, default=str))}</td></tr>"
        )
    parts.append("</table></body></html>")
    return "".join(parts)
