"""Generated demo songs: stems and mix, ground truth, determinism, metres and keys."""

from __future__ import annotations

import json
from typing import Any

import librosa
import numpy as np
import pytest
import soundfile as sf

from generation.errors import SongError
from generation.keys import Key
from generation.synth_songs import SR, STEM_NAMES, SongSpec, demo_song_specs, load_truth, main, plan_song, render_song


def _short_spec(**overrides) -> SongSpec:
    fields: dict[str, Any] = dict(name="short", key=Key.parse("E minor"), tempo_bpm=128.0, beats_per_bar=3, seconds=6.0, seed=11)
    fields.update(overrides)
    return SongSpec(**fields)


def test_stems_sum_exactly_to_the_mix(few_songs):
    for song in few_songs:
        stems = [sf.read(str(p), dtype="int16", always_2d=True)[0].astype(np.int32) for p in song.stem_paths.values()]
        mix, sr = sf.read(str(song.mix_path), dtype="int16", always_2d=True)
        assert sr == SR
        assert np.array_equal(sum(stems), mix.astype(np.int32)), song.name


def test_files_are_stereo_44k1_of_the_spec_length_and_no_stem_is_silent(few_songs):
    for song in few_songs:
        for name in (*STEM_NAMES, "mix"):
            path = song.out_dir / f"{name}.wav"
            info = sf.info(str(path))
            assert (info.samplerate, info.channels, info.frames) == (SR, 2, round(song.seconds * SR)), path
            audio, _ = sf.read(str(path), dtype="float32")
            assert np.sqrt(np.mean(audio**2)) > 0.01, f"{path} is nearly silent"
            assert np.max(np.abs(audio)) < 0.95, f"{path} is too close to clipping"


def test_truth_json_matches_the_spec_and_the_beat_grid(few_songs):
    for song in few_songs:
        data = json.loads(song.truth_path.read_text())
        assert data["key"] == song.spec.key.label
        assert data["tempo_bpm"] == song.spec.tempo_bpm
        assert data["beats_per_bar"] == song.spec.beats_per_bar
        assert data["seconds"] == song.spec.seconds and data["seed"] == song.spec.seed
        beats = np.array(data["beats"])
        assert 0.1 <= beats[0] <= 0.6 and beats[0] == data["start_s"]
        assert beats[-1] < song.seconds
        assert song.seconds - beats[-1] <= 60.0 / song.tempo_bpm + 1e-6  # no beat left out at the end
        assert np.allclose(np.diff(beats), 60.0 / song.tempo_bpm, atol=2e-6)
        assert data["downbeats"] == data["beats"][:: song.beats_per_bar]
        assert load_truth(song.out_dir) == song


def test_drum_hits_fall_on_the_truth_beats(few_songs):
    """The truth is the audio's: nearly every true beat has a drum onset within 30 ms."""
    for song in few_songs:
        drums, sr = sf.read(str(song.stem_paths["drums"]), dtype="float32")
        onsets = librosa.onset.onset_detect(y=drums.mean(axis=1), sr=sr, hop_length=256, units="time", backtrack=False)
        hits = [np.min(np.abs(onsets - t)) <= 0.03 for t in song.beats]
        assert np.mean(hits) >= 0.95, (song.name, np.mean(hits))


def test_the_vocal_sings_the_planned_notes_of_the_key(few_songs):
    song = few_songs[1]  # a minor key
    plan = plan_song(song.spec)
    scale = {(song.key.tonic + s) % 12 for s in (0, 2, 3, 5, 7, 8, 11)}  # harmonic minor
    assert {ev.pitch % 12 for ev in plan.vocals} <= scale
    vocal, sr = sf.read(str(song.stem_paths["vocals"]), dtype="float32")
    vocal = vocal.mean(axis=1)
    errors = []
    for ev in plan.vocals:
        start = int((ev.onset_s + 0.03) * sr)
        seg = vocal[start : start + int(0.15 * sr)]
        f0 = librosa.yin(seg, fmin=80, fmax=600, sr=sr, frame_length=2048, hop_length=512)
        errors.append(12 * np.log2(np.median(f0) / librosa.midi_to_hz(ev.pitch)))
    assert len(errors) >= 10
    assert np.mean(np.abs(errors) < 0.3) >= 0.9, np.round(errors, 2)


def test_minor_songs_have_a_major_dominant_with_the_leading_tone():
    for spec in demo_song_specs(count=8, seed=3):
        plan = plan_song(spec)
        tonic = spec.key.tonic
        has_tonic = any(chord[0] == tonic for chord in plan.chords[:4])
        dominant = [chord for chord in plan.chords[:4] if chord[0] == (tonic + 7) % 12]
        assert has_tonic and dominant, spec
        if spec.key.mode == "minor":
            assert (tonic + 11) % 12 in dominant[0]  # the leading tone (major third of V)


def test_rendering_is_deterministic_byte_for_byte(tmp_path):
    spec = _short_spec()
    first = render_song(spec, tmp_path / "a")
    second = render_song(spec, tmp_path / "b")
    for name in (*STEM_NAMES, "mix"):
        assert (first.out_dir / f"{name}.wav").read_bytes() == (second.out_dir / f"{name}.wav").read_bytes(), name
    assert first.truth_path.read_text() == second.truth_path.read_text()
    other_seed = render_song(_short_spec(seed=12), tmp_path / "c")
    assert other_seed.mix_path.read_bytes() != first.mix_path.read_bytes()


def test_a_finished_render_is_reused_and_a_changed_spec_is_rendered_again(tmp_path):
    spec = _short_spec(seconds=5.0)
    truth = render_song(spec, tmp_path / "s")
    stamp = truth.mix_path.stat().st_mtime_ns
    assert render_song(spec, tmp_path / "s").mix_path.stat().st_mtime_ns == stamp
    changed = render_song(_short_spec(seconds=5.0, tempo_bpm=100.0), tmp_path / "s")
    assert changed.tempo_bpm == 100.0
    assert load_truth(tmp_path / "s").tempo_bpm == 100.0
    assert not list((tmp_path / "s").glob(".render-*"))  # no leftover work folder


def test_demo_specs_cover_all_keys_both_metres_and_spread_tempi():
    specs = demo_song_specs(count=24, seed=0)
    assert len({s.key for s in specs}) == 24
    assert {(s.key.mode, s.beats_per_bar) for s in specs[:4]} == {
        ("major", 4), ("minor", 4), ("major", 3), ("minor", 3)}
    assert sum(s.beats_per_bar == 3 for s in specs) == 12
    tempi = np.array([s.tempo_bpm for s in specs])
    assert tempi.min() >= 70 and tempi.max() <= 160
    counts, _ = np.histogram(tempi, bins=6, range=(70, 160))
    assert counts.min() >= 3  # stratified: every 15 BPM band holds songs
    assert len({s.name for s in specs}) == 24 and len({s.seed for s in specs}) == 24
    assert demo_song_specs(count=24, seed=0) == specs
    assert demo_song_specs(count=24, seed=1) != specs


def test_both_metres_are_present_in_the_song_set(few_songs):
    assert {s.beats_per_bar for s in few_songs} == {3, 4}
    assert {s.key.mode for s in few_songs} == {"major", "minor"}


@pytest.mark.parametrize(
    "overrides, word",
    [
        ({"tempo_bpm": 300.0}, "tempo_bpm"),
        ({"beats_per_bar": 5}, "beats_per_bar"),
        ({"seconds": 1.0}, "seconds"),
        ({"name": "a/b"}, "name"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_specs_are_rejected_with_the_field_named(overrides, word):
    with pytest.raises(SongError, match=word):
        _short_spec(**overrides)


def test_demo_specs_reject_a_bad_count_or_tempo_range():
    with pytest.raises(SongError, match="count"):
        demo_song_specs(count=0, seed=0)
    with pytest.raises(SongError, match="tempo_range_bpm"):
        demo_song_specs(count=4, seed=0, tempo_range_bpm=(160, 70))


def test_a_corrupt_truth_file_is_a_song_error(tmp_path):
    (tmp_path / "truth.json").write_text("{not json")
    with pytest.raises(SongError, match="truth"):
        load_truth(tmp_path)


def test_the_command_line_renders_a_set(tmp_path, capsys):
    assert main([str(tmp_path / "out"), "--count", "1", "--seed", "5", "--seconds", "5", "--quiet"]) == 0
    printed = capsys.readouterr().out
    folder = tmp_path / "out" / "song000"
    assert str(folder) in printed
    assert {p.name for p in folder.iterdir()} == {f"{n}.wav" for n in (*STEM_NAMES, "mix")} | {"truth.json"}
    assert main([str(tmp_path / "bad"), "--count", "0", "--quiet"]) == 1
    assert "count" in capsys.readouterr().err


def test_a_late_vocal_entry_silences_only_the_words_before_its_downbeat():
    plain = _short_spec(seconds=20.0)
    late = _short_spec(seconds=20.0, vocal_entry_s=9.0)
    a, b = plan_song(plain), plan_song(late)
    entry = min(t for t in b.downbeats if t >= 9.0)
    assert b.notes == a.notes and b.beats == a.beats  # the accompaniment is the same song
    assert b.vocals == tuple(ev for ev in a.vocals if ev.onset_s >= entry - 1e-9)
    assert b.vocals[0].onset_s == pytest.approx(entry)
    assert SongSpec.from_dict(late.to_dict()) == late and "vocal_entry_s" not in plain.to_dict()
    with pytest.raises(SongError, match="vocal_entry_s"):
        _short_spec(seconds=20.0, vocal_entry_s=19.0)
