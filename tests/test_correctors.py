"""Correctors: physics on real PyBullet, failure policies, registry/plugins, toy correctors, CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from sccl.correctors import (
    CorrectionResult, Corrector, CorrectorError, SampleOutcome, apply_policy, available_correctors, build_corrector,
    summarize,
)
from sccl.correctors.base import count_status
from sccl.correctors.physics import crouch_mm, root_height_bias_mm
from sccl.loop.cli import main as cli_main
from sccl.motion import quaternion as quat
from sccl.motion.deepmimic import bundled_motion_dir, read_clip, write_clip
from sccl.simulators import physics_metrics


class ScalePlugin(Corrector):
    """A third-party corrector, loaded through ``test_correctors:ScalePlugin`` or an entry point."""

    name = "scale"
    domain = "vector"
    config_keys = ("factor",)

    def correct(self, batch, seed, *, offset=0):
        out = [SampleOutcome("ok", corrected=row * float(self.config.get("factor", 2.0))) for row in batch]
        return apply_policy(batch, out, self.policy, self.domain)


@pytest.fixture(scope="module")
def walk():
    return read_clip(bundled_motion_dir() / "humanoid3d_walk.txt").motion


@pytest.fixture(scope="module")
def physics():
    c = build_corrector("physics", {})
    yield c
    c.close()


def corrupted(walk):
    rng = np.random.default_rng(0)
    noise = quat.from_axis_angle(np.array([1.0, 0.0, 0.0]), rng.normal(0, 0.08, walk.joint_rots.shape[:2]))
    jitter = walk.replace(joint_rots=quat.multiply(walk.joint_rots, noise),
                          joint_angles=walk.joint_angles + rng.normal(0, 0.08, walk.joint_angles.shape), name="jitter")
    sunk = walk.replace(root_pos=walk.root_pos - np.array([0.0, 0.1, 0.0]), name="sunk")
    floating = walk.replace(root_pos=walk.root_pos + np.array([0.0, 0.2, 0.0]), name="floating")
    return [jitter, sunk, floating]


def test_physics_corrects_walk(physics, walk):
    res = physics.correct([walk], seed=0)
    assert res.status == ["ok"] and res.counts == {"ok": 1}
    d = res.diagnostics[0]
    assert d["success"] == 1.0 and np.isnan(d["fall_time_s"])
    assert d["penetrate_after_mm"] <= 5.0
    assert d["root_relative_error_mm"] <= 60.0
    assert abs(d["root_height_bias_mm"]) <= 40.0  # signed: a crouch or sag shows as negative
    assert 0.0 < d["assist_fraction_g"] < 1.0
    out = res.samples[0]
    assert out.num_frames == walk.num_frames and out.fps == walk.fps and out.label == walk.label


def test_corrupted_inputs_get_better(physics, walk):
    clips = corrupted(walk)
    res = physics.correct(clips, seed=0)
    assert res.status == ["ok", "ok", "ok"]
    for clip, out in zip(clips, res.samples):
        before, after = physics_metrics(clip), physics_metrics(out)
        assert after["phys_err_mm"] < before["phys_err_mm"], clip.name
    jitter_before = physics_metrics(clips[0])["jitter"]
    assert physics_metrics(res.samples[0])["jitter"] < jitter_before


@pytest.mark.parametrize("policy,kept", [("reject", [0]), ("keep_raw", [0, 1]), ("keep_partial", [0, 1])])
def test_fall_policies(walk, policy, kept):
    corrector = build_corrector("physics", {"assist_cap_g": 0.0, "policy": policy})
    try:
        hanging = walk.replace(root_pos=walk.root_pos + np.array([0.0, 1.5, 0.0]), name="hanging")
        still = walk.slice(0, 2)  # 2 frames: too short to fall
        res = corrector.correct([still, hanging], seed=0)
    finally:
        corrector.close()
    assert res.status == ["ok", "fall"]
    assert sum(res.counts.values()) == 2
    assert list(res.kept_index) == kept
    assert [d["kept"] for d in res.diagnostics] == [1.0 if i in kept else 0.0 for i in range(2)]
    assert 0.0 < res.diagnostics[1]["fall_time_s"] < 2.0  # dropped from 1.5 m: on the ground well before 2 s
    if policy == "keep_raw":
        assert res.samples[1] is hanging
    if policy == "keep_partial":
        assert res.samples[1].num_frames < hanging.num_frames


def test_physics_reports_honesty_diagnostics(physics, walk):
    res = physics.correct([walk.slice(0, 30)], seed=0)
    d = res.diagnostics[0]
    for key in ("assist_g", "residual_g", "residual_force_g", "residual_torque_g", "residual_flight_share",
                "contact_violation_share", "sim_airborne_share", "airborne_share_after"):
        assert np.isfinite(d[key]), key
    assert 0.0 < d["residual_g"] <= d["assist_g"] + 1e-9


@pytest.mark.parametrize("policy,kept", [("reject", []), ("keep_raw", [0])])
def test_residual_threshold_is_a_counted_failure(walk, policy, kept):
    """Walk needs a residual of ~0.3 m·g from the legacy assist: a 0.05 threshold refuses it."""
    corrector = build_corrector("physics", {"max_residual_g": 0.05, "policy": policy})
    try:
        clip = walk.slice(0, 30)
        res = corrector.correct([clip], seed=0)
    finally:
        corrector.close()
    assert res.status == ["residual"] and res.counts == {"residual": 1}
    assert list(res.kept_index) == kept
    assert res.diagnostics[0]["residual_g"] > 0.05 and res.diagnostics[0]["success"] == 0.0
    if policy == "keep_raw":
        assert res.samples[0] is clip


def test_exploding_state_is_a_counted_nan(physics, walk):
    """A state outside the simulator's sane range (|root| >= 1e4 m) ends as status "nan" for that
    sample only; the rest of the batch is corrected."""
    far = walk.slice(0, 10).replace(root_pos=walk.root_pos[:10] + np.array([2e4, 0.0, 0.0]), name="far")
    res = physics.correct([far, walk.slice(0, 10)], seed=0)
    assert res.status == ["nan", "ok"] and list(res.kept_index) == [1]
    assert res.diagnostics[0]["success"] == 0.0


def _check_fidelity_threshold(clip, setting: str, diagnostic: str, limits: tuple) -> None:
    """Each (limit, status): the clip corrected under ``setting=limit`` ends with that status,
    and "unfaithful" exactly when |diagnostic| exceeds the limit; a negative limit is refused."""
    for limit, status in limits:
        corrector = build_corrector("physics", {setting: limit})
        try:
            res = corrector.correct([clip], seed=0)
        finally:
            corrector.close()
        value = res.diagnostics[0][diagnostic]
        assert res.status == [status] and res.counts == {status: 1}, (limit, value)
        assert (abs(value) > limit) == (status == "unfaithful"), (limit, value)
    with pytest.raises(CorrectorError, match=setting):
        build_corrector("physics", {setting: -5})


def test_root_height_threshold_rejects_a_crouch_as_unfaithful(walk):
    """The default corrector ends walk ~14 mm low: a 1 mm threshold refuses it, 40 mm keeps it."""
    _check_fidelity_threshold(walk.slice(0, 30), "max_root_height_bias_mm", "root_height_bias_mm",
                              ((1.0, "unfaithful"), (40.0, "ok")))


def test_crouch_is_posture_only_where_root_height_bias_also_counts_grounding(walk):
    """Lifting a whole clip 10 cm changes its root height by 100 mm and its crouch by nothing:
    crouch measures the root's height above the body's own lowest point."""
    clip = walk.slice(0, 30)
    lifted = clip.replace(root_pos=clip.root_pos + np.array([0.0, 0.1, 0.0]))
    assert root_height_bias_mm(clip, lifted) == pytest.approx(100.0)
    assert crouch_mm(clip, lifted) == pytest.approx(0.0, abs=1e-9)


def test_crouch_threshold_rejects_a_compressed_body_as_unfaithful(walk):
    """The default corrector bends walk's legs by a few mm: a 0.5 mm limit refuses it, 40 mm keeps it."""
    _check_fidelity_threshold(walk.slice(0, 30), "max_crouch_mm", "crouch_mm", ((0.5, "unfaithful"), (40.0, "ok")))


def test_fidelity_bench_summarises_and_refuses_a_missing_arm(tmp_path, capsys, monkeypatch):
    """bench/fidelity.py: quantiles and pass shares over the tracked samples (NaN = not tracked);
    an arm that is not in the run is a clear error, exit 2."""
    import importlib.util
    import pathlib
    import sys

    path = pathlib.Path(__file__).resolve().parents[1] / "bench" / "fidelity.py"
    spec = importlib.util.spec_from_file_location("fidelity", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    diags = [{"crouch_mm": v, "root_height_bias_mm": -v} for v in (5.0, 10.0, 25.0, 45.0)]
    diags.append({"crouch_mm": float("nan"), "root_height_bias_mm": float("nan")})  # a clip that blew up
    row = mod.summarise(diags, kept=3, limits=[20.0, 30.0])
    assert row["n"] == 5 and row["kept"] == 3
    assert row["crouch_mm"]["tracked"] == 4 and row["crouch_mm"]["share_within"] == {"20": 0.5, "30": 0.75}
    assert row["root_height_bias_mm"]["share_within"] == {"20": 0.5, "30": 0.75}  # |signed| against the limit
    assert row["crouch_mm"]["quantiles_5_25_50_75_95"][2] == pytest.approx(17.5)
    monkeypatch.setattr(sys, "argv", ["fidelity.py", str(tmp_path), "--arm", "nope"])
    with pytest.raises(SystemExit) as exc:
        mod.main()
    assert exc.value.code == 2 and "nope" in capsys.readouterr().err


def test_residual_threshold_validated():
    with pytest.raises(CorrectorError, match="max_residual_g"):
        build_corrector("physics", {"max_residual_g": -1})
    with pytest.raises(CorrectorError, match="max_residual_g"):
        build_corrector("physics", {"max_residual_g": "lots"})


def test_exception_is_counted_not_raised(walk, monkeypatch):
    corrector = build_corrector("physics", {"policy": "keep_partial"})
    try:
        def boom(motion, **kw):
            raise RuntimeError("solver exploded")

        monkeypatch.setattr(corrector.sim, "track", boom)
        res = corrector.correct([walk, walk], seed=0)
    finally:
        corrector.close()
    assert res.status == ["error", "error"] and res.counts == {"error": 2}
    assert res.samples == [] and len(res.kept_index) == 0
    assert len(res.diagnostics) == 2


def test_nan_never_reaches_output():
    batch = np.array([[0.0, 1.0], [np.nan, 1.0], [2.0, 3.0]])
    outcomes = [SampleOutcome("ok", corrected=batch[0]), SampleOutcome("fall", partial=batch[1]),
                SampleOutcome("ok", corrected=np.array([np.inf, 0.0]))]
    for policy in ("reject", "keep_raw", "keep_partial"):
        res = apply_policy(batch, outcomes, policy, "vector")
        assert np.isfinite(res.samples).all()
        assert sum(res.counts.values()) == 3
        assert res.status[2] == "nan"
    res = build_corrector("none", {"policy": "keep_raw"}).correct(batch, seed=0)
    assert list(res.kept_index) == [0, 2] and res.counts == {"ok": 2, "nan": 1}


def test_summary_and_merge():
    a = CorrectionResult(np.zeros((1, 2)), np.array([0]), ["ok", "fall"], [{"x": 1.0}, {"x": 3.0}], {"ok": 1, "fall": 1})
    b = CorrectionResult(np.ones((1, 2)), np.array([1]), ["nan", "ok"], [{"x": np.nan}, {"x": 5.0}], {"nan": 1, "ok": 1})
    merged = CorrectionResult.merge([a, b], [0, 2], "vector")
    assert list(merged.kept_index) == [0, 3] and merged.status == ["ok", "fall", "nan", "ok"]
    assert merged.counts == count_status(merged.status) == {"ok": 2, "fall": 1, "nan": 1}
    s = summarize([merged])
    assert s["acceptance_rate"] == 0.5 and s["count_ok"] == 2.0 and s["mean_x"] == 3.0


# ------------------------------------------------------------------ registry

def test_builtins_listed():
    assert {"none", "physics", "ideal", "nearest_cluster"} <= set(available_correctors())


def test_unknown_name_lists_available():
    with pytest.raises(CorrectorError) as err:
        build_corrector("phisics", {})
    msg = str(err.value)
    assert "phisics" in msg and "physics" in msg and "nearest_cluster" in msg


def test_bad_config_names_corrector():
    with pytest.raises(CorrectorError, match="physics.*assist_cap"):
        build_corrector("physics", {"assist_cap": 1})
    with pytest.raises(CorrectorError, match="policy"):
        build_corrector("none", {"policy": "drop"})
    with pytest.raises(CorrectorError, match="cannot import module"):
        build_corrector("no_such_module_xyz:Thing", {})
    with pytest.raises(CorrectorError, match="not a subclass"):
        build_corrector("json:dumps", {})


def test_module_class_plugin():
    c = build_corrector("test_correctors:ScalePlugin", {"factor": 3})
    res = c.correct(np.ones((2, 2)), seed=0)
    assert np.allclose(res.samples, 3.0)


def test_entry_point_plugin(tmp_path, monkeypatch):
    dist = tmp_path / "sccl_test_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sccl-test-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sccl.correctors]\nscale = test_correctors:ScalePlugin\n"
                                           "broken = no_such_module_xyz:Thing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "scale" in available_correctors()
    c = build_corrector("scale", {"factor": 0.5})
    assert isinstance(c, ScalePlugin)
    assert np.allclose(c.correct(np.ones((1, 3)), seed=0).samples, 0.5)
    with pytest.raises(CorrectorError, match="broken"):
        build_corrector("broken", {})


# ------------------------------------------------------------------ toy correctors

def test_ideal_replacement_rate_and_sharding():
    gamma = 0.5
    c = build_corrector("ideal", {"gamma": gamma, "target_mean": [5.0, 5.0], "target_cov": [[1, 0], [0, 1]]})
    x = np.zeros((4000, 2))
    res = c.correct(x, seed=7)
    replaced = np.array([d["replaced"] for d in res.diagnostics])
    assert replaced.mean() == pytest.approx(gamma / (1 + gamma), abs=0.03)
    assert np.allclose(res.samples[replaced == 1].mean(0), [5.0, 5.0], atol=0.1)
    assert np.all(res.samples[replaced == 0] == 0.0)
    # sharding invariance: two halves with offsets == the whole batch
    h1 = c.correct(x[:1500], seed=7, offset=0)
    h2 = c.correct(x[1500:], seed=7, offset=1500)
    assert np.array_equal(np.concatenate([h1.samples, h2.samples]), res.samples)


def test_ideal_prepare_fits_target():
    rng = np.random.default_rng(0)
    real = rng.normal([1.0, -2.0], 0.5, size=(2000, 2))
    c = build_corrector("ideal", {"gamma": 1e9})
    c.prepare(real)
    out = c.correct(np.zeros((3000, 2)), seed=1).samples
    assert np.allclose(out.mean(0), [1.0, -2.0], atol=0.05)
    assert np.allclose(out.std(0), 0.5, atol=0.05)
    with pytest.raises(CorrectorError, match="no target"):
        build_corrector("ideal", {}).correct(np.zeros((1, 2)), seed=0)


def test_nearest_cluster():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    real = np.concatenate([c + rng.normal(0, 0.3, (200, 2)) for c in centres])
    c = build_corrector("nearest_cluster", {"k": 3, "strength": 1.0})
    c.prepare(real)
    x = np.array([[1.0, 1.0], [9.0, 1.0], [np.nan, 0.0]])
    res = c.correct(x, seed=0)
    assert res.status == ["ok", "ok", "nan"] and list(res.kept_index) == [0, 1]
    assert np.allclose(res.samples, centres[:2], atol=0.1)
    half = build_corrector("nearest_cluster", {"k": 3, "strength": 0.5})
    half.prepare(real)
    out = half.correct(x[:2], seed=0).samples
    assert np.allclose(out, (x[:2] + res.samples) / 2)
    with pytest.raises(CorrectorError, match="prepare"):
        build_corrector("nearest_cluster", {}).correct(x, seed=0)


# ------------------------------------------------------------------ CLI

def test_cli_correct_and_physics(tmp_path, walk, capsys):
    src = tmp_path / "in"
    write_clip(walk.slice(0, 20), src / "walk.txt")
    write_clip(walk.replace(root_pos=walk.root_pos + np.array([0.0, 1.5, 0.0])), src / "hanging.txt")
    out = tmp_path / "out"
    rc = cli_main(["correct", str(src), str(out), "--set", "assist_cap_g=0", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    by_clip = {r["clip"]: r for r in report["clips"]}
    assert by_clip["hanging.txt"]["status"] == "fall" and by_clip["hanging.txt"]["written"] is None
    assert sum(report["counts"].values()) == 2
    written = [p.name for p in out.iterdir()]
    assert [r["clip"] for r in report["clips"] if r["written"]] == written
    assert read_clip(out / written[0]).motion.num_frames > 0

    assert cli_main(["physics", str(src), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"penetrate_mm", "float_mm", "skate_mm", "phys_err_mm", "jitter"} <= set(metrics["mean"])


def test_cli_bad_input(tmp_path, capsys):
    assert cli_main(["correct", str(tmp_path / "missing"), str(tmp_path / "o")]) == 2
    src = tmp_path / "in"
    write_clip(read_clip(bundled_motion_dir() / "humanoid3d_walk.txt").motion.slice(0, 3), src / "w.txt")
    assert cli_main(["correct", str(src), str(tmp_path / "o"), "--corrector", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown corrector 'nope'" in err and "physics" in err
    assert cli_main(["correct", str(src), str(tmp_path / "o"), "--set", "novalue"]) == 2
    capsys.readouterr()
    if os.path.exists(os.devnull):  # neither a file nor a directory: named, not a traceback
        assert cli_main(["correct", os.devnull, str(tmp_path / "o")]) == 2
        assert f"{os.devnull}: not a motion file or a directory of them" in capsys.readouterr().err


class MarkPlugin(Corrector):
    """A motion plugin with diagnostics of its own (``test_correctors:MarkPlugin``)."""

    name = "mark"
    domain = "motion"

    def correct(self, batch, seed, *, offset=0):
        out = [SampleOutcome("ok", corrected=m, diagnostics={"locked_feet": 2.0, "slide_mm": 0.25}) for m in batch]
        return apply_policy(batch, out, self.policy, self.domain)


def test_cli_correct_shows_plugin_diagnostics(tmp_path, walk, capsys):
    src = tmp_path / "in"
    write_clip(walk.slice(0, 10), src / "walk.txt")
    assert cli_main(["correct", str(src), str(tmp_path / "o"), "--corrector", "test_correctors:MarkPlugin"]) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    assert {"locked_feet", "slide_mm"} <= set(header.split())
    assert row.split()[2:4] == ["2", "0.25"]
    assert cli_main(["correct", str(src), str(tmp_path / "o2"), "--corrector", "test_correctors:MarkPlugin",
                     "--columns", "slide_mm"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ["clip", "status", "slide_mm"]
    assert cli_main(["correct", str(src), str(tmp_path / "o3"), "--corrector", "test_correctors:MarkPlugin",
                     "--columns", "nope"]) == 2
    assert "--columns: no clip reported nope; reported: locked_feet, slide_mm" in capsys.readouterr().err
