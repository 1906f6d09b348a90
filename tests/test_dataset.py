"""Dataset pipeline: resampling, cyclic extension, windows, mirroring, split, statistics, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sccl.loop.cli import main as cli_main
from sccl.motion import MotionError
from sccl.motion import quaternion as quat
from sccl.motion.dataset import DataConfig, build_dataset, extend_cyclic, resample, window_starts
from sccl.motion.deepmimic import read_directory, write_clip

RAWS = {r.motion.label: r for r in read_directory()}


def test_resample_to_same_rate_is_identity_and_interpolates_between_frames():
    walk = RAWS["walk"]
    same = resample(walk, walk.motion.fps)
    assert same.num_frames == walk.motion.num_frames
    assert np.allclose(same.root_pos, walk.motion.root_pos, atol=1e-6)
    double = resample(walk, 2 * walk.motion.fps)
    assert double.num_frames == 2 * walk.motion.num_frames - 1
    # odd frames lie halfway: positions linear, rotations by slerp
    assert np.allclose(double.root_pos[1], walk.motion.root_pos[:2].mean(axis=0), atol=1e-5)
    mid = quat.slerp(walk.motion.joint_rots[0], walk.motion.joint_rots[1], 0.5)
    assert np.allclose(quat.canonical(double.joint_rots[1]), quat.canonical(mid), atol=1e-4)


def test_resample_mixed_source_rates_to_one_rate():
    for label in ("backflip", "spin", "walk", "crawl"):  # 16, 24, 30, 60 fps sources
        out = resample(RAWS[label], 20.0)
        assert out.fps == 20.0
        assert out.num_frames == int(np.floor(RAWS[label].times[-1] * 20 + 1e-9)) + 1


def test_cyclic_extension_carries_translation_and_is_continuous_at_seams():
    walk = RAWS["walk"]
    ext = extend_cyclic(walk, 6.0)
    period = walk.times[-1]
    cycles = int(np.ceil(6.0 / period))
    assert ext.times[-1] == pytest.approx(cycles * period)
    assert ext.motion.num_frames == cycles * (walk.motion.num_frames - 1) + 1
    # the walker keeps going forward: net displacement grows ~linearly with cycles
    one = np.linalg.norm((walk.motion.root_pos[-1] - walk.motion.root_pos[0])[[0, 2]])
    total = np.linalg.norm((ext.motion.root_pos[-1] - ext.motion.root_pos[0])[[0, 2]])
    assert total > 0.8 * cycles * one
    # no jump at the seams: per-frame root step at a seam is like any other step
    steps = np.linalg.norm(np.diff(ext.motion.root_pos, axis=0), axis=1)
    seam = walk.motion.num_frames - 2
    assert steps[seam + 1] < 2 * np.median(steps)
    # non-looping clips are untouched
    assert extend_cyclic(RAWS["kick"], 6.0) is RAWS["kick"]


def test_windows_split_labels_and_counts():
    ds = build_dataset(DataConfig())
    assert len(ds.label_names) == 15
    assert ds.train.features.shape[1:] == (30, 62) and ds.train.features.dtype == np.float32
    assert len(ds.train) == 520 and len(ds.heldout) == 44
    # every window is exactly `window` frames and carries its clip's label
    for m, lab in zip(ds.train.motions[:50], ds.train.labels[:50]):
        assert m.num_frames == 30 and ds.label_names[lab] == m.label
    # train and held-out windows never overlap in time within a clip
    for clip in ds.summaries:
        train_starts = [s for (n, s, _) in ds.train.sources if n == clip.name]
        held_starts = [s for (n, s, _) in ds.heldout.sources if n == clip.name]
        if held_starts:
            assert max(train_starts) + 30 <= min(held_starts)
    # mirroring doubles the windows and pairs them
    no_mirror = build_dataset(DataConfig(mirror=False))
    assert 2 * len(no_mirror.train) == len(ds.train)
    assert np.allclose(ds.train.features[0], no_mirror.train.features[0])
    # deterministic
    again = build_dataset(DataConfig())
    assert np.array_equal(again.train.features, ds.train.features)
    assert ds.info()["total_duration_s"] == pytest.approx(33.6, abs=0.05)


def test_normalisation_stats_and_subsampling():
    ds = build_dataset(DataConfig(max_train_windows=100, seed=3))
    assert len(ds.train) == 100
    flat = ds.train.features.reshape(-1, 62).astype(np.float64)
    assert np.allclose(ds.stats.mean, flat.mean(axis=0))
    assert (ds.stats.std >= 1e-3).all()
    other = build_dataset(DataConfig(max_train_windows=100, seed=4))
    assert not np.array_equal(other.train.features, ds.train.features)


def test_split_by_clip_and_window_starts():
    ds = build_dataset(DataConfig(split="clip", holdout_clips=["walk", "run"]))
    held_labels = {ds.label_names[i] for i in ds.heldout.labels}
    assert held_labels == {"walk", "run"}
    assert not ({"walk", "run"} & {ds.label_names[i] for i in ds.train.labels})
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(3, 4, 1) == []


@pytest.mark.parametrize("field,value", [("fps", 0), ("window", 1), ("stride", 0), ("split", "random"),
                                         ("holdout_fraction", 1.5)])
def test_bad_data_settings_name_the_field(field, value):
    with pytest.raises(MotionError, match=f"data.{field}"):
        build_dataset(DataConfig(**{field: value}))


def test_custom_directory_replaces_bundled_data(tmp_path):
    for label in ("walk", "run"):
        write_clip(RAWS[label].motion, tmp_path / f"{label}.txt")
    ds = build_dataset(DataConfig(path=str(tmp_path)))
    assert ds.label_names == ["run", "walk"]


def test_data_info_cli(capsys, tmp_path):
    assert cli_main(["data", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["clips"] == 15 and info["total_duration_s"] == pytest.approx(33.6, abs=0.05)
    assert info["train_windows"] == 520
    assert cli_main(["data", "info"]) == 0
    assert "33.6 s" in capsys.readouterr().out
    (tmp_path / "bad.txt").write_text("{oops")
    assert cli_main(["data", "info", "--path", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "bad.txt" in err and "Traceback" not in err
