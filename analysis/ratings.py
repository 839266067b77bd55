"""Loading and validating listening-test ratings (long format, one row per rating).

The ratings CSV is the contract between the listening app (its study export
writes it) and the analysis: analysts may also bring ratings collected
elsewhere, so every check here names the offending row and column instead of
letting pandas fail somewhere deep inside a groupby.

Row numbers in messages count like a spreadsheet or a text editor showing the
CSV: the header is row 1, the first rating is row 2. A DataFrame passed in
directly is numbered the same way by position.

No Django here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

TASKS: tuple[str, ...] = ("generation", "retrieval")
ASPECTS: tuple[str, ...] = ("overall", "harmony", "rhythm", "timbre", "innovation")
GROUPS: tuple[str, ...] = ("top", "bottom", "")
YES_NO: tuple[str, ...] = ("yes", "no")
SCORE_MIN, SCORE_MAX = 1, 5

COLUMNS: tuple[str, ...] = (
    "task",
    "page",
    "participant",
    "stimulus",
    "system",
    "group",
    "query",
    "aspect",
    "score",
    "heard_before",
    "seconds",
    "listens_daily",
    "produces_music",
)
"""The ratings CSV columns, in the order the study export writes them."""

# Values that must not vary within one key, with the key that fixes them.
_CONSTANT_WITHIN: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("stimulus",), ("task", "system", "group", "query")),
    (("participant", "page"), ("heard_before", "seconds")),
    (("participant",), ("listens_daily", "produces_music")),
)


class AnalysisError(ValueError):
    """Base of every error the analysis core raises for bad input or settings."""


class RatingsError(AnalysisError):
    """The ratings table is malformed; the message names the row and/or column."""


@dataclass(frozen=True)
class CoverageReport:
    """How completely the stimuli were rated.

    ``short`` lists (task, stimulus, aspect, n_ratings) for every cell with
    fewer than the expected ratings; ``extra`` the cells with more. Both are
    reported, not fatal: a study that lost a participant can still be analysed.
    """

    ratings_per_stimulus: int
    short: tuple[tuple[str, str, str, int], ...]
    extra: tuple[tuple[str, str, str, int], ...]

    def messages(self) -> list[str]:
        """Human-readable warnings, at most five examples per kind."""
        out: list[str] = []
        k = self.ratings_per_stimulus
        for cells, word in ((self.short, "fewer"), (self.extra, "more")):
            if not cells:
                continue
            stimuli = sorted({(task, stim) for task, stim, _, _ in cells})
            examples = ", ".join(
                f"{stim!r} ({task}, {aspect}: {n})" for task, stim, aspect, n in cells[:5]
            )
            more = f" and {len(cells) - 5} more" if len(cells) > 5 else ""
            out.append(
                f"{len(stimuli)} stimuli have {word} than k={k} ratings on some aspect: "
                f"{examples}{more}."
            )
        return out


def _row_label(position: int) -> str:
    return f"row {position + 2}"


def load_ratings(path: str | Path) -> pd.DataFrame:
    """Read and validate a ratings CSV (see :data:`COLUMNS`).

    Every cell is read as text first, so that an empty ``group`` or ``query``
    stays an empty string and a stray "3.5" score is reported, not rounded.

    Returns the validated frame of :func:`validate_ratings`.
    Raises :class:`RatingsError` for an unreadable file or bad content.
    """
    path = Path(path)
    if not path.is_file():
        raise RatingsError(f"ratings file {str(path)!r} does not exist or is not a file.")
    try:
        frame = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8-sig",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RatingsError(f"ratings file {str(path)!r} is not a readable CSV: {exc}") from exc
    return validate_ratings(frame)


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_choice(frame: pd.DataFrame, column: str, allowed: tuple[str, ...]) -> None:
    bad = ~frame[column].isin(allowed).to_numpy()
    if bad.any():
        pos = _first_bad(bad)
        shown = ", ".join(repr(a) for a in allowed)
        raise RatingsError(
            f"{_row_label(pos)}, column {column!r}: {frame[column].iloc[pos]!r} is not one of "
            f"{shown} ({int(bad.sum())} bad rows in all)."
        )


def _check_not_empty(frame: pd.DataFrame, column: str, rows: np.ndarray | None = None) -> None:
    bad = (frame[column].to_numpy() == "")
    if rows is not None:
        bad &= rows
    if bad.any():
        pos = _first_bad(bad)
        where = "" if rows is None else " for retrieval rows"
        raise RatingsError(
            f"{_row_label(pos)}, column {column!r}: empty, but a value is required{where} "
            f"({int(bad.sum())} empty in all)."
        )


def validate_ratings(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a long-format ratings table and return a normalised copy.

    Checks, in order: every column of :data:`COLUMNS` present; ``task``,
    ``aspect``, ``group`` and the yes/no columns take known values; ``score``
    is an integer 1..5; ``seconds`` a non-negative number; ``participant``,
    ``page``, ``stimulus``, ``system`` non-empty, ``query`` non-empty for
    retrieval; no (participant, stimulus, aspect) rated twice; a stimulus has
    one task/system/group/query, a (participant, page) one heard_before/seconds,
    a participant one listens_daily/produces_music.

    Returns a new frame with exactly the :data:`COLUMNS`, text columns as
    ``str`` (surrounding spaces stripped; categorical values lower-cased),
    ``score`` as int64 and ``seconds`` as float64, row order kept.
    Raises :class:`RatingsError` naming the first offending row and column.
    """
    if not isinstance(frame, pd.DataFrame):
        raise RatingsError(f"ratings must be a pandas DataFrame, got {type(frame).__name__}.")
    columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise RatingsError(
            f"missing column(s) {', '.join(repr(c) for c in missing)}; the ratings CSV needs "
            f"{', '.join(COLUMNS)}."
        )
    if len(frame) == 0:
        raise RatingsError("the ratings table has no rows.")
    frame = frame.copy()
    frame.columns = columns
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for column in COLUMNS:
        values = frame[column]
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            text = values.fillna("").astype(str).str.strip()
        else:
            text = values.astype(str).where(values.notna(), "")
        out[column] = text.to_numpy()

    for column in ("task", "aspect", "group", "heard_before", "listens_daily", "produces_music"):
        out[column] = out[column].str.lower()
    _check_choice(out, "task", TASKS)
    _check_choice(out, "aspect", ASPECTS)
    _check_choice(out, "group", GROUPS)
    for column in ("heard_before", "listens_daily", "produces_music"):
        _check_choice(out, column, YES_NO)
    for column in ("participant", "page", "stimulus", "system"):
        _check_not_empty(out, column)
    _check_not_empty(out, "query", rows=(out["task"] == "retrieval").to_numpy())

    score = pd.to_numeric(out["score"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(score) | (score != np.round(score))
    if bad.any():
        pos = _first_bad(bad)
        raise RatingsError(
            f"{_row_label(pos)}, column 'score': {out['score'].iloc[pos]!r} is not an integer "
            f"score {SCORE_MIN}..{SCORE_MAX} ({int(bad.sum())} bad rows in all)."
        )
    bad = (score < SCORE_MIN) | (score > SCORE_MAX)
    if bad.any():
        pos = _first_bad(bad)
        raise RatingsError(
            f"{_row_label(pos)}, column 'score': {int(score[pos])} is outside "
            f"{SCORE_MIN}..{SCORE_MAX} ({int(bad.sum())} bad rows in all)."
        )
    seconds = pd.to_numeric(out["seconds"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(seconds) | (seconds < 0)
    if bad.any():
        pos = _first_bad(bad)
        raise RatingsError(
            f"{_row_label(pos)}, column 'seconds': {out['seconds'].iloc[pos]!r} is not a "
            f"non-negative number of seconds ({int(bad.sum())} bad rows in all)."
        )
    out["score"] = score.astype(np.int64)
    out["seconds"] = seconds

    dup = out.duplicated(["participant", "stimulus", "aspect"], keep="first").to_numpy()
    if dup.any():
        pos = _first_bad(dup)
        row = out.iloc[pos]
        raise RatingsError(
            f"{_row_label(pos)}: participant {row['participant']!r} rated stimulus "
            f"{row['stimulus']!r} on {row['aspect']!r} twice ({int(dup.sum())} duplicate rows)."
        )

    for key, values in _CONSTANT_WITHIN:
        groups = out.groupby(list(key), sort=False, observed=True)
        for column in values:
            firsts = groups[column].transform("first").to_numpy()
            bad = out[column].to_numpy() != firsts
            if bad.any():
                pos = _first_bad(bad)
                who = ", ".join(f"{k} {out[k].iloc[pos]!r}" for k in key)
                raise RatingsError(
                    f"{_row_label(pos)}, column {column!r}: {out[column].iloc[pos]!r} differs "
                    f"from {firsts[pos]!r} given earlier for {who}; it must be the same on "
                    f"every row of that {' and '.join(key)}."
                )
    return out


def coverage(ratings: pd.DataFrame, *, ratings_per_stimulus: int) -> CoverageReport:
    """Count ratings per (task, stimulus, aspect) against the design's k.

    ``ratings`` is a validated frame (:func:`validate_ratings`);
    ``ratings_per_stimulus`` is k, the number of participants meant to rate
    each page (the paper: 3).
    """
    if ratings_per_stimulus < 1:
        raise RatingsError(f"ratings_per_stimulus must be >= 1, got {ratings_per_stimulus}.")
    counts = ratings.groupby(["task", "stimulus", "aspect"], sort=True, observed=True).size()
    cells = counts.reset_index(name="n")
    short = cells[cells["n"] < ratings_per_stimulus]
    extra = cells[cells["n"] > ratings_per_stimulus]

    def rows(part: pd.DataFrame) -> tuple[tuple[str, str, str, int], ...]:
        return tuple(
            (str(t), str(s), str(a), int(n))
            for t, s, a, n in part[["task", "stimulus", "aspect", "n"]].itertuples(index=False)
        )

    return CoverageReport(ratings_per_stimulus=ratings_per_stimulus, short=rows(short), extra=rows(extra))
