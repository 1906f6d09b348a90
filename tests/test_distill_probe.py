"""bench/distill_search.py: the probe that clones the honest search into a rollout-free policy.

Real PyBullet and real torch; tiny sizes. What is pinned: the policy file's numpy forward pass
is the trained network; in policy mode the simulator runs no rollout at all while every
window's targets carry the policy's offsets; in a DAgger round the search labels every window
while the policy's offsets are what the body executes."""

from __future__ import annotations

import numpy as np
import pytest

from sccl.motion.deepmimic import bundled_motion_dir, read_clip
from sccl.simulators import HumanoidSim, ground_align


@pytest.fixture()
def probe(monkeypatch, bench_script):
    from sccl.simulators import sampling

    monkeypatch.setattr(sampling, "SamplingPlanner", sampling.SamplingPlanner)  # restored after the test
    return bench_script("distill_search")


def test_policy_file_reproduces_the_trained_network(probe, tmp_path):
    import argparse

    import torch

    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 6))
    y = np.tanh(x[:, :2] @ np.array([[0.3, -0.2], [0.1, 0.4]]))  # a smooth target the MLP can fit
    np.savez(tmp_path / "d.npz", X=x, Y=y)
    out = probe.train(argparse.Namespace(data=[str(tmp_path / "d.npz")], out=str(tmp_path / "p.npz"), epochs=30,
                                         ridge=1.0, weight_decay=0.0))
    assert out["held_out_mse"]["mlp"] < out["held_out_mse"]["zero"]
    data = np.load(tmp_path / "p.npz")
    hidden = probe.HIDDEN
    net = torch.nn.Sequential(torch.nn.Linear(6, hidden), torch.nn.ELU(), torch.nn.Linear(hidden, hidden),
                              torch.nn.ELU(), torch.nn.Linear(hidden, 2))
    for i, layer in enumerate(m for m in net if isinstance(m, torch.nn.Linear)):
        layer.weight.data = torch.tensor(data[f"w{i}"].T, dtype=torch.float32)
        layer.bias.data = torch.tensor(data[f"b{i}"], dtype=torch.float32)
    policy = probe.Policy(str(tmp_path / "p.npz"), "mlp")
    z = (x[:5] - data["mu"]) / data["sd"]
    expected = np.clip(net(torch.tensor(z, dtype=torch.float32)).detach().numpy(), -data["limit"], data["limit"])
    got = np.stack([policy(row) for row in x[:5]])
    assert np.allclose(got, expected, atol=1e-4)


def test_policy_mode_runs_no_rollout_and_commits_the_policy_offsets(probe, tmp_path):
    """A constant policy (ridge with only a bias) drives the tracking: zero rollout steps, and
    the last committed offsets are that constant."""
    dim_x, dim_y = 76, 17
    bias = np.linspace(-0.05, 0.05, dim_y)
    ridge = np.zeros((dim_x + 1, dim_y))
    ridge[-1] = bias
    layers = {f"w{i}": np.zeros((1, 1)) for i in range(3)} | {f"b{i}": np.zeros(1) for i in range(3)}
    np.savez(tmp_path / "p.npz", mu=np.zeros(dim_x), sd=np.ones(dim_x), limit=np.ones(dim_y), ridge=ridge, **layers)
    probe.install_planner("policy", probe.Policy(str(tmp_path / "p.npz"), "ridge"))
    from sccl.simulators import sampling

    seen = []

    class Spy(sampling.SamplingPlanner):
        def plan(self, k0, base, vel):
            super().plan(k0, base, vel)
            seen.append(self.committed_offsets.copy())
            # the targets the joints get for the window are the reference's moved by the policy's offsets
            expected = self._targets(bias, k0, self.window, base)
            assert [self.committed[k0 + i] for i in range(1, self.window + 1)] == expected

    sampling.SamplingPlanner = Spy
    walk, _ = ground_align(read_clip(bundled_motion_dir() / "humanoid3d_walk.txt").motion, "percentile", 10)
    config = probe.correction.MODES[probe.PRESET] | {"sampling_restarts": 0}
    with HumanoidSim(config) as sim:
        result = sim.track(walk.slice(0, 12), early_stop=False)
    assert result.extra["sampling_steps_per_step"] == 0.0
    assert len(seen) >= 2 and all(np.allclose(s, bias) for s in seen)


def _constant_policy(path, bias: np.ndarray, dim_x: int = 76) -> None:
    """A policy file whose ridge model returns `bias` whatever the features."""
    ridge = np.zeros((dim_x + 1, bias.size))
    ridge[-1] = bias
    layers = {f"w{i}": np.zeros((1, 1)) for i in range(3)} | {f"b{i}": np.zeros(1) for i in range(3)}
    np.savez(path, mu=np.zeros(dim_x), sd=np.ones(dim_x), limit=np.ones(bias.size), ridge=ridge, **layers)


def test_dagger_round_labels_with_the_search_and_executes_the_policy(probe, tmp_path):
    """collect with --policy and expert share 0: one record per searched window, features of the
    policy's width, labels from the search (not the policy's constant), and the committed targets
    of every window are the policy's."""
    bias = np.full(17, 0.04)
    _constant_policy(tmp_path / "p.npz", bias)
    records = probe.install_planner("record", probe.Policy(str(tmp_path / "p.npz"), "ridge"), expert_share=0.0)
    from sccl.simulators import sampling

    executed = []

    class Spy(sampling.SamplingPlanner):
        def plan(self, k0, base, vel):
            super().plan(k0, base, vel)
            executed.append([self.committed[k0 + i] for i in range(1, self.window + 1)]
                            == self._targets(bias, k0, self.window, base))

    sampling.SamplingPlanner = Spy
    walk, _ = ground_align(read_clip(bundled_motion_dir() / "humanoid3d_walk.txt").motion, "percentile", 10)
    config = probe.correction.MODES[probe.PRESET] | {"sampling_restarts": 0}
    with HumanoidSim(config) as sim:
        result = sim.track(walk.slice(0, 9), early_stop=False)
    assert result.extra["sampling_steps_per_step"] > 0  # the search ran, as the labeller
    assert executed and all(executed)
    assert len(records) == len(executed)
    assert all(x.shape == (76,) and y.shape == (17,) for x, y in records)
    assert not all(np.allclose(y, bias) for _, y in records)
