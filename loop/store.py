"""Atomic files of a run directory: nothing half-written is ever read back.

Every file is written to a temporary name in the same directory, flushed, fsync'ed and
renamed over the target (``os.replace`` is atomic on POSIX). JSON state files carry the
data they describe; arrays are stored as ``.npz`` (no pickle) and validated on load.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sccl.motion.errors import UserError

log = logging.getLogger(__name__)


class RunDirError(UserError):
    """A run directory is missing, foreign or damaged (the message names the file)."""


def atomic_write_bytes(path: Path, data: bytes, before_replace: Callable[[Path], None] | None = None) -> Path:
    """Write ``data`` to ``path`` atomically. ``before_replace(tmp)`` (tests: fault injection)
    runs once the temporary file is complete, just before the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if before_replace is not None:
            before_replace(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


class RunDirLock:
    """Exclusive hold on a run directory for one driver (``flock`` on ``RUN_DIR/.sccl.lock``).

    Two drivers on the same directory would interleave generations and MLflow deliveries; the
    second one is refused with the first one's pid instead. The kernel drops the lock when the
    holder dies, so a SIGKILLed run never leaves a stale lock behind. While the lock is held no
    other process writes here, so temporary files left by a killed writer can be removed."""

    FILE = ".sccl.lock"

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._fh: Any = None

    def acquire(self) -> "RunDirLock":
        import fcntl

        self.run_dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.run_dir / self.FILE, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise RunDirError(
                f"{self.run_dir} is in use by another sccl run (pid {holder}); wait for it to finish, stop it, "
                "or choose another output_dir"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        removed = remove_stale_temp_files(self.run_dir)
        if removed:
            log.info("removed %d temporary file(s) left by an interrupted run in %s", removed, self.run_dir)
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor releases the flock
            self._fh = None

    def __enter__(self) -> "RunDirLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def remove_stale_temp_files(run_dir: Path) -> int:
    """Delete the hidden ``.NAME.….tmp…`` files of :func:`atomic_write_bytes` and checkpoint
    writers (only a killed writer leaves them; call with the run directory locked). Returns how
    many were removed."""
    removed = 0
    for tmp in Path(run_dir).rglob(".*.tmp*"):
        try:
            tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def write_json(path: Path, obj: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: Path, default: Any = None) -> Any:
    path = Path(path)
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: damaged JSON state file ({exc}); it was not written by an atomic writer") from None


def write_npz(path: Path, *, before_replace: Callable[[Path], None] | None = None, **arrays: np.ndarray) -> Path:
    import io

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return atomic_write_bytes(path, buf.getvalue(), before_replace)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: damaged array file ({exc})") from None


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    text = "".join(json.dumps(r, sort_keys=True, default=_json_default) + "\n" for r in records)
    return atomic_write_bytes(path, text.encode())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for i, line in enumerate(path.read_text().splitlines()):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                raise RunDirError(f"{path}: line {i + 1} is not valid JSON") from None
    return out
