"""The generator interface and its checkpoint format.

Every generative model (the motion diffusion model, the Gaussian toys) is a :class:`Generator`:
``fit`` on an array for a number of steps (continuing from the current state or from scratch),
``sample`` with an explicit seed, ``state_dict``/``load_state_dict``, ``save``/``load_generator``.
The loop, the metrics and the theory experiments only ever use this interface.

Checkpoint file: one safetensors file. Tensors are stored as safetensors tensors (no pickle, so
loading never executes code); everything else (format version, generator kind, resolved
config, data shape, optimiser hyper-parameters, ...) is one JSON document stored in the
safetensors header metadata under the key ``"sccl"``. A truncated file, a file of another
format version or kind, or one whose tensors do not match the model it describes is rejected
with a :class:`CheckpointError` naming the file and the problem.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from sccl.motion.errors import UserError
from sccl.motion.typedconfig import build_dataclass

#: Bumped whenever the checkpoint layout changes incompatibly.
FORMAT_VERSION = 1
_META_KEY = "sccl"

ProgressFn = Callable[[int, float], None]

#: Config keys that say where/how a model runs rather than what it is: never stored in a
#: checkpoint, and ignored in older checkpoints that stored them.
RUNTIME_KEYS = ("device",)


class CheckpointError(UserError):
    """A checkpoint cannot be used: truncated/corrupt, other format version, other kind,
    or tensors that do not match the model it claims to hold. The message names the file."""


class GeneratorConfigError(UserError, ValueError):
    """Invalid generator configuration or input arrays (names the key/argument)."""


class Generator(ABC):
    """A generative model behind the framework's one interface.

    Subclasses set :attr:`name` (the registry name, stored in checkpoints as the kind) and
    implement :meth:`fit`, :meth:`sample`, :meth:`state_dict` and :meth:`load_state_dict`.

    ``state_dict()`` returns a plain dict ``{"kind", "format_version", "config", "meta",
    "tensors"}`` where ``tensors`` maps names to numpy arrays and everything else is
    JSON-serialisable; it is what :meth:`save` writes and what a Ray task can ship around.
    """

    name: str = "generator"
    #: Typed settings (a dataclass): when set, the config dict is parsed into :attr:`settings`
    #: with the experiment config's parser ("did you mean" for unknown keys). None: a plugin
    #: that reads its plain dict itself.
    settings_class: type | None = None
    #: The loop's contract with this generator, declared rather than inferred from its name so a
    #: plugin can opt in. ``uses_device``: it runs on a torch device read from a ``device``
    #: setting, and the loop passes the device Ray reserved for the arm ("cpu" when only checking
    #: a config). ``uses_preset``: ``generator.preset`` is one of its settings (otherwise the
    #: loop drops the key). ``takes_training_defaults``: it reads ``keep_optimizer`` (the
    #: experiment's ``train.carry_optimizer``) and the data task's defaults (window shape,
    #: labels) from its config.
    uses_device: ClassVar[bool] = False
    uses_preset: ClassVar[bool] = True
    takes_training_defaults: ClassVar[bool] = False

    def __init__(self, config: dict | None = None) -> None:
        self.config: dict = dict(config or {})
        self.settings: Any = None
        if self.settings_class is not None:
            self.settings = build_dataclass(self.settings_class, self.config, error=GeneratorConfigError,
                                            what=f"generator {self.name} setting", lenient=True)

    # ------------------------------------------------------------------ interface
    @abstractmethod
    def fit(
        self,
        x: np.ndarray,
        labels: np.ndarray | None,
        steps: int,
        seed: int,
        *,
        continue_training: bool = True,
        progress: ProgressFn | None = None,
    ) -> dict:
        """Fit on ``x`` (with optional integer ``labels``) for ``steps`` optimisation steps.

        ``continue_training=True`` starts from the current state (the previous generation's
        weights); ``False`` starts from scratch. Returns a dict of figures (at least ``"loss"``
        and ``"steps"``)."""

    @abstractmethod
    def sample(self, n: int, labels: np.ndarray | None, seed: int) -> np.ndarray:
        """``n`` samples with the same per-sample shape as the fitted ``x``. Depends only on
        the state, the arguments and ``seed`` (never on global random state)."""

    @abstractmethod
    def state_dict(self) -> dict:
        """Everything needed to rebuild this generator (see the class docstring)."""

    @abstractmethod
    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict` output; raises :class:`CheckpointError` when the
        state does not fit this generator."""

    @property
    def is_fitted(self) -> bool:
        return False

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write a checkpoint atomically (temp file in the same folder + ``os.replace``)."""
        return save_state(self.state_dict(), path)

    def load(self, path: str | os.PathLike) -> None:
        """Load a checkpoint into this generator, checking it was written by the same kind
        (and, for the diffusion model, the same preset and data shape)."""
        state = read_state(path)
        if state["kind"] != self.name:
            raise CheckpointError(f"{path}: checkpoint holds a {state['kind']!r} generator, expected {self.name!r}")
        try:
            self.load_state_dict(state)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None

    def _base_state(self, meta: dict, tensors: dict[str, np.ndarray]) -> dict:
        # The device is where a model ran, not what it is: storing it would pin a resumed arm
        # to it (a cuda run could not resume on a CPU box and a CPU run would ignore the GPU
        # it is given). The loader puts the tensors on the loading process's device.
        return {
            "kind": self.name,
            "format_version": FORMAT_VERSION,
            "config": _jsonable({k: v for k, v in self.config.items() if k not in RUNTIME_KEYS}),
            "meta": meta,
            "tensors": tensors,
        }


# ---------------------------------------------------------------------- file format
def _jsonable(obj: Any) -> Any:
    """Config values as plain JSON types (numpy scalars/arrays become Python values)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def save_state(state: dict, path: str | os.PathLike,
               before_replace: Callable[[Path], None] | None = None) -> Path:
    """Write a :meth:`Generator.state_dict` to ``path`` as safetensors + JSON metadata,
    atomically (temp file in the same folder, fsync, ``os.replace``). ``before_replace(tmp)``
    (tests: fault injection) runs once the temporary file is complete, before the rename."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {k: v for k, v in state.items() if k != "tensors"}
    tensors = {k: np.ascontiguousarray(v) for k, v in state["tensors"].items()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(_jsonable(header))})
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        if before_replace is not None:
            before_replace(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_state(path: str | os.PathLike) -> dict:
    """Read and validate a checkpoint file into a state dict (no code is executed)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    try:
        with safe_open(str(path), framework="numpy") as fh:
            metadata = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable sccl checkpoint (truncated or corrupt safetensors file: {exc})") from None
    if _META_KEY not in metadata:
        raise CheckpointError(f"{path}: safetensors file without sccl metadata (not a generator checkpoint)")
    try:
        header = json.loads(metadata[_META_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt sccl metadata ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt sccl metadata (expected a JSON object)")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version!r}, this sccl reads version {FORMAT_VERSION}")
    for key in ("kind", "config", "meta"):
        if key not in header:
            raise CheckpointError(f"{path}: checkpoint metadata lacks {key!r}")
    header["tensors"] = tensors
    return header
