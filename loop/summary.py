"""What a sweep returns and the text ``sccl run`` prints at its end (final metrics per arm,
failures, undelivered records, where to look next)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class SweepResult:
    run_dir: Path
    experiment: str
    tracking_uri: str
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    undelivered: int = 0
    chart_url: str = ""  #: deep link to the sweep's collapse curves in the MLflow UI
    wall_s: float = 0.0
    timings: dict[str, dict[str, float]] = field(default_factory=dict)  #: seconds per phase, per arm (+ "driver")


def summary_text(result: SweepResult) -> str:
    lines = ["", f"output directory : {result.run_dir}", f"MLflow experiment: {result.experiment}",
             f"tracking store   : {result.tracking_uri}"]
    wanted = ["quality/fid", "quality/fid_k", "quality/recognition_acc", "diversity/diversity",
              "physics/phys_err_mm", "toy/w2", "toy/mean_error", "toy/cov_trace", "correction/acceptance_rate"]
    keys = [k for k in wanted if any(isinstance(r.get(k), (int, float)) for r in result.arms.values())]
    width = max([3, *(len(n) for n in result.arms)])  # full names: seeds differ only at the end
    header = f"{'arm':{width}} " + " ".join(f"{k.split('/')[-1]:>14}" for k in keys)
    lines += ["", header, "-" * len(header)]
    for name, rec in result.arms.items():
        vals = " ".join(f"{rec[k]:14.4g}" if isinstance(rec.get(k), (int, float)) else f"{'-':>14}" for k in keys)
        lines.append(f"{name:{width}} {vals}" + ("   FAILED" if name in result.failed else ""))
    for name, why in result.failed.items():
        lines.append(f"arm {name} failed: {why}  (fix, then `sccl resume {result.run_dir}`)")
    if result.undelivered > 0:
        lines.append(f"{result.undelivered} generation record(s) are not yet in MLflow; "
                     f"`sccl resume {result.run_dir}` delivers them once the server is reachable")
    if result.tracking_uri.startswith(("http://", "https://")):
        lines.append(f"collapse curves : {result.chart_url}")
    else:
        lines.append(f"collapse curves : sccl ui {result.run_dir}   (serves the store, then open:)")
        lines.append(f"                  {result.chart_url}")
    lines.append(f"static report   : sccl report {result.run_dir} --out {result.run_dir}/report")
    return "\n".join(lines)
