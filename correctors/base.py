"""The corrector interface, the result type, and the failure policy shared by all correctors.

A corrector is plain Python built from a plain config dict, so every Ray worker can build
its own copy (``build_corrector(name, config)``) and unit tests need no cluster.

Failure policy (config key ``policy``) for samples the corrector cannot fix:

* ``reject`` (default): the sample is dropped from ``samples`` (still counted in ``status``
  and ``counts``);
* ``keep_raw``: the uncorrected input is kept instead;
* ``keep_partial``: what was corrected before the failure is kept (e.g. the frames before a
  fall); where nothing usable exists (NaN blow-up, exception) the sample is rejected.

Whatever the policy, every input has a status and a diagnostics row, counts add up to the
batch size, and nothing non-finite is ever placed in ``samples``.
"""

from __future__ import annotations

import difflib
import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from sccl.motion.errors import UserError
from sccl.motion.typedconfig import build_dataclass, field_names

log = logging.getLogger(__name__)

POLICIES = ("reject", "keep_raw", "keep_partial")
DOMAINS = ("motion", "vector", "any")  # "any": works on both (e.g. none)
#: Statuses a built-in corrector reports; plugins may add their own failure names.
STATUS_OK = "ok"
STATUS_FALL = "fall"
STATUS_NAN = "nan"
STATUS_ERROR = "error"
#: Tracked without a fall, but only with more non-contact (residual) force than allowed.
STATUS_RESIDUAL = "residual"
#: Tracked without a fall, but the output moved away from the input more than allowed (e.g. a
#: crouch under the assist): physically possible, yet no longer the motion that was asked for.
STATUS_UNFAITHFUL = "unfaithful"


class CorrectorError(UserError):
    """A corrector cannot be found, built or configured. The message names the corrector."""


@dataclass
class SampleOutcome:
    """What a corrector made of one sample, before the failure policy is applied.

    ``corrected`` is the result on success; ``partial`` what is usable after a failure
    (may be None); ``diagnostics`` plain floats."""

    status: str
    corrected: Any = None
    partial: Any = None
    diagnostics: dict = field(default_factory=dict)


@dataclass
class CorrectionResult:
    """Corrected batch with per-input bookkeeping.

    Attributes:
        samples: kept samples in input order — ``list[Motion]`` (domain "motion") or an
            array ``(K, ...)`` (domain "vector").
        kept_index: (K,) indices into the input batch of the kept samples.
        status: per input sample: "ok" | "fall" | "nan" | "error" | "residual" | "unfaithful" | a
            plugin's own name.
        diagnostics: per input sample, a dict of floats (NaN where not applicable).
        counts: number of inputs per status; sums to the batch size.
    """

    samples: Any
    kept_index: np.ndarray
    status: list[str]
    diagnostics: list[dict]
    counts: dict[str, int]

    @property
    def num_inputs(self) -> int:
        return len(self.status)

    @property
    def num_kept(self) -> int:
        return int(len(self.kept_index))

    def summary(self) -> dict[str, float]:
        """Flat dict for logging: acceptance rate, counts and the mean of every diagnostic."""
        return summarize([self])

    @staticmethod
    def merge(parts: Sequence["CorrectionResult"], offsets: Sequence[int], domain: str) -> "CorrectionResult":
        """Concatenate shard results (shard j started at input index ``offsets[j]``)."""
        status: list[str] = []
        diags: list[dict] = []
        kept: list[np.ndarray] = []
        samples: list = []
        for part, off in zip(parts, offsets):
            status.extend(part.status)
            diags.extend(part.diagnostics)
            kept.append(np.asarray(part.kept_index, dtype=np.int64) + off)
            if domain == "vector":
                samples.append(np.asarray(part.samples))
            else:
                samples.extend(part.samples)
        if domain == "vector":
            nonempty = [s for s in samples if s.shape[0]]
            out = np.concatenate(nonempty, axis=0) if nonempty else (samples[0] if samples else np.zeros((0,)))
        else:
            out = samples
        return CorrectionResult(
            samples=out,
            kept_index=np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64),
            status=status,
            diagnostics=diags,
            counts=count_status(status),
        )


def count_status(status: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in status:
        counts[s] = counts.get(s, 0) + 1
    return counts


def summarize(results: Sequence[CorrectionResult]) -> dict[str, float]:
    """Aggregate for logging (e.g. to MLflow): ``n``, ``kept``, ``acceptance_rate``,
    ``count_<status>``, ``rate_<status>`` and ``mean_<diagnostic>`` (NaNs ignored)."""
    status = [s for r in results for s in r.status]
    diags = [d for r in results for d in r.diagnostics]
    n = len(status)
    kept = sum(r.num_kept for r in results)
    out: dict[str, float] = {"n": float(n), "kept": float(kept), "acceptance_rate": kept / n if n else float("nan")}
    for s, c in sorted(count_status(status).items()):
        out[f"count_{s}"] = float(c)
        out[f"rate_{s}"] = c / n
    keys = sorted({k for d in diags for k in d})
    for k in keys:
        vals = np.array([float(d.get(k, math.nan)) for d in diags], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        out[f"mean_{k}"] = float(vals.mean()) if vals.size else float("nan")
    return out


def _finite(x: Any) -> bool:
    """True if a sample holds only finite numbers (Motion validates itself on construction)."""
    if x is None:
        return False
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return bool(np.all(np.isfinite(np.asarray(x, dtype=np.float64))))
    return True


def apply_policy(batch: Any, outcomes: Sequence[SampleOutcome], policy: str, domain: str) -> CorrectionResult:
    """Turn per-sample outcomes into a :class:`CorrectionResult` under `policy`.

    A kept value that is not finite is rejected instead and its status becomes "nan",
    so a NaN can never reach the output, whatever a (plugin) corrector returned."""
    if policy not in POLICIES:
        raise CorrectorError(f"policy {policy!r} is not one of {', '.join(POLICIES)}")
    status: list[str] = []
    diags: list[dict] = []
    kept_index: list[int] = []
    kept: list = []
    for i, out in enumerate(outcomes):
        st = out.status
        if st == STATUS_OK:
            value = out.corrected
        elif policy == "keep_raw":
            value = batch[i]
        elif policy == "keep_partial":
            value = out.partial
        else:
            value = None
        if value is not None and not _finite(value):
            log.warning("sample %d: corrector produced non-finite values; rejected", i)
            value = None
            st = STATUS_NAN
        diag = {k: float(v) for k, v in out.diagnostics.items()}
        diag["kept"] = 1.0 if value is not None else 0.0
        status.append(st)
        diags.append(diag)
        if value is not None:
            kept_index.append(i)
            kept.append(value)
    if domain == "vector":
        arr = np.asarray(batch)
        samples = np.stack([np.asarray(v, dtype=arr.dtype) for v in kept]) if kept else np.zeros((0,) + arr.shape[1:], arr.dtype)
    else:
        samples = kept
    return CorrectionResult(samples, np.asarray(kept_index, dtype=np.int64), status, diags, count_status(status))


def indexed_uniform(seed: int, offset: int, n: int, shape: tuple = ()) -> np.ndarray:
    """(n, *shape) uniforms where row i depends only on (seed, offset + i): a shard of a
    batch gets exactly the numbers it would get inside the whole batch."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x5CC1]))
    return rng.random((offset + n,) + tuple(shape))[offset:]


def indexed_normal(seed: int, offset: int, n: int, shape: tuple = ()) -> np.ndarray:
    """Standard normals with the same sharding invariance as :func:`indexed_uniform`."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x5CC2]))
    return rng.standard_normal((offset + n,) + tuple(shape))[offset:]


def sample_seed(seed: int, index: int) -> int:
    """A per-sample seed derived from (batch seed, global sample index)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(1)[0])


class Corrector(ABC):
    """Base class of every corrector (built-in or plugin).

    Subclasses set ``name`` and ``domain`` ("motion": batches are ``list[Motion]``;
    "vector": batches are arrays ``(N, ...)``) and implement :meth:`correct`. The
    constructor takes one plain, picklable dict (``self.config``), because that is what
    travels to every Ray worker. The common key ``policy`` selects the failure policy.

    Settings are declared one of two ways:

    * ``settings_class``: a dataclass of typed settings; the constructor parses the dict
      (minus ``policy``) into ``self.settings`` with the parser the experiment config uses,
      so an unknown key gets a "did you mean" error and a wrong type names the key. Every
      built-in does this.
    * ``config_keys``: just the accepted key names (a plugin reading its plain dict itself);
      None accepts anything.
    """

    name: str = "corrector"
    domain: str = "motion"
    #: Typed settings (a dataclass); parsed into :attr:`settings`. None: plain dict only.
    settings_class: type | None = None
    #: Config keys this corrector accepts besides ``policy`` (None = accept anything).
    #: Derived from :attr:`settings_class` when that is set.
    config_keys: tuple[str, ...] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("settings_class") is not None and "config_keys" not in cls.__dict__:
            cls.config_keys = field_names(cls.settings_class)

    def __init__(self, config: dict | None = None) -> None:
        config = dict(config or {})
        self.config = config
        self.policy = str(config.get("policy", "reject"))
        if self.policy not in POLICIES:
            raise CorrectorError(f"corrector {self.name}: policy {self.policy!r} is not one of {', '.join(POLICIES)}")
        settings = {k: v for k, v in config.items() if k != "policy"}
        self.settings: Any = None
        if self.settings_class is not None:
            self.settings = build_dataclass(self.settings_class, settings, error=CorrectorError,
                                            what=f"corrector {self.name} setting", lenient=True)
        elif self.config_keys is not None:
            known = sorted(set(self.config_keys) | {"policy"})
            unknown = sorted(set(settings) - set(self.config_keys))
            if unknown:
                close = difflib.get_close_matches(str(unknown[0]), known, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise CorrectorError(
                    f"corrector {self.name}: unknown setting(s) {', '.join(unknown)}{hint}; known: {', '.join(known)}"
                )

    def prepare(self, reference: Any) -> None:
        """Called once with real data (``list[Motion]`` or an array, matching ``domain``)
        before the first :meth:`correct`; correctors that need no reference ignore it."""

    @abstractmethod
    def correct(self, batch: Any, seed: int, *, offset: int = 0) -> CorrectionResult:
        """Correct a batch. Randomness for sample i must depend only on (seed, offset + i)
        (see :func:`indexed_uniform`, :func:`sample_seed`) so that results do not depend on
        how a batch is sharded; `offset` is the global index of ``batch[0]``."""

    def close(self) -> None:
        """Release resources (e.g. a physics client)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, config={self.config!r})"


def check_domain(corrector: Corrector, batch: Any) -> None:
    """Clear error when a batch of the wrong kind reaches a corrector."""
    if corrector.domain == "vector" and not isinstance(batch, np.ndarray):
        raise CorrectorError(f"corrector {corrector.name} works on arrays (N, ...), got {type(batch).__name__}")
    if corrector.domain == "motion" and isinstance(batch, np.ndarray):
        raise CorrectorError(f"corrector {corrector.name} works on lists of Motion clips, got an array")


def _take(batch: Any, start: int, stop: int) -> Any:
    return batch[start:stop] if isinstance(batch, np.ndarray) else list(batch[start:stop])


def _sanitized(corrector: Corrector, batch: Any, result: CorrectionResult) -> CorrectionResult:
    """Check a result against the contract; non-finite kept samples become rejected "nan"."""
    n = len(batch)
    name = getattr(corrector, "name", type(corrector).__name__)
    if not isinstance(result, CorrectionResult):
        raise CorrectorError(f"corrector {name}: correct() returned {type(result).__name__}, not a CorrectionResult")
    kept_index = np.asarray(result.kept_index, dtype=np.int64).reshape(-1)
    if len(result.status) != n or len(result.diagnostics) != n or len(result.samples) != len(kept_index) or (
            len(kept_index) and (kept_index.min() < 0 or kept_index.max() >= n or np.any(np.diff(kept_index) <= 0))):
        raise CorrectorError(
            f"corrector {name}: correct() broke the CorrectionResult contract for a batch of {n} "
            f"(status {len(result.status)}, diagnostics {len(result.diagnostics)}, samples {len(result.samples)}, "
            f"kept_index {kept_index.tolist()[:10]})")
    keep = [j for j in range(len(kept_index)) if _finite(result.samples[j])]
    if len(keep) == len(kept_index):
        return result
    status = list(result.status)
    diags = [dict(d) for d in result.diagnostics]
    for j in sorted(set(range(len(kept_index))) - set(keep)):
        i = int(kept_index[j])
        log.warning("corrector %s: sample %d has non-finite values; rejected", name, i)
        status[i] = STATUS_NAN
        diags[i]["kept"] = 0.0
    if isinstance(result.samples, np.ndarray):
        samples = result.samples[keep]
    else:
        samples = [result.samples[j] for j in keep]
    return CorrectionResult(samples, kept_index[keep], status, diags, count_status(status))


def correct_safely(corrector: Corrector, batch: Any, seed: int, *, offset: int = 0) -> CorrectionResult:
    """``corrector.correct`` with the guarantees the loop relies on, whatever a plugin does.

    * If ``correct`` raises on the batch, every sample is corrected alone (same per-sample
      randomness: offset + i); a sample that raises again is rejected with status "error"
      (the exception is logged) instead of failing the batch.
    * Every input has a status and a diagnostics row; a kept sample that is not finite is
      rejected with status "nan" — nothing non-finite ever reaches training data.
    * A result that breaks the contract (wrong lengths) is a :class:`CorrectorError`."""
    try:
        return _sanitized(corrector, batch, corrector.correct(batch, seed, offset=offset))
    except CorrectorError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin's bug must not sink a generation
        n = len(batch)
        if n <= 1:
            name = getattr(corrector, "name", type(corrector).__name__)
            log.warning("corrector %s: sample %d failed: %s: %s; rejected", name, offset, type(exc).__name__, exc)
            return CorrectionResult(_take(batch, 0, 0), np.zeros(0, np.int64), [STATUS_ERROR] * n,
                                    [{"kept": 0.0} for _ in range(n)], count_status([STATUS_ERROR] * n))
    parts = [correct_safely(corrector, _take(batch, i, i + 1), seed, offset=offset + i) for i in range(n)]
    return CorrectionResult.merge(parts, list(range(n)), "vector" if isinstance(batch, np.ndarray) else "motion")
