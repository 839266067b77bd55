"""Tempo truth of MIDI excerpts (generation.midi_pieces) on small files written here with mido.

These files are a fixture for the MIDI reading only (no audio): notes at
known ticks, tempi set where the test says.
"""

from __future__ import annotations

import mido
import numpy as np
import pytest

from generation.errors import SongError
from generation.midi_pieces import midi_excerpt, note_onsets, tempo_map

TPB = 480  # ticks per quarter note


def write_midi(path, *, tempi: list[tuple[int, float]], notes: list[int], end_tick: int,
               signature: tuple[int, int] | None = (4, 4)) -> None:
    """A one-track file: `tempi` as (tick, BPM), a 1/8-note C4 at each tick of `notes`, ending at `end_tick`."""
    events: list[tuple[int, mido.Message | mido.MetaMessage]] = []
    if signature:
        events.append((0, mido.MetaMessage("time_signature", numerator=signature[0], denominator=signature[1])))
    events += [(tick, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))) for tick, bpm in tempi]
    for tick in notes:
        events.append((tick, mido.Message("note_on", note=60, velocity=90)))
        events.append((tick + TPB // 2, mido.Message("note_on", note=60, velocity=0)))  # velocity 0 = note off
    events.append((end_tick, mido.MetaMessage("end_of_track")))
    track, now = mido.MidiTrack(), 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        track.append(msg.copy(time=tick - now))
        now = tick
    mid = mido.MidiFile(ticks_per_beat=TPB)
    mid.tracks.append(track)
    mid.save(str(path))


def test_an_excerpt_at_one_tempo_carries_that_tempo_and_the_time_signature(tmp_path):
    path = tmp_path / "steady.mid"
    write_midi(path, tempi=[(0, 150.0)], notes=[], end_tick=TPB * 100, signature=(3, 4))  # 100 quarters = 40 s
    ex = midi_excerpt(path, start_s=5.0, seconds=30.0)
    assert ex.tempo_bpm == pytest.approx(150.0, rel=1e-4)
    assert ex.time_signature == "3/4"
    assert (ex.name, ex.start_s, ex.seconds) == ("steady", 5.0, 30.0)


def test_a_file_without_tempo_is_at_midis_default_120_bpm(tmp_path):
    path = tmp_path / "default.mid"
    write_midi(path, tempi=[], notes=[], end_tick=TPB * 80, signature=None)  # 40 s at 120 BPM
    ex = midi_excerpt(path, seconds=30.0)
    assert ex.tempo_bpm == 120.0
    assert ex.time_signature is None


def test_an_excerpt_with_a_tempo_change_inside_is_refused_but_one_after_it_is_kept(tmp_path):
    path = tmp_path / "change.mid"
    # 40 quarters at 120 BPM (20 s), then 120 quarters at 90 BPM (80 s)
    write_midi(path, tempi=[(0, 120.0), (TPB * 40, 90.0)], notes=[], end_tick=TPB * 160)
    assert tempo_map(path) == [(0.0, pytest.approx(120.0)), (pytest.approx(20.0), pytest.approx(90.0))]
    with pytest.raises(SongError, match="tempo not constant within 0-30 s"):
        midi_excerpt(path, start_s=0.0, seconds=30.0)
    assert midi_excerpt(path, start_s=25.0, seconds=30.0).tempo_bpm == pytest.approx(90.0, rel=1e-4)


def test_an_excerpt_longer_than_the_file_is_refused(tmp_path):
    path = tmp_path / "short.mid"
    write_midi(path, tempi=[(0, 120.0)], notes=[], end_tick=TPB * 20)  # 10 s
    with pytest.raises(SongError, match="shorter than the excerpt"):
        midi_excerpt(path, seconds=30.0)


def test_note_onsets_are_the_excerpts_note_ons_in_quarter_notes(tmp_path):
    path = tmp_path / "notes.mid"
    # 120 BPM: a quarter is 0.5 s. Notes every dotted quarter (1.5 quarters) from 0 to 78 quarters (39 s).
    ticks = [int(TPB * 1.5 * k) for k in range(53)]
    write_midi(path, tempi=[(0, 120.0)], notes=ticks + ticks[14:17], end_tick=TPB * 80)  # repeats count once
    ex = midi_excerpt(path, start_s=10.0, seconds=20.0)  # quarters 20 .. 60
    onsets = note_onsets(ex)
    expected = [1.5 * k for k in range(53) if 20.0 <= 1.5 * k < 60.0]
    np.testing.assert_allclose(onsets, expected)
    assert (onsets[0], onsets[-1], len(onsets)) == (21.0, 58.5, 26)
