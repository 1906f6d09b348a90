"""Does the physics arm depend on the machine? Fingerprints of the physics corrector's outputs
(and of the numpy/libm/torch math on its path) in one process; prints one JSON object.

Run it several times under different CPU-dispatch and thread settings and compare the
fingerprints (equal hash = bit-identical results)::

    python bench/physics_dispatch.py --clips 24
    NPY_DISABLE_CPU_FEATURES="AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR" python bench/physics_dispatch.py
    GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F python bench/physics_dispatch.py
    ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 python bench/physics_dispatch.py

The inputs are the bundled training windows, half of them with Gaussian noise (σ = 0.3 data
std) so that both verdicts occur, passed through ``features_to_motion`` as generated samples are.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


def _sha(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--torch-threads", type=int, default=None)
    ap.add_argument("--save", default=None, help="write the diagnostics and statuses to this .npz (to compare runs)")
    args = ap.parse_args()
    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    from sccl.correctors.registry import build_corrector
    from sccl.loop.provenance import provenance
    from sccl.motion.dataset import build_dataset
    from sccl.motion.features import features_to_motion, motion_to_features

    ds = build_dataset()
    rng = np.random.default_rng(0)
    idx = rng.choice(len(ds.train), args.clips, replace=False)
    x = ds.train.features[idx].astype(np.float32)
    x[::2] += (0.3 * ds.stats.std * rng.standard_normal(x[::2].shape)).astype(np.float32)
    motions = [features_to_motion(f, ds.fps, label=ds.label_names[ds.train.labels[i]]) for f, i in zip(x, idx)]
    out: dict = {"env": {k: v for k, v in provenance().items()
                         if k in ("env.torch_threads", "env.torch_cpu_capability", "env.pool.openblas",
                                  "env.cpu_simd")},
                 "dispatch_env": {k: os.environ[k] for k in ("NPY_DISABLE_CPU_FEATURES", "GLIBC_TUNABLES",
                                                              "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS") if k in os.environ}}
    out["inputs_sha"] = _sha(*[np.concatenate([m.root_pos.ravel(), m.root_rot.ravel(), m.joint_rots.ravel(), m.joint_angles.ravel()]) for m in motions])
    # the math on the path, on its own: numpy ufuncs (SIMD dispatch), libm via math, torch (ATen dispatch)
    t = np.linspace(-20, 20, 100_003)
    out["numpy_trig_sha"] = _sha(np.sin(t), np.cos(t), np.arctan2(t, 1.7), np.exp(t / 7), np.log1p(np.abs(t)),
                                 np.arccos(np.clip(t / 20, -1, 1)))
    import math

    out["libm_sha"] = _sha(np.array([math.sin(v) + math.exp(v / 9) + math.atan2(v, 0.3) + math.pow(abs(v), 0.37)
                                     for v in t[::10]]))
    g = torch.Generator().manual_seed(0)
    a = torch.randn(257, 300, generator=g)
    out["torch_sha"] = _sha((a @ a.T).numpy(), torch.nn.functional.gelu(a).numpy(), torch.sin(a).numpy(),
                            a.sum(0).numpy())
    corr = build_corrector("physics", {"policy": "reject"})
    corr.prepare(ds.train.motions)
    t0 = time.perf_counter()
    res = corr.correct(motions, seed=0)
    out["correct_s"] = round(time.perf_counter() - t0, 2)
    out["status"] = "".join("1" if s == "ok" else "0" for s in res.status)
    out["corrected_sha"] = _sha(*[motion_to_features(m) for m in res.samples]) if res.samples else ""
    diag = np.array([[d.get(k, np.nan) for k in ("tracking_error_mm", "residual_g", "assist_fraction_g")]
                     for d in res.diagnostics], dtype=np.float64)
    out["diagnostics_sha"] = _sha(diag)
    if args.save:
        np.savez(args.save, diag=diag, status=np.array(res.status), kept=res.kept_index)
    corr.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
