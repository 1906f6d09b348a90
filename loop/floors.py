"""The real-data floor logged beside the collapse curves: one per dataset split, and one per seed
where seeds train on different ``data.n`` subsamples.

The floor is :func:`sccl.metrics.motion_metrics.reference_metrics`: real training windows scored
as if they were samples, against the held-out reference. Every seed is scored in the split's
embedding space (one evaluator per dataset and split), but a seed with ``data.n`` set trains on
its own subsample, so the best it can reach is the floor of *its* windows, not of the split.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, Sequence

from sccl.loop.realdata import load_real_data

log = logging.getLogger(__name__)


def floor_metrics(arms: Sequence[Any], evaluator: Any) -> dict[str, float]:
    """``{"reference/<metric>": v}`` for the whole training split of the first arm's data and,
    for every seed whose ``data.n`` subsample is smaller than the split,
    ``{"reference/seed<s>/<metric>": v}``. Arms whose data section differs from the first arm's
    (other than ``n``) are skipped: they have another evaluator."""
    from sccl.metrics.evaluator import split_dataset
    from sccl.metrics.motion_metrics import get_reference_stats, reference_metrics

    if not arms:
        return {}
    first = arms[0].config

    def data_key(cfg: Any) -> str:
        return json.dumps({k: v for k, v in dataclasses.asdict(cfg.data).items() if k != "n"}, sort_keys=True,
                          default=str)

    real = load_real_data(first.data, first.seed)
    split = split_dataset(real.dataset)
    ref = get_reference_stats(split, evaluator)
    out = {f"reference/{k}": v for k, v in reference_metrics(split, evaluator, fps=real.fps, reference=ref).items()}
    seen: set[int] = set()
    for arm in arms:
        cfg = arm.config
        if data_key(cfg) != data_key(first) or cfg.seed in seen:
            continue
        seen.add(cfg.seed)
        ds = load_real_data(cfg.data, cfg.seed).dataset
        if ds.full_train is None:
            continue  # the seed trains on the whole split: its floor is the split's
        floor = reference_metrics(ds, evaluator, fps=real.fps, reference=ref)
        out.update({f"reference/seed{cfg.seed}/{k}": v for k, v in floor.items()})
        log.info("real-data floor of seed %d (%d of %d training windows) logged", cfg.seed, len(ds.train),
                 len(split.train))
    return out
