"""Generator lookup by name: the built-ins, plugins registered under the ``sccl.generators``
entry-point group, or a ``"package.module:ClassName"`` path (a user's own generator without
editing the framework); and :func:`load_generator`, which rebuilds a checkpoint's generator by
the kind it names (so it needs the lookup, and lives here rather than beside the file format
in :mod:`sccl.generators.base`)."""

from __future__ import annotations

import importlib
import os
from importlib import metadata
from typing import Callable

from sccl.generators.base import (
    RUNTIME_KEYS, CheckpointError, Generator, GeneratorConfigError, _jsonable, read_state,
)
from sccl.motion.errors import UserError


def _builtin() -> dict[str, Callable[[dict], Generator]]:
    # Imported on use: building a Gaussian toy (or listing names) must not pay for importing torch.
    from sccl.generators.diffusion import MotionDiffusion
    from sccl.generators.gaussian import GaussianGenerator, GaussianMixtureGenerator

    return {
        MotionDiffusion.name: MotionDiffusion,
        GaussianGenerator.name: GaussianGenerator,
        GaussianMixtureGenerator.name: GaussianMixtureGenerator,
    }


def _entry_points() -> dict[str, metadata.EntryPoint]:
    try:
        return {ep.name: ep for ep in metadata.entry_points(group="sccl.generators")}
    except Exception:  # pragma: no cover - broken environments must not break the built-ins
        return {}


def available_generators() -> list[str]:
    """Names accepted by :func:`build_generator` (built-ins and installed plugins)."""
    return sorted(set(_builtin()) | set(_entry_points()))


def _from_path(name: str) -> Callable[[dict], Generator]:
    module_name, _, attr = name.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise GeneratorConfigError(f"generator {name!r}: cannot import ({exc})") from None
    if not (isinstance(obj, type) and issubclass(obj, Generator)):
        raise GeneratorConfigError(f"generator {name!r}: is not a generators.base.Generator subclass")
    return obj


def _factory(name: str) -> Callable[[dict], Generator]:
    builtins = _builtin()
    if name in builtins:
        return builtins[name]
    if ":" in name:
        return _from_path(name)
    eps = _entry_points()
    if name not in eps:
        raise GeneratorConfigError(
            f"unknown generator {name!r}; available: {', '.join(available_generators())} "
            "(or a 'package.module:ClassName' path)"
        )
    return eps[name].load()


def generator_class(name: str) -> type[Generator]:
    """The class behind a generator name, for its declared traits (``uses_device``…).

    A plugin registered as a plain factory function has no traits of its own: the base class's
    defaults stand for it. Raises :class:`GeneratorConfigError` for an unknown name."""
    factory = _factory(name)
    return factory if isinstance(factory, type) and issubclass(factory, Generator) else Generator


def is_builtin_generator(name: str) -> bool:
    """Whether ``name`` is one of the framework's own generators (whose registry name is also
    the kind its checkpoints record; a plugin's need not be)."""
    return name in _builtin()


def build_generator(name: str, config: dict | None = None) -> Generator:
    """Construct a generator by name with a plain config dict.

    Raises :class:`GeneratorConfigError` (a UserError) for an unknown name, listing what exists."""
    return _factory(name)(dict(config or {}))


def load_generator(path: str | os.PathLike, *, expect: dict | None = None, device: str | None = None) -> Generator:
    """Rebuild the generator stored in a checkpoint.

    ``expect`` optionally pins what the caller needs, e.g. ``{"kind": "diffusion",
    "preset": "small", "feature_shape": [30, 62]}``; any mismatch is a :class:`CheckpointError`.
    ``device`` is where to put it (default: the generator's ``auto``, CUDA when available);
    a device stored by an older checkpoint is ignored, so a checkpoint written on a GPU loads on
    a CPU-only machine and the other way round."""
    state = read_state(path)
    kind = state["kind"]
    if kind not in available_generators():
        raise CheckpointError(f"{path}: unknown generator kind {kind!r} (available: {', '.join(available_generators())})")
    for key, want in (expect or {}).items():
        if key == "kind":
            have = kind
        elif key in state["meta"]:
            have = state["meta"][key]
        else:
            have = state["config"].get(key)
        if _jsonable(have) != _jsonable(want):
            raise CheckpointError(f"{path}: checkpoint has {key} = {have!r}, expected {want!r}")
    config = {k: v for k, v in state["config"].items() if k not in RUNTIME_KEYS}
    if device is not None:
        config["device"] = device
    try:
        gen = build_generator(kind, config)
    except UserError as exc:
        raise CheckpointError(f"{path}: stored config is invalid: {exc}") from None
    try:
        gen.load_state_dict({**state, "config": config})
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return gen
