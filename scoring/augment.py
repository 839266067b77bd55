"""Label-preserving augmentation of training batches: every stem of an example transposed together.

Why: a mashup stays (un)mashable when all of its stems move by the same
interval, so a batch can show the network each candidate in other keys for
free. PreMixNet needs it most: it has to learn from a handful of songs that a
vocal clashes with chords a few bins away in *another* channel, and its
head's first kernel spans every mel bin, so without transposed copies it
learns that comparison at the few pitches the training songs happen to use.

The shift acts on log-mel features directly. A transposition by ``s``
semitones scales every frequency by ``2 ** (s / 12)``; the log-mel value of
the band centred at ``f`` becomes the one the unshifted input has at
``f / 2 ** (s / 12)``, read by linear interpolation between band centres.
Bands whose source lies outside the analysed range get the silence value
``log(LOG_FLOOR)``. Time is untouched (a pitch shift, not a resampling). No
Django here.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from scoring.errors import ScoringError
from scoring.features import LOG_FLOOR, FeatureConfig

SILENCE = math.log(LOG_FLOOR)  # log-mel value of a band with no energy


def band_centres_hz(config: FeatureConfig) -> np.ndarray:
    """Centre frequency (Hz) of each mel band of ``config``, as librosa's filterbank places them."""
    import librosa

    fmax = config.fmax_hz if config.fmax_hz is not None else config.sr / 2.0
    return librosa.mel_frequencies(n_mels=config.n_mels + 2, fmin=0.0, fmax=fmax, htk=False)[1:-1]


def transpose(x: Tensor, semitones: Tensor, centres_hz: np.ndarray) -> Tensor:
    """``x`` (B, C, T, F) log-mel with example ``b``'s channels all moved up ``semitones[b]`` semitones.

    ``centres_hz`` (F,): the band centres in Hz, increasing. A shift of 0
    returns the input unchanged.
    """
    if x.ndim != 4 or x.shape[3] != len(centres_hz):
        raise ScoringError(f"transpose expects (batch, channels, time, {len(centres_hz)}), got {tuple(x.shape)}")
    if semitones.shape != (x.shape[0],):
        raise ScoringError(f"one shift per example needed, got {tuple(semitones.shape)} for batch {x.shape[0]}")
    centres = torch.as_tensor(centres_hz, dtype=torch.float64)
    source_hz = centres[None, :] / torch.pow(2.0, semitones.double()[:, None] / 12.0)  # (B, F)
    # fractional band index of each source frequency (piecewise linear in the centres)
    index = torch.as_tensor(np.stack([np.interp(s, centres_hz, np.arange(len(centres_hz)), left=-1.0,
                                                right=float(len(centres_hz)))
                                      for s in source_hz.numpy()]), dtype=torch.float64)
    inside = (index >= 0) & (index <= len(centres_hz) - 1)
    lo = index.clamp(0, len(centres_hz) - 1).floor().long()
    hi = (lo + 1).clamp(max=len(centres_hz) - 1)
    frac = (index.clamp(0, len(centres_hz) - 1) - lo.double()).to(x.dtype)
    shape = (x.shape[0], 1, 1, x.shape[3])
    lo_v = torch.gather(x, 3, lo.view(shape).expand_as(x))
    hi_v = torch.gather(x, 3, hi.view(shape).expand_as(x))
    out = lo_v + (hi_v - lo_v) * frac.view(shape)
    return torch.where(inside.view(shape), out, torch.full_like(out, SILENCE))


def random_shifts(n: int, *, max_semitones: float, generator: torch.Generator) -> Tensor:
    """``n`` shifts drawn uniformly in ±``max_semitones`` (semitones) from the seeded ``generator``."""
    if max_semitones < 0:
        raise ScoringError(f"max_semitones must be ≥ 0, got {max_semitones}")
    return (torch.rand(n, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * max_semitones
