"""A learned motion evaluator: a small encoder trained once per dataset, frozen across generations.

No pretrained motion evaluator can be downloaded here, so we train one, as action-to-motion
papers do (Action2Motion, ACTOR, MDM use a recognition network's penultimate layer): a 1-D
temporal convolution network over normalised features (N, T, 62), global average+max pooling,
a ``EMBED_DIM``-d embedding and a linear classifier over clip labels. Its embedding is the space
of FID, diversity, multimodality and precision/recall; its predictions give recognition accuracy.
A classifier alone embeds the action and barely sees degradation, so training adds a
reconstruction head and a quality contrast (:func:`_quality_loss`): corrupted copies of a window
must move away from it, natural variants stay close (docs/METRICS.md, "Sensitivity").

Training is deterministic given the seed and takes about a minute or two on 2 CPU cores, once
per dataset and split (never per seed: :func:`get_evaluator` trains on the whole split). The
trained weights are cached as ``<cache_dir>/<hash>.safetensors`` (+ ``<hash>.json`` with the
settings and training figures), where the hash covers the training features, labels, label
names, normalisation statistics and every setting: the same data and settings never train twice,
and every generation of every arm is measured by the same frozen network. Loading uses
safetensors only (no pickle, no code execution).

Caveat: the bundled dataset has 520 training windows; the evaluator's held-out accuracy (in the
JSON sidecar) says how much its embedding can be trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from sccl.motion.dataset import MotionDataset

log = logging.getLogger(__name__)

#: Bump when the architecture or training recipe changes: old cache entries are then ignored.
EVALUATOR_VERSION = 2


@dataclass(frozen=True)
class EvaluatorSettings:
    """Everything that determines the trained evaluator besides the data."""

    steps: int = 500
    seed: int = 0
    embed_dim: int = 32
    hidden: int = 64
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    noise_std: float = 0.0  #: Gaussian input augmentation in normalised units (0: noise must stay visible to FID)
    recon_weight: float = 1.0  #: weight of the auxiliary reconstruction loss (keeps motion detail in the embedding)
    label_smoothing: float = 0.1  #: bounds the logit (and embedding) scale
    quality_weight: float = 1.0  #: weight of the quality-contrast loss (0: a recogniser + reconstruction only)
    quality_max_sigma: float = 1.5  #: corruption severities are drawn from [0, this] (normalised units)
    quality_margin: float = 1.0  #: a corruption of severity s must move a window >= s x the typical inter-window distance
    quality_readout: float = 1.0  #: weight of the severity readout (a linear direction that measures added corruption)
    quality_pull: float = 1.0  #: weight pulling natural variants (time-warped, shifted) of a window together
    version: int = EVALUATOR_VERSION


class MotionEncoder(nn.Module):
    """Temporal conv net: (N, T, D) normalised features -> (N, embed_dim) embedding, + classifier."""

    def __init__(self, feature_dim: int, num_labels: int, hidden: int, embed_dim: int, window: int = 10) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(feature_dim, hidden, 5, padding=2),
            nn.GELU(),
            nn.Conv1d(hidden, hidden, 5, padding=2, stride=2),
            nn.GELU(),
            nn.Conv1d(hidden, hidden, 3, padding=1),
            nn.GELU(),
        )
        self.proj = nn.Linear(2 * hidden, embed_dim)
        self.head = nn.Linear(embed_dim, num_labels)
        self.window = window
        # auxiliary decoder: the embedding must reconstruct the (time-subsampled) window, so it
        # keeps the detail a pure classifier would discard (noise, jerk, pose errors)
        self.decoder = nn.Sequential(nn.Linear(embed_dim, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, window * feature_dim))
        # quality readout: a linear direction of the embedding that measures corruption severity,
        # so degraded samples shift the embedding's mean (what FID sees), not only its spread
        self.quality = nn.Linear(embed_dim, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.transpose(1, 2))  # (N, hidden, T')
        pooled = torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=-1)
        return self.proj(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.nn.functional.gelu(self.embed(x)))


class MotionEvaluator:
    """A frozen, trained :class:`MotionEncoder` with its normalisation statistics.

    ``embed(features)`` and ``predict(features)`` take raw (un-normalised) features
    (N, T, 62) as produced by :func:`motion.features.motion_to_features` or a generator."""

    def __init__(
        self,
        model: MotionEncoder,
        mean: np.ndarray,
        std: np.ndarray,
        label_names: list[str],
        settings: EvaluatorSettings,
        info: dict | None = None,
    ) -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.label_names = list(label_names)
        self.settings = settings
        self.info = dict(info or {})

    @property
    def embed_dim(self) -> int:
        return self.settings.embed_dim

    def _batches(self, features: np.ndarray, batch: int = 1024):
        x = np.asarray(features, np.float32)
        if x.ndim != 3 or x.shape[-1] != self.mean.shape[0]:
            raise ValueError(f"expected features of shape (N, T, {self.mean.shape[0]}), got {x.shape}")
        x = (x - self.mean) / self.std
        for i in range(0, x.shape[0], batch):
            yield torch.from_numpy(np.ascontiguousarray(x[i : i + batch]))

    @torch.no_grad()
    def embed(self, features: np.ndarray) -> np.ndarray:
        """(N, embed_dim) float64 embeddings."""
        with _single_thread():
            outs = [self.model.embed(b).double().numpy() for b in self._batches(features)]
        return np.concatenate(outs) if outs else np.zeros((0, self.embed_dim))

    @torch.no_grad()
    def logits(self, features: np.ndarray) -> np.ndarray:
        with _single_thread():
            outs = [self.model(b).double().numpy() for b in self._batches(features)]
        return np.concatenate(outs) if outs else np.zeros((0, len(self.label_names)))

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(N,) predicted label indices (into ``label_names``)."""
        return self.logits(features).argmax(axis=1)

    # ----------------------------------------------------------------- persistence
    def save(self, path: Path) -> None:
        """Atomic write of weights + metadata to one safetensors file and a JSON sidecar."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous() for k, v in self.model.state_dict().items()}
        tensors["norm.mean"] = torch.from_numpy(self.mean.copy())
        tensors["norm.std"] = torch.from_numpy(self.std.copy())
        meta = {"settings": asdict(self.settings), "label_names": self.label_names, "info": self.info}
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        save_file(tensors, str(tmp), metadata={"sccl_evaluator": json.dumps(meta)})
        os.replace(tmp, path)
        side = path.with_suffix(".json")
        tmp_side = side.with_suffix(f".tmp{os.getpid()}")
        tmp_side.write_text(json.dumps(meta, indent=2))
        os.replace(tmp_side, side)

    @classmethod
    def load(cls, path: Path) -> "MotionEvaluator":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["sccl_evaluator"])
        tensors = load_file(str(path))
        settings = EvaluatorSettings(**meta["settings"])
        mean = tensors.pop("norm.mean").numpy()
        std = tensors.pop("norm.std").numpy()
        model = MotionEncoder(mean.shape[0], len(meta["label_names"]), settings.hidden, settings.embed_dim)
        model.load_state_dict(tensors)
        return cls(model, mean, std, meta["label_names"], settings, meta.get("info"))


def split_dataset(dataset: "MotionDataset") -> "MotionDataset":
    """The dataset with its whole training split (see :meth:`MotionDataset.split_dataset`);
    objects without that method (a caller's own dataset type) are used as they are."""
    split = getattr(dataset, "split_dataset", None)
    return split() if callable(split) else dataset


def dataset_hash(dataset: "MotionDataset", settings: EvaluatorSettings) -> str:
    """Hex digest over the training data, labels, label names, statistics and settings."""
    h = hashlib.sha256()
    for arr in (dataset.train.features, dataset.train.labels, dataset.stats.mean, dataset.stats.std):
        a = np.ascontiguousarray(arr)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    h.update(json.dumps({"labels": list(dataset.label_names), "settings": asdict(settings)}, sort_keys=True).encode())
    return h.hexdigest()[:20]


@contextlib.contextmanager
def _single_thread():
    """The encoder is tiny: one intra-op thread is several times faster than two on a busy
    2-core machine (thread contention), and keeps the numbers reproducible."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def natural_variant(x: torch.Tensor, gen: torch.Generator, warp: float = 0.15) -> torch.Tensor:
    """The same motion played ±``warp`` faster or slower from a slightly later start (linear
    interpolation along time, clamped at the window's end): variation real data has (held-out
    windows are later cycles of the same clips), which the embedding must not mistake for damage."""
    n, t, d = x.shape
    rate = 1.0 + warp * (2.0 * torch.rand((n, 1), generator=gen) - 1.0)
    start = 0.1 * t * torch.rand((n, 1), generator=gen)
    pos = (start + rate * torch.arange(t).view(1, t)).clamp(0, t - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=t - 1)
    w = (pos - lo).unsqueeze(-1)
    take = lambda idx: torch.gather(x, 1, idx.unsqueeze(-1).expand(n, t, d))  # noqa: E731
    return (1 - w) * take(lo) + w * take(hi)


def _quality_loss(model: MotionEncoder, xb: torch.Tensor, emb: torch.Tensor, settings: EvaluatorSettings,
                  gen: torch.Generator) -> torch.Tensor:
    """Contrast each window with a corrupted copy and a natural variant of itself, in units of
    the batch's typical inter-window distance (so inflating the embedding's scale cannot meet
    the loss): the corrupted copy must land at least ``margin x severity`` away (push), the
    natural variant close (pull), and a linear readout must recover the *added* severity
    (q(corrupted) - q(clean) = severity). All three are relative to the window's own clean
    embedding: an absolute target ("training windows score 0") made the network memorise the
    training windows and put held-out real windows far from them, which FID then mistook for
    degradation."""
    severity = torch.rand(xb.shape[0], generator=gen) * settings.quality_max_sigma
    emb_c = model.embed(corrupt(xb, severity, gen))
    spread = torch.pdist(emb).mean().detach().clamp(min=1e-6)
    moved = (emb_c - emb).norm(dim=1) / spread
    loss = nn.functional.relu(settings.quality_margin * severity - moved).pow(2).mean()
    if settings.quality_pull > 0:
        emb_n = model.embed(natural_variant(xb, gen))
        loss = loss + settings.quality_pull * ((emb_n - emb).norm(dim=1) / spread).pow(2).mean()
    if settings.quality_readout > 0:
        rise = (model.quality(emb_c) - model.quality(emb)).squeeze(-1)
        loss = loss + settings.quality_readout * nn.functional.mse_loss(rise, severity)
    return loss


def _recon_target(x: torch.Tensor, window: int) -> torch.Tensor:
    """(N, T, D) -> (N, window * D): the window resampled to ``window`` evenly spaced frames."""
    idx = torch.linspace(0, x.shape[1] - 1, window).round().long()
    return x[:, idx].reshape(x.shape[0], -1)


def corrupt(x: torch.Tensor, severity: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Degrade each normalised window (N, T, D) by ``severity`` (N,) with one of three kinds of
    damage generators produce: white noise (jitter), a per-channel offset that drifts over the
    window (pose bias), and dropped frames replaced by their predecessor (stutter). Severity 0
    returns the window unchanged. Several kinds, so the embedding learns "worse motion", not the
    signature of the one corruption the noise ladder of ``bench/metrics.py`` applies."""
    n, t, d = x.shape
    kind = torch.randint(0, 3, (n,), generator=gen)
    s = severity.view(n, 1, 1)
    white = s * torch.randn(x.shape, generator=gen)
    ramp = torch.linspace(0.0, 1.0, t).view(1, t, 1)
    drift = s * (torch.randn((n, 1, d), generator=gen) + ramp * torch.randn((n, 1, d), generator=gen))
    drop = torch.rand((n, t), generator=gen) < (severity.view(n, 1) / 1.5).clamp(max=0.9)
    drop[:, 0] = False
    src = torch.arange(t).expand(n, t).clone()
    src[drop] = -1
    src = torch.cummax(src, dim=1).values  # each dropped frame repeats the last kept one
    stutter = torch.gather(x, 1, src.unsqueeze(-1).expand(n, t, d))
    out = torch.where((kind == 0).view(n, 1, 1), x + white, x + drift)
    return torch.where((kind == 2).view(n, 1, 1), stutter, out)


def train_evaluator(dataset: "MotionDataset", settings: EvaluatorSettings) -> MotionEvaluator:
    """Train the encoder/classifier on the dataset's training windows (deterministic)."""
    with _single_thread():
        return _train(dataset, settings)


def _train(dataset: "MotionDataset", settings: EvaluatorSettings) -> MotionEvaluator:
    t0 = time.perf_counter()
    torch.manual_seed(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    mean = dataset.stats.mean.astype(np.float32)
    std = dataset.stats.std.astype(np.float32)
    x = torch.from_numpy((dataset.train.features.astype(np.float32) - mean) / std)
    y = torch.from_numpy(dataset.train.labels.astype(np.int64))
    num_labels = len(dataset.label_names)
    model = MotionEncoder(x.shape[-1], num_labels, settings.hidden, settings.embed_dim)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(settings.steps, 1))
    # balance labels: the bundled data has 2 windows of some actions and 54 of others
    counts = torch.bincount(y, minlength=num_labels).double()
    weights = (1.0 / counts.clamp(min=1))[y]
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(settings.steps):
        idx = torch.multinomial(weights, settings.batch_size, replacement=True, generator=gen)
        xb = x[idx]
        if settings.noise_std > 0:
            xb = xb + settings.noise_std * torch.randn(xb.shape, generator=gen)
        emb = model.embed(xb)
        loss = nn.functional.cross_entropy(
            model.head(nn.functional.gelu(emb)), y[idx], label_smoothing=settings.label_smoothing
        )
        if settings.recon_weight > 0:
            target = _recon_target(xb, model.window)
            loss = loss + settings.recon_weight * nn.functional.mse_loss(model.decoder(emb), target)
        if settings.quality_weight > 0:
            loss = loss + settings.quality_weight * _quality_loss(model, xb, emb, settings, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    ev = MotionEvaluator(model, mean, std, dataset.label_names, settings)
    info: dict = {"train_seconds": round(time.perf_counter() - t0, 3), "final_loss": float(loss.detach())}
    info["train_accuracy"] = float((ev.predict(dataset.train.features) == dataset.train.labels).mean())
    if len(dataset.heldout):
        info["heldout_accuracy"] = float((ev.predict(dataset.heldout.features) == dataset.heldout.labels).mean())
        info["heldout_windows"] = len(dataset.heldout)
    ev.info = info
    log.info("trained motion evaluator in %.1f s: %s", info["train_seconds"], info)
    return ev


def get_evaluator(
    dataset: "MotionDataset",
    cache_dir: Path,
    seed: int = 0,
    steps: int = EvaluatorSettings.steps,
    **settings: object,
) -> MotionEvaluator:
    """The evaluator for ``dataset``'s dataset and split: loaded from ``cache_dir`` if trained
    before, else trained and cached. Extra keyword arguments override :class:`EvaluatorSettings`
    fields.

    It is trained on the whole training split (:meth:`MotionDataset.split_dataset`), never on a
    seed's ``data.n`` subsample, so every seed and every ``data.n`` of one dataset is scored in
    the same embedding space. ``info["hash"]`` identifies it: numbers from evaluators with
    different hashes are not comparable (``sccl report`` flags such aggregates)."""
    cfg = EvaluatorSettings(steps=steps, seed=seed, **settings)  # type: ignore[arg-type]
    dataset = split_dataset(dataset)
    key = dataset_hash(dataset, cfg)
    path = Path(cache_dir) / f"evaluator-{key}.safetensors"
    if path.exists():
        try:
            ev = MotionEvaluator.load(path)
            log.info("loaded motion evaluator %s", path)
            ev.info["cache_path"] = str(path)
            ev.info["hash"] = key
            return ev
        except Exception as exc:  # a corrupt cache entry is retrained, not fatal
            log.warning("ignoring unreadable evaluator cache %s (%s); retraining", path, exc)
    ev = train_evaluator(dataset, cfg)
    ev.save(path)
    ev.info["cache_path"] = str(path)
    ev.info["hash"] = key
    return ev
