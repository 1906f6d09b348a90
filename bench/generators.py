"""Generator speed on this machine. Prints JSON.

For every diffusion preset: training steps/s (the preset's batch of 30-frame windows of the
bundled clips) and sampling clips/s (the preset's DDIM steps, with classifier-free guidance).
Then the overhead of the framework's ``fit`` loop against a bare PyTorch loop that trains the
same model on the same data with the same batch size (random batch, random diffusion step and
noise, forward, MSE on x₀, backward, gradient clipping, AdamW step): target ≤ 10 %.

Then, per opt-in fast path (``tf32``, ``fused_adamw``, ``autocast: bf16``, ``compile``, and all
of them together), for ``--fast-presets``: training step time, sampling clips/s and the same
overhead comparison, each against the reference numerics. On CPU these paths mostly do nothing
(TF32 and fused kernels are GPU features); they are meant to be measured with ``--device cuda``.

On a GPU the bare loop draws its randomness on the device and the framework's ``fit`` does too
(see ``generators/diffusion.py``), so the overhead comparison is fair on GPU as well as CPU.

Usage: ``python bench/generators.py [--presets tiny,small,base] [--device auto|cpu|cuda]
[--fast-presets base] [--fast-paths tf32,fused_adamw,autocast,compile,all]``
``--device cuda`` on a machine without CUDA exits with a one-line error (status 2).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

# This folder holds a script named generators.py: keep it from shadowing the package.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sccl.generators import build_generator  # noqa: E402
from sccl.generators.diffusion import MotionDiffusion  # noqa: E402
from sccl.motion.dataset import build_dataset  # noqa: E402

#: (timed training steps, sampled clips) per preset on CPU; base is MDM scale and slow on CPU.
CPU_WORK = {"tiny": (60, 64), "small": (20, 32), "base": (3, 4)}
#: Steps per repeat of the overhead comparison on CPU (short chunks, many repeats, best of).
OVERHEAD_STEPS = {"tiny": 20, "small": 5, "base": 2}
#: The opt-in fast paths: generator params of each.
FAST_PATHS = {
    "tf32": {"tf32": True},
    "fused_adamw": {"fused_adamw": True},
    "autocast": {"autocast": "bf16"},
    "compile": {"compile": True},
    "all": {"tf32": True, "fused_adamw": True, "autocast": "bf16", "compile": True},
}


def _sync(gen: MotionDiffusion) -> None:
    if gen.device.type == "cuda":
        torch.cuda.synchronize(gen.device)


def train_speed(gen: MotionDiffusion, x: np.ndarray, y: np.ndarray, steps: int) -> float:
    gen.fit(x, y, 2, seed=0)  # build + warm-up (and compilation, with compile: true)
    _sync(gen)
    t = time.perf_counter()
    gen.fit(x, y, steps, seed=1)
    _sync(gen)
    return steps / (time.perf_counter() - t)


def sample_speed(gen: MotionDiffusion, n: int, num_labels: int) -> float:
    labels = np.arange(n) % num_labels
    gen.sample(min(n, 2), labels[:2], seed=0)
    _sync(gen)
    t = time.perf_counter()
    gen.sample(n, labels, seed=1)
    _sync(gen)
    return n / (time.perf_counter() - t)


def bare_loop(gen: MotionDiffusion, x: np.ndarray, y: np.ndarray, steps: int) -> float:
    """The same training written by hand; returns seconds per step."""
    model, dev, cfg = gen.model, gen.device, gen.config
    data = (torch.from_numpy(x).to(dev) - gen._mean_t) / gen._std_t
    labels = torch.from_numpy(y).to(dev)
    # the same fast paths as the framework's step, so the overhead compares like with like
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], **({"fused": True} if cfg.get("fused_adamw") else {}))
    if cfg.get("compile"):
        if getattr(gen, "_bench_compiled", (None,))[0] is not model:
            gen._bench_compiled = (model, torch.compile(model, dynamic=False))
        model_fn = gen._bench_compiled[1]
    else:
        model_fn = model
    ab_all, bs = gen._ab, cfg["batch_size"]
    model.train()
    from sccl.generators.diffusion import _autocast, _precision

    _sync(gen)
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, len(data), (bs,), device=dev)
        t = torch.randint(0, cfg["diffusion_steps"], (bs,), device=dev)
        x0 = data[idx]
        noise = torch.randn_like(x0)
        ab = ab_all[t][:, None, None]
        with _autocast(cfg, dev), _precision(cfg):
            pred = model_fn(ab.sqrt() * x0 + (1 - ab).sqrt() * noise, t, labels[idx]).float()
        loss = torch.mean((pred - x0) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def framework_loop(gen: MotionDiffusion, x: np.ndarray, y: np.ndarray, steps: int) -> float:
    _sync(gen)
    t0 = time.perf_counter()
    gen.fit(x, y, steps, seed=3, progress=lambda s, l: None)
    if gen.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,small,base")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--overhead-presets", default="tiny,small")
    ap.add_argument("--repeats", type=int, default=10, help="alternating repeats of the overhead comparison")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--fast-presets", default="", help="presets to time every fast path on (e.g. base)")
    ap.add_argument("--fast-paths", default=",".join(FAST_PATHS), help=f"subset of {','.join(FAST_PATHS)}")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"bench/generators.py: --device {args.device} but CUDA is not available on this machine "
              f"(torch {torch.__version__}); run it on a GPU machine or use --device cpu", file=sys.stderr)
        return 2
    unknown = [p for p in filter(None, args.fast_paths.split(",")) if p not in FAST_PATHS]
    if unknown:
        print(f"bench/generators.py: --fast-paths: unknown {', '.join(unknown)} (choose from "
              f"{', '.join(FAST_PATHS)})", file=sys.stderr)
        return 2

    data = build_dataset()
    x, y = data.train.features, data.train.labels
    base_cfg = {"device": args.device, "label_names": data.label_names, "fps": data.fps}
    out: dict = {
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "platform": platform.platform(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "data": {"train_windows": int(len(x)), "window": list(x.shape[1:])},
        "presets": {},
        "overhead": {},
        "fast_paths": {},
        "load_average_at_start": list(os.getloadavg()),
    }
    for preset in filter(None, args.presets.split(",")):
        gen = build_generator("diffusion", {**base_cfg, "preset": preset})
        on_gpu = gen.device.type == "cuda"
        steps, clips = (100, 256) if on_gpu else CPU_WORK.get(preset, (5, 4))
        sps = train_speed(gen, x, y, steps)
        cps = sample_speed(gen, clips, len(data.label_names))
        out["presets"][preset] = {
            "device": str(gen.device), "parameters": gen.num_parameters(), "batch_size": gen.config["batch_size"],
            "train_steps_per_s": round(sps, 2), "train_step_ms": round(1000 / sps, 1),
            "sample_steps": gen.config["sample_steps"], "guidance_scale": gen.config["guidance_scale"],
            "sample_clips_per_s": round(cps, 2),
        }
        print(f"{preset}: {out['presets'][preset]}", file=sys.stderr)
    for preset in filter(None, args.overhead_presets.split(",")):
        gen = build_generator("diffusion", {**base_cfg, "preset": preset})
        gen.fit(x, y, 2, seed=0)
        steps = OVERHEAD_STEPS.get(preset, 5) if gen.device.type == "cpu" else 100
        fw, bare = [], []
        for _ in range(args.repeats):  # alternate to share the machine's drift fairly
            fw.append(framework_loop(gen, x, y, steps))
            bare.append(bare_loop(gen, x, y, steps))
        # Best of the repeats: on a shared machine other processes only ever add time.
        f, b = min(fw), min(bare)
        out["overhead"][preset] = {"median_overhead_pct": round(100 * (statistics.median(fw) / statistics.median(bare) - 1), 1),"framework_step_ms": round(1000 * f, 2), "bare_step_ms": round(1000 * b, 2),
                                   "overhead_pct": round(100 * (f / b - 1), 1), "steps_per_repeat": steps,
                                   "repeats": args.repeats}
    for preset in filter(None, args.fast_presets.split(",")):
        out["fast_paths"][preset] = {}
        for path in ["reference", *filter(None, args.fast_paths.split(","))]:
            gen = build_generator("diffusion", {**base_cfg, "preset": preset, **FAST_PATHS.get(path, {})})
            on_gpu = gen.device.type == "cuda"
            steps, clips = (100, 256) if on_gpu else CPU_WORK.get(preset, (5, 4))
            t0 = time.perf_counter()
            sps = train_speed(gen, x, y, steps)
            cps = sample_speed(gen, clips, len(data.label_names))
            ov_steps = 50 if on_gpu else OVERHEAD_STEPS.get(preset, 5)
            fw, bare = [], []
            for _ in range(max(1, args.repeats // 2)):
                fw.append(framework_loop(gen, x, y, ov_steps))
                bare.append(bare_loop(gen, x, y, ov_steps))
            row = {"device": str(gen.device), "params": FAST_PATHS.get(path, {}),
                   "train_step_ms": round(1000 / sps, 2), "train_samples_per_s": round(sps * gen.config["batch_size"], 1),
                   "sample_clips_per_s": round(cps, 2), "overhead_pct": round(100 * (min(fw) / min(bare) - 1), 1),
                   "wall_s_incl_warmup": round(time.perf_counter() - t0, 1)}
            if on_gpu:
                row["max_memory_mb"] = round(torch.cuda.max_memory_allocated(gen.device) / 2**20, 1)
                torch.cuda.reset_peak_memory_stats(gen.device)
            out["fast_paths"][preset][path] = row
            print(f"{preset}/{path}: {row}", file=sys.stderr)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
