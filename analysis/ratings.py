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

from analysis.errors import RatingsError

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


def read_ratings_csv(path: str | Path) -> pd.DataFrame:
    """Read a ratings CSV as text, every column kept (the optional quality columns too), not yet validated.

    Every cell is read as text, so that an empty ``group`` or ``query`` stays
    an empty string and a stray "3.5" score is reported, not rounded.
    Raises :class:`RatingsError` for a missing or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise RatingsError(f"ratings file {str(path)!r} does not exist or is not a file.")
    try:
        return pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8-sig",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RatingsError(f"ratings file {str(path)!r} is not a readable CSV: {exc}") from exc


def load_ratings(path: str | Path) -> pd.DataFrame:
    """Read and validate a ratings CSV (see :data:`COLUMNS`): :func:`read_ratings_csv`, then :func:`validate_ratings`.

    Raises :class:`RatingsError` for an unreadable file or bad content.
    """
    return validate_ratings(read_ratings_csv(path))


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


@dataclass
class _Column:
    """A text column as codes into its distinct cleaned values (cleaning runs once per value)."""

    codes: np.ndarray  # (n_rows,) int64 into uniques
    uniques: np.ndarray  # (n_distinct,) object array of cleaned strings

    def values(self) -> np.ndarray:
        return self.uniques[self.codes]

    def mask(self, predicate) -> np.ndarray:
        """Row mask of ``predicate`` applied to each distinct value."""
        hit = np.fromiter((bool(predicate(u)) for u in self.uniques), dtype=bool, count=len(self.uniques))
        return hit[self.codes]


def _encode(values: pd.Series, *, lower: bool) -> _Column:
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    text = pd.Series(np.asarray(uniques, dtype=object), dtype=object).map(str).str.strip()
    if lower:
        text = text.str.lower()
    cleaned = list(text.to_numpy(dtype=object))
    cleaned.append("")  # target of the NA sentinel -1
    # merge values that became equal after cleaning (" top" and "top"); sorted, so that
    # category order is string order
    merged_codes, merged = pd.factorize(np.asarray(cleaned, dtype=object), sort=True)
    codes = np.where(codes < 0, len(cleaned) - 1, codes)
    return _Column(codes=merged_codes[codes].astype(np.int64), uniques=np.asarray(merged, dtype=object))


def _check_choice(col: _Column, column: str, allowed: tuple[str, ...]) -> None:
    bad = col.mask(lambda u: u not in allowed)
    if bad.any():
        pos = _first_bad(bad)
        shown = ", ".join(repr(a) for a in allowed)
        raise RatingsError(
            f"{_row_label(pos)}, column {column!r}: {col.uniques[col.codes[pos]]!r} is not one of "
            f"{shown} ({int(bad.sum())} bad rows in all)."
        )


def _check_not_empty(col: _Column, column: str, rows: np.ndarray | None = None) -> None:
    bad = col.mask(lambda u: u == "")
    if rows is not None:
        bad &= rows
    if bad.any():
        pos = _first_bad(bad)
        where = "" if rows is None else " for retrieval rows"
        raise RatingsError(
            f"{_row_label(pos)}, column {column!r}: empty, but a value is required{where} "
            f"({int(bad.sum())} empty in all)."
        )


def _numeric(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(float values with NaN for unparseable, the cleaned text shown in messages), per row."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        return numbers, numbers.astype(object)
    col = _encode(values, lower=False)
    parsed = pd.to_numeric(pd.Series(col.uniques, dtype=object), errors="coerce").to_numpy(dtype=float)
    return parsed[col.codes], col.values()


def _combined(*cols: _Column) -> np.ndarray:
    """One int64 code per row for the tuple of ``cols`` (mixed radix; fits for any realistic table)."""
    key = np.zeros(len(cols[0].codes), dtype=np.int64)
    for col in cols:
        key = key * max(len(col.uniques), 1) + col.codes
    return key


def validate_ratings(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a long-format ratings table and return a normalised copy.

    Checks, in order: every column of :data:`COLUMNS` present; ``task``,
    ``aspect``, ``group`` and the yes/no columns take known values; ``score``
    is an integer 1..5; ``seconds`` a non-negative number; ``participant``,
    ``page``, ``stimulus``, ``system`` non-empty, ``query`` non-empty for
    retrieval; no (participant, stimulus, aspect) rated twice; a stimulus has
    one task/system/group/query, a (participant, page) one heard_before/seconds,
    a participant one listens_daily/produces_music.

    Returns a new frame with exactly the :data:`COLUMNS`, row order kept:
    text columns as pandas Categoricals of str whose category order is string
    order (so groupby is cheap and sorting a column sorts its text);
    surrounding spaces stripped, choice columns lower-cased; ``score`` int64;
    ``seconds`` float64.
    Raises :class:`RatingsError` naming the first offending row and column.

    Text is cleaned once per distinct value (pandas.factorize), so a million
    rows validate in about a second.
    """
    if not isinstance(frame, pd.DataFrame):
        raise RatingsError(f"ratings must be a pandas DataFrame, got {type(frame).__name__}.")
    renamed = {c: str(c).strip().lstrip("\ufeff") for c in frame.columns}
    frame = frame.rename(columns=renamed)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise RatingsError(
            f"missing column(s) {', '.join(repr(c) for c in missing)}; the ratings CSV needs "
            f"{', '.join(COLUMNS)}."
        )
    if frame.columns.duplicated().any():
        dup = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise RatingsError(f"column(s) {', '.join(repr(c) for c in dup)} appear more than once.")
    if len(frame) == 0:
        raise RatingsError("the ratings table has no rows.")

    lowered = ("task", "aspect", "group", "heard_before", "listens_daily", "produces_music")
    text = {
        c: _encode(frame[c], lower=c in lowered) for c in COLUMNS if c not in ("score", "seconds")
    }
    _check_choice(text["task"], "task", TASKS)
    _check_choice(text["aspect"], "aspect", ASPECTS)
    _check_choice(text["group"], "group", GROUPS)
    for column in ("heard_before", "listens_daily", "produces_music"):
        _check_choice(text[column], column, YES_NO)
    for column in ("participant", "page", "stimulus", "system"):
        _check_not_empty(text[column], column)
    _check_not_empty(text["query"], "query", rows=text["task"].mask(lambda u: u == "retrieval"))

    score, score_text = _numeric(frame["score"])
    bad = ~np.isfinite(score) | (score != np.round(score))
    if bad.any():
        pos = _first_bad(bad)
        raise RatingsError(
            f"{_row_label(pos)}, column 'score': {score_text[pos]!r} is not an integer "
            f"score {SCORE_MIN}..{SCORE_MAX} ({int(bad.sum())} bad rows in all)."
        )
    bad = (score < SCORE_MIN) | (score > SCORE_MAX)
    if bad.any():
        pos = _first_bad(bad)
        raise RatingsError(
            f"{_row_label(pos)}, column 'score': {int(score[pos])} is outside "
            f"{SCORE_MIN}..{SCORE_MAX} ({int(bad.sum())} bad rows in all)."
        )
    seconds, seconds_text = _numeric(frame["seconds"])
    bad = ~np.isfinite(seconds) | (seconds < 0)
    if bad.any():
        pos = _first_bad(bad)
        raise RatingsError(
            f"{_row_label(pos)}, column 'seconds': {seconds_text[pos]!r} is not a "
            f"non-negative number of seconds ({int(bad.sum())} bad rows in all)."
        )

    dup = pd.Series(_combined(text["participant"], text["stimulus"], text["aspect"])).duplicated().to_numpy()
    if dup.any():
        pos = _first_bad(dup)
        twice = {c: text[c].uniques[text[c].codes[pos]] for c in ("participant", "stimulus", "aspect")}
        raise RatingsError(
            f"{_row_label(pos)}: participant {twice['participant']!r} rated stimulus "
            f"{twice['stimulus']!r} on {twice['aspect']!r} twice ({int(dup.sum())} duplicate rows)."
        )

    seconds_col = _Column(*pd.factorize(seconds))
    for key, values in _CONSTANT_WITHIN:
        # factorize numbers keys in order of first appearance, so the first row of key i
        # is the i-th row where a new code appears
        inverse, _ = pd.factorize(_combined(*(text[k] for k in key)))
        first_of_key = pd.Series(inverse).drop_duplicates().index.to_numpy()
        expected_pos = first_of_key[inverse]
        for column in values:
            col = seconds_col if column == "seconds" else text[column]
            bad = col.codes != col.codes[expected_pos]
            if bad.any():
                pos = _first_bad(bad)
                who = ", ".join(f"{k} {text[k].uniques[text[k].codes[pos]]!r}" for k in key)
                shown = col.uniques[col.codes[pos]]
                earlier = col.uniques[col.codes[expected_pos[pos]]]
                raise RatingsError(
                    f"{_row_label(pos)}, column {column!r}: {shown!r} differs from {earlier!r} in "
                    f"{_row_label(int(expected_pos[pos]))} for {who}; it must be the same on every "
                    f"row of that {' and '.join(key)}."
                )

    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for column in COLUMNS:
        if column == "score":
            out[column] = score.astype(np.int64)
        elif column == "seconds":
            out[column] = seconds
        else:
            col = text[column]
            out[column] = pd.Categorical.from_codes(col.codes, categories=pd.Index(col.uniques, dtype=str))
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
