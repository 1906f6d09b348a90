"""Session-wide real services: one local Ray and one real ``mlflow server`` per test session
(Ray takes ~10 s and an MLflow server 15–25 s to come up on 2 cores)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "smoke.yaml")
#: the smoke config made smaller still for the suite
FAST = ["data.n=16", "eval.num_samples=16", "eval.evaluator_steps=40", "train.steps_gen0=30",
        "train.steps_per_generation=10"]


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory):
    """Evaluator cache and MLflow store of the session live in temporary directories; no
    MLflow variables leak in from the developer's shell."""
    cache = tmp_path_factory.mktemp("sccl-cache")
    saved = {k: os.environ.get(k) for k in ("SCCL_CACHE_DIR", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID",
                                              "RAY_ADDRESS")}
    os.environ["SCCL_CACHE_DIR"] = str(cache)
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "RAY_ADDRESS"):
        os.environ.pop(key, None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def ray_session():
    import ray

    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        started = True
    yield ray
    if started:
        ray.shutdown()


def hanging_pose(clip, frames: int, accel_x: float = 0.0):
    """The first `frames` of `clip` replaced by a straight standing pose with its root 2 m up (the
    feet about 1 m above the floor, so nothing touches it), starting at rest and accelerating along
    x at `accel_x` m/s²: only an external force can hold it up."""
    import numpy as np

    identity = np.array([0.0, 0.0, 0.0, 1.0])
    t = np.arange(frames) / clip.fps
    root = np.column_stack([0.5 * accel_x * t ** 2, np.full(frames, 2.0), np.zeros(frames)])
    return clip.slice(0, frames).replace(root_pos=root, root_rot=np.tile(identity, (frames, 1)),
                                         joint_rots=np.tile(identity, (frames, 8, 1)), joint_angles=np.zeros((frames, 4)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class MlflowServer:
    """A real ``mlflow server`` (SQLite backend) on 127.0.0.1 that tests may stop and restart."""

    root: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        log = open(self.root / "server.log", "ab")
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
               "--artifacts-destination", str(self.root / "artifacts"), "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", "1"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(self.root / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("mlflow server did not answer /health in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            import signal

            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: only what we started
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"), free_port())
    server.start()
    yield server
    server.stop()


@dataclass
class SmokeSweep:
    """The smoke sweep, run once per session on real Ray against the real MLflow server."""

    result: object  #: loop.sweep.SweepResult
    overrides: list[str]
    experiment: str
    server: MlflowServer


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory, ray_session, mlflow_server) -> SmokeSweep:
    from sccl.loop.config import load_config
    from sccl.loop.sweep import run_config

    tmp = tmp_path_factory.mktemp("smoke")
    experiment = f"smoke-{tmp.name}"
    over = FAST + [f"output_dir={tmp}/run", f"mlflow.tracking_uri={mlflow_server.uri}",
                   f"mlflow.experiment={experiment}"]
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        result = run_config(load_config(SMOKE, over))
    finally:
        os.chdir(cwd)
    return SmokeSweep(result, over, experiment, mlflow_server)


def load_bench(name: str):
    """A script of bench/ as a module (bench/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def bench_script(monkeypatch):
    """Load a script of bench/ (not a package) as a module, by name. The probes edit sys.path
    and import bench/correction.py as ``correction``; both are undone after the test, so no
    bench module leaks into the tests that follow."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "correction", None)  # restored after the test
    del sys.modules["correction"]
    return load_bench
