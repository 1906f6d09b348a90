"""Finding correctors by name: built-ins, the ``sccl.correctors`` entry-point group, or a
``module:Class`` path.

Third-party packages register a corrector in their packaging metadata, e.g. in setup.cfg::

    [options.entry_points]
    sccl.correctors =
        my_corrector = my_package.correctors:MyCorrector

or a config names it directly: ``corrector: my_package.correctors:MyCorrector``.
"""

from __future__ import annotations

import importlib
import logging
from importlib import metadata
from typing import Any

from sccl.correctors.base import Corrector, CorrectorError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "sccl.correctors"

BUILTINS: dict[str, str] = {
    "none": "sccl.correctors.simple:IdentityCorrector",
    "physics": "sccl.correctors.physics:PhysicsCorrector",
    "ideal": "sccl.correctors.simple:IdealCorrector",
    "nearest_cluster": "sccl.correctors.simple:NearestClusterCorrector",
}


def _entry_points() -> dict[str, metadata.EntryPoint]:
    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception as exc:  # pragma: no cover - broken environment metadata
        log.warning("cannot read entry points of group %s: %s", ENTRY_POINT_GROUP, exc)
        return {}
    return {ep.name: ep for ep in eps}


def available_correctors() -> list[str]:
    """Built-in names plus installed plugins (entry points), sorted; ``module:Class`` paths
    are accepted as well but cannot be listed."""
    return sorted(set(BUILTINS) | set(_entry_points()))


def _load_path(path: str, what: str) -> Any:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise CorrectorError(f"corrector {what!r}: expected 'module:Class', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise CorrectorError(f"corrector {what!r}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CorrectorError(f"corrector {what!r}: module {module_name!r} has no attribute {attr!r}") from None
    return obj


def resolve_corrector(name_or_path: str) -> type[Corrector]:
    """The corrector class for a built-in name, an entry-point name, or ``module:Class``."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise CorrectorError(f"corrector name must be a non-empty string, got {name_or_path!r}; "
                             f"available: {', '.join(available_correctors())}")
    name = name_or_path.strip()
    if name in BUILTINS:
        cls = _load_path(BUILTINS[name], name)
    elif ":" in name:
        cls = _load_path(name, name)
    else:
        eps = _entry_points()
        if name not in eps:
            raise CorrectorError(
                f"unknown corrector {name!r}; available: {', '.join(available_correctors())} "
                f"(or a 'module:Class' path, or a plugin registered in entry-point group {ENTRY_POINT_GROUP!r})"
            )
        try:
            cls = eps[name].load()
        except Exception as exc:
            raise CorrectorError(f"corrector {name!r}: loading plugin {eps[name].value!r} failed: "
                                 f"{type(exc).__name__}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Corrector)):
        raise CorrectorError(f"corrector {name!r}: {cls!r} is not a subclass of correctors.Corrector")
    return cls


def build_corrector(name_or_path: str, config: dict | None = None) -> Corrector:
    """Build a corrector from its name and a plain config dict (what every Ray worker does)."""
    cls = resolve_corrector(name_or_path)
    if config is not None and not isinstance(config, dict):
        raise CorrectorError(f"corrector {name_or_path!r}: config must be a mapping, got {type(config).__name__}")
    try:
        return cls(dict(config or {}))
    except CorrectorError:
        raise
    except Exception as exc:
        raise CorrectorError(f"corrector {name_or_path!r}: construction failed: {type(exc).__name__}: {exc}") from None
