"""Generators: interface contract, toy MLE, diffusion model, checkpoints, determinism."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from sccl.generators import CheckpointError, Generator, build_generator, load_generator
from sccl.generators.base import FORMAT_VERSION
from sccl.generators.diffusion import MotionDiffusion, cosine_alphas_cumprod, ddim_timesteps, samples_to_motions
from sccl.generators.gaussian import GaussianGenerator, GaussianMixtureGenerator
from sccl.motion.errors import UserError

T, D = 12, 62


def tiny(**over) -> MotionDiffusion:
    cfg = {"preset": "tiny", "device": "cpu", "sample_steps": 5, "label_names": ["a", "b"], "fps": 20.0}
    cfg.update(over)
    return build_generator("diffusion", cfg)


@pytest.fixture(scope="module")
def two_classes() -> tuple[np.ndarray, np.ndarray]:
    """Two well separated synthetic classes of (T, 62) windows: opposite offsets and phases."""
    rng = np.random.default_rng(0)
    n = 64
    labels = np.arange(n) % 2
    t = np.linspace(0, 2 * np.pi, T)[None, :, None]
    sign = np.where(labels == 0, 1.0, -1.0)[:, None, None]
    base = sign * (1.0 + 0.5 * np.sin(t + np.arange(D)[None, None, :] * 0.1))
    x = base + 0.05 * rng.standard_normal((n, T, D))
    return x.astype(np.float32), labels.astype(np.int64)


@pytest.fixture(scope="module")
def trained(two_classes) -> MotionDiffusion:
    x, y = two_classes
    g = tiny()
    g.fit(x, y, steps=150, seed=0)
    return g


# ---------------------------------------------------------------- registry / interface
def test_registry_builds_every_kind_and_rejects_unknown():
    for name, cls in (("diffusion", MotionDiffusion), ("gaussian", GaussianGenerator),
                      ("gaussian_mixture", GaussianMixtureGenerator)):
        g = build_generator(name, {"preset": "tiny", "device": "cpu"} if name == "diffusion" else {})
        assert isinstance(g, cls) and isinstance(g, Generator) and g.name == name
    with pytest.raises(UserError, match="diffusion.*gaussian.*gaussian_mixture"):
        build_generator("vae", {})
    g = build_generator("sccl.generators.gaussian:GaussianGenerator", {"ddof": 1})
    assert isinstance(g, GaussianGenerator)


def test_bad_configs_are_user_errors():
    with pytest.raises(UserError, match="preset"):
        build_generator("diffusion", {"preset": "huge"})
    with pytest.raises(UserError, match="ddof"):
        build_generator("gaussian", {"ddof": -1})
    with pytest.raises(UserError, match="width"):
        build_generator("diffusion", {"preset": "tiny", "width": 30, "heads": 4})


@pytest.mark.parametrize("name", ["gaussian", "gaussian_mixture"])
def test_toy_contract(name, tmp_path):
    x = np.random.default_rng(1).normal(size=(200, 3))
    g = build_generator(name, {"n_components": 2} if name == "gaussian_mixture" else {})
    info = g.fit(x, None, steps=0, seed=0)
    assert np.isfinite(info["loss"]) and "steps" in info
    s = g.sample(50, None, seed=3)
    assert s.shape == (50, 3)
    np.testing.assert_array_equal(s, g.sample(50, None, seed=3))
    assert not np.array_equal(s, g.sample(50, None, seed=4))
    g.save(tmp_path / "g.safetensors")
    h = load_generator(tmp_path / "g.safetensors")
    assert type(h) is type(g)
    np.testing.assert_array_equal(h.sample(50, None, seed=3), s)


# ---------------------------------------------------------------- Gaussian toys
@pytest.mark.parametrize("ddof", [0, 1])
def test_gaussian_mle_matches_numpy(ddof):
    x = np.random.default_rng(2).normal(loc=[1.0, -2.0, 0.5], scale=[1.0, 3.0, 0.2], size=(57, 3))
    g = build_generator("gaussian", {"ddof": ddof})
    g.fit(x, None, 0, seed=0)
    np.testing.assert_array_equal(g.mean, np.mean(x, axis=0))
    np.testing.assert_array_equal(g.cov, np.cov(x, rowvar=False, ddof=ddof))
    np.testing.assert_allclose(g.variance(), np.var(x, axis=0, ddof=ddof), rtol=1e-12)
    d = build_generator("gaussian", {"ddof": ddof, "covariance": "diag"})
    d.fit(x, None, 0, seed=0)
    np.testing.assert_array_equal(d.variance(), np.var(x, axis=0, ddof=ddof))
    one = build_generator("gaussian", {"ddof": ddof})
    one.fit(x[:, 0], None, 0, seed=0)
    assert one.variance()[0] == pytest.approx(np.var(x[:, 0], ddof=ddof), rel=1e-12)


def test_gaussian_samples_have_the_fitted_moments():
    cov = np.array([[2.0, 0.8], [0.8, 1.0]])
    g = build_generator("gaussian", {})
    g.mean, g.cov = np.array([1.0, -1.0]), cov
    s = g.sample(200_000, None, seed=0)
    np.testing.assert_allclose(s.mean(0), [1.0, -1.0], atol=0.02)
    np.testing.assert_allclose(np.cov(s, rowvar=False), cov, atol=0.03)


@pytest.mark.parametrize("ddof,factor", [(0, lambda n, k: ((n - 1) / n) ** k), (1, lambda n, k: 1.0)])
def test_gaussian_collapse_closed_form(ddof, factor):
    """Fully synthetic refits: E[σ²_k] = ((N−1)/N)^k σ² for ddof=0, σ² for ddof=1."""
    n, k, chains = 10, 6, 2000
    final = np.empty(chains)
    for c in range(chains):
        g = GaussianGenerator({"ddof": ddof})
        x = np.random.default_rng(10_000 + c).normal(size=(n, 1))
        for gen in range(k):
            g.fit(x, None, 0, seed=0)
            x = g.sample(n, None, seed=c * 100 + gen)
        g.fit(x, None, 0, seed=0)
        final[c] = g.variance()[0]
    # σ²_k counts k+1 fits from the initial real sample of N.
    expected = factor(n, k + 1)
    stderr = final.std(ddof=1) / np.sqrt(chains)
    assert abs(final.mean() - expected) < 4 * stderr, (final.mean(), expected, stderr)


def test_mixture_with_one_component_equals_gaussian():
    x = np.random.default_rng(3).normal(size=(80, 2))
    for ddof in (0, 1):
        m = build_generator("gaussian_mixture", {"n_components": 1, "ddof": ddof, "reg_covar": 0.0})
        m.fit(x, None, 0, seed=0)
        np.testing.assert_allclose(m.means[0], x.mean(0), rtol=1e-12)
        np.testing.assert_allclose(m.covs[0], np.cov(x, rowvar=False, ddof=ddof), rtol=1e-10)


def test_mixture_recovers_separated_clusters():
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(-5, 0.5, size=(300, 2)), rng.normal(5, 1.0, size=(100, 2))])
    m = build_generator("gaussian_mixture", {"n_components": 2})
    m.fit(x, None, 0, seed=1)
    order = np.argsort(m.means[:, 0])
    np.testing.assert_allclose(m.means[order], [[-5, -5], [5, 5]], atol=0.2)
    np.testing.assert_allclose(m.weights[order], [0.75, 0.25], atol=0.01)
    s = m.sample(4000, None, seed=0)
    assert abs((s[:, 0] > 0).mean() - 0.25) < 0.03
    m2 = build_generator("gaussian_mixture", {"n_components": 2})
    m2.fit(x, None, 0, seed=1)
    np.testing.assert_array_equal(m2.means, m.means)


# ---------------------------------------------------------------- diffusion: schedule
def test_cosine_schedule_and_ddim_steps():
    ab = cosine_alphas_cumprod(1000)
    assert ab.shape == (1000,) and np.all(np.diff(ab) < 0) and 0 < ab[-1] < 1e-3 and ab[0] > 0.999
    ts = ddim_timesteps(1000, 50)
    assert ts[0] == 999 and ts[-1] == 0 and len(ts) == 50 and all(a > b for a, b in zip(ts, ts[1:]))
    assert ddim_timesteps(10, 50) == list(range(9, -1, -1))


# ---------------------------------------------------------------- diffusion: model
def test_diffusion_contract_and_shapes(two_classes, trained):
    x, y = two_classes
    s = trained.sample(6, np.array([0, 1, 0, 1, 0, 1]), seed=0)
    assert s.shape == (6, T, D) and s.dtype == np.float32 and np.isfinite(s).all()
    u = trained.sample(4, None, seed=0)  # unconditional sampling through the null label
    assert u.shape == (4, T, D) and np.isfinite(u).all()
    with pytest.raises(UserError, match="shape"):
        trained.fit(x[:, :5], y, 1, seed=0)
    with pytest.raises(UserError, match="labels"):
        trained.sample(2, np.array([0, 7]), seed=0)
    with pytest.raises(UserError, match="unfitted"):
        tiny().sample(1, None, seed=0)


def test_conditional_sampling_honours_labels(two_classes, trained):
    x, y = two_classes
    centres = np.stack([x[y == c].mean(0) for c in (0, 1)])
    lab = np.array([0, 1] * 8)
    s = trained.sample(len(lab), lab, seed=5)
    dist = ((s[:, None] - centres[None]) ** 2).sum(axis=(2, 3))
    np.testing.assert_array_equal(dist.argmin(1), lab)
    # Samples of a class are near that class: closer than the classes are to each other.
    own = dist[np.arange(len(lab)), lab]
    assert own.max() < 0.25 * ((centres[0] - centres[1]) ** 2).sum()


def test_unconditional_model(two_classes):
    x, _ = two_classes
    g = tiny(cond=False, label_names=None)
    g.fit(x, None, 40, seed=0)
    s = g.sample(8, None, seed=0)
    assert s.shape == (8, T, D) and np.isfinite(s).all()
    assert g.sample(2, np.array([0, 1]), seed=0).shape == (2, T, D)  # labels ignored


def test_determinism_same_seed_same_weights_and_samples(two_classes):
    x, y = two_classes
    torch.manual_seed(123)
    a = tiny(dropout=0.1)
    a.fit(x, y, 15, seed=7)
    torch.manual_seed(999)  # global RNG state must not matter
    b = tiny(dropout=0.1)
    b.fit(x, y, 15, seed=7)
    for k, v in a.state_dict()["tensors"].items():
        np.testing.assert_array_equal(v, b.state_dict()["tensors"][k], err_msg=k)
    lab = np.array([0, 1, 1])
    s1 = a.sample(3, lab, seed=11)
    torch.rand(5)
    np.testing.assert_array_equal(s1, b.sample(3, lab, seed=11))
    assert not np.array_equal(s1, a.sample(3, lab, seed=12))
    c = tiny(dropout=0.1)
    c.fit(x, y, 15, seed=8)
    assert not np.array_equal(a.state_dict()["tensors"]["model/output.weight"],
                              c.state_dict()["tensors"]["model/output.weight"])


def test_continuation_and_frozen_normalisation(two_classes):
    x, y = two_classes
    g = tiny()
    g.fit(x, y, 10, seed=0)
    mean, std = g.mean.copy(), g.std.copy()
    w0 = g.state_dict()["tensors"]["model/output.weight"]
    g.fit(3.0 * x + 1.0, y, 10, seed=1, continue_training=True)
    np.testing.assert_array_equal(g.mean, mean)  # generation 0's normalisation is kept
    np.testing.assert_array_equal(g.std, std)
    assert g.total_steps == 20
    fresh = tiny()
    fresh.fit(x, y, 10, seed=1)
    scratch = tiny()
    scratch.fit(x, y, 10, seed=0)
    scratch.fit(x, y, 10, seed=1, continue_training=False)  # from scratch: same as a fresh model
    np.testing.assert_array_equal(scratch.state_dict()["tensors"]["model/output.weight"],
                                  fresh.state_dict()["tensors"]["model/output.weight"])
    assert not np.array_equal(w0, g.state_dict()["tensors"]["model/output.weight"])


@pytest.mark.parametrize("keep_optimizer", [False, True])
def test_save_load_resume_equals_uninterrupted(two_classes, tmp_path, keep_optimizer):
    x, y = two_classes
    a = tiny(keep_optimizer=keep_optimizer)
    a.fit(x, y, 10, seed=0)
    path = a.save(tmp_path / "g.safetensors")
    b = load_generator(path, expect={"kind": "diffusion", "preset": "tiny", "feature_shape": [T, D]})
    lab = np.array([0, 1])
    np.testing.assert_array_equal(a.sample(2, lab, seed=3), b.sample(2, lab, seed=3))
    assert ("optim/0/exp_avg" in b.state_dict()["tensors"]) == keep_optimizer
    a.fit(x, y, 5, seed=1)
    b.fit(x, y, 5, seed=1)
    np.testing.assert_array_equal(a.sample(2, lab, seed=3), b.sample(2, lab, seed=3))
    c = tiny(keep_optimizer=keep_optimizer)
    c.load(path)
    assert c.total_steps == 10


def test_geometric_losses_train(two_classes):
    from sccl.motion.dataset import build_dataset

    data = build_dataset()
    g = tiny(lambda_pos=1.0, lambda_vel=1.0, lambda_foot=1.0, label_names=data.label_names)
    info = g.fit(data.train.features[:40], data.train.labels[:40], 3, seed=0)
    assert np.isfinite(info["loss"])
    plain = tiny(label_names=data.label_names)
    assert plain.fit(data.train.features[:40], data.train.labels[:40], 3, seed=0)["loss"] < info["loss"]


def test_samples_to_motions_writes_loadable_clips(trained, tmp_path):
    from sccl.motion.deepmimic import read_clip, write_clip

    feats = trained.sample(2, np.array([0, 1]), seed=0)
    motions = samples_to_motions(feats, 20.0, ["a", "b"], np.array([0, 1]))
    assert [m.label for m in motions] == ["a", "b"] and motions[0].num_frames == T
    write_clip(motions[1], tmp_path / "b.txt")
    assert read_clip(tmp_path / "b.txt").motion.allclose(motions[1], atol=1e-5)


# ---------------------------------------------------------------- checkpoints
def test_bad_checkpoints_rejected(trained, tmp_path):
    path = trained.save(tmp_path / "good.safetensors")
    raw = path.read_bytes()
    for cut in (5, len(raw) // 2, len(raw) - 3):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(raw[:cut])
        with pytest.raises(CheckpointError, match=f"cut{cut}.safetensors"):
            load_generator(bad)
    junk = tmp_path / "junk.safetensors"
    junk.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="junk"):
        load_generator(junk)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_generator(tmp_path / "missing.safetensors")
    # Another format version (rewrite the JSON header in place, keeping the tensors).
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["sccl"])
    meta["format_version"] = FORMAT_VERSION + 1
    header["__metadata__"]["sccl"] = json.dumps(meta)
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    (tmp_path / "v2.safetensors").write_bytes(struct.pack("<Q", len(hb)) + hb + raw[8 + n:])
    with pytest.raises(CheckpointError, match="format version"):
        load_generator(tmp_path / "v2.safetensors")
    with pytest.raises(CheckpointError, match="preset"):
        load_generator(path, expect={"preset": "small"})
    with pytest.raises(CheckpointError, match="kind|gaussian"):
        build_generator("gaussian", {}).load(path)
    with pytest.raises(CheckpointError, match="preset"):
        tiny(preset="small").load(path)
    with pytest.raises(CheckpointError, match="width"):
        tiny(width=32).load(path)


def test_checkpoint_is_not_pickle(trained, tmp_path):
    path = trained.save(tmp_path / "g.safetensors")
    head = path.read_bytes()[:200]
    assert b'"sccl"' in head and not head.startswith(b"\x80")  # safetensors header, not a pickle
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write left no temp file


# ---------------------------------------------------------------- CLI
def test_sample_cli(trained, tmp_path, capsys):
    from sccl.loop.cli import main
    from sccl.motion.deepmimic import read_directory
    from sccl.motion.features import FEATURE_DIM

    assert D == FEATURE_DIM
    ckpt = trained.save(tmp_path / "g.safetensors")
    out = tmp_path / "clips"
    assert main(["sample", str(ckpt), "--n", "3", "--label", "b", "--out", str(out)]) == 0
    clips = read_directory(out)
    assert len(clips) == 3 and all(c.motion.num_frames == T for c in clips)
    assert sorted(p.name for p in out.iterdir()) == ["b__0000.txt", "b__0001.txt", "b__0002.txt"]
    assert main(["sample", str(ckpt), "--n", "2", "--label", "zzz", "--out", str(out)]) == 2
    assert "unknown label 'zzz'" in capsys.readouterr().err
    toy = build_generator("gaussian", {})
    toy.fit(np.zeros((3, 2)) + np.arange(3)[:, None], None, 0, seed=0)
    assert main(["sample", str(toy.save(tmp_path / "toy.safetensors")), "--out", str(out)]) == 2


# ------------------------------------------------------------------- fast paths (issue 18)
#: Stated tolerances of the opt-in fast paths against the reference numerics, for the same
#: data, seed and 60 tiny-preset steps: |Δ final loss| / loss and the RMS difference of the
#: samples relative to their standard deviation. Measured on CPU (torch 2.13): tf32 0 / 0,
#: fused_adamw 1e-7 / 5e-7, bf16 autocast 2e-4 / 8e-3, compile 0 / 5e-7.
FAST_TOLERANCE = {"tf32": (1e-3, 1e-2), "fused_adamw": (1e-5, 1e-4), "autocast": (1e-2, 5e-2),
                  "compile": (1e-5, 1e-4)}
FAST_PARAMS = {"tf32": {"tf32": True}, "fused_adamw": {"fused_adamw": True}, "autocast": {"autocast": "bf16"},
               "compile": {"compile": True}}


@pytest.fixture(scope="module")
def reference_run(two_classes):
    x, y = two_classes
    g = tiny()
    loss = g.fit(x, y, 60, seed=0)["loss"]
    return loss, g.sample(16, np.arange(16) % 2, seed=1)


@pytest.mark.parametrize("path", [
    "tf32", "fused_adamw", "autocast",
    pytest.param("compile", marks=pytest.mark.slow),  # ~90 s of compilation on 2 busy cores
])
def test_fast_paths_stay_within_tolerance(two_classes, reference_run, path):
    x, y = two_classes
    ref_loss, ref_samples = reference_run
    g = tiny(**FAST_PARAMS[path])
    loss = g.fit(x, y, 60, seed=0)["loss"]
    samples = g.sample(16, np.arange(16) % 2, seed=1)
    loss_tol, sample_tol = FAST_TOLERANCE[path]
    assert abs(loss - ref_loss) / ref_loss <= loss_tol
    rms = float(np.sqrt(np.mean((samples - ref_samples) ** 2)))
    assert rms <= sample_tol * float(ref_samples.std())
    assert np.isfinite(samples).all() and samples.dtype == np.float32


def test_numeric_switches_are_restored_after_fit_and_sample(two_classes):
    """TF32 and deterministic kernels are process-wide in torch: a generator that uses them
    must not change them for the other generators (arms) of the process."""
    x, y = two_classes
    before = (torch.get_float32_matmul_precision(), torch.are_deterministic_algorithms_enabled())
    g = tiny(tf32=True, deterministic=True)
    g.fit(x, y, 3, seed=0)
    g.sample(2, np.array([0, 1]), seed=0)
    assert (torch.get_float32_matmul_precision(), torch.are_deterministic_algorithms_enabled()) == before


def test_deterministic_mode_changes_nothing_on_cpu(two_classes, reference_run):
    x, y = two_classes
    g = tiny(deterministic=True)
    assert g.fit(x, y, 60, seed=0)["loss"] == reference_run[0]
    np.testing.assert_array_equal(g.sample(16, np.arange(16) % 2, seed=1), reference_run[1])


@pytest.mark.parametrize("key,value,match", [("autocast", "fp16", "autocast must be null or 'bf16'"),
                                             ("compile", "fast", "compile must be"),
                                             ("tf32", 1, "tf32 must be true or false")])
def test_bad_fast_path_params(key, value, match):
    with pytest.raises(UserError, match=match):
        tiny(**{key: value})
