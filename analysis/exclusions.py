"""Quality control in the analysis: which raters are excluded, and why (no Django here).

A listening study records quality flags per rater (gold pages failed,
speeder pages, straight-lining, after ITU-T P.808) and, under the study's own
rules, whether the rater is excluded and why. The study export carries them as
optional columns of the ratings CSV beside the thirteen the analysis needs:

    excluded, exclusion_reason    the study's decision (yes/no, text)
    gold_failed                   gold pages the rater failed (integer, per rater)
    speeder_page                  this page was faster than the speed rule (yes/no, per page)
    speeder_pages                 the rater's speeder pages (integer, per rater)
    straightliner                 the rater's answers barely varied (yes/no, per rater)
    external_id                   e.g. the Prolific PID, shown in the table

Where ``excluded`` is present it is the decision (the study applied its
rules when the answers came in, with settings recorded in its config); the
flags are shown beside it. Where it is absent (ratings from elsewhere), the
same rules are applied to the flag columns: a failed gold page, more than
``max_speeder_share`` of the rater's pages as speeder pages, or
straight-lining excludes. With none of these columns nobody is excluded.
The results are then computed twice, with and without the excluded raters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from analysis.errors import RatingsError

FLAG_COLUMNS: tuple[str, ...] = (
    "excluded", "exclusion_reason", "gold_failed", "speeder_page", "speeder_pages", "straightliner", "external_id",
)
EXCLUSION_COLUMNS: tuple[str, ...] = (
    "participant", "external_id", "pages", "gold_failed", "speeder_pages", "straightliner", "excluded", "reason",
    "decided_by",
)
"""One row per rater: ``decided_by`` is 'study' (the recorded decision), 'flags' (derived here) or ''."""


@dataclass(frozen=True)
class ExclusionRules:
    """How flags become an exclusion where the study did not record one.

    max_speeder_share: exclude a rater with more than this share of their pages as speeder pages
    (listening.quality's default, 0.2).
    """

    max_speeder_share: float = 0.2

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _yes(values: pd.Series, column: str) -> np.ndarray:
    """A yes/no/'' column as booleans ('' is no); anything else names its row."""
    text = values.astype(str).str.strip().str.lower()
    bad = ~text.isin(["yes", "no", ""])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise RatingsError(f"row {row + 2}, column {column!r}: {values.iloc[row]!r} is not yes, no or empty.")
    return (text == "yes").to_numpy()


def _count(values: pd.Series, column: str) -> np.ndarray:
    """A non-negative integer column ('' is 0); anything else names its row."""
    text = values.astype(str).str.strip().replace("", "0")
    numbers = pd.to_numeric(text, errors="coerce")
    bad = numbers.isna() | (numbers < 0) | (numbers != np.floor(numbers))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise RatingsError(f"row {row + 2}, column {column!r}: {values.iloc[row]!r} is not a count (0, 1, 2, ...).")
    return numbers.to_numpy(dtype=np.int64)


def exclusion_table(raw: pd.DataFrame, rules: ExclusionRules | None = None) -> pd.DataFrame:
    """Per rater of ``raw`` (ratings in the CSV format, flag columns optional): flags, decision and reason.

    Rows in order of first appearance of each participant; columns
    :data:`EXCLUSION_COLUMNS`. Raises RatingsError for a malformed flag cell.
    """
    rules = rules or ExclusionRules()
    frame = raw.rename(columns={c: str(c).strip().lstrip("\ufeff") for c in raw.columns})
    participant = frame["participant"].astype(str).str.strip()
    page = frame["page"].astype(str).str.strip()
    has = {c: c in frame.columns for c in FLAG_COLUMNS}
    cols: dict[str, np.ndarray] = {}
    if has["excluded"]:
        cols["excluded"] = _yes(frame["excluded"], "excluded")
    if has["gold_failed"]:
        cols["gold_failed"] = _count(frame["gold_failed"], "gold_failed")
    if has["speeder_page"]:
        cols["speeder_page"] = _yes(frame["speeder_page"], "speeder_page")
    if has["speeder_pages"]:
        cols["speeder_pages"] = _count(frame["speeder_pages"], "speeder_pages")
    if has["straightliner"]:
        cols["straightliner"] = _yes(frame["straightliner"], "straightliner")

    work = pd.DataFrame({"participant": participant.to_numpy(), "page": page.to_numpy(), **cols})
    work["external_id"] = frame["external_id"].astype(str).str.strip().to_numpy() if has["external_id"] else ""
    work["exclusion_reason"] = (frame["exclusion_reason"].astype(str).str.strip().to_numpy()
                                if has["exclusion_reason"] else "")
    grouped = work.groupby("participant", sort=False)
    out = pd.DataFrame({"participant": list(grouped.groups)})
    out["external_id"] = grouped["external_id"].first().to_numpy()
    out["pages"] = grouped["page"].nunique().to_numpy()
    out["gold_failed"] = grouped["gold_failed"].max().to_numpy() if has["gold_failed"] else 0
    if has["speeder_page"]:
        speeder_page_count = work[work["speeder_page"]].groupby("participant")["page"].nunique()
        out["speeder_pages"] = out["participant"].map(speeder_page_count).fillna(0).astype(int).to_numpy()
    elif has["speeder_pages"]:
        out["speeder_pages"] = grouped["speeder_pages"].max().to_numpy()
    else:
        out["speeder_pages"] = 0
    out["straightliner"] = grouped["straightliner"].any().to_numpy() if has["straightliner"] else False

    if has["excluded"]:
        out["excluded"] = grouped["excluded"].any().to_numpy()
        recorded = grouped["exclusion_reason"].agg(lambda s: next((v for v in s if v), "")).to_numpy()
        out["reason"] = [r or ("excluded by the study" if e else "") for r, e in zip(recorded, out["excluded"])]
        out["decided_by"] = "study"
    else:
        reasons = []
        for row in out.itertuples(index=False):
            why = []
            if row.gold_failed:
                why.append(f"failed {row.gold_failed} gold page(s)")
            if row.pages and row.speeder_pages / row.pages > rules.max_speeder_share:
                why.append(f"{row.speeder_pages} of {row.pages} page(s) were speeder pages "
                           f"(more than {rules.max_speeder_share:g} of them)")
            if row.straightliner:
                why.append("straight-lining (answers barely vary)")
            reasons.append("; ".join(why))
        out["reason"] = reasons
        out["excluded"] = out["reason"] != ""
        any_flags = has["gold_failed"] or has["speeder_page"] or has["speeder_pages"] or has["straightliner"]
        out["decided_by"] = "flags" if any_flags else ""
    out["gold_failed"] = out["gold_failed"].astype(int)
    out["speeder_pages"] = out["speeder_pages"].astype(int)
    out["straightliner"] = out["straightliner"].astype(bool)
    out["excluded"] = out["excluded"].astype(bool)
    return out[list(EXCLUSION_COLUMNS)].reset_index(drop=True)


def excluded_participants(table: pd.DataFrame) -> set[str]:
    """The participant ids the table excludes."""
    return set(table.loc[table["excluded"], "participant"])
