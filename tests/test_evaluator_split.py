"""One evaluator and one set of reference statistics per dataset and split (issue 17 §1): seeds
with their own ``data.n`` subsample are scored in the same space, and ``sccl report`` refuses to
average evaluator metrics across arms scored by different evaluators."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from sccl.metrics.evaluator import get_evaluator
from sccl.metrics.motion_metrics import get_reference_stats
from sccl.metrics.report import build_report
from sccl.motion.dataset import DataConfig, build_dataset


@pytest.fixture(scope="module")
def datasets():
    full = build_dataset(DataConfig())
    subs = [build_dataset(DataConfig(max_train_windows=120, seed=s)) for s in (0, 1)]
    return full, subs


def test_subsample_is_unchanged_and_split_is_the_whole_split(datasets):
    full, (s0, s1) = datasets
    assert full.full_train is None and full.split_dataset() is full
    # the seed's training windows are the whole split's rows at the seed's draw, as before
    keep = np.sort(np.random.default_rng(0).choice(len(full.train), 120, replace=False))
    np.testing.assert_array_equal(s0.train.features, full.train.features[keep])
    np.testing.assert_array_equal(s0.train.labels, full.train.labels[keep])
    assert not np.array_equal(s0.train.features, s1.train.features)
    for s in (s0, s1):
        split = s.split_dataset()
        assert split is s.split_dataset()  # cached: reference statistics are cached per object
        np.testing.assert_array_equal(split.train.features, full.train.features)
        np.testing.assert_array_equal(split.stats.mean, full.stats.mean)
        np.testing.assert_array_equal(split.heldout.features, full.heldout.features)


def test_seeds_share_one_evaluator_and_reference(datasets, tmp_path):
    full, (s0, s1) = datasets
    evs = [get_evaluator(d, tmp_path, steps=3) for d in (full, s0, s1)]
    assert evs[0].info["hash"] == evs[1].info["hash"] == evs[2].info["hash"]
    assert len(list(tmp_path.glob("evaluator-*.safetensors"))) == 1
    r0, r1 = get_reference_stats(s0, evs[1]), get_reference_stats(s1, evs[1])
    np.testing.assert_array_equal(r0.kin_norm(np.ones((1, r0.kin.real.shape[1]))),
                                  r1.kin_norm(np.ones((1, r1.kin.real.shape[1]))))
    assert r0.num_reference == r1.num_reference == len(full.heldout)


def _arm(run, name, group, seed, fid, hash_):
    d = run / "arms" / name
    d.mkdir(parents=True)
    (d / "arm.json").write_text(json.dumps({"name": name, "group": group, "params": {"seed": seed}}))
    rows = [{"generation": g, "quality/fid": fid + g, "physics/penetrate_mm": 1.0, "evaluator/hash": hash_}
            for g in range(2)]
    (d / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_report_refuses_to_average_across_evaluators(tmp_path):
    run = tmp_path / "run"
    _arm(run, "mixed-s0", "mixed", 0, 10.0, "aaa")
    _arm(run, "mixed-s1", "mixed", 1, 20.0, "bbb")
    _arm(run, "same-s0", "same", 0, 10.0, "aaa")
    _arm(run, "same-s1", "same", 1, 12.0, "aaa")
    html = build_report(run, tmp_path / "r").read_text()
    final = json.loads((tmp_path / "r" / "final.json").read_text())
    mixed, same = final["mixed"], final["same"]
    assert mixed["evaluators_differ"] and mixed["evaluators"] == ["aaa", "bbb"]
    assert math.isnan(mixed["metrics"]["quality/fid"]["mean"])
    assert mixed["metrics"]["quality/fid"]["refused"] == "evaluators differ"
    assert mixed["metrics"]["physics/penetrate_mm"]["mean"] == 1.0  # not in the evaluator's space
    assert not same["evaluators_differ"] and same["metrics"]["quality/fid"]["mean"] == 12.0
    assert "Evaluators differ" in html and "evaluators differ</td>" in html


def test_provenance_records_versions_cpu_and_threads():
    import torch

    from sccl.loop.provenance import provenance

    p = provenance()
    assert all(isinstance(k, str) and k.startswith("env.") and isinstance(v, str) for k, v in p.items())
    assert p["env.torch"] == torch.__version__ and p["env.torch_threads"] == str(torch.get_num_threads())
    assert p["env.pybullet"] != "absent" and p["env.cpu_simd"] and p["env.torch_cpu_capability"]
    assert all(len(p[k]) == 12 for k in ("env.libm_sha", "env.numpy_math_sha", "env.torch_math_sha"))


def test_libm_fingerprint_sees_glibcs_cpu_dispatch():
    """The fingerprint that explains a physics arm's machine dependence must change when glibc's
    libm loses its FMA/AVX2 variants (as on a CPU without them), and only then."""
    from sccl.loop.provenance import cpu_info

    if not {"fma", "avx2"} <= set(cpu_info()["env.cpu_simd"].split(",")):
        pytest.skip("this CPU has no FMA/AVX2 variants to turn off")
    code = "from sccl.loop.provenance import math_fingerprints as m; print(m()['env.libm_sha'], m()['env.torch_math_sha'])"

    def fingerprints(**env: str) -> list[str]:
        clean = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
        out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                             check=True)
        return out.stdout.split()

    default, again = fingerprints(), fingerprints()
    no_fma = fingerprints(GLIBC_TUNABLES="glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F,-AVX512VL,-AVX512BW")
    assert default == again
    assert no_fma[0] != default[0] and no_fma[1] == default[1]  # libm changed, torch's own math did not


def test_knn_radii_in_blocks_equal_the_full_matrix():
    from scipy.spatial.distance import cdist

    from sccl.metrics.prdc import knn_radii

    x = np.random.default_rng(0).standard_normal((2500, 4))  # > one block of rows
    np.testing.assert_array_equal(knn_radii(x, 5), np.partition(cdist(x, x), 5, axis=1)[:, 5])


def test_corruptions_vanish_at_severity_zero_and_grow_with_it():
    import torch

    from sccl.metrics.evaluator import corrupt, natural_variant

    x = torch.randn(64, 30, 62, generator=torch.Generator().manual_seed(0)).cumsum(1) / 5  # smooth-ish
    g = torch.Generator().manual_seed(1)
    torch.testing.assert_close(corrupt(x, torch.zeros(64), g), x, rtol=0, atol=0)
    dist = [float((corrupt(x, torch.full((64,), s), torch.Generator().manual_seed(2)) - x).pow(2).mean())
            for s in (0.1, 0.5, 1.5)]
    assert dist[0] < dist[1] < dist[2]
    v = natural_variant(x, torch.Generator().manual_seed(3))
    assert v.shape == x.shape and float((v - x).pow(2).mean()) < dist[2]


def test_nn_train_distance_matches_the_direct_distances_and_copies_score_zero():
    from scipy.spatial.distance import cdist

    from sccl.metrics.motion_metrics import ReferenceStats

    rng = np.random.default_rng(0)
    train = rng.standard_normal((300, 6, 4))
    ref = ReferenceStats.__new__(ReferenceStats)  # only the memorisation part, without an evaluator
    ref.feat_mean, ref.feat_std, ref.window = np.zeros(4), np.ones(4), 6
    ref.train_flat, ref._train_sq = ref._flat(train), None
    x = np.concatenate([rng.standard_normal((40, 6, 4)), train[:5]])
    want = np.sqrt(cdist(ref._flat(x), ref.train_flat, "sqeuclidean").min(axis=1) / 24)
    got = ref.nn_train_distance(x)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert (got[-5:] == 0.0).all()


def test_floor_per_seed_when_seeds_differ_in_data(tmp_path):
    from types import SimpleNamespace

    from sccl.loop.config import DataSection
    from sccl.loop.floors import floor_metrics
    from sccl.loop.realdata import load_real_data

    arms = [SimpleNamespace(config=SimpleNamespace(data=DataSection(n=120), seed=s)) for s in (0, 1, 1)]
    ev = get_evaluator(load_real_data(arms[0].config.data, 0).dataset, tmp_path, steps=3)
    floor = floor_metrics(arms, ev)
    assert floor["reference/quality/fid_train"] == pytest.approx(0.0, abs=1e-6)  # the whole split vs itself
    for s in (0, 1):
        assert floor[f"reference/seed{s}/memorisation/nn_train_dist"] == 0.0  # its windows are in the split
    assert floor["reference/seed0/quality/fid"] != floor["reference/seed1/quality/fid"]
    assert not any(k.startswith("reference/seed2") for k in floor)
    full = [SimpleNamespace(config=SimpleNamespace(data=DataSection(), seed=s)) for s in (0, 1)]
    assert not any("/seed" in k for k in floor_metrics(full, ev))  # no subsample: the split's floor only
