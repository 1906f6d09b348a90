"""Does generator training amplify a last-bit difference in its training data? Prints one JSON
object: the `small` diffusion generator trained twice on the same windows (repeatability) and
once on the windows moved by one float32 ulp, then sampled with one seed.

A physics corrector whose output differs in the last bits between machines (CPU-dispatched libm,
see ``bench/physics_dispatch.py``) changes the self-correcting arm's training data by about that
much; if training amplifies it, the arm's numbers differ between machines as the issue saw.

    python bench/training_sensitivity.py [--steps 150] [--n 256]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--n", type=int, default=256)
    args = ap.parse_args()
    from sccl.generators.registry import build_generator
    from sccl.motion.dataset import build_dataset

    ds = build_dataset()
    x, y = ds.train.features[: args.n], ds.train.labels[: args.n]
    ulp = np.nextafter(x, np.float32(np.inf)).astype(np.float32)
    out = {}
    for name, data in (("a", x), ("a_again", x), ("ulp", ulp)):
        g = build_generator("diffusion", {"preset": "small", "sample_steps": 20, "label_names": ds.label_names,
                                          "fps": ds.fps, "device": "cpu"})
        g.fit(data, y, args.steps, seed=0)
        out[name] = g.sample(64, y[:64], seed=1)
    rms = float(np.sqrt((out["a"] ** 2).mean()))
    print(json.dumps({
        "steps": args.steps,
        "input_max_rel_change": float(np.max(np.abs(ulp - x) / np.maximum(np.abs(x), 1e-30))),
        "same_data_max_abs_diff": float(np.abs(out["a"] - out["a_again"]).max()),
        "one_ulp_max_abs_diff": float(np.abs(out["a"] - out["ulp"]).max()),
        "one_ulp_rms_diff_over_rms": float(np.sqrt(((out["a"] - out["ulp"]) ** 2).mean()) / rms),
    }))


if __name__ == "__main__":
    main()
