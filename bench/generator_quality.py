"""Does the diffusion model learn the bundled motions? Prints JSON.

Trains a preset (default ``small``) on the bundled clips from scratch, samples windows, and
compares them with the real training windows:

* nearest-neighbour label accuracy: a sample generated for label y counts as correct when its
  nearest real window (Euclidean, normalised flattened features) carries label y (chance ≈ 1/15);
* Fréchet distance between window descriptors (per channel: mean, std and mean |Δ| over time of
  the normalised features) of samples vs real windows, next to the same distance for two
  baselines — frames shuffled across windows, and a moment-matched Gaussian over flattened
  windows (full covariance, the ``gaussian`` generator) — and for the held-out real windows.

Usage: ``python bench/generator_quality.py [--preset small] [--steps 4000] [--seed 0]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

# This folder holds a script named generators.py: keep it from shadowing the package.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import numpy as np  # noqa: E402
from scipy import linalg  # noqa: E402

from sccl.generators import build_generator, load_generator  # noqa: E402
from sccl.motion.dataset import build_dataset  # noqa: E402


def descriptors(windows: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    z = (windows - mean) / std
    return np.concatenate([z.mean(1), z.std(1), np.abs(np.diff(z, axis=1)).mean(1)], axis=1)


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(ca @ cb, disp=False)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2.0 * np.real(covmean)))


def nn_accuracy(samples: np.ndarray, labels: np.ndarray, real: np.ndarray, real_labels: np.ndarray,
                mean: np.ndarray, std: np.ndarray) -> float:
    s = ((samples - mean) / std).reshape(len(samples), -1)
    r = ((real - mean) / std).reshape(len(real), -1)
    d2 = (s**2).sum(1)[:, None] - 2 * s @ r.T + (r**2).sum(1)[None]
    return float((real_labels[d2.argmin(1)] == labels).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-label", type=int, default=20, help="samples per label for the NN accuracy")
    ap.add_argument("--save", default=None, help="also save the trained checkpoint here")
    ap.add_argument("--load", default=None, help="evaluate this checkpoint instead of training")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")

    data = build_dataset()
    x, y = data.train.features, data.train.labels
    mean, std = data.stats.mean, data.stats.std
    if args.load:
        gen = load_generator(args.load)
        args.preset, args.steps = gen.config["preset"], gen.total_steps
    else:
        gen = build_generator("diffusion", {"preset": args.preset, "label_names": data.label_names, "fps": data.fps})
    t0 = time.perf_counter()
    last = [t0]

    def progress(step: int, loss: float) -> None:
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            logging.info("step %d/%d loss %.4f (%.0fs)", step, args.steps, loss, last[0] - t0)

    fit = {"loss": float("nan")} if args.load else gen.fit(x, y, args.steps, seed=args.seed, progress=progress)
    train_s = time.perf_counter() - t0
    if args.save:
        gen.save(args.save)

    rng = np.random.default_rng(args.seed)
    k = len(data.label_names)
    present = np.unique(y)
    lab = np.repeat(present, args.per_label)
    out: dict = {"preset": args.preset, "steps": args.steps, "train_seconds": round(train_s, 1),
                 "final_loss": round(fit["loss"], 4), "parameters": gen.num_parameters(),
                 "train_windows": int(len(x)), "labels": k, "chance_accuracy": round(1.0 / len(present), 3)}
    t1 = time.perf_counter()
    acc = {}
    for scale in (1.0, float(gen.config["guidance_scale"])):
        s = gen.sample(len(lab), lab, seed=args.seed + 1, guidance_scale=scale)
        acc[f"guidance_{scale:g}"] = round(nn_accuracy(s, lab, x, y, mean, std), 3)
        if scale == float(gen.config["guidance_scale"]):
            per = {data.label_names[c]: round(float(nn_accuracy(s[lab == c], lab[lab == c], x, y, mean, std)), 2) for c in present}
    out["nn_label_accuracy"] = acc
    out["nn_label_accuracy_per_label"] = per

    # Fréchet distances against the real training windows (same label distribution).
    real_d = descriptors(x, mean, std)
    samples = gen.sample(len(x), y, seed=args.seed + 2)
    out["sample_seconds_per_clip"] = round((time.perf_counter() - t1) / (len(lab) * 2 + len(x)), 4)
    uncond = gen.sample(len(x), None, seed=args.seed + 3)
    flat = x.reshape(len(x), -1)
    shuffled = flat.reshape(-1, x.shape[-1])[rng.permutation(len(x) * x.shape[1])].reshape(x.shape)
    gauss = build_generator("gaussian", {"ddof": 1})
    gauss.fit(flat.astype(np.float64), None, 0, seed=0)
    gsamples = gauss.sample(len(x), None, seed=args.seed).reshape(x.shape)
    frame_gauss = build_generator("gaussian", {"ddof": 1})
    frame_gauss.fit(x.reshape(-1, x.shape[-1]).astype(np.float64), None, 0, seed=0)
    fsamples = frame_gauss.sample(x.shape[0] * x.shape[1], None, seed=args.seed).reshape(x.shape)
    fd = {
        "samples_conditional": frechet(descriptors(samples, mean, std), real_d),
        "samples_unconditional": frechet(descriptors(uncond, mean, std), real_d),
        "baseline_shuffled_frames": frechet(descriptors(shuffled, mean, std), real_d),
        "baseline_gaussian_per_frame": frechet(descriptors(fsamples, mean, std), real_d),
        "baseline_gaussian_full_window": frechet(descriptors(gsamples, mean, std), real_d),
        "heldout_real_windows": frechet(descriptors(data.heldout.features, mean, std), real_d),
    }
    out["frechet_descriptor_vs_train"] = {k2: round(v, 2) for k2, v in fd.items()}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
