"""Which page a participant rates next (no Django here).

Rule (issue 5 §3): a page is open while fewer than k participants hold it
(done, or reserved and not yet expired); among the open pages the participant
has not seen, those whose vocal seed the participant has not heard yet go
first (two pages sharing a vocal only when no other page is open), then the
least-held, and ties are broken by a random draw seeded per participant and
step, so page order is random per participant yet reproducible. The database enforces the k limit on its own (one row per
(page, slot), slot < k); this function only picks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from listening.errors import AssignmentError


def choose_page(
    *,
    loads: Mapping[int, int],
    seen: Iterable[int],
    ratings_per_page: int,
    seed: int,
    vocal_of: Mapping[int, int] | None = None,
    seen_vocals: Iterable[int] = (),
) -> int | None:
    """The page id to reserve next, or None when no page is open to this participant.

    loads: page id -> participants holding it now (done + live reservations),
    for every page of the study (pages nobody holds map to 0).
    seen: page ids this participant already holds or held.
    seed: participant seed mixed with the step number (see `step_seed`).
    vocal_of: page id -> its vocal clip id; seen_vocals: vocal clip ids of the participant's pages so far.
    """
    if ratings_per_page < 1:
        raise AssignmentError(f"ratings_per_page must be >= 1, got {ratings_per_page}")
    seen = set(seen)
    open_pages = [(load, pid) for pid, load in loads.items() if load < ratings_per_page and pid not in seen]
    if not open_pages:
        return None
    if vocal_of is not None:
        heard = set(seen_vocals)
        fresh = [(load, pid) for load, pid in open_pages if vocal_of.get(pid) not in heard]
        open_pages = fresh or open_pages
    least = min(load for load, _ in open_pages)
    tied = sorted(pid for load, pid in open_pages if load == least)
    rng = np.random.default_rng(seed)
    return int(tied[int(rng.integers(len(tied)))])


def reference_side(participant_seed: int, step: int) -> int:
    """Where (0 left, 1 right) a participant's `step`-th page shows its reference clip (the original, if any).

    Counterbalanced per participant: the sides alternate page by page, from a
    side drawn by the participant's seed, so over an even number of pages the
    original is on the left exactly half the time.
    """
    return (int(participant_seed) + int(step)) % 2


def step_seed(participant_seed: int, step: int) -> int:
    """A seed for the participant's `step`-th choice (and retry), stable across processes."""
    return int(np.random.SeedSequence([int(participant_seed), int(step)]).generate_state(1)[0])


def free_slot(taken: Iterable[int], *, ratings_per_page: int) -> int | None:
    """The smallest slot number in 0..k-1 not in `taken`, or None when the page is full."""
    taken = set(taken)
    for slot in range(ratings_per_page):
        if slot not in taken:
            return slot
    return None
