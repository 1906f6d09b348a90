"""A smoke sweep against a separately started Ray cluster (``ray start --head``), the way a
user runs on a cluster: the driver is another process that connects by address.

Token authentication (Ray >= 2.5x) is set consistently (``RAY_AUTH_MODE=token``) for the head
and the driver, with a token made for this test and passed in ``RAY_AUTH_TOKEN``: ``ray start
--head`` refuses to start without a token, and a fresh machine has no ``~/.ray/auth_token``. Only the processes this test started are ended (their unique temp dir
identifies them); ``ray stop`` is never used because it would kill every Ray on the machine.
Ray binds the machine's own interface address even when asked for 127.0.0.1; traffic never
leaves this machine."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import mlflow
import pytest

from conftest import free_port

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    port = free_port()
    temp_dir = Path("/tmp") / f"sccl-ray-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_USAGE_STATS_ENABLED": "0"}
    log = open(tmp_path_factory.mktemp("head") / "head.log", "wb")
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
         "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={temp_dir}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    address = f"127.0.0.1:{port}"
    deadline = time.time() + 120
    probe = "import ray, sys; ray.init(address=sys.argv[1]); print(ray.cluster_resources().get('CPU'))"
    while time.time() < deadline:
        assert head.poll() is None, "ray head exited"
        ok = subprocess.run([sys.executable, "-c", probe, address], env=env, capture_output=True, timeout=60)
        if ok.returncode == 0:
            break
        time.sleep(2)
    else:
        pytest.fail("ray head did not come up")
    yield address, env
    try:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    # daemons of this head only (they carry our unique temp dir on their command line)
    subprocess.run(["pkill", "-9", "-f", str(temp_dir)], check=False)
    try:
        os.killpg(head.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_smoke_sweep_on_a_started_cluster(ray_head, tmp_path):
    address, env = ray_head
    db = f"sqlite:///{tmp_path}/mlflow.db"
    cmd = [sys.executable, "-m", "sccl.loop.cli", "run", str(REPO / "configs" / "smoke.yaml"),
           f"output_dir={tmp_path}/run", f"mlflow.tracking_uri={db}", f"ray.address={address}",
           "data.n=16", "eval.num_samples=16", "eval.evaluator_steps=40", "train.steps_gen0=30",
           "train.steps_per_generation=10", "generations=1"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"connecting to Ray cluster at {address}" in proc.stderr
    client = mlflow.MlflowClient(db)
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    arms = [r for r in runs if "sccl.arm" in r.data.tags]
    assert len(arms) == 2
    for run in arms:
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "loop/generation"))
        assert steps == [0, 1]
