"""GPU-cluster correctness without a GPU (issue 18): an arm's device follows its Ray
resources, the driver validates a GPU sweep on a CPU-only head, resources are sized and
checked per node, ``ray.arm_gpus`` is validated, checkpoints move between devices.

Ray's accounting is exercised on a real local Ray started with fake GPUs
(``ray.init(num_gpus=2)``, Ray's documented way to schedule GPU tasks without GPUs): Ray then
assigns GPU ids to tasks exactly as on a GPU node. The per-node planning functions take node
resource lists in the format of ``ray.nodes()[i]["Resources"]``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from sccl.loop.config import ConfigError, config_from_dict, expand_arms

REPO = Path(__file__).resolve().parents[1]


def paper_grid(*overrides: str):
    raw = yaml.safe_load((REPO / "configs" / "paper_grid.yaml").read_text())
    return config_from_dict(raw, list(overrides))


# --------------------------------------------------------------------- ray.arm_gpus (item 4)
@pytest.mark.parametrize("value", [0, 0.25, 0.5, 1, 1.0])
def test_arm_gpus_accepts_fractions_and_one(value):
    assert paper_grid(f"ray.arm_gpus={value}").ray.arm_gpus == value


@pytest.mark.parametrize("value,why", [(2, "more than one GPU per arm is refused"), (1.5, "a fraction <= 1"),
                                        (-0.5, "a fraction <= 1"), (".nan", "a fraction <= 1"),
                                        ("true", "expected a number")])
def test_arm_gpus_rejects_the_rest_naming_the_key(value, why):
    with pytest.raises(ConfigError, match=r"'ray\.arm_gpus'.*" + why.replace("(", r"\(")):
        paper_grid(f"ray.arm_gpus={value}")


# ------------------------------------------------------------ device vs resources (items 1, 2)
def test_device_checks_against_the_arms_resources():
    from sccl.loop.placement import check_device

    check_device(paper_grid("generator.params.device=cuda"))  # arm_gpus 0.25: sees one GPU, cuda:0
    check_device(paper_grid("generator.params.device=cuda:0"))
    check_device(paper_grid("ray.arm_gpus=0", "generator.params.device=cpu"))
    with pytest.raises(ConfigError, match=r"'generator\.params\.device'.*'cuda:1'.*sees 1 GPU"):
        check_device(paper_grid("generator.params.device=cuda:1"))
    with pytest.raises(ConfigError, match=r"'generator\.params\.device'.*ray\.arm_gpus is 0"):
        check_device(paper_grid("ray.arm_gpus=0", "generator.params.device=cuda"))
    with pytest.raises(ConfigError, match=r"'generator\.params\.device'.*not a torch device"):
        check_device(paper_grid("generator.params.device=gpu0"))


def test_paper_grid_validates_on_a_cpu_only_head(tmp_path):
    """The driver validates a GPU sweep without touching a GPU: an explicit ``cuda`` device
    is checked against the arms' resources, and the generator is built on CPU (before, a
    CPU-only head refused the sweep and a GPU head took a CUDA context for the whole run)."""
    import torch

    from sccl.loop.sweep import Driver

    assert not torch.cuda.is_available()  # what this test is about; true on the CI machines
    cfg = paper_grid(f"output_dir={tmp_path / 'run'}", "generator.params.device=cuda")
    driver = Driver(cfg)
    assert len(driver.arms) == 27  # 3 baseline seeds + 2 arms x 4 ratios x 3 seeds
    driver.validate()
    bad = Driver(paper_grid(f"output_dir={tmp_path / 'run'}", "generator.params.device=cuda:1"))
    with pytest.raises(ConfigError, match="cuda:1"):
        bad.validate()


def test_arm_device_rule():
    from sccl.loop.placement import arm_device

    assert arm_device("auto", []) == "cpu"
    assert arm_device(None, []) == "cpu"
    assert arm_device("cpu", []) == "cpu"
    assert arm_device("auto", ["3"]) == "cuda"
    assert arm_device("cuda:0", [3]) == "cuda:0"
    assert arm_device("cpu", [3]) == "cpu"
    with pytest.raises(ConfigError, match="reserved no GPU"):
        arm_device("cuda", [])
    with pytest.raises(ConfigError, match="reserved 1 GPU"):
        arm_device("cuda:1", [0])


# ------------------------------------------------------------------ real Ray, fake GPUs
@pytest.fixture(scope="module")
def ray_fake_gpus():
    """A local Ray whose node advertises 2 GPUs (none exist): Ray assigns ids and sets
    ``CUDA_VISIBLE_DEVICES`` exactly as on a GPU node. A Ray already started by the session
    (without GPUs) is restarted around this module."""
    import ray

    was = ray.is_initialized()
    if was:
        ray.shutdown()
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
    if was:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)


def test_arm_device_follows_ray_resources(ray_fake_gpus):
    """``arm_gpus: 0`` means CPU even on a node with GPUs (Ray ≥ 2.4x leaves the GPUs visible
    to zero-GPU tasks); a GPU share means the reserved GPU, which the task sees as ``cuda``."""
    from sccl.loop.sweep import _task_device  # what _arm_task and _gen0_task run on

    ray = ray_fake_gpus
    arm = expand_arms(paper_grid())[-1]
    probe = ray.remote(_task_device)
    ids = ray.remote(ray.get_gpu_ids)
    assert ray.get(ids.options(num_cpus=0.1, num_gpus=0).remote()) == []
    assert ray.get(probe.options(num_cpus=0.1, num_gpus=0).remote(arm, "probe")) == "cpu"
    assert len(ray.get(ids.options(num_cpus=0.1, num_gpus=0.25).remote())) == 1
    assert ray.get(probe.options(num_cpus=0.1, num_gpus=0.25).remote(arm, "probe")) == "cuda"
    # eight quarter-GPU arms fill both GPUs: Ray's accounting, each sees its GPU as cuda
    refs = [probe.options(num_cpus=0.01, num_gpus=0.25).remote(arm, "probe") for _ in range(8)]
    assert set(ray.get(refs)) == {"cuda"}
    explicit = expand_arms(paper_grid("generator.params.device=cuda"))[0]
    with pytest.raises(Exception, match="reserved no GPU"):
        ray.get(probe.options(num_cpus=0.1, num_gpus=0, max_retries=0).remote(explicit, "probe"))


def test_fits_check_uses_the_connected_cluster(ray_fake_gpus):
    from sccl.loop.placement import alive_nodes, check_fits_cluster

    nodes = alive_nodes()
    assert nodes and nodes[0]["GPU"] == 2
    check_fits_cluster(expand_arms(paper_grid("ray.arm_cpus=1", "ray.correction_workers=1"))[:3])
    with pytest.raises(ConfigError, match=r"needs 6 CPU, 0\.25 GPU on one node"):
        check_fits_cluster(expand_arms(paper_grid())[-1:])  # self_correcting: 2 + 4 x 1 CPUs


# ------------------------------------------------------------- per-node planning (item 3)
CPU_BIG = {"CPU": 64.0, "memory": 1e11}
GPU_SMALL = {"CPU": 8.0, "GPU": 1.0, "memory": 1e11}


def test_gen0_cpus_are_sized_from_nodes_that_can_hold_the_request():
    """The largest node has no GPU: sizing gen-0 from it asked for 64/2 CPUs plus a GPU
    share, which no node has, and the driver then waited for ever."""
    from sccl.loop.placement import gen0_cpus

    cfg = expand_arms(paper_grid())[0].config
    assert cfg.ray.arm_gpus > 0
    assert gen0_cpus(cfg, 2, [CPU_BIG, GPU_SMALL]) == 4.0  # 8 CPUs of the GPU node / 2 jobs
    cpu_cfg = expand_arms(paper_grid("ray.arm_gpus=0"))[0].config
    assert gen0_cpus(cpu_cfg, 2, [CPU_BIG, GPU_SMALL]) == 32.0
    with pytest.raises(ConfigError, match=r"generation 0 needs 2 CPU, 0\.25 GPU on one node"):
        gen0_cpus(cfg, 1, [CPU_BIG])


def test_fit_check_is_per_node_not_maxima_over_different_nodes():
    """6 CPUs + a GPU share: the CPU node has the CPUs, the GPU node the GPU, none has both."""
    from sccl.loop.placement import check_fits_cluster

    arm = expand_arms(paper_grid())[-1]  # self_correcting: 2 + 4 x 1 CPUs and 0.25 GPU
    small_gpu = {"CPU": 4.0, "GPU": 1.0}
    with pytest.raises(ConfigError, match=r"arm .*needs 6 CPU, 0\.25 GPU on one node.*64 CPU"):
        check_fits_cluster([arm], [CPU_BIG, small_gpu])
    check_fits_cluster([arm], [CPU_BIG, GPU_SMALL])


def test_a_request_that_no_node_can_hold_any_more_fails():
    from sccl.loop.placement import check_requests_feasible

    check_requests_feasible([("generation 0 of arm a", {"CPU": 4.0, "GPU": 0.5})], [GPU_SMALL])
    with pytest.raises(ConfigError, match=r"generation 0 of arm a needs 4 CPU, 0\.5 GPU"):
        check_requests_feasible([("generation 0 of arm a", {"CPU": 4.0, "GPU": 0.5})], [CPU_BIG])


# ------------------------------------------------------------ portable checkpoints (item 5)
def _tiny_trained():
    from sccl.generators import build_generator

    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 8, 62)).astype(np.float32)
    y = np.arange(16) % 2
    g = build_generator("diffusion", {"preset": "tiny", "device": "cpu", "label_names": ["a", "b"],
                                      "sample_steps": 3, "keep_optimizer": True})
    g.fit(x, y, 3, seed=0)
    return g, x, y


def test_checkpoint_written_on_a_gpu_loads_on_cpu(tmp_path):
    """A checkpoint of a ``cuda`` run (as written before this fix, device in its config)
    loads on a CPU-only machine, onto the loading side's device."""
    import torch

    from sccl.generators import load_generator
    from sccl.generators.base import save_state

    g, x, y = _tiny_trained()
    state = g.state_dict()
    assert "device" not in state["config"]  # new checkpoints do not pin a device
    state["config"]["device"] = "cuda"  # what a GPU run stored before
    path = save_state(state, tmp_path / "gpu.safetensors")
    loaded = load_generator(path)
    assert loaded.device == torch.device("cpu")
    assert np.array_equal(loaded.sample(4, np.array([0, 1, 0, 1]), seed=5), g.sample(4, np.array([0, 1, 0, 1]), seed=5))
    loaded.fit(x, y, 2, seed=1)  # the optimiser state moved too


def test_arm_resumes_a_gpu_checkpoint_on_its_own_device(tmp_path):
    """The arm loads onto the device its resources give it, whatever wrote the checkpoint."""
    import torch

    from sccl.generators.base import save_state
    from sccl.loop.arm import ArmRunner

    g, _, _ = _tiny_trained()
    state = g.state_dict()
    state["config"]["device"] = "cuda"
    path = save_state(state, tmp_path / "gen.safetensors")
    arm = expand_arms(paper_grid("generator.preset=tiny"))[0]
    for device in ("cpu", None):
        loaded = ArmRunner(arm, tmp_path, device=device)._load_generator(path)
        assert loaded.device == torch.device("cpu")


@pytest.mark.slow  # two raylets: ~20-30 s on 2 busy cores
def test_heterogeneous_two_node_cluster():
    """A real two-node Ray cluster (``ray.cluster_utils.Cluster``, Ray's own multi-node test
    harness): a CPU-only node larger than the GPU node. Sizing from the largest node asked for
    4 CPUs + a GPU share that no node has (the driver then waited for ever), and the old fit
    check combined the CPU node's CPUs with the GPU node's GPU."""
    import ray
    from ray.cluster_utils import Cluster

    from sccl.loop.placement import alive_nodes, check_fits_cluster, gen0_cpus

    was = ray.is_initialized()
    if was:
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "num_gpus": 0})
    try:
        cluster.add_node(num_cpus=2, num_gpus=1)
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        cluster.wait_for_nodes()
        nodes = alive_nodes()
        assert sorted((n.get("CPU"), n.get("GPU", 0.0)) for n in nodes) == [(2.0, 1.0), (4.0, 0.0)]
        arm = expand_arms(paper_grid("ray.arm_cpus=1", "ray.correction_workers=2"))[-1]  # 3 CPUs + 0.25 GPU
        with pytest.raises(ConfigError, match=r"needs 3 CPU, 0\.25 GPU on one node"):
            check_fits_cluster([arm])
        cpus = gen0_cpus(arm.config, 1, nodes)
        assert cpus == 2.0
        probe = ray.remote(ray.get_gpu_ids).options(num_cpus=cpus, num_gpus=arm.config.ray.arm_gpus)
        assert len(ray.get(probe.remote(), timeout=60)) == 1  # schedulable: lands on the GPU node
    finally:
        ray.shutdown()
        cluster.shutdown()
        if was:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
