"""Choosing the clip (`ingest --segment auto`, `--clips-per-file`): the scoring core and ingest end to end.

The end-to-end tests ingest a generated song whose vocal enters late
(`SongSpec.vocal_entry_s`) with the real Spleeter 2stems model, separated once
as a whole; they are skipped with the fix printed when Spleeter's virtualenv
is absent.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from django.core.management import call_command

from generation.errors import SegmentError
from generation.models import Clip
from generation.segments import Window, choose_windows, start_windows, window_scores
from generation.separation import spleeter_python
from generation.services import db_disk_usage

SR = 44100
SONG_S = 40.0
VOCAL_ENTRY_S = 22.0
CLIP_S = 12.0


def _tone_song(seconds: float, *, voice_from_s: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(vocal, accompaniment), mono: clicks at 120 BPM throughout, a vibrato tone as the voice from `voice_from_s`."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    acc = 0.05 * np.sin(2 * np.pi * 110 * t)
    for onset in np.arange(0.05, seconds, 0.5):
        i = int(onset * SR)
        acc[i: i + 441] += 0.5 * rng.standard_normal(441) * np.exp(-np.arange(441) / 80)
    vocal = 0.2 * np.sin(2 * np.pi * 330 * t + 3 * np.sin(2 * np.pi * 5.5 * t)) * (t >= voice_from_s)
    return vocal.astype(np.float32), acc.astype(np.float32)


# --- the scoring core -----------------------------------------------------------------------------

def test_the_best_window_is_where_the_voice_sings():
    vocal, acc = _tone_song(60.0, voice_from_s=35.0)
    best = choose_windows(vocal, acc, sr=SR, clip_seconds=20.0)[0]
    assert best.start_s >= 35.0 - 1e-6 and best.end_s <= 60.0 + 1e-6
    assert best.vocal > 0.95 and best.pulse > 0.5


def test_windows_are_non_overlapping_best_first_and_the_first_n_do_not_depend_on_n():
    vocal, acc = _tone_song(60.0, voice_from_s=35.0)
    three = choose_windows(vocal, acc, sr=SR, clip_seconds=15.0, count=3)
    assert len(three) == 3
    assert [w.score for w in three] == sorted((w.score for w in three), reverse=True)
    assert not any(a.overlaps(b) for i, a in enumerate(three) for b in three[i + 1:])
    assert choose_windows(vocal, acc, sr=SR, clip_seconds=15.0, count=2) == three[:2]
    every = choose_windows(vocal, acc, sr=SR, clip_seconds=15.0, count=10)
    assert 2 <= len(every) <= 4  # 60 s hold at most four of 15 s; greedy stops when no window fits between
    free = [w for w in window_scores(vocal, acc, sr=SR, clip_seconds=15.0) if not any(w.overlaps(c) for c in every)]
    assert free == []


def test_a_steady_pulse_beats_none_when_there_is_no_voice():
    n = int(40 * SR)
    rng = np.random.default_rng(1)
    _, clicks = _tone_song(20.0, voice_from_s=99.0)
    noise = (0.05 * rng.standard_normal(n // 2)).astype(np.float32)  # as loud, no pulse
    acc = np.concatenate([noise * np.sqrt(np.mean(clicks**2) / np.mean(noise**2)), clicks])
    windows = window_scores(np.zeros(n, dtype=np.float32), acc, sr=SR, clip_seconds=10.0)
    best = max(windows, key=lambda w: w.score)
    assert best.start_s >= 20.0 and best.vocal == 0.0
    assert max(w.pulse for w in windows if w.end_s <= 20.0) < best.pulse - 0.3


def test_a_recording_shorter_than_a_clip_is_one_window_and_start_windows_are_consecutive():
    vocal, acc = _tone_song(8.0, voice_from_s=2.0)
    (only,) = choose_windows(vocal, acc, sr=SR, clip_seconds=30.0, count=3)
    assert (only.start_s, only.duration_s) == (0.0, 8.0)
    assert start_windows(100.0, clip_seconds=30.0, count=5) == [Window(0.0, 30.0), Window(30.0, 30.0),
                                                                Window(60.0, 30.0)]
    assert start_windows(12.0, clip_seconds=30.0, count=2) == [Window(0.0, 12.0)]
    with pytest.raises(SegmentError, match="positive integer"):
        choose_windows(vocal, acc, sr=SR, clip_seconds=30.0, count=0)
    with pytest.raises(SegmentError, match="differ in length"):
        window_scores(vocal, acc[:-10], sr=SR, clip_seconds=5.0)


# --- ingest end to end --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def late_song(tmp_path_factory):
    """A 40 s generated song whose vocal enters at the first downbeat after 22 s."""
    from generation.synth_songs import demo_song_specs, render_song

    spec = dataclasses.replace(demo_song_specs(count=1, seed=5, seconds=SONG_S)[0], name="late",
                               vocal_entry_s=VOCAL_ENTRY_S)
    song = render_song(spec, tmp_path_factory.mktemp("late") / "late")
    vocal, _ = sf.read(str(song.stem_paths["vocals"]), always_2d=True)
    entry = int(np.argmax(np.abs(vocal[:, 0]) > 1e-4)) / SR
    downbeat = min(t for t in song.downbeats if t >= VOCAL_ENTRY_S)
    assert downbeat <= entry < downbeat + 0.5  # the first word's onset (espeak starts softly)
    return song, entry


def _ingest(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("ingest", *args, "--separator", "spleeter:2stems", "--clip-seconds", str(CLIP_S), "--jobs", "1",
                 "--no-progress", stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def _records(db: str) -> list[dict]:
    out = io.StringIO()
    call_command("clips", "--db", db, "--json", stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_auto_segment_chooses_the_late_vocal_and_start_keeps_zero(late_song, settings):
    if not spleeter_python().exists():
        reason = f"Spleeter virtualenv missing ({spleeter_python()}): run scripts/setup.sh"
        print(reason)
        pytest.skip(reason)
    song, entry = late_song
    log = _ingest(str(song.mix_path), "--db", "auto", "--segment", "auto", "--clips-per-file", "2")
    assert "2 clips added" in log, log
    best, second = _records("auto")  # ordered by id: the best window first
    print(f"\nlate vocal from {entry:.2f} s: auto chose {best['start_s']:.1f} s (score {best['segment_score']:.3f}) "
          f"and {second['start_s']:.1f} s (score {second['segment_score']:.3f})")
    assert best["segment_method"] == second["segment_method"] == "auto"
    assert best["start_s"] >= entry - 1.0 and best["start_s"] + best["duration_s"] <= SONG_S + 1e-6
    assert best["segment_score"] > second["segment_score"]
    assert best["start_s"] + CLIP_S <= second["start_s"] + 1e-6 or second["start_s"] + CLIP_S <= best["start_s"] + 1e-6
    assert best["name"] == "late" and second["name"] == "late-2"
    # the clip holds the song's samples from where it was cut, and its stems the voice sung there
    truth, _ = sf.read(str(song.mix_path), dtype="float32", always_2d=True)
    i = int(round(best["start_s"] * SR))
    vocal_stem, sr = sf.read(best["stems"]["vocal"], dtype="float32", always_2d=True)
    mix, _ = sf.read(str(Path(settings.MEDIA_ROOT) / Clip.objects.get(id=best["id"]).audio_path), dtype="float32",
                     always_2d=True)
    assert sr == SR and mix.shape[0] == int(CLIP_S * SR)
    assert np.max(np.abs(mix - truth[i: i + mix.shape[0]])) <= 1.0 / 32768  # 16-bit FLAC of the same samples
    true_vocal, _ = sf.read(str(song.stem_paths["vocals"]), dtype="float32", always_2d=True)
    seg = true_vocal[i: i + vocal_stem.shape[0]]
    assert np.corrcoef(vocal_stem.ravel(), seg.ravel())[0, 1] > 0.9
    # stored compactly: FLAC files, counted by db_disk_usage
    clip = Clip.objects.get(id=best["id"])
    files = {clip.audio_file, *(s.file for s in clip.stems.all())}
    assert all(p.suffix == ".flac" and sf.info(str(p)).subtype == "PCM_16" for p in files)
    assert db_disk_usage("auto") == sum(
        p.stat().st_size for c in Clip.objects.filter(db__name="auto")
        for p in {c.audio_file, *(s.file for s in c.stems.all())})

    # rerun: the choice is cached, so nothing is separated again and nothing changes
    before = sorted(p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file() and ".staging" not in p.parts)
    log = _ingest(str(song.mix_path), "--db", "auto", "--segment", "auto", "--clips-per-file", "2")
    assert "0 clips added, 2 already present" in log, log
    assert sorted(p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()) == before

    log = _ingest(str(song.mix_path), "--db", "start")
    assert "1 clips added" in log, log
    (first,) = _records("start")
    assert first["start_s"] == 0.0 and first["segment_method"] == "start" and first["segment_score"] is None
    out = io.StringIO()
    call_command("clips", "--db", "auto", stdout=out)
    assert "MB per clip" in out.getvalue() and "(auto)" in out.getvalue()
