"""AutoMashUpper (AMU) baselines: rule-based mashability of stems on one beat grid.

After Davies, Hamel, Yoshii & Goto, "AutoMashUpper: Automatic creation of
multi-song music mashups", IEEE/ACM TASLP 22(12), 2014. Two variants, named
as the systems that score with them (:data:`VARIANTS`, ``score --system NAME``):

``amu`` — the paper's baseline, as the open-source code it ran computes it
(migperfer/AutoMashupper, ``mashability.py`` + ``segmentation.py``; our own
code, read from theirs). For two stems a and b on one beat grid::

    M(a, b) = H(a, b) + 0.2 · L(a, b)          (no rhythmic term)

* H: the best over the 12 circular pitch shifts −6..+5 of the cosine of the
  two beat-synchronous chromagrams, each (12, n_beats − 1). A beat's chroma is
  the mean of its STFT chroma frames (44.1 kHz, n_fft 2048, hop 512, the
  beat's samples alone, tuning estimated per beat as librosa's ``chroma_stft``
  does), and *every frame is first scaled to maximum 1*, so a quiet frame
  (a separated stem's residue) weighs as much as a loud one.
* L: per beat and per stem, the square root of the energy of each band
  (below 220 Hz, 220–1760 Hz, 1760 Hz–Nyquist) of one FFT of the beat's
  samples after the ReplayGain equal-loudness filter; the two stems' band
  values are summed, averaged over beats, normalised to sum 1, and
  L = 1 − their standard deviation **across the three bands** (1 = even,
  0.53 = one band only).
* Three stems: the mean of M over the three pairs (SPEC §3).

Because H maximises over shifts, ``amu`` does not hear a stem left in the
wrong key (it scores the key a pitch shift *would* fix), and it has no
rhythm: that is the baseline the paper compared against.

What we do differently from that code, on purpose:

1. *Pitch-shift sign.* Its search reads row r of the correlation as "lower
   the candidate by r semitones" (r = 0..12, row 12 repeating row 0) and for
   r > 6 reports 12 − r, still applied as a lowering: a candidate that
   needed raising by 1..5 semitones is lowered instead. We report the shift
   in −6..+5 with its sign (+k raises pitch class c to c + k).
2. *Beat offset.* Its harmonic term at index k is the match at beat
   displacement (n_cand − n_base − k), its spectral term at index k the one
   at displacement k; it adds them index by index, so the total mixes two
   alignments. Our candidates are rendered on one grid (stretched, shifted,
   aligned on the first downbeat), so both terms are taken at the one
   displacement actually heard, 0, and no offset is searched.
3. *Beat grid.* It cuts a constant-tempo grid from t = 0 at its own tempo
   estimate (essentia); we take the mashup's tracked beats (``beat_times_s``).
4. *Silence.* Where it divides by zero (a silent stem), H and L are 0.
5. *Chroma filter bank.* Its ``chroma_stft`` is called without ``sr`` on
   44.1 kHz audio, so librosa builds the filter bank for 22.05 kHz: every bin
   is read one octave low. Pitch classes are unchanged, but the octave
   weighting (librosa's Gaussian centred on 880 Hz) is centred on 1760 Hz in
   real frequency. We keep that weighting (:data:`PAPER_CHROMA_FILTER_SR`),
   because it is what the paper's numbers came from; the pitch classes are
   the same either way.

Checked against that code run unchanged (its equal-loudness filter from
essentia 2.1b6) on the same stems and constant-tempo grid: the pair scores
agree to 1.2e-6 (r = 1.000) on 35 pairs of HPSS stems of 7 wesnoth-1.16-music
tracks and on 48 vocal/harmonic/percussion pairs of 4 generated songs; on the
songs' tracked beats, as mashlab scores, r = 0.92 with its grid. ``amu_rhythm``
against the same code: r = 0.73 (recorded) and 0.31 (generated), harmonic
term 0.75 and 0.47.

``amu_rhythm`` — mashlab's stronger variant (the one this module had
before; a song's own harmonic ranks 1.1 among candidates against 3.9–8.9
for the open-source code's scores, as measured for issue 11)::

    M(a, b) = w_h · H₀(a, b) + w_r · R(a, b) + w_l · L′(a + b)

* H₀: the same cosine of beat-synchronous chromagrams (22.05 kHz, n_fft 4096,
  hop 512, whole-stem STFT), each *beat* (not frame) scaled to maximum 1 and
  silent beats 0, taken at the shift actually heard (0), so an unmatched-key
  candidate loses; ``search_shift=True`` gives the best over 12 shifts, and
  every result reports the best shift and its correlation.
* R, rhythmic compatibility: Pearson correlation of the beat-synchronous
  sub-beat onset patterns — the onset-strength envelope's maximum in each
  quarter of every beat, a vector of 4 · (n_beats − 1); 0 when either is
  constant (a silent stem), near 0 for a pattern drifting against the grid.
* L′, spectral balance of the *mix* a + b: per beat, the power of the mix's
  STFT in the three bands, normalised to sum 1, and 1 − their standard
  deviation across the three bands; averaged over the beats that carry
  energy. So a loud bass intro followed by a bright outro is not credited as
  balanced, where ``amu``'s L, which averages the bands over the excerpt
  first, would be.
* Weights w_h = 1.0, w_r = 0.2, w_l = 0.2 (:class:`AmuWeights`): w_h and w_l
  as the open-source code; w_r is ours, equal to w_l so that neither
  secondary term outweighs harmony.
* Front end: librosa STFT chroma and onset strength (hop 256) in place of
  the paper's own chroma and onset detection function; no phrase
  segmentation (a candidate is the unit). Three stems: the mean of the pairs.

Neither score is a probability: they rank, they do not classify.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import lru_cache, wraps
from itertools import combinations
from typing import Callable

import numpy as np

from generation.audio import SR
from scoring.errors import ScoringError


def _one_blas_thread(func: Callable) -> Callable:
    """Run ``func`` with one BLAS thread: its products are small (12 × 1025 by 1025 × a beat's frames), and
    OpenBLAS's threads spin on them — measured 61 ms a product with the default threads on 2 shared cores,
    0.9 ms with one, and ``paper_beat_chroma`` of 30 s 3× faster."""

    @wraps(func)
    def run(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return func(*args, **kwargs)

    return run

SHIFTS_SEMITONES: tuple[int, ...] = tuple(range(-6, 6))
BAND_EDGES_HZ: tuple[float, float] = (220.0, 1760.0)  # both variants: low | mid | high
SILENCE_RATIO = 1e-3  # amu_rhythm: a beat quieter than this fraction of the loudest beat carries no harmony

# amu_rhythm front end
RHYTHM_SR = 22050
SUBDIVISIONS = 4
CHROMA_HOP = 512
CHROMA_N_FFT = 4096
ONSET_HOP = 256
ONSET_N_FFT = 1024
SPECTRUM_N_FFT = 2048
SPECTRUM_HOP = 512

# amu front end, as the open-source code computes it
PAPER_SR = SR  # the same rate as the stems (generation.audio.SR)
PAPER_N_FFT = 2048
PAPER_HOP = 512
PAPER_CHROMA_FILTER_SR = 22050  # librosa's default sr, which that code's chroma_stft call falls back to (deviation 5)
EQUAL_LOUDNESS_HIGHPASS_HZ = 150.0
# ReplayGain's equal-loudness Yule-Walker filter at 44.1 kHz (D. Robinson, "Replay Gain - A Proposed
# Standard", 2001, equal_loud_coef.txt), the filter essentia's EqualLoudness applies before the 150 Hz
# 2nd-order Butterworth high-pass; 10th order, numerator then denominator.
_YULE_B_44K = (0.05418656406430, -0.02911007808948, -0.00848709379851, -0.00851165645469, -0.00834990904936,
               0.02245293253339, -0.02596338512915, 0.01624864962975, -0.00240879051584, 0.00674613682247,
               -0.00187763777362)
_YULE_A_44K = (1.0, -3.47845948550071, 6.36317777566148, -8.54751527471874, 9.47693607801280, -8.81498681370155,
               6.85401540936998, -4.39470996079559, 2.19611684890774, -0.75104302451432, 0.13149317958808)


@dataclass(frozen=True)
class AmuWeights:
    """Weights of harmonic, rhythmic and spectral-balance terms (see module docstring for sources)."""

    harmonic: float = 1.0
    rhythmic: float = 0.2
    spectral: float = 0.2

    def __post_init__(self) -> None:
        if min(self.harmonic, self.rhythmic, self.spectral) < 0:
            raise ScoringError(f"AMU weights must be ≥ 0, got {self}")


PAPER_WEIGHTS = AmuWeights(harmonic=1.0, rhythmic=0.0, spectral=0.2)  # mashability.py: h + 0.2 · L


@dataclass(frozen=True)
class AmuPairScore:
    """Mashability of one stem pair and its parts; ``best_shift_semitones`` is the AMU search's choice."""

    total: float
    harmonic: float
    rhythmic: float
    spectral: float
    best_shift_semitones: int
    best_harmonic: float


@dataclass(frozen=True)
class AmuScore:
    """Mashability of a candidate: the mean of its pair totals, with each pair's details."""

    total: float
    pairs: dict[str, AmuPairScore] = field(default_factory=dict)


def _mono(audio: np.ndarray, *, sr: int, name: str = "audio") -> np.ndarray:
    if sr <= 0:
        raise ScoringError(f"sr must be positive, got {sr}")
    x = np.asarray(audio)
    if x.ndim == 2:
        x = x.mean(axis=0)
    if x.ndim != 1 or x.size == 0:
        raise ScoringError(f"{name} must be non-empty (n,) or (channels, n), got shape {np.shape(audio)}")
    if not np.issubdtype(x.dtype, np.floating) or not np.all(np.isfinite(x)):
        raise ScoringError(f"{name} must be finite floating-point samples")
    return x.astype(np.float32)


def _beats(beat_times_s: np.ndarray, *, duration_s: float) -> np.ndarray:
    b = np.asarray(beat_times_s, dtype=np.float64)
    if b.ndim != 1:
        raise ScoringError(f"beat_times_s must be 1-D seconds, got shape {b.shape}")
    if np.any(np.diff(b) <= 0):
        raise ScoringError("beat_times_s must be strictly increasing")
    b = b[(b >= 0) & (b <= duration_s)]
    if b.size < 2:
        raise ScoringError(f"need at least 2 beats inside the audio ({duration_s:.2f} s), got {b.size}")
    return b


def _segment_reduce(values: np.ndarray, *, frame_times_s: np.ndarray, edges_s: np.ndarray,
                    reduce: str) -> np.ndarray:
    """Reduce ``values`` (..., n_frames) over frames in each [edge_k, edge_k+1): (..., n_edges − 1).

    A segment without a frame takes the frame nearest its start.
    """
    starts = np.searchsorted(frame_times_s, edges_s[:-1], side="left")
    stops = np.searchsorted(frame_times_s, edges_s[1:], side="left")
    n = values.shape[-1]
    out = np.empty(values.shape[:-1] + (len(starts),), dtype=np.float64)
    for k, (a, b) in enumerate(zip(starts, stops)):
        a = min(a, n - 1)
        seg = values[..., a : max(b, a + 1)]
        out[..., k] = seg.max(axis=-1) if reduce == "max" else seg.mean(axis=-1)
    return out


# ---------------------------------------------------------------------------------------------------------
# amu_rhythm: mashlab's variant


def beat_sync_chroma(audio: np.ndarray, *, sr: int, beat_times_s: np.ndarray) -> np.ndarray:
    """Beat-synchronous chroma: float64 (12, n_beats − 1), each beat scaled to max 1, silent beats 0.

    Rows are pitch classes C..B; column k averages the STFT chroma frames
    between beats k and k + 1 (seconds).
    """
    import librosa

    x = _mono(audio, sr=sr)
    b = _beats(beat_times_s, duration_s=x.size / sr)
    chroma = librosa.feature.chroma_stft(y=x, sr=sr, n_fft=CHROMA_N_FFT, hop_length=CHROMA_HOP, norm=None)
    times = librosa.frames_to_time(np.arange(chroma.shape[1]), sr=sr, hop_length=CHROMA_HOP)
    c = _segment_reduce(chroma, frame_times_s=times, edges_s=b, reduce="mean")
    peak = c.max(axis=0)
    loud = peak > SILENCE_RATIO * max(float(peak.max()), 1e-12)
    c[:, ~loud] = 0.0
    c[:, loud] /= peak[loud]
    return c


def harmonic_correlations(chroma_a: np.ndarray, chroma_b: np.ndarray) -> np.ndarray:
    """Cosine of chroma_a with chroma_b shifted by each of −6..+5 semitones: float64 (12,).

    Entry i is for shift ``SHIFTS_SEMITONES[i]``; shifting b by +k moves its
    pitch class c to c + k. Both inputs (12, n_beats); 0 when either is silent.
    """
    a, b = np.asarray(chroma_a, dtype=np.float64), np.asarray(chroma_b, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != 12 or a.shape != b.shape:
        raise ScoringError(f"chromagrams must both be (12, n_beats), got {a.shape} and {b.shape}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return np.zeros(len(SHIFTS_SEMITONES))
    return np.array([np.sum(a * np.roll(b, k, axis=0)) / (na * nb) for k in SHIFTS_SEMITONES])


def best_pitch_shift(chroma_a: np.ndarray, chroma_b: np.ndarray) -> tuple[int, float]:
    """The AMU search: (shift in semitones −6..+5 to apply to b, its correlation); ties → smallest |shift|."""
    corr = harmonic_correlations(chroma_a, chroma_b)
    order = sorted(range(len(SHIFTS_SEMITONES)), key=lambda i: (-corr[i], abs(SHIFTS_SEMITONES[i])))
    return SHIFTS_SEMITONES[order[0]], float(corr[order[0]])


def beat_sync_onsets(audio: np.ndarray, *, sr: int, beat_times_s: np.ndarray,
                     subdivisions: int = SUBDIVISIONS) -> np.ndarray:
    """Sub-beat onset pattern: float64 ((n_beats − 1) · subdivisions,), the onset-strength maximum per sub-beat.

    Sub-beat j of beat k sits at b_k + j·(b_k+1 − b_k)/subdivisions; its bin
    spans half a sub-beat either side.
    """
    import librosa

    if subdivisions < 1:
        raise ScoringError(f"subdivisions must be ≥ 1, got {subdivisions}")
    x = _mono(audio, sr=sr)
    b = _beats(beat_times_s, duration_s=x.size / sr)
    env = librosa.onset.onset_strength(y=x, sr=sr, hop_length=ONSET_HOP, n_fft=ONSET_N_FFT)
    times = librosa.frames_to_time(np.arange(env.size), sr=sr, hop_length=ONSET_HOP)
    # bins centred on the sub-beat positions (nearest-grid quantisation), so an
    # onset detected a few ms early or late still lands on its own sub-beat
    step = np.diff(b)[:, None] / subdivisions
    centres = (b[:-1, None] + np.arange(subdivisions)[None] * step).ravel()
    halves = np.repeat(np.diff(b) / (2 * subdivisions), subdivisions)
    edges = np.append(centres - halves, centres[-1] + halves[-1])
    return _segment_reduce(env, frame_times_s=times, edges_s=edges, reduce="max")


def rhythmic_compatibility(onsets_a: np.ndarray, onsets_b: np.ndarray) -> float:
    """Pearson correlation of two sub-beat onset patterns, −1..1; 0 when either is constant."""
    a, b = np.asarray(onsets_a, dtype=np.float64), np.asarray(onsets_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size < 2:
        raise ScoringError(f"onset patterns must be 1-D of equal length ≥ 2, got {a.shape} and {b.shape}")
    a, b = a - a.mean(), b - b.mean()
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den > 0 else 0.0


def _stft(x: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.stft(x, n_fft=SPECTRUM_N_FFT, hop_length=SPECTRUM_HOP)


def _spectral_balance_from_stft(spec: np.ndarray, *, sr: int, beats_s: np.ndarray) -> float:
    import librosa

    power = np.abs(spec) ** 2
    freqs = librosa.fft_frequencies(sr=sr, n_fft=SPECTRUM_N_FFT)
    lo, hi = BAND_EDGES_HZ
    bands = np.stack([power[freqs < lo].sum(0), power[(freqs >= lo) & (freqs < hi)].sum(0), power[freqs >= hi].sum(0)])
    times = librosa.frames_to_time(np.arange(power.shape[1]), sr=sr, hop_length=SPECTRUM_HOP)
    per_beat = _segment_reduce(bands, frame_times_s=times, edges_s=beats_s, reduce="mean")  # (3, n_beats − 1)
    total = per_beat.sum(axis=0)
    loud = total > SILENCE_RATIO * max(float(total.max()), 1e-12)
    if not loud.any():
        return 0.0
    norm = per_beat[:, loud] / total[loud]
    return float(np.mean(1.0 - norm.std(axis=0)))


def spectral_balance(audio_a: np.ndarray, audio_b: np.ndarray, *, sr: int, beat_times_s: np.ndarray) -> float:
    """``amu_rhythm`` L′: per beat, 1 − std across the 3 bands of the mix a + b (normalised to sum 1), averaged
    over beats with energy; 0.53..1 (0 if silent)."""
    a, b = _mono(audio_a, sr=sr, name="audio_a"), _mono(audio_b, sr=sr, name="audio_b")
    n = max(a.size, b.size)
    mix = np.zeros(n, dtype=np.float32)
    mix[: a.size] += a
    mix[: b.size] += b
    return _spectral_balance_from_stft(_stft(mix), sr=sr, beats_s=_beats(beat_times_s, duration_s=n / sr))


@dataclass
class _StemAnalysis:
    chroma: np.ndarray
    onsets: np.ndarray
    spec: np.ndarray


def _analyse(audio: np.ndarray, *, sr: int, beats_s: np.ndarray, n_samples: int) -> _StemAnalysis:
    x = np.zeros(n_samples, dtype=np.float32)
    m = _mono(audio, sr=sr)[:n_samples]
    x[: m.size] = m
    return _StemAnalysis(
        chroma=beat_sync_chroma(x, sr=sr, beat_times_s=beats_s),
        onsets=beat_sync_onsets(x, sr=sr, beat_times_s=beats_s),
        spec=_stft(x),
    )


def _pair(a: _StemAnalysis, b: _StemAnalysis, *, sr: int, beats_s: np.ndarray, weights: AmuWeights,
          search_shift: bool) -> AmuPairScore:
    corr = harmonic_correlations(a.chroma, b.chroma)
    best_shift, best_h = best_pitch_shift(a.chroma, b.chroma)
    h = best_h if search_shift else float(corr[SHIFTS_SEMITONES.index(0)])
    r = rhythmic_compatibility(a.onsets, b.onsets)
    l_ = _spectral_balance_from_stft(a.spec + b.spec, sr=sr, beats_s=beats_s)
    total = weights.harmonic * h + weights.rhythmic * r + weights.spectral * l_
    return AmuPairScore(total=float(total), harmonic=h, rhythmic=r, spectral=l_,
                        best_shift_semitones=best_shift, best_harmonic=best_h)


@_one_blas_thread
def mashability(stems: dict[str, np.ndarray], *, sr: int, beat_times_s: np.ndarray,
                weights: AmuWeights = AmuWeights(), search_shift: bool = False) -> AmuScore:
    """``amu_rhythm`` mashability of stems played together: the mean of M over every pair of stems.

    ``stems``: two or more named audio arrays at ``sr`` Hz (normally 'vocal',
    'harmonic', 'percussion' of a rendered candidate), aligned at sample 0;
    shorter ones are zero-padded to the longest. ``beat_times_s``: the
    mashup's beat times in seconds (the vocal seed's grid). Returns the mean
    total and each pair's :class:`AmuPairScore` keyed 'a+b'. The score is not
    a probability: it ranks, it does not classify.
    """
    if len(stems) < 2:
        raise ScoringError(f"AMU needs at least two stems, got {len(stems)}")
    monos = {k: _mono(v, sr=sr, name=f"stem {k!r}") for k, v in stems.items()}
    n = max(m.size for m in monos.values())
    beats_s = _beats(beat_times_s, duration_s=n / sr)
    analysed = {k: _analyse(m, sr=sr, beats_s=beats_s, n_samples=n) for k, m in monos.items()}
    pairs = {
        f"{ka}+{kb}": _pair(analysed[ka], analysed[kb], sr=sr, beats_s=beats_s, weights=weights,
                            search_shift=search_shift)
        for ka, kb in combinations(list(analysed), 2)
    }
    return AmuScore(total=float(np.mean([p.total for p in pairs.values()])), pairs=pairs)


def pair_mashability(audio_a: np.ndarray, audio_b: np.ndarray, *, sr: int, beat_times_s: np.ndarray,
                     weights: AmuWeights = AmuWeights(), search_shift: bool = False) -> AmuPairScore:
    """``amu_rhythm`` mashability M(a, b) of two stems on one beat grid (see :func:`mashability`)."""
    return mashability({"a": audio_a, "b": audio_b}, sr=sr, beat_times_s=beat_times_s, weights=weights,
                       search_shift=search_shift).pairs["a+b"]


# ---------------------------------------------------------------------------------------------------------
# amu: the paper's baseline, as the open-source code computes it


def equal_loudness(audio: np.ndarray, *, sr: int) -> np.ndarray:
    """ReplayGain equal-loudness filter (Yule-Walker + 150 Hz Butterworth high-pass): float64 (n,).

    Defined at 44.1 kHz only (its coefficient table); the ``amu`` spectral
    balance reads band energies through it, as the open-source code does
    with essentia's ``EqualLoudness``.
    """
    from scipy.signal import butter, lfilter

    x = _mono(audio, sr=sr).astype(np.float64)
    if sr != PAPER_SR:
        raise ScoringError(f"the equal-loudness filter is defined at {PAPER_SR} Hz, got {sr}")
    y = lfilter(_YULE_B_44K, _YULE_A_44K, x)
    b, a = butter(2, EQUAL_LOUDNESS_HIGHPASS_HZ, btype="highpass", fs=sr)
    return lfilter(b, a, y)


def _beat_slices(beats_s: np.ndarray, *, sr: int) -> list[slice]:
    """Sample ranges [⌊b_k·sr⌋, ⌊b_k+1·sr⌋) of each beat, as the open-source code cuts them."""
    idx = (beats_s * sr).astype(np.int64)
    return [slice(int(a), int(b)) for a, b in zip(idx[:-1], idx[1:])]


def paper_beat_chroma(audio: np.ndarray, *, sr: int, beat_times_s: np.ndarray) -> np.ndarray:
    """``amu`` beat-synchronous chroma: float64 (12, n_beats − 1), rows C..B, each value in 0..1.

    Column k is the mean over the STFT frames of beat k's own samples
    (n_fft 2048, hop 512 at ``sr`` Hz, 44.1 kHz in the paper's setting) of
    the chroma frame scaled to maximum 1; a beat with no energy is 0.
    """
    import librosa

    x = _mono(audio, sr=sr)
    b = _beats(beat_times_s, duration_s=x.size / sr)
    out = np.zeros((12, b.size - 1))
    for k, s in enumerate(_beat_slices(b, sr=sr)):
        seg = x[s]
        if seg.size == 0 or not np.any(seg):
            continue
        # C order: numpy's matmul of a Fortran-ordered float32 operand falls off BLAS (measured 30× slower)
        power = np.ascontiguousarray(
            np.abs(librosa.stft(seg, n_fft=PAPER_N_FFT, hop_length=PAPER_HOP, pad_mode="constant")) ** 2)
        with warnings.catch_warnings():  # a beat without a clear pitch: tuning 0, as librosa itself falls back to
            warnings.simplefilter("ignore", UserWarning)
            tuning = librosa.estimate_tuning(S=power, sr=PAPER_CHROMA_FILTER_SR, n_fft=PAPER_N_FFT, bins_per_octave=12)
        frames = _paper_chroma_filters(round(float(tuning), 2)) @ power
        peak = frames.max(axis=0)
        live = peak > np.finfo(np.float32).tiny  # librosa's own threshold for a frame that cannot be scaled
        frames[:, live] /= peak[live]
        out[:, k] = frames.mean(axis=1)
    return out


@lru_cache(maxsize=128)
def _paper_chroma_filters(tuning_bins: float) -> np.ndarray:
    """librosa's chroma filter bank (12, 1 + n_fft/2) for a tuning in bins; cached (estimates come in 0.01 steps)."""
    import librosa

    return librosa.filters.chroma(sr=PAPER_CHROMA_FILTER_SR, n_fft=PAPER_N_FFT, tuning=tuning_bins, n_chroma=12)


def paper_band_magnitudes(audio: np.ndarray, *, sr: int, beat_times_s: np.ndarray) -> np.ndarray:
    """``amu`` per-beat band magnitudes: float64 (3, n_beats − 1), √(energy) per band, unnormalised FFT units.

    Band j of beat k: the square root of the summed |FFT|² of the
    equal-loudness-filtered samples of beat k strictly inside the band
    (0–220 Hz, 220–1760 Hz, 1760 Hz–sr/2).
    """
    x = equal_loudness(audio, sr=sr)
    b = _beats(beat_times_s, duration_s=x.size / sr)
    lo, hi = BAND_EDGES_HZ
    edges = ((0.0, lo), (lo, hi), (hi, sr / 2))
    out = np.zeros((3, b.size - 1))
    for k, s in enumerate(_beat_slices(b, sr=sr)):
        seg = x[s]
        if seg.size == 0:
            continue
        power = np.abs(np.fft.rfft(seg)) ** 2
        freqs = np.fft.rfftfreq(seg.size, 1.0 / sr)
        for j, (f0, f1) in enumerate(edges):
            out[j, k] = np.sqrt(power[(freqs > f0) & (freqs < f1)].sum())
    return out


def paper_spectral_balance(bands_a: np.ndarray, bands_b: np.ndarray) -> float:
    """``amu`` L: 1 − std across the 3 bands of the beat-averaged (a + b) band magnitudes, normalised to sum 1.

    Inputs (3, n_beats − 1) from :func:`paper_band_magnitudes`; 0.53..1, 0 when both are silent.
    """
    a, b = np.asarray(bands_a, dtype=np.float64), np.asarray(bands_b, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != 3 or a.shape != b.shape:
        raise ScoringError(f"band magnitudes must both be (3, n_beats), got {a.shape} and {b.shape}")
    beta = (a + b).mean(axis=1)
    total = beta.sum()
    return float(1.0 - np.std(beta / total)) if total > 0 else 0.0


@dataclass
class _PaperAnalysis:
    chroma: np.ndarray
    bands: np.ndarray


@_one_blas_thread
def paper_mashability(stems: dict[str, np.ndarray], *, sr: int, beat_times_s: np.ndarray,
                      weights: AmuWeights = PAPER_WEIGHTS) -> AmuScore:
    """``amu`` mashability of stems played together: the mean of H + 0.2 · L over every pair of stems.

    ``stems``: two or more named audio arrays at ``sr`` Hz, aligned at sample
    0, resampled to 44.1 kHz when ``sr`` differs (the front end is defined
    there); shorter ones are zero-padded to the longest. ``beat_times_s``:
    the mashup's beat times in seconds. H is the best of the 12 circular
    pitch shifts, reported as ``best_shift_semitones`` (+k raises the second
    stem of the pair); ``rhythmic`` is 0 (the paper's AMU has no such term).
    """
    if len(stems) < 2:
        raise ScoringError(f"AMU needs at least two stems, got {len(stems)}")
    monos = {k: _mono(v, sr=sr, name=f"stem {k!r}") for k, v in stems.items()}
    if sr != PAPER_SR:
        import librosa

        monos = {k: librosa.resample(m, orig_sr=sr, target_sr=PAPER_SR).astype(np.float32)
                 for k, m in monos.items()}
    n = max(m.size for m in monos.values())
    beats_s = _beats(beat_times_s, duration_s=n / PAPER_SR)
    analysed = {}
    for k, m in monos.items():
        x = np.zeros(n, dtype=np.float32)
        x[: m.size] = m
        analysed[k] = _PaperAnalysis(chroma=paper_beat_chroma(x, sr=PAPER_SR, beat_times_s=beats_s),
                                     bands=paper_band_magnitudes(x, sr=PAPER_SR, beat_times_s=beats_s))
    pairs = {}
    for ka, kb in combinations(list(analysed), 2):
        a, b = analysed[ka], analysed[kb]
        shift, h = best_pitch_shift(a.chroma, b.chroma)
        l_ = paper_spectral_balance(a.bands, b.bands)
        pairs[f"{ka}+{kb}"] = AmuPairScore(total=float(weights.harmonic * h + weights.spectral * l_), harmonic=h,
                                           rhythmic=0.0, spectral=l_, best_shift_semitones=shift, best_harmonic=h)
    return AmuScore(total=float(np.mean([p.total for p in pairs.values()])), pairs=pairs)


def paper_pair_mashability(audio_a: np.ndarray, audio_b: np.ndarray, *, sr: int,
                           beat_times_s: np.ndarray) -> AmuPairScore:
    """``amu`` mashability M(a, b) of two stems on one beat grid (see :func:`paper_mashability`)."""
    return paper_mashability({"a": audio_a, "b": audio_b}, sr=sr, beat_times_s=beat_times_s).pairs["a+b"]


# ---------------------------------------------------------------------------------------------------------
# the variants, by system name


@dataclass(frozen=True)
class AmuVariant:
    """One AMU baseline: the system name, the sample rate (Hz) its stems are made at, and its scorer.

    ``mashability(stems, sr=…, beat_times_s=…)`` → :class:`AmuScore`.
    """

    name: str
    sr: int
    mashability: Callable[..., AmuScore]
    summary: str


VARIANTS: dict[str, AmuVariant] = {v.name: v for v in (
    AmuVariant("amu", PAPER_SR, paper_mashability,
               "AutoMashUpper as the open-source code the paper ran computes it: best-shift chroma + 0.2 balance"),
    AmuVariant("amu_rhythm", RHYTHM_SR, mashability,
               "mashlab's AutoMashUpper: in-key chroma + 0.2 rhythm + 0.2 per-beat balance of the mix"),
)}
DEFAULT_VARIANT = "amu"


def get_variant(name: str) -> AmuVariant:
    """The AMU variant called ``name``; ScoringError naming the known ones otherwise."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ScoringError(f"no AMU variant {name!r} (known: {', '.join(VARIANTS)})") from None
