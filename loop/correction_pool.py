"""Correction of a batch fanned out over long-lived Ray actors (the only Ray user below the CLI).

Each actor builds its own corrector from the plain config (so one PyBullet client per
worker, loaded once) and corrects shards of ``batch_size`` samples. The driver keeps at most
``in_flight_per_worker`` shards queued per actor (bounded memory, yet no idle gaps), merges
results in input order, and — when an actor dies — replaces it and resubmits every shard it
held (up to ``max_retries`` times per shard). Shards carry their global offset so per-sample
randomness depends only on (seed, sample index), never on the sharding.

:func:`correct_batch` runs in-process (no Ray) for ``workers=0`` or small batches, which is
what unit tests and laptops use.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from typing import Any, Callable

import numpy as np

from sccl.correctors import CorrectionResult, Corrector, build_corrector
from sccl.correctors.base import correct_safely
from sccl.motion.errors import UserError

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


class CorrectionPoolError(UserError):
    """The pool cannot correct a batch (e.g. a shard failed on every retry)."""


def shards(n: int, batch_size: int) -> list[tuple[int, int]]:
    """[start, stop) ranges covering range(n) in order."""
    if batch_size < 1:
        raise CorrectionPoolError(f"batch_size must be >= 1, got {batch_size}")
    return [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]


def _domain(batch: Any) -> str:
    return "vector" if isinstance(batch, np.ndarray) else "motion"


def _take(batch: Any, start: int, stop: int) -> Any:
    return batch[start:stop] if isinstance(batch, np.ndarray) else list(batch[start:stop])


def correct_in_process(corrector: Corrector, batch: Any, seed: int, batch_size: int | None = None,
                       progress: Progress | None = None) -> CorrectionResult:
    """Correct shard by shard in this process (same results as the Ray pool)."""
    n = len(batch)
    ranges = shards(n, batch_size or max(n, 1)) if n else []
    parts = []
    for start, stop in ranges:
        parts.append(correct_safely(corrector, _take(batch, start, stop), seed, offset=start))
        if progress is not None:
            progress(stop, n)
    if not parts:
        parts = [correct_safely(corrector, _take(batch, 0, 0), seed, offset=0)]
    return CorrectionResult.merge(parts, [r[0] for r in ranges] or [0], _domain(batch))


class _Worker:
    """Ray actor body: one corrector (and for physics one PyBullet client) per process."""

    def __init__(self, name: str, config: dict, reference: Any) -> None:
        logging.basicConfig(level=logging.WARNING)
        self.corrector = build_corrector(name, config)
        if reference is not None:
            self.corrector.prepare(reference)

    def correct(self, batch: Any, seed: int, offset: int) -> CorrectionResult:
        return correct_safely(self.corrector, batch, seed, offset=offset)

    def pid(self) -> int:
        return os.getpid()


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start (or connect to) Ray unless this process already did. ``address`` (or the
    ``RAY_ADDRESS`` environment variable) joins an existing cluster."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


class CorrectionPool:
    """Long-lived correction actors, reusable across generations.

    >>> pool = CorrectionPool("physics", {}, num_workers=2)       # doctest: +SKIP
    >>> result = pool.correct(clips, seed=0)                       # doctest: +SKIP
    >>> pool.close()                                               # doctest: +SKIP
    """

    def __init__(self, name: str, config: dict | None = None, num_workers: int = 2, *, reference: Any = None,
                 batch_size: int = 8, in_flight_per_worker: int = 2, max_retries: int = 2,
                 ray_address: str | None = None, actor_num_cpus: float = 1.0) -> None:
        import ray

        if num_workers < 1:
            raise CorrectionPoolError(f"num_workers must be >= 1, got {num_workers}")
        build_corrector(name, config)  # fail fast, in the driver, on a bad name or config
        ensure_ray(ray_address)
        total = ray.cluster_resources().get("CPU", num_workers)
        if actor_num_cpus > 0 and num_workers * actor_num_cpus > total:
            clamped = max(1, int(total // actor_num_cpus))
            log.warning("correction pool: %d workers need %.0f CPUs but the cluster has %.0f; using %d",
                        num_workers, num_workers * actor_num_cpus, total, clamped)
            num_workers = clamped
        self.name = name
        self.config = dict(config or {})
        self.batch_size = batch_size
        self.in_flight_per_worker = max(1, in_flight_per_worker)
        self.max_retries = max_retries
        self._ray = ray
        self._actor_cls = ray.remote(num_cpus=actor_num_cpus, max_restarts=0, max_task_retries=0)(_Worker)
        self._reference = ray.put(reference) if reference is not None else None
        self.actors: list = [self._spawn() for _ in range(num_workers)]
        self.replaced = 0

    def _spawn(self):
        return self._actor_cls.remote(self.name, self.config, self._reference)

    @property
    def num_workers(self) -> int:
        return len(self.actors)

    def correct(self, batch: Any, seed: int, progress: Progress | None = None) -> CorrectionResult:
        """Correct `batch` across the actors; results in input order."""
        ray = self._ray
        from ray.exceptions import ActorDiedError, RayActorError

        n = len(batch)
        ranges = shards(n, self.batch_size) if n else [(0, 0)]
        results: list[CorrectionResult | None] = [None] * len(ranges)
        attempts = [0] * len(ranges)
        todo: deque[int] = deque(range(len(ranges)))
        in_flight: dict = {}  # ObjectRef -> (shard index, actor slot)
        load = [0] * len(self.actors)
        payload = [ray.put(_take(batch, s, e)) for s, e in ranges]
        done = 0
        t0 = time.perf_counter()
        while todo or in_flight:
            for slot in range(len(self.actors)):
                while todo and load[slot] < self.in_flight_per_worker:
                    j = todo.popleft()
                    ref = self.actors[slot].correct.remote(payload[j], seed, ranges[j][0])
                    in_flight[ref] = (j, slot)
                    load[slot] += 1
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            ref = ready[0]
            j, slot = in_flight.pop(ref)
            load[slot] -= 1
            try:
                results[j] = ray.get(ref)
            except (RayActorError, ActorDiedError) as exc:
                self._replace(slot, in_flight, load, todo, attempts, j, exc)
                continue
            done += ranges[j][1] - ranges[j][0]
            if progress is not None:
                progress(done, n)
        log.debug("correction pool: %d samples in %.2fs on %d workers", n, time.perf_counter() - t0, len(self.actors))
        return CorrectionResult.merge(results, [r[0] for r in ranges], _domain(batch))

    def _replace(self, slot: int, in_flight: dict, load: list, todo: deque, attempts: list, j: int, exc: Exception) -> None:
        """Actor `slot` died: start a new one and requeue every shard it held."""
        lost = [j] + [k for ref, (k, s) in list(in_flight.items()) if s == slot]
        for ref, (k, s) in list(in_flight.items()):
            if s == slot:
                del in_flight[ref]
        for k in lost:
            attempts[k] += 1
            if attempts[k] > self.max_retries:
                raise CorrectionPoolError(f"correction shard {k} failed {attempts[k]} times (worker died: {exc})")
        log.warning("correction worker %d died (%s); replacing it and retrying %d shard(s)", slot,
                    type(exc).__name__, len(lost))
        try:
            self._ray.kill(self.actors[slot])
        except Exception:
            pass
        self.actors[slot] = self._spawn()
        load[slot] = 0
        self.replaced += 1
        todo.extendleft(sorted(lost, reverse=True))

    def close(self) -> None:
        """End this pool's actors (and nothing else: Ray itself keeps running)."""
        for actor in self.actors:
            try:
                self._ray.kill(actor)
            except Exception:  # pragma: no cover - already dead
                pass
        self.actors = []

    def __enter__(self) -> "CorrectionPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def correct_batch(corrector_name: str, corrector_config: dict | None, batch: Any, seed: int,
                  workers: int | None = None, batch_size: int = 8, prepare_reference: Any = None,
                  progress: Progress | None = None) -> CorrectionResult:
    """Correct a batch once: in-process for ``workers=0`` (or ``None`` with a batch of at
    most two shards), otherwise on a temporary :class:`CorrectionPool` of `workers` actors
    (``None``: one per CPU). Use a :class:`CorrectionPool` directly to reuse actors across
    generations."""
    n = len(batch)
    if workers is None:
        workers = 0 if n <= 2 * batch_size else (os.cpu_count() or 1)
    if workers == 0:
        corrector = build_corrector(corrector_name, corrector_config)
        try:
            if prepare_reference is not None:
                corrector.prepare(prepare_reference)
            return correct_in_process(corrector, batch, seed, batch_size, progress)
        finally:
            corrector.close()
    with CorrectionPool(corrector_name, corrector_config, workers, reference=prepare_reference,
                        batch_size=batch_size) as pool:
        return pool.correct(batch, seed, progress)
