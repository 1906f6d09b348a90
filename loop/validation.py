"""Checks before compute: what may differ between a run and its resumption, and bad input
that would otherwise surface hours into a run (plugins that do not import, devices the arm's
resources cannot give, data that does not load, checkpoints of another run)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from sccl.correctors.registry import build_corrector
from sccl.generators.base import CheckpointError, read_state
from sccl.generators.registry import build_generator, generator_class
from sccl.loop.arm import ArmPaths, expected_checkpoint, generator_config
from sccl.loop.config import ArmSpec, ConfigError, ExperimentConfig
from sccl.loop.placement import check_device
from sccl.loop.realdata import load_real_data
from sccl.loop.store import read_json
from sccl.motion.errors import UserError


#: Config keys (dotted prefixes) that ``sccl resume RUN_DIR key=value`` may change: where a run
#: executes and reports, never what it computes. The fingerprint ignores exactly these (and
#: output_dir, which RUN_DIR replaces).
RESUME_OVERRIDABLE = ("ray", "mlflow", "eval.gif", "eval.plots", "train.gen0_from")


def config_fingerprint(cfg: ExperimentConfig) -> str:
    """What must not change between a run and its resumption."""
    d = cfg.to_dict()
    for key in ("output_dir", *RESUME_OVERRIDABLE):
        *path, last = key.split(".")
        node = d
        for part in path:
            node = node.get(part, {})
        node.pop(last, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_resume_overrides(overrides: list[str] | None) -> None:
    """Refuse an override on resume that would change what the run computes."""
    for text in overrides or []:
        key = text.split("=", 1)[0].strip()
        if not any(key == k or key.startswith(k + ".") for k in RESUME_OVERRIDABLE):
            allowed = ", ".join(k + ("" if "." in k else ".*") for k in RESUME_OVERRIDABLE)
            raise ConfigError(f"override {text!r}: only {allowed} "
                              "may change on resume (they do not change what the run computes)")


def validate_arms(arms: list[ArmSpec], run_dir: Path) -> None:
    """Bad input that would otherwise surface hours into a run, checked before anything is
    written or computed: the generator and corrector of every arm can be resolved, built
    from their config (a failing plugin import is caught here; the generator on CPU, so the
    driver needs no GPU), the configured device suits the arm's Ray resources, the real data loads, and
    the checkpoint an arm would resume from is readable and holds the right generator."""
    built: set[str] = set()
    for arm in arms:
        c = arm.config
        where = f"arm {arm.name}: " if len(arms) > 1 else ""
        key = json.dumps([dataclasses.asdict(c.generator), dataclasses.asdict(c.corrector)], sort_keys=True,
                         default=str)
        check_device(c)  # the device against the arm's Ray resources (no GPU needed here)
        if key not in built:
            built.add(key)
            try:
                # Built on CPU: the driver never trains, so a CPU-only head validates a GPU
                # sweep and a GPU head holds no CUDA context for the whole sweep.
                gcfg = generator_config(c)
                if generator_class(c.generator.name).uses_device:
                    gcfg["device"] = "cpu"
                build_generator(c.generator.name, gcfg)
            except UserError as exc:
                raise ConfigError(f"{where}config key 'generator': {exc}") from None
            try:
                build_corrector(c.corrector.name, {**c.corrector.params, "policy": c.corrector.policy}).close()
            except UserError as exc:
                raise ConfigError(f"{where}config key 'corrector': {exc}") from None
        if c.train.gen0_from and not (Path(c.train.gen0_from).expanduser() / "shared").is_dir():
            raise ConfigError(f"config key 'train.gen0_from': {c.train.gen0_from}: expected a run directory "
                              "with a shared/ folder of generation-0 checkpoints")
        try:
            load_real_data(c.data, c.seed)
        except UserError as exc:
            raise ConfigError(f"{where}config key 'data': {exc}") from None
        state = read_json(ArmPaths(run_dir / "arms" / arm.name).state, default={}) or {}
        completed = state.get("completed", -1)
        if 0 <= completed < c.generations:
            path = ArmPaths(run_dir / "arms" / arm.name).checkpoint(completed)
            header = read_state(path)  # CheckpointError names the file
            for k, want in expected_checkpoint(c).items():
                have = header["kind"] if k == "kind" else header["meta"].get(k, header["config"].get(k))
                if have != want:
                    raise CheckpointError(f"{path}: checkpoint has {k} = {have!r}, but arm {arm.name} "
                                          f"needs {want!r}; it does not belong to this run")
