"""Training loop for PreMixNet / PostMixNet over in-memory feature tensors.

What the paper fixes: Adam with learning rate 1e-4, a 4:1 train/validation
split, cross-entropy with or without LSRO (unlabeled examples get the target
(0.5, 0.5); without LSRO they are left out). What we add:

* the split is by vocal seed group — all candidates built on one vocal seed
  fall on the same side, so validation never hears a vocal it trained on;
* every random choice comes from ``seed``: the weights (``torch.manual_seed``),
  the split (``np.random.default_rng(seed)``), and each epoch's shuffle
  (a ``torch.Generator`` seeded with ``seed * 1000 + epoch``), so a run
  resumed from its checkpoint after epoch k ends with the same weights as an
  uninterrupted one;
* a checkpoint after every epoch (model, optimiser, epoch, RNG state, the
  architecture, the feature config, the history) and a JSON sidecar next to
  it (arguments, seed, data hash, code version, metrics per epoch);
* the input normalisation (mean and std of the training features) is stored
  in the model;
* CPU by default; CUDA when ``device`` is None and CUDA is available.

Data layout: ``features`` float32 (N, C, T, 128) with C = 3 (roles in
:data:`scoring.nets.ROLES` order) for premix and 1 for postmix; ``labels``
(N,) in {1 positive/original, 0 negative/unmatched, −1 unlabeled/matched};
``groups`` (N,) the vocal seed id of each example.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scoring.errors import ScoringError
from scoring.features import FeatureConfig
from scoring.losses import NEGATIVE, POSITIVE, UNLABELED, balanced_class_weights, lsro_cross_entropy
from scoring.nets import ARCHITECTURES, GOOD, MashabilityNet, build_model

CHECKPOINT_FORMAT = "mashlab-scoring-checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"
SIDECAR_NAME = "checkpoint.json"
DEFAULT_LR = 1e-4


@dataclass
class TrainResult:
    """What :func:`train_model` returns: the trained model (eval mode) and where it was saved."""

    model: MashabilityNet
    history: list[dict[str, float]]
    checkpoint_path: Path
    sidecar_path: Path
    train_groups: list[Any] = field(default_factory=list)
    val_groups: list[Any] = field(default_factory=list)


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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


def data_hash(features: torch.Tensor, labels: torch.Tensor, groups: np.ndarray) -> str:
    """SHA-256 over the feature bytes, labels and group ids: names the training data in the sidecar."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(features.detach().cpu().numpy(), dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(labels.cpu().numpy(), dtype=np.int64).tobytes())
    h.update(json.dumps([str(x) for x in np.asarray(groups).tolist()]).encode())
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


def _check_data(arch: str, features: torch.Tensor, labels: torch.Tensor, groups: np.ndarray) -> None:
    if arch not in ARCHITECTURES:
        raise ScoringError(f"unknown architecture {arch!r}; choose one of {ARCHITECTURES}")
    want_c = 3 if arch == "premix" else 1
    if features.ndim != 4 or features.shape[1] != want_c:
        raise ScoringError(f"{arch} needs features (N, {want_c}, T, 128), got {tuple(features.shape)}")
    if labels.ndim != 1 or labels.shape[0] != features.shape[0]:
        raise ScoringError(f"labels must be (N,) with N={features.shape[0]}, got {tuple(labels.shape)}")
    if groups.shape != (features.shape[0],):
        raise ScoringError(f"groups must be (N,) with N={features.shape[0]}, got {groups.shape}")
    if not torch.isfinite(features).all():
        raise ScoringError("features contain NaN or infinite values")
    allowed = {POSITIVE, NEGATIVE, UNLABELED}
    if not set(labels.unique().tolist()) <= allowed:
        raise ScoringError(f"labels must be 1, 0 or -1, got {sorted(set(labels.unique().tolist()))}")


@torch.no_grad()
def _evaluate(model: MashabilityNet, x: torch.Tensor, y: torch.Tensor, *, batch_size: int,
              device: torch.device) -> tuple[float, float]:
    """(accuracy at 0.5, mean cross-entropy) over labeled examples; (nan, nan) if none."""
    keep = y != UNLABELED
    if not bool(keep.any()):
        return float("nan"), float("nan")
    x, y = x[keep], y[keep]
    model.eval()
    correct, loss_sum = 0, 0.0
    for s in range(0, len(x), batch_size):
        logits = model(x[s : s + batch_size].to(device))
        yb = y[s : s + batch_size].to(device)
        p_good = torch.softmax(logits, dim=-1)[:, GOOD]
        correct += int(((p_good >= 0.5).long() == yb).sum())
        loss_sum += float(lsro_cross_entropy(logits, yb)) * len(yb)
    return correct / len(x), loss_sum / len(x)


def save_checkpoint(path: Path, *, model: MashabilityNet, optimizer: torch.optim.Optimizer | None, epoch: int,
                    history: list[dict[str, float]], feature_config: FeatureConfig | None,
                    extra: dict[str, Any] | None = None) -> None:
    """Write a checkpoint atomically (temp file + rename) so a crash never leaves half a file."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "architecture": model.config(),
        "feature_config": feature_config.to_dict() if feature_config else None,
        "model_state": model.state_dict(),
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


def train_model(
    *,
    arch: str,
    features: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    groups: np.ndarray | list,
    epochs: int,
    seed: int,
    lsro: bool,
    out_dir: str | Path,
    width: float = 1.0,
    lr: float = DEFAULT_LR,
    batch_size: int = 16,
    val_fraction: float = 0.2,
    device: str | None = None,
    feature_config: FeatureConfig | None = None,
    arguments: dict[str, Any] | None = None,
    resume: bool = True,
    progress: bool = True,
    balance_classes: bool = True,
) -> TrainResult:
    """Train ``arch`` for ``epochs`` epochs (total, counting resumed ones); checkpoint every epoch.

    Writes ``out_dir/checkpoint.pt`` and ``out_dir/checkpoint.json``. With
    ``resume`` and an existing checkpoint in ``out_dir`` the run continues
    from it (after checking that architecture, seed, LSRO setting and data
    hash agree); otherwise it starts fresh. Validation accuracy (labeled
    examples, threshold 0.5) is printed through the progress bar and stored
    per epoch in the history. ``balance_classes`` weighs the loss so that
    positives and negatives of the training split count equally (the three
    unmatched kinds together usually outnumber the originals, one per song).
    """
    from tqdm.auto import tqdm

    if epochs < 1:
        raise ScoringError(f"epochs must be ≥ 1, got {epochs}")
    if batch_size < 1:
        raise ScoringError(f"batch_size must be ≥ 1, got {batch_size}")
    if lr <= 0:
        raise ScoringError(f"lr must be positive, got {lr}")
    x = torch.as_tensor(features if isinstance(features, torch.Tensor) else np.asarray(features),
                        dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    g = np.asarray(groups)
    _check_data(arch, x, y, g)
    dhash = data_hash(x, y, g)
    train_idx, val_idx = split_by_group(g, val_fraction=val_fraction, seed=seed)
    if not lsro:
        train_idx = train_idx[y[train_idx].numpy() != UNLABELED]
    if not bool((y[train_idx] != UNLABELED).any()):
        raise ScoringError("the training split holds no labeled (original / unmatched) example")
    dev = pick_device(device)
    out = Path(out_dir)
    ckpt_path, sidecar_path = out / CHECKPOINT_NAME, out / SIDECAR_NAME
    run_args = {
        "arch": arch, "width": width, "lsro": bool(lsro), "epochs": epochs, "seed": seed, "lr": lr,
        "batch_size": batch_size, "val_fraction": val_fraction, "balance_classes": bool(balance_classes),
        **(arguments or {}),
    }
    run_args = json.loads(json.dumps(run_args, default=str))  # plain types only: checkpoints load weights_only

    torch.manual_seed(seed)
    model = build_model(arch, width=width)
    xt = x[train_idx]
    model.set_input_normalisation(mean=float(xt.mean()), std=float(xt.std()) or 1.0)
    model.to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history: list[dict[str, float]] = []
    start_epoch = 0
    if resume and ckpt_path.exists():
        model, state = load_checkpoint(ckpt_path, arch=arch, map_location=dev)
        extra = state.get("extra", {})
        for key, want in (("seed", seed), ("lsro", bool(lsro)), ("data_hash", dhash)):
            if extra.get(key) != want:
                raise ScoringError(
                    f"cannot resume {ckpt_path}: its {key} is {extra.get(key)!r}, this run's is {want!r}; "
                    "use another --out directory"
                )
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        if state.get("optimizer_state"):
            optimizer.load_state_dict(state["optimizer_state"])
        # the checkpoint was loaded onto `dev`; the CPU generator takes a CPU byte tensor only
        torch.set_rng_state(torch.as_tensor(state["rng"]["torch"]).to("cpu", torch.uint8))
        history = list(state.get("history", []))
        start_epoch = int(state["epoch"])

    extra = {"seed": seed, "lsro": bool(lsro), "data_hash": dhash, "arguments": run_args}
    weights = balanced_class_weights(y[train_idx]) if balance_classes else {}
    val_x, val_y = x[val_idx], y[val_idx]
    bar = tqdm(range(start_epoch, epochs), desc=f"train {arch}{'+lsro' if lsro else ''}", disable=not progress,
               unit="epoch")
    for epoch in bar:
        model.train()
        gen = torch.Generator().manual_seed(seed * 1000 + epoch)
        order = torch.as_tensor(train_idx)[torch.randperm(len(train_idx), generator=gen)]
        loss_sum, n_seen = 0.0, 0
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            if len(idx) < 2:  # BatchNorm cannot train on a batch of one
                continue
            logits = model(x[idx].to(dev))
            loss = lsro_cross_entropy(logits, y[idx], class_weights=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * len(idx)
            n_seen += len(idx)
        val_acc, val_loss = _evaluate(model, val_x, val_y, batch_size=batch_size, device=dev)
        record = {"epoch": epoch + 1, "train_loss": loss_sum / max(n_seen, 1), "val_accuracy": val_acc,
                  "val_loss": val_loss}
        history.append(record)
        bar.set_postfix(loss=f"{record['train_loss']:.4f}", val_acc=f"{val_acc:.3f}")
        save_checkpoint(ckpt_path, model=model, optimizer=optimizer, epoch=epoch + 1, history=history,
                        feature_config=feature_config, extra=extra)
        _write_sidecar(sidecar_path, run_args=run_args, seed=seed, dhash=dhash, history=history, model=model,
                       feature_config=feature_config, n_train=len(train_idx), n_val=len(val_idx), device=dev)
    if start_epoch >= epochs and not sidecar_path.exists():
        _write_sidecar(sidecar_path, run_args=run_args, seed=seed, dhash=dhash, history=history, model=model,
                       feature_config=feature_config, n_train=len(train_idx), n_val=len(val_idx), device=dev)
    model.eval()
    return TrainResult(model=model, history=history, checkpoint_path=ckpt_path, sidecar_path=sidecar_path,
                       train_groups=sorted(set(g[train_idx].tolist()), key=str),
                       val_groups=sorted(set(g[val_idx].tolist()), key=str))


def _write_sidecar(path: Path, *, run_args: dict[str, Any], seed: int, dhash: str, history: list[dict[str, float]],
                   model: MashabilityNet, feature_config: FeatureConfig | None, n_train: int, n_val: int,
                   device: torch.device) -> None:
    from scoring.nets import count_parameters

    doc = {
        "arguments": run_args,
        "seed": seed,
        "data_hash": dhash,
        "code_version": code_version(),
        "architecture": model.config(),
        "parameters": count_parameters(model),
        "feature_config": feature_config.to_dict() if feature_config else None,
        "n_train": n_train,
        "n_val": n_val,
        "device": str(device),
        "torch": torch.__version__,
        "metrics": history,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    os.replace(tmp, path)
