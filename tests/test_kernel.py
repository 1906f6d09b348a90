"""The generation kernel, its callbacks and the domain tasks (issue 14, items 1 and 2): the events
an arm reports, the arm runner as a shell around the kernel, and a resume that must refill the
kernel's ``accumulate`` history from the archives. Gaussian toys only: each test takes well under
a second."""

from __future__ import annotations

import numpy as np
import pytest

from sccl.generators import load_generator
from sccl.loop.arm import ArmRunner
from sccl.loop.callbacks import LoopCallback
from sccl.loop.config import ArmSpec, config_from_dict
from sccl.loop.faults import ENV, FaultInjection, fault_callbacks
from sccl.loop.kernel import GenerationKernel
from sccl.loop.store import read_json, read_jsonl
from sccl.loop.tasks import MotionTask, VectorTask, build_task, task_class
from sccl.loop.tracking import KEY_METRICS

TOY = {
    "name": "kernel", "seed": 3, "generations": 3, "synthetic_ratio": 0.5, "regime": "accumulate",
    "data": {"kind": "gaussian", "dim": 2, "n": 20, "heldout_n": 20},
    "generator": {"name": "gaussian", "params": {"ddof": 0}},
    "corrector": {"name": "ideal", "params": {"gamma": 0.5}},
    "train": {"steps_gen0": 1, "steps_per_generation": 1, "finetune": False},
    "eval": {"num_samples": 50, "every": 1, "gif": False, "plots": False},
    "ray": {"enabled": False, "correction_workers": 0},
}


class Recorder(LoopCallback):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_generation_start(self, g):
        self.events.append(("start", g))

    def on_phase(self, g, phase, steps=None):
        self.events.append(("phase", g, phase))

    def on_phase_end(self, g, phase, seconds):
        assert seconds >= 0
        self.events.append(("end", g, phase))

    def on_correction(self, g, batch):
        assert len(batch.raw) == 10 and len(batch.kept) == len(batch.kept_index)
        self.events.append(("correction", g))

    def on_generation_end(self, g, generation):
        self.events.append(("generation_end", g, "toy/w2" in generation.record))

    def on_commit(self, g, what, tmp):
        assert tmp.exists() and tmp.name.startswith(".")
        self.events.append(("commit", g, what))

    def on_record(self, record):
        self.events.append(("record", record["generation"]))


class StopAt(LoopCallback):
    """Fails the arm when generation ``g`` starts (a crash after g − 1 is complete on disk)."""

    def __init__(self, g: int) -> None:
        self.g = g

    def on_generation_start(self, g):
        if g == self.g:
            raise RuntimeError(f"stop at {g}")


def _spec(**over) -> ArmSpec:
    return ArmSpec(name="arm", config=config_from_dict({**TOY, **over}), params={}, group="arm")


def test_kernel_reports_each_phase_in_order():
    spec = _spec()
    rec = Recorder()
    kernel = GenerationKernel(spec.config, build_task(spec.config), callbacks=rec)
    outs = list(kernel.generations())
    assert [o.g for o in outs] == [0, 1, 2, 3]
    assert rec.events[:5] == [("start", 0), ("phase", 0, "train"), ("end", 0, "train"), ("phase", 0, "evaluate"),
                              ("end", 0, "evaluate")]
    assert rec.events[5] == ("generation_end", 0, True)
    assert rec.events[6:16] == [("start", 1), ("phase", 1, "sample"), ("end", 1, "sample"), ("phase", 1, "correct"),
                                ("correction", 1), ("end", 1, "correct"), ("phase", 1, "train"), ("end", 1, "train"),
                                ("phase", 1, "evaluate"), ("end", 1, "evaluate")]
    assert outs[1].record["correction/acceptance_rate"] == 1.0
    # accumulate: the kernel remembers every generation's kept samples
    assert [len(x) for x, _ in kernel.history] == [10, 10, 10]


def test_arm_runner_is_a_shell_around_the_kernel(tmp_path):
    """The runner's checkpoints hold exactly the kernel's models; callbacks see every file
    commit and every completed record; phase timings are summed."""
    spec = _spec()
    rec = Recorder()
    out = ArmRunner(spec, tmp_path, callbacks=[rec]).run()
    assert out["completed"] == 3 and set(out["timings"]) >= {"train", "sample", "correct", "evaluate", "checkpoint"}
    assert [e for e in rec.events if e[0] == "record"] == [("record", g) for g in range(4)]
    commits = [e for e in rec.events if e[0] == "commit"]
    assert commits == [("commit", 0, "checkpoint")] + [c for g in (1, 2, 3)
                                                       for c in (("commit", g, "synthetic"), ("commit", g, "checkpoint"))]
    kernel_last = list(GenerationKernel(spec.config, build_task(spec.config)).generations())[-1]
    saved = load_generator(tmp_path / "arms" / "arm" / "gen_003" / "generator.safetensors")
    assert np.array_equal(saved.mean, kernel_last.generator.mean) and np.array_equal(saved.cov, kernel_last.generator.cov)
    logged = read_jsonl(tmp_path / "arms" / "arm" / "metrics.jsonl")
    assert [r["toy/w2"] for r in logged][-1] == kernel_last.record["toy/w2"]
    # every record says where its generation's time went
    assert {"time/train_s", "time/evaluate_s"} <= set(logged[0]) and "time/correct_s" not in logged[0]
    for r in logged[1:]:
        phases = [r[f"time/{p}_s"] for p in ("train", "sample", "correct", "evaluate")]
        assert all(t >= 0 for t in phases) and sum(phases) <= r["time/generation_s"] + 1e-3


def test_resumed_accumulate_arm_refills_its_history_from_the_archives(tmp_path):
    spec = _spec()
    ArmRunner(spec, tmp_path / "whole").run()
    with pytest.raises(RuntimeError, match="stop at 3"):
        ArmRunner(spec, tmp_path / "crashed", callbacks=[StopAt(3)]).run()
    assert read_json(tmp_path / "crashed" / "arms" / "arm" / "state.json")["completed"] == 2
    ArmRunner(spec, tmp_path / "crashed").run()
    whole = read_jsonl(tmp_path / "whole" / "arms" / "arm" / "metrics.jsonl")
    resumed = read_jsonl(tmp_path / "crashed" / "arms" / "arm" / "metrics.jsonl")
    assert [r["toy/w2"] for r in resumed] == [r["toy/w2"] for r in whole]
    # each start and the resume say where they ran, and the first record of each delivers that file
    where = read_jsonl(tmp_path / "crashed" / "arms" / "arm" / "provenance.jsonl")
    assert [s["from_generation"] for s in where] == [0, 3]
    assert all(s["host"] and s["env.libm_sha"] == where[0]["env.libm_sha"] for s in where)
    delivered = [r["generation"] for r in resumed
                 if any(a[0].endswith("provenance.jsonl") for a in r["artifacts"])]
    assert delivered == [0, 3]


def test_fault_injection_is_a_callback_only_tests_turn_on(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert fault_callbacks() == []
    monkeypatch.setenv(ENV, "sample:7")
    (cb,) = fault_callbacks()
    assert isinstance(cb, FaultInjection)
    cb.on_phase_end(6, "sample", 0.0)  # another generation: nothing happens
    cb.on_progress(7, "train", 1, 10, 0.0)  # another point: nothing happens


def test_tasks_by_data_kind():
    assert task_class("gaussian") is VectorTask and task_class("motion") is MotionTask
    assert VectorTask.charts(KEY_METRICS) == ["toy/w2", "toy/mean_error", "toy/cov_trace"]
    assert "toy/w2" not in MotionTask.charts(KEY_METRICS) and "quality/fid" in MotionTask.charts(KEY_METRICS)
    task = build_task(_spec().config)
    assert set(task.corrector_defaults("ideal")) == {"target_mean", "target_cov"}
    assert task.corrector_defaults("none") == {} and task.draw_labels(5, 0) is None
