"""What a run needs recorded to explain its numbers on another machine: library versions, the
CPU (model, SIMD flags, the kernel set torch dispatches to), thread counts, and fingerprints of
the math itself.

Floating-point results of the same seed can differ between machines through runtime-dispatched
kernels (torch picks AVX2 or AVX-512 code at run time; MKL and OpenBLAS pick their own), through
the number of threads a reduction is split over, and through library versions. None of these is
in the config, so the driver logs them as run params (``env.*``); two runs that disagree can then
be told apart by their params before anyone suspects the code.

Flags and versions say what *could* differ; the fingerprints (``env.libm_sha``,
``env.numpy_math_sha``, ``env.torch_math_sha``) say what *does*: each hashes the bits of a fixed
computation through one library's math (a few thousand arguments per function), so two machines
whose fingerprints differ compute those functions differently, and equal fingerprints mean the
same bits on those arguments: a strong check, not a proof for every input. glibc's libm picks FMA/AVX2 code paths at load time, and the physics
corrector's outputs change with it (docs/RESULTS.md §3b), so ``env.libm_sha`` is the first param
to compare when a physics arm disagrees between machines.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import platform
import sys
from importlib import metadata
from typing import Any

log = logging.getLogger(__name__)

#: Libraries whose versions can change a result (numerics, physics, data, tracking).
LIBRARIES = ("torch", "numpy", "scipy", "pybullet", "safetensors", "ray", "mlflow")
#: CPU flags that select different math kernels (runtime dispatch in torch, MKL, OpenBLAS, libm).
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "amx_tile", "neon", "asimd", "sve")
#: Environment variables that set thread pools or force a kernel set (torch, MKL, OpenBLAS,
#: numpy's SIMD dispatch, glibc's hardware-capability dispatch of libm).
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
              "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "OPENBLAS_CORETYPE",
              "NPY_DISABLE_CPU_FEATURES", "GLIBC_TUNABLES")


def cpu_info() -> dict[str, str]:
    """CPU model and the SIMD flags that matter for kernel dispatch (Linux: /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {
        "env.cpu_model": model,
        "env.cpu_simd": ",".join(f for f in SIMD_FLAGS if f in flags) or "unknown",
        "env.cpu_flags_sha": hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:12] if flags else "",
        "env.cpu_count": str(os.cpu_count()),
        "env.cpu_affinity": str(len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else "",
    }


def thread_info() -> dict[str, str]:
    """Thread pools as this process has them now (torch intra/inter-op, BLAS/OpenMP pools)."""
    out: dict[str, str] = {}
    try:
        import torch

        out["env.torch_threads"] = str(torch.get_num_threads())
        out["env.torch_interop_threads"] = str(torch.get_num_interop_threads())
        out["env.torch_cpu_capability"] = str(torch.backends.cpu.get_cpu_capability())
    except Exception as exc:  # noqa: BLE001 - provenance is best effort, never fatal
        log.debug("torch thread info unavailable: %s", exc)
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            name = f"env.pool.{pool.get('internal_api', '?')}"
            out[name] = f"{pool.get('num_threads')} ({pool.get('architecture') or pool.get('version') or ''})"
    except Exception as exc:  # noqa: BLE001
        log.debug("threadpoolctl unavailable: %s", exc)
    for var in THREAD_ENV:
        if var in os.environ:
            out[f"env.{var}"] = os.environ[var]
    return out


#: the params :func:`math_fingerprints` fills (torch's only when torch imports)
MATH_FINGERPRINTS = ("env.libm_sha", "env.numpy_math_sha", "env.torch_math_sha")


def _sha(*arrays: Any) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(a.tobytes())
    return h.hexdigest()[:12]


def math_fingerprints() -> dict[str, str]:
    """Hashes of fixed computations through libm (Python's ``math``), numpy's ufuncs and torch:
    different on two machines whose functions return different bits on these arguments (a few ms)."""
    import numpy as np

    out: dict[str, str] = {}
    # 10 001 points: fewer (2 001) missed glibc's FMA/AVX2 variants in numpy's float64 sin
    t = np.linspace(-20.0, 20.0, 10_001)
    out["env.libm_sha"] = _sha(np.array([math.sin(v) + math.cos(v) + math.exp(v / 9) + math.log1p(abs(v))
                                         + math.atan2(v, 0.3) + math.pow(abs(v), 0.37) for v in t[::5].tolist()]))
    out["env.numpy_math_sha"] = _sha(np.sin(t), np.cos(t), np.exp(t / 9), np.arctan2(t, 0.3),
                                     np.arccos(np.clip(t / 20, -1, 1)), np.log1p(np.abs(t)))
    try:
        import torch

        a = torch.linspace(-3.0, 3.0, 64 * 96).reshape(64, 96)
        out["env.torch_math_sha"] = _sha((a @ a.T).numpy(), torch.sin(a).numpy(), torch.exp(a).numpy(),
                                         torch.nn.functional.gelu(a).numpy(), a.sum(0).numpy())
    except Exception as exc:  # noqa: BLE001 - provenance is best effort, never fatal
        log.debug("torch fingerprint unavailable: %s", exc)
    return out


def library_versions() -> dict[str, str]:
    libc, libc_version = platform.libc_ver()
    out = {"env.python": sys.version.split()[0], "env.platform": platform.platform(),
           "env.libc": f"{libc} {libc_version}".strip() or "unknown"}
    for name in LIBRARIES:
        try:
            out[f"env.{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[f"env.{name}"] = "absent"
    return out


def provenance() -> dict[str, str]:
    """All ``env.*`` params: library versions, CPU, thread pools, math fingerprints (strings,
    ready for MLflow)."""
    return {**library_versions(), **cpu_info(), **thread_info(), **math_fingerprints()}


def format_provenance(params: dict[str, Any] | None = None) -> str:
    """One ``key=value`` line per param, sorted (for logs and bench output)."""
    params = provenance() if params is None else params
    return "\n".join(f"{k}={v}" for k, v in sorted(params.items()))


if __name__ == "__main__":  # python -m sccl.loop.provenance
    print(format_provenance())
