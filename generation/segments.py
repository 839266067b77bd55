"""Choosing the clip: which windows of a recording a listener would call representative.

The paper cut its clips from preview excerpts, the part of a song people know;
the first 30 s of a file is, for most songs, an intro without a voice. With
`ingest --segment auto` the whole recording is separated once and every
window of `clip_seconds` (starts on a grid of `HOP_S`) is scored:

    score = vocal + 0.25 * pulse + 0.25 * loudness        (each term in 0..1)

* **vocal**: the share of 0.1 s frames in the window in which the separated
  vocal is active, i.e. its RMS is at most `VOCAL_BELOW_MIX_DB` below the
  mix's in that frame and above `VOCAL_FLOOR_DBFS`. A window full of voice
  scores 1 whatever its level, so a quiet verse and a loud chorus tie here.
* **pulse**: how steady the beat is: the highest normalised autocorrelation
  of the accompaniment's onset-strength envelope over lags of 0.25-2 s
  (240-30 BPM) within the window (1 = a perfectly periodic pulse, near 0 = no
  pulse, e.g. a rubato intro).
* **loudness**: the window's mean mix RMS relative to the file's loudest
  window, 1 at the loudest and 0 at `LOUDNESS_RANGE_DB` below it.

The vocal term dominates, so a window with a voice beats one without; among
windows with as much voice, the loud ones with a steady beat (choruses) win.
On instrumental music the vocal term is near 0 (Spleeter's vocal stem holds
only leakage of lead instruments) and pulse and loudness choose.

`choose_windows` returns the best window, then the best one not overlapping
it, and so on (greedy, which makes the first N windows the same whatever N is
asked, so a choice can be cached once per recording). No Django here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from generation.errors import SegmentError

__all__ = [
    "HOP_S",
    "SEGMENT_METHODS",
    "SEGMENT_VERSION",
    "SegmentError",
    "Window",
    "choose_windows",
    "start_windows",
    "window_scores",
]

#: How a clip's start is chosen: from the file's start, by `choose_windows`, or by annotations (Harmonix).
SEGMENT_METHODS = ("start", "auto", "annotated")
#: Bumped whenever the scoring changes, so cached choices are redone.
SEGMENT_VERSION = 1
HOP_S = 0.5  # grid of window starts (s)
FRAME_S = 0.1  # RMS frame for vocal activity and loudness (s)
VOCAL_BELOW_MIX_DB = 15.0
VOCAL_FLOOR_DBFS = -50.0
LOUDNESS_RANGE_DB = 20.0
PULSE_WEIGHT = 0.25
LOUDNESS_WEIGHT = 0.25
_FEATURE_SR = 11025  # onset envelope rate: plenty for a beat (Hz)
_ONSET_HOP = 256  # samples at _FEATURE_SR: 23 ms
_MIN_LAG_S, _MAX_LAG_S = 0.25, 2.0



@dataclass(frozen=True)
class Window:
    """A window of the recording: start and length (s) and its score with the three terms (each 0..1)."""

    start_s: float
    duration_s: float
    score: float = 0.0
    vocal: float = 0.0
    pulse: float = 0.0
    loudness: float = 0.0

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def overlaps(self, other: "Window") -> bool:
        return self.start_s < other.end_s - 1e-9 and other.start_s < self.end_s - 1e-9

    def to_dict(self) -> dict:
        return {k: round(float(v), 6) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "Window":
        return cls(**{k: float(data[k]) for k in ("start_s", "duration_s", "score", "vocal", "pulse", "loudness")})


def start_windows(total_s: float, *, clip_seconds: float, count: int = 1) -> list[Window]:
    """`count` consecutive windows from 0 s (`ingest --segment start`); fewer when the file is shorter.

    The first window is cut to the file's length (a short file gives one
    shorter clip, as before); later ones must be whole.
    """
    _check(clip_seconds, count)
    windows = [Window(0.0, round(min(clip_seconds, total_s), 6))]
    for k in range(1, count):
        if (k + 1) * clip_seconds > total_s + 1e-9:
            break
        windows.append(Window(round(k * clip_seconds, 6), float(clip_seconds)))
    return windows


def window_scores(vocal: np.ndarray, accompaniment: np.ndarray, *, sr: int, clip_seconds: float) -> list[Window]:
    """Score every window of `clip_seconds` starting on the `HOP_S` grid (see the module docstring).

    vocal, accompaniment: (channels, n) or (n,) float arrays at `sr` Hz, the
    separated vocal and everything else, of the same length. A recording no
    longer than `clip_seconds` gives one window covering all of it.
    """
    v, a = _mono(vocal), _mono(accompaniment)
    if v.shape != a.shape:
        raise SegmentError(f"vocal and accompaniment differ in length: {v.shape[0]} vs {a.shape[0]} samples")
    if sr <= 0 or v.size < sr:
        raise SegmentError(f"need at least 1 s of audio at a positive rate, got {v.size} samples at {sr} Hz")
    _check(clip_seconds, 1)
    total_s = v.size / sr
    frame = max(1, int(round(FRAME_S * sr)))
    n_frames = v.size // frame
    vocal_db = _frame_db(v, frame, n_frames)
    mix_db = _frame_db(v + a, frame, n_frames)
    active = (vocal_db >= mix_db - VOCAL_BELOW_MIX_DB) & (vocal_db >= VOCAL_FLOOR_DBFS)
    mix_power = 10 ** (mix_db / 10)
    onset = _onset_envelope(a, sr=sr)
    onset_rate = _FEATURE_SR / _ONSET_HOP

    length_s = min(float(clip_seconds), total_s)
    last = max(0.0, total_s - length_s)
    starts = np.arange(0.0, last + 1e-9, HOP_S)
    if last - starts[-1] > 1e-6:  # let the last window end at the file's end
        starts = np.append(starts, last)
    per_window = max(1, int(round(length_s / FRAME_S)))
    raw = []
    for s in starts:
        i = int(round(s / FRAME_S))
        j = min(n_frames, i + per_window)
        share = float(np.mean(active[i:j])) if j > i else 0.0
        level_db = 10 * np.log10(float(np.mean(mix_power[i:j])) + 1e-12) if j > i else -120.0
        o = onset[int(round(s * onset_rate)): int(round((s + length_s) * onset_rate))]
        raw.append((float(s), share, _pulse_clarity(o, rate=onset_rate), level_db))
    loudest = max(r[3] for r in raw)
    windows = []
    for s, share, pulse, level_db in raw:
        loud = float(np.clip(1.0 + (level_db - loudest) / LOUDNESS_RANGE_DB, 0.0, 1.0))
        score = share + PULSE_WEIGHT * pulse + LOUDNESS_WEIGHT * loud
        windows.append(Window(round(s, 6), round(length_s, 6), score, share, pulse, loud))
    return windows


def choose_windows(
    vocal: np.ndarray, accompaniment: np.ndarray, *, sr: int, clip_seconds: float, count: int = 1
) -> list[Window]:
    """The `count` best non-overlapping windows, best first (greedy); fewer when the recording has no room.

    Ties go to the earlier window. See `window_scores` for the inputs.
    """
    _check(clip_seconds, count)
    scored = window_scores(vocal, accompaniment, sr=sr, clip_seconds=clip_seconds)
    order = sorted(scored, key=lambda w: (-round(w.score, 9), w.start_s))
    chosen: list[Window] = []
    for w in order:
        if len(chosen) == count:
            break
        if not any(w.overlaps(c) for c in chosen):
            chosen.append(w)
    return chosen


def _check(clip_seconds: float, count: int) -> None:
    if not clip_seconds > 0:
        raise SegmentError(f"clip_seconds must be positive, got {clip_seconds!r}")
    if int(count) != count or count < 1:
        raise SegmentError(f"clips per file must be a positive integer, got {count!r}")


def _mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=0)
    if audio.ndim != 1 or not np.all(np.isfinite(audio)):
        raise SegmentError(f"audio must be finite (channels, n) or (n,), got shape {np.shape(audio)}")
    return audio


def _frame_db(x: np.ndarray, frame: int, n_frames: int) -> np.ndarray:
    """RMS level (dBFS) of consecutive frames of `frame` samples."""
    power = np.mean(x[: n_frames * frame].reshape(n_frames, frame).astype(np.float64) ** 2, axis=1)
    return 10 * np.log10(power + 1e-12)


def _onset_envelope(x: np.ndarray, *, sr: int) -> np.ndarray:
    """Onset strength (librosa's spectral flux on a mel spectrogram) at _FEATURE_SR / _ONSET_HOP frames per s."""
    import librosa
    import soxr

    y = soxr.resample(x, sr, _FEATURE_SR) if sr != _FEATURE_SR else x
    return librosa.onset.onset_strength(y=y.astype(np.float32), sr=_FEATURE_SR, hop_length=_ONSET_HOP)


def _pulse_clarity(onset: np.ndarray, *, rate: float) -> float:
    """Highest autocorrelation (normalised, 0..1) of `onset` over lags of _MIN_LAG_S.._MAX_LAG_S s."""
    lo, hi = int(round(_MIN_LAG_S * rate)), int(round(_MAX_LAG_S * rate))
    x = onset.astype(np.float64) - float(np.mean(onset)) if onset.size else onset
    if x.size < 2 * hi or float(np.dot(x, x)) <= 1e-12:
        return 0.0
    spectrum = np.fft.rfft(x, n=2 * x.size)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[: x.size]
    acf /= acf[0]
    # unbiased: lag k sums n - k products
    acf[lo:hi] *= x.size / (x.size - np.arange(lo, hi))
    return float(np.clip(np.max(acf[lo:hi]), 0.0, 1.0))
