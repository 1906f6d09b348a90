"""Running a sweep's arms as Ray core tasks: connecting to (or starting) Ray, the bodies of the
generation-0 and arm tasks, and the scheduling loop that places each arm in its own placement
group. Why Ray core and not Ray Tune: docs/ARCHITECTURE.md, "Ray core, not Ray Tune"."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sccl.loop.arm import ArmRunner, train_generation0
from sccl.loop.config import ArmSpec, ExperimentConfig
from sccl.loop.interrupts import stop_like_ctrl_c_on_sigterm
from sccl.loop.placement import (alive_nodes, bundles as _bundles, check_fits_cluster, check_requests_feasible,
                                 gen0_cpus, task_device)
from sccl.loop.progress import Progress
from sccl.loop.realdata import load_real_data
from sccl.loop.summary import SweepResult

if TYPE_CHECKING:  # pragma: no cover
    from sccl.loop.sweep import Driver

log = logging.getLogger(__name__)


def init_ray(cfg: ExperimentConfig) -> bool:
    """Connect to RAY_ADDRESS / ray.address, or start an embedded local Ray. Returns True
    if this call started Ray (and so should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                              "configure_logging": True, "log_to_driver": True}
    if address:
        log.info("connecting to Ray cluster at %s", address)
        ray.init(address=address, **kwargs)
    else:
        # Ray >= 2.5x turns token authentication on for a new local cluster (and writes
        # ~/.ray/auth_token) and warns about it on every start. For an embedded cluster that
        # lives as long as this command, that is the right default and the warning is noise;
        # the warning alone is dropped, the authentication stays.
        token_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
        token_log.addFilter(_drop_default_token_notice)
        try:
            ray.init(num_cpus=cfg.ray.num_cpus, **kwargs)
        finally:
            token_log.removeFilter(_drop_default_token_notice)
    stop_like_ctrl_c_on_sigterm()  # ray.init installed a handler that dumps a stack and exits
    return True


def _drop_default_token_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


def total_need(arm: ArmSpec) -> dict[str, float]:
    """Everything an arm's placement group reserves, summed (it must fit one node)."""
    need: dict[str, float] = {}
    for b in _bundles(arm.config):
        for k, v in b.items():
            need[k] = need.get(k, 0.0) + v
    return need


def set_threads(cpus: float) -> None:
    import torch

    torch.set_num_threads(max(1, int(round(cpus))))


def _task_device(spec: ArmSpec, who: str) -> str | None:
    """The arm's torch device inside its Ray task: follows the GPUs Ray reserved for it (see
    :mod:`loop.placement`). None for generators without a device (the Gaussian toys)."""
    from sccl.generators import generator_class

    if not generator_class(spec.config.generator.name).uses_device:
        return None
    return task_device(spec.config.generator.params.get("device", "auto"), who)


def _gen0_task(spec: ArmSpec, out: str, cpus: float) -> str:
    set_threads(cpus)
    real = load_real_data(spec.config.data, spec.config.seed)
    gen = train_generation0(spec, real, device=_task_device(spec, f"generation 0 of {spec.name}"))
    gen.save(Path(out))
    return out


def _arm_task(spec: ArmSpec, run_dir: str, gen0: str | None) -> dict[str, Any]:
    set_threads(spec.config.ray.arm_cpus)
    return ArmRunner(spec, Path(run_dir), Path(gen0) if gen0 else None,
                     device=_task_device(spec, f"arm {spec.name}")).run()


def run_on_ray(driver: "Driver", pending: list[ArmSpec], progress: Progress, result: SweepResult) -> None:
    """Generation 0 of every gen0 key, then every pending arm, as Ray tasks (each arm in its
    own placement group, see :mod:`sccl.loop.placement`); arms that fail are recorded in
    ``result.failed``, records are delivered and progress drawn while they run."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    owns = init_ray(driver.cfg)
    try:
        check_fits_cluster(pending)
        driver._prepare_shared(pending, result)
        gen0_remote = ray.remote(_gen0_task)
        arm_remote = ray.remote(_arm_task)
        gen0_refs = []
        jobs = driver._gen0_jobs(pending)
        # generation 0 runs before any arm: spread the CPUs of the largest node that can
        # hold the request (its GPU share included) over the jobs (see loop.placement)
        nodes = alive_nodes()
        gen0_needs: dict[Any, tuple[str, dict[str, float]]] = {}
        for key, arm in jobs.items():
            cpus = gen0_cpus(arm.config, len(jobs), nodes)
            opts = {"num_cpus": cpus, "num_gpus": arm.config.ray.arm_gpus}
            ref = gen0_remote.options(**opts).remote(arm, str(driver.gen0_path(arm)), cpus)
            gen0_refs.append(ref)
            gen0_needs[ref] = (f"generation 0 of arm {arm.name}", {"CPU": cpus, "GPU": arm.config.ray.arm_gpus})
        last_check = time.time()
        while gen0_refs:
            done, gen0_refs = ray.wait(gen0_refs, timeout=1.0)
            for ref in done:
                ray.get(ref)
            if time.time() - last_check > 10.0:  # a node that left must not leave us waiting for ever
                check_requests_feasible([gen0_needs[r] for r in gen0_refs])
                last_check = time.time()
            progress.update({a.name: {"phase": "gen0", "generation": 0} for a in pending})
        refs: dict[Any, tuple[ArmSpec, Any]] = {}
        # longest arms first (physics correction, then more synthetic data), so that on a
        # small machine the short arms fill the gaps instead of a long one running alone last
        for arm in sorted(pending, key=lambda a: (a.config.corrector.name in ("none",),
                                                 -a.config.synthetic_ratio)):
            pg = placement_group(_bundles(arm.config), strategy="PACK")
            strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0,
                                                        placement_group_capture_child_tasks=True)
            opts = {"num_cpus": max(arm.config.ray.arm_cpus, 0.01), "num_gpus": arm.config.ray.arm_gpus,
                    "scheduling_strategy": strategy, "max_retries": 0}
            ref = arm_remote.options(**opts).remote(arm, str(driver.run_dir), str(driver.gen0_path(arm)))
            refs[ref] = (arm, pg)
        while refs:
            done, _ = ray.wait(list(refs), timeout=1.0)
            if not done and time.time() - last_check > 10.0:  # see the generation-0 loop
                check_requests_feasible([(f"arm {a.name}", total_need(a)) for a, _ in refs.values()])
                last_check = time.time()
            for ref in done:
                arm, pg = refs.pop(ref)
                try:
                    result.timings[arm.name] = ray.get(ref)["timings"]
                except Exception as exc:  # noqa: BLE001
                    cause = getattr(exc, "cause", None) or exc
                    log.error("arm %s failed: %s: %s", arm.name, type(cause).__name__, cause)
                    result.failed[arm.name] = f"{type(cause).__name__}: {cause}"
                remove_placement_group(pg)
            driver.deliver()
            progress.update(driver.statuses())
    finally:
        if owns:
            ray.shutdown()
