"""Size presets of the motion diffusion model (plain dicts in code, overridable key by key).

* ``tiny``  — tests and the smoke config: a training step takes a few milliseconds on 2 CPU cores.
* ``small`` — the CPU quickstart: trains to recognisable samples on the bundled clips in
  minutes on 2 cores (see ``bench/generator_quality.py``).
* ``base``  — MDM scale (8 layers, width 512, 4 heads, feed-forward 1024, 1000 diffusion
  steps, lr 1e-4, batch 64) for GPU runs.

Any key given in the generator config overrides the preset's value; the resolved config is
what checkpoints store. Every key is a field of :class:`DiffusionSettings`, which types it:
the resolved dict is parsed by the experiment config's parser, so a misspelt key fails with
"did you mean".
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from sccl.generators.base import GeneratorConfigError
from sccl.motion.typedconfig import build_dataclass, field_names

#: Keys shared by every preset (a preset or the user config may override them).
COMMON: dict = {
    "device": "auto",  # "auto" = CUDA when available, else CPU; or "cpu", "cuda", "cuda:1"
    "diffusion_steps": 1000,  # T of the cosine schedule (training)
    "sample_steps": 50,  # DDIM steps at sampling (strided subset of the T steps)
    "ddim_eta": 0.0,  # 0 = deterministic DDIM; 1 ≈ ancestral DDPM noise
    "cond": True,  # label-conditional (False: labels are ignored everywhere)
    "cond_mask_prob": 0.1,  # label dropout for classifier-free guidance (MDM: 0.1)
    "guidance_scale": 2.5,  # CFG scale at sampling (1 = plain conditional; MDM: 2.5)
    "dropout": 0.1,
    "weight_decay": 0.0,
    "grad_clip": 1.0,  # max gradient norm (0 = off)
    "keep_optimizer": False,  # carry the AdamW state across fit() calls / generations
    "lambda_pos": 0.0,  # geometric losses through forward kinematics (MDM)
    "lambda_vel": 0.0,
    "lambda_foot": 0.0,
    "foot_contact_speed": 0.3,  # m/s: a ground-truth foot slower than this is in contact
    "fps": 20.0,  # frame rate of the feature windows (needed by the geometric losses)
    "label_names": None,  # list[str]: stored in checkpoints, used by `sccl sample --label`
    "num_labels": None,  # default: len(label_names), else max(labels)+1 of the first fit
    "sample_batch": 256,  # samples denoised together (memory bound)
    "progress_every": 10,  # steps between progress callbacks
    # Opt-in speed paths (off: the reference numerics; CPU tests bound their effect, see README)
    "tf32": False,  # float32 matmuls at "high" precision (TF32 on Ampere+ GPUs)
    "fused_adamw": False,  # AdamW(fused=True): one kernel for the whole optimiser step
    "autocast": None,  # "bf16": bfloat16 autocast of the network in training and sampling
    "compile": False,  # torch.compile the training step's loss: true or a mode ("reduce-overhead", ...)
    "deterministic": False,  # torch.use_deterministic_algorithms + CUBLAS_WORKSPACE_CONFIG (GPU repeatability)
}

#: Accepted values of ``compile`` (besides false/true).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

PRESETS: dict[str, dict] = {
    "tiny": {"layers": 2, "width": 64, "heads": 4, "ff_size": 128, "batch_size": 32, "lr": 1e-3,
             "sample_steps": 10, "dropout": 0.0},
    "small": {"layers": 4, "width": 128, "heads": 4, "ff_size": 256, "batch_size": 64, "lr": 5e-4,
              "sample_steps": 50},
    "base": {"layers": 8, "width": 512, "heads": 4, "ff_size": 1024, "batch_size": 64, "lr": 1e-4,
             "sample_steps": 100, "lambda_pos": 1.0, "lambda_vel": 1.0, "lambda_foot": 1.0},
}


@dataclass
class DiffusionSettings:
    """Typed settings of the motion diffusion model: :data:`COMMON`, a preset's architecture
    and optimiser keys, and optional normalisation statistics. Defaults live in the presets
    (a field's default here is only what an absent key would mean)."""

    preset: str = "small"
    layers: int = 4
    width: int = 128
    heads: int = 4
    ff_size: int = 256
    batch_size: int = 64
    lr: float = 5e-4
    device: str = "auto"
    diffusion_steps: int = 1000
    sample_steps: int = 50
    ddim_eta: float = 0.0
    cond: bool = True
    cond_mask_prob: float = 0.1
    guidance_scale: float = 2.5
    dropout: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    keep_optimizer: bool = False
    lambda_pos: float = 0.0
    lambda_vel: float = 0.0
    lambda_foot: float = 0.0
    foot_contact_speed: float = 0.3
    fps: float = 20.0
    label_names: list[str] | None = None
    num_labels: int | None = None
    sample_batch: int = 256
    progress_every: int = 10
    tf32: bool = False
    fused_adamw: bool = False
    autocast: str | bool | None = None
    compile: bool | str = False
    deterministic: bool = False
    norm_mean: list[float] | None = None  #: feature means (62 numbers) overriding the data's
    norm_std: list[float] | None = None  #: feature standard deviations (62 numbers)


#: Every key a diffusion config may hold.
SETTING_KEYS: tuple[str, ...] = field_names(DiffusionSettings)


def parse_settings(config: dict[str, Any]) -> DiffusionSettings:
    """Type-check a diffusion config dict (unknown key: "did you mean" error naming it)."""
    return build_dataclass(DiffusionSettings, config, error=GeneratorConfigError,
                           what="diffusion setting", lenient=True)


def resolve_config(config: dict | None) -> dict:
    """Preset values under the user's overrides, type-checked. Unknown preset or key, or a bad
    value → GeneratorConfigError naming the key.

    The result stays a plain dict (what checkpoints store and Ray ships); only values given as
    strings ("1e-4", which YAML 1.1 reads as text) or integral floats for integers are replaced
    by their parsed value."""
    config = dict(config or {})
    preset = config.get("preset", "small")
    if preset not in PRESETS:
        raise GeneratorConfigError(f"unknown diffusion preset {preset!r}; available: {', '.join(PRESETS)}")
    out = deepcopy(COMMON)
    out.update(deepcopy(PRESETS[preset]))
    out.update(config)
    out["preset"] = preset
    settings = parse_settings(out)
    for key, given in list(out.items()):
        parsed = getattr(settings, key)
        if (isinstance(given, str) and not isinstance(parsed, str)) or (
                isinstance(parsed, int) and not isinstance(parsed, bool) and not isinstance(given, int)):
            out[key] = parsed
    if out["width"] % out["heads"]:
        raise GeneratorConfigError(f"width ({out['width']}) must be divisible by heads ({out['heads']})")
    for key in ("layers", "width", "heads", "ff_size", "batch_size", "diffusion_steps", "sample_steps"):
        if not isinstance(out[key], int) or isinstance(out[key], bool) or out[key] < 1:
            raise GeneratorConfigError(f"{key} must be a positive integer, got {out[key]!r}")
    for key in ("tf32", "fused_adamw", "deterministic"):
        if not isinstance(out[key], bool):
            raise GeneratorConfigError(f"{key} must be true or false, got {out[key]!r}")
    if out["autocast"] not in (None, False, "bf16"):
        raise GeneratorConfigError(f"autocast must be null or 'bf16', got {out['autocast']!r}")
    if not (isinstance(out["compile"], bool) or out["compile"] in COMPILE_MODES):
        raise GeneratorConfigError(f"compile must be true, false or one of {', '.join(COMPILE_MODES)}, "
                                   f"got {out['compile']!r}")
    if not 0.0 <= float(out["cond_mask_prob"]) < 1.0:
        raise GeneratorConfigError(f"cond_mask_prob must be in [0, 1), got {out['cond_mask_prob']!r}")
    return out
