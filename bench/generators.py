"""Generator speed on this machine. Prints JSON.

For every diffusion preset: training steps/s (the preset's batch of 30-frame windows of the
bundled clips) and sampling clips/s (the preset's DDIM steps, with classifier-free guidance).
Then the overhead of the framework's ``fit`` loop against a bare PyTorch loop that trains the
same model on the same data with the same batch size (random batch, random diffusion step and
noise, forward, MSE on x₀, backward, gradient clipping, AdamW step): target ≤ 10 %.

Usage: ``python bench/generators.py [--presets tiny,small,base] [--device auto]``
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

from generators import build_generator  # noqa: E402
from generators.diffusion import MotionDiffusion  # noqa: E402
from motion.dataset import build_dataset  # noqa: E402

#: (timed training steps, sampled clips) per preset on CPU; base is MDM scale and slow on CPU.
CPU_WORK = {"tiny": (60, 64), "small": (20, 32), "base": (3, 4)}
#: Steps per repeat of the overhead comparison on CPU (short chunks, many repeats, best of).
OVERHEAD_STEPS = {"tiny": 20, "small": 5, "base": 2}


def train_speed(gen: MotionDiffusion, x: np.ndarray, y: np.ndarray, steps: int) -> float:
    gen.fit(x, y, 2, seed=0)  # build + warm-up
    t = time.perf_counter()
    gen.fit(x, y, steps, seed=1)
    return steps / (time.perf_counter() - t)


def sample_speed(gen: MotionDiffusion, n: int, num_labels: int) -> float:
    labels = np.arange(n) % num_labels
    gen.sample(min(n, 2), labels[:2], seed=0)
    t = time.perf_counter()
    gen.sample(n, labels, seed=1)
    return n / (time.perf_counter() - t)


def bare_loop(gen: MotionDiffusion, x: np.ndarray, y: np.ndarray, steps: int) -> float:
    """The same training written by hand; returns seconds per step."""
    model, dev, cfg = gen.model, gen.device, gen.config
    data = (torch.from_numpy(x).to(dev) - gen._mean_t) / gen._std_t
    labels = torch.from_numpy(y).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"])
    ab_all, bs = gen._ab, cfg["batch_size"]
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, len(data), (bs,), device=dev)
        t = torch.randint(0, cfg["diffusion_steps"], (bs,), device=dev)
        x0 = data[idx]
        noise = torch.randn_like(x0)
        ab = ab_all[t][:, None, None]
        pred = model(ab.sqrt() * x0 + (1 - ab).sqrt() * noise, t, labels[idx])
        loss = torch.mean((pred - x0) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def framework_loop(gen: MotionDiffusion, x: np.ndarray, y: np.ndarray, steps: int) -> float:
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
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    data = build_dataset()
    x, y = data.train.features, data.train.labels
    base_cfg = {"device": args.device, "label_names": data.label_names, "fps": data.fps}
    out: dict = {
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "platform": platform.platform(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "data": {"train_windows": int(len(x)), "window": list(x.shape[1:])},
        "presets": {},
        "overhead": {},
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
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
