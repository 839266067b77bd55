"""madmom analysis (key, tempo, beats, downbeats) against the truth of generated songs.

The report printed by `test_analysis_report` is the measurement the thresholds
below come from (72 songs over seeds 0–2 when they were set: 70/72 exact keys,
both misses minor keys read as their parallel major; 72/72 tempi within 2 %;
72/72 metres and first downbeats right; 0.8 s of analysis per 20 s song).

Tempo is also checked on real pieces: excerpts of openttd-openmsx MIDI files
rendered with fluidsynth (`benchmarks/tempo.py` measures all of them).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from generation.annotate_audio import MIN_DURATION_S, ClipAnalysis, analyse, analyse_file
from generation.errors import EstimationError
from generation.keys import Key, key_shift_semitones
from generation.midi_pieces import OPENMSX_DIR, midi_excerpt, render_excerpt

pytestmark = pytest.mark.slow

DOWNBEAT_TOLERANCE_S = 0.07
BEAT_TOLERANCE_S = 0.07


def key_outcome(true: Key, est: Key) -> str:
    """'exact', 'relative' (same pitch-class set), 'parallel' (same tonic), 'fifth' (a fifth apart), 'other'."""
    if est == true:
        return "exact"
    if est.relative_major == true.relative_major:
        return "relative"
    if est.tonic == true.tonic:
        return "parallel"
    if abs(key_shift_semitones(true, est)) == 5 and est.mode == true.mode:
        return "fifth"
    return "other"


def tempo_outcome(true_bpm: float, est_bpm: float) -> str:
    """'ok' within 2 %, 'half' / 'double' within 2 % of those, else 'other'."""
    ratio = est_bpm / true_bpm
    if abs(ratio - 1.0) <= 0.02:
        return "ok"
    if abs(ratio - 0.5) <= 0.01:
        return "half"
    if abs(ratio - 2.0) <= 0.04:
        return "double"
    return "other"


def beat_fmeasure(est: list[float], true: list[float], *, tolerance_s: float = BEAT_TOLERANCE_S) -> float:
    """F-measure of beat detections, each true beat matched at most once within ±tolerance_s."""
    if not est or not true:
        return 0.0
    est_left = list(est)
    hits = 0
    for t in true:
        if not est_left:
            break
        i = int(np.argmin(np.abs(np.array(est_left) - t)))
        if abs(est_left[i] - t) <= tolerance_s:
            hits += 1
            est_left.pop(i)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(est), hits / len(true)
    return 2 * precision * recall / (precision + recall)


@pytest.fixture(scope="module")
def analysed(song_set):
    """(truth, ClipAnalysis) for every song of the set: about 2 s per song."""
    assert len(song_set) >= 20
    return [(song, analyse_file(song.mix_path)) for song in song_set]


def test_analysis_report(analysed, capsys):
    keys = [key_outcome(s.key, a.key) for s, a in analysed]
    tempi = [tempo_outcome(s.tempo_bpm, a.tempo_bpm) for s, a in analysed]
    metres = [a.beats_per_bar == s.beats_per_bar for s, a in analysed]
    first_db = [bool(a.downbeats) and abs(a.downbeats[0] - s.downbeats[0]) <= DOWNBEAT_TOLERANCE_S for s, a in analysed]
    fmeasures = [beat_fmeasure(a.beats, list(s.beats)) for s, a in analysed]
    n = len(analysed)
    lines = [f"madmom analysis of {n} generated songs"]
    lines.append("  keys:   " + ", ".join(f"{k} {keys.count(k)}" for k in ("exact", "relative", "parallel", "fifth", "other")))
    lines.append("  tempi:  " + ", ".join(f"{k} {tempi.count(k)}" for k in ("ok", "half", "double", "other")) + " (ok = within 2 %)")
    lines.append(f"  metre right {sum(metres)}/{n}; first downbeat within {DOWNBEAT_TOLERANCE_S * 1000:.0f} ms {sum(first_db)}/{n}; "
                 f"beat F-measure mean {np.mean(fmeasures):.3f}")
    for (s, a), k, t in zip(analysed, keys, tempi):
        if k != "exact" or t != "ok":
            lines.append(f"  {s.name}: key {s.key.label} -> {a.key.label} ({k}); tempo {s.tempo_bpm:.1f} -> {a.tempo_bpm:.1f} ({t})")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert all(isinstance(a, ClipAnalysis) and a.source == "estimated" for _, a in analysed)


def test_keys_are_exact_for_at_least_90_percent(analysed):
    exact = [a.key == s.key for s, a in analysed]
    assert np.mean(exact) >= 0.90, [(s.key.label, a.key.label) for s, a in analysed if a.key != s.key]


def test_tempi_between_80_and_140_bpm_are_within_2_percent_for_90_percent(analysed):
    mid = [(s, a) for s, a in analysed if 80 <= s.tempo_bpm <= 140]
    assert len(mid) >= 10
    ok = [tempo_outcome(s.tempo_bpm, a.tempo_bpm) == "ok" for s, a in mid]
    assert np.mean(ok) >= 0.90, [(s.tempo_bpm, a.tempo_bpm) for s, a in mid]


def test_octave_errors_stay_under_25_percent_over_the_whole_range(analysed):
    outcomes = [tempo_outcome(s.tempo_bpm, a.tempo_bpm) for s, a in analysed]
    assert (outcomes.count("half") + outcomes.count("double")) / len(outcomes) < 0.25


def test_metre_and_first_downbeat_match_the_truth(analysed):
    metres = np.mean([a.beats_per_bar == s.beats_per_bar for s, a in analysed])
    first = np.mean([bool(a.downbeats) and abs(a.downbeats[0] - s.downbeats[0]) <= DOWNBEAT_TOLERANCE_S
                     for s, a in analysed])
    assert metres >= 0.85 and first >= 0.85, (metres, first)


def test_beats_are_tracked_and_downbeats_are_among_them(analysed):
    fmeasures = [beat_fmeasure(a.beats, list(s.beats)) for s, a in analysed]
    assert np.mean(fmeasures) >= 0.90
    for _, a in analysed:
        assert set(a.downbeats) <= set(a.beats)
        assert a.beats == sorted(a.beats)


def test_other_sample_rates_and_mono_input_give_the_same_answer(few_songs):
    import librosa

    song = few_songs[0]
    audio, sr = sf.read(str(song.mix_path), dtype="float32", always_2d=True)
    reference = analyse(audio.T, sr=sr)
    mono_22k = librosa.resample(audio.mean(axis=1), orig_sr=sr, target_sr=22050)
    other = analyse(mono_22k, sr=22050)
    assert other.key == reference.key
    assert other.tempo_bpm == pytest.approx(reference.tempo_bpm, rel=0.01)
    assert other.beats_per_bar == reference.beats_per_bar
    assert other.downbeats[0] == pytest.approx(reference.downbeats[0], abs=0.03)


def test_integer_pcm_is_scaled_like_float(few_songs):
    song = few_songs[1]
    pcm, sr = sf.read(str(song.mix_path), dtype="int16", always_2d=True)
    result = analyse(pcm.T, sr=sr)
    assert result.key == song.key
    assert not math.isnan(result.tempo_bpm)


@pytest.mark.parametrize(
    "audio, sr, words",
    [
        (np.zeros(44100 * 10, dtype=np.float32), 44100, "silent"),
        (1e-5 * np.random.default_rng(0).standard_normal(44100 * 10), 44100, "silent"),
        (0.1 * np.random.default_rng(1).standard_normal(int(44100 * (MIN_DURATION_S - 0.5))), 44100, "too short"),
        (np.full(44100 * 5, np.nan), 44100, "NaN"),
        (np.zeros((2, 3, 44100)), 44100, "shape"),
        (0.1 * np.ones((44100 * 5, 2)), 44100, "channels"),
        (0.1 * np.ones(44100 * 5), 0, "sr"),
        (np.array(["a"] * 44100 * 5), 44100, "numeric"),
    ],
    ids=["zeros", "near-silence", "short", "nan", "3-d", "samples-first", "bad-sr", "strings"],
)
def test_unusable_audio_raises_estimation_error(audio, sr, words):
    with pytest.raises(EstimationError, match=words):
        analyse(audio, sr=sr)


def test_analyse_file_names_the_file_in_its_errors(tmp_path):
    with pytest.raises(EstimationError, match="no such file"):
        analyse_file(tmp_path / "missing.wav")
    bogus = tmp_path / "notes.wav"
    bogus.write_text("not audio at all\n")
    with pytest.raises(EstimationError, match="notes.wav.*cannot read"):
        analyse_file(bogus)
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros((44100 * 6, 2), dtype=np.float32), 44100)
    with pytest.raises(EstimationError, match="silent.wav.*silent"):
        analyse_file(silent)


# openMSX pieces whose tempo octave one of the single-network rules got wrong
# (benchmarks/tempo.py): the downbeat histogram alone doubled no_work_song and
# halved mosey_along; RNNBeatProcessor + TempoEstimationProcessor halved
# mighty_giant_run and ultimate_run.
REAL_PIECES = ("no_work_song_redfarn", "mosey_along_redfarn", "mighty_giant_run", "ultimate_run")
REAL_EXCERPT_S = 30.0


@pytest.mark.parametrize("piece", REAL_PIECES)
def test_tempo_of_real_midi_pieces_is_within_2_percent(piece, tmp_path):
    midi = OPENMSX_DIR / f"{piece}.mid"
    if not midi.is_file():
        reason = f"{midi} absent: apt-get install openttd-openmsx (scripts/setup.sh installs it with the tests)"
        print(reason)
        pytest.skip(reason)
    excerpt = midi_excerpt(midi, seconds=REAL_EXCERPT_S)
    result = analyse_file(render_excerpt(excerpt, tmp_path / f"{piece}.wav"))
    assert tempo_outcome(excerpt.tempo_bpm, result.tempo_bpm) == "ok", (excerpt.tempo_bpm, result.tempo_bpm)
    # beats, downbeats and tempo agree: the tracked beats run at the reported tempo
    assert 60.0 / np.median(np.diff(result.beats)) == pytest.approx(result.tempo_bpm, rel=0.03)
    assert set(result.downbeats) <= set(result.beats)
