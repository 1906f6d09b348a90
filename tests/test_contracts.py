"""The plugin contracts of sccl.testing, run over every built-in generator and corrector
(the same classes a plugin author subclasses; README, "Plugins")."""

from __future__ import annotations

import numpy as np
import pytest

from sccl.correctors import available_correctors, build_corrector
from sccl.correctors.base import Corrector, SampleOutcome, apply_policy, indexed_normal
from sccl.correctors.registry import BUILTINS as BUILTIN_CORRECTORS
from sccl.generators import build_generator
from sccl.generators.gaussian import GaussianGenerator
from sccl.generators.registry import _builtin as builtin_generators
from sccl.motion.deepmimic import bundled_motion_dir, read_clip
from sccl.testing import CorrectorContract, GeneratorContract

T, D = 8, 62


def _toy_points(n: int = 60, dim: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = np.array([[-3.0] * dim, [3.0] * dim])
    return centres[np.arange(n) % 2] + rng.normal(size=(n, dim))


# ---------------------------------------------------------------- generators
class TestGaussian(GeneratorContract):
    def make_generator(self, config=None):
        return build_generator("gaussian", dict(config or {}))

    def make_data(self):
        return _toy_points(), None


class TestGaussianMixture(GeneratorContract):
    fit_steps = 5

    def make_generator(self, config=None):
        return build_generator("gaussian_mixture", {"n_components": 2, **(config or {})})

    def make_data(self):
        return _toy_points(), None


class TestDiffusion(GeneratorContract):
    fit_steps = 2

    def make_generator(self, config=None):
        return build_generator("diffusion", {"preset": "tiny", "device": "cpu", "sample_steps": 2,
                                             "diffusion_steps": 50, "label_names": ["a", "b"], **(config or {})})

    def make_data(self):
        rng = np.random.default_rng(0)
        return rng.normal(size=(16, T, D)).astype(np.float32), np.arange(16) % 2


def test_every_builtin_generator_has_a_contract_test():
    covered = {"gaussian", "gaussian_mixture", "diffusion"}
    assert set(builtin_generators()) == covered


# ---------------------------------------------------------------- correctors
class TestIdentity(CorrectorContract):
    def make_corrector(self, config=None):
        return build_corrector("none", config)

    def make_batch(self):
        batch = _toy_points(9)
        batch[4, 1] = np.nan  # counted and rejected, never kept
        return batch


class TestIdeal(CorrectorContract):
    def make_corrector(self, config=None):
        return build_corrector("ideal", {"gamma": 1.0, **(config or {})})

    def make_batch(self):
        return _toy_points(9) * 2.0

    def make_reference(self):
        return _toy_points(60)


class TestNearestCluster(CorrectorContract):
    def make_corrector(self, config=None):
        return build_corrector("nearest_cluster", {"k": 2, "strength": 0.5, **(config or {})})

    def make_batch(self):
        return _toy_points(9) * 1.5

    def make_reference(self):
        return _toy_points(60)


@pytest.fixture(scope="module")
def _walk_pieces():
    walk = read_clip(bundled_motion_dir() / "humanoid3d_walk.txt").motion
    n = int(round(0.4 * walk.fps))
    return [walk.slice(0, n), walk.slice(n, 2 * n), walk.slice(2 * n, 3 * n)]


class TestPhysics(CorrectorContract):
    @pytest.fixture(autouse=True)
    def _clips(self, _walk_pieces):
        self.clips = _walk_pieces

    def make_corrector(self, config=None):
        return build_corrector("physics", config)

    def make_batch(self):
        return list(self.clips)


def test_every_builtin_corrector_has_a_contract_test():
    assert set(BUILTIN_CORRECTORS) == {"none", "ideal", "nearest_cluster", "physics"}
    assert set(BUILTIN_CORRECTORS) <= set(available_correctors())


# ---------------------------------------------------------------- a plugin, and the contract's teeth
class ShiftPlugin(Corrector):
    """A third-party corrector on a plain config dict (no settings dataclass)."""

    name = "shift"
    domain = "vector"
    config_keys = ("by",)

    def correct(self, batch, seed, *, offset=0):
        by = float(self.config.get("by", 1.0))
        noise = indexed_normal(seed, offset, len(batch), batch.shape[1:])
        outcomes = [SampleOutcome("ok", corrected=row + by + 0.01 * z) for row, z in zip(batch, noise)]
        return apply_policy(batch, outcomes, self.policy, self.domain)


class TestShiftPlugin(CorrectorContract):
    def make_corrector(self, config=None):
        return build_corrector("test_contracts:ShiftPlugin", config)

    def make_batch(self):
        return _toy_points(7)


class _ShardDependent(ShiftPlugin):
    def correct(self, batch, seed, *, offset=0):  # draws per batch, not per (seed, index)
        noise = np.random.default_rng(seed).normal(size=batch.shape)
        outcomes = [SampleOutcome("ok", corrected=row + z) for row, z in zip(batch, noise)]
        return apply_policy(batch, outcomes, self.policy, self.domain)


class _SeedBlind(GaussianGenerator):
    def sample(self, n, labels, seed):
        return super().sample(n, labels, 0)


def test_the_contracts_catch_broken_components():
    class Corrector_(TestShiftPlugin):
        def make_corrector(self, config=None):
            return _ShardDependent(config)

    class Generator_(TestGaussian):
        def make_generator(self, config=None):
            return _SeedBlind(config)

    with pytest.raises(AssertionError, match="sharded"):
        Corrector_().test_sharding_does_not_change_the_result()
    with pytest.raises(AssertionError, match="ignores its seed"):
        Generator_().test_same_seed_same_samples_other_seed_other_samples()
