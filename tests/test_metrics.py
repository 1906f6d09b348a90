"""Every metric against a known answer, and the motion metrics' behaviour on real data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sccl.metrics.fid import average_pairwise_distance, frechet_distance, frechet_distance_from_samples
from sccl.metrics.geometric import GEOMETRIC_DIM, geometric_feature_names, geometric_features
from sccl.metrics.kinetic import KINETIC_DIM, kinetic_features
from sccl.metrics.prdc import knn_radii, prdc
from sccl.metrics.toy import gaussian_w2, toy_metrics


# ------------------------------------------------------------------------ Fréchet distance
def test_fid_identical_sets_is_zero():
    x = np.random.default_rng(0).normal(size=(200, 8))
    assert frechet_distance_from_samples(x, x) == pytest.approx(0.0, abs=1e-8)


def test_fid_rank_deficient_identical_is_zero():
    x = np.random.default_rng(1).normal(size=(10, 32))  # fewer samples than dimensions
    assert frechet_distance_from_samples(x, x) == pytest.approx(0.0, abs=1e-6)


def test_fid_closed_form_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-10)


def test_fid_matches_sqrtm_formula_for_full_covariances():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.real(sqrtm(s1 @ s2)))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_fid_from_samples_approaches_closed_form():
    rng = np.random.default_rng(3)
    x = rng.normal([0.0, 0.0], [1.0, 2.0], size=(200_000, 2))
    y = rng.normal([1.0, 0.0], [1.0, 1.0], size=(200_000, 2))
    assert frechet_distance_from_samples(x, y) == pytest.approx(1.0 + 1.0, abs=0.03)


def test_average_pairwise_distance_known():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    assert average_pairwise_distance(x) == pytest.approx((5 + 0 + 5) / 3)


# --------------------------------------------------------------------------------- toy
def test_gaussian_w2_closed_form_1d():
    assert gaussian_w2(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[1.0]])) == pytest.approx(
        math.sqrt(9 + 1)
    )


def test_toy_metrics_on_target_samples_and_collapse():
    rng = np.random.default_rng(4)
    mean, cov = np.array([1.0, -1.0]), np.array([[2.0, 0.5], [0.5, 1.0]])
    m = toy_metrics(rng.multivariate_normal(mean, cov, size=100_000), mean, cov)
    assert m["toy/w2"] < 0.02 and m["toy/mean_error"] < 0.02
    assert m["toy/cov_trace"] == pytest.approx(3.0, rel=0.02)
    assert m["toy/cov_logdet"] == pytest.approx(math.log(1.75), abs=0.02)
    collapsed = toy_metrics(np.tile(mean + 3.0, (50, 1)), mean, cov)
    assert collapsed["toy/cov_logdet"] == -math.inf and collapsed["toy/cov_trace"] == 0.0
    assert collapsed["toy/mean_error"] == pytest.approx(3 * math.sqrt(2))
    # W2 to a point mass: sqrt(|Δμ|² + tr Σ)
    assert collapsed["toy/w2"] == pytest.approx(math.sqrt(18 + 3.0), rel=1e-6)


# ------------------------------------------------------------------------------- PRDC
def _two_clusters(rng: np.random.Generator, n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    a = rng.normal(0.0, 0.1, size=(n, 2))
    b = rng.normal(0.0, 0.1, size=(n, 2)) + np.array([10.0, 0.0])
    return a, b


def test_prdc_identical_sets_are_perfect():
    x = np.random.default_rng(5).normal(size=(100, 3))
    r = prdc(x, x, k=5)
    assert r["precision"] == 1.0 and r["recall"] == 1.0 and r["coverage"] == 1.0
    assert r["density"] >= 1.0  # every fake sits at least in its own real ball


def test_prdc_mode_dropping_halves_recall_and_coverage():
    rng = np.random.default_rng(6)
    a, b = _two_clusters(rng)
    real = np.concatenate([a, b])
    fake = a + rng.normal(0.0, 0.01, size=a.shape)  # a generator that only covers mode A
    r = prdc(real, fake, k=3)
    assert r["precision"] == 1.0
    assert r["recall"] == pytest.approx(0.5)
    assert r["coverage"] == pytest.approx(0.5, abs=0.05)


def test_prdc_far_away_fakes_score_zero():
    rng = np.random.default_rng(7)
    a, b = _two_clusters(rng)
    r = prdc(np.concatenate([a, b]), a + 100.0, k=3)
    assert r == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_knn_radii_grid():
    x = np.arange(10, dtype=float)[:, None]
    radii = knn_radii(x, k=2)
    assert radii[0] == 2.0 and radii[5] == 1.0 and radii[9] == 2.0


# ---------------------------------------------------------------------------- kinetic
def test_kinetic_features_constant_velocity():
    t = np.arange(30) / 20.0
    v = np.array([1.0, 2.0, -3.0])
    pos = np.broadcast_to((t[:, None] * v)[:, None, :], (30, 15, 3)).copy()
    f = kinetic_features(pos, fps=20.0)
    assert f.shape == (KINETIC_DIM,)
    np.testing.assert_allclose(f[:15], 0.5 * (1.0 + 9.0))
    np.testing.assert_allclose(f[15:30], 0.5 * 4.0)
    np.testing.assert_allclose(f[30:], 0.0, atol=1e-9)


def test_uniform_translation_keeps_fid_k(dataset):
    from sccl.motion.kinematics import forward_kinematics

    pos = np.stack([forward_kinematics(m).positions for m in dataset.train.motions[:80]])
    ref = np.stack([forward_kinematics(m).positions for m in dataset.heldout.motions])
    moved = pos + np.array([1.3, 0.2, -0.7])
    fps = dataset.fps
    k_ref = kinetic_features(ref, fps)
    k, k_moved = kinetic_features(pos, fps), kinetic_features(moved, fps)
    np.testing.assert_allclose(k_moved, k, atol=1e-9)
    assert frechet_distance_from_samples(k_moved, k_ref) == pytest.approx(
        frechet_distance_from_samples(k, k_ref), rel=1e-6
    )


# -------------------------------------------------------------------------- geometric
def _standing(frames: int = 10, upside_down: bool = False):
    from sccl.motion.clip import Motion

    root_rot = np.array([1.0, 0.0, 0.0, 0.0]) if upside_down else np.array([0.0, 0.0, 0.0, 1.0])
    return Motion(
        20.0,
        np.tile([0.0, 0.9, 0.0], (frames, 1)),
        np.tile(root_rot, (frames, 1)),
        np.tile([0.0, 0.0, 0.0, 1.0], (frames, 8, 1)),
        np.zeros((frames, 4)),
    )


def test_geometric_features_rest_pose_and_upside_down():
    from sccl.motion.kinematics import forward_kinematics

    names = geometric_feature_names()
    assert len(names) == GEOMETRIC_DIM == len(set(names))
    g = dict(zip(names, geometric_features(forward_kinematics(_standing()).positions, 20.0)))
    assert g["torso_upright"] == 1.0 and g["upside_down"] == 0.0 and g["torso_lying"] == 0.0
    assert g["r_hand_above_neck"] == 0.0 and g["r_knee_bent"] == 0.0 and g["root_fast"] == 0.0
    flipped = dict(zip(names, geometric_features(forward_kinematics(_standing(upside_down=True)).positions, 20.0)))
    assert flipped["upside_down"] == 1.0 and flipped["torso_upright"] == 0.0
    assert flipped["r_foot_above_hip"] == 1.0


def test_geometric_features_are_shares_and_translation_invariant(dataset):
    from sccl.motion.kinematics import forward_kinematics

    pos = np.stack([forward_kinematics(m).positions for m in dataset.train.motions[:40]])
    g = geometric_features(pos, dataset.fps)
    assert g.shape == (40, GEOMETRIC_DIM) and (g >= 0).all() and (g <= 1).all()
    np.testing.assert_array_equal(geometric_features(pos + np.array([5.0, 0.0, -2.0]), dataset.fps), g)


# ------------------------------------------------------------------------- evaluator
@pytest.fixture(scope="module")
def dataset():
    from sccl.motion.dataset import build_dataset

    return build_dataset()


@pytest.fixture(scope="module")
def evaluator_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("evaluator-cache")


@pytest.fixture(scope="module")
def evaluator(dataset, evaluator_cache):
    from sccl.metrics.evaluator import get_evaluator

    return get_evaluator(dataset, evaluator_cache, seed=0, steps=150)


def test_evaluator_learns_labels_and_is_cached(dataset, evaluator, evaluator_cache):
    from sccl.metrics.evaluator import get_evaluator

    assert evaluator.info["train_accuracy"] > 0.9
    assert evaluator.info["heldout_accuracy"] > 0.6
    files = sorted(p.name for p in evaluator_cache.iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".safetensors")
    again = get_evaluator(dataset, evaluator_cache, seed=0, steps=150)
    assert "train_seconds" in again.info and again is not evaluator
    np.testing.assert_allclose(again.embed(dataset.heldout.features), evaluator.embed(dataset.heldout.features), atol=1e-6)
    np.testing.assert_array_equal(again.predict(dataset.train.features), evaluator.predict(dataset.train.features))
    assert evaluator.embed(dataset.heldout.features[:3]).shape == (3, evaluator.embed_dim)


def test_evaluator_hash_covers_data_and_settings(dataset):
    from sccl.metrics.evaluator import EvaluatorSettings, dataset_hash

    base = dataset_hash(dataset, EvaluatorSettings(steps=150))
    assert dataset_hash(dataset, EvaluatorSettings(steps=150)) == base
    assert dataset_hash(dataset, EvaluatorSettings(steps=151)) != base
    assert dataset_hash(dataset, EvaluatorSettings(steps=150, seed=1)) != base


def test_corrupt_cache_is_retrained(dataset, tmp_path):
    from sccl.metrics.evaluator import EvaluatorSettings, dataset_hash, get_evaluator

    key = dataset_hash(dataset, EvaluatorSettings(steps=5))
    (tmp_path / f"evaluator-{key}.safetensors").write_bytes(b"not a safetensors file")
    ev = get_evaluator(dataset, tmp_path, steps=5)
    assert "train_seconds" in ev.info


# ---------------------------------------------------------------- evaluate_generation
EXPECTED_KEYS = {
    "quality/fid", "quality/fid_train", "quality/fid_k", "quality/fid_g", "quality/precision", "quality/recall",
    "quality/density", "quality/coverage", "quality/recognition_acc", "diversity/diversity",
    "diversity/multimodality", "diversity/div_k", "diversity/div_g", "memorisation/nn_train_dist",
    "memorisation/nn_ratio", "memorisation/copy_fraction", "physics/penetrate_mm", "physics/float_mm",
    "physics/skate_mm", "physics/phys_err_mm", "physics/jitter", "physics/skate_sliding_mm",
    "physics/skate_hovering_mm", "timing/metrics_s",
}


def _noisy(dataset, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = dataset.train.features
    return (f + sigma * dataset.stats.std * rng.standard_normal(f.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def train_metrics(dataset, evaluator):
    from sccl.metrics.motion_metrics import reference_metrics

    return reference_metrics(dataset, evaluator, physics_max_samples=100)


def test_evaluate_generation_keys_and_known_answers(dataset, evaluator, train_metrics):
    from sccl.metrics.motion_metrics import evaluate_generation

    assert EXPECTED_KEYS <= set(train_metrics)
    assert all(np.isfinite(v) for v in train_metrics.values())
    # the training windows themselves: zero distance to the training set, a perfect copy
    assert train_metrics["quality/fid_train"] == pytest.approx(0.0, abs=1e-6)
    assert train_metrics["memorisation/nn_train_dist"] == 0.0 and train_metrics["memorisation/nn_ratio"] == 0.0
    assert train_metrics["memorisation/copy_fraction"] == 1.0
    assert train_metrics["quality/recognition_acc"] > 0.9
    # identical sets: held-out windows against the held-out reference
    held = evaluate_generation(dataset.heldout.features, dataset.heldout.labels, dataset, evaluator, physics=False)
    for key in ("quality/fid", "quality/fid_k", "quality/fid_g"):
        assert held[key] == pytest.approx(0.0, abs=1e-6)
    assert held["quality/precision"] == 1.0 and held["quality/coverage"] == 1.0
    assert held["memorisation/nn_ratio"] == pytest.approx(1.0)


def test_unlabelled_samples_and_corrector_passthrough(dataset, evaluator):
    from sccl.metrics.motion_metrics import evaluate_generation

    summary = {"acceptance_rate": 0.75, "failure": {"fell": 3, "diverged": 1}, "note": "text is skipped"}
    m = evaluate_generation(
        dataset.heldout.features, None, dataset, evaluator, corrector_summary=summary, physics=False
    )
    assert math.isnan(m["quality/recognition_acc"]) and math.isnan(m["diversity/multimodality"])
    assert m["correction/acceptance_rate"] == 0.75
    assert m["correction/failure/fell"] == 3.0 and m["correction/failure/diverged"] == 1.0
    assert not any(k.endswith("note") for k in m)


def test_bad_samples_are_rejected_with_a_message(dataset, evaluator):
    from sccl.metrics.motion_metrics import evaluate_generation

    bad = dataset.heldout.features.copy()
    bad[3, 4, 5] = np.nan
    with pytest.raises(ValueError, match="1 of 44 samples"):
        evaluate_generation(bad, None, dataset, evaluator)


def test_real_data_fid_is_small_against_an_untrained_model(dataset, evaluator, train_metrics):
    """Train vs held-out real windows against what an untrained generator produces: i.i.d.
    noise with the data's per-channel mean and std (an untrained denoiser's output)."""
    from sccl.metrics.motion_metrics import evaluate_generation

    rng = np.random.default_rng(0)
    f = dataset.train.features
    untrained = (dataset.stats.mean + dataset.stats.std * rng.standard_normal(f.shape)).astype(np.float32)
    u = evaluate_generation(untrained, dataset.train.labels, dataset, evaluator, physics=False)
    for key in ("quality/fid", "quality/fid_k", "quality/fid_g"):
        assert train_metrics[key] < 0.2 * u[key], key
    assert u["quality/recognition_acc"] < 0.3 and u["quality/recall"] < train_metrics["quality/recall"]


def test_noise_raises_fid_and_phys_err_monotonically(dataset, evaluator):
    from sccl.metrics.motion_metrics import evaluate_generation

    rows = [
        evaluate_generation(_noisy(dataset, s), dataset.train.labels, dataset, evaluator, physics_max_samples=120)
        for s in (0.0, 0.3, 0.6, 1.2)
    ]
    for key in ("quality/fid_train", "quality/fid", "quality/fid_k", "quality/fid_g", "physics/phys_err_mm", "physics/jitter"):
        values = [r[key] for r in rows]
        assert all(a < b for a, b in zip(values, values[1:])), (key, values)


def test_clip_lowered_3cm_penetrates_30mm(dataset, evaluator):
    """A standing clip whose lowest point touches the floor, lowered by 3 cm."""
    from sccl.metrics.motion_metrics import evaluate_generation
    from sccl.motion.features import motion_to_features
    from sccl.motion.kinematics import body_lowest_points, forward_kinematics

    clip = _standing(frames=30)
    lowest = body_lowest_points(forward_kinematics(clip)).min()
    lowered = clip.replace(root_pos=clip.root_pos - np.array([0.0, lowest + 0.03, 0.0]))
    feats = np.stack([motion_to_features(lowered)] * 4).astype(np.float32)
    m = evaluate_generation(feats, None, dataset, evaluator)
    assert m["physics/penetrate_mm"] == pytest.approx(30.0, abs=0.5)
    assert m["physics/float_mm"] == 0.0 and m["physics/jitter"] == pytest.approx(0.0, abs=1e-3)


def test_reference_stats_are_built_once(dataset, evaluator):
    from sccl.metrics.motion_metrics import get_reference_stats

    assert get_reference_stats(dataset, evaluator) is get_reference_stats(dataset, evaluator)


def test_diversity_and_multimodality_known():
    from sccl.metrics.motion_metrics import diversity, multimodality

    emb = np.array([[0.0, 0.0]] * 10 + [[3.0, 4.0]] * 10)
    labels = np.array([0] * 10 + [1] * 10)
    assert multimodality(emb, labels) == 0.0  # identical samples within each label
    assert diversity(np.zeros((50, 4))) == 0.0
    # two points 5 apart, randomly paired: 0 or 5 per pair
    assert 0.0 < diversity(emb) <= 5.0


# ------------------------------------------------------------------------------ plots
def test_collapse_curve_png_and_gif(tmp_path, dataset):
    from PIL import Image

    from sccl.metrics.plots import plot_collapse_curves, render_motions_gif

    history = [
        {"generation": g, "quality/fid": 10.0 + g, "physics/jitter": float("nan") if g == 1 else g, "timing/metrics_s": 1.0}
        for g in range(4)
    ]
    png = plot_collapse_curves(history, tmp_path / "curves.png", title="arm")
    assert Image.open(png).size[0] > 100
    gif = render_motions_gif(dataset.heldout.motions[:2], dataset.train.motions[:3], tmp_path / "m.gif", fps=dataset.fps)
    im = Image.open(gif)
    assert im.n_frames == dataset.window
