"""Generator lookup by name: the built-ins, plugins registered under the ``sccl.generators``
entry-point group, or a ``"package.module:ClassName"`` path (a user's own generator without
editing the framework)."""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Callable

from sccl.generators.base import Generator, GeneratorConfigError


def _builtin() -> dict[str, Callable[[dict], Generator]]:
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


def build_generator(name: str, config: dict | None = None) -> Generator:
    """Construct a generator by name with a plain config dict.

    Raises :class:`GeneratorConfigError` (a UserError) for an unknown name, listing what exists."""
    builtins = _builtin()
    if name in builtins:
        factory = builtins[name]
    elif ":" in name:
        factory = _from_path(name)
    else:
        eps = _entry_points()
        if name not in eps:
            raise GeneratorConfigError(
                f"unknown generator {name!r}; available: {', '.join(available_generators())} "
                "(or a 'package.module:ClassName' path)"
            )
        factory = eps[name].load()
    return factory(dict(config or {}))
