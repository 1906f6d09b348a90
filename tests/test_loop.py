"""The generation loop end to end: real Ray, a real MLflow server, real PyBullet, resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest

from sccl.loop.config import load_config
from sccl.loop.store import read_jsonl, read_npz
from sccl.loop.sweep import Driver, resume_run_dir, run_config

from conftest import FAST, REPO, SMOKE


def _history(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_toy_loop_regimes_records_and_audit_trail(tmp_path):
    base = [f"output_dir={tmp_path}/{{}}", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db", "ray.enabled=false",
            "generations=4", "grid={{}}", "eval.plots=false"]
    results = {}
    for regime in ("augment", "replace", "accumulate"):
        over = [o.format(regime) for o in base] + [f"regime={regime}", "corrector.params.gamma=0.0"]
        cfg = load_config(REPO / "configs" / "toy_gaussian.yaml", over)
        res = run_config(cfg)
        assert not res.failed
        arm_dir = Path(tmp_path) / regime / "arms" / "arm"
        records = read_jsonl(arm_dir / "metrics.jsonl")
        assert [r["generation"] for r in records] == [0, 1, 2, 3, 4]
        assert all(np.isfinite(r["toy/w2"]) for r in records)
        syn = read_npz(arm_dir / "gen_003" / "synthetic.npz")
        assert syn["raw"].shape == (25, 2)  # round(0.5 * 50) synthetic samples, all kept on disk
        assert list(syn["status"]) == ["ok"] * 25
        results[regime] = records
    assert results["augment"][0]["toy/w2"] == results["replace"][0]["toy/w2"]  # shared start
    assert results["augment"][-1]["toy/w2"] != results["replace"][-1]["toy/w2"]


@pytest.mark.slow
def test_smoke_sweep_with_ray_and_mlflow_server(smoke_sweep, tmp_path, monkeypatch):
    result = smoke_sweep.result
    assert not result.failed and result.undelivered == 0
    client = mlflow.MlflowClient(smoke_sweep.server.uri)
    exp = client.get_experiment_by_name(smoke_sweep.experiment)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI's training view
    runs = client.search_runs([exp.experiment_id])
    sweeps = [r for r in runs if r.data.tags.get("sccl.kind") == "sweep"]
    arms = [r for r in runs if "sccl.arm" in r.data.tags]
    assert len(sweeps) == 1 and len(arms) == 2 and len(runs) == 3
    # arms are top-level runs (the UI hides nested runs), tied to their sweep by a tag
    assert not [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert {r.data.tags["sccl.sweep_run_id"] for r in arms} == {sweeps[0].info.run_id}
    for run in arms:
        assert _history(client, run.info.run_id, "loop/generation") == [0, 1, 2]
        assert _history(client, run.info.run_id, "quality/fid") == [0, 1, 2]
        assert run.data.params["axis.corrector.name"] in ("none", "physics")
        assert run.info.status == "FINISHED"
    physics = next(r for r in arms if r.data.params["axis.corrector.name"] == "physics")
    assert _history(client, physics.info.run_id, "correction/acceptance_rate") == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(physics.info.run_id)}
    assert "collapse_curves.png" in artifacts
    # every synthetic sample of the corrected arm is on disk with its status
    syn = read_npz(result.run_dir / "arms" / "self_correcting" / "gen_001" / "synthetic.npz")
    floor = json.loads((result.run_dir / "reference.json").read_text())  # the real-data floor, beside the arms
    assert math.isfinite(floor["reference/quality/fid"]) and 0 <= floor["reference/quality/recognition_acc"] <= 1
    assert len(syn["status"]) == 16 and len(syn["kept_index"]) == (syn["status"] == "ok").sum()
    # running it again continues nothing and adds no run and no step
    monkeypatch.chdir(tmp_path)
    again = run_config(load_config(SMOKE, smoke_sweep.overrides))
    assert not again.failed and again.chart_url == result.chart_url
    runs2 = client.search_runs([exp.experiment_id])
    assert len(runs2) == 3
    for run in arms:
        assert _history(client, run.info.run_id, "loop/generation") == [0, 1, 2]


def _run_cli(args: list[str], env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sccl.loop.cli", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_metrics(tmp_path):
    """SIGKILL the driver after generation 1 is complete, resume, compare with a run that was
    never interrupted: same final metrics, no duplicate MLflow steps."""
    db = f"sqlite:///{tmp_path}/m.db"
    arm = "arms=[{name: iterative, corrector.name: none}]"
    common = FAST + ["ray.enabled=false", "generations=3", arm, f"mlflow.tracking_uri={db}",
              f"mlflow.artifact_location={tmp_path}/artifacts"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # uninterrupted reference
    ref = run_config(load_config(SMOKE, common + [f"output_dir={tmp_path}/ref", "mlflow.experiment=ref"]))
    # interrupted run
    run_dir = tmp_path / "killed"
    proc = _run_cli(["run", SMOKE, *common, f"output_dir={run_dir}", "mlflow.experiment=killed"], env)
    state = run_dir / "arms" / "iterative" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        if state.exists() and json.loads(state.read_text())["completed"] >= 1:
            break
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads(state.read_text())["completed"] < 3
    resumed = resume_run_dir(run_dir)
    assert not resumed.failed
    final_ref, final = ref.arms["iterative"], resumed.arms["iterative"]
    for key, value in final_ref.items():
        if key.startswith(("quality/", "diversity/", "physics/")):
            assert final[key] == pytest.approx(value, rel=1e-5, abs=1e-8), key
    client = mlflow.MlflowClient(db)
    exp = client.get_experiment_by_name("killed")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2  # sweep run + arm: resume created nothing new
    arm_run = next(r for r in runs if "sccl.arm" in r.data.tags)
    assert _history(client, arm_run.info.run_id, "loop/generation") == [0, 1, 2, 3]


def test_rerun_with_different_config_is_refused(tmp_path):
    over = ["ray.enabled=false", f"output_dir={tmp_path}/r", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db",
            "generations=1", "grid={}", "eval.plots=false"]
    run_config(load_config(REPO / "configs" / "toy_gaussian.yaml", over))
    from sccl.loop.store import RunDirError

    with pytest.raises(RunDirError, match="different configuration"):
        Driver(load_config(REPO / "configs" / "toy_gaussian.yaml", over + ["seed=5"])).prepare()


def test_resume_accepts_the_overrides_it_allows(tmp_path):
    """``sccl resume RUN_DIR mlflow.tracking_uri=...`` (a key resume allows) is not refused as a
    different configuration; the new store receives every generation. Keys that change what
    the run computes are refused, naming the allowed ones."""
    over = ["ray.enabled=false", f"output_dir={tmp_path}/r", f"mlflow.tracking_uri=sqlite:///{tmp_path}/a.db",
            "generations=2", "grid={}", "eval.plots=false"]
    run_config(load_config(REPO / "configs" / "toy_gaussian.yaml", over))
    moved = resume_run_dir(tmp_path / "r", [f"mlflow.tracking_uri=sqlite:///{tmp_path}/b.db", "ray.num_cpus=1",
                                            "eval.gif=false"])
    assert not moved.failed and moved.undelivered == 0
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/b.db")
    exp = client.get_experiment_by_name("toy_gaussian")
    arm = next(r for r in client.search_runs([exp.experiment_id]) if "sccl.arm" in r.data.tags)
    assert _history(client, arm.info.run_id, "loop/generation") == [0, 1, 2]
    from sccl.loop.config import ConfigError

    with pytest.raises(ConfigError, match=r"only ray\.\*, mlflow\.\*, eval\.gif, eval\.plots, train\.gen0_from may change"):
        resume_run_dir(tmp_path / "r", ["generations=3"])
    with pytest.raises(ConfigError, match="may change on resume"):
        resume_run_dir(tmp_path / "r", ["mlflow_x=1"])


def test_gen0_from_reuses_the_same_generation0_and_retrains_a_different_one(tmp_path, monkeypatch):
    """A control added later starts from the first run's generation 0 without retraining it;
    an arm whose generation 0 differs (another seed) is still trained."""
    over = ["ray.enabled=false", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db", "generations=1", "grid={}",
            "eval.plots=false"]
    run_config(load_config(REPO / "configs" / "toy_gaussian.yaml", over + [f"output_dir={tmp_path}/a"]))
    source = next((tmp_path / "a" / "shared").glob("gen0-*"))
    import sccl.loop.sweep as sweep_module

    def no_training(*_a, **_k):
        raise AssertionError("generation 0 was retrained although train.gen0_from holds it")

    monkeypatch.setattr(sweep_module, "train_generation0", no_training)
    control = over + [f"output_dir={tmp_path}/b", f"train.gen0_from={tmp_path}/a", "corrector.params.gamma=0.5"]
    res = run_config(load_config(REPO / "configs" / "toy_gaussian.yaml", control))
    assert not res.failed
    assert (tmp_path / "b" / "shared" / source.name).read_bytes() == source.read_bytes()
    first = read_jsonl(tmp_path / "a" / "arms" / "arm" / "metrics.jsonl")[0]
    again = read_jsonl(tmp_path / "b" / "arms" / "arm" / "metrics.jsonl")[0]
    assert first["toy/w2"] == again["toy/w2"]
    with pytest.raises(AssertionError, match="retrained"):  # another seed: another generation 0
        run_config(load_config(REPO / "configs" / "toy_gaussian.yaml", control + [f"output_dir={tmp_path}/c", "seed=3"]))
    from sccl.loop.config import ConfigError

    with pytest.raises(ConfigError, match="train.gen0_from"):
        Driver(load_config(REPO / "configs" / "toy_gaussian.yaml", over + [f"output_dir={tmp_path}/d",
                                                                           f"train.gen0_from={tmp_path}/nowhere"])).prepare()


def test_resume_lifts_arms_of_an_older_nested_layout(tmp_path):
    """Sweeps started when arm runs were nested under the sweep run are made top-level on resume
    (the same runs: no run and no step is added)."""
    db = f"sqlite:///{tmp_path}/m.db"
    over = ["ray.enabled=false", f"output_dir={tmp_path}/r", f"mlflow.tracking_uri={db}", "generations=1",
            "grid={}", "eval.plots=false"]
    run_config(load_config(REPO / "configs" / "toy_gaussian.yaml", over))
    sweep = json.loads((tmp_path / "r" / "sweep.json").read_text())
    client = mlflow.MlflowClient(db)
    arm_id = sweep["runs"]["arm"]
    client.set_tag(arm_id, "mlflow.parentRunId", sweep["parent_run_id"])  # the old layout
    client.delete_tag(arm_id, "sccl.sweep_run_id")
    del sweep["layout"]
    (tmp_path / "r" / "sweep.json").write_text(json.dumps(sweep))
    assert not resume_run_dir(tmp_path / "r").failed
    tags = client.get_run(arm_id).data.tags
    assert "mlflow.parentRunId" not in tags and tags["sccl.sweep_run_id"] == sweep["parent_run_id"]
    assert len(client.search_runs([sweep["experiment_id"]])) == 2
    assert _history(client, arm_id, "loop/generation") == [0, 1]
