"""Harmonix-layout annotations: verses and choruses become clips with annotated beats."""

import pytest

from generation.annotations import find_annotation, read_beats, read_segments
from generation.errors import AnnotationError


def _write_song(root, name="0001_song", bpm=120.0, bars=40, beats_per_bar=4):
    (root / "beats_and_downbeats").mkdir(parents=True, exist_ok=True)
    (root / "segments").mkdir(exist_ok=True)
    period = 60.0 / bpm
    rows = []
    for i in range(bars * beats_per_bar):
        rows.append(f"{0.5 + i * period:.4f}\t{i % beats_per_bar + 1}\t{i // beats_per_bar + 1}")
    (root / "beats_and_downbeats" / f"{name}.txt").write_text("\n".join(rows) + "\n")
    (root / "segments" / f"{name}.txt").write_text("0.0 intro\n8.5 verse\n40.5 chorus\n56.5 chorusinst\n72.5 outro\n80.0 end\n")
    return root


def test_verse_and_chorus_become_clips_with_annotated_tempo(tmp_path):
    ann = find_annotation(_write_song(tmp_path, bpm=96.0, beats_per_bar=3), "0001_song")
    labels = [s.label for s in ann.clip_segments()]
    assert labels == ["verse", "chorus"]  # intro, chorusinst and outro are not clips
    verse = ann.clip_segments()[0]
    window = ann.window(verse.start_s, verse.end_s)
    assert window.tempo_bpm == pytest.approx(96.0, rel=1e-3)
    assert window.beats_per_bar == 3
    assert window.beats[0] >= 0.0 and window.beats[-1] < verse.duration_s
    # downbeats are every third beat
    assert window.downbeats == window.beats[window.beats.index(window.downbeats[0])::3]


def test_space_separated_files_parse_too(tmp_path):
    f = tmp_path / "b.txt"
    f.write_text("0.5 1 1\n1.0 2 1\n1.5 1 2\n")
    assert [b.beat_in_bar for b in read_beats(f)] == [1, 2, 1]


def test_segments_must_end_with_end(tmp_path):
    f = tmp_path / "s.txt"
    f.write_text("0.0 intro\n10.0 verse\n")
    with pytest.raises(AnnotationError, match="end"):
        read_segments(f)


def test_missing_annotation_names_the_song(tmp_path):
    with pytest.raises(AnnotationError, match="nosuch"):
        find_annotation(tmp_path, "nosuch")


def test_bad_row_names_file_and_line(tmp_path):
    f = tmp_path / "b.txt"
    f.write_text("0.5 1 1\nabc x\n")
    with pytest.raises(AnnotationError, match=r"b\.txt:2"):
        read_beats(f)
