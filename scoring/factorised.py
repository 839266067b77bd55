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

import copy
import time
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from tqdm.auto import tqdm

from scoring.errors import ScoringError
from scoring.nets import MIN_FRAMES, ROLES, PreMixNet, SourceNet, mashability_from_logits


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


class RoleTermer:
    """One role's SourceNet and slice of the head's first convolution, prepared for inference.

    ``fast=False`` runs the model's own modules (the reference). ``fast=True``
    (the default) computes the same function faster on CPU, equal to float
    rounding (tested to 1e-5 on scores):

    * each BatchNorm is folded into the convolution before it (eval-mode
      statistics: ``torch.nn.utils.fusion.fuse_conv_bn_eval``) and the
      SourceNet runs in channels-last memory layout, which oneDNN convolves
      fastest — measured at the paper's size (1292 frames) on 2 cores, in one
      run: 90 → 137 GFLOP/s, the fp32 matmul peak being 138 (oneDNN's
      blocked layout via ``to_mkldnn`` gives the same, through a deprecated
      TorchScript API; channels-last without folding: +30 % only);
    * the role convolution — kernel (3, n_mels) over all mel bins, so one
      output frame is a dot product over 3 × c × n_mels inputs — is one matrix
      product (B·T4, n_mels·c) × (n_mels·c, 3·C) followed by a shifted sum of
      its three frame offsets: 63 → 104 GFLOP/s against ``conv2d`` (another
      run, on a loaded machine).

    The copies are taken when the object is made: make a new one after the
    weights change. Call it with standardised input (B, 1, T, n_mels); it
    returns float32 (B, C, T // 4, 1).
    """

    def __init__(self, model: PreMixNet, role: str, *, fast: bool = True) -> None:
        if not isinstance(model, PreMixNet):
            raise ScoringError(f"factorised scoring needs a PreMixNet, got {type(model).__name__}")
        if role not in ROLES:
            raise ScoringError(f"unknown role {role!r}; roles are {ROLES}")
        model.eval()
        self.model, self.role, self.fast = model, role, fast
        i, c = ROLES.index(role), model.source_channels
        self.weight = model.head.block.conv1.weight[:, i * c : (i + 1) * c].detach()  # (C, c, 3, n_mels)
        self.channels = self.weight.shape[0]
        if fast:
            net = cast(SourceNet, model.sources[role])
            layers = []
            for block in (net.block1, net.block2):
                layers += [fuse_conv_bn_eval(block.conv1, block.bn1), nn.ReLU(),
                           fuse_conv_bn_eval(block.conv2, block.bn2), nn.ReLU(), copy.deepcopy(block.pool)]
            seq = nn.Sequential(*layers).eval()
            self.source = seq.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            # (3·C, n_mels·c): row k·C + o holds kernel frame k of output filter o, mel-major like a
            # channels-last SourceNet output, so that its rows need no copy
            self.w_cat = self.weight.permute(2, 0, 3, 1).reshape(3 * self.channels, -1).contiguous()
        else:
            self.source = model.sources[role]

    @torch.no_grad()
    def sourcenet(self, xb: Tensor) -> Tensor:
        """SourceNet output (B, c, T4, n_mels), dense float32, for standardised input (B, 1, T, n_mels)."""
        if not self.fast:
            return self.source(xb)
        return self.source(xb.contiguous(memory_format=torch.channels_last))

    @torch.no_grad()
    def role_conv(self, z: Tensor) -> Tensor:
        """The role's slice of the head's first convolution: (B, c, T4, n_mels) → (B, C, T4, 1)."""
        if not self.fast:
            return torch.nn.functional.conv2d(z, self.weight, padding=(1, 0))
        b, _, t4, _ = z.shape
        rows = z.permute(0, 2, 3, 1).reshape(b * t4, -1)  # one row per (stem, frame); a view when channels-last
        y = (rows @ self.w_cat.T).view(b, t4, 3, self.channels)
        out = y[:, :, 1].clone()  # kernel frame 1 sits on the output frame; frames 0 and 2 on its neighbours
        out[:, 1:] += y[:, :-1, 0]
        out[:, :-1] += y[:, 1:, 2]
        return out.permute(0, 2, 1).contiguous().unsqueeze(-1)


@torch.no_grad()
def role_terms(model: PreMixNet, feats: np.ndarray | Tensor, *, role: str, batch_size: int = 4,
               stats: dict[str, float] | None = None, termer: RoleTermer | None = None,
               fast: bool = True) -> Tensor:
    """Each stem's contribution to the head's first convolution.

    ``feats``: (N, T, 128) log-mels of N stems playing ``role``. Returns
    float32 (N, C, T4, 1) with C the head's filters (256 at width 1) and
    T4 = T // 4, on the model's device. Puts the model in eval mode.
    ``termer``: a :class:`RoleTermer` of this model and role made before (to
    reuse its prepared copies); otherwise one is made with ``fast``.
    ``stats``, when given, accumulates wall seconds of the SourceNet passes
    (``sourcenet_s``), stems passed (``sourcenet_stems``) and seconds of the
    role convolutions (``role_conv_s``).
    """
    if batch_size < 1:
        raise ScoringError(f"batch_size must be ≥ 1, got {batch_size}")
    termer = termer or RoleTermer(model, role, fast=fast)
    if termer.model is not model or termer.role != role:
        raise ScoringError(f"the RoleTermer given is for another model or role ({termer.role!r})")
    x = _as_stack(feats, name=f"{role} features", n_mels=model.n_mels)
    if x.shape[2] < MIN_FRAMES:
        raise ScoringError(f"{role} features have {x.shape[2]} frames; at least {MIN_FRAMES} needed")
    dev = next(model.parameters()).device
    out = []
    for s in range(0, x.shape[0], batch_size):
        # the same standardisation as PreMixNet.check_input, for one channel
        xb = (x[s : s + batch_size].to(dev) - model.input_mean) / model.input_std
        t0 = time.perf_counter()
        z = termer.sourcenet(xb)
        t1 = time.perf_counter()
        out.append(termer.role_conv(z))
        if stats is not None:
            stats["sourcenet_s"] = stats.get("sourcenet_s", 0.0) + (t1 - t0)
            stats["sourcenet_stems"] = stats.get("sourcenet_stems", 0) + xb.shape[0]
            stats["role_conv_s"] = stats.get("role_conv_s", 0.0) + (time.perf_counter() - t1)
    return torch.cat(out)


@torch.no_grad()
def tail_scores(model: PreMixNet, summed: Tensor) -> Tensor:
    """Mashability from summed role terms: ``(B, C, T4, 1) → (B,)`` in 0..1 (eval mode)."""
    model.eval()
    return mashability_from_logits(model.head.tail(summed))


def _as_crops(feats: np.ndarray | Tensor, *, name: str, n_mels: int, stems: bool) -> Tensor:
    """float32 ``(N, K, T, n_mels)`` (``stems``) or ``(K, T, n_mels)``, checked."""
    x = torch.as_tensor(feats if isinstance(feats, Tensor) else np.asarray(feats), dtype=torch.float32)
    want = 4 if stems else 3
    if x.ndim != want or x.shape[-1] != n_mels:
        shape = "(N, K, T, " if stems else "(K, T, "
        raise ScoringError(f"{name} must be {shape}{n_mels}) log-mels (K crops), got shape {tuple(x.shape)}")
    if 0 in x.shape:
        raise ScoringError(f"{name} is empty (shape {tuple(x.shape)})")
    return x


@torch.no_grad()
def score_crops(
    model: PreMixNet,
    vocal_crops: np.ndarray | Tensor,
    harmonic_crops: np.ndarray | Tensor,
    percussion_crops: np.ndarray | Tensor,
    *,
    pairs: np.ndarray | None = None,
    batch_pairs: int = 128,
    batch_stems: int = 4,
    stats: dict[str, float] | None = None,
    progress: bool = False,
    fast: bool = True,
) -> np.ndarray:
    """Mean mashability over K crops of (harmonic, percussion) pairs under one vocal, factorised.

    ``vocal_crops``: (K, T, 128) log-mels of the vocal seed at K crop
    offsets; ``harmonic_crops`` (H, K, T, 128) and ``percussion_crops``
    (P, K, T, 128): the adjusted, aligned accompaniment stems at the same
    offsets. ``pairs``: int array (n, 2) of (harmonic index, percussion
    index); None = every pair, in row-major order (i * P + j). Returns
    float64 (n,): per pair, the mean over the K crops of the posterior
    ``predict`` gives for the stacked crop (what :func:`scoring.services.scorer`
    computes), to float rounding. Each stem passes its SourceNet once per crop.
    ``stats`` accumulates the seconds of :func:`role_terms` and ``tail_s``,
    ``pairs_scored``. ``progress`` shows tqdm bars for the stems and the pairs.
    ``fast``: the inference kernels of :class:`RoleTermer` (False: the model's own modules).
    """
    if not isinstance(model, PreMixNet):
        raise ScoringError(f"factorised scoring needs a PreMixNet, got {type(model).__name__}")
    if batch_pairs < 1 or batch_stems < 1:
        raise ScoringError(f"batch_pairs and batch_stems must be ≥ 1, got {batch_pairs} and {batch_stems}")
    v = _as_crops(vocal_crops, name="vocal crops", n_mels=model.n_mels, stems=False)
    h = _as_crops(harmonic_crops, name="harmonic crops", n_mels=model.n_mels, stems=True)
    p = _as_crops(percussion_crops, name="percussion crops", n_mels=model.n_mels, stems=True)
    if not (v.shape[0] == h.shape[1] == p.shape[1]):
        raise ScoringError(f"all stems need the same number of crops: vocal {v.shape[0]}, harmonic {h.shape[1]}, "
                           f"percussion {p.shape[1]}")
    if not (v.shape[1] == h.shape[2] == p.shape[2]):
        raise ScoringError(
            f"all stems need the same number of frames: vocal {v.shape[1]}, harmonic {h.shape[2]}, "
            f"percussion {p.shape[2]}"
        )
    n_h, n_p = h.shape[0], p.shape[0]
    if pairs is None:
        flat = torch.arange(n_h * n_p)
        hi, pi = flat // n_p, flat % n_p
    else:
        idx = np.asarray(pairs)
        if idx.ndim != 2 or idx.shape[1] != 2 or not np.issubdtype(idx.dtype, np.integer):
            raise ScoringError(f"pairs must be an integer array (n, 2), got shape {idx.shape} of {idx.dtype}")
        if len(idx) and ((idx.min(axis=0) < 0).any() or (idx.max(axis=0) >= (n_h, n_p)).any()):
            raise ScoringError(f"pair indices must lie in 0..{n_h - 1} × 0..{n_p - 1}")
        hi, pi = torch.as_tensor(idx[:, 0]), torch.as_tensor(idx[:, 1])
    n, k_crops = len(hi), v.shape[0]
    stem_bar = tqdm(total=k_crops * (1 + n_h + n_p), desc="stems through SourceNet", unit="stem",
                    disable=not progress)

    termers = {role: RoleTermer(model, role, fast=fast) for role in ROLES}

    def terms(x: Tensor, role: str) -> Tensor:
        parts = []
        for s in range(0, x.shape[0], batch_stems):
            parts.append(role_terms(model, x[s : s + batch_stems], role=role, batch_size=batch_stems, stats=stats,
                                    termer=termers[role]))
            stem_bar.update(parts[-1].shape[0])
        return torch.cat(parts)

    total = torch.zeros(n, dtype=torch.float64)
    for k in range(k_crops):
        tv = terms(v[k : k + 1], "vocal")  # (1, C, T4, 1)
        th = terms(h[:, k], "harmonic")  # (H, C, T4, 1)
        tp = terms(p[:, k], "percussion")  # (P, C, T4, 1)
        if k == 0:  # opened once the first stems are through, so the two bars do not interleave
            pair_bar = tqdm(total=k_crops * n, desc="pair tails", unit="pair", disable=not progress)
        t0 = time.perf_counter()
        for s in range(0, n, batch_pairs):
            summed = tv + th[hi[s : s + batch_pairs]] + tp[pi[s : s + batch_pairs]]
            total[s : s + len(summed)] += tail_scores(model, summed).double().cpu()
            pair_bar.update(len(summed))
        if stats is not None:
            stats["tail_s"] = stats.get("tail_s", 0.0) + (time.perf_counter() - t0)
            stats["pairs_scored"] = stats.get("pairs_scored", 0) + n
    stem_bar.close()
    pair_bar.close()
    return (total / k_crops).numpy()
