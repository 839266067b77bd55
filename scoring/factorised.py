"""Exact factorised PreMixNet scoring: rank every (harmonic, percussion) pair of a vocal.

Why it works. PreMixNet concatenates the three SourceNet outputs along the
filter axis and feeds them to the head's first convolution, which is linear
and bias-free. A convolution over a channel concatenation is the sum of
convolutions over each channel group with the matching slice of the kernel::

    conv(cat(z_v, z_h, z_p), W) = conv(z_v, W_v) + conv(z_h, W_h) + conv(z_p, W_p)

so each stem needs one SourceNet pass and one (3, 128) convolution — its
*role term*, shape (C, T4) — whatever it is paired with. A candidate then
costs only the sum of three role terms and the head's tail (BatchNorm, ReLU,
the (3, 1) convolution, pooling, max + mean, the FC layers). In eval mode
BatchNorm uses stored statistics and comes after the sum, so the result
equals the full forward pass up to float rounding (tested to 1e-5). In
training mode BatchNorm statistics depend on the batch and the split does not
apply, so these functions put the model in eval mode.

Cost for one vocal with |H| harmonic and |P| percussion stems: |H| + |P| + 1
SourceNet passes and role terms, plus |H|·|P| tails, instead of |H|·|P| full
passes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from scoring.errors import ScoringError
from scoring.nets import MIN_FRAMES, ROLES, PreMixNet, mashability_from_logits


def _as_stack(feats: np.ndarray | Tensor, *, name: str, n_mels: int) -> Tensor:
    """``(N, T, n_mels)`` or ``(N, 1, T, n_mels)`` (or one ``(T, n_mels)``) → float32 ``(N, 1, T, n_mels)``."""
    x = torch.as_tensor(feats if isinstance(feats, Tensor) else np.asarray(feats), dtype=torch.float32)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1 or x.shape[3] != n_mels:
        raise ScoringError(f"{name} must be (N, T, {n_mels}) log-mels, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ScoringError(f"{name} is empty")
    return x


@torch.no_grad()
def role_terms(model: PreMixNet, feats: np.ndarray | Tensor, *, role: str, batch_size: int = 4) -> Tensor:
    """Each stem's contribution to the head's first convolution.

    ``feats``: (N, T, 128) log-mels of N stems playing ``role``. Returns
    float32 (N, C, T4, 1) with C the head's filters (256 at width 1) and
    T4 = T // 4, on the model's device. Puts the model in eval mode.
    """
    if not isinstance(model, PreMixNet):
        raise ScoringError(f"factorised scoring needs a PreMixNet, got {type(model).__name__}")
    if role not in ROLES:
        raise ScoringError(f"unknown role {role!r}; roles are {ROLES}")
    if batch_size < 1:
        raise ScoringError(f"batch_size must be ≥ 1, got {batch_size}")
    model.eval()
    x = _as_stack(feats, name=f"{role} features", n_mels=model.n_mels)
    if x.shape[2] < MIN_FRAMES:
        raise ScoringError(f"{role} features have {x.shape[2]} frames; at least {MIN_FRAMES} needed")
    dev = next(model.parameters()).device
    i = ROLES.index(role)
    c = model.source_channels
    weight = model.head.block.conv1.weight[:, i * c : (i + 1) * c]  # (C, c, 3, n_mels)
    out = []
    for s in range(0, x.shape[0], batch_size):
        # the same standardisation as PreMixNet.check_input, for one channel
        xb = (x[s : s + batch_size].to(dev) - model.input_mean) / model.input_std
        z = model.sources[role](xb)
        out.append(torch.nn.functional.conv2d(z, weight, padding=(1, 0)))
    return torch.cat(out)


@torch.no_grad()
def tail_scores(model: PreMixNet, summed: Tensor) -> Tensor:
    """Mashability from summed role terms: ``(B, C, T4, 1) → (B,)`` in 0..1 (eval mode)."""
    model.eval()
    return mashability_from_logits(model.head.tail(summed))


@torch.no_grad()
def score_pairs(
    model: PreMixNet,
    vocal_feat: np.ndarray | Tensor,
    harmonic_feats: np.ndarray | Tensor,
    percussion_feats: np.ndarray | Tensor,
    *,
    batch_pairs: int = 128,
    batch_stems: int = 4,
) -> np.ndarray:
    """Mashability of every (harmonic, percussion) pair under one vocal: float64 (H, P).

    ``vocal_feat``: (T, 128) log-mel of the vocal seed; ``harmonic_feats``
    (H, T, 128) and ``percussion_feats`` (P, T, 128): the accompaniment stems,
    already adjusted to the seed's key and tempo and aligned, all with the
    same T. Entry [i, j] equals ``predict(model, stack(v, h_i, p_j))`` to
    float rounding. ``batch_pairs`` bounds memory: each pair holds a
    (C, T // 4) float32 map (256 × 323 × 4 B ≈ 0.33 MB at the paper's size).
    """
    if batch_pairs < 1:
        raise ScoringError(f"batch_pairs must be ≥ 1, got {batch_pairs}")
    if not isinstance(model, PreMixNet):
        raise ScoringError(f"factorised scoring needs a PreMixNet, got {type(model).__name__}")
    v = _as_stack(vocal_feat, name="vocal_feat", n_mels=model.n_mels)
    if v.shape[0] != 1:
        raise ScoringError(f"vocal_feat must hold one vocal, got {v.shape[0]}")
    h = _as_stack(harmonic_feats, name="harmonic_feats", n_mels=v.shape[3])
    p = _as_stack(percussion_feats, name="percussion_feats", n_mels=v.shape[3])
    if not (v.shape[2] == h.shape[2] == p.shape[2]):
        raise ScoringError(
            f"all stems need the same number of frames: vocal {v.shape[2]}, harmonic {h.shape[2]}, "
            f"percussion {p.shape[2]}"
        )
    tv = role_terms(model, v, role="vocal", batch_size=batch_stems)  # (1, C, T4, 1)
    th = role_terms(model, h, role="harmonic", batch_size=batch_stems)  # (H, C, T4, 1)
    tp = role_terms(model, p, role="percussion", batch_size=batch_stems)  # (P, C, T4, 1)
    n_h, n_p = th.shape[0], tp.shape[0]
    scores = torch.empty(n_h * n_p, dtype=torch.float64)
    flat = torch.arange(n_h * n_p)
    for s in range(0, n_h * n_p, batch_pairs):
        idx = flat[s : s + batch_pairs]
        summed = tv + th[idx // n_p] + tp[idx % n_p]
        scores[s : s + len(idx)] = tail_scores(model, summed).double().cpu()
    return scores.reshape(n_h, n_p).numpy()
