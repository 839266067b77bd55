"""Training loop for PreMixNet / PostMixNet over examples streamed through a ``DataLoader``.

What the paper fixes: Adam with learning rate 1e-4, a 4:1 train/validation
split, cross-entropy with or without LSRO (unlabeled examples get the target
(0.5, 0.5); without LSRO they are left out). What we add:

* the split is by group — all candidates built on one vocal seed (for
  stored candidates, on any excerpt of its recording:
  :func:`scoring.services.recording_groups`) fall on the same side, so
  validation never hears a vocal, or a song, it trained on;
* every random choice comes from ``seed``: the weights (``torch.manual_seed``),
  the split (``np.random.default_rng(seed)``), and each epoch's shuffle
  (a ``torch.Generator`` seeded with ``seed * 1000 + epoch``), so a run
  resumed after epoch k ends with the same weights as an uninterrupted one,
  and examples held in memory or streamed from the feature store give the
  same weights;
* batches come from a ``torch.utils.data.DataLoader`` over
  :class:`scoring.examples.Examples` (``workers`` processes, pinned memory on
  CUDA), so memory does not grow with the number of examples; mixed precision
  (bfloat16 autocast, float16 with a gradient scaler where bfloat16 is
  missing) on CUDA;
* the best epoch by validation loss is kept (``checkpoint.pt``), training
  stops early after ``patience`` epochs without improvement, and the last
  epoch's full state (optimiser, RNG) is ``last.pt`` for resuming;
* every checkpoint carries what scoring needs — architecture and width, the
  input normalisation (inside the model), the feature config and the crop
  offsets — so a checkpoint registered on another machine scores the same;
  a JSON sidecar (arguments, seed, data hash, code version, metrics per
  epoch, the epoch kept) sits next to it;
* CPU by default; CUDA when ``device`` is None and CUDA is available.

Data layout: example features float32 (C, T, 128) with C = 3 (roles in
:data:`scoring.nets.ROLES` order) for premix and 1 for postmix; labels in
{1 positive/original, 0 negative/unmatched, −1 unlabeled/matched}; groups the
vocal seed id of each example.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from scoring.augment import band_centres_hz, random_shifts, transpose
from scoring.errors import ScoringError
from scoring.examples import ArrayExamples, Examples
from scoring.features import FeatureConfig
from scoring.losses import POSITIVE, UNLABELED, balanced_class_weights, lsro_cross_entropy
from scoring.nets import ARCHITECTURES, GOOD, MashabilityNet, build_model

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "mashlab-scoring-checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"  # the epoch kept (best validation loss): what a system scores with
LAST_NAME = "last.pt"  # the last epoch's full state: what a run resumes from
SIDECAR_NAME = "checkpoint.json"
DEFAULT_LR = 1e-4
DEFAULT_PATIENCE = 5


@dataclass
class TrainResult:
    """What :func:`train_model` returns: the kept model (eval mode) and where it was saved."""

    model: MashabilityNet
    history: list[dict[str, float]]
    checkpoint_path: Path
    sidecar_path: Path
    best_epoch: int
    stopped_early: bool = False
    train_groups: list[Any] = field(default_factory=list)
    val_groups: list[Any] = field(default_factory=list)


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU; a CUDA request without CUDA is an error."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ScoringError(f"device {device!r} asked for, but this torch {torch.__version__} sees no CUDA GPU")
    return dev


def split_by_group(groups: np.ndarray, *, val_fraction: float = 0.2, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with every group wholly on one side; ~``val_fraction`` of groups in val.

    Groups are shuffled with ``np.random.default_rng(seed)``; the validation
    side gets ``max(1, round(val_fraction * n_groups))`` groups (4:1 at 0.2).
    """
    g = np.asarray(groups)
    if g.ndim != 1 or g.size == 0:
        raise ScoringError(f"groups must be a non-empty 1-D array, got shape {g.shape}")
    if not 0 < val_fraction < 1:
        raise ScoringError(f"val_fraction must be in (0, 1), got {val_fraction}")
    uniq = np.unique(g)
    if uniq.size < 2:
        raise ScoringError(f"need at least 2 vocal seed groups to split, got {uniq.size}")
    order = np.random.default_rng(seed).permutation(uniq.size)
    n_val = min(uniq.size - 1, max(1, int(round(val_fraction * uniq.size))))
    val_groups = uniq[order[:n_val]]
    is_val = np.isin(g, val_groups)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def data_hash(examples: Examples) -> str:
    """SHA-256 over every example's checksum, label and group: names the training data in the sidecar."""
    h = hashlib.sha256()
    h.update("\n".join(examples.digests).encode())
    h.update(np.ascontiguousarray(examples.labels, dtype=np.int64).tobytes())
    h.update(json.dumps([str(x) for x in np.asarray(examples.groups).tolist()]).encode())
    return h.hexdigest()


def code_version() -> str | None:
    """``git rev-parse HEAD`` of the repository this file lives in, or None without git or commits."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
            text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def _check_data(arch: str, examples: Examples) -> None:
    if arch not in ARCHITECTURES:
        raise ScoringError(f"unknown architecture {arch!r}; choose one of {ARCHITECTURES}")
    want_c = 3 if arch == "premix" else 1
    shape = tuple(examples.example_shape)
    if len(shape) != 3 or shape[0] != want_c:
        raise ScoringError(f"{arch} needs features (N, {want_c}, T, 128), got (N, {', '.join(map(str, shape))})")
    if len(examples) == 0:
        raise ScoringError("no training examples")
    allowed = {POSITIVE, 0, UNLABELED}
    if not set(np.unique(examples.labels).tolist()) <= allowed:
        raise ScoringError(f"labels must be 1, 0 or -1, got {sorted(set(np.unique(examples.labels).tolist()))}")


def _loader(examples: Examples, batches: list[list[int]], *, workers: int, device: torch.device) -> DataLoader:
    return DataLoader(examples, batch_sampler=batches, num_workers=workers, pin_memory=device.type == "cuda",
                      persistent_workers=False)


def _batches(indices: np.ndarray, batch_size: int) -> list[list[int]]:
    idx = [int(i) for i in indices]
    return [idx[s : s + batch_size] for s in range(0, len(idx), batch_size)]


def _finite(x: torch.Tensor) -> torch.Tensor:
    if not bool(torch.isfinite(x).all()):
        raise ScoringError("features contain NaN or infinite values")
    return x


def input_statistics(examples: Examples, indices: np.ndarray, *, batch_size: int = 64,
                     workers: int = 0) -> tuple[float, float]:
    """(mean, std) of every feature value of the examples at ``indices`` (log-mel units), in float64.

    One streamed pass, so it costs no memory beyond a batch.
    """
    total, total_sq, n = 0.0, 0.0, 0
    for x, _ in _loader(examples, _batches(indices, batch_size), workers=workers, device=torch.device("cpu")):
        x = _finite(x).double()
        total += float(x.sum())
        total_sq += float((x * x).sum())
        n += x.numel()
    if n == 0:
        raise ScoringError("no training example to normalise the input with")
    mean = total / n
    std = max(total_sq / n - mean * mean, 0.0) ** 0.5
    return mean, std or 1.0


class _Precision:
    """Autocast and gradient scaling for mixed precision on CUDA; a no-op elsewhere."""

    def __init__(self, device: torch.device, enabled: bool) -> None:
        self.enabled = enabled and device.type == "cuda"
        self.dtype = (torch.bfloat16 if self.enabled and torch.cuda.is_bf16_supported() else torch.float16)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.enabled and self.dtype == torch.float16)
        self.device_type = device.type

    def autocast(self):
        return torch.autocast(device_type=self.device_type, dtype=self.dtype, enabled=self.enabled)

    @property
    def name(self) -> str:
        return str(self.dtype).replace("torch.", "") if self.enabled else "float32"


@torch.no_grad()
def _evaluate(model: MashabilityNet, examples: Examples, indices: np.ndarray, *, batch_size: int,
              device: torch.device, workers: int, precision: _Precision) -> tuple[float, float]:
    """(accuracy at 0.5, mean cross-entropy) over the labeled examples at ``indices``; (nan, nan) if none."""
    keep = indices[examples.labels[indices] != UNLABELED]
    if keep.size == 0:
        return float("nan"), float("nan")
    model.eval()
    correct, loss_sum = 0, 0.0
    for x, y in _loader(examples, _batches(keep, batch_size), workers=workers, device=device):
        x, y = _finite(x).to(device, non_blocking=True), y.to(device, non_blocking=True)
        with precision.autocast():
            logits = model(x)
        logits = logits.float()
        p_good = torch.softmax(logits, dim=-1)[:, GOOD]
        correct += int(((p_good >= 0.5).long() == y).sum())
        loss_sum += float(lsro_cross_entropy(logits, y)) * len(y)
    return correct / keep.size, loss_sum / keep.size


def save_checkpoint(path: Path, *, model: MashabilityNet, optimizer: torch.optim.Optimizer | None, epoch: int,
                    history: list[dict[str, float]], feature_config: FeatureConfig | None,
                    crop_offsets_s: list[float] | None = None, extra: dict[str, Any] | None = None) -> None:
    """Write a checkpoint atomically (temp file + rename) so a crash never leaves half a file.

    ``crop_offsets_s``: the crop start times (s) the model was trained on and
    scores with (mean posterior over them); with the feature config and the
    model's own input normalisation, all a scorer needs.
    """
    state = {
        "format": CHECKPOINT_FORMAT,
        "architecture": model.config(),
        "feature_config": feature_config.to_dict() if feature_config else None,
        "scoring": {"crop_offsets_s": [float(o) for o in (crop_offsets_s or [0.0])]},
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "epoch": int(epoch),
        "rng": {"torch": torch.get_rng_state()},
        "history": history,
        "extra": extra or {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def checkpoint_crop_offsets(state: dict[str, Any]) -> list[float] | None:
    """The crop offsets (s) a checkpoint scores with, or None for checkpoints older than that field."""
    offsets = (state.get("scoring") or {}).get("crop_offsets_s")
    return [float(o) for o in offsets] if offsets else None


def read_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict, checked for existence and format."""
    p = Path(path)
    if not p.is_file():
        raise ScoringError(f"checkpoint {p} does not exist")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise ScoringError(f"checkpoint {p} cannot be read: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ScoringError(f"{p} is not a mashlab scoring checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def load_checkpoint(path: str | Path, *, arch: str | None = None,
                    map_location: str | torch.device = "cpu") -> tuple[MashabilityNet, dict[str, Any]]:
    """Rebuild the model a checkpoint holds, in eval mode; returns (model, checkpoint dict).

    ``arch``: the architecture the caller expects ('premix' | 'postmix'); a
    checkpoint of another one raises :class:`ScoringError` instead of
    failing later on shapes.
    """
    state = read_checkpoint(path, map_location=map_location)
    cfg = state.get("architecture") or {}
    if arch is not None and cfg.get("arch") != arch:
        raise ScoringError(f"checkpoint {path} holds a {cfg.get('arch')!r} model, not the expected {arch!r}")
    try:
        model = build_model(cfg["arch"], width=float(cfg["width"]), n_mels=int(cfg.get("n_mels", 128)))
        model.load_state_dict(state["model_state"], strict=True)
    except (KeyError, RuntimeError) as exc:
        raise ScoringError(f"checkpoint {path} does not match its recorded architecture {cfg}: {exc}") from exc
    model.to(map_location).eval()
    return model, state


def _best_epoch(history: list[dict[str, float]]) -> int:
    """Epoch (1-based) with the lowest finite validation loss; the last epoch when none is finite."""
    finite = [h for h in history if np.isfinite(h.get("val_loss", float("nan")))]
    if not finite:
        return int(history[-1]["epoch"]) if history else 0
    return int(min(finite, key=lambda h: (h["val_loss"], h["epoch"]))["epoch"])


def train_model(
    *,
    arch: str,
    epochs: int,
    seed: int,
    lsro: bool,
    out_dir: str | Path,
    examples: Examples | None = None,
    features: np.ndarray | torch.Tensor | None = None,
    labels: np.ndarray | torch.Tensor | None = None,
    groups: np.ndarray | list | None = None,
    width: float = 1.0,
    lr: float = DEFAULT_LR,
    batch_size: int = 16,
    val_fraction: float = 0.2,
    device: str | None = None,
    feature_config: FeatureConfig | None = None,
    crop_offsets_s: list[float] | None = None,
    arguments: dict[str, Any] | None = None,
    resume: bool = True,
    progress: bool = True,
    balance_classes: bool = True,
    patience: int = DEFAULT_PATIENCE,
    workers: int = 0,
    mixed_precision: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    transpose_semitones: float = 0.0,
) -> TrainResult:
    """Train ``arch`` for at most ``epochs`` epochs (counting resumed ones) and keep the best one.

    The data are ``examples`` (a :class:`scoring.examples.Examples`), or
    ``features`` (N, C, T, 128) with ``labels`` and ``groups`` held in memory.
    Writes ``out_dir/checkpoint.pt`` (the epoch with the lowest validation
    loss), ``out_dir/last.pt`` (the last epoch, for resuming) and
    ``out_dir/checkpoint.json``. With ``resume`` and an existing ``last.pt``
    the run continues from it (after checking that seed, LSRO setting and
    data hash agree). ``patience`` ≥ 1 stops after that many epochs without a
    lower validation loss (0: run every epoch). ``balance_classes`` weighs the
    loss so that positives and negatives of the training split count equally.
    ``workers``: DataLoader worker processes (0 reads in this process).
    ``transpose_semitones`` > 0 moves every training example's stems together
    by a fresh seeded shift in ±that many semitones each epoch
    (:mod:`scoring.augment`; validation examples are never shifted).
    """
    from tqdm.auto import tqdm

    if epochs < 1:
        raise ScoringError(f"epochs must be ≥ 1, got {epochs}")
    if batch_size < 2:
        raise ScoringError(f"batch_size must be ≥ 2 (BatchNorm cannot train on one example), got {batch_size}")
    if lr <= 0:
        raise ScoringError(f"lr must be positive, got {lr}")
    if patience < 0 or workers < 0:
        raise ScoringError(f"patience and workers must be ≥ 0, got {patience} and {workers}")
    if not (0.0 <= transpose_semitones <= 12.0):
        raise ScoringError(f"transpose_semitones must be in 0..12, got {transpose_semitones}")
    if examples is None:
        if features is None or labels is None or groups is None:
            raise ScoringError("give examples, or features with labels and groups")
        examples = ArrayExamples(features, np.asarray(labels), np.asarray(groups))
    _check_data(arch, examples)
    y, g = examples.labels, examples.groups
    dhash = data_hash(examples)
    train_idx, val_idx = split_by_group(g, val_fraction=val_fraction, seed=seed)
    if not lsro:
        train_idx = train_idx[y[train_idx] != UNLABELED]
    if not bool((y[train_idx] != UNLABELED).any()):
        raise ScoringError("the training split holds no labeled (original / unmatched) example")
    dev = pick_device(device)
    precision = _Precision(dev, mixed_precision)
    out = Path(out_dir)
    ckpt_path, last_path, sidecar_path = out / CHECKPOINT_NAME, out / LAST_NAME, out / SIDECAR_NAME
    run_args = {
        "arch": arch, "width": width, "lsro": bool(lsro), "epochs": epochs, "seed": seed, "lr": lr,
        "batch_size": batch_size, "val_fraction": val_fraction, "balance_classes": bool(balance_classes),
        "patience": patience, "crop_offsets_s": crop_offsets_s or [0.0],
        "transpose_semitones": float(transpose_semitones), **(arguments or {}),
    }
    run_args = json.loads(json.dumps(run_args, default=str))  # plain types only: checkpoints load weights_only

    torch.manual_seed(seed)
    model = build_model(arch, width=width)
    history: list[dict[str, float]] = []
    start_epoch = 0
    state = None
    if resume and last_path.exists():
        model, state = load_checkpoint(last_path, arch=arch, map_location=dev)
        extra = state.get("extra", {})
        for key, want in (("seed", seed), ("lsro", bool(lsro)), ("data_hash", dhash)):
            if extra.get(key) != want:
                raise ScoringError(
                    f"cannot resume {last_path}: its {key} is {extra.get(key)!r}, this run's is {want!r}; "
                    "use another --out directory"
                )
        history = list(state.get("history", []))
        start_epoch = int(state["epoch"])
    else:
        mean, std = input_statistics(examples, train_idx, batch_size=max(batch_size, 64), workers=workers)
        model.set_input_normalisation(mean=mean, std=std)
    model.to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if state is not None:
        if state.get("optimizer_state"):
            optimizer.load_state_dict(state["optimizer_state"])
        # the checkpoint was loaded onto `dev`; the CPU generator takes a CPU byte tensor only
        torch.set_rng_state(torch.as_tensor(state["rng"]["torch"]).to("cpu", torch.uint8))

    extra = {"seed": seed, "lsro": bool(lsro), "data_hash": dhash, "arguments": run_args}
    weights = balanced_class_weights(torch.as_tensor(y[train_idx])) if balance_classes else {}
    save = dict(feature_config=feature_config, crop_offsets_s=run_args["crop_offsets_s"], extra=extra)
    best = _best_epoch(history)
    stopped_early = bool(history) and patience > 0 and int(history[-1]["epoch"]) - best >= patience
    centres_hz = band_centres_hz(feature_config or FeatureConfig()) if transpose_semitones else None
    bar = tqdm(range(start_epoch, epochs), desc=f"train {arch}{'+lsro' if lsro else ''}",
               disable=not progress or stopped_early, unit="epoch")
    for epoch in bar:
        if stopped_early:
            break
        model.train()
        gen = torch.Generator().manual_seed(seed * 1000 + epoch)
        order = train_idx[torch.randperm(len(train_idx), generator=gen).numpy()]
        batches = [b for b in _batches(order, batch_size) if len(b) >= 2]  # BatchNorm cannot train on one
        loss_sum, n_seen = 0.0, 0
        shift_gen = torch.Generator().manual_seed(seed * 1000 + epoch + 1)
        for x, yb in _loader(examples, batches, workers=workers, device=dev):
            x = _finite(x)
            if centres_hz is not None:
                x = transpose(x, random_shifts(len(x), max_semitones=transpose_semitones, generator=shift_gen),
                              centres_hz)
            x, yb = x.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
            with precision.autocast():
                logits = model(x)
            loss = lsro_cross_entropy(logits.float(), yb, class_weights=weights)
            optimizer.zero_grad(set_to_none=True)
            precision.scaler.scale(loss).backward()
            precision.scaler.step(optimizer)
            precision.scaler.update()
            loss_sum += float(loss.detach()) * len(yb)
            n_seen += len(yb)
        val_acc, val_loss = _evaluate(model, examples, val_idx, batch_size=batch_size, device=dev,
                                      workers=workers, precision=precision)
        record = {"epoch": epoch + 1, "train_loss": loss_sum / max(n_seen, 1), "val_accuracy": val_acc,
                  "val_loss": val_loss}
        history.append(record)
        if on_epoch is not None:  # e.g. the workbench job's live loss curve
            on_epoch(record)
        best = _best_epoch(history)
        log.info("epoch %d of %d: train loss %.4f, validation accuracy %.3f, validation loss %.4f (best epoch %d)",
                 epoch + 1, epochs, record["train_loss"], val_acc, val_loss, best)
        bar.set_postfix(loss=f"{record['train_loss']:.4f}", val_acc=f"{val_acc:.3f}", best=best)
        if best == epoch + 1:
            save_checkpoint(ckpt_path, model=model, optimizer=None, epoch=epoch + 1, history=history, **save)
        save_checkpoint(last_path, model=model, optimizer=optimizer, epoch=epoch + 1, history=history, **save)
        stopped_early = patience > 0 and epoch + 1 - best >= patience and epoch + 1 < epochs
        _write_sidecar(sidecar_path, run_args=run_args, seed=seed, dhash=dhash, history=history, model=model,
                       feature_config=feature_config, n_train=len(train_idx), n_val=len(val_idx), device=dev,
                       best_epoch=best, stopped_early=stopped_early, precision=precision.name)
    if not sidecar_path.exists():
        _write_sidecar(sidecar_path, run_args=run_args, seed=seed, dhash=dhash, history=history, model=model,
                       feature_config=feature_config, n_train=len(train_idx), n_val=len(val_idx), device=dev,
                       best_epoch=best, stopped_early=stopped_early, precision=precision.name)
    kept, _ = load_checkpoint(ckpt_path, arch=arch, map_location=dev)
    return TrainResult(model=kept, history=history, checkpoint_path=ckpt_path, sidecar_path=sidecar_path,
                       best_epoch=best, stopped_early=stopped_early,
                       train_groups=sorted(set(g[train_idx].tolist()), key=str),
                       val_groups=sorted(set(g[val_idx].tolist()), key=str))


def _write_sidecar(path: Path, *, run_args: dict[str, Any], seed: int, dhash: str, history: list[dict[str, float]],
                   model: MashabilityNet, feature_config: FeatureConfig | None, n_train: int, n_val: int,
                   device: torch.device, best_epoch: int, stopped_early: bool, precision: str) -> None:
    from scoring.nets import count_parameters

    doc = {
        "arguments": run_args,
        "seed": seed,
        "data_hash": dhash,
        "code_version": code_version(),
        "architecture": model.config(),
        "parameters": count_parameters(model),
        "feature_config": feature_config.to_dict() if feature_config else None,
        "crop_offsets_s": run_args.get("crop_offsets_s"),
        "n_train": n_train,
        "n_val": n_val,
        "device": str(device),
        "precision": precision,
        "torch": torch.__version__,
        "best_epoch": best_epoch,
        "stopped_early": stopped_early,
        "metrics": history,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    os.replace(tmp, path)
