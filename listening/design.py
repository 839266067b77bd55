"""Study designs from scored candidates: which clips go on which page (no Django here).

Both designs of the paper (SPEC §4) are pure functions of plain numbers and a
seed, so a design can be rebuilt exactly from what the study stores.

* **generation**: for every system, its top-N and bottom-N candidates by score,
  each on a page beside the *original* version of the same vocal seed, left /
  right order drawn at random. When two systems pick the same candidate (both
  rank it in their top-N, or one top and one bottom), the candidate is rated
  once, on one page, and that stimulus is recorded for every system that
  picked it (one label per system). Every page gets its own copy of the
  original, so each stimulus is rated by exactly the k participants of its page.
* **retrieval**: per query vocal, each system's top-1 candidate plus the
  original: S+1 stimuli, shuffled by a random permutation and split into
  pairs, one page per pair. A candidate that several systems rank first is one
  stimulus recorded for all of them. When the number of distinct stimuli of a
  query is odd, the last one is paired with a *filler*: a second copy of
  another stimulus of the same query, drawn at random, which carries no system
  label (its ratings are stored but not exported for analysis).

Candidates and systems are referred to by integer ids and names; the caller
maps them to rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from listening.errors import DesignError

ORIGINAL = "original"
GROUPS = ("top", "bottom", "original", "query-top1", "filler")




@dataclass(frozen=True)
class Label:
    """One reason a stimulus is in the design: `system` picked it as `group` at `rank` (1 = best)."""

    system: str
    group: str
    rank: int | None = None
    score: float | None = None


@dataclass
class StimulusSpec:
    """One clip to be rated: a candidate id plus the labels that put it there."""

    key: int
    candidate_id: int
    labels: list[Label] = field(default_factory=list)
    query: int | None = None

    @property
    def filler(self) -> bool:
        return not self.labels


@dataclass(frozen=True)
class PageSpec:
    """Two stimulus keys shown side by side: `left` first, then `right`."""

    index: int
    left: int
    right: int
    query: int | None = None


@dataclass
class Design:
    """Stimuli and pages of a study; `seed` rebuilds it exactly."""

    task: str
    seed: int
    stimuli: list[StimulusSpec]
    pages: list[PageSpec]

    def stimulus(self, key: int) -> StimulusSpec:
        return self.stimuli[key]


def _check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise DesignError(f"the seed must be a whole number of at least 0, got {seed!r}", field="seed")


def ranked(scores: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    """Candidates by descending score; ties broken by ascending candidate id (deterministic)."""
    for cid, value in scores:
        if not np.isfinite(value):
            raise DesignError(f"candidate {cid} has a non-finite score {value!r}")
    return sorted(scores, key=lambda item: (-item[1], item[0]))


def generation_design(
    *,
    scores: Mapping[str, Sequence[tuple[int, float]]],
    original_of: Mapping[int, int],
    top_n: int,
    bottom_n: int,
    seed: int,
) -> Design:
    """Generation task: each system's top-`top_n` and bottom-`bottom_n` candidates, each beside its original.

    scores: system name -> [(candidate id, score)], the matched candidates it scored.
    original_of: candidate id -> id of the original-condition candidate of the same vocal seed.
    Raises DesignError when a system scored fewer than top_n + bottom_n candidates
    or a candidate has no original.
    """
    _check_seed(seed)
    if top_n < 0 or bottom_n < 0 or top_n + bottom_n == 0:
        raise DesignError(f"top N and bottom N must be at least 0 and not both 0, got {top_n} and {bottom_n}",
                          field="top_n")
    if not scores:
        raise DesignError("no systems to compare: score the candidates first", field="systems")
    if ORIGINAL in scores:
        raise DesignError(f"'{ORIGINAL}' is reserved for the original version and cannot be a scoring system",
                          field="systems")
    picks: dict[int, list[Label]] = {}
    for system in sorted(scores):
        order = ranked(scores[system])
        if len(order) < top_n + bottom_n:
            raise DesignError(
                f"system {system!r} scored {len(order)} matched candidates, but top N {top_n} + bottom N {bottom_n} "
                f"need {top_n + bottom_n}: score more candidates or ask for a smaller top N / bottom N",
                field="top_n")
        n = len(order)
        chosen = [(i, "top") for i in range(top_n)] + [(n - bottom_n + i, "bottom") for i in range(bottom_n)]
        for position, group in chosen:
            cid, value = order[position]
            if cid not in original_of:
                raise DesignError(f"candidate {cid} has no original version of its vocal seed: generate originals "
                                  "first")
            picks.setdefault(cid, []).append(Label(system, group, position + 1, float(value)))
    rng = np.random.default_rng(seed)
    stimuli: list[StimulusSpec] = []
    pages: list[PageSpec] = []
    for index, cid in enumerate(sorted(picks)):
        cand = StimulusSpec(len(stimuli), cid, picks[cid])
        orig = StimulusSpec(len(stimuli) + 1, original_of[cid], [Label(ORIGINAL, "original")])
        stimuli += [cand, orig]
        left, right = (cand.key, orig.key) if rng.random() < 0.5 else (orig.key, cand.key)
        pages.append(PageSpec(index, left, right))
    return Design("generation", int(seed), stimuli, pages)


@dataclass(frozen=True)
class Query:
    """A retrieval query: its original candidate and, per system, the scored candidates of that vocal."""

    index: int
    original_id: int
    scores: Mapping[str, Sequence[tuple[int, float]]]


def retrieval_design(*, queries: Sequence[Query], seed: int) -> Design:
    """Retrieval task: per query, each system's top-1 plus the original, paired by a random permutation.

    Raises DesignError when a query has no scores for some system.
    """
    _check_seed(seed)
    if not queries:
        raise DesignError("no queries: the query MashupDB has no vocal with candidates from the other MashupDB",
                          field="db")
    systems = sorted(queries[0].scores)
    if not systems:
        raise DesignError("no systems to compare: score the candidates first", field="systems")
    rng = np.random.default_rng(seed)
    stimuli: list[StimulusSpec] = []
    pages: list[PageSpec] = []
    for query in queries:
        if sorted(query.scores) != systems:
            raise DesignError(f"query {query.index} was scored by {sorted(query.scores)}, expected {systems}")
        picks: dict[int, list[Label]] = {query.original_id: [Label(ORIGINAL, "original")]}
        for system in systems:
            order = ranked(query.scores[system])
            if not order:
                raise DesignError(f"system {system!r} scored no candidate of query {query.index}")
            cid, value = order[0]
            picks.setdefault(cid, []).append(Label(system, "query-top1", 1, float(value)))
        own = [StimulusSpec(len(stimuli) + i, cid, picks[cid], query.index) for i, cid in enumerate(picks)]
        stimuli += own
        order_keys = [own[i].key for i in rng.permutation(len(own))]
        if len(order_keys) % 2:
            last = order_keys[-1]
            others = [s for s in own if s.key != last]
            twin = others[int(rng.integers(len(others)))]
            filler = StimulusSpec(len(stimuli), twin.candidate_id, [], query.index)
            stimuli.append(filler)
            order_keys.append(filler.key)
        for a, b in zip(order_keys[0::2], order_keys[1::2]):
            pages.append(PageSpec(len(pages), a, b, query.index))
    return Design("retrieval", int(seed), stimuli, pages)


def _draw(ids: Sequence[int], *, n: int, seed: int) -> list[int]:
    """At most `n` of `ids` drawn without replacement (seeded), ascending; all if fewer."""
    ids = sorted(set(ids))
    if len(ids) <= n:
        return ids
    rng = np.random.default_rng(seed)
    return sorted(int(ids[i]) for i in rng.choice(len(ids), size=n, replace=False))


def choose_queries(vocal_ids: Sequence[int], *, n_queries: int, seed: int) -> list[int]:
    """`n_queries` vocal ids drawn without replacement (seeded), in ascending order; all if fewer."""
    _check_seed(seed)
    if n_queries < 1:
        raise DesignError(f"the number of queries Q must be at least 1, got {n_queries}", field="n_queries")
    return _draw(vocal_ids, n=n_queries, seed=seed)


def choose_candidates(candidate_ids: Sequence[int], *, n_candidates: int, seed: int) -> list[int]:
    """At most `n_candidates` ids drawn without replacement (seeded), ascending; all if fewer."""
    _check_seed(seed)
    if n_candidates < 1:
        raise DesignError(f"the number of candidates per query C must be at least 1, got {n_candidates}",
                          field="n_candidates")
    return _draw(candidate_ids, n=n_candidates, seed=seed)
