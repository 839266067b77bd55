"""Ratings and designs as tables (no Django here).

The ratings table is the long format of issue 6 §1, one row per
(participant, stimulus, aspect, system): the contract with `analysis`. A
stimulus that several systems picked was rated once and is written once per
system, under the id ``<stimulus pk>/<system>`` so that every exported
stimulus id names one system (the analysis requires that). Filler stimuli
(no system label, see `listening.design`) are not exported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields

import pandas as pd

from listening.aspects import ASPECTS
from listening.errors import ExportError

DESIGN_COLUMNS: tuple[str, ...] = (
    "study", "task", "seed", "page", "position", "query", "stimulus", "candidate", "system", "group", "rank", "score",
)




@dataclass(frozen=True)
class RatingRow:
    """One exported rating. `group` is top, bottom or '' (original and retrieval stimuli)."""

    task: str
    page: int
    participant: str
    stimulus: str
    system: str
    group: str
    query: str
    aspect: str
    score: int
    heard_before: str
    seconds: float
    listens_daily: str
    produces_music: str
    external_id: str = ""
    completion_code: str = ""
    plays: int = 0
    speeder_page: str = ""
    gold_failed: int = 0
    speeder_pages: int = 0
    straightliner: str = ""
    excluded: str = ""
    exclusion_reason: str = ""
    headphones: str = ""


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RatingRow))
"""The export's columns, in `RatingRow`'s order. The analysis reads the first thirteen (its contract); the rest let
an experimenter check payments and quality: external id (Prolific PID), completion code, plays of this clip
(browser's count), whether this page was a speeder page, the participant's quality flags (listening.quality),
whether / why they are excluded, and their headphone screening (passed / failed / '' when the study has none)."""


def yes_no(value: bool | None) -> str:
    """'yes' / 'no' for a stored boolean; '' when unanswered."""
    return "" if value is None else ("yes" if value else "no")


def export_group(group: str) -> str:
    """The analysis' group: top and bottom stay, every other design role becomes ''."""
    return group if group in ("top", "bottom") else ""


def ratings_frame(rows: Iterable[RatingRow]) -> pd.DataFrame:
    """DataFrame with exactly COLUMNS, sorted by task, page, participant, stimulus, aspect."""
    records = []
    for row in rows:
        if row.aspect not in ASPECTS:
            raise ExportError(f"unknown aspect {row.aspect!r}")
        if not 1 <= row.score <= 5:
            raise ExportError(f"score {row.score!r} of stimulus {row.stimulus} is outside 1-5")
        records.append(asdict(row))
    frame = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    if frame.empty:
        return frame
    frame["score"] = frame["score"].astype(int)
    frame["seconds"] = frame["seconds"].astype(float).round(3)
    aspect_order = {a: i for i, a in enumerate(ASPECTS)}
    frame = frame.sort_values(
        ["task", "page", "participant", "stimulus", "aspect"],
        key=lambda col: col.map(aspect_order) if col.name == "aspect" else col,
        kind="stable",
    )
    return frame.reset_index(drop=True)


def design_frame(rows: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """The design as one row per (page, position, label), with DESIGN_COLUMNS."""
    frame = pd.DataFrame.from_records(list(rows), columns=list(DESIGN_COLUMNS))
    return frame.sort_values(["page", "position", "system"], kind="stable").reset_index(drop=True)
