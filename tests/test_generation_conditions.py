"""Candidate conditions: the paper's rules, checked from the drawn records (no audio needed)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from generation.conditions import (
    DURATION_RANGE_S,
    MAX_OFFSET_S,
    MIN_VOCAL_LEVEL_DB,
    CandidateSpec,
    ClipInfo,
    Condition,
    draw_candidate,
    draw_candidates,
    qualifying_stems,
    tempo_ratio,
)
from generation.errors import ConditionError
from generation.keys import ALL_KEYS, Key, key_distance, key_shift_semitones

STEMS = {"vocal": Path("v.wav"), "harmonic": Path("h.wav"), "percussion": Path("p.wav")}


def clip(clip_id: int, key: str, tempo_bpm: float, *, downbeat_s: float = 0.5, stems: dict | None = None) -> ClipInfo:
    return ClipInfo(id=clip_id, key=Key.parse(key), tempo_bpm=tempo_bpm, downbeats=(downbeat_s, downbeat_s + 2.0),
                    duration_s=30.0, stems=STEMS if stems is None else stems)


@pytest.fixture(scope="module")
def collection() -> list[ClipInfo]:
    """48 clips: all 24 keys, each at a slow and a fast tempo (70..160 BPM)."""
    tempi = [70 + 90 * (i / 47) for i in range(48)]
    return [clip(100 + i, ALL_KEYS[i % 24].label, round(tempi[(i * 7) % 48], 1), downbeat_s=0.1 + 0.02 * i)
            for i in range(48)]


def by_id(clips: list[ClipInfo]) -> dict[int, ClipInfo]:
    return {c.id: c for c in clips}


# -- conventions ------------------------------------------------------------

def test_key_shift_is_positive_when_the_harmonic_stem_must_go_up() -> None:
    assert key_shift_semitones(Key.parse("C major"), Key.parse("D major")) == 2
    assert key_shift_semitones(Key.parse("D major"), Key.parse("C major")) == -2


def test_key_distance_compares_relative_majors() -> None:
    assert key_shift_semitones(Key.parse("A minor"), Key.parse("C major")) == 0
    assert key_shift_semitones(Key.parse("E minor"), Key.parse("A major")) == 2  # G major set up to A major
    assert key_distance(Key.parse("C major"), Key.parse("F# major")) == 6
    assert key_shift_semitones(Key.parse("C major"), Key.parse("F# major")) == -6  # tritone goes down


def test_tempo_ratio_is_seed_tempo_over_stem_tempo() -> None:
    seed_clip, slower = clip(1, "C", 120.0), clip(2, "C", 100.0)
    assert tempo_ratio(seed_clip, slower) == pytest.approx(1.2)  # the slower stem is sped up by 1.2


def test_matched_tempo_bounds_are_inclusive() -> None:
    seed_clip = clip(1, "C", 120.0)
    pool = [clip(2, "C", 100.0), clip(3, "C", 150.0), clip(4, "C", 99.0), clip(5, "C", 151.0)]
    q = qualifying_stems(seed_clip, pool, condition="matched")
    assert [c.id for c in q.percussion] == [2, 3]


def test_matched_harmonic_keys_stop_at_three_semitones() -> None:
    seed_clip = clip(1, "C major", 120.0)
    pool = [clip(10 + i, k.label, 120.0) for i, k in enumerate(ALL_KEYS)]
    q = qualifying_stems(seed_clip, pool, condition="matched")
    distances = sorted({key_distance(c.key, seed_clip.key) for c in q.harmonic})
    assert distances == [0, 1, 2, 3]
    assert len(q.harmonic) == 2 * 7  # 7 pitch-class sets within ±3, each as major and as minor


# -- rules per condition, from the records ------------------------------------

def test_original_uses_the_seed_clip_unadjusted(collection) -> None:
    result = draw_candidates(collection, collection, condition="original", count=10, seed=3)
    for spec in result.candidates:
        assert spec.vocal_clip == spec.harmonic_clip == spec.percussion_clip
        assert spec.harmonic_shift_semitones == 0
        assert (spec.harmonic_ratio, spec.percussion_ratio) == (1.0, 1.0)
        assert spec.offsets_s == {"harmonic": 0.0, "percussion": 0.0}


def test_matched_candidates_obey_key_and_tempo_rules(collection) -> None:
    clips = by_id(collection)
    result = draw_candidates(collection, collection, condition="matched", count=60, seed=7)
    assert len(result.candidates) == 60
    for spec in result.candidates:
        seed_clip, h, p = clips[spec.vocal_clip], clips[spec.harmonic_clip], clips[spec.percussion_clip]
        assert seed_clip.id not in (h.id, p.id)
        assert key_distance(h.key, seed_clip.key) <= 3
        assert key_distance(h.key.transposed(spec.harmonic_shift_semitones), seed_clip.key) == 0
        assert 0.8 <= spec.harmonic_ratio <= 1.2 and 0.8 <= spec.percussion_ratio <= 1.2
        assert h.tempo_bpm * spec.harmonic_ratio == pytest.approx(seed_clip.tempo_bpm)
        assert p.tempo_bpm * spec.percussion_ratio == pytest.approx(seed_clip.tempo_bpm)
        assert spec.offsets_s == {"harmonic": 0.0, "percussion": 0.0}


def test_unmatched_key_keeps_the_tempo_rule_but_never_shifts(collection) -> None:
    clips = by_id(collection)
    result = draw_candidates(collection, collection, condition="unmatched_key", count=40, seed=8)
    for spec in result.candidates:
        seed_clip, h = clips[spec.vocal_clip], clips[spec.harmonic_clip]
        assert spec.harmonic_shift_semitones == 0
        assert key_distance(h.key, seed_clip.key) >= 1
        assert 0.8 <= spec.harmonic_ratio <= 1.2 and 0.8 <= spec.percussion_ratio <= 1.2
        assert spec.offsets_s == {"harmonic": 0.0, "percussion": 0.0}


def test_unmatched_tempo_does_not_stretch_and_offsets_one_stem_within_a_second(collection) -> None:
    clips = by_id(collection)
    result = draw_candidates(collection, collection, condition="unmatched_tempo", count=60, seed=9)
    offset_roles = set()
    for spec in result.candidates:
        seed_clip, h = clips[spec.vocal_clip], clips[spec.harmonic_clip]
        assert (spec.harmonic_ratio, spec.percussion_ratio) == (1.0, 1.0)
        assert key_distance(h.key.transposed(spec.harmonic_shift_semitones), seed_clip.key) == 0
        nonzero = [role for role, v in spec.offsets_s.items() if v != 0.0]
        assert len(nonzero) == 1 and abs(spec.offsets_s[nonzero[0]]) <= MAX_OFFSET_S
        offset_roles.add(nonzero[0])
        assert abs(tempo_ratio(seed_clip, clips[spec.percussion_clip]) - 1) >= 0.03
    assert offset_roles == {"harmonic", "percussion"}  # either stem may be the one offset


def test_unmatched_both_neither_shifts_nor_stretches(collection) -> None:
    clips = by_id(collection)
    result = draw_candidates(collection, collection, condition="unmatched_both", count=40, seed=10)
    for spec in result.candidates:
        assert spec.harmonic_shift_semitones == 0
        assert (spec.harmonic_ratio, spec.percussion_ratio) == (1.0, 1.0)
        assert key_distance(clips[spec.harmonic_clip].key, clips[spec.vocal_clip].key) >= 1
        assert max(abs(v) for v in spec.offsets_s.values()) <= MAX_OFFSET_S


def test_accompaniment_comes_from_the_other_collection(collection) -> None:
    vocals, other = collection[:24], collection[24:]
    result = draw_candidates(vocals, other, condition="matched", count=30, seed=11)
    other_ids = {c.id for c in other}
    assert all(s.harmonic_clip in other_ids and s.percussion_clip in other_ids for s in result.candidates)
    assert all(s.vocal_clip not in other_ids for s in result.candidates)


def test_no_excerpt_of_the_seeds_own_recording_accompanies_it() -> None:
    """Several clips of one file (clips-per-file, verse and chorus) share key and tempo: never a mashup of one song."""
    song_a = [replace(clip(i, "C major", 120.0), recording="a" * 64) for i in (1, 2, 3)]
    song_b = replace(clip(4, "D major", 118.0), recording="b" * 64)
    untagged = [clip(5, "C major", 121.0), clip(6, "C major", 119.0)]  # no recording known: each its own
    pool = [*song_a, song_b, *untagged]
    for condition in ("matched", "unmatched_key", "unmatched_tempo", "unmatched_both"):
        q = qualifying_stems(song_a[0], pool, condition=condition)
        assert not {c.id for c in q.harmonic + q.percussion} & {1, 2, 3}, condition
    assert {c.id for c in qualifying_stems(song_a[0], pool, condition="matched").harmonic} == {4, 5, 6}
    assert {c.id for c in qualifying_stems(untagged[0], pool, condition="matched").harmonic} == {1, 2, 3, 4, 6}
    drawn = draw_candidates(pool, pool, condition="matched", count=20, seed=3).candidates
    recording = {c.id: c.recording or str(c.id) for c in pool}
    assert len(drawn) == 20
    assert all(recording[s.vocal_clip] not in {recording[s.harmonic_clip], recording[s.percussion_clip]} for s in drawn)
    alone = [replace(clip(i, "C major", 120.0), recording="a" * 64) for i in (1, 2)]
    with pytest.raises(ConditionError, match="no matched candidate exists"):
        draw_candidates(alone, alone, condition="matched", count=1, seed=0)


def test_a_clip_whose_vocal_lies_far_below_its_mix_is_never_a_vocal_seed_but_still_accompanies(collection) -> None:
    """Instrumental music: Spleeter's "vocal" of it is leakage, 30 dB or more below the mix. It gives no vocal seed."""
    quiet_ids = {c.id for c in collection[::3]}
    pool = [replace(c, vocal_level_db=-40.0 if c.id in quiet_ids else -12.0) for c in collection]
    pool[1] = replace(pool[1], vocal_level_db=MIN_VOCAL_LEVEL_DB)  # the bound itself still sings
    pool[2] = replace(pool[2], vocal_level_db=None)  # not measured: counts as a voice
    assert [c.sings for c in pool[:4]] == [False, True, True, False]
    vocals, accompaniment = set(), set()
    for condition in Condition:
        drawn = draw_candidates(pool, pool, condition=condition, count=20, seed=5).candidates
        vocals |= {s.vocal_clip for s in drawn}
        accompaniment |= {c for s in drawn for c in (s.harmonic_clip, s.percussion_clip)}
    assert vocals and not vocals & quiet_ids
    assert accompaniment & quiet_ids  # their harmonic and percussion stems still accompany others
    with pytest.raises(ConditionError, match=f"clip {pool[0].id} cannot be a vocal seed: its vocal stem is 40 dB below"):
        draw_candidates(pool, pool, condition="matched", count=1, seed=0, vocal_id=pool[0].id)
    with pytest.raises(ConditionError, match="40 dB below its mix"):
        draw_candidate(pool[0], pool, condition="matched", seed=0)
    taken = {s.vocal_clip for s in draw_candidates(pool, pool, condition="matched", count=60, seed=5,
                                                   instrumental_seeds=True).candidates}
    assert taken & quiet_ids  # training data may take them on request
    assert draw_candidate(pool[0], pool, condition="matched", seed=0, instrumental_seeds=True) is not None
    silent = [replace(c, vocal_level_db=-60.0) for c in collection[:4]]
    with pytest.raises(ConditionError, match="no seed clip has an audible vocal: the vocal stems of all 4 lie more than 30 dB"):
        draw_candidates(silent, collection, condition="matched", count=1, seed=0)


# -- reproducibility and duplicates ---------------------------------------------

def test_the_same_seed_draws_the_same_candidates(collection) -> None:
    a = draw_candidates(collection, collection, condition="unmatched_tempo", count=20, seed=42)
    b = draw_candidates(collection, collection, condition="unmatched_tempo", count=20, seed=42)
    c = draw_candidates(collection, collection, condition="unmatched_tempo", count=20, seed=43)
    assert a == b
    assert [s.spec_key for s in a.candidates] != [s.spec_key for s in c.candidates]


def test_a_candidate_is_drawn_again_from_its_own_seed(collection) -> None:
    result = draw_candidates(collection, collection, condition="unmatched_both", count=5, seed=5)
    clips = by_id(collection)
    for spec in result.candidates:
        again = draw_candidate(clips[spec.vocal_clip], collection, condition=spec.condition, seed=spec.seed)
        assert again == spec


def test_no_triple_is_drawn_twice_and_stored_ones_are_excluded(collection) -> None:
    seed_clip = by_id(collection)[100]
    n_pairs = qualifying_stems(seed_clip, collection, condition="matched").pair_count
    first = draw_candidates(collection, collection, condition="matched", count=n_pairs - 5, seed=1, vocal_id=100)
    triples = [(s.vocal_clip, *s.pair) for s in first.candidates]
    assert len(set(triples)) == n_pairs - 5
    more = draw_candidates(collection, collection, condition="matched", count=5, seed=1, vocal_id=100,
                           exclude=first.candidates)
    assert not {(s.vocal_clip, *s.pair) for s in more.candidates} & set(triples)
    with pytest.raises(ConditionError, match=f"only {n_pairs - 5} distinct matched candidates exist for vocal clip 100"):
        draw_candidates(collection, collection, condition="matched", count=n_pairs - 4, seed=1, vocal_id=100,
                        exclude=more.candidates)


@pytest.mark.parametrize("condition", ["matched", "unmatched_key", "unmatched_tempo", "unmatched_both"])
def test_a_whole_accompaniment_takes_both_stems_from_one_qualifying_clip(collection, condition) -> None:
    result = draw_candidates(collection, collection, condition=condition, count=30, seed=3, whole_accompaniment=True)
    clips = by_id(collection)
    used: dict[int, set[tuple[int, int]]] = {}
    for spec in result.candidates:
        assert spec.harmonic_clip == spec.percussion_clip != spec.vocal_clip
        q = qualifying_stems(clips[spec.vocal_clip], collection, condition=condition)
        assert clips[spec.harmonic_clip] in q.harmonic and clips[spec.percussion_clip] in q.percussion
        again = draw_candidate(clips[spec.vocal_clip], collection, condition=condition, seed=spec.seed,
                               exclude_pairs=used.setdefault(spec.vocal_clip, set()), whole_accompaniment=True)
        assert again == spec
        used[spec.vocal_clip].add(spec.pair)
    # the ordinary draw mostly pairs stems of two clips, so the option is what makes them one
    ordinary = draw_candidates(collection, collection, condition=condition, count=30, seed=3).candidates
    assert sum(s.harmonic_clip == s.percussion_clip for s in ordinary) < 10


def test_whole_accompaniments_run_out_where_no_clip_qualifies_for_both_roles() -> None:
    seed_clip = clip(1, "C major", 120.0)
    # clip 2 is in key but too fast for either role, clip 3 off key but in tempo (percussion only), clip 4 both
    pool = [seed_clip, clip(2, "C major", 160.0), clip(3, "F# major", 120.0), clip(4, "D major", 118.0)]
    q = qualifying_stems(seed_clip, pool, condition="matched")
    assert [c.id for c in q.harmonic] == [4] and [c.id for c in q.percussion] == [3, 4]
    assert [(h.id, p.id) for h, p in q.pairs(whole_accompaniment=True)] == [(4, 4)]
    one = draw_candidates([seed_clip], pool, condition="matched", count=1, seed=0, whole_accompaniment=True)
    assert one.candidates[0].pair == (4, 4)
    with pytest.raises(ConditionError, match="only 1 distinct matched candidates with a whole accompaniment"):
        draw_candidates([seed_clip], pool, condition="matched", count=2, seed=0, whole_accompaniment=True)
    # unmatched_tempo: clip 5 (in key, at the seed's tempo) is harmonic only, clip 6 (off key, 100 BPM)
    # percussion only: the ordinary draw pairs them, a whole accompaniment has no clip to take
    apart = [seed_clip, clip(5, "C major", 120.0), clip(6, "F# major", 100.0)]
    assert draw_candidates([seed_clip], apart, condition="unmatched_tempo", count=1, seed=0).candidates[0].pair == (5, 6)
    with pytest.raises(ConditionError, match="no clip qualifies for both roles at once"):
        draw_candidates([seed_clip], apart, condition="unmatched_tempo", count=1, seed=0, whole_accompaniment=True)


def test_records_round_trip_through_their_dict(collection) -> None:
    spec = draw_candidates(collection, collection, condition="unmatched_tempo", count=1, seed=2).candidates[0]
    assert CandidateSpec.from_dict(spec.to_dict() | {"id": 9, "mix_path": None}) == spec
    assert CandidateSpec.from_dict(spec.to_dict()).spec_key == spec.spec_key


def test_duration_defaults_to_the_seed_length_within_25_to_60_s() -> None:
    short = ClipInfo(id=1, key=Key.parse("C"), tempo_bpm=120, downbeats=(0.0,), duration_s=20.0, stems=STEMS)
    long_ = ClipInfo(id=2, key=Key.parse("C"), tempo_bpm=120, downbeats=(0.0,), duration_s=90.0, stems=STEMS)
    drawn_short = draw_candidate(short, [], condition="original", seed=0)
    drawn_long = draw_candidate(long_, [], condition="original", seed=0)
    assert drawn_short is not None and drawn_short.duration_s == DURATION_RANGE_S[0]
    assert drawn_long is not None and drawn_long.duration_s == DURATION_RANGE_S[1]
    with pytest.raises(ConditionError, match="duration_s must be in 25..60"):
        draw_candidates([short], [], condition="original", count=1, seed=0, duration_s=61)


# -- when nothing qualifies --------------------------------------------------------

def test_seeds_without_qualifying_stems_are_skipped_and_counted() -> None:
    lonely = clip(1, "C major", 60.0)  # nothing in the pool is within 0.8..1.2 of 60 BPM
    seeds = [lonely, clip(2, "C major", 120.0), clip(3, "D major", 118.0)]
    result = draw_candidates(seeds, seeds, condition="matched", count=2, seed=0)
    assert {s.vocal_clip for s in result.candidates} <= {2, 3}
    assert len(result.candidates) == 2
    outcomes = [draw_candidates(seeds, seeds, condition="matched", count=2, seed=s) for s in range(20)]
    assert {r.skipped_seeds for r in outcomes} == {0, 1}  # the lonely seed is skipped when drawn, once at most
    # seeds 2 and 3 have one pair each (the other clip): drawing one of them again finds it used up
    assert {r.exhausted_seeds for r in outcomes} <= {0, 1}


def test_no_qualifying_stems_gives_a_clear_error_not_an_endless_loop() -> None:
    seeds = [clip(1, "C major", 60.0), clip(2, "F# major", 150.0)]
    with pytest.raises(ConditionError, match="no matched candidate exists for the 2 seed clip"):
        draw_candidates(seeds, seeds, condition="matched", count=5, seed=0)


def test_asking_for_more_than_exist_says_how_many_do() -> None:
    seeds = [clip(1, "C major", 120.0), clip(2, "D major", 118.0), clip(3, "A minor", 110.0)]
    # each seed has 2 qualifying harmonic x 2 percussion clips: 12 distinct matched candidates in all
    assert len(draw_candidates(seeds, seeds, condition="matched", count=12, seed=4).candidates) == 12
    with pytest.raises(ConditionError, match="only 12 distinct matched candidates"):
        draw_candidates(seeds, seeds, condition="matched", count=13, seed=4)


def test_original_needs_all_three_stems() -> None:
    no_drums = clip(1, "C", 120.0, stems={"vocal": Path("v.wav"), "harmonic": Path("h.wav")})
    with pytest.raises(ConditionError, match="original candidate needs"):
        draw_candidates([no_drums], [], condition="original", count=1, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"condition": "remix"}, "unknown condition 'remix'"),
        ({"count": 0}, "count must be a positive integer"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"vocal_id": 999}, "vocal clip 999 is not among"),
    ],
)
def test_bad_requests_are_refused_before_drawing(collection, kwargs, message) -> None:
    args = {"condition": "matched", "count": 1, "seed": 0} | kwargs
    with pytest.raises(ConditionError, match=message):
        draw_candidates(collection, collection, **args)


def test_a_spec_refuses_out_of_range_values() -> None:
    good: dict[str, Any] = {
        "vocal_clip": 1, "harmonic_clip": 2, "percussion_clip": 3, "condition": "matched",
        "harmonic_shift_semitones": 2, "harmonic_ratio": 1.1, "percussion_ratio": 0.9,
        "offsets_s": {"harmonic": 0.0, "percussion": 0.0}, "duration_s": 30.0, "seed": 1,
    }
    assert CandidateSpec(**good).condition is Condition.MATCHED
    for field, value, message in [
        ("harmonic_shift_semitones", 7, "harmonic_shift_semitones"),
        ("offsets_s", {"harmonic": 1.5, "percussion": 0.0}, "within ±1 s"),
        ("duration_s", 10.0, "duration_s must be in"),
        ("percussion_ratio", 0.0, "percussion_ratio"),
    ]:
        with pytest.raises(ConditionError, match=message):
            CandidateSpec(**(good | {field: value}))


def test_every_condition_draws_in_a_mixed_collection(collection) -> None:
    for condition, seed in itertools.product(Condition, [0]):
        result = draw_candidates(collection, collection, condition=condition, count=5, seed=seed)
        assert len(result.candidates) == 5 and all(s.condition is condition for s in result.candidates)
