"""How much of a correction-bench result is the candidates' seed? Prints one JSON object.

The sampling mode's outcome on a clip (kept or fallen) depends on the random candidates it draws,
so one run per setting cannot tell two settings apart. Give this script the JSON files that
``bench/correction.py`` wrote for the same settings with different ``--set sampling_seed=N``; it
groups them by their settings (the seed and every setting at its default left out, so the preset
name that spelled them does not matter) and reports, per group, each seed's clips kept and
bundled targets, the mean and range over seeds, and the clips kept on every seed.

    python bench/correction_seeds.py docs/results/issue15/search/bundled_*.json

Reads only the files given; runs nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

#: bundled-target values summarised over seeds (from correction.py's "targets" block)
TARGET_KEYS = ("walk_root_relative_mm_le_60", "mean_penetrate_after_mm_le_5", "jump_airborne_kept_ge_0.7",
               "run_airborne_kept_ge_0.7", "jump_flight_unexplained_g_le_0.25", "run_flight_unexplained_g_le_0.25",
               "mean_residual_g_le_0.05", "speed_realtime_per_core_ge_10")


def _stats(values: list) -> dict:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"mean": None, "min": None, "max": None, "n": 0}
    return {"mean": round(sum(vals) / len(vals), 4), "min": min(vals), "max": max(vals), "n": len(vals)}


def _settings(config: dict, defaults: dict) -> dict:
    """`config` without the seed and without settings at their SimConfig default (`defaults`), so
    that two runs of the same settings group together whichever preset name or ``--set`` spelled them."""
    return {k: v for k, v in config.items() if k != "sampling_seed" and not (k in defaults and defaults[k] == v)}


def load(paths: list[Path]) -> dict:
    """{settings without the seed: {seed: mode entry}}; a repeated seed is an error."""
    from dataclasses import fields

    from sccl.simulators import SimConfig

    defaults = {f.name: f.default for f in fields(SimConfig)}
    groups: dict = {}
    for path in paths:
        try:
            report = json.loads(path.read_text())
            modes = report["modes"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"{path}: not a bench/correction.py report ({exc})")
        for mode, entry in modes.items():
            seed = int(entry["config"].get("sampling_seed", 0))
            key = json.dumps(_settings(entry["config"], defaults), sort_keys=True)
            seeds = groups.setdefault(key, {})
            if seed in seeds:
                raise SystemExit(f"{path}: seed {seed} is given twice for the same settings ({mode})")
            seeds[seed] = {"file": str(path), "mode": mode, **entry}
    return groups


def summarize(groups: dict) -> list[dict]:
    out = []
    for config, seeds in sorted(groups.items()):
        per_seed = {}
        kept_sets = []
        for seed, entry in sorted(seeds.items()):
            kept = entry["bundled_summary"]["kept"]
            clips = sorted(entry["bundled"])
            kept_sets.append(set(kept))
            per_seed[seed] = {"file": entry["file"], "mode": entry["mode"], "kept": f"{len(kept)}/{len(clips)}",
                              "fell": sorted(set(clips) - set(kept)),
                              **{k: entry["targets"].get(k, {}).get("value") for k in TARGET_KEYS},
                              # per CPU second of the process: the fair speed when benches share cores
                              "realtime_factor_per_core_cpu": entry.get("speed", {}).get("realtime_factor_per_core_cpu"),
                              # the search's price, independent of machine load (the returned pass, mean over clips)
                              "sampling_steps_per_step": _stats([r.get("sampling_steps_per_step")
                                                                 for r in entry["bundled"].values()])["mean"]}
        counts = [len(s) for s in kept_sets]
        out.append({
            "settings": json.loads(config),
            "seeds": sorted(seeds),
            "kept_mean": round(sum(counts) / len(counts), 3),
            "kept_min": min(counts),
            "kept_max": max(counts),
            "kept_on_every_seed": sorted(set.intersection(*kept_sets)),
            "targets_over_seeds": {k: _stats([s[k] for s in per_seed.values() if isinstance(s[k], (int, float))])
                                   for k in (*TARGET_KEYS, "realtime_factor_per_core_cpu", "sampling_steps_per_step")},
            "per_seed": per_seed,
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="bench/correction.py JSON reports")
    args = parser.parse_args()
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    print(json.dumps(summarize(load(args.files)), indent=1))


if __name__ == "__main__":
    main()
