"""Where an arm runs: its torch device from its Ray resources, and per-node resource planning.

Why this exists: Ray ≥ 2.4x leaves ``CUDA_VISIBLE_DEVICES`` untouched for a task that reserves
no GPU, so ``device: auto`` inside such a task would see every GPU of the node and take
``cuda:0`` outside Ray's accounting (GPU 0 runs out of memory, the others idle); older Ray
hid the GPUs and the same config silently ran on CPU. The rule here is version-independent:
an arm's device follows what Ray *reserved* for it (``ray.get_gpu_ids()``), never what the
node happens to have.

Why per node: a bundle must fit on one machine. Taking the largest CPU count and the largest
GPU count over *different* nodes accepts requests that no node can hold, and Ray then keeps
them pending for ever. Every check and every size below looks at one node at a time, and only
at nodes that can hold the whole request.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterable

from sccl.loop.config import ArmSpec, ConfigError, ExperimentConfig

log = logging.getLogger(__name__)

#: Slack for float resource arithmetic (Ray itself works in 1e-4 units).
EPS = 1e-9


# ------------------------------------------------------------------------------ devices
def _parse_device(name: Any, key: str) -> tuple[str, int | None]:
    """``"auto"``/None → ("auto", None); ``"cpu"``; ``"cuda"``/``"cuda:k"`` → ("cuda", k)."""
    if name in (None, "auto"):
        return "auto", None
    if not isinstance(name, str):
        raise ConfigError(f"config key '{key}': expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}")
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"config key '{key}': {name!r} is not a torch device "
                          "(expected 'auto', 'cpu', 'cuda' or 'cuda:N')") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"config key '{key}': device type {dev.type!r} is not supported on a Ray cluster "
                          "(expected 'auto', 'cpu', 'cuda' or 'cuda:N')")
    return dev.type, dev.index


def visible_gpus(arm_gpus: float) -> int:
    """How many GPUs a task reserving ``arm_gpus`` sees: Ray sets ``CUDA_VISIBLE_DEVICES`` to
    the GPUs it assigned, one for any fraction."""
    return int(math.ceil(arm_gpus - EPS)) if arm_gpus > EPS else 0


def check_device(cfg: ExperimentConfig) -> None:
    """Refuse (on the driver, before any compute) a generator device that the arm's Ray
    resources cannot give it. Needs no GPU on the driver: only the config is read.

    * ``cuda`` with ``ray.arm_gpus: 0`` would use a GPU that Ray never reserved;
    * ``cuda:k`` needs ``k`` < the number of GPUs the arm sees (1 for any fraction), since
      inside the task the reserved GPU is renumbered ``cuda:0``.

    Without Ray the arms run in this process, so the device must exist here."""
    key = "generator.params.device"
    kind, index = _parse_device(cfg.generator.params.get("device", "auto"), key)
    if not cfg.ray.enabled:
        if kind == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ConfigError(f"config key '{key}': {cfg.generator.params['device']!r} but ray.enabled is "
                                  "false and CUDA is not available on this machine")
            if index is not None and index >= torch.cuda.device_count():
                raise ConfigError(f"config key '{key}': {cfg.generator.params['device']!r} but this machine has "
                                  f"{torch.cuda.device_count()} GPU(s)")
        return
    seen = visible_gpus(cfg.ray.arm_gpus)
    if kind == "cuda" and seen == 0:
        raise ConfigError(
            f"config key '{key}': {cfg.generator.params['device']!r} but ray.arm_gpus is 0, so the arm would "
            "use a GPU that Ray never reserved for it; set ray.arm_gpus (e.g. 0.25 to put four arms on a GPU) "
            "or use device: auto"
        )
    if kind == "cuda" and index is not None and index >= seen:
        raise ConfigError(
            f"config key '{key}': {cfg.generator.params['device']!r} but an arm reserves ray.arm_gpus = "
            f"{cfg.ray.arm_gpus:g}, so its worker sees {seen} GPU(s) numbered from cuda:0 "
            "(Ray renumbers the reserved GPU); use device: auto or cuda"
        )


def arm_device(requested: Any, gpu_ids: list[Any], who: str = "arm") -> str:
    """The torch device a Ray task should use, from the device the config asks for and the
    GPU ids Ray assigned to the task (``ray.get_gpu_ids()``).

    No GPU reserved → ``"cpu"`` (logged), whatever the node has; a GPU reserved and
    ``auto`` → ``"cuda"`` (Ray has made the reserved GPU ``cuda:0``)."""
    kind, index = _parse_device(requested, "generator.params.device")
    if not gpu_ids:
        if kind == "cuda":
            raise ConfigError(f"{who}: generator.params.device is {requested!r} but Ray reserved no GPU for it "
                              "(ray.arm_gpus is 0)")
        if kind == "auto":
            log.info("%s: no GPU reserved by Ray (ray.arm_gpus = 0): running on CPU", who)
        return "cpu"
    if kind == "cpu":
        log.warning("%s: Ray reserved GPU(s) %s but generator.params.device is 'cpu'; the GPU stays idle",
                    who, gpu_ids)
        return "cpu"
    if kind == "cuda" and index is not None:
        if index >= len(gpu_ids):
            raise ConfigError(f"{who}: generator.params.device is {requested!r} but Ray reserved "
                              f"{len(gpu_ids)} GPU(s) for it (visible as cuda:0..cuda:{len(gpu_ids) - 1})")
        return f"cuda:{index}"
    log.info("%s: running on the GPU Ray reserved (id %s)", who, gpu_ids[0])
    return "cuda"


def task_device(requested: Any, who: str = "arm") -> str:
    """:func:`arm_device` for the calling Ray task."""
    import ray

    return arm_device(requested, list(ray.get_gpu_ids()), who)


# --------------------------------------------------------------------------- resources
def bundles(cfg: ExperimentConfig) -> list[dict[str, float]]:
    """The placement-group bundles of one arm: its own task, then its correction actors."""
    head: dict[str, float] = {"CPU": max(cfg.ray.arm_cpus, 0.01)}
    if cfg.ray.arm_gpus > 0:
        head["GPU"] = cfg.ray.arm_gpus
    out = [head]
    if cfg.corrector.name != "none" and cfg.ray.correction_workers > 0 and cfg.ray.worker_cpus > 0:
        out += [{"CPU": cfg.ray.worker_cpus}] * cfg.ray.correction_workers
    return out


def alive_nodes() -> list[dict[str, float]]:
    """Total resources of every alive node of the connected Ray cluster."""
    import ray

    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def _holds(node: dict[str, float], need: dict[str, float]) -> bool:
    return all(node.get(k, 0.0) + EPS >= v for k, v in need.items() if v > 0)


def _total(parts: Iterable[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in parts:
        for k, v in p.items():
            out[k] = out.get(k, 0.0) + v
    return out


def _describe(res: dict[str, float]) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in sorted(res.items()) if v > 0) or "nothing"


def check_fits_cluster(arms: list[ArmSpec], nodes: list[dict[str, float]] | None = None) -> None:
    """Refuse (before any compute) an arm whose bundles no single node can hold together.
    ``nodes``: per-node resources (default: the connected cluster's alive nodes)."""
    nodes = alive_nodes() if nodes is None else nodes
    for arm in arms:
        need = _total(bundles(arm.config))
        if not any(_holds(n, need) for n in nodes):
            have = "; ".join(_describe(n) for n in nodes) or "no alive node"
            raise ConfigError(
                f"arm {arm.name}: needs {_describe(need)} on one node (ray.arm_cpus + ray.arm_gpus, plus "
                f"ray.correction_workers x ray.worker_cpus), but no node has that (nodes: {have}); lower "
                "ray.correction_workers, ray.worker_cpus or ray.arm_cpus, or add a larger node"
            )


def gen0_cpus(cfg: ExperimentConfig, jobs: int, nodes: list[dict[str, float]]) -> float:
    """CPUs for one generation-0 task: generation 0 runs before any arm, so its jobs share
    the CPUs of the largest node that can hold one (its GPU share included); a shared gen-0
    model on a laptop gets every core. A CPU-only node larger than every GPU node is not
    counted for a GPU request (the request would never be scheduled there)."""
    base = max(cfg.ray.arm_cpus, 0.01)
    need = {"CPU": base, "GPU": cfg.ray.arm_gpus}
    fitting = [n.get("CPU", 0.0) for n in nodes if _holds(n, need)]
    if not fitting:
        raise ConfigError(f"generation 0 needs {_describe(need)} on one node, but no node has that "
                          f"(nodes: {'; '.join(_describe(n) for n in nodes) or 'no alive node'})")
    return max(base, float(int(max(fitting) // max(1, jobs))))


def check_requests_feasible(requests: list[tuple[str, dict[str, float]]],
                            nodes: list[dict[str, float]] | None = None) -> None:
    """Raise if any pending ``(what, resources)`` request fits no alive node any more (a node
    left the cluster): waiting for it would never end."""
    nodes = alive_nodes() if nodes is None else nodes
    for what, need in requests:
        if not any(_holds(n, need) for n in nodes):
            raise ConfigError(f"{what} needs {_describe(need)} on one node, but no alive node has that any more "
                              f"(nodes: {'; '.join(_describe(n) for n in nodes) or 'none'})")
