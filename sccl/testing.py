"""Contract tests for generators and correctors, as reusable test classes.

The loop relies on a few promises every component must keep (same seed, same samples;
results independent of how a batch is sharded across Ray workers; checkpoints that restore
exactly; a result row for every input; nothing non-finite in training data). These classes
check them. sccl runs them over every built-in (``tests/test_contracts.py``); a plugin author
subclasses them the same way, in the spirit of diffusers' ``SchedulerCommonTest``::

    from sccl.testing import CorrectorContract

    class TestMyCorrector(CorrectorContract):
        def make_corrector(self, config=None):
            return MyCorrector(config)

        def make_batch(self):
            return np.random.default_rng(0).normal(size=(8, 3))

pytest collects the subclass (its name starts with ``Test``) and runs every ``test_*``
method below. Only the ``make_*`` hooks are required; the class attributes tune what is
checked. The base classes themselves are not collected (their names do not start with
``Test``). Fixtures used: pytest's built-in ``tmp_path`` only, so this module does not
import pytest.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from sccl.correctors.base import POLICIES, CorrectionResult, Corrector, CorrectorError
from sccl.generators.base import Generator, GeneratorConfigError
from sccl.generators.registry import load_generator

__all__ = ["CorrectorContract", "GeneratorContract"]


class GeneratorContract:
    """What every :class:`~sccl.generators.Generator` promises the loop.

    Hooks: :meth:`make_generator` (a fresh, unfitted generator) and :meth:`make_data`
    (``x`` and the labels or None). ``fit_steps`` keeps the fit short; ``misspelt_setting``
    is a config key the generator must refuse (None skips that check, for plugins that
    accept any key).
    """

    fit_steps: int = 3
    sample_n: int = 6
    #: A key the generator must refuse with a GeneratorConfigError naming it (None: skip).
    misspelt_setting: str | None = "not_a_setting"

    def make_generator(self, config: dict | None = None) -> Generator:
        raise NotImplementedError("subclasses return a fresh generator built with `config` merged in")

    def make_data(self) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError("subclasses return (x, labels or None)")

    # ------------------------------------------------------------------ helpers
    def _fitted(self, seed: int = 0) -> tuple[Generator, np.ndarray, np.ndarray | None]:
        x, labels = self.make_data()
        gen = self.make_generator()
        gen.fit(x, labels, steps=self.fit_steps, seed=seed)
        return gen, x, labels

    def _labels(self, labels: np.ndarray | None) -> np.ndarray | None:
        return None if labels is None else np.asarray(labels)[: self.sample_n]

    # ------------------------------------------------------------------ contract
    def test_fit_reports_loss_and_steps(self) -> None:
        x, labels = self.make_data()
        info = self.make_generator().fit(x, labels, steps=self.fit_steps, seed=0)
        assert isinstance(info, dict) and "loss" in info and "steps" in info, f"fit() returned {info!r}"
        assert np.isfinite(float(info["loss"])), f"fit() loss is {info['loss']!r}"

    def test_samples_have_the_data_shape_and_are_finite(self) -> None:
        gen, x, labels = self._fitted()
        s = gen.sample(self.sample_n, self._labels(labels), seed=1)
        assert s.shape == (self.sample_n,) + x.shape[1:], f"sample shape {s.shape}, data {x.shape}"
        assert np.isfinite(s).all(), "sample() produced non-finite values"
        assert gen.is_fitted, "is_fitted is False after fit()"

    def test_same_seed_same_samples_other_seed_other_samples(self) -> None:
        gen, _, labels = self._fitted()
        a = gen.sample(self.sample_n, self._labels(labels), seed=3)
        b = gen.sample(self.sample_n, self._labels(labels), seed=3)
        c = gen.sample(self.sample_n, self._labels(labels), seed=4)
        np.testing.assert_array_equal(a, b, err_msg="sample() with one seed gave two results")
        assert not np.array_equal(a, c), "sample() ignores its seed"

    def test_fit_is_deterministic(self) -> None:
        (g1, _, labels), (g2, _, _) = self._fitted(seed=5), self._fitted(seed=5)
        np.testing.assert_array_equal(g1.sample(self.sample_n, self._labels(labels), seed=2),
                                      g2.sample(self.sample_n, self._labels(labels), seed=2),
                                      err_msg="two fits with one seed differ")

    def test_global_random_state_is_untouched(self) -> None:
        np.random.seed(123)
        expected = np.random.random(3)
        np.random.seed(123)
        gen, _, labels = self._fitted()
        gen.sample(self.sample_n, self._labels(labels), seed=1)
        np.testing.assert_array_equal(np.random.random(3), expected,
                                      err_msg="fit()/sample() drew from numpy's global random state")

    def test_checkpoint_restores_exactly(self, tmp_path: Any) -> None:
        gen, _, labels = self._fitted()
        path = gen.save(tmp_path / "generator.safetensors")
        loaded = load_generator(path, device="cpu")
        assert type(loaded) is type(gen), f"checkpoint restored a {type(loaded).__name__}"
        np.testing.assert_array_equal(loaded.sample(self.sample_n, self._labels(labels), seed=7),
                                      gen.sample(self.sample_n, self._labels(labels), seed=7),
                                      err_msg="a restored checkpoint samples differently")

    def test_state_dict_is_plain(self) -> None:
        gen, _, _ = self._fitted()
        state = gen.state_dict()
        assert {"kind", "format_version", "config", "meta", "tensors"} <= set(state), sorted(state)
        assert state["kind"] == gen.name
        assert all(isinstance(v, np.ndarray) for v in state["tensors"].values()), "tensors must be numpy arrays"

    def test_unknown_setting_is_refused_by_name(self) -> None:
        if self.misspelt_setting is None:
            return
        try:
            self.make_generator({self.misspelt_setting: 1})
        except GeneratorConfigError as exc:
            assert self.misspelt_setting in str(exc), f"the error does not name the key: {exc}"
        else:
            raise AssertionError(f"unknown setting {self.misspelt_setting!r} was accepted")


class CorrectorContract:
    """What every :class:`~sccl.correctors.Corrector` promises the loop.

    Hooks: :meth:`make_corrector` (built with a config dict) and :meth:`make_batch` (a batch
    of the corrector's domain: an array ``(N, ...)`` or a ``list[Motion]``);
    :meth:`make_reference` returns the real data passed to ``prepare`` (None: not called).
    ``misspelt_setting`` is a key the corrector must refuse (None skips that check).
    """

    seed: int = 11
    #: A key the corrector must refuse with a CorrectorError naming it (None: skip).
    misspelt_setting: str | None = "not_a_setting"

    def make_corrector(self, config: dict | None = None) -> Corrector:
        raise NotImplementedError("subclasses return a corrector built with `config`")

    def make_batch(self) -> Any:
        raise NotImplementedError("subclasses return a batch: an array (N, ...) or a list of Motion")

    def make_reference(self) -> Any:
        return None

    # ------------------------------------------------------------------ helpers
    def _prepared(self, config: dict | None = None) -> Corrector:
        corrector = self.make_corrector(config)
        reference = self.make_reference()
        if reference is not None:
            corrector.prepare(reference)
        return corrector

    @staticmethod
    def _same_samples(a: Any, b: Any) -> bool:
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            return np.array_equal(np.asarray(a), np.asarray(b))
        return len(a) == len(b) and all(x.allclose(y, atol=0.0) for x, y in zip(a, b))

    @staticmethod
    def _check_result(result: CorrectionResult, n: int) -> None:
        assert isinstance(result, CorrectionResult), f"correct() returned {type(result).__name__}"
        assert len(result.status) == n and len(result.diagnostics) == n, "one status and diagnostics row per input"
        assert sum(result.counts.values()) == n, f"counts {result.counts} do not add up to {n}"
        kept = np.asarray(result.kept_index)
        assert len(result.samples) == len(kept), "one kept sample per kept index"
        assert np.all(np.diff(kept) > 0) and (not len(kept) or (kept[0] >= 0 and kept[-1] < n)), \
            f"kept_index {kept.tolist()} is not increasing within the batch"
        for sample in result.samples:
            values = np.asarray(sample) if isinstance(sample, np.ndarray) else sample.root_pos
            assert np.isfinite(values).all(), "a kept sample is not finite"
        for row in result.diagnostics:
            assert all(isinstance(v, float) for v in row.values()), f"diagnostics must be floats: {row}"

    # ------------------------------------------------------------------ contract
    def test_result_accounts_for_every_input_under_every_policy(self) -> None:
        batch = self.make_batch()
        for policy in POLICIES:
            result = self._prepared({"policy": policy}).correct(batch, self.seed)
            self._check_result(result, len(batch))

    def test_same_seed_same_result(self) -> None:
        batch = self.make_batch()
        a = self._prepared().correct(batch, self.seed)
        b = self._prepared().correct(batch, self.seed)
        assert a.status == b.status and self._same_samples(a.samples, b.samples), "one seed, two results"

    def test_sharding_does_not_change_the_result(self) -> None:
        batch = self.make_batch()
        corrector = self._prepared()
        whole = corrector.correct(batch, self.seed)
        k = max(1, len(batch) // 2)
        head = corrector.correct(batch[:k], self.seed, offset=0)
        tail = corrector.correct(batch[k:], self.seed, offset=k)
        merged = CorrectionResult.merge([head, tail], [0, k], "vector" if isinstance(batch, np.ndarray) else "motion")
        assert merged.status == whole.status, "statuses depend on how the batch is sharded"
        assert np.array_equal(merged.kept_index, whole.kept_index)
        assert self._same_samples(merged.samples, whole.samples), "samples depend on how the batch is sharded"

    def test_survives_pickling(self) -> None:
        """Ray ships correctors to workers by pickling them."""
        batch = self.make_batch()
        corrector = self._prepared()
        copy = pickle.loads(pickle.dumps(corrector))
        assert isinstance(copy.config, dict)
        a, b = corrector.correct(batch, self.seed), copy.correct(batch, self.seed)
        assert a.status == b.status and self._same_samples(a.samples, b.samples), "a pickled copy corrects differently"
        corrector.close()
        copy.close()
        corrector.close()  # close() twice must be harmless

    def test_unknown_setting_is_refused_by_name(self) -> None:
        if self.misspelt_setting is None:
            return
        try:
            self.make_corrector({self.misspelt_setting: 1})
        except CorrectorError as exc:
            assert self.misspelt_setting in str(exc), f"the error does not name the key: {exc}"
        else:
            raise AssertionError(f"unknown setting {self.misspelt_setting!r} was accepted")
