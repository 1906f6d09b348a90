"""Reliability (issue 8): crashes and resume, worker and corrector faults, bad input, tracking
outages, safe defaults. docs/RELIABILITY.md maps every fault tried to the test that proves it.

Crashes are real: the driver is a ``python -m loop.cli`` subprocess that SIGKILLs itself at a
named point (``SCCL_FAULT``, see :mod:`loop.faults`), then ``sccl resume`` continues. Outages
are real too: the session's ``mlflow server`` process is stopped and restarted."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import free_port
from sccl.correctors import CorrectionResult, Corrector, build_corrector
from sccl.correctors.base import CorrectorError, SampleOutcome, apply_policy
from sccl.generators.base import FORMAT_VERSION, CheckpointError, read_state
from sccl.generators.registry import build_generator
from sccl.loop.cli import build_parser
from sccl.loop.cli import main as cli_main
from sccl.loop.config import ConfigError, config_from_dict, load_config
from sccl.loop.correction_pool import correct_in_process
from sccl.loop.store import read_json, read_jsonl, read_npz
from sccl.loop.sweep import Driver, resume_run_dir, run_config
from sccl.motion.deepmimic import list_clip_files, read_clip
from sccl.motion import MotionError

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "smoke.yaml")
TOY = str(REPO / "configs" / "toy_gaussian.yaml")
ARM = "iterative"
#: one tiny arm, inline (the driver process runs everything, so SCCL_FAULT kills the driver)
TINY = ["data.n=16", "eval.num_samples=16", "eval.evaluator_steps=40", "train.steps_gen0=30",
        "train.steps_per_generation=10", "generations=2", "ray.enabled=false", "eval.gif=false",
        f"arms=[{{name: {ARM}, corrector.name: none}}]"]
METRIC_PREFIXES = ("quality/", "diversity/", "physics/", "correction/")


# ------------------------------------------------------------------------------ helpers
def _cli(args: list[str], env_extra: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SCCL_FAULT"}
    env.update({"PYTHONUNBUFFERED": "1", **(env_extra or {})})
    return subprocess.run([sys.executable, "-m", "sccl.loop.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def _history(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def _assert_same_final_metrics(got: dict, ref: dict) -> None:
    keys = [k for k in ref if k.startswith(METRIC_PREFIXES)]
    assert keys
    for key in keys:
        assert got[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-8), key


def _assert_mlflow_clean(tracking_uri: str, experiment: str, generations: int) -> None:
    """One sweep run and one arm run, every metric at most once per generation, all finished."""
    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2, [r.info.run_name for r in runs]
    arm = next(r for r in runs if "sccl.arm" in r.data.tags)
    assert _history(client, arm.info.run_id, "loop/generation") == list(range(generations + 1))
    for key in arm.data.metrics:
        steps = _history(client, arm.info.run_id, key)
        assert len(steps) == len(set(steps)), f"duplicate steps of {key}: {steps}"
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert "collapse_curves.png" in {a.path for a in client.list_artifacts(arm.info.run_id)}


def _assert_run_dir_readable(run_dir: Path) -> None:
    """No temporary file is left over and every file of the run directory reads back."""
    assert not [p for p in run_dir.rglob("*") if ".tmp" in p.name]
    for p in run_dir.rglob("*"):
        if p.suffix == ".safetensors":
            read_state(p)
        elif p.suffix == ".npz":
            read_npz(p)
        elif p.suffix == ".json":
            read_json(p)
        elif p.suffix == ".jsonl":
            read_jsonl(p)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted tiny run every crashed-and-resumed run must reproduce."""
    tmp = tmp_path_factory.mktemp("reference")
    cfg = load_config(SMOKE, TINY + [f"output_dir={tmp}/run", f"mlflow.tracking_uri=sqlite:///{tmp}/m.db",
                                     f"mlflow.artifact_location={tmp}/artifacts", "mlflow.experiment=reference"])
    result = run_config(cfg)
    assert not result.failed and result.undelivered == 0
    return result.arms[ARM]


# ------------------------------------------------------------------ 1. crash and resume
@pytest.mark.slow
def test_driver_killed_at_every_phase_resumes_to_the_uninterrupted_result(tmp_path, reference):
    """SIGKILL the driver during training (gen 0), after sampling, during correction (result
    computed, synthetic.npz not yet renamed into place), while writing a checkpoint (temp file
    complete, rename pending) and while logging to MLflow (metrics logged, bookkeeping not
    done); resume after each. The final metrics equal the uninterrupted run's, MLflow holds no
    duplicate run or step, and no partially written file is ever read."""
    run_dir = tmp_path / "run"
    db = f"sqlite:///{tmp_path}/m.db"
    arm_dir = run_dir / "arms" / ARM
    state = arm_dir / "state.json"

    def completed() -> int:
        return (read_json(state, default={}) or {}).get("completed", -1)

    crashes = ["train:0", "sample:1", "correct:1", "checkpoint:1", "log:1"]
    for i, point in enumerate(crashes):
        args = (["run", SMOKE, *TINY, f"output_dir={run_dir}", f"mlflow.tracking_uri={db}", "mlflow.experiment=crash",
                 f"mlflow.artifact_location={tmp_path}/artifacts"]
                if i == 0 else ["resume", str(run_dir)])
        proc = _cli(args, {"SCCL_FAULT": point})
        assert proc.returncode == -signal.SIGKILL, f"{point}: rc {proc.returncode}\n{proc.stderr[-3000:]}"
        assert "SCCL_FAULT: killing process" in proc.stderr and f"at {point.split(':')[0]}" in proc.stderr
        if point == "train:0":
            assert completed() == -1 and not (arm_dir / "gen_000").exists()
        elif point in ("sample:1", "correct:1"):
            assert completed() == 0 and not (arm_dir / "gen_001" / "synthetic.npz").exists()
            if point == "correct:1":  # the complete temp file is there, and must never be used
                assert list((arm_dir / "gen_001").glob(".synthetic.npz.*.tmp"))
        elif point == "checkpoint:1":
            assert completed() == 0 and not (arm_dir / "gen_001" / "generator.safetensors").exists()
            assert list((arm_dir / "gen_001").glob(".generator.safetensors.tmp*"))
            assert [r["generation"] for r in read_jsonl(arm_dir / "metrics.jsonl")] == [0]
        elif point == "log:1":
            assert completed() == 1  # generation 1 is complete on disk, its metrics are in MLflow
            client = mlflow.MlflowClient(db)
            run_id = read_json(run_dir / "sweep.json")["runs"][ARM]
            assert _history(client, run_id, "loop/generation") == [0, 1]
    resumed = resume_run_dir(run_dir)
    assert not resumed.failed and resumed.undelivered == 0
    _assert_same_final_metrics(resumed.arms[ARM], reference)
    _assert_mlflow_clean(db, "crash", 2)
    _assert_run_dir_readable(run_dir)
    assert [r["generation"] for r in read_jsonl(arm_dir / "metrics.jsonl")] == [0, 1, 2]


@pytest.mark.slow
def test_sigterm_stops_a_ray_run_like_ctrl_c_and_it_resumes(tmp_path, ray_session):
    """`kill`, `timeout` and schedulers send SIGTERM; under Ray the driver used to die in a
    native stack dump (``*** SIGTERM received ***``) without a word on what was kept. It must
    stop as after Ctrl-C: exit 143, no dump or traceback, the completed generations on disk, the
    resume command printed; and the run resumes to its end."""
    run_dir = tmp_path / "run"
    state = run_dir / "arms" / ARM / "state.json"
    env = {k: v for k, v in os.environ.items() if k != "SCCL_FAULT"}
    env.update({"PYTHONUNBUFFERED": "1", "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address})
    args = ["run", SMOKE, *[t for t in TINY if not t.startswith(("ray.enabled", "generations"))], "generations=3",
            f"output_dir={run_dir}", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db", "mlflow.experiment=sigterm"]
    proc = subprocess.Popen([sys.executable, "-m", "sccl.loop.cli", *args], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while (read_json(state, default={}) or {}).get("completed", -1) < 0:
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-3000:] if proc.stderr else ""
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err[-3000:]
    assert "SIGTERM received" not in err and "Traceback" not in err, err[-3000:]
    assert f"continue with `sccl resume {run_dir}`" in err
    kept = read_json(state)["completed"]
    assert kept >= 0 and [r["generation"] for r in read_jsonl(run_dir / "arms" / ARM / "metrics.jsonl")] == \
        list(range(kept + 1))
    resumed = resume_run_dir(run_dir, ["ray.enabled=false"])
    assert not resumed.failed and read_json(state)["completed"] == 3


def _fake_resumable_run(tmp_path: Path, checkpoint_bytes: bytes) -> list[str]:
    """A run directory whose arm completed generation 0 with the given checkpoint bytes."""
    run_dir = tmp_path / "run"
    gen0 = run_dir / "arms" / ARM / "gen_000"
    gen0.mkdir(parents=True)
    (gen0 / "generator.safetensors").write_bytes(checkpoint_bytes)
    (run_dir / "arms" / ARM / "state.json").write_text(json.dumps({"completed": 0}))
    return ["run", SMOKE, *TINY, f"output_dir={run_dir}", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db"]


def _checkpoint(tmp_path: Path, preset: str = "tiny", name: str = "diffusion") -> bytes:
    cfg = {"preset": preset} if name == "diffusion" else {}
    return build_generator(name, cfg).save(tmp_path / f"{name}-{preset}.safetensors").read_bytes()


@pytest.mark.parametrize("case,message", [
    ("truncated", "not a readable sccl checkpoint"),
    ("other_preset", "checkpoint has preset = 'small', but arm iterative needs 'tiny'"),
    ("other_kind", "checkpoint has kind = 'gaussian'"),
    ("format_version", "format version"),
])
def test_resume_refuses_a_bad_checkpoint_before_any_compute(tmp_path, capsys, case, message):
    if case == "truncated":
        data = _checkpoint(tmp_path)[:-100]
    elif case == "other_preset":
        data = _checkpoint(tmp_path, "small")
    elif case == "other_kind":
        data = _checkpoint(tmp_path, name="gaussian")
    else:
        data = _with_format_version(_checkpoint(tmp_path), FORMAT_VERSION + 1)
    args = _fake_resumable_run(tmp_path, data)
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert "generator.safetensors" in err[0]
    assert not (tmp_path / "m.db").exists() and not (tmp_path / "run" / "sweep.json").exists()


def _with_format_version(raw: bytes, version: int) -> bytes:
    import struct

    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["sccl"])
    meta["format_version"] = version
    header["__metadata__"]["sccl"] = json.dumps(meta)
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    return struct.pack("<Q", len(hb)) + hb + raw[8 + n:]


def test_arm_loads_checkpoints_only_of_its_own_preset(tmp_path):
    from sccl.loop.arm import ArmRunner
    from sccl.loop.config import expand_arms

    (arm,) = expand_arms(load_config(SMOKE, TINY))
    path = tmp_path / "small.safetensors"
    path.write_bytes(_checkpoint(tmp_path, "small"))
    with pytest.raises(CheckpointError, match="preset"):
        ArmRunner(arm, tmp_path)._load_generator(path)


def test_damaged_state_file_is_a_one_line_error(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "arms" / ARM).mkdir(parents=True)
    (run_dir / "arms" / ARM / "state.json").write_text('{"completed": ')
    assert cli_main(["run", SMOKE, *TINY, f"output_dir={run_dir}", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "state.json: damaged JSON state file" in err[0]


# ------------------------------------------------------------------ 2. worker and corrector faults
class FlakyPlugin(Corrector):
    """A badly behaved plugin: raises on samples whose first value is 13, returns NaN for
    samples whose first value is 7, bypassing apply_policy (so only the framework guards)."""

    name = "flaky"
    domain = "vector"

    def correct(self, batch, seed, *, offset=0):
        batch = np.asarray(batch, dtype=np.float64)
        if np.any(batch[:, 0] == 13):
            raise RuntimeError("solver exploded")
        out = batch.copy()
        out[batch[:, 0] == 7] = np.nan
        n = len(batch)
        return CorrectionResult(out, np.arange(n), ["ok"] * n, [{"kept": 1.0} for _ in range(n)], {"ok": n})


class BrokenContract(Corrector):
    name = "broken"
    domain = "vector"

    def correct(self, batch, seed, *, offset=0):
        return CorrectionResult(np.asarray(batch)[:1], np.array([0]), ["ok"], [{}], {"ok": 1})


def test_raising_and_nan_samples_are_rejected_counted_and_never_kept():
    x = np.arange(20.0)[:, None].repeat(2, axis=1)
    for batch_size in (1, 4, 20):
        res = correct_in_process(FlakyPlugin(), x, seed=0, batch_size=batch_size)
        assert res.status[13] == "error" and res.status[7] == "nan"
        assert sum(res.counts.values()) == 20 and res.counts == {"ok": 18, "error": 1, "nan": 1}
        assert np.isfinite(res.samples).all() and len(res.samples) == 18
        assert 13 not in res.kept_index and 7 not in res.kept_index
        assert np.array_equal(res.samples[:, 0], np.delete(x[:, 0], [7, 13]))
        assert res.diagnostics[13]["kept"] == 0.0 and res.diagnostics[7]["kept"] == 0.0
    with pytest.raises(CorrectorError, match="broke the CorrectionResult contract"):
        correct_in_process(BrokenContract(), x, seed=0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["ok", "nan", "raise"]), min_size=0, max_size=12), st.integers(1, 5))
def test_correction_guard_property(kinds, batch_size):
    """Property: whatever mix of good, NaN and raising samples, every input has a status,
    counts add up, and nothing non-finite is kept."""
    values = np.array([{"ok": 1.0, "nan": 7.0, "raise": 13.0}[k] for k in kinds] or [1.0])[: len(kinds)]
    x = np.stack([values, values], axis=1) if len(kinds) else np.zeros((0, 2))
    res = correct_in_process(FlakyPlugin(), x, seed=0, batch_size=batch_size)
    assert len(res.status) == len(kinds) == sum(res.counts.values())
    assert res.counts.get("ok", 0) == kinds.count("ok") == len(res.kept_index)
    assert np.isfinite(np.asarray(res.samples)).all()


def test_loop_never_trains_on_rejected_samples(tmp_path):
    """A toy loop with the flaky plugin: rejected samples are on disk with their status,
    counted in the generation record, and absent from the corrected (training) data."""
    over = [f"output_dir={tmp_path}/r", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db", "ray.enabled=false",
            f"mlflow.artifact_location={tmp_path}/artifacts",
            "generations=2", "grid={}", "eval.plots=false", "eval.num_samples=200",
            "corrector.name=test_reliability:NaNEveryFifth", "corrector.params={}"]
    res = run_config(load_config(TOY, over))
    assert not res.failed
    arm_dir = tmp_path / "r" / "arms" / "arm"
    for g in (1, 2):
        syn = read_npz(arm_dir / f"gen_{g:03d}" / "synthetic.npz")
        status = list(syn["status"])
        assert len(status) == 25 and status.count("nan") == 5 and status.count("error") == 5
        assert list(syn["kept_index"]) == [i for i in range(25) if i % 5 not in (0, 1)]
        assert syn["corrected"].shape == (15, 2) and np.isfinite(syn["corrected"]).all()
    record = read_jsonl(arm_dir / "metrics.jsonl")[-1]
    assert record["correction/count_nan"] == 5 and record["correction/count_error"] == 5
    assert record["correction/acceptance_rate"] == pytest.approx(0.6)


class NaNEveryFifth(Corrector):
    """Toy plugin for the loop test: sample i%5==0 -> NaN, i%5==1 -> raises."""

    name = "nan_every_fifth"
    domain = "vector"

    def correct(self, batch, seed, *, offset=0):
        idx = np.arange(offset, offset + len(batch))
        if np.any(idx % 5 == 1):
            raise RuntimeError("boom")
        out = np.asarray(batch, dtype=np.float64).copy()
        out[idx % 5 == 0] = np.nan
        return apply_policy(batch, [SampleOutcome("ok", corrected=v) for v in out], self.policy, self.domain)


def test_simulation_blow_up_and_crash_are_caught(monkeypatch):
    import dataclasses

    walk = read_clip(list_clip_files()[-1]).motion.slice(0, 20)
    corrector = build_corrector("physics", {"policy": "keep_partial"})
    try:
        real_track = corrector.sim.track
        calls = []

        def blow_up(motion, **kw):
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("pybullet: invalid state")
            return dataclasses.replace(real_track(motion, **kw), blew_up=True, motion=None)

        monkeypatch.setattr(corrector.sim, "track", blow_up)
        res = corrector.correct([walk, walk, walk], seed=0)
    finally:
        corrector.close()
    assert res.status == ["nan", "error", "nan"] and res.samples == [] and len(res.kept_index) == 0
    assert sum(res.counts.values()) == 3


@pytest.mark.slow
def test_ray_worker_that_dies_on_every_try_fails_the_batch_cleanly(ray_session):
    """A shard whose worker dies on every try is retried max_retries times, then the batch
    fails with a clear error (no hang, no silent loss); the pool is usable afterwards."""
    from sccl.loop.correction_pool import CorrectionPool, CorrectionPoolError

    cfg = {"gamma": 1.0, "target_mean": [0.0], "target_cov": [[1.0]]}
    x = np.arange(8.0)[:, None]
    with CorrectionPool("ideal", cfg, num_workers=1, batch_size=4, max_retries=1) as pool:
        # the only actor, and every replacement, dies before its result comes back
        original = pool._spawn

        def spawn_dead():
            actor = original()
            ray_session.kill(actor, no_restart=True)
            return actor

        pool._spawn = spawn_dead
        ray_session.kill(pool.actors[0], no_restart=True)
        with pytest.raises(CorrectionPoolError, match="failed 2 times"):
            pool.correct(x, seed=0)
        pool._spawn = original
        pool.actors = [original()]
        assert len(pool.correct(x, seed=0).status) == 8


# ------------------------------------------------------------------ 3. bad input
def _one_line_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize("overrides,message", [
    (["generatons=3"], "unknown config key 'generatons' (did you mean generations?)"),
    (["generations=three"], "'generations': expected an integer, got 'three'"),
    (["generations=-1"], "'generations': expected an integer >= 0, got -1"),
    (["synthetic_ratio=-0.5"], "'synthetic_ratio': expected a number >= 0, got -0.5"),
    (["data.path=/no/such/dir"], "'data.path': directory /no/such/dir does not exist"),
    (["corrector.name=phisics"], "unknown corrector 'phisics'; available:"),
    (["corrector.name=no_such_module_xyz:Thing"], "cannot import module 'no_such_module_xyz'"),
    (["corrector.name=physics", "corrector.params.assist_cap=1"],
     "unknown corrector physics setting 'assist_cap' (did you mean assist_cap_g?)"),
    (["arms=[{name: a, corrector.name: phisics}]"], "unknown corrector 'phisics'"),
    (["generator.name=nope"], "unknown generator 'nope'"),
    (["generator.preset=huge"], "unknown diffusion preset 'huge'"),
    (["arms=[{name: a, corrector.name: physics, corrector.policy: keep_partial}]"],
     "'corrector.policy': keep_partial keeps clips cut at the fall"),
    (["generator.name=no_such_module_xyz:Gen"], "generator 'no_such_module_xyz:Gen': cannot import"),
])
def test_bad_config_one_line_error_nothing_written(tmp_path, monkeypatch, capsys, overrides, message):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["run", SMOKE, "output_dir=out", "arms=[]", *overrides]) == 2
    assert message in _one_line_error(capsys)
    assert os.listdir(tmp_path) == []  # no run directory, no mlflow.db


def _plugin_dist(tmp_path: Path, module_body: str) -> None:
    (tmp_path / "sccl_bad_plugin.py").write_text(module_body)
    dist = tmp_path / "sccl_bad_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sccl-bad-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sccl.correctors]\nbad = sccl_bad_plugin:Bad\n"
                                           "missing = sccl_no_such_module:Thing\n")


@pytest.mark.parametrize("name,message", [
    ("bad", "loading plugin 'sccl_bad_plugin:Bad' failed: RuntimeError: broken at import"),
    ("missing", "loading plugin 'sccl_no_such_module:Thing' failed: ModuleNotFoundError"),
])
def test_entry_point_that_fails_to_import(tmp_path, monkeypatch, capsys, name, message):
    plugins = tmp_path / "site"
    plugins.mkdir()
    _plugin_dist(plugins, "raise RuntimeError('broken at import')\n")
    monkeypatch.syspath_prepend(str(plugins))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert cli_main(["run", SMOKE, "output_dir=out", "arms=[]", f"corrector.name={name}"]) == 2
    assert message in _one_line_error(capsys)
    assert os.listdir(work) == []


def _good_frames(n: int = 4) -> list[list[float]]:
    text = list_clip_files()[0].read_text()
    return json.loads(text)["Frames"][:n]


BAD_MOTION_FILES = {
    "truncated": lambda: list_clip_files()[0].read_text()[:500],
    "empty": lambda: "",
    "no_frames": lambda: json.dumps({"Loop": "wrap", "Frames": []}),
    "frame_width": lambda: json.dumps({"Frames": [f[:40] for f in _good_frames()]}),
    "nan": lambda: json.dumps({"Frames": [f[:5] + [float("nan")] + f[6:] for f in _good_frames()]}),
    "non_unit_quaternion": lambda: json.dumps({"Frames": [f[:4] + [3, 0, 0, 0] + f[8:] for f in _good_frames()]}),
}
BAD_MOTION_MESSAGES = {"truncated": "not valid JSON", "empty": "not valid JSON", "no_frames": "non-empty list",
                       "frame_width": "has 40 values, expected 44", "nan": "non-finite",
                       "non_unit_quaternion": "not a unit quaternion"}


@pytest.mark.parametrize("case", sorted(BAD_MOTION_FILES))
def test_bad_motion_file_one_line_error_nothing_written(tmp_path, monkeypatch, capsys, case):
    data = tmp_path / "clips"
    data.mkdir()
    (data / "humanoid3d_walk.txt").write_text(list_clip_files()[-1].read_text())
    (data / "bad.txt").write_text(BAD_MOTION_FILES[case]())
    with pytest.raises(MotionError, match=BAD_MOTION_MESSAGES[case]):
        read_clip(data / "bad.txt")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert cli_main(["run", SMOKE, "output_dir=out", f"data.path={data}"]) == 2
    line = _one_line_error(capsys)
    assert "bad.txt" in line and BAD_MOTION_MESSAGES[case] in line
    assert os.listdir(work) == []
    assert cli_main(["data", "info", "--path", str(data)]) == 2
    assert "bad.txt" in _one_line_error(capsys)


def test_bad_checkpoints_for_sccl_sample(tmp_path, capsys):
    good = _checkpoint(tmp_path)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    cases = {
        "truncated.safetensors": (good[: len(good) // 2], "truncated or corrupt"),
        "version.safetensors": (_with_format_version(good, FORMAT_VERSION + 1), "format version"),
        "pickle.pt": (pickle.dumps(Exploit()), "not a readable sccl checkpoint"),
        "empty.safetensors": (b"", "not a readable sccl checkpoint"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert cli_main(["sample", str(tmp_path / name), "--out", str(tmp_path / "out")]) == 2
        line = _one_line_error(capsys)
        assert name in line and message in line, line
    assert not marker.exists()  # loading never unpickles: no code from a checkpoint runs
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_process_exit_code_and_no_traceback(tmp_path):
    """The same guarantees seen from outside: a real `sccl` process, exit code 2, the error on
    the last stderr line, no traceback."""
    ckpt = tmp_path / "cut.safetensors"
    ckpt.write_bytes(_checkpoint(tmp_path)[:200])
    for args, message in [
        (["run", SMOKE, f"output_dir={tmp_path}/out", "arms=[]", "corrector.name=phisics"], "unknown corrector 'phisics'"),
        (["sample", str(ckpt), "--out", str(tmp_path / "clips")], "cut.safetensors"),
    ]:
        proc = _cli(args)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and message in lines[-1]
        assert "Traceback" not in proc.stderr and sum(line.startswith("error: ") for line in lines) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "clips").exists()


# property-based: readers and loaders never fail with anything but their own clear error
_CLIP_TEXT = list_clip_files()[0].read_text()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, len(_CLIP_TEXT)))
def test_truncated_motion_file_property(tmp_path, cut):
    path = tmp_path / "clip.txt"
    path.write_text(_CLIP_TEXT[:cut])
    try:
        clip = read_clip(path)
    except MotionError as exc:
        assert str(path) in str(exc)
        return
    assert np.isfinite(clip.motion.root_pos).all()


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=30))
def test_config_override_property(text):
    """Property: any override text either applies or is a ConfigError."""
    try:
        config_from_dict({}, [text])
    except ConfigError:
        pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_checkpoint_reader_property(tmp_path, data):
    """Property: arbitrary bytes are a CheckpointError naming the file, never a crash."""
    path = tmp_path / "x.safetensors"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="x.safetensors"):
        read_state(path)


# ------------------------------------------------------------------ 4. tracking outages
def test_unreachable_tracking_server_fails_fast_before_compute(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    t0 = time.time()
    rc = cli_main(["run", SMOKE, "output_dir=out", f"mlflow.tracking_uri=http://127.0.0.1:{free_port()}"])
    elapsed = time.time() - t0
    assert rc == 2
    line = _one_line_error(capsys)
    assert "is not reachable" in line and "127.0.0.1" in line
    assert os.listdir(tmp_path) == []
    assert elapsed < 120  # retries are shortened: seconds, not MLflow's default minutes


@pytest.mark.slow
def test_tracking_server_outage_mid_run(tmp_path, mlflow_server, reference, monkeypatch):
    """The server stops after generation 0 is delivered: the run goes on, generations 1 and 2
    stay spooled (each failed delivery takes seconds), the run ends with 2 undelivered
    records; once the server is back, `sccl resume` delivers them: nothing lost, nothing
    duplicated, same results as without the outage."""
    monkeypatch.chdir(tmp_path)
    experiment = f"outage-{tmp_path.name}"
    over = TINY + [f"output_dir={tmp_path}/run", f"mlflow.tracking_uri={mlflow_server.uri}",
                   f"mlflow.experiment={experiment}"]
    real_deliver = Driver.deliver
    attempts: list[tuple[int, float, int]] = []

    def deliver(self, force=False):
        done = [r["generation"] for r in read_jsonl(self.run_dir / "arms" / ARM / "metrics.jsonl")]
        if done == [0, 1] and mlflow_server.proc is not None:
            mlflow_server.stop()
        t0 = time.time()
        remaining = real_deliver(self, force)
        attempts.append((len(done), time.time() - t0, remaining))
        return remaining

    monkeypatch.setattr(Driver, "deliver", deliver)
    try:
        result = run_config(load_config(SMOKE, over))
    finally:
        monkeypatch.setattr(Driver, "deliver", real_deliver)
        if mlflow_server.proc is None:
            mlflow_server.start()
    assert not result.failed and result.undelivered == 2
    assert [r["generation"] for r in read_jsonl(tmp_path / "run" / "arms" / ARM / "metrics.jsonl")] == [0, 1, 2]
    failed = [a for a in attempts if a[2] > 0]
    assert failed and all(seconds < 30 for _, seconds, _ in failed)  # an outage costs seconds
    _assert_same_final_metrics(result.arms[ARM], reference)
    again = resume_run_dir(tmp_path / "run")
    assert not again.failed and again.undelivered == 0
    _assert_mlflow_clean(mlflow_server.uri, experiment, 2)


# ------------------------------------------------------------------ 5. safe defaults
def test_ui_binds_loopback_and_builds_no_shell_command(monkeypatch, tmp_path):
    args = build_parser().parse_args(["ui"])
    assert args.host == "127.0.0.1"
    calls = []

    class Recorded:  # stands in for the UI server process: only the argument list is under test
        def __init__(self, cmd, **kw):
            calls.append((cmd, kw))

        def wait(self):
            return 0

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(subprocess, "Popen", Recorded)
    assert cli_main(["ui", "--tracking-uri", "sqlite:///x.db; rm -rf /"]) == 0
    assert not list(tmp_path.iterdir())  # showing a store never creates it
    cmd, kw = calls[0]
    assert isinstance(cmd, list) and not kw.get("shell")
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert "sqlite:///x.db; rm -rf /" in cmd  # one argument, never interpreted by a shell


def test_plugins_only_from_entry_points_or_module_class():
    """A bare name is looked up among built-ins and installed entry points only: it is never
    imported as a module (``os`` is not a corrector, and nothing named by config runs)."""
    for name in ("os", "subprocess", "os.system"):
        with pytest.raises(CorrectorError, match="unknown corrector"):
            build_corrector(name, {})
    with pytest.raises(CorrectorError, match="not a subclass"):
        build_corrector("os:system", {})


def test_no_unsafe_calls_in_the_package():
    """No pickle/torch.load of files, no shell, no eval of config values anywhere in the package."""
    forbidden = ["shell=True", "os.system(", "os.popen(", "pickle.load", "torch.load(", "allow_pickle=True",
                 "eval(", "exec(", "yaml.load(", "yaml.unsafe_load", "cloudpickle.load"]
    hits = []
    for folder in ("loop", "generators", "correctors", "motion", "simulators", "metrics"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text()
            for token in forbidden:
                for line in text.splitlines():
                    code = line.split("#", 1)[0]
                    if token in code and not code.strip().startswith(("\"", "'")):
                        if token == "eval(" and (".eval(" in code or "_eval(" in code):
                            continue
                        hits.append(f"{path.relative_to(REPO)}: {line.strip()}")
    assert not hits, hits


def test_second_driver_on_a_run_dir_is_refused_and_stale_temp_files_go(tmp_path, capsys):
    """A run directory is held by one driver at a time (the second gets a one-line error with
    the holder's pid, nothing written); the next driver removes temp files a killed writer left."""
    from sccl.loop.store import RunDirLock

    run_dir = tmp_path / "run"
    args = ["run", SMOKE, *TINY, "generations=0", f"output_dir={run_dir}",
            f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db"]
    with RunDirLock(run_dir):
        assert cli_main(args) == 2
        err = capsys.readouterr().err
        assert f"{run_dir} is in use by another sccl run (pid {os.getpid()})" in err and "Traceback" not in err
        assert sorted(p.name for p in run_dir.iterdir()) == [".sccl.lock"]
    stale = run_dir / "shared" / ".gen0-abc.safetensors.tmp123"
    stale.parent.mkdir()
    stale.write_bytes(b"half a model")
    assert cli_main(args) == 0
    assert not stale.exists()
    _assert_run_dir_readable(run_dir)


def test_tests_the_reliability_doc_calls_slow_are_marked_slow():
    """docs/RELIABILITY.md labels tests "(slow)"; `-m 'not slow'` must really skip exactly those."""
    import ast
    import re

    doc = (REPO / "docs" / "RELIABILITY.md").read_text()
    for module, name, label in re.findall(r"`(test_\w+)::(\w+)`( \(slow\))?", doc):
        tree = ast.parse((REPO / "tests" / f"{module}.py").read_text())
        module_slow = any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)
                          and "slow" in ast.unparse(n.value) for n in tree.body)
        func = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
        assert func is not None, f"docs/RELIABILITY.md names {module}::{name}, which does not exist"
        marked = module_slow or any("mark.slow" in ast.unparse(d) for d in func.decorator_list)
        assert marked == bool(label), f"{module}::{name}: doc says slow={bool(label)}, marker says {marked}"
