"""Key parsing and the semitone-distance rule the matching conditions rely on."""

import pytest

from generation.errors import KeyLabelError
from generation.keys import ALL_KEYS, Key, key_distance, key_shift_semitones, wrap_semitones


def test_it_parses_common_spellings():
    assert Key.parse("A minor") == Key(9, "minor")
    assert Key.parse("Bb major") == Key(10, "major")
    assert Key.parse("f# min") == Key(6, "minor")
    assert Key.parse("Am") == Key(9, "minor")
    assert Key.parse("C") == Key(0, "major")
    assert Key.parse("Db major") == Key.parse("C# major")


def test_labels_round_trip_for_all_24_keys():
    assert len(set(ALL_KEYS)) == 24
    for key in ALL_KEYS:
        assert Key.parse(key.label) == key


def test_it_rejects_nonsense():
    for bad in ["H major", "", "C dorian", "12"]:
        with pytest.raises(KeyLabelError):
            Key.parse(bad)


def test_relative_major_and_minor_are_distance_zero():
    assert key_distance(Key.parse("A minor"), Key.parse("C major")) == 0
    assert key_shift_semitones(Key.parse("E minor"), Key.parse("G major")) == 0


def test_shift_sign_is_positive_up_and_takes_the_short_way():
    c, d, b = Key.parse("C major"), Key.parse("D major"), Key.parse("B major")
    assert key_shift_semitones(c, d) == 2  # C up two semitones is D
    assert key_shift_semitones(d, c) == -2
    assert key_shift_semitones(c, b) == -1  # down one, not up eleven
    assert key_shift_semitones(c, Key.parse("F# major")) == -6  # tritone folds to -6


def test_shifting_by_the_result_lands_on_the_target_set():
    for src in ALL_KEYS:
        for dst in ALL_KEYS:
            shift = key_shift_semitones(src, dst)
            assert -6 <= shift <= 5
            assert src.transposed(shift).relative_major == dst.relative_major


def test_wrap_covers_the_circle():
    assert [wrap_semitones(d) for d in range(-7, 8)] == [5, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, -6, -5]
