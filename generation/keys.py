"""Musical keys: parsing, labels and the semitone distance used by the matching rules.

Rule for major/minor (written down because the paper leaves it open): a key is
compared through its **relative major**, i.e. through its pitch-class set.
A minor and C major are the same set, distance 0; A minor and G major are two
semitones apart. Shifting a stem by the returned number of semitones (positive
= up) makes its pitch-class set equal to the target's, which is what a
harmonic stem needs to sit under a vocal; the mode label of the result is the
target's if the modes agree and the relative one otherwise.

Distances run over the circle of 12 semitones the shortest way, in −6..+5
(a tritone is reported as −6: shifting down is preferred because it shortens
formants less audibly on average; any fixed choice would do, this one is
tested).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from generation.errors import KeyLabelError

PITCH_CLASSES: tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLATS = {"Db": 1, "Eb": 3, "Gb": 6, "Ab": 8, "Bb": 10, "Cb": 11, "Fb": 4}
_SHARPS_EXTRA = {"E#": 5, "B#": 0}
MODES: tuple[str, ...] = ("major", "minor")



def pitch_class(name: str) -> int:
    """Pitch class 0..11 (C = 0) of a note name such as 'C#', 'Db' or 'a'."""
    n = name.strip()
    if not n:
        raise KeyLabelError("empty note name")
    n = n[0].upper() + n[1:]
    if n in PITCH_CLASSES:
        return PITCH_CLASSES.index(n)
    if n in _FLATS:
        return _FLATS[n]
    if n in _SHARPS_EXTRA:
        return _SHARPS_EXTRA[n]
    raise KeyLabelError(f"unknown note name {name!r}")


@dataclass(frozen=True)
class Key:
    """A key: tonic pitch class (0..11, C = 0) and mode ('major' | 'minor')."""

    tonic: int
    mode: str

    def __post_init__(self) -> None:
        if not 0 <= int(self.tonic) <= 11:
            raise KeyLabelError(f"tonic must be 0..11, got {self.tonic}")
        if self.mode not in MODES:
            raise KeyLabelError(f"mode must be major or minor, got {self.mode!r}")

    @property
    def label(self) -> str:
        """Human label such as 'A minor' (sharps, never flats)."""
        return f"{PITCH_CLASSES[self.tonic]} {self.mode}"

    @property
    def relative_major(self) -> int:
        """Pitch class of the major key sharing this key's pitch-class set."""
        return self.tonic if self.mode == "major" else (self.tonic + 3) % 12

    def transposed(self, semitones: int) -> "Key":
        """The same mode moved by `semitones` (positive = up)."""
        return Key((self.tonic + semitones) % 12, self.mode)

    @classmethod
    def parse(cls, label: str) -> "Key":
        """Parse 'A minor', 'Bb major', 'f# min', 'C' (major), 'Am' (minor)."""
        text = label.strip()
        m = re.fullmatch(r"([A-Ga-g][#b]?)\s*(major|minor|maj|min|m)?", text, flags=re.IGNORECASE)
        if not m:
            raise KeyLabelError(f"cannot parse key label {label!r}")
        tonic = pitch_class(m.group(1))
        word = (m.group(2) or "major")
        mode = "major" if word.lower() in ("major", "maj") else "minor"
        if word == "M":  # 'CM' conventionally means C major
            mode = "major"
        return cls(tonic, mode)

    def __str__(self) -> str:
        return self.label


ALL_KEYS: tuple[Key, ...] = tuple(Key(t, m) for m in MODES for t in range(12))


def wrap_semitones(delta: int) -> int:
    """Fold a semitone difference into −6..+5 (the shortest way round)."""
    return (int(delta) + 6) % 12 - 6


def key_shift_semitones(source: Key, target: Key) -> int:
    """Semitones (−6..+5, positive = up) that move `source`'s pitch-class set onto `target`'s."""
    return wrap_semitones(target.relative_major - source.relative_major)


def key_distance(a: Key, b: Key) -> int:
    """Unsigned semitone distance 0..6 between two keys' pitch-class sets."""
    return abs(key_shift_semitones(a, b))
