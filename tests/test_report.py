"""`sccl report` on a fake run directory: groups by seed, curves, table with t-intervals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from conftest import load_bench

from sccl.loop.cli import main
from sccl.metrics.report import build_report, load_run, mean_ci


def _write_arm(run, name, group, seed, fids, extra=None):
    d = run / "arms" / name
    d.mkdir(parents=True)
    (d / "arm.json").write_text(json.dumps({"name": name, "group": group, "params": {"lambda": 0.5, "seed": seed}}))
    rows = [{"generation": g, "quality/fid": f, "physics/penetrate_mm": 1.0 + g, "timing/metrics_s": 0.1} for g, f in enumerate(fids)]
    text = "\n".join(json.dumps(r) for r in rows) + "\n" + (extra or "")
    (d / "metrics.jsonl").write_text(text)


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    _write_arm(run, "corrected-s0", "corrected", 0, [10.0, 11.0, 12.0])
    _write_arm(run, "corrected-s1", "corrected", 1, [10.0, 12.0, 14.0])
    _write_arm(run, "corrected-s2", "corrected", 2, [10.0, 13.0, 16.0], extra='{"generation": 3, "quality/f')
    _write_arm(run, "baseline-s0", "baseline", 0, [10.0, 10.0, 10.0])
    return run


def test_mean_ci_matches_t_interval():
    m, half, n = mean_ci([12.0, 14.0, 16.0])
    assert (m, n) == (14.0, 3)
    assert half == pytest.approx(stats.t.ppf(0.975, 2) * 2.0 / math.sqrt(3))
    assert math.isnan(mean_ci([5.0])[1]) and mean_ci([5.0, float("nan")])[2] == 1


def test_report_html_table_and_images(run_dir, tmp_path):
    arms = load_run(run_dir)
    assert [a.group for a in arms] == ["baseline", "corrected", "corrected", "corrected"]
    assert len(arms[-1].history) == 3  # the half-written line is skipped
    out = tmp_path / "report"
    path = build_report(run_dir, out)
    text = path.read_text()
    assert "<script" not in text and "http" not in text  # static, nothing fetched
    assert f"Collapse report: {run_dir.name}<" in text and str(run_dir.parent) not in text  # no local path
    assert (out / "img" / "quality_fid.png").stat().st_size > 1000
    assert "img/quality_fid.png" in text and "timing" not in text
    final = json.loads((out / "final.json").read_text())
    cell = final["corrected"]["metrics"]["quality/fid"]
    assert cell["mean"] == 14.0 and cell["n"] == 3 and cell["generation"] == 2
    assert f"14 ± {cell['ci95']:.4g}" in text
    assert final["baseline"]["metrics"]["quality/fid"]["n"] == 1
    assert final["corrected"]["params"] == {"lambda": 0.5}


def test_cli_report(run_dir, tmp_path, capsys):
    assert main(["report", str(run_dir), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "index.html").exists()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "missing: not a directory" in capsys.readouterr().err


def test_window_averages_last_generations_then_ci_over_seeds(run_dir, tmp_path):
    final_path = build_report(run_dir, tmp_path / "w", window=2).parent / "final.json"
    cell = json.loads(final_path.read_text())["corrected"]["metrics"]["quality/fid"]
    # per arm: mean of generations 1-2 -> 11.5, 13, 14.5; then mean over the three seeds
    assert cell["mean"] == pytest.approx(13.0) and cell["window"] == 2 and cell["generation"] == 2
    assert cell["ci95"] == pytest.approx(stats.t.ppf(0.975, 2) * 1.5 / math.sqrt(3))
    assert "Last 2 generations" in (tmp_path / "w" / "index.html").read_text()


def test_moving_average_and_auto_smoothing(tmp_path):
    from sccl.metrics.report import auto_smooth, moving_average

    avg = moving_average(np.array([1.0, 3.0, np.nan, 5.0, 7.0]), 2)
    np.testing.assert_allclose(avg, [1.0, 2.0, 3.0, 5.0, 6.0])
    assert auto_smooth(50) == 1 and auto_smooth(300) == 15
    run = tmp_path / "long"
    rng = np.random.default_rng(0)
    _write_arm(run, "toy", "toy", 0, list(rng.normal(size=300)))
    text = build_report(run, tmp_path / "r").read_text()
    assert "moving average over 15 generations" in text


def test_cli_report_rejects_bad_window(run_dir, tmp_path, capsys):
    assert main(["report", str(run_dir), "--window", "0"]) == 2
    assert "window=0" in capsys.readouterr().err


def test_report_folder_is_itself_a_run_directory(run_dir, tmp_path):
    """The committed report folder must reproduce the same table without the original run."""
    out = tmp_path / "published"
    build_report(run_dir, out)
    assert (out / "arms" / "corrected-s2" / "metrics.jsonl").read_text().count("\n") == 3  # half line dropped
    again = tmp_path / "again"
    build_report(out, again)
    assert json.loads((again / "final.json").read_text()) == json.loads((out / "final.json").read_text())
    source = run_dir / "arms" / "corrected-s2" / "metrics.jsonl"
    before = source.read_bytes()
    build_report(run_dir, run_dir)  # a report written into the run itself leaves its records alone
    assert source.read_bytes() == before


def test_markdown_table_means_over_generation_range(run_dir, capsys):
    assert main(["report", str(run_dir), "--markdown", "--generations", "1-2", "--keys", "quality/fid"]) == 0
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if line.startswith("| corrected (3)"))
    # per seed: mean of generations 1-2 -> 11.5, 13, 14.5; interval over the three seeds
    half = stats.t.ppf(0.975, 2) * 1.5 / math.sqrt(3)
    assert f"13 ± {half:.4g} (11.5 / 13 / 14.5)" in row
    assert "| baseline (1) | 10 |" in text
    # the median of each seed's generations 0-2 is its middle value: 11, 12, 13
    assert main(["report", str(run_dir), "--markdown", "--generations", "0-2", "--keys", "quality/fid",
                 "--statistic", "median"]) == 0
    assert "(11 / 12 / 13)" in capsys.readouterr().out


def test_markdown_table_shows_the_real_data_floor_and_reports_carry_it(run_dir, tmp_path, capsys):
    floor = {"reference/quality/fid": 5.0, "reference/seed0/quality/fid": 6.0, "reference/seed1/quality/fid": 7.5}
    (run_dir / "reference.json").write_text(json.dumps(floor))
    assert main(["report", str(run_dir), "--markdown", "--generations", "1-2", "--keys", "quality/fid"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| real data: split (seeds 0, 1) | 5 (6 / 7.5) |"  # first row, under the header
    build_report(run_dir, tmp_path / "rep")
    assert json.loads((tmp_path / "rep" / "reference.json").read_text()) == floor  # the folder keeps the floor
    (run_dir / "reference.json").write_text("[1, 2]")
    assert main(["report", str(run_dir), "--markdown"]) == 2
    assert "reference.json" in capsys.readouterr().err


def test_markdown_table_refuses_mixed_evaluators_and_bad_ranges(run_dir, capsys):
    for i, name in enumerate(["corrected-s0", "corrected-s1"]):
        path = run_dir / "arms" / name / "metrics.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        path.write_text("".join(json.dumps({**r, "evaluator/hash": f"h{i}"}) + "\n" for r in rows))
    assert main(["report", str(run_dir), "--markdown", "--keys", "quality/fid,physics/penetrate_mm"]) == 0
    text = capsys.readouterr().out
    assert "evaluators differ" in text and "± " in text.split("| corrected")[1]  # physics still averaged
    assert main(["report", str(run_dir), "--markdown", "--generations", "5-2"]) == 2
    assert "range is empty" in capsys.readouterr().err
    assert main(["report", str(run_dir), "--markdown", "--keys", "quality/nope"]) == 2
    assert "quality/nope" in capsys.readouterr().err


def test_seed_spread_bench_sizes_the_seed_count(run_dir, capsys, monkeypatch):
    """bench/seed_spread.py: per-seed window means, their spread, and the seeds a ±rel interval needs."""
    import sys

    mod = load_bench("seed_spread")
    # sd 1 around 10: t(0.975, n-1)/sqrt(n) <= 1 first at n = 7 (2.447/2.646 = 0.925; n = 6: 1.049)
    assert mod.seeds_needed(1.0, 10.0, 0.1) == 7
    assert mod.seeds_needed(1.0, 0.0, 0.1) is None
    monkeypatch.setattr(sys, "argv", ["seed_spread.py", str(run_dir), "--generations", "1-2", "--keys", "quality/fid"])
    mod.main()
    out = json.loads(capsys.readouterr().out)
    fid = out["groups"]["corrected"]["metrics"]["quality/fid"]
    assert fid["per_seed"] == [11.5, 13.0, 14.5]  # generations 1-2 of each seed
    assert fid["between_seed_sd"] == pytest.approx(1.5) and fid["mean"] == pytest.approx(13.0)
    assert fid["within_seed_generation_sd"] == pytest.approx(np.mean([np.std([11, 12], ddof=1), np.std([12, 14], ddof=1),
                                                                       np.std([13, 16], ddof=1)]), abs=1e-4)
    monkeypatch.setattr(sys, "argv", ["seed_spread.py", str(run_dir), "--groups", "nope"])
    with pytest.raises(SystemExit) as exc:
        mod.main()
    assert exc.value.code == 2 and "nope" in capsys.readouterr().err


def test_compare_runs_finds_the_first_generation_and_the_stage_where_runs_part(run_dir, tmp_path):
    """bench/compare_runs.py: identical runs compare identical (wall-clock fields and NaN == NaN
    aside); a changed corrected sample shows in that generation's archive, a changed metric in
    its record, and raw samples and verdicts are told apart."""
    import shutil

    compare = load_bench("compare_runs")
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    rng = np.random.default_rng(0)
    for run in (run_dir, other):
        for g in (1, 2):
            d = run / "arms" / "corrected-s0" / f"gen_{g:03d}"
            d.mkdir(parents=True)
            raw = rng.standard_normal((4, 3)).astype(np.float32) if run is run_dir else \
                np.load(run_dir / "arms" / "corrected-s0" / f"gen_{g:03d}" / "synthetic.npz")["raw"]
            corrected = raw[:2] + (1e-6 if (run is other and g == 2) else 0.0)
            np.savez(d / "synthetic.npz", raw=raw, corrected=corrected, kept_index=np.array([0, 1]),
                     status=np.array(["ok", "ok", "fall", "fall"]))
    for path in (other / "arms" / "corrected-s0" / "metrics.jsonl",):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        rows[2]["quality/fid"] += 0.5
        for r in rows:
            r["correction/mean_wall_seconds"] = rng.random()  # the machine, not the result
            r["correction/mean_wbc_solve_failures"] = float("nan")
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    same = compare.compare(run_dir, run_dir)
    assert all(info["first_differing_generation"] is None for info in same["arms"].values())
    result = compare.compare(run_dir, other)
    arm = result["arms"]["corrected-s0"]
    assert arm["first_differing_generation"] == 2 and result["arms"]["baseline-s0"]["first_differing_generation"] is None
    g1, g2 = arm["generations"][1], arm["generations"][2]
    assert g1["records_identical"] and g1["archive"]["corrected_identical"]
    assert g2["fields_differing"] == 1 and g2["quality/fid"] == [12.0, 12.5]
    assert g2["archive"]["raw_identical"] and g2["archive"]["verdicts_differing"] == 0
    assert not g2["archive"]["corrected_identical"] and g2["archive"]["corrected_max_abs_diff"] > 0
    assert "12.0 / 12.5" in compare.markdown(result, ("a", "b"))


def test_phase_share_is_each_phase_over_the_generation(tmp_path):
    """bench/phase_share.py: the median share of each phase, generation 0 left out by default."""
    d = tmp_path / "run" / "arms" / "a"
    d.mkdir(parents=True)
    rows = [{"generation": 0, "time/generation_s": 10.0, "time/train_s": 10.0},
            {"generation": 1, "time/generation_s": 10.0, "time/train_s": 8.0, "time/evaluate_s": 1.0,
             "timing/metrics_s": 0.1},
            {"generation": 2, "time/generation_s": 20.0, "time/train_s": 16.0, "time/evaluate_s": 3.0,
             "timing/metrics_s": 0.2}]
    (d / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = load_bench("phase_share").shares(rows, 1, 10)
    assert out["generations"] == 2 and out["train_share_median"] == 0.8
    assert out["evaluate_share_median"] == pytest.approx(0.125) and out["evaluate_share_max"] == 0.15
    assert out["metrics_share_median"] == 0.01


def test_correction_shift_summary_per_arm():
    """bench/correction_shift_summary.py: lowering in mm, FID ratio and drift of one corrected arm;
    an uncorrected arm (no corrected fields) is left out."""
    summarise = load_bench("correction_shift_summary").summarise_arm
    gens = {"2": {"root_height_raw_m": 0.80, "root_height_raw_kept_m": 0.82, "root_height_corrected_m": 0.79,
                  "fid_raw_kept": 100.0, "fid_corrected": 300.0},
            "1": {"root_height_raw_m": 0.85, "root_height_raw_kept_m": 0.85, "root_height_corrected_m": 0.84,
                  "fid_raw_kept": 100.0, "fid_corrected": 50.0}}
    out = summarise(gens)
    assert out["lowered_mm"] == {"mean": 20.0, "min": 10.0, "max": 30.0}
    assert out["fid_ratio_median"] == 1.75 and out["batches_farther"] == "1/2"
    assert (out["root_height_first_m"], out["root_height_last_m"]) == (0.85, 0.80)
    assert summarise({"1": {"root_height_raw_m": 0.85, "fid_raw": 90.0}}) is None


def test_skate_split_bench_reads_raw_and_corrected_samples(tmp_path, capsys, monkeypatch):
    """bench/skate_split.py: per arm and generation, the skate parts of the raw samples, of the
    kept ones raw and of the same ones corrected (a pose dragged over the floor slides; the same
    drag 1 cm up hovers); a folder without arms/ is refused with exit 2."""
    import dataclasses

    from sccl.loop.config import config_from_dict
    from sccl.motion.deepmimic import bundled_motion_dir, read_clip
    from sccl.motion.features import motion_to_features
    from sccl.simulators import ground_align

    frames, fps = 30, 20.0
    identity = np.array([0.0, 0.0, 0.0, 1.0])
    walk = read_clip(bundled_motion_dir() / "humanoid3d_walk.txt").motion
    standing = walk.slice(0, frames).replace(
        fps=fps, root_pos=np.tile([0.0, 1.0, 0.0], (frames, 1)), root_rot=np.tile(identity, (frames, 1)),
        joint_rots=np.tile(identity, (frames, 8, 1)), joint_angles=np.zeros((frames, 4)))
    on_floor, _ = ground_align(standing, "min")
    drag = np.zeros((frames, 3))
    drag[:, 0] = np.arange(frames) * 0.01
    sliding = motion_to_features(on_floor.replace(root_pos=on_floor.root_pos + drag))
    hovering = motion_to_features(on_floor.replace(root_pos=on_floor.root_pos + drag + [0.0, 0.01, 0.0]))

    cfg = dataclasses.asdict(config_from_dict({"corrector": {"name": "physics"}, "data": {"fps": fps}}))
    arm = tmp_path / "run" / "arms" / "corrected-s0"
    (arm / "gen_001").mkdir(parents=True)
    (arm / "arm.json").write_text(json.dumps({"name": "corrected-s0", "config": cfg}, default=str))
    np.savez(arm / "gen_001" / "synthetic.npz", raw=np.stack([hovering, hovering]), raw_labels=np.array([0, 0]),
             corrected=sliding[None], kept_index=np.array([1]), status=np.array(["fall", "ok"]))
    mod = load_bench("skate_split")
    monkeypatch.setattr("sys.argv", ["skate_split.py", str(tmp_path / "run")])
    mod.main()
    row = json.loads(capsys.readouterr().out)["arms"]["corrected-s0"]["1"]
    assert row["raw"]["n"] == 2 and row["raw_kept"]["n"] == row["corrected"]["n"] == 1
    assert row["raw_kept"]["skate_mm"] == pytest.approx(20.0, abs=0.5)
    assert row["raw_kept"]["skate_hovering_mm"] == pytest.approx(row["raw_kept"]["skate_mm"])
    assert row["corrected"]["skate_sliding_mm"] == pytest.approx(20.0, abs=0.5)
    assert row["corrected"]["skate_hovering_mm"] == pytest.approx(0.0, abs=1e-6)
    monkeypatch.setattr("sys.argv", ["skate_split.py", str(tmp_path)])
    with pytest.raises(SystemExit) as exc:
        mod.main()
    assert exc.value.code == 2 and "no arms/ folder" in capsys.readouterr().err


def test_correction_seeds_groups_runs_that_differ_only_by_seed(tmp_path, capsys, monkeypatch):
    """bench/correction_seeds.py: reports of the same settings (however the preset spelled them)
    group together by seed; kept counts, their range and the clips kept on every seed; a seed given
    twice or a file that is not a report is refused with its name."""
    import sys

    def report(path, seed, kept, mode="sampling_low_kd_short", extra=None):
        config = {"assist_mode": "sampling", "damping_scale": 0.1, **(extra or {})}
        if seed:
            config["sampling_seed"] = seed
        clips = ["walk", "run", "spin"]
        path.write_text(json.dumps({"modes": {mode: {
            "config": config,
            "bundled": {c: {} for c in clips},
            "bundled_summary": {"kept": kept},
            "targets": {"walk_root_relative_mm_le_60": {"value": 40.0 + 10 * seed}},
        }}}))
        return str(path)

    files = [report(tmp_path / "a.json", 0, ["walk", "run", "spin"]),
             # the same settings with the default budget spelled out, under another preset name
             report(tmp_path / "b.json", 1, ["walk", "spin"], mode="sampling_budget", extra={"sampling_assist_cap_g": 0.0}),
             report(tmp_path / "c.json", 0, ["walk"], extra={"sampling_ramp_s": 0.05})]
    mod = load_bench("correction_seeds")
    monkeypatch.setattr(sys, "argv", ["correction_seeds.py", *files])
    mod.main()
    groups = json.loads(capsys.readouterr().out)
    assert len(groups) == 2
    base = next(g for g in groups if "sampling_ramp_s" not in g["settings"])
    assert base["seeds"] == [0, 1] and base["kept_mean"] == 2.5 and (base["kept_min"], base["kept_max"]) == (2, 3)
    assert base["kept_on_every_seed"] == ["spin", "walk"]
    assert base["per_seed"]["1"]["fell"] == ["run"]  # JSON keys are strings
    assert base["targets_over_seeds"]["walk_root_relative_mm_le_60"] == {"mean": 45.0, "min": 40.0, "max": 50.0, "n": 2}
    monkeypatch.setattr(sys, "argv", ["correction_seeds.py", files[0], files[0]])
    with pytest.raises(SystemExit, match="seed 0 is given twice"):
        mod.main()
    (tmp_path / "bad.json").write_text("[]")
    monkeypatch.setattr(sys, "argv", ["correction_seeds.py", str(tmp_path / "bad.json")])
    with pytest.raises(SystemExit, match="bad.json: not a bench/correction.py report"):
        mod.main()


def test_correction_judge_says_which_feature_change_costs_recognition():
    """bench/correction.py's judge: with an evaluator that recognises a window only while the
    columns it watches are the raw ones, a change there loses recognition, putting that part (or
    that joint's rotation) back restores it, and putting anything else back does not; the raw
    windows are recognised and a part nobody touched moves nothing."""
    from types import SimpleNamespace

    from sccl.motion import quaternion as quat
    from sccl.motion.deepmimic import bundled_motion_dir, read_clip
    from sccl.motion.features import SLICES, motion_to_features
    from sccl.motion.skeleton import SPHERICAL_JOINTS

    walk = read_clip(bundled_motion_dir() / "humanoid3d_walk.txt").motion
    windows = [walk.slice(0, 20), walk.slice(10, 30)]
    raw = np.stack([motion_to_features(m) for m in windows])
    judge = load_bench("correction").judge

    class WatchingEvaluator:  # label 1 when the watched columns equal one of the raw windows'
        def __init__(self, columns):
            self.columns = columns

        def predict(self, feats):
            return np.array([int(any(np.allclose(f[..., self.columns], r[..., self.columns]) for r in raw))
                             for f in feats])

        def embed(self, feats):
            return feats.reshape(len(feats), -1)

    bent = windows[1].replace(joint_angles=windows[1].joint_angles + 0.3)
    res = SimpleNamespace(kept_index=np.array([0, 1]), samples=[windows[0], bent])
    out = judge(WatchingEvaluator(SLICES["joint_angles"]), raw, np.array([1, 1]), res, np.ones(raw.shape[-1]))
    assert out["accuracy_raw_same_windows"] == 1.0 and out["accuracy_corrected"] == 0.5
    assert out["accuracy_with_part_restored"]["joint_angles"] == 1.0
    assert all(v == 0.5 for k, v in out["accuracy_with_part_restored"].items() if k != "joint_angles")
    assert set(out["accuracy_with_joint_rotation_restored"].values()) == {0.5}  # not a spherical joint
    assert out["feature_rms_moved_z_by_part"]["joint_angles"] > 0.1
    assert out["feature_rms_moved_z_by_part"]["root_yaw_vel"] == 0.0
    assert out["root_yaw_vel_moved_z_fast"] == 0.0
    low, high = out["accuracy_corrected_ci95"]
    assert low < 0.5 < high

    hip = SPHERICAL_JOINTS.index("right_hip")
    rots = windows[1].joint_rots.copy()
    rots[:, hip] = quat.multiply(rots[:, hip], quat.from_rotvec(np.array([0.0, 0.0, 0.4])))
    res = SimpleNamespace(kept_index=np.array([0, 1]), samples=[windows[0], windows[1].replace(joint_rots=rots)])
    out = judge(WatchingEvaluator(SLICES["joint_rot_6d"]), raw, np.array([1, 1]), res, np.ones(raw.shape[-1]))
    assert out["accuracy_corrected"] == 0.5 and out["accuracy_with_part_restored"]["joint_rot_6d"] == 1.0
    by_joint = out["accuracy_with_joint_rotation_restored"]
    assert by_joint["right_hip"] == 1.0 and all(v == 0.5 for k, v in by_joint.items() if k != "right_hip")
