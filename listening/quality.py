"""Quality control of an online listening test, after ITU-T P.808 (no Django here).

P.808's open implementation puts 1 trapping and 1 gold question among every
10 rated items, rejects raters who fail them, and keeps but does not use
sessions whose rating variance is below 0.1. For mashup pairs, this module
checks, per study (`QualityRules`, recorded in the study's config):

* **gold pages**: a vocal's original beside its unmatched key-and-tempo
  candidate (both accompaniment stems neither pitch-shifted nor stretched, so
  they clash in key and tempo). The original must score strictly higher on
  harmony and on rhythm; otherwise the gold page is failed.
* **speed**: a page whose server-measured time (first served -> submitted,
  seconds) is below ``speed_share`` x the summed length of its two clips
  (seconds) is a speeder page: both clips cannot have been heard once.
* **straight-lining**: the population variance of all of a rater's test-page
  answers (scores 1..5) below ``straightline_variance`` (P.808: 0.1), once
  they gave at least ``min_answers_for_variance`` answers.

A participant is excluded when they failed any gold page, when more than
``max_speeder_share`` of their pages were speeder pages, or when they
straight-lined. The stored form (`Flags.as_dict`) is what the analysis reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from listening.aspects import GOLD_ASPECTS
from listening.errors import QualityError


@dataclass(frozen=True)
class QualityRules:
    """A study's quality-control settings.

    gold_every: one gold page per this many pages (0 = no gold pages; P.808: 10).
    speed_share: a page faster than this share of its clips' summed length (s) is a speeder page.
    max_speeder_share: exclude a rater with more than this share of speeder pages.
    straightline_variance: exclude a rater whose answers vary less than this (variance of scores 1..5).
    min_answers_for_variance: the variance rule applies from this many answers on.
    """

    gold_every: int = 0
    speed_share: float = 1.0
    max_speeder_share: float = 0.2
    straightline_variance: float = 0.1
    min_answers_for_variance: int = 10

    def check(self) -> None:
        if self.gold_every < 0 or self.gold_every == 1:
            raise QualityError(f"one gold page every N pages needs N >= 2 (or 0 for none), got {self.gold_every}")
        if not 0 <= self.speed_share <= 10:
            raise QualityError(f"the speed rule's share of the clips' length must be in 0..10, got {self.speed_share}")
        if not 0 <= self.max_speeder_share <= 1:
            raise QualityError(f"the tolerated share of speeder pages must be in 0..1, got {self.max_speeder_share}")
        if self.straightline_variance < 0:
            raise QualityError(f"the straight-lining variance must be >= 0, got {self.straightline_variance}")

    @classmethod
    def from_config(cls, config: Mapping) -> QualityRules:
        """The rules recorded in a study config (missing keys: the defaults)."""
        fields = cls.__dataclass_fields__
        return cls(**{k: type(getattr(cls, k))(v) for k, v in dict(config.get("quality") or {}).items() if k in fields})


def is_gold_step(step: int, *, gold_every: int) -> bool:
    """Whether a participant's `step`-th page (0-based, gold pages counted) is a gold page.

    The middle page of every block of `gold_every` pages: with 10, the 6th,
    16th, ...; with 2, the 2nd, 4th, ...
    """
    return gold_every >= 2 and step % gold_every == gold_every // 2


def session_pages(*, test_pages: int, gold_every: int, gold_pages: int) -> int:
    """Pages a participant meets in all: `test_pages` rated pages plus the gold pages interleaved among them."""
    steps = tests = golds = 0
    while tests < test_pages:
        if golds < gold_pages and is_gold_step(steps, gold_every=gold_every):
            golds += 1
        else:
            tests += 1
        steps += 1
    return steps


def gold_passed(original: Mapping[str, int], negative: Mapping[str, int]) -> bool:
    """The original strictly beats the unmatched key-and-tempo candidate on harmony and on rhythm (scores 1..5)."""
    return all(int(original[a]) > int(negative[a]) for a in GOLD_ASPECTS)


def is_speeder(*, page_seconds: float, clip_seconds: Sequence[float], speed_share: float) -> bool:
    """Page time (s, server clock) below `speed_share` x the clips' summed length (s)."""
    return page_seconds < speed_share * float(sum(clip_seconds))


@dataclass(frozen=True)
class Flags:
    """One participant's quality record (stored as JSON in Participant.flags)."""

    pages: int
    gold_pages: int
    gold_failed: int
    speeder_pages: int
    answers: int
    answer_variance: float | None
    straightliner: bool

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PageRecord:
    """One submitted page: gold or not, whether it passed (gold), whether it was a speeder page, its scores."""

    gold: bool
    passed: bool | None
    speeder: bool
    scores: tuple[int, ...]


def participant_flags(pages: Sequence[PageRecord], rules: QualityRules) -> tuple[Flags, bool, str]:
    """(flags, excluded, reason) of a participant from their submitted pages; reason '' when kept."""
    test_scores = [s for p in pages if not p.gold for s in p.scores]
    variance = float(np.var(test_scores)) if test_scores else None
    straight = variance is not None and len(test_scores) >= rules.min_answers_for_variance and \
        variance < rules.straightline_variance
    flags = Flags(
        pages=len(pages), gold_pages=sum(p.gold for p in pages),
        gold_failed=sum(p.gold and p.passed is False for p in pages),
        speeder_pages=sum(p.speeder for p in pages), answers=len(test_scores),
        answer_variance=None if variance is None else round(variance, 4), straightliner=straight,
    )
    reasons = []
    if flags.gold_failed:
        reasons.append(f"failed {flags.gold_failed} of {flags.gold_pages} gold page(s)")
    if pages and flags.speeder_pages / len(pages) > rules.max_speeder_share:
        reasons.append(f"{flags.speeder_pages} of {len(pages)} page(s) faster than {rules.speed_share:g} x the "
                       "clips' length")
    if straight:
        reasons.append(f"straight-lining (answer variance {variance:.3f} < {rules.straightline_variance:g})")
    return flags, bool(reasons), "; ".join(reasons)
