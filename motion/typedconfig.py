"""Plain mappings in, typed dataclasses out: the one parser behind every settings object.

The experiment config (:mod:`sccl.loop.config`), the simulator settings
(:class:`sccl.simulators.SimConfig`), the built-in correctors' and generators' settings all go
through :func:`build_dataclass`, so a misspelt key fails the same way everywhere: the message
names the key, suggests the closest known one ("did you mean ...?") and lists what is allowed.
It lives at the bottom layer because the simulator needs it and must not import the loop.

``lenient=True`` additionally accepts numbers and booleans written as strings ("0.3",
"true"), integral floats for integers, 0/1 for booleans, numpy scalars, and tuples or numpy
arrays for lists: settings typed on a command line (``sccl correct --set``), read from older
files or built in Python arrive that way, and the component parsers have always accepted them.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
import types
import typing
from typing import Any, Mapping, TypeVar

import numpy as np

from sccl.motion.errors import UserError

T = TypeVar("T")

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "null")


class _Parser:
    """Carries how errors are worded and raised (``what`` names the kind of key)."""

    def __init__(self, error: type[Exception], what: str, lenient: bool) -> None:
        self.error = error
        self.what = what
        self.lenient = lenient

    def fail(self, key: str, expected: str, value: Any) -> Exception:
        return self.error(f"{self.what} '{key}': expected {expected}, got {value!r}")

    def coerce(self, value: Any, tp: Any, key: str) -> Any:
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = typing.get_args(tp)
            if value is None and type(None) in args:
                return None
            for arg in args:
                if arg is type(None):
                    continue
                try:
                    return self.coerce(value, arg, key)
                except self.error:
                    pass
            raise self.fail(key, " or ".join(_type_name(a) for a in args), value)
        if origin is typing.Literal:
            choices = typing.get_args(tp)
            if value not in choices:
                raise self.fail(key, "one of " + ", ".join(str(c) for c in choices), value)
            return value
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise self.error(f"{self.what} '{key}': expected a mapping (section), got {value!r}")
            return self.build(tp, value, key + ".")
        if origin is list:
            if self.lenient and isinstance(value, (tuple, np.ndarray)):
                value = value.tolist() if isinstance(value, np.ndarray) else list(value)
            if not isinstance(value, list):
                raise self.fail(key, "a list", value)
            (item,) = typing.get_args(tp) or (Any,)
            return [self.coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        if origin is dict:
            if not isinstance(value, dict):
                raise self.fail(key, "a mapping", value)
            return dict(value)
        if tp is Any:
            return value
        if tp is bool:
            return self._bool(value, key)
        if tp is int:
            return self._int(value, key)
        if tp is float:
            return self._float(value, key)
        if tp is str:
            if not isinstance(value, str):
                raise self.fail(key, "a string", value)
            return value
        return value

    def _bool(self, value: Any, key: str) -> bool:
        if isinstance(value, bool):
            return value
        if self.lenient:
            if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
                return value.lower() in _TRUE
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
        raise self.fail(key, "true or false", value)

    def _int(self, value: Any, key: str) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if self.lenient and not isinstance(value, bool):
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = float("nan")
            if number == number and number not in (float("inf"), float("-inf")) and number == int(number):
                return int(number)
        raise self.fail(key, "an integer", value)

    def _float(self, value: Any, key: str) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if self.lenient and isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
            return float(value)
        if self.lenient and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise self.fail(key, "a number", value)

    def build(self, cls: type[T], raw: Mapping[str, Any], prefix: str = "") -> T:
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        for key in raw:
            if key not in names:
                close = difflib.get_close_matches(str(key), sorted(names), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise self.error(f"unknown {self.what} '{prefix}{key}'{hint}; allowed: {', '.join(sorted(names))}")
        kwargs = {k: self.coerce(v, hints[k], prefix + k) for k, v in raw.items()}
        return cls(**kwargs)


def build_dataclass(cls: type[T], raw: Mapping[str, Any] | None, *, error: type[Exception] = UserError,
                    what: str = "config key", prefix: str = "", lenient: bool = False) -> T:
    """Build dataclass ``cls`` from the mapping ``raw``, checking every value against the
    field's annotation (ints are accepted for floats; nested dataclasses are sections).

    Unknown keys and wrong types raise ``error`` with a one-line message naming the key as
    ``{what} '{prefix}{key}'``. Range checks beyond the type belong to the dataclass itself
    (a ``validate`` method or ``__post_init__``)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise error(f"{what}s: expected a mapping, got {type(raw).__name__}")
    return _Parser(error, what, lenient).build(cls, raw, prefix)


def coerce_value(value: Any, tp: Any, key: str, *, error: type[Exception] = UserError,
                 what: str = "config key", lenient: bool = False) -> Any:
    """Check one value against the annotation ``tp`` (see :func:`build_dataclass`)."""
    return _Parser(error, what, lenient).coerce(value, tp, key)


def field_names(cls: type) -> tuple[str, ...]:
    """The keys a settings dataclass accepts, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.init)
