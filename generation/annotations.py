"""Human annotations in the Harmonix Set layout.

A Harmonix-style annotation folder holds, per song `NAME`:
- `beats_and_downbeats/NAME.txt` (or `beats/NAME.txt`): rows `time beat_in_bar [bar]`,
  time in seconds, beat_in_bar counting from 1 (1 = downbeat);
- `segments/NAME.txt`: rows `time label`, the last row labelled `end`.
Fields are separated by spaces or tabs. Verse and chorus segments become clips;
tempo is 60 / median inter-beat interval (BPM); downbeats are the beats with
beat_in_bar == 1; beats per bar is the most common maximum beat_in_bar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generation.errors import AnnotationError

CLIP_SEGMENT = re.compile(r"^(verse|chorus)\d*$", re.IGNORECASE)



@dataclass(frozen=True)
class Beat:
    time_s: float
    beat_in_bar: int


@dataclass(frozen=True)
class Segment:
    """A labelled span of a song, in seconds from the song start."""

    start_s: float
    end_s: float
    label: str

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class SongAnnotation:
    beats: tuple[Beat, ...]
    segments: tuple[Segment, ...]

    def clip_segments(self) -> list[Segment]:
        """Verse and chorus segments, the ones that become clips."""
        return [s for s in self.segments if CLIP_SEGMENT.match(s.label)]

    def window(self, start_s: float, end_s: float) -> "BeatWindow":
        """Beats inside [start_s, end_s), re-timed from `start_s`."""
        inside = [b for b in self.beats if start_s <= b.time_s < end_s]
        if len(inside) < 2:
            raise AnnotationError(f"fewer than 2 annotated beats between {start_s:.2f} s and {end_s:.2f} s")
        times = np.array([b.time_s for b in inside])
        tempo_bpm = float(60.0 / np.median(np.diff(times)))
        counts = [b.beat_in_bar for b in self.beats]
        beats_per_bar = _beats_per_bar(counts)
        return BeatWindow(
            tempo_bpm=tempo_bpm,
            beats=[round(b.time_s - start_s, 6) for b in inside],
            downbeats=[round(b.time_s - start_s, 6) for b in inside if b.beat_in_bar == 1],
            beats_per_bar=beats_per_bar,
        )


@dataclass(frozen=True)
class BeatWindow:
    tempo_bpm: float
    beats: list[float]
    downbeats: list[float]
    beats_per_bar: int


def _beats_per_bar(counts: list[int]) -> int:
    """Most common bar length, read from the beat_in_bar value before each downbeat."""
    lengths = [counts[i - 1] for i in range(1, len(counts)) if counts[i] == 1 and counts[i - 1] > 1]
    if not lengths:
        return max(counts) if counts else 4
    values, freq = np.unique(lengths, return_counts=True)
    return int(values[np.argmax(freq)])


def _rows(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: cannot read annotation file ({exc})") from None
    return [line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def read_beats(path: Path) -> tuple[Beat, ...]:
    """Parse a beats file (rows `time beat_in_bar [bar]`)."""
    beats = []
    for n, row in enumerate(_rows(path), start=1):
        try:
            beats.append(Beat(float(row[0]), int(float(row[1]))))
        except (IndexError, ValueError):
            raise AnnotationError(f"{path}:{n}: expected 'time beat_in_bar [bar]', got {' '.join(row)!r}") from None
    if len(beats) < 2:
        raise AnnotationError(f"{path}: fewer than 2 beats")
    if any(b2.time_s <= b1.time_s for b1, b2 in zip(beats, beats[1:])):
        raise AnnotationError(f"{path}: beat times are not increasing")
    return tuple(beats)


def read_segments(path: Path) -> tuple[Segment, ...]:
    """Parse a segments file (rows `time label`, last row `end`)."""
    rows = _rows(path)
    points: list[tuple[float, str]] = []
    for n, row in enumerate(rows, start=1):
        try:
            points.append((float(row[0]), row[1].lower() if len(row) > 1 else ""))
        except (IndexError, ValueError):
            raise AnnotationError(f"{path}:{n}: expected 'time label', got {' '.join(row)!r}") from None
    if not points or points[-1][1] != "end":
        raise AnnotationError(f"{path}: the last row must be labelled 'end'")
    return tuple(
        Segment(start, end, label) for (start, label), (end, _) in zip(points, points[1:]) if end > start
    )


def find_annotation(annotations_dir: Path, song_name: str) -> SongAnnotation:
    """Load the beats and segments of `song_name` from a Harmonix-style folder."""
    beats_file = _first_existing(
        annotations_dir / "beats_and_downbeats" / f"{song_name}.txt",
        annotations_dir / "beats" / f"{song_name}.txt",
    )
    segments_file = _first_existing(annotations_dir / "segments" / f"{song_name}.txt")
    if beats_file is None or segments_file is None:
        raise AnnotationError(
            f"{song_name}: no annotation in {annotations_dir} "
            "(expected beats_and_downbeats/NAME.txt and segments/NAME.txt)"
        )
    return SongAnnotation(read_beats(beats_file), read_segments(segments_file))


def _first_existing(*paths: Path) -> Path | None:
    return next((p for p in paths if p.is_file()), None)
