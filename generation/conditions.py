"""Mashup candidates: which stems a vocal seed is combined with, and how they are adjusted.

A candidate is (vocal seed clip, harmonic stem clip, percussion stem clip)
plus the adjustments that the renderer applies. The rules follow the paper
(Huang et al., AAAI 2021, "Mashup generation pipeline") and SPEC §2; where the
paper leaves a choice open, the choice is written here and tested.

Conventions
-----------
* **Key distance** compares *relative majors* (pitch-class sets), see
  :mod:`generation.keys`: A minor and C major are distance 0.
  ``harmonic_shift_semitones = key_shift_semitones(harmonic.key, seed.key)``,
  in −6..+5, positive = shift the harmonic stem **up**; after the shift the
  harmonic stem's pitch-class set equals the seed's.
* **Tempo ratio** ``ratio = seed.tempo_bpm / stem.tempo_bpm``: the factor by
  which the stem's tempo is multiplied (ratio > 1 speeds the stem up and
  shortens it: its length becomes ``n / ratio``). A stem *qualifies* on tempo
  when ``0.8 <= ratio <= 1.2``.
* **Offset** ``offsets_s[role]``, seconds: the stem's (adjusted) first
  downbeat lands at ``seed first downbeat + offset``; positive = the stem
  comes **later** than the seed's downbeat.

Rules per condition (H = harmonic clip, P = percussion clip)
------------------------------------------------------------
* ``original``: H = P = the seed clip; shift 0, ratios 1, offsets 0.
* ``matched``: H within ±3 semitones of the seed **and** tempo ratio in
  [0.8, 1.2] (the paper says the unmatched-key harmonic stem "only satisfies
  the tempo constraint", so the matched one satisfies both, which also bounds
  how far it is stretched); P tempo ratio in [0.8, 1.2]. H shifted to the
  seed's key, both stretched to the seed's tempo, first downbeats aligned.
* ``unmatched_key``: key control off: H satisfies the tempo rule only and no
  shift is applied. Choice made here: H's key distance to the seed is at least
  1 semitone, otherwise about one draw in twelve would be key-matched by
  chance and a "negative" example would in fact be matched.
* ``unmatched_tempo``: tempo control off: no stretch (ratios 1), H satisfies
  the key rule and is shifted; the first downbeat of one accompaniment stem
  (harmonic or percussion, chosen at random) is offset by U(−1, 1) s. Choice
  made here: P's tempo differs from the seed's by at least 3 % (|ratio − 1| ≥
  0.03), the tolerance within which a tempo estimate counts as correct, so
  the drums do not run in tempo by chance.
* ``unmatched_both``: both of the above: no shift, no stretch, one offset;
  H key distance ≥ 1, P tempo off by ≥ 3 %, no other constraint.

The seed's own clip is never drawn as accompaniment outside ``original``
(clip ids are unique across collections, so this also holds when the
accompaniment comes from another collection), and neither is any other clip
of the seed's recording (`ClipInfo.recording`: the source file's SHA-256): a
mashup joins stems of different songs, and two excerpts of one recording
(``ingest --clips-per-file``, verse and chorus) share its instruments, key and
tempo, so a "matched" candidate built from them would be the original in all
but name, and an unmatched one would teach the networks to tell sections of
one song apart rather than songs.

Pairing: the paper picks the harmonic and the percussion stem separately, so
outside ``original`` they mostly come from two clips, while an original's
always come from one. A draw with ``whole_accompaniment=True`` takes both from
one other clip that qualifies for both roles (another song's whole
accompaniment under the vocal, the classic A-vs-B mashup), for studies of
such mashups; added to training DBs so that a coherent accompaniment alone
no longer marks an original, they measured worse (README, "Whole
accompaniments"), so no script adds them.

Randomness: :func:`draw_candidates` takes one seed; a master
``np.random.default_rng(seed)`` picks the vocal seeds and a per-candidate seed,
and each candidate's own choices (stem pair, which stem is offset, the
offset) come from ``np.random.default_rng(candidate.seed)``, so a candidate can
be drawn again from its record with :func:`draw_candidate`, and rendering is a
pure function of the record. No Django here.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from generation.errors import ConditionError
from generation.keys import Key, key_distance, key_shift_semitones

__all__ = [
    "DURATION_RANGE_S",
    "MAX_KEY_DISTANCE",
    "MAX_OFFSET_S",
    "ROLES",
    "TEMPO_RATIO_RANGE",
    "UNMATCHED_MIN_KEY_DISTANCE",
    "UNMATCHED_MIN_TEMPO_DEVIATION",
    "CandidateSpec",
    "ClipInfo",
    "Condition",
    "ConditionError",
    "DrawResult",
    "MIN_VOCAL_LEVEL_DB",
    "QualifyingStems",
    "draw_candidate",
    "draw_candidates",
    "qualifying_stems",
    "tempo_ratio",
]

ROLES: tuple[str, ...] = ("vocal", "harmonic", "percussion")
MAX_KEY_DISTANCE = 3  # semitones, |shift| <= 3 (paper: "within ±3 semitones")
TEMPO_RATIO_RANGE: tuple[float, float] = (0.8, 1.2)  # seed / stem tempo (paper)
UNMATCHED_MIN_KEY_DISTANCE = 1  # semitones: an unmatched-key harmonic stem is never in the seed's key
UNMATCHED_MIN_TEMPO_DEVIATION = 0.03  # |ratio - 1| for an unmatched-tempo percussion stem
MAX_OFFSET_S = 1.0  # paper: "offset randomly by ±1 second at most"
DURATION_RANGE_S: tuple[float, float] = (25.0, 60.0)  # paper: "between 25 and 60 seconds"
_SEED_MAX = 2**62  # per-candidate seeds fit a signed 64-bit database column
#: A clip is a vocal seed only if its vocal stem's RMS lies at most this far below its mix's (dB). Below it,
#: the "vocal" is what Spleeter leaves of an instrumental piece (leakage of lead instruments): on the
#: held-out real recordings (README) 6 of 31 clips sat 31–72 dB below their mix, and their originals,
#: scored low by every system, were most of PreMixNet-LSRO's average rank (8.2 with them, 3.8 without).
MIN_VOCAL_LEVEL_DB = -30.0



class Condition(str, enum.Enum):
    """How a candidate's accompaniment relates to its vocal seed (values are the stored labels)."""

    ORIGINAL = "original"
    MATCHED = "matched"
    UNMATCHED_KEY = "unmatched_key"
    UNMATCHED_TEMPO = "unmatched_tempo"
    UNMATCHED_BOTH = "unmatched_both"

    @classmethod
    def parse(cls, value: Condition | str) -> Condition:
        """The condition named `value` ('matched', 'unmatched_key', ...); ConditionError otherwise."""
        if isinstance(value, Condition):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            names = ", ".join(c.value for c in cls)
            raise ConditionError(f"unknown condition {value!r}; choose one of {names}") from None

    @property
    def label(self) -> str:
        """The name people read ('Unmatched Key'), as the admin and the demo's summary show it."""
        return self.value.replace("_", " ").title()

    @property
    def shifts_key(self) -> bool:
        """True when the harmonic stem is pitch-shifted to the seed's key."""
        return self in (Condition.MATCHED, Condition.UNMATCHED_TEMPO)

    @property
    def stretches_tempo(self) -> bool:
        """True when the accompaniment is time-stretched to the seed's tempo."""
        return self in (Condition.MATCHED, Condition.UNMATCHED_KEY)


#: The three negative conditions, in the order the paper lists them (a test set takes them in turn).
UNMATCHED: tuple[Condition, ...] = (Condition.UNMATCHED_KEY, Condition.UNMATCHED_TEMPO, Condition.UNMATCHED_BOTH)


@dataclass(frozen=True)
class ClipInfo:
    """What the candidate rules need to know about one clip.

    `id`: the clip's id (unique across collections). `key`: its key.
    `tempo_bpm` > 0. `downbeats`: downbeat times in seconds from the clip
    start, ascending (a clip without downbeats aligns on its start).
    `duration_s`: clip length in seconds. `stems`: role ('vocal' | 'harmonic'
    | 'percussion') → audio file; a clip lacking a role is never drawn for it.
    `recording`: identity of the source recording (its SHA-256); clips of one
    recording never accompany each other. Empty: the clip is its own recording.
    `vocal_level_db`: RMS of the vocal stem relative to the clip's mix (dB);
    None when not measured, which counts as audible.
    """

    id: int
    key: Key
    tempo_bpm: float
    downbeats: tuple[float, ...]
    duration_s: float
    stems: dict[str, Path] = field(default_factory=dict)
    recording: str = ""
    vocal_level_db: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, Key):
            raise ConditionError(f"clip {self.id}: key must be a generation.keys.Key, got {type(self.key).__name__}")
        if not (math.isfinite(float(self.tempo_bpm)) and float(self.tempo_bpm) > 0):
            raise ConditionError(f"clip {self.id}: tempo_bpm must be a positive number, got {self.tempo_bpm!r}")
        if not (math.isfinite(float(self.duration_s)) and float(self.duration_s) > 0):
            raise ConditionError(f"clip {self.id}: duration_s must be positive, got {self.duration_s!r}")
        downbeats = tuple(float(t) for t in self.downbeats)
        if any(not math.isfinite(t) or t < 0 for t in downbeats) or list(downbeats) != sorted(downbeats):
            raise ConditionError(f"clip {self.id}: downbeats must be ascending non-negative seconds")
        unknown = set(self.stems) - set(ROLES)
        if unknown:
            raise ConditionError(f"clip {self.id}: unknown stem roles {sorted(unknown)}; roles are {', '.join(ROLES)}")
        object.__setattr__(self, "downbeats", downbeats)
        object.__setattr__(self, "stems", {role: Path(p) for role, p in self.stems.items()})

    def __hash__(self) -> int:  # the stems dict is unhashable; equal clips share their id
        return hash(self.id)

    def same_recording(self, other: ClipInfo) -> bool:
        """True for the clip itself and for any other excerpt of its recording."""
        return other.id == self.id or (bool(self.recording) and other.recording == self.recording)

    @property
    def sings(self) -> bool:
        """True when the clip can be a vocal seed: it has a vocal stem, not far below its mix (MIN_VOCAL_LEVEL_DB)."""
        return "vocal" in self.stems and (self.vocal_level_db is None or self.vocal_level_db >= MIN_VOCAL_LEVEL_DB)

    def can_seed(self, *, instrumental: bool = False) -> bool:
        """:attr:`sings`, or with `instrumental` any clip with a vocal stem (more training data, never a test set)."""
        return self.sings or (instrumental and "vocal" in self.stems)

    def why_not_a_vocal_seed(self) -> str:
        """Why :attr:`sings` is False, as one sentence for an error message ('' when it is True)."""
        if "vocal" not in self.stems:
            return f"clip {self.id} has no vocal stem and cannot be a vocal seed"
        if not self.sings:
            return (f"clip {self.id} cannot be a vocal seed: its vocal stem is {-float(self.vocal_level_db or 0):.0f} dB "
                    f"below its mix (at most {-MIN_VOCAL_LEVEL_DB:g} dB counts as a voice; an instrumental piece)")
        return ""

    @property
    def first_downbeat_s(self) -> float:
        """Time of the first downbeat in seconds from the clip start (0.0 when none is known)."""
        return self.downbeats[0] if self.downbeats else 0.0


@dataclass(frozen=True)
class CandidateSpec:
    """Everything needed to render one candidate again, bit for bit.

    Clip ids for the three roles; the condition; `harmonic_shift_semitones`
    (−6..+5, positive = up); `harmonic_ratio` and `percussion_ratio` (seed
    tempo / stem tempo: the factor the stem's tempo is multiplied by, 1 = not
    stretched); `offsets_s` {'harmonic', 'percussion'} in seconds (positive =
    the stem's first downbeat comes after the seed's); `duration_s` of the mix
    (25–60 s); `seed`, the per-candidate random seed its choices came from.
    """

    vocal_clip: int
    harmonic_clip: int
    percussion_clip: int
    condition: Condition
    harmonic_shift_semitones: int
    harmonic_ratio: float
    percussion_ratio: float
    offsets_s: dict[str, float]
    duration_s: float
    seed: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "condition", Condition.parse(self.condition))
        if int(self.harmonic_shift_semitones) != self.harmonic_shift_semitones or not -6 <= self.harmonic_shift_semitones <= 5:
            raise ConditionError(f"harmonic_shift_semitones must be an integer in -6..5, got {self.harmonic_shift_semitones!r}")
        for name in ("harmonic_ratio", "percussion_ratio"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and 0.25 <= value <= 4.0):
                raise ConditionError(f"{name} must be in 0.25..4 (seed tempo / stem tempo), got {value!r}")
            object.__setattr__(self, name, value)
        if set(self.offsets_s) != {"harmonic", "percussion"}:
            raise ConditionError(f"offsets_s must have exactly the keys harmonic and percussion, got {sorted(self.offsets_s)}")
        offsets = {role: float(self.offsets_s[role]) for role in ("harmonic", "percussion")}
        if any(not math.isfinite(v) or abs(v) > MAX_OFFSET_S for v in offsets.values()):
            raise ConditionError(f"offsets_s must lie within ±{MAX_OFFSET_S:g} s, got {offsets}")
        object.__setattr__(self, "offsets_s", offsets)
        lo, hi = DURATION_RANGE_S
        if not lo <= float(self.duration_s) <= hi:
            raise ConditionError(f"duration_s must be in {lo:g}..{hi:g} s, got {self.duration_s!r}")
        object.__setattr__(self, "duration_s", float(self.duration_s))
        if int(self.seed) != self.seed or self.seed < 0:
            raise ConditionError(f"seed must be a non-negative integer, got {self.seed!r}")
        object.__setattr__(self, "harmonic_shift_semitones", int(self.harmonic_shift_semitones))
        object.__setattr__(self, "seed", int(self.seed))

    def to_dict(self) -> dict:
        """JSON-ready record, with the field names of the `candidates --json` export."""
        return {
            "condition": self.condition.value,
            "vocal_clip": self.vocal_clip,
            "harmonic_clip": self.harmonic_clip,
            "percussion_clip": self.percussion_clip,
            "harmonic_shift_semitones": self.harmonic_shift_semitones,
            "harmonic_ratio": self.harmonic_ratio,
            "percussion_ratio": self.percussion_ratio,
            "offsets_s": dict(self.offsets_s),
            "duration_s": self.duration_s,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: dict) -> CandidateSpec:
        """Inverse of :meth:`to_dict` (extra keys such as id or mix_path are ignored)."""
        try:
            return cls(
                vocal_clip=int(data["vocal_clip"]),
                harmonic_clip=int(data["harmonic_clip"]),
                percussion_clip=int(data["percussion_clip"]),
                condition=Condition.parse(data["condition"]),
                harmonic_shift_semitones=int(data["harmonic_shift_semitones"]),
                harmonic_ratio=float(data["harmonic_ratio"]),
                percussion_ratio=float(data["percussion_ratio"]),
                offsets_s={k: float(v) for k, v in dict(data["offsets_s"]).items()},
                duration_s=float(data["duration_s"]),
                seed=int(data["seed"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ConditionError):
                raise
            raise ConditionError(f"invalid candidate record {data!r}: {exc}") from exc

    def __hash__(self) -> int:  # the offsets dict is unhashable; equal specs share their key
        return hash(self.spec_key)

    @property
    def spec_key(self) -> str:
        """SHA-256 (hex) of the canonical JSON of every field: equal records, equal keys."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def pair(self) -> tuple[int, int]:
        """(harmonic clip id, percussion clip id)."""
        return (self.harmonic_clip, self.percussion_clip)


@dataclass(frozen=True)
class QualifyingStems:
    """The accompaniment clips a seed may take under a condition, in pool order."""

    harmonic: tuple[ClipInfo, ...]
    percussion: tuple[ClipInfo, ...]

    @property
    def pair_count(self) -> int:
        """Number of (harmonic, percussion) pairs."""
        return len(self.harmonic) * len(self.percussion)

    def pairs(self, *, whole_accompaniment: bool = False) -> list[tuple[ClipInfo, ClipInfo]]:
        """The (harmonic, percussion) pairs in draw order (harmonic-major, pool order).

        `whole_accompaniment`: only the pairs whose two stems come from one
        clip, i.e. another song's whole accompaniment under the vocal.
        """
        if whole_accompaniment:
            percussion = {c.id: c for c in self.percussion}
            return [(h, percussion[h.id]) for h in self.harmonic if h.id in percussion]
        return [(h, p) for h in self.harmonic for p in self.percussion]


@dataclass(frozen=True)
class DrawResult:
    """Candidates drawn, and the vocal seeds set aside on the way.

    `skipped_seeds`: seeds drawn for which no stem pair qualifies at all (the
    paper's "draw another vocal seed"). `exhausted_seeds`: seeds drawn whose
    qualifying pairs had all been used already (distinct candidates only).
    """

    candidates: list[CandidateSpec]
    skipped_seeds: int
    exhausted_seeds: int = 0


def tempo_ratio(seed_clip: ClipInfo, stem_clip: ClipInfo) -> float:
    """seed tempo / stem tempo: the factor by which the stem's tempo must be multiplied to match the seed."""
    return float(seed_clip.tempo_bpm) / float(stem_clip.tempo_bpm)


def _tempo_ok(ratio: float) -> bool:
    lo, hi = TEMPO_RATIO_RANGE
    return lo <= ratio <= hi


def _harmonic_ok(seed_clip: ClipInfo, clip: ClipInfo, condition: Condition) -> bool:
    distance = key_distance(clip.key, seed_clip.key)
    ratio = tempo_ratio(seed_clip, clip)
    if condition is Condition.MATCHED:
        return distance <= MAX_KEY_DISTANCE and _tempo_ok(ratio)
    if condition is Condition.UNMATCHED_KEY:
        return distance >= UNMATCHED_MIN_KEY_DISTANCE and _tempo_ok(ratio)
    if condition is Condition.UNMATCHED_TEMPO:
        return distance <= MAX_KEY_DISTANCE
    return distance >= UNMATCHED_MIN_KEY_DISTANCE  # UNMATCHED_BOTH


def _percussion_ok(seed_clip: ClipInfo, clip: ClipInfo, condition: Condition) -> bool:
    ratio = tempo_ratio(seed_clip, clip)
    if condition.stretches_tempo:
        return _tempo_ok(ratio)
    return abs(ratio - 1.0) >= UNMATCHED_MIN_TEMPO_DEVIATION


def qualifying_stems(seed_clip: ClipInfo, pool: Sequence[ClipInfo], *, condition: Condition | str = Condition.MATCHED) -> QualifyingStems:
    """Every harmonic and percussion clip of `pool` that `seed_clip` may take under `condition`.

    For ``original`` this is the seed clip itself (when it has both stems).
    Otherwise every clip of the seed's recording is excluded and the rules of
    the module docstring apply. Order follows `pool`, so the retrieval scorer can rank
    every pair deterministically.
    """
    condition = Condition.parse(condition)
    if condition is Condition.ORIGINAL:
        own = (seed_clip,)
        return QualifyingStems(
            harmonic=own if "harmonic" in seed_clip.stems else (),
            percussion=own if "percussion" in seed_clip.stems else (),
        )
    others = [c for c in pool if not seed_clip.same_recording(c)]
    return QualifyingStems(
        harmonic=tuple(c for c in others if "harmonic" in c.stems and _harmonic_ok(seed_clip, c, condition)),
        percussion=tuple(c for c in others if "percussion" in c.stems and _percussion_ok(seed_clip, c, condition)),
    )


def resolve_duration(seed_clip: ClipInfo, duration_s: float | None) -> float:
    """Mashup length in s: `duration_s` checked against DURATION_RANGE_S, or the seed's length clamped to it."""
    lo, hi = DURATION_RANGE_S
    if duration_s is None:
        return float(min(max(seed_clip.duration_s, lo), hi))
    if not lo <= float(duration_s) <= hi:
        raise ConditionError(f"duration_s must be in {lo:g}..{hi:g} s, got {duration_s!r}")
    return float(duration_s)


def _nth_free(n: int, used: Sequence[int]) -> int:
    """The `n`-th (0-based) integer not in the sorted list `used`."""
    index = n
    for u in used:
        if u <= index:
            index += 1
        else:
            break
    return index


def draw_candidate(
    seed_clip: ClipInfo,
    pool: Sequence[ClipInfo],
    *,
    condition: Condition | str,
    seed: int,
    duration_s: float | None = None,
    exclude_pairs: frozenset[tuple[int, int]] | set[tuple[int, int]] = frozenset(),
    qualifying: QualifyingStems | None = None,
    instrumental_seeds: bool = False,
    whole_accompaniment: bool = False,
) -> CandidateSpec | None:
    """Draw one candidate for `seed_clip` with its own random `seed`; None when nothing qualifies.

    The (harmonic, percussion) pair is drawn uniformly among the qualifying
    pairs not in `exclude_pairs` (clip-id pairs). For the unmatched-tempo
    conditions the same generator then picks the offset stem and the offset,
    U(−1, 1) s. `duration_s` None: the seed clip's length clamped to 25–60 s.
    `qualifying` may pass a precomputed :func:`qualifying_stems` result.
    `instrumental_seeds`: accept a seed whose vocal stem lies far below its
    mix (:meth:`ClipInfo.can_seed`). `whole_accompaniment`: draw only among
    the pairs whose harmonic and percussion stems come from one clip
    (:meth:`QualifyingStems.pairs`). Calling again with the same arguments
    returns the same spec.
    """
    condition = Condition.parse(condition)
    if not seed_clip.can_seed(instrumental=instrumental_seeds):
        raise ConditionError(seed_clip.why_not_a_vocal_seed())
    if int(seed) != seed or seed < 0:
        raise ConditionError(f"seed must be a non-negative integer, got {seed!r}")
    duration = resolve_duration(seed_clip, duration_s)
    q = qualifying if qualifying is not None else qualifying_stems(seed_clip, pool, condition=condition)
    options = q.pairs(whole_accompaniment=whole_accompaniment)
    index_of = {(h.id, p.id): i for i, (h, p) in enumerate(options)}
    used = sorted(index_of[pair] for pair in exclude_pairs if pair in index_of)
    free = len(options) - len(used)
    if free <= 0:
        return None
    rng = np.random.default_rng(int(seed))
    harmonic, percussion = options[_nth_free(int(rng.integers(free)), used)]
    offsets = {"harmonic": 0.0, "percussion": 0.0}
    if condition in (Condition.UNMATCHED_TEMPO, Condition.UNMATCHED_BOTH):
        role = ("harmonic", "percussion")[int(rng.integers(2))]
        offsets[role] = float(rng.uniform(-MAX_OFFSET_S, MAX_OFFSET_S))
    return CandidateSpec(
        vocal_clip=seed_clip.id,
        harmonic_clip=harmonic.id,
        percussion_clip=percussion.id,
        condition=condition,
        harmonic_shift_semitones=key_shift_semitones(harmonic.key, seed_clip.key) if condition.shifts_key else 0,
        harmonic_ratio=tempo_ratio(seed_clip, harmonic) if condition.stretches_tempo else 1.0,
        percussion_ratio=tempo_ratio(seed_clip, percussion) if condition.stretches_tempo else 1.0,
        offsets_s=offsets,
        duration_s=duration,
        seed=int(seed),
    )


def draw_candidates(
    seeds: Sequence[ClipInfo],
    pool: Sequence[ClipInfo],
    *,
    condition: Condition | str,
    count: int,
    seed: int,
    vocal_id: int | None = None,
    duration_s: float | None = None,
    exclude: Sequence[CandidateSpec] = (),
    instrumental_seeds: bool = False,
    whole_accompaniment: bool = False,
) -> DrawResult:
    """Draw `count` distinct candidates of `condition`: vocal seeds from `seeds`, accompaniment from `pool`.

    Each round draws a vocal seed at random (or uses `vocal_id`) and then one
    candidate for it (:func:`draw_candidate`, own seed drawn from the master
    generator). A seed with no qualifying pair is *skipped* (counted in
    `skipped_seeds`), one whose pairs are all used is *exhausted* (counted in
    `exhausted_seeds`); either is never drawn again, and another seed is drawn. No
    (vocal, harmonic, percussion) triple is drawn twice within a condition, nor
    any triple in `exclude` (candidates already stored), so ``original`` gives
    at most one candidate per seed. When every seed is exhausted before
    `count` candidates exist, ConditionError says how many could be drawn:
    the loop ends after at most ``count + len(seeds)`` rounds. Seeds must
    sing (:attr:`ClipInfo.sings`) unless `instrumental_seeds`.
    `whole_accompaniment`: each candidate's harmonic and percussion stems come
    from one clip (:meth:`QualifyingStems.pairs`).
    """
    condition = Condition.parse(condition)
    if int(count) != count or count < 1:
        raise ConditionError(f"count must be a positive integer, got {count!r}")
    if int(seed) != seed or seed < 0:
        raise ConditionError(f"seed must be a non-negative integer, got {seed!r}")
    candidates_seeds = [c for c in seeds if c.can_seed(instrumental=instrumental_seeds)]
    if vocal_id is not None:
        named = [c for c in seeds if c.id == vocal_id]
        if named and not named[0].can_seed(instrumental=instrumental_seeds):
            raise ConditionError(named[0].why_not_a_vocal_seed())
        candidates_seeds = [c for c in candidates_seeds if c.id == vocal_id]
        if not candidates_seeds:
            raise ConditionError(f"vocal clip {vocal_id} is not among the seed clips with a vocal stem")
    if not candidates_seeds:
        quiet = sum("vocal" in c.stems for c in seeds)
        raise ConditionError("no seed clip has a vocal stem" if not quiet else
                             f"no seed clip has an audible vocal: the vocal stems of all {quiet} lie more than "
                             f"{-MIN_VOCAL_LEVEL_DB:g} dB below their mix (instrumental music)")
    if condition is not Condition.ORIGINAL and not pool:
        raise ConditionError("the accompaniment pool is empty")
    if duration_s is not None:
        lo, hi = DURATION_RANGE_S
        if not lo <= float(duration_s) <= hi:
            raise ConditionError(f"duration_s must be in {lo:g}..{hi:g} s, got {duration_s!r}")

    rng = np.random.default_rng(int(seed))
    used: dict[int, set[tuple[int, int]]] = {}
    for spec in exclude:
        if Condition.parse(spec.condition) is condition:
            used.setdefault(spec.vocal_clip, set()).add(spec.pair)
    qualifying: dict[int, QualifyingStems] = {}
    live = list(range(len(candidates_seeds)))
    out: list[CandidateSpec] = []
    skipped = exhausted = 0
    while len(out) < count:
        if not live:
            raise ConditionError(_exhausted_message(condition, len(out), count, len(candidates_seeds), vocal_id,
                                                    whole_accompaniment=whole_accompaniment))
        position = int(rng.integers(len(live)))
        candidate_seed = int(rng.integers(_SEED_MAX))
        clip = candidates_seeds[live[position]]
        if clip.id not in qualifying:
            qualifying[clip.id] = qualifying_stems(clip, pool, condition=condition)
        drawn = draw_candidate(
            clip, pool, condition=condition, seed=candidate_seed, duration_s=duration_s,
            exclude_pairs=used.get(clip.id, set()), qualifying=qualifying[clip.id], instrumental_seeds=instrumental_seeds,
            whole_accompaniment=whole_accompaniment,
        )
        if drawn is None:
            if not qualifying[clip.id].pairs(whole_accompaniment=whole_accompaniment):
                skipped += 1
            else:
                exhausted += 1
            live.pop(position)
            continue
        used.setdefault(clip.id, set()).add(drawn.pair)
        out.append(drawn)
    return DrawResult(candidates=out, skipped_seeds=skipped, exhausted_seeds=exhausted)


_RULES = {
    Condition.ORIGINAL: "an original candidate needs a clip with vocal, harmonic and percussion stems",
    Condition.MATCHED: (
        f"no other clip has a harmonic stem within ±{MAX_KEY_DISTANCE} semitones and tempo ratio "
        f"{TEMPO_RATIO_RANGE[0]:g}..{TEMPO_RATIO_RANGE[1]:g}, or none has a percussion stem within that tempo ratio"
    ),
    Condition.UNMATCHED_KEY: (
        f"no other clip has a harmonic stem off-key (distance >= {UNMATCHED_MIN_KEY_DISTANCE} semitone) with tempo "
        f"ratio {TEMPO_RATIO_RANGE[0]:g}..{TEMPO_RATIO_RANGE[1]:g}, or none has a percussion stem within that tempo ratio"
    ),
    Condition.UNMATCHED_TEMPO: (
        f"no other clip has a harmonic stem within ±{MAX_KEY_DISTANCE} semitones, or none has a percussion stem "
        f"whose tempo differs from the seed's by at least {UNMATCHED_MIN_TEMPO_DEVIATION:.0%}"
    ),
    Condition.UNMATCHED_BOTH: (
        f"no other clip has an off-key harmonic stem, or none has a percussion stem whose tempo differs from the "
        f"seed's by at least {UNMATCHED_MIN_TEMPO_DEVIATION:.0%}"
    ),
}


def _exhausted_message(condition: Condition, drawn: int, count: int, n_seeds: int, vocal_id: int | None, *,
                       whole_accompaniment: bool = False) -> str:
    who = f"vocal clip {vocal_id}" if vocal_id is not None else f"the {n_seeds} seed clip(s)"
    kind = f"{condition.value} candidate{'s' if drawn else ''}" + (" with a whole accompaniment" if whole_accompaniment else "")
    if drawn == 0:
        rule = _RULES[condition] + ("; or no clip qualifies for both roles at once" if whole_accompaniment else "")
        return f"no {kind} exists for {who}: {rule}"
    return (
        f"only {drawn} distinct {kind} exist for {who} ({count} asked, "
        "counting those passed in as already stored); ask for fewer or add clips"
    )
