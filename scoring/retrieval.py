"""Rank every qualifying (harmonic, percussion) pair of one vocal seed (issue 4 §6).

The paper scored ~180 random candidates per vocal because each had to be
stretched and passed through the whole network. Here, for one vocal seed
clip, every pair of the MATCHED condition (``generation.conditions.qualifying_stems``
over the accompaniment MashupDB, by default the seed's own) is scored:

* each qualifying stem is adjusted **once**, mono at the system's feature
  sample rate (Hz), through the shared stem cache — the adjustment a matched
  candidate of that pair gets: harmonic shifted by ``key_shift_semitones`` to
  the seed's key, both stems stretched by the tempo ratio (seed BPM / stem
  BPM), first downbeat placed on the seed's, cut or padded to the mashup's
  ``duration_s`` (s; by default the seed clip's length clamped to 25–60 s, as
  ``generate`` does);
* log-mels are taken at the system's crop offsets (``crop_offsets_s``, s),
  and the posterior is averaged over those crops, as
  :func:`scoring.services.scorer` does;
* a **PreMixNet** scores all pairs with :func:`scoring.factorised.score_crops`:
  |H| + |P| + 1 SourceNet passes per crop plus a small tail per pair, equal
  to the full forward pass to float rounding (tested to 1e-5 against
  ``score`` on the stored matched candidates);
* a **PostMixNet** does not factorise (its one SourceNet sees the mix), so
  its pairs are scored *naively*: each pair becomes an unsaved matched
  Candidate and goes through the system's ordinary scorer, one full pass per
  pair (|H| × |P| passes; practical for small widths and demo DBs only).
  The AutoMashUpper baselines (``amu``, ``amu_rhythm``) rank the same naive way.

A ranked pair's candidate spec is the matched candidate of that pair with
offsets 0 and random seed 0: a matched candidate involves no random choice
once its pair is fixed, so the seed only labels it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from django.db import transaction
from tqdm.auto import tqdm

from generation.candidates import candidate_fields, clip_infos, get_db, spec_of, stem_cache, store_spec
from generation.conditions import (
    MAX_KEY_DISTANCE,
    TEMPO_RATIO_RANGE,
    CandidateSpec,
    ClipInfo,
    Condition,
    qualifying_stems,
    resolve_duration,
    tempo_ratio,
)
from generation.errors import AudioError, StemCacheError, StretchError
from generation.keys import key_shift_semitones
from generation.models import Candidate, Clip, MashupDB
from generation.render import place, placement_s
from generation.stem_cache import StemCache
from scoring.errors import ScoringError
from scoring.features import FeatureConfig, log_mel
from scoring.models import Score, System
from scoring.services import load_system, scorer

RANKED_SEED = 0  # the recorded seed of a ranked candidate (no random choice is involved)


@dataclass(frozen=True)
class RankedPair:
    """One scored pair: clip ids, the score (posterior of "good", 0..1) and the matched spec it stands for."""

    harmonic_clip: int
    percussion_clip: int
    score: float
    spec: CandidateSpec

    def to_dict(self) -> dict:
        return {"harmonic_clip": self.harmonic_clip, "percussion_clip": self.percussion_clip, "score": self.score}


@dataclass
class Ranking:
    """Every scored pair of one vocal seed, best first, and where the time went (wall seconds).

    ``adjust_s``: stem cache lookups (Rubber Band on misses) and placement;
    ``features_s``: log-mels; ``network_s``: the network (role terms and
    tails, or full passes for the naive method); ``load_s``: reading the
    checkpoint; ``seconds``: the whole call. ``stats``: the factorised
    scorer's counters (``sourcenet_s``, ``sourcenet_stems``, ``role_conv_s``,
    ``tail_s``, ``pairs_scored``); empty for the naive method.
    """

    system: str
    arch: str
    method: str  # 'factorised' | 'naive'
    db: str
    vocal_clip: int
    n_harmonic: int
    n_percussion: int
    duration_s: float
    crop_offsets_s: list[float]
    feature_config: FeatureConfig
    pairs: list[RankedPair]
    seconds: float = 0.0
    adjust_s: float = 0.0
    features_s: float = 0.0
    network_s: float = 0.0
    load_s: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    stats: dict = field(default_factory=dict)

    @property
    def n_pairs(self) -> int:
        return len(self.pairs)

    @property
    def pairs_per_second(self) -> float:
        return self.n_pairs / self.seconds if self.seconds > 0 else float("inf")

    def score_of(self, harmonic_clip: int, percussion_clip: int) -> float:
        """The score of one pair (KeyError when it was not scored)."""
        for p in self.pairs:
            if (p.harmonic_clip, p.percussion_clip) == (harmonic_clip, percussion_clip):
                return p.score
        raise KeyError((harmonic_clip, percussion_clip))

    def to_dict(self) -> dict:
        """JSON-ready summary with every pair (rank 1 = best)."""
        return {
            "system": self.system, "arch": self.arch, "method": self.method, "db": self.db,
            "vocal_clip": self.vocal_clip, "n_harmonic": self.n_harmonic, "n_percussion": self.n_percussion,
            "pairs_scored": self.n_pairs, "duration_s": self.duration_s, "crop_offsets_s": self.crop_offsets_s,
            "feature_config": self.feature_config.to_dict(), "seconds": self.seconds, "adjust_s": self.adjust_s,
            "features_s": self.features_s, "network_s": self.network_s, "load_s": self.load_s,
            "cache_hits": self.cache_hits, "cache_misses": self.cache_misses, "stats": self.stats,
            "pairs": [{"rank": i + 1, **p.to_dict()} for i, p in enumerate(self.pairs)],
        }


def pair_spec(seed_clip: ClipInfo, harmonic: ClipInfo, percussion: ClipInfo, *, duration_s: float,
              seed: int = RANKED_SEED) -> CandidateSpec:
    """The matched candidate of one pair: harmonic shifted to the seed's key (semitones), both stems
    stretched to the seed's tempo (ratio = seed BPM / stem BPM), offsets 0 s — as ``draw_candidate`` sets them."""
    return CandidateSpec(
        vocal_clip=seed_clip.id, harmonic_clip=harmonic.id, percussion_clip=percussion.id,
        condition=Condition.MATCHED,
        harmonic_shift_semitones=key_shift_semitones(harmonic.key, seed_clip.key),
        harmonic_ratio=tempo_ratio(seed_clip, harmonic), percussion_ratio=tempo_ratio(seed_clip, percussion),
        offsets_s={"harmonic": 0.0, "percussion": 0.0}, duration_s=duration_s, seed=seed,
    )


def adjusted_stem(spec: CandidateSpec, clips: dict[int, ClipInfo], role: str, *, sr: int,
                  cache: StemCache) -> np.ndarray:
    """One role's stem of ``spec`` as ``generation.render.adjust_for_features`` makes it: mono float32
    (round(duration_s * sr),) at ``sr`` Hz, adjusted through ``cache`` and placed on the seed's timeline."""
    clip_id, shift, ratio = {
        "vocal": (spec.vocal_clip, 0, 1.0),
        "harmonic": (spec.harmonic_clip, spec.harmonic_shift_semitones, spec.harmonic_ratio),
        "percussion": (spec.percussion_clip, 0, spec.percussion_ratio),
    }[role]
    path = clips[clip_id].stems[role]
    try:
        audio = cache.get(path, sr=sr, shift_semitones=shift, ratio=ratio, mono=True)
    except (AudioError, StemCacheError, StretchError) as exc:
        raise type(exc)(f"{role} stem of clip {clip_id}: {exc}") from exc
    n_out = round(spec.duration_s * sr)
    return place(audio, start_s=placement_s(spec, clips, role), sr=sr, n_out=n_out)[0]


def _seed_and_pool(vocal_clip_id: int, accompaniment_db: str | None) -> tuple[Clip, ClipInfo, list[ClipInfo], str]:
    clip = Clip.objects.filter(id=vocal_clip_id).select_related("db").prefetch_related("stems").first()
    if clip is None:
        raise ScoringError(f"no clip with id {vocal_clip_id}")
    (seed,) = clip_infos([clip])
    if not seed.sings:
        raise ScoringError(seed.why_not_a_vocal_seed())
    if accompaniment_db:
        acc = get_db(accompaniment_db)
    else:
        acc = clip.db
    pool = clip_infos(Clip.objects.filter(db=acc).prefetch_related("stems").order_by("id"))
    return clip, seed, pool, acc.name


def rank_pairs(
    system: System,
    vocal_clip_id: int,
    *,
    progress: bool = True,
    pairs: Sequence[tuple[int, int]] | None = None,
    accompaniment_db: str | None = None,
    duration_s: float | None = None,
    cache: StemCache | None = None,
    batch_stems: int = 4,
    batch_pairs: int = 128,
    fast: bool = True,
) -> Ranking:
    """Score every qualifying matched (harmonic, percussion) pair of one vocal seed clip; best first.

    ``pairs``: (harmonic clip id, percussion clip id) pairs to score instead
    of all (each must qualify). ``accompaniment_db``: MashupDB name the stems
    come from (default: the seed's). ``duration_s``: mashup length in s
    (default: the seed clip's, clamped to 25–60 s). ``cache``: stem cache for
    the PreMixNet path (default: the shared one under MEDIA_ROOT; the naive
    PostMixNet path always uses the shared one). ``batch_stems`` stems per
    SourceNet batch, ``batch_pairs`` pairs per tail batch; ``fast``: the
    inference kernels of :class:`scoring.factorised.RoleTermer` (False: the
    model's own modules, for comparison). PreMixNet: factorised; PostMixNet:
    naive, one full pass per pair; AMU (``amu``, ``amu_rhythm``): naive, each pair's adjusted stems scored
    by the rule.
    A pair's score equals what ``scoring.services.score`` stores for the
    matched Candidate of that pair (to 1e-5). Ties keep pool order.
    """
    t_start = time.perf_counter()
    if system.arch not in (System.Arch.PREMIX, System.Arch.POSTMIX, System.Arch.AMU):
        raise ScoringError(f"system {system.name} ({system.arch}) cannot rank pairs: only premix (factorised), "
                           "postmix and AMU (naive) systems can; score generated candidates with `score` instead")
    clip, seed, pool, acc_name = _seed_and_pool(vocal_clip_id, accompaniment_db)
    q = qualifying_stems(seed, pool, condition=Condition.MATCHED)
    if q.pair_count == 0:
        lo, hi = TEMPO_RATIO_RANGE
        raise ScoringError(
            f"vocal clip {vocal_clip_id} has no qualifying matched pair in MashupDB {acc_name!r}: "
            f"{len(q.harmonic)} harmonic stem(s) within ±{MAX_KEY_DISTANCE} semitones and tempo ratio {lo:g}..{hi:g}, "
            f"{len(q.percussion)} percussion stem(s) within tempo ratio {lo:g}..{hi:g}"
        )
    duration = resolve_duration(seed, duration_s)
    h_index = {c.id: i for i, c in enumerate(q.harmonic)}
    p_index = {c.id: j for j, c in enumerate(q.percussion)}
    if pairs is None:
        idx = np.array([(i, j) for i in range(len(q.harmonic)) for j in range(len(q.percussion))], dtype=np.int64)
    else:
        bad = [pr for pr in pairs if pr[0] not in h_index or pr[1] not in p_index]
        if bad:
            raise ScoringError(f"pair(s) {bad[:3]} do not qualify (matched) for vocal clip {vocal_clip_id}")
        idx = np.array([(h_index[h], p_index[p]) for h, p in pairs], dtype=np.int64).reshape(-1, 2)
        if len(idx) == 0:
            raise ScoringError("no pairs to score")
    specs = [pair_spec(seed, q.harmonic[i], q.percussion[j], duration_s=duration) for i, j in idx]
    clips = {c.id: c for c in (seed, *q.harmonic, *q.percussion)}
    needed = [seed.stems["vocal"], *(q.harmonic[i].stems["harmonic"] for i in set(idx[:, 0].tolist())),
              *(q.percussion[j].stems["percussion"] for j in set(idx[:, 1].tolist()))]
    missing = sorted({str(p) for p in needed if not p.is_file()})
    if missing:
        raise ScoringError(f"stem audio is missing: {', '.join(missing[:3])}")

    t0 = time.perf_counter()
    if system.arch in (System.Arch.POSTMIX, System.Arch.AMU):  # AMU: the rule on each pair (issue 11 item 7)
        ranking = _naive(system, clip, specs, progress=progress)
    else:
        model, cfg, offsets = load_system(system)
        ranking = Ranking(system=system.name, arch=system.arch, method="factorised", db=clip.db.name,
                          vocal_clip=seed.id, n_harmonic=len(q.harmonic), n_percussion=len(q.percussion),
                          duration_s=duration, crop_offsets_s=offsets, feature_config=cfg, pairs=[],
                          load_s=time.perf_counter() - t0)
        scores = _factorised(ranking, model, specs, idx, clips, cache=cache or stem_cache(),
                             progress=progress, batch_stems=batch_stems, batch_pairs=batch_pairs, fast=fast)
        ranking.pairs = _sorted(specs, scores)
    ranking.n_harmonic, ranking.n_percussion = len(q.harmonic), len(q.percussion)
    ranking.seconds = time.perf_counter() - t_start
    return ranking


def _sorted(specs: list[CandidateSpec], scores: np.ndarray) -> list[RankedPair]:
    order = np.lexsort((np.arange(len(scores)), -np.asarray(scores)))  # best first, ties in pool order
    return [RankedPair(specs[k].harmonic_clip, specs[k].percussion_clip, float(scores[k]), specs[k]) for k in order]


def _factorised(ranking: Ranking, model, specs: list[CandidateSpec], idx: np.ndarray, clips: dict[int, ClipInfo],
                *, cache: StemCache, progress: bool, batch_stems: int, batch_pairs: int, fast: bool) -> np.ndarray:
    """Scores of ``specs`` (pairs ``idx`` into the qualifying stems): each stem adjusted and log-melled once."""
    from scoring.factorised import score_crops

    cfg, offsets = ranking.feature_config, ranking.crop_offsets_s
    for off in offsets:
        if off < 0 or off + cfg.crop_s > ranking.duration_s + 1e-6:
            raise ScoringError(f"a {cfg.crop_s:g} s crop at {off:g} s does not fit the {ranking.duration_s:g} s mashup")
    used_h = sorted({int(i) for i in idx[:, 0]})
    used_p = sorted({int(j) for j in idx[:, 1]})
    # one representative spec per stem: a stem's adjustment and placement do not depend on its partner
    first_h = {int(i): specs[k] for k, (i, _) in reversed(list(enumerate(idx)))}
    first_p = {int(j): specs[k] for k, (_, j) in reversed(list(enumerate(idx)))}
    jobs = [("vocal", specs[0]), *(("harmonic", first_h[i]) for i in used_h),
            *(("percussion", first_p[j]) for j in used_p)]
    hits0, misses0 = cache.stats.hits, cache.stats.misses
    feats = []
    for role, spec in tqdm(jobs, desc="adjust stems + log-mels", unit="stem", disable=not progress):
        t0 = time.perf_counter()
        audio = adjusted_stem(spec, clips, role, sr=cfg.sr, cache=cache)
        t1 = time.perf_counter()
        feats.append(np.stack([log_mel(audio, sr=cfg.sr, config=cfg, offset_s=off) for off in offsets]))
        ranking.adjust_s += t1 - t0
        ranking.features_s += time.perf_counter() - t1
    ranking.cache_hits = cache.stats.hits - hits0
    ranking.cache_misses = cache.stats.misses - misses0
    v = feats[0]
    h = np.stack(feats[1 : 1 + len(used_h)])
    p = np.stack(feats[1 + len(used_h) :])
    # pair indices into the used stems only
    h_pos = {i: n for n, i in enumerate(used_h)}
    p_pos = {j: n for n, j in enumerate(used_p)}
    local = np.array([(h_pos[int(i)], p_pos[int(j)]) for i, j in idx], dtype=np.int64).reshape(-1, 2)
    t0 = time.perf_counter()
    scores = score_crops(model, v, h, p, pairs=local, batch_stems=batch_stems, batch_pairs=batch_pairs,
                         stats=ranking.stats, progress=progress, fast=fast)
    ranking.network_s = time.perf_counter() - t0
    return scores


def _naive(system: System, clip: Clip, specs: list[CandidateSpec], *, progress: bool, batch: int = 16) -> Ranking:
    """PostMixNet and AMU: each pair as an unsaved matched Candidate through the system's own scorer."""
    t0 = time.perf_counter()
    run = scorer(system)
    load_s = time.perf_counter() - t0
    cands = [Candidate(db=clip.db, spec_key=s.spec_key, **candidate_fields(s)) for s in specs]
    scores = np.empty(len(cands))
    t1 = time.perf_counter()
    for s in tqdm(range(0, len(cands), batch), desc=f"naive {system.name}", unit="batch", disable=not progress):
        scores[s : s + batch] = run(cands[s : s + batch])
    offsets = [float(o) for o in (system.config or {}).get("crop_offsets_s") or [0.0]]
    cfg = FeatureConfig.from_dict((system.config or {}).get("feature_config") or {})
    return Ranking(system=system.name, arch=system.arch, method="naive", db=clip.db.name, vocal_clip=clip.id,
                   n_harmonic=0, n_percussion=0, duration_s=specs[0].duration_s, crop_offsets_s=offsets,
                   feature_config=cfg, pairs=_sorted(specs, scores), network_s=time.perf_counter() - t1,
                   load_s=load_s)


@dataclass(frozen=True)
class StoreReport:
    """Candidates stored for the top pairs (``created`` new, ``existing`` found) and their Score rows."""

    candidates: list[Candidate]
    created: int
    existing: int


def _stored_twin(db: MashupDB, spec: CandidateSpec) -> Candidate | None:
    """A stored matched candidate of the same pair and adjustments, whatever its recorded seed."""
    for c in Candidate.objects.filter(db=db, condition=Condition.MATCHED.value, vocal_clip_id=spec.vocal_clip,
                                      harmonic_clip_id=spec.harmonic_clip, percussion_clip_id=spec.percussion_clip):
        other = spec_of(c).to_dict()
        mine = spec.to_dict()
        other.pop("seed"), mine.pop("seed")
        if other == mine:
            return c
    return None


def store_top(system: System, ranking: Ranking, *, top: int) -> StoreReport:
    """Store the ``top`` best pairs as matched Candidates of the seed's MashupDB, with their Scores for ``system``.

    A pair already stored as a matched candidate (same adjustments, any seed)
    is reused; otherwise the spec goes through the generation stage's storage
    (deduplicated by spec_key). Everything is written in one transaction.
    """
    if top < 1:
        raise ScoringError(f"top must be ≥ 1, got {top}")
    db = MashupDB.objects.get(name=ranking.db)
    out: list[Candidate] = []
    created = 0
    with transaction.atomic():
        for pair in ranking.pairs[:top]:
            cand = _stored_twin(db, pair.spec)
            if cand is None:
                cand, made = store_spec(db, pair.spec)
                created += made
            Score.objects.update_or_create(system=system, candidate=cand, defaults={"value": float(pair.score)})
            out.append(cand)
    return StoreReport(candidates=out, created=created, existing=len(out) - created)

