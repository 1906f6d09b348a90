"""Correction fanned out over real Ray actors: order, sharding invariance, worker replacement."""

from __future__ import annotations

import numpy as np
import pytest

from sccl.correctors import build_corrector
from sccl.loop.correction_pool import CorrectionPool, correct_batch, correct_in_process, shards
from sccl.motion.deepmimic import bundled_motion_dir, read_clip


@pytest.fixture(scope="module")
def clips():
    walk = read_clip(bundled_motion_dir() / "humanoid3d_walk.txt").motion
    run = read_clip(bundled_motion_dir() / "humanoid3d_run.txt").motion
    hanging = walk.replace(root_pos=walk.root_pos + np.array([0.0, 1.5, 0.0]), name="hanging")
    out = []
    for i in range(8):
        src = (walk, run, hanging)[i % 3]
        out.append(src.slice(0, 12 + i).replace(name=f"clip{i}"))
    return out


def test_shards():
    assert shards(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert shards(0, 3) == []


def test_in_process_matches_whole_batch():
    cfg = {"gamma": 1.0, "target_mean": [0.0], "target_cov": [[1.0]]}
    x = np.arange(10.0)[:, None]
    c = build_corrector("ideal", cfg)
    whole = c.correct(x, seed=3)
    sharded = correct_in_process(c, x, seed=3, batch_size=3)
    assert np.array_equal(whole.samples, sharded.samples) and whole.status == sharded.status
    small = correct_batch("ideal", cfg, x, seed=3, workers=None, batch_size=8)  # small: no Ray
    assert np.array_equal(small.samples, whole.samples)


def test_pool_vector_order_and_invariance(ray_session):
    cfg = {"gamma": 1.0, "target_mean": [0.0, 0.0], "target_cov": [[1, 0], [0, 1]]}
    x = np.arange(200.0).reshape(100, 2)
    expected = build_corrector("ideal", cfg).correct(x, seed=11)
    with CorrectionPool("ideal", cfg, num_workers=2, batch_size=7) as pool:
        got = pool.correct(x, seed=11)
        again = pool.correct(x[:5], seed=11)  # reuse across "generations"
    assert np.array_equal(got.samples, expected.samples)
    assert np.array_equal(got.kept_index, expected.kept_index)
    assert got.status == expected.status and len(got.diagnostics) == 100
    assert np.array_equal(again.samples, expected.samples[:5])


def test_pool_prepare_reference(ray_session):
    rng = np.random.default_rng(0)
    real = np.concatenate([rng.normal(c, 0.1, (50, 2)) for c in ([0, 0], [5, 5])])
    res = correct_batch("nearest_cluster", {"k": 2}, np.array([[0.2, 0.1], [4.0, 4.5]]), seed=0,
                        workers=2, batch_size=1, prepare_reference=real)
    assert np.allclose(np.sort(res.samples[:, 0]), [0.0, 5.0], atol=0.1)


def test_pool_physics_survives_killed_worker(ray_session, clips):
    cfg = {"policy": "keep_partial", "ground_align": "none", "assist_cap_g": 0.0}  # hanging clips fall
    expected = correct_batch("physics", cfg, clips, seed=0, workers=0)
    pool = CorrectionPool("physics", cfg, num_workers=2, batch_size=1, in_flight_per_worker=2)
    try:
        killed = []

        def kill_once(done, total):
            if not killed:
                killed.append(pool.actors[0])
                ray_session.kill(pool.actors[0], no_restart=True)

        got = pool.correct(clips, seed=0, progress=kill_once)
        assert killed and pool.replaced >= 1
        after = pool.correct(clips[:2], seed=0)  # the replacement actor works
    finally:
        pool.close()
    assert got.status == expected.status
    assert got.counts == expected.counts and sum(got.counts.values()) == len(clips)
    assert list(got.kept_index) == list(expected.kept_index)
    for a, b in zip(got.samples, expected.samples):
        assert a.name == b.name and a.allclose(b, atol=1e-9)
    assert after.status == expected.status[:2]
    assert "fall" in got.status  # the hanging clips fall and are kept partially
