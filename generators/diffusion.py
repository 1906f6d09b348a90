"""Motion diffusion model in the style of MDM (Tevet et al., ICLR 2023).

A transformer encoder denoises a fixed-length window of learning features (``motion.features``,
62 numbers per frame) and predicts the *clean* sample x₀. The diffusion step and the motion
label are embedded, summed and prepended as one extra token. Labels are dropped with
probability ``cond_mask_prob`` during training (a learned "null" label), so one network serves
conditional, unconditional and classifier-free-guided sampling. Cosine noise schedule; loss =
MSE on x₀ (MDM's "simple" loss) plus optional geometric losses through differentiable forward
kinematics (joint positions, joint velocities, foot contact). Sampling is DDIM over a strided
subset of the training steps, so 10–100 network evaluations give a sample.

Normalisation: on its **first** fit the generator computes per-channel mean/std of the data
(over windows and frames, std floored at 1e-2) and freezes them in its state, so every later
generation works in generation 0's normalised space (a drifting normaliser would hide or
fake collapse). ``config["norm_mean"]``/``config["norm_std"]`` (62 numbers each) override this.

Determinism: weights are initialised and data order, diffusion steps, noise and dropout are
drawn from the ``seed`` given to ``fit`` (global RNG state is saved and restored around it);
``sample`` draws its starting noise from a CPU ``torch.Generator`` seeded with its ``seed``.
Same data, config and seed give bit-identical weights and samples **on CPU**. On a GPU the
per-step randomness is drawn on the device (a CPU draw would cost a host-to-device copy every
step), so GPU results are reproducible in distribution, not equal to CPU results; and CUDA
kernels are not bit-reproducible by default. ``deterministic: true`` switches on
``torch.use_deterministic_algorithms`` (and sets ``CUBLAS_WORKSPACE_CONFIG``) for repeatable
GPU runs on the same GPU model and software, at a speed cost (see README).

Fast paths (each off by default, each a config key; see :data:`generators.presets.COMMON`):
``tf32`` (float32 matmuls at TF32/"high" precision), ``fused_adamw``, ``autocast: bf16``
(training and sampling) and ``compile`` (``torch.compile`` of the training step's loss). Their
CPU tests bound how far they move the loss and the samples (``tests/test_generators.py``).
"""

from __future__ import annotations

import logging
import math
import os
import time
from contextlib import contextmanager, nullcontext
from typing import Iterator

import numpy as np
import torch
from torch import nn

from sccl.generators.base import CheckpointError, Generator, GeneratorConfigError, ProgressFn
from sccl.generators.presets import DiffusionSettings, resolve_config
from sccl.motion.features import features_to_motion, features_to_positions_torch
from sccl.motion.skeleton import FOOT_BODIES, load_skeleton

log = logging.getLogger(__name__)

#: Floor of the frozen normalisation std (a near-constant channel must not blow up later
#: generations whose synthetic data varies a little more on it).
NORM_STD_FLOOR = 1e-2
#: Config keys that define the network's tensors; a checkpoint must agree on them.
ARCH_KEYS = ("layers", "width", "heads", "ff_size")


def resolve_device(name: str | None) -> torch.device:
    """``"auto"``/None → CUDA when available, else CPU."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise GeneratorConfigError(f"device: {name!r} is not a torch device ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GeneratorConfigError(f"device: {name!r} requested but CUDA is not available on this machine")
    return dev


# ------------------------------------------------------------------------------ schedule
def cosine_alphas_cumprod(steps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """ᾱ_t of the cosine schedule (Nichol & Dhariwal 2021), t = 0..steps-1, float64."""
    def f(t: np.ndarray) -> np.ndarray:
        return np.cos((t / steps + s) / (1 + s) * math.pi / 2) ** 2

    t = np.arange(steps + 1, dtype=np.float64)
    betas = np.minimum(1.0 - f(t[1:]) / f(t[:-1]), max_beta)
    return np.cumprod(1.0 - betas)


def ddim_timesteps(train_steps: int, sample_steps: int) -> list[int]:
    """Strided, strictly decreasing timesteps from T-1 down to 0 (at most ``sample_steps``)."""
    k = min(sample_steps, train_steps)
    ts = np.unique(np.round(np.linspace(0, train_steps - 1, k)).astype(int))
    return [int(t) for t in ts[::-1]]


# ------------------------------------------------------------------------------- network
def _sinusoid(positions: torch.Tensor, width: int) -> torch.Tensor:
    """Transformer sinusoidal embedding of (B,) positions/timesteps → (B, width)."""
    half = width // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    args = positions.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    return emb if width % 2 == 0 else torch.nn.functional.pad(emb, (0, 1))


class Denoiser(nn.Module):
    """MDM's encoder-only denoiser: [cond token, frame tokens] → transformer → x₀ per frame."""

    def __init__(self, feat_dim: int, frames: int, num_labels: int, cfg: dict) -> None:
        super().__init__()
        w = cfg["width"]
        self.width = w
        self.num_labels = num_labels
        self.input = nn.Linear(feat_dim, w)
        self.time_mlp = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        self.label_emb = nn.Embedding(num_labels + 1, w)  # last row = null label
        layer = nn.TransformerEncoderLayer(
            w, cfg["heads"], cfg["ff_size"], float(cfg["dropout"]), activation="gelu", batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg["layers"], enable_nested_tensor=False)
        self.output = nn.Linear(w, feat_dim)
        self.register_buffer("pos", _sinusoid(torch.arange(frames + 1), w)[None], persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        cond = self.time_mlp(_sinusoid(t, self.width)) + self.label_emb(label)
        seq = torch.cat([cond[:, None], self.input(x)], dim=1) + self.pos[:, : x.shape[1] + 1]
        return self.output(self.encoder(seq)[:, 1:])


# ----------------------------------------------------------------------------- generator
@contextmanager
def _precision(cfg: dict) -> Iterator[None]:
    """Apply the opt-in global numeric switches (TF32, deterministic kernels) for one
    ``fit``/``sample`` call and restore the caller's settings after: they are process-wide in
    torch, and several generators (or arms) may share a process."""
    old_prec = torch.get_float32_matmul_precision()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    old_cudnn = torch.backends.cudnn.allow_tf32
    try:
        if cfg.get("tf32"):
            torch.set_float32_matmul_precision("high")
            torch.backends.cudnn.allow_tf32 = True
        if cfg.get("deterministic"):
            # cuBLAS needs a fixed workspace for repeatable results; it reads this variable when
            # it creates its handle, so it is set before the first CUDA matmul of the process.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        yield
    finally:
        torch.set_float32_matmul_precision(old_prec)
        torch.use_deterministic_algorithms(old_det, warn_only=old_det_warn)
        torch.backends.cudnn.allow_tf32 = old_cudnn


def _autocast(cfg: dict, device: torch.device):
    """bf16 autocast around the network when ``autocast: bf16`` (else a no-op context)."""
    if cfg.get("autocast") in (None, False, "off", "none"):
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the global torch RNG (dropout, init) inside, restoring the caller's state after."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class MotionDiffusion(Generator):
    """Label-conditional motion diffusion over feature windows ``(N, T, 62)``.

    Config: see :mod:`generators.presets` (``preset`` + overrides). ``fit`` trains for
    ``steps`` AdamW steps; ``continue_training=False`` re-initialises the weights (the frozen
    normalisation is kept). ``keep_optimizer`` (default False, like the reference
    implementation) decides whether the optimiser state carries over between ``fit`` calls
    and is saved in checkpoints; otherwise a fresh AdamW is created at every ``fit``."""

    name = "diffusion"
    settings_class = DiffusionSettings
    uses_device = True
    takes_training_defaults = True

    def __init__(self, config: dict | None = None) -> None:
        super().__init__(resolve_config(config))
        self.device = resolve_device(self.config["device"])
        ab = cosine_alphas_cumprod(self.config["diffusion_steps"])
        self._ab = torch.tensor(ab, dtype=torch.float32, device=self.device)
        self.model: Denoiser | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.feature_shape: tuple[int, int] | None = None
        self.num_labels: int | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.total_steps = 0
        self._mean_t = self._std_t = None
        #: indices of the foot bodies (the foot loss penalises their sliding in contact), on the
        #: device once (a Python list index is copied to the device on every use)
        sk = load_skeleton()
        self._feet_t = torch.tensor([sk.index(b) for b in FOOT_BODIES], dtype=torch.long, device=self.device)
        self._compiled_loss = None

    # ----------------------------------------------------------------- properties
    @property
    def is_fitted(self) -> bool:
        return self.model is not None

    @property
    def label_names(self) -> list[str] | None:
        return self.config.get("label_names")

    @property
    def fps(self) -> float:
        return float(self.config["fps"])

    def num_parameters(self) -> int:
        return 0 if self.model is None else sum(p.numel() for p in self.model.parameters())

    # ----------------------------------------------------------------- building
    def _build(self, feature_shape: tuple[int, int], num_labels: int, seed: int) -> None:
        self.feature_shape = (int(feature_shape[0]), int(feature_shape[1]))
        self.num_labels = int(num_labels)
        with _seeded(seed, self.device):
            self.model = Denoiser(self.feature_shape[1], self.feature_shape[0], self.num_labels, self.config).to(self.device)
        self.optimizer = None

    def _set_norm(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self._mean_t = torch.tensor(self.mean, device=self.device)
        self._std_t = torch.tensor(self.std, device=self.device)

    def _resolve_num_labels(self, labels: np.ndarray | None) -> int:
        if not self.config["cond"]:
            return 0
        if self.config.get("num_labels") is not None:
            return int(self.config["num_labels"])
        if self.label_names:
            return len(self.label_names)
        return 0 if labels is None else int(labels.max()) + 1

    def _new_optimizer(self) -> torch.optim.Optimizer:
        extra = {"fused": True} if self.config.get("fused_adamw") else {}
        return torch.optim.AdamW(
            self.model.parameters(), lr=float(self.config["lr"]), weight_decay=float(self.config["weight_decay"]),
            **extra,
        )

    def _loss_fn(self):
        """The training step's loss, compiled once per model when ``compile`` is set (the
        backward pass is compiled with it by AOTAutograd)."""
        if not self.config.get("compile"):
            return self._loss
        if self._compiled_loss is None or self._compiled_loss[0] is not self.model:
            mode = self.config["compile"] if isinstance(self.config["compile"], str) else None
            self._compiled_loss = (self.model, torch.compile(self._loss, mode=mode, dynamic=False))
        return self._compiled_loss[1]

    # ----------------------------------------------------------------- validation
    def _check_x(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[0] == 0:
            raise GeneratorConfigError(f"x must be feature windows (N, T, D) with N > 0, got shape {x.shape}")
        if self.feature_shape is not None and tuple(x.shape[1:]) != self.feature_shape:
            raise GeneratorConfigError(
                f"x has windows of shape {tuple(x.shape[1:])}, this generator was built for {self.feature_shape}"
            )
        if not np.isfinite(x).all():
            raise GeneratorConfigError("x contains non-finite values")
        return x

    def _check_labels(self, labels: np.ndarray | None, n: int, num_labels: int) -> np.ndarray | None:
        if labels is None or not self.config["cond"]:
            return None
        labels = np.asarray(labels)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise GeneratorConfigError(f"labels must be {n} integers (one per sample), got {labels.dtype} {labels.shape}")
        if n and (labels.min() < 0 or labels.max() >= num_labels):
            raise GeneratorConfigError(f"labels must lie in [0, {num_labels}), got [{labels.min()}, {labels.max()}]")
        return labels.astype(np.int64)

    # ----------------------------------------------------------------- training
    def fit(
        self,
        x: np.ndarray,
        labels: np.ndarray | None,
        steps: int,
        seed: int,
        *,
        continue_training: bool = True,
        progress: ProgressFn | None = None,
    ) -> dict:
        cfg = self.config
        x = self._check_x(x)
        if self.model is None:
            num_labels = self._resolve_num_labels(None if labels is None else np.asarray(labels))
        else:
            num_labels = self.num_labels
        labels = self._check_labels(labels, x.shape[0], num_labels)
        if self.mean is None:
            if cfg.get("norm_mean") is not None and cfg.get("norm_std") is not None:
                self._set_norm(np.asarray(cfg["norm_mean"]), np.maximum(np.asarray(cfg["norm_std"]), NORM_STD_FLOOR))
            else:
                flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
                self._set_norm(flat.mean(0), np.maximum(flat.std(0), NORM_STD_FLOOR))
        if self.model is None or not continue_training:
            self._build(x.shape[1:], num_labels, seed)
        if self.optimizer is None or not cfg["keep_optimizer"]:
            self.optimizer = self._new_optimizer()
        steps = int(steps)
        if steps <= 0:
            return {"loss": float("nan"), "steps": 0, "total_steps": self.total_steps, "seconds": 0.0}

        dev = self.device
        data = (torch.from_numpy(x).to(dev) - self._mean_t) / self._std_t
        null = num_labels
        y_all = torch.from_numpy(labels).to(dev) if labels is not None else torch.full((x.shape[0],), null, device=dev)
        geo = any(float(cfg[k]) > 0 for k in ("lambda_pos", "lambda_vel", "lambda_foot"))
        pos_all = self._positions(torch.from_numpy(x).to(dev)).detach() if geo else None

        rng = torch.Generator().manual_seed(int(seed))
        # Per-step randomness on a GPU comes from a generator on the device: drawing it on the
        # CPU and copying it over costs a host-to-device copy (and sync) per tensor per step.
        # On CPU both are the same generator, so CPU results are unchanged.
        device_rng = rng if dev.type == "cpu" else torch.Generator(device=dev).manual_seed(int(seed))
        n, bs = x.shape[0], min(int(cfg["batch_size"]), x.shape[0])
        # the permutation moves to the device once per epoch, not an index batch per step
        perm, cursor = torch.randperm(n, generator=rng).to(dev), 0
        p_drop, tmax = float(cfg["cond_mask_prob"]), int(cfg["diffusion_steps"])
        every = max(1, int(cfg["progress_every"]))
        clip = float(cfg["grad_clip"])
        model, opt = self.model, self.optimizer
        loss_fn = self._loss_fn()
        model.train()
        running, count, recent = torch.zeros((), device=dev), 0, []
        start = time.perf_counter()
        with _seeded(seed, dev), _precision(cfg):
            for step in range(1, steps + 1):
                if cursor + bs > n:
                    perm, cursor = torch.randperm(n, generator=rng).to(dev), 0
                idx_d = perm[cursor : cursor + bs]
                cursor += bs
                t = torch.randint(0, tmax, (bs,), generator=device_rng, device=dev)
                noise = torch.randn((bs,) + self.feature_shape, generator=device_rng, device=dev)
                drop = torch.rand(bs, generator=device_rng, device=dev) < p_drop
                x0 = data[idx_d]
                y = torch.where(drop, torch.full_like(y_all[idx_d], null), y_all[idx_d])
                with _autocast(cfg, dev):
                    loss = loss_fn(model, x0, t, noise, y, None if pos_all is None else pos_all[idx_d])
                loss = loss.float()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                opt.step()
                running = running + loss.detach()
                count += 1
                if step % every == 0 or step == steps:
                    mean_loss = float(running) / count
                    recent.append(mean_loss)
                    running, count = torch.zeros((), device=dev), 0
                    if progress is not None:
                        progress(step, mean_loss)
        self.total_steps += steps
        seconds = time.perf_counter() - start
        model.eval()
        log.debug("diffusion fit: %d steps in %.1fs, last loss %.4f", steps, seconds, recent[-1])
        return {"loss": recent[-1], "steps": steps, "total_steps": self.total_steps, "seconds": seconds,
                "steps_per_s": steps / max(seconds, 1e-9)}

    def _positions(self, features: torch.Tensor) -> torch.Tensor:
        return features_to_positions_torch(features, self.fps)

    def _loss(self, model: Denoiser, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, y: torch.Tensor,
              pos_gt: torch.Tensor | None) -> torch.Tensor:
        """MDM's simple loss (MSE on x₀ in normalised space) + weighted geometric losses."""
        cfg = self.config
        ab = self._ab[t][:, None, None]
        xt = ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise
        pred = model(xt, t, y).float()  # float32 losses and FK under bf16 autocast too
        loss = torch.mean((pred - x0) ** 2)
        if pos_gt is not None:
            pos = self._positions(pred * self._std_t + self._mean_t)
            if float(cfg["lambda_pos"]) > 0:
                loss = loss + float(cfg["lambda_pos"]) * torch.mean((pos - pos_gt) ** 2)
            vel, vel_gt = pos[:, 1:] - pos[:, :-1], pos_gt[:, 1:] - pos_gt[:, :-1]
            if float(cfg["lambda_vel"]) > 0:
                loss = loss + float(cfg["lambda_vel"]) * torch.mean((vel - vel_gt) ** 2)
            if float(cfg["lambda_foot"]) > 0:
                feet_gt, feet = vel_gt.index_select(2, self._feet_t), vel.index_select(2, self._feet_t)
                contact = (feet_gt.norm(dim=-1) * self.fps < float(cfg["foot_contact_speed"])).float()
                loss = loss + float(cfg["lambda_foot"]) * torch.mean(contact[..., None] * feet ** 2)
        return loss

    # ----------------------------------------------------------------- sampling
    @torch.no_grad()
    def _denoise(self, xt: torch.Tensor, t: int, y: torch.Tensor | None, scale: float) -> torch.Tensor:
        """x₀ prediction with classifier-free guidance (cond and null label in one batch)."""
        b = xt.shape[0]
        tt = torch.full((b,), t, device=self.device, dtype=torch.long)
        null = torch.full((b,), self.num_labels, device=self.device, dtype=torch.long)
        with _autocast(self.config, self.device):
            if y is None:
                return self.model(xt, tt, null).float()
            if scale == 1.0:
                return self.model(xt, tt, y).float()
            out = self.model(torch.cat([xt, xt]), torch.cat([tt, tt]), torch.cat([y, null])).float()
        cond, uncond = out[:b], out[b:]
        return uncond + scale * (cond - uncond)

    def sample(self, n: int, labels: np.ndarray | None, seed: int, *, guidance_scale: float | None = None,
               sample_steps: int | None = None) -> np.ndarray:
        """``n`` feature windows (n, T, 62) float32. ``labels=None`` samples unconditionally
        (null label, no guidance); otherwise one label index per sample, guided with
        ``guidance_scale`` (default: config). DDIM with ``sample_steps`` (default: config)."""
        if self.model is None:
            raise GeneratorConfigError("cannot sample from an unfitted diffusion model: call fit or load a checkpoint")
        n = int(n)
        labels = self._check_labels(labels, n, self.num_labels)
        scale = float(self.config["guidance_scale"] if guidance_scale is None else guidance_scale)
        k = int(self.config["sample_steps"] if sample_steps is None else sample_steps)
        eta = float(self.config["ddim_eta"])
        rng = torch.Generator().manual_seed(int(seed))
        noise = torch.randn((n,) + self.feature_shape, generator=rng)
        # DDPM-style noise (eta > 0) on a GPU: drawn on the device (see ``fit``)
        device_rng = rng if self.device.type == "cpu" else torch.Generator(device=self.device).manual_seed(int(seed))
        ts = ddim_timesteps(int(self.config["diffusion_steps"]), k)
        self.model.eval()
        with _precision(self.config):
            return self._sample_batches(noise, labels, ts, scale, eta, device_rng)

    def _sample_batches(self, noise: torch.Tensor, labels: np.ndarray | None, ts: list[int], scale: float,
                        eta: float, rng: torch.Generator) -> np.ndarray:
        n = noise.shape[0]
        out = []
        bsz = max(1, int(self.config["sample_batch"]))
        for a in range(0, n, bsz):
            x = noise[a : a + bsz].to(self.device)
            y = None if labels is None else torch.from_numpy(labels[a : a + bsz]).to(self.device)
            for i, t in enumerate(ts):
                x0 = self._denoise(x, t, y, scale)
                if i + 1 == len(ts):
                    x = x0
                    break
                ab, ab_prev = self._ab[t], self._ab[ts[i + 1]]
                eps = (x - ab.sqrt() * x0) / (1.0 - ab).sqrt()
                sigma = eta * torch.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
                x = ab_prev.sqrt() * x0 + torch.sqrt(torch.clamp(1 - ab_prev - sigma**2, min=0.0)) * eps
                if eta > 0:
                    x = x + sigma * torch.randn(x.shape, generator=rng, device=rng.device).to(self.device)
            out.append((x * self._std_t + self._mean_t).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0,) + self.feature_shape, np.float32)

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict:
        tensors: dict[str, np.ndarray] = {}
        meta: dict = {
            "preset": self.config["preset"],
            "feature_shape": None if self.feature_shape is None else list(self.feature_shape),
            "num_labels": self.num_labels,
            "total_steps": self.total_steps,
            "optimizer": None,
        }
        if self.mean is not None:
            tensors["norm/mean"], tensors["norm/std"] = self.mean, self.std
        if self.model is not None:
            for k, v in self.model.state_dict().items():
                tensors[f"model/{k}"] = v.detach().cpu().clone().numpy()  # a snapshot, not a view
        if self.optimizer is not None and self.config["keep_optimizer"]:
            osd = self.optimizer.state_dict()
            meta["optimizer"] = {"param_groups": osd["param_groups"], "state": {}}
            for pid, st in osd["state"].items():
                meta["optimizer"]["state"][str(pid)] = sorted(st)
                for key, val in st.items():
                    tensors[f"optim/{pid}/{key}"] = torch.as_tensor(val).detach().cpu().clone().numpy()
        return self._base_state(meta, tensors)

    def load_state_dict(self, state: dict) -> None:
        cfg = state.get("config", {})
        for key in ("preset",) + ARCH_KEYS:
            if key in cfg and cfg[key] != self.config[key]:
                raise CheckpointError(f"checkpoint has {key} = {cfg[key]!r}, this generator has {self.config[key]!r}")
        meta, tensors = state["meta"], state["tensors"]
        self.total_steps = int(meta.get("total_steps", 0))
        if "norm/mean" in tensors:
            self._set_norm(tensors["norm/mean"], tensors["norm/std"])
        if meta.get("feature_shape") is None:
            self.model = self.optimizer = None
            return
        shape = tuple(int(v) for v in meta["feature_shape"])
        if self.feature_shape is not None and shape != self.feature_shape:
            raise CheckpointError(f"checkpoint windows have shape {shape}, this generator has {self.feature_shape}")
        self._build(shape, int(meta["num_labels"]), 0)
        own = self.model.state_dict()
        given = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
        missing, extra = sorted(set(own) - set(given)), sorted(set(given) - set(own))
        if missing or extra:
            raise CheckpointError(f"model tensors do not match: missing {missing[:3]}, unexpected {extra[:3]}")
        for k, v in given.items():
            if tuple(v.shape) != tuple(own[k].shape):
                raise CheckpointError(f"tensor {k} has shape {tuple(v.shape)}, the model needs {tuple(own[k].shape)}")
        if self.mean is None or self.mean.shape != (shape[1],):
            raise CheckpointError(f"normalisation stats missing or not of length {shape[1]}")
        self.model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in given.items()})
        self.model.eval()
        opt_meta = meta.get("optimizer")
        if opt_meta and self.config["keep_optimizer"]:
            self.optimizer = self._new_optimizer()
            st = {}
            for pid, keys in opt_meta["state"].items():
                st[int(pid)] = {}
                for key in keys:
                    name = f"optim/{pid}/{key}"
                    if name not in tensors:
                        raise CheckpointError(f"optimiser tensor {name} missing")
                    st[int(pid)][key] = torch.from_numpy(np.array(tensors[name]))
            try:
                self.optimizer.load_state_dict({"state": st, "param_groups": opt_meta["param_groups"]})
            except (ValueError, KeyError, RuntimeError) as exc:
                raise CheckpointError(f"optimiser state does not match the model: {exc}") from None


def samples_to_motions(features: np.ndarray, fps: float, label_names: list[str] | None = None,
                       labels: np.ndarray | None = None, name_prefix: str = "sample"):
    """Generated feature windows (N, T, 62) → list of :class:`motion.Motion` clips (the
    feature inverse projects any network output onto valid rotations)."""
    out = []
    for i, f in enumerate(np.asarray(features)):
        label = None
        if labels is not None and label_names is not None:
            label = label_names[int(labels[i])]
        out.append(features_to_motion(f, fps, label=label, name=f"{name_prefix}_{i:04d}"))
    return out
