"""Typed experiment configuration: YAML in, validated dataclasses out.

Every error names the dotted key (``generator.preset``), what was expected and what was
found, so a typo in a 50-generation sweep fails in the first second, not after an hour.
A config may declare a sweep: explicit ``arms`` (named overrides) crossed with a ``grid``
(dotted key -> list of values). :func:`expand_arms` turns it into one :class:`ArmSpec` each.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sccl.motion.errors import UserError
from sccl.motion.typedconfig import build_dataclass, coerce_value


class ConfigError(UserError, ValueError):
    """Invalid experiment configuration (the message names the key)."""


REGIMES = ("augment", "replace", "accumulate")
FAILURE_POLICIES = ("reject", "keep_raw", "keep_partial")


@dataclass
class DataSection:
    """``data``: where D_real comes from (see motion.dataset.DataConfig for motion data)."""

    kind: str = "motion"  #: "motion" (clip files) or "gaussian" (the toy: draws from N(mean, cov))
    path: str | None = None
    fps: float = 20.0
    window: int = 30
    stride: int = 5
    mirror: bool = True
    split: str = "time"
    holdout_fraction: float = 0.2
    holdout_clips: list[str] = field(default_factory=list)
    loop_min_seconds: float = 8.0
    n: int | None = None  #: dataset size: number of real training samples (None = all windows)
    # toy
    dim: int = 2
    mean: list[float] | None = None  #: toy target mean (default zeros)
    cov: list[list[float]] | None = None  #: toy target covariance (default identity)
    heldout_n: int = 1000  #: toy held-out sample size for metrics


@dataclass
class GeneratorSection:
    name: str = "diffusion"
    preset: str = "small"
    params: dict[str, Any] = field(default_factory=dict)  #: passed to the generator's config dict


@dataclass
class CorrectorSection:
    """``corrector``. ``params`` belong to the corrector named beside them: an arm that switches
    ``corrector.name`` without setting ``corrector.params`` starts from no params, because
    settings of one corrector are unknown (an error) to another. ``params_for`` holds settings
    per corrector name for every arm that uses that corrector (the arm's own params win), which
    is how one command line tunes the physics arm of a sweep:
    ``corrector.params_for.physics.assist_cap_g=0.3``."""

    name: str = "none"
    params: dict[str, Any] = field(default_factory=dict)
    params_for: dict[str, dict[str, Any]] = field(default_factory=dict)
    policy: str = "reject"


@dataclass
class TrainSection:
    steps_gen0: int = 1000  #: training steps of generation 0 (real data only)
    steps_per_generation: int = 300  #: training steps of every later generation
    finetune: bool = True  #: continue from the previous weights (False: retrain from scratch)
    carry_optimizer: bool = False  #: keep optimiser state across generations (reference: re-created)
    #: another run directory whose generation-0 models this run reuses where they are the same
    #: model (same data, generator, seed and gen-0 steps: the checkpoint's name is that hash), so
    #: arms added later (a control) start from bit-identical weights without retraining
    gen0_from: str | None = None


@dataclass
class EvalSection:
    num_samples: int = 200  #: generated samples per evaluation
    every: int = 1  #: evaluate every k generations (the last one always)
    gif: bool = True  #: render a GIF of samples beside real windows each evaluated generation
    plots: bool = True  #: refresh the collapse-curve PNG (about 20 times per run, and at the end)
    evaluator_steps: int = 600  #: training steps of the learned motion evaluator (trained once, cached)
    cache_dir: str | None = None  #: trained-evaluator cache (None: $SCCL_CACHE_DIR or ~/.cache/sccl)


@dataclass
class RaySection:
    enabled: bool = True  #: False: run arms one after another in this process (debugging)
    address: str | None = None  #: None: RAY_ADDRESS if set, else an embedded local Ray
    num_cpus: int | None = None  #: CPUs of the embedded Ray (None = all)
    arm_cpus: float = 1.0  #: CPUs reserved for each arm's training/sampling
    arm_gpus: float = 0.0  #: GPUs per arm: 0 (CPU), a fraction ≤ 1 (several arms share a GPU) or 1
    correction_workers: int = 1  #: PyBullet actors per arm (0 = correct in the arm's process)
    worker_cpus: float = 1.0  #: CPUs per correction actor
    correction_batch: int = 16  #: clips per actor call


@dataclass
class MlflowSection:
    tracking_uri: str | None = None  #: None: MLFLOW_TRACKING_URI if set, else sqlite:///mlflow.db
    experiment: str | None = None  #: None: the config's name
    artifact_location: str | None = None  #: for a new experiment on the default store (None: ./mlartifacts)


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    output_dir: str | None = None  #: None: runs/<name>
    seed: int = 0
    generations: int = 5
    synthetic_ratio: float = 1.0  #: λ: synthetic samples per generation = round(λ·n)
    regime: str = "augment"
    data: DataSection = field(default_factory=DataSection)
    generator: GeneratorSection = field(default_factory=GeneratorSection)
    corrector: CorrectorSection = field(default_factory=CorrectorSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    ray: RaySection = field(default_factory=RaySection)
    mlflow: MlflowSection = field(default_factory=MlflowSection)
    arms: list[dict[str, Any]] = field(default_factory=list)  #: named overrides, e.g. {name: baseline, synthetic_ratio: 0}
    grid: dict[str, list[Any]] = field(default_factory=dict)  #: dotted key -> values, crossed with arms

    def validate(self) -> None:
        checks = [
            ("generations", self.generations >= 0, "an integer >= 0"),
            ("synthetic_ratio", self.synthetic_ratio >= 0, "a number >= 0"),
            ("regime", self.regime in REGIMES, f"one of {', '.join(REGIMES)}"),
            ("data.kind", self.data.kind in ("motion", "gaussian"), "'motion' or 'gaussian'"),
            ("data.n", self.data.n is None or self.data.n >= 1, "a positive integer or null"),
            ("data.fps", self.data.fps > 0, "a positive number"),
            ("data.window", self.data.window >= 2, "an integer >= 2"),
            ("data.stride", self.data.stride >= 1, "an integer >= 1"),
            ("data.holdout_fraction", 0 <= self.data.holdout_fraction < 1, "a number in [0, 1)"),
            ("data.dim", self.data.dim >= 1, "an integer >= 1"),
            ("corrector.policy", self.corrector.policy in FAILURE_POLICIES, f"one of {', '.join(FAILURE_POLICIES)}"),
            ("train.steps_gen0", self.train.steps_gen0 >= 0, "an integer >= 0"),
            ("train.steps_per_generation", self.train.steps_per_generation >= 0, "an integer >= 0"),
            ("eval.num_samples", self.eval.num_samples >= 1, "an integer >= 1"),
            ("eval.every", self.eval.every >= 1, "an integer >= 1"),
            ("eval.evaluator_steps", self.eval.evaluator_steps >= 1, "an integer >= 1"),
            ("ray.arm_cpus", self.ray.arm_cpus >= 0, "a number >= 0"),
            ("ray.arm_gpus", _valid_arm_gpus(self.ray.arm_gpus),
             "0, a fraction <= 1 (several arms share one GPU) or 1; more than one GPU per arm is refused "
             "because an arm trains one model on one device (no data parallelism), so extra GPUs would sit idle"),
            ("ray.correction_workers", self.ray.correction_workers >= 0, "an integer >= 0"),
            ("ray.worker_cpus", self.ray.worker_cpus >= 0, "a number >= 0"),
            ("ray.correction_batch", self.ray.correction_batch >= 1, "an integer >= 1"),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise ConfigError(f"config key '{key}': expected {expected}, got {_get_dotted(self, key)!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.name):
            raise ConfigError(f"config key 'name': expected letters, digits, '_', '-', '.', got {self.name!r}")
        if self.data.kind == "motion" and self.data.path is not None and not Path(self.data.path).exists():
            raise ConfigError(f"config key 'data.path': directory {self.data.path} does not exist")
        if self.data.kind == "gaussian" and self.data.n is None:
            raise ConfigError("config key 'data.n': the gaussian toy needs the number of real points n")
        if (self.data.kind == "motion" and self.corrector.policy == "keep_partial"
                and self.corrector.name != "none" and self.synthetic_ratio > 0):
            # The partial clip ends at the fall, so it is shorter than the fixed-length windows the
            # generator trains on; it could only be padded with invented frames or dropped.
            raise ConfigError(
                "config key 'corrector.policy': keep_partial keeps clips cut at the fall, shorter than the "
                "fixed-length windows the generator trains on; use reject or keep_raw in a loop "
                "(keep_partial works with `sccl correct`)"
            )

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir or f"runs/{self.name}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _valid_arm_gpus(value: Any) -> bool:
    """Ray accepts a fraction ≤ 1 or a whole number of GPUs per task. An arm trains one model
    on one device (no data parallelism), so a whole number above 1 would only hold GPUs idle:
    refused, like anything that is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return 0 <= value <= 1


@dataclass
class ArmSpec:
    """One arm of a sweep: a fully resolved config plus the axes that distinguish it."""

    name: str
    config: ExperimentConfig
    params: dict[str, Any]  #: sweep axes of this arm (name -> value), logged as MLflow params
    group: str  #: the arm's name without the seed (arms of a group differ only by seed)

    def gen0_key(self) -> str:
        """Hash of what generation 0 depends on: arms with equal keys share one gen-0 model."""
        c = self.config
        payload = {
            "data": dataclasses.asdict(c.data),
            "generator": dataclasses.asdict(c.generator),
            "seed": c.seed,
            "steps_gen0": c.train.steps_gen0,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------- parsing
# One parser for every settings object (sccl.motion.typedconfig): the experiment config, the
# simulator's and every built-in component's settings fail with the same wording.
def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; return it (ints accepted for floats)."""
    return coerce_value(value, tp, key, error=ConfigError, what="config key")


def _build(cls: type, raw: dict[str, Any], prefix: str = "") -> Any:
    return build_dataclass(cls, raw, error=ConfigError, what="config key", prefix=prefix)


def _get_dotted(obj: Any, key: str) -> Any:
    for part in key.split("."):
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    return obj


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"config key '{key}': '{part}' is not a section")
        node = nxt
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``key.sub=value`` with the value parsed as YAML (so 0.5, true, [1, 2], null work)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value (e.g. generations=3)")
    key, value = text.split("=", 1)
    key = key.strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise ConfigError(f"override {text!r}: bad key {key!r}")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key, parsed


def load_raw(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"config file {path}: not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    return raw


def config_from_dict(raw: dict[str, Any], overrides: list[str] | None = None) -> ExperimentConfig:
    raw = copy.deepcopy(raw)
    for text in overrides or []:
        key, value = parse_override(text)
        _set_dotted(raw, key, value)
    cfg = _build(ExperimentConfig, raw)
    cfg.validate()
    expand_arms(cfg)  # validates every arm of the sweep up front
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read, override (``key=value``), type-check and validate a config file."""
    return config_from_dict(load_raw(path), overrides)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:6]
    return str(value)


def expand_arms(cfg: ExperimentConfig) -> list[ArmSpec]:
    """All arms: each entry of ``arms`` (or one default arm) crossed with the ``grid``.

    An arm's name is its ``name`` override (if any) plus ``key=value`` for every grid axis;
    its group drops the seed axis so that seeds aggregate in reports."""
    base = cfg.to_dict()
    base.pop("arms")
    base.pop("grid")
    arm_entries = cfg.arms or [{}]
    grid_keys = list(cfg.grid)
    for key in grid_keys:
        if not isinstance(cfg.grid[key], list) or not cfg.grid[key]:
            raise ConfigError(f"config key 'grid.{key}': expected a non-empty list of values")
    combos = list(itertools.product(*(cfg.grid[k] for k in grid_keys))) if grid_keys else [()]
    arms: list[ArmSpec] = []
    seen: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(arm_entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"config key 'arms[{i}]': expected a mapping of overrides")
        entry = dict(entry)
        label = entry.pop("name", None)
        for combo in combos:
            raw = copy.deepcopy(base)
            params: dict[str, Any] = {}
            # the arm's own overrides win over grid axes (a baseline with synthetic_ratio 0 is
            # not multiplied by a synthetic_ratio grid)
            axes = [(k, v) for k, v in zip(grid_keys, combo) if k not in entry]
            for key, value in axes:
                _set_dotted(raw, key, value)
                params[key] = value
            for key, value in entry.items():
                _set_dotted(raw, key, value)
                params[key] = value
            _resolve_corrector_params(raw, base, [k for k, _ in axes] + list(entry))
            try:
                arm_cfg = _build(ExperimentConfig, raw)
                arm_cfg.validate()
            except ConfigError as exc:
                where = f"arm {label or i}" + (f" with {dict(axes)}" if axes else "")
                raise ConfigError(f"{where}: {exc}") from None
            parts = [label] if label else []
            parts += [f"{k.split('.')[-1]}={_short(v)}" for k, v in axes]
            name = re.sub(r"[^A-Za-z0-9_.=\-]", "-", "_".join(parts) or "arm")
            group_parts = [label] if label else []
            group_parts += [f"{k.split('.')[-1]}={_short(v)}" for k, v in axes if k != "seed"]
            params.setdefault("seed", arm_cfg.seed)
            if name in seen:
                if seen[name] == arm_cfg.to_dict():
                    continue  # the same arm reached through an overridden grid axis
                raise ConfigError(f"config: two different arms are both named {name!r}; "
                                  "give each entry of 'arms' a distinct name")
            seen[name] = arm_cfg.to_dict()
            arms.append(ArmSpec(name=name, config=arm_cfg, params=params, group="_".join(group_parts) or "arm"))
    return arms


def _resolve_corrector_params(raw: dict[str, Any], base: dict[str, Any], changed: list[str]) -> None:
    """Give an arm the params of the corrector it actually uses (see :class:`CorrectorSection`)."""
    section = raw.get("corrector")
    if not isinstance(section, dict):
        return
    name = section.get("name", CorrectorSection.name)
    own_params = any(k in ("corrector", "corrector.params") or k.startswith("corrector.params.") for k in changed)
    if name != base["corrector"]["name"] and not own_params:
        section["params"] = {}
    per_name = section.get("params_for") or {}
    for key, settings in per_name.items():
        if not isinstance(settings, dict):
            raise ConfigError(f"config key 'corrector.params_for.{key}': expected a mapping of settings "
                              f"(e.g. corrector.params_for.{key}.SETTING=VALUE), got {settings!r}")
    section["params"] = {**per_name.get(name, {}), **(section.get("params") or {})}


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {'a.b': value} for MLflow params."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
