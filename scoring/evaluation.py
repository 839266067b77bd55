"""Objective evaluation, the paper's Table 1: accuracy on labeled data and average rank.

From the paper: "(i) how well a trained model classifies the generated
labeled data … evaluated in terms of accuracy on a binary prediction task
using 0.5 as the threshold"; "(ii) … we used the test set of 26,550
unlabeled examples as the retrieval database … we calculate the ranking
position (≥ 1) based on the probability scores for each positive example,
and report the average rank."

So, for each positive (original) example, its rank is 1 + the number of
unlabeled (matched) candidates in the retrieval database that score at least
as high as it. The database is the whole test set by default, as in the
paper; passing ``groups`` restricts each positive to the unlabeled
candidates of its own vocal seed (the per-seed reading). Ties count against
the positive (a constant scorer gets the worst rank, not the best), so
ranking is not flattered by uncalibrated or saturated scores.

Beside Table 1, retrieval metrics per vocal seed (:func:`retrieval_metrics`):
the rank of the seed's original among the seed's own candidates (itself and
every unlabeled accompaniment drawn for that vocal), as Stem-JEPA reports on
MUSDB18 (R@1 33.0 %, median normalised rank 0.5 %): R@k is the share of seeds
whose original ranks in the top k, and the normalised rank is rank / pool
size (1/pool = first, 1.0 = last).

Labels: 1 positive, 0 negative, −1 unlabeled (as in :mod:`scoring.losses`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scoring.errors import ScoringError

POSITIVE, NEGATIVE, UNLABELED = 1, 0, -1


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or y.shape != s.shape:
        raise ScoringError(f"scores and labels must be 1-D of equal length, got {s.shape} and {y.shape}")
    if not np.all(np.isfinite(s)):
        raise ScoringError("scores contain NaN or infinite values")
    if not set(np.unique(y).tolist()) <= {POSITIVE, NEGATIVE, UNLABELED}:
        raise ScoringError(f"labels must be 1, 0 or -1, got {sorted(set(np.unique(y).tolist()))}")
    return s, y.astype(np.int64)


def labeled_accuracy(*, scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> float:
    """Share of labeled examples (label 1 or 0) classified right: good iff score ≥ ``threshold``.

    Unlabeled examples are ignored. Raises if there is no labeled example.
    """
    s, y = _check(scores, labels)
    keep = y != UNLABELED
    if not keep.any():
        raise ScoringError("no labeled example to compute accuracy on")
    return float(np.mean((s[keep] >= threshold).astype(np.int64) == y[keep]))


def positive_ranks(*, scores: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Rank (≥ 1) of each positive among the unlabeled candidates; float64 (n_positives,).

    rank_i = 1 + #{unlabeled j (in the same group if ``groups``): s_j ≥ s_i}.
    """
    s, y = _check(scores, labels)
    pos = np.flatnonzero(y == POSITIVE)
    unl = np.flatnonzero(y == UNLABELED)
    if pos.size == 0:
        raise ScoringError("no positive example to rank")
    if unl.size == 0:
        raise ScoringError("no unlabeled candidate to rank the positives against")
    if groups is None:
        u = np.sort(s[unl])
        # number of unlabeled scores ≥ s_i
        return 1.0 + (u.size - np.searchsorted(u, s[pos], side="left")).astype(np.float64)
    g = np.asarray(groups)
    if g.shape != s.shape:
        raise ScoringError(f"groups must match scores in shape, got {g.shape} and {s.shape}")
    ranks = np.empty(pos.size)
    for k, i in enumerate(pos):
        same = unl[g[unl] == g[i]]
        if same.size == 0:
            raise ScoringError(f"vocal seed group {g[i]!r} has a positive but no unlabeled candidate")
        ranks[k] = 1.0 + np.count_nonzero(s[same] >= s[i])
    return ranks


def average_rank(*, scores: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None) -> float:
    """Mean of :func:`positive_ranks` (1.0 = every positive above every unlabeled candidate)."""
    return float(np.mean(positive_ranks(scores=scores, labels=labels, groups=groups)))


RECALL_KS = (1, 5, 10)


def retrieval_metrics(*, scores: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                      ks: tuple[int, ...] = RECALL_KS) -> dict[str, Any]:
    """R@k, mean and median rank, and rank / pool size of each seed's original among its own candidates.

    ``groups``: the vocal seed of each example; a seed's pool is its positive
    plus its unlabeled candidates (ties count against the positive). Seeds
    without an unlabeled candidate are left out and counted in ``n_skipped``.
    Returns ``{"n_queries", "n_skipped", "mean_pool", "recall_at": {k: share}, "mean_rank",
    "median_rank", "mean_normalised_rank", "median_normalised_rank"}``.
    """
    s, y = _check(scores, labels)
    g = np.asarray(groups)
    if g.shape != s.shape:
        raise ScoringError(f"groups must match scores in shape, got {g.shape} and {s.shape}")
    ranks, pools, skipped = [], [], 0
    for i in np.flatnonzero(y == POSITIVE):
        pool = s[(y == UNLABELED) & (g == g[i])]
        if pool.size == 0:
            skipped += 1
            continue
        ranks.append(1.0 + np.count_nonzero(pool >= s[i]))
        pools.append(1.0 + pool.size)
    if not ranks:
        raise ScoringError("no vocal seed has both its original and an unlabeled candidate to rank")
    r, p = np.asarray(ranks), np.asarray(pools)
    return {
        "n_queries": int(r.size), "n_skipped": skipped, "mean_pool": float(p.mean()),
        "recall_at": {str(k): float(np.mean(r <= k)) for k in ks},
        "mean_rank": float(r.mean()), "median_rank": float(np.median(r)),
        "mean_normalised_rank": float(np.mean(r / p)), "median_normalised_rank": float(np.median(r / p)),
    }


def unlabeled_subset_effect(*, scores: np.ndarray, labels: np.ndarray, subset: np.ndarray) -> dict[str, Any]:
    """How much a kind of unlabeled candidate (``subset``, a boolean mask) weighs on the average rank.

    Made for whole accompaniments (harmonic and percussion stems from one other
    clip: another song's whole backing, which a network may hear as one song and
    rank above an original). Returns ``{"n_unlabeled", "mean_score",
    "mean_score_others", "average_rank_without"}``: how many unlabeled
    candidates the subset holds, their mean score and the other unlabeled
    candidates' (None where there are none), and the average rank over the whole
    test set with the subset left out (None when no other unlabeled candidate is left).
    """
    s, y = _check(scores, labels)
    m = np.asarray(subset, dtype=bool)
    if m.shape != s.shape:
        raise ScoringError(f"subset must match scores in shape, got {m.shape} and {s.shape}")
    inside, others = m & (y == UNLABELED), ~m & (y == UNLABELED)
    keep = ~inside
    return {
        "n_unlabeled": int(np.count_nonzero(inside)),
        "mean_score": float(s[inside].mean()) if inside.any() else None,
        "mean_score_others": float(s[others].mean()) if others.any() else None,
        "average_rank_without": average_rank(scores=s[keep], labels=y[keep]) if others.any() else None,
    }


def table1_row(*, system: str, scores: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None,
               calibrated: bool = True, threshold: float = 0.5) -> dict[str, Any]:
    """One row of Table 1: {system, accuracy, average_rank, n_labeled, n_unlabeled, accuracy_note}.

    ``calibrated=False`` (AutoMashUpper's score is not a probability) leaves
    ``accuracy`` None with the reason in ``accuracy_note``.
    """
    s, y = _check(scores, labels)
    row: dict[str, Any] = {
        "system": system,
        "accuracy": labeled_accuracy(scores=s, labels=y, threshold=threshold) if calibrated else None,
        "average_rank": average_rank(scores=s, labels=y, groups=groups),
        "n_labeled": int(np.count_nonzero(y != UNLABELED)),
        "n_unlabeled": int(np.count_nonzero(y == UNLABELED)),
        "accuracy_note": None if calibrated else
        f"{system}'s score is not a probability, so accuracy at threshold {threshold} is meaningless",
    }
    return row
