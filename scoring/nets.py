"""PreMixNet and PostMixNet (paper Fig. 3): mashability from 128-bin log-mels.

Tensor layout throughout: ``(batch, channels, time, mel)``. Inputs are
``(B, n_inputs, T, 128)``: PreMixNet takes the three role spectrograms as
three channels in :data:`ROLES` order, PostMixNet one channel (the mix).

Blocks, as the paper describes them:

* :class:`ConvBlock2D`: conv (3, 3) → BatchNorm → ReLU → conv (3, 3) → BatchNorm
  → ReLU → average pooling (2, 1) (time halved, mel kept).
* :class:`SourceNet`: two ConvBlock2D with 64, 64 and 128, 128 filters:
  ``(B, 1, T, 128) → (B, 128, T // 4, 128)``.
* :class:`Head`: a ConvBlock1D — conv (3, 128) spanning every mel bin (so the
  mel axis collapses to 1 and the block is 1-D over time) → BatchNorm → ReLU
  → conv (3, 1) → BatchNorm → ReLU → average pooling (2, 1), 256 filters:
  ``(B, C, T // 4, 128) → (B, 256, T // 8, 1)``; then the time reduction;
  then fully connected 256 → 128 → 128 (ReLU after each) and a 2-way output.

How we read "the time dimension is then reduced by average pooling, and the
filter dimension is reduced by adding the maximum and average": taken
literally (average over time, then max + mean over the 256 filters) it
leaves one number per example, which cannot feed "two fully-connected
layers with 128 features". We read it the way audio-tagging CNNs of that
period (PANNs, McFee-style nets) do it: the ConvBlock1D's temporal average
pooling is the "average pooling" of the time dimension, and the remaining
time axis of each of the 256 filter maps is summarised by max + mean, giving
a 256-vector per example: ``h = max_t x[:, :, t] + mean_t x[:, :, t]``. The
"two fully-connected layers (with 128 features)" are two hidden layers of 128
followed by the 2-way classifier.

Other choices the paper leaves open: convolutions carry no bias (each is
followed by BatchNorm, which has its own shift; this also keeps the head's
first convolution a pure linear map for :mod:`scoring.factorised`); "same"
padding along time (and along mel for the 3×3 kernels); output index
:data:`GOOD` = 1 is the "good" class, whose softmax posterior is the
mashability. An input normalisation (one mean and std for all bins, set from
the training data by :mod:`scoring.training`) is stored in the model as
buffers, so a checkpoint carries it.

``width`` scales every filter and hidden-layer count (0.125 gives a tiny
model for tests and demos); ``width=1`` is the paper's size: PreMixNet has
38.77 M parameters, dominated by the (3, 128) kernel over 3 × 128 = 384
channels (37.7 M), PostMixNet 13.09 M.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from generation.conditions import ROLES
from scoring.errors import ScoringError

GOOD = 1
N_MELS = 128
SOURCE_FILTERS: tuple[int, int, int, int] = (64, 64, 128, 128)  # conv1..conv4
HEAD_FILTERS = 256
FC_FEATURES = 128
MIN_FRAMES = 8  # three (2, 1) poolings must leave at least one frame
ARCHITECTURES: tuple[str, ...] = ("premix", "postmix")


def _scaled(n: int, width: float) -> int:
    """Filter count ``n`` times ``width``, at least 1."""
    return max(1, int(round(n * width)))


class ConvBlock2D(nn.Module):
    """Two (3, 3) conv + BatchNorm + ReLU, then average pooling (2, 1).

    ``(B, in_ch, T, F) → (B, out_ch, T // 2, F)``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel: tuple[int, int] = (3, 3),
                 pool: tuple[int, int] = (2, 1)) -> None:
        super().__init__()
        pad = (kernel[0] // 2, kernel[1] // 2)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.pool = nn.AvgPool2d(pool)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.pool(x)


class ConvBlock1D(nn.Module):
    """The head's block: conv (3, n_mels) then conv (3, 1), each + BatchNorm + ReLU, then pooling (2, 1).

    The first kernel spans the whole mel axis, so the block is 1-D over time:
    ``(B, in_ch, T, n_mels) → (B, out_ch, T // 2, 1)``. Its stages are also
    callable one by one (:meth:`first_conv`, :meth:`after_first_conv`) for
    the factorised scorer.
    """

    def __init__(self, in_channels: int, out_channels: int, *, n_mels: int = N_MELS,
                 pool: tuple[int, int] = (2, 1)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, (3, n_mels), padding=(1, 0), bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, (3, 1), padding=(1, 0), bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.pool = nn.AvgPool2d(pool)

    def first_conv(self, x: Tensor) -> Tensor:
        """The linear (3, n_mels) convolution alone: ``(B, in_ch, T, n_mels) → (B, out_ch, T, 1)``."""
        return self.conv1(x)

    def after_first_conv(self, a: Tensor) -> Tensor:
        """Everything after the first convolution: ``(B, out_ch, T, 1) → (B, out_ch, T // 2, 1)``."""
        x = torch.relu(self.bn1(a))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.pool(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.after_first_conv(self.first_conv(x))


class SourceNet(nn.Module):
    """Two ConvBlock2D (filters 64, 64 | 128, 128 at width 1): ``(B, 1, T, F) → (B, 128w, T // 4, F)``."""

    def __init__(self, *, width: float = 1.0) -> None:
        super().__init__()
        f = [_scaled(n, width) for n in SOURCE_FILTERS]
        # "64, 64, 128, and 128 filters" are the four convolutions in order:
        # both convolutions of a block have the same width.
        self.block1 = ConvBlock2D(1, f[1])
        self.block2 = ConvBlock2D(f[1], f[3])
        self.out_channels = f[3]

    def forward(self, x: Tensor) -> Tensor:
        return self.block2(self.block1(x))


class Head(nn.Module):
    """ConvBlock1D, max + mean over time, FC 128, FC 128, 2-way logits.

    ``(B, in_ch, T4, n_mels) → (B, 2)`` logits (not probabilities).
    """

    def __init__(self, in_channels: int, *, width: float = 1.0, n_mels: int = N_MELS) -> None:
        super().__init__()
        c = _scaled(HEAD_FILTERS, width)
        h = _scaled(FC_FEATURES, width)
        self.block = ConvBlock1D(in_channels, c, n_mels=n_mels)
        self.fc1 = nn.Linear(c, h)
        self.fc2 = nn.Linear(h, h)
        self.out = nn.Linear(h, 2)
        self.channels = c

    def tail(self, a: Tensor) -> Tensor:
        """From the first convolution's output ``(B, c, T4, 1)`` to logits ``(B, 2)``."""
        x = self.block.after_first_conv(a).squeeze(-1)  # (B, c, T8)
        x = x.amax(dim=-1) + x.mean(dim=-1)  # (B, c)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.out(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.tail(self.block.first_conv(x))


class MashabilityNet(nn.Module):
    """Common part of PreMixNet and PostMixNet: input checks, normalisation, config."""

    arch: str = ""
    n_inputs: int = 0
    input_mean: Tensor  # buffers (log-mel units), registered in __init__
    input_std: Tensor
    head: Head  # set by each subclass

    def __init__(self, *, width: float = 1.0, n_mels: int = N_MELS) -> None:
        super().__init__()
        if not (0 < width <= 4):
            raise ScoringError(f"width must be in (0, 4], got {width}")
        self.width = float(width)
        self.n_mels = int(n_mels)
        self.register_buffer("input_mean", torch.zeros(()))
        self.register_buffer("input_std", torch.ones(()))

    def config(self) -> dict[str, Any]:
        """What :func:`build_model` needs to rebuild this network."""
        return {"arch": self.arch, "width": self.width, "n_mels": self.n_mels}

    def set_input_normalisation(self, *, mean: float, std: float) -> None:
        """Store the feature mean and std (log-mel units) the input is standardised with."""
        if not np.isfinite(mean) or not np.isfinite(std) or std <= 0:
            raise ScoringError(f"bad input normalisation mean={mean}, std={std}")
        self.input_mean.fill_(float(mean))
        self.input_std.fill_(float(std))

    def check_input(self, x: Tensor) -> Tensor:
        """Validate ``(B, n_inputs, T, n_mels)`` and standardise it."""
        if x.ndim != 4 or x.shape[1] != self.n_inputs or x.shape[3] != self.n_mels:
            raise ScoringError(
                f"{self.arch} expects input (batch, {self.n_inputs}, time, {self.n_mels}), got {tuple(x.shape)}"
            )
        if x.shape[2] < MIN_FRAMES:
            raise ScoringError(f"input has {x.shape[2]} frames; at least {MIN_FRAMES} needed")
        return (x - self.input_mean) / self.input_std


class PreMixNet(MashabilityNet):
    """One SourceNet per role (no weight sharing), concatenated along filters, then the head.

    ``(B, 3, T, 128)`` with channels (vocal, harmonic, percussion) → logits ``(B, 2)``.
    Internals: three ``(B, 128w, T // 4, 128)`` maps → ``(B, 384w, T // 4, 128)``.
    """

    arch = "premix"
    n_inputs = len(ROLES)

    def __init__(self, *, width: float = 1.0, n_mels: int = N_MELS) -> None:
        super().__init__(width=width, n_mels=n_mels)
        nets = {role: SourceNet(width=width) for role in ROLES}
        self.sources = nn.ModuleDict(nets)
        self.source_channels: int = nets[ROLES[0]].out_channels
        self.head = Head(self.source_channels * len(ROLES), width=width, n_mels=n_mels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.check_input(x)
        z = torch.cat([self.sources[r](x[:, i : i + 1]) for i, r in enumerate(ROLES)], dim=1)
        return self.head(z)


class PostMixNet(MashabilityNet):
    """One SourceNet on the mix, then the head: ``(B, 1, T, 128)`` → logits ``(B, 2)``."""

    arch = "postmix"
    n_inputs = 1

    def __init__(self, *, width: float = 1.0, n_mels: int = N_MELS) -> None:
        super().__init__(width=width, n_mels=n_mels)
        self.source = SourceNet(width=width)
        self.head = Head(self.source.out_channels, width=width, n_mels=n_mels)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.source(self.check_input(x)))


def build_model(arch: str, *, width: float = 1.0, n_mels: int = N_MELS) -> MashabilityNet:
    """A fresh network: ``arch`` is 'premix' or 'postmix'; width 1 = the paper's size."""
    if arch == "premix":
        return PreMixNet(width=width, n_mels=n_mels)
    if arch == "postmix":
        return PostMixNet(width=width, n_mels=n_mels)
    raise ScoringError(f"unknown architecture {arch!r}; choose one of {ARCHITECTURES}")


@torch.no_grad()
def randomise_batchnorm(model: nn.Module, seed: int) -> None:
    """Seeded, non-trivial BatchNorm statistics and affine terms for every BatchNorm2d of ``model``.

    For untrained models in tests and benchmarks: a fresh initialisation has
    running mean 0 and variance 1, so in eval mode its scores barely vary
    across inputs and agreement checks would say little.
    """
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            assert m.running_mean is not None and m.running_var is not None  # track_running_stats is on
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.05)
            m.weight.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.copy_(torch.randn(n, generator=g) * 0.2)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def mashability_from_logits(logits: Tensor) -> Tensor:
    """Posterior of "good" (softmax column :data:`GOOD`): ``(B, 2) → (B,)`` in 0..1."""
    return torch.softmax(logits, dim=-1)[:, GOOD]


@torch.no_grad()
def predict(model: MashabilityNet, features: np.ndarray | Tensor, *, batch_size: int = 8,
            device: str | torch.device | None = None) -> np.ndarray:
    """Mashability of every example, in eval mode: ``(N, n_inputs, T, 128) → (N,)`` float64 in 0..1.

    The naive scorer: each candidate passes through the whole network.
    """
    if batch_size < 1:
        raise ScoringError(f"batch_size must be ≥ 1, got {batch_size}")
    x = torch.as_tensor(np.asarray(features) if not isinstance(features, Tensor) else features,
                        dtype=torch.float32)
    if x.ndim == 3 and model.n_inputs == 1:
        x = x[:, None]
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    out = [mashability_from_logits(model(x[i : i + batch_size].to(dev))).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out).double().numpy() if out else np.zeros(0)
