"""Writing analysis tables as JSON, CSV and LaTeX (booktabs), plus a manifest.

JSON: a list of records, NaN written as null. CSV: same columns, NaN as an
empty cell. LaTeX: ``booktabs`` tabulars with the definitions in the caption,
ready to ``\\input``. The manifest records what is needed to recompute every
number: the input hash, the analysis settings and their hash, the study's
seeds, package versions and each written file's hash.

No Django here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from analysis.errors import TableExportError
from analysis.ratings import ASPECTS

FORMATS: tuple[str, ...] = ("json", "csv", "latex", "html")
PACKAGES: tuple[str, ...] = ("numpy", "scipy", "pandas", "pingouin", "plotly", "kaleido", "Django")
ASPECT_LETTERS: dict[str, str] = {"overall": "O", "harmony": "H", "rhythm": "R", "timbre": "T", "innovation": "I"}


def parse_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """Normalise "json,csv" or ["json", "csv"] to a tuple of known formats, in :data:`FORMATS` order."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    wanted = {str(f).strip().lower() for f in items if str(f).strip()}
    unknown = sorted(wanted - set(FORMATS))
    if unknown:
        raise TableExportError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}.")
    if not wanted:
        raise TableExportError(f"no output format given; choose from {', '.join(FORMATS)}.")
    return tuple(f for f in FORMATS if f in wanted)


def _plain(value: object) -> Any:
    """A JSON-safe Python value: numpy scalars unwrapped, NaN/None as None."""
    if value is None:
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NA:
        return None
    return value


def records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The table as a list of JSON-safe dicts, one per row, columns in order."""
    columns = list(table.columns)
    return [
        {c: _plain(v) for c, v in zip(columns, row)}
        for row in table.itertuples(index=False, name=None)
    ]


@contextmanager
def atomic_open(path: Path) -> Iterator[TextIO]:
    """A text handle (UTF-8, no newline translation) whose content replaces ``path`` only on success.

    It writes a temporary file in the same folder and ``os.replace``-s it onto
    ``path`` when the block ends without an exception, so a reader (or a second
    analyst writing the same file) sees the old file or the new one, never a
    half-written one; on an exception the temporary file is removed.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path) as handle:
        handle.write(text)
    return Path(path)


def write_json(table: pd.DataFrame, path: Path) -> Path:
    """Write ``table`` as a JSON list of records (NaN as null), atomically."""
    return write_atomic(path, json.dumps(records(table), indent=2, ensure_ascii=False) + "\n")


def _csv_field(value: object) -> str:
    """One CSV field: NaN/None empty, floats as their shortest round-trip repr, quoted only if needed."""
    plain = _plain(value)
    if plain is None:
        return ""
    text = repr(plain) if isinstance(plain, float) else str(plain)
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_column(values: pd.Series) -> np.ndarray:
    """The column's CSV fields, one per row: each distinct value formatted once, then taken by code."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        formatted = np.asarray([_csv_field(u) for u in uniques] + [""], dtype=object)
    else:
        # NaN/None never reach uniques: factorize gives them the code -1
        text = pd.Series(np.asarray(uniques, dtype=object), dtype=object).map(str)
        needs_quotes = text.str.contains(r'[,"\n\r]', regex=True).to_numpy(dtype=bool)
        quoted = text.to_numpy(dtype=object)
        if needs_quotes.any():
            quoted[needs_quotes] = ['"' + t.replace('"', '""') + '"' for t in quoted[needs_quotes]]
        formatted = np.append(quoted, "")
    return formatted[codes]  # code -1 (missing) picks the trailing ""


def write_csv(table: pd.DataFrame, path: Path) -> Path:
    """Write ``table`` as UTF-8 CSV (RFC 4180 quoting, \\n line ends), NaN/None as empty cells, atomically.

    Floats are written as their shortest round-trip repr. Each column is
    formatted once per distinct value and the rows joined in one pass: a
    million ratings take about a second where ``DataFrame.to_csv`` takes
    several. Reads back with pandas.read_csv.
    """
    columns = [_csv_column(table[name]) for name in table.columns]
    with atomic_open(path) as handle:
        handle.write(",".join(_csv_field(c) for c in table.columns) + "\n")
        if len(table):
            handle.write("\n".join(map(",".join, zip(*columns))))
            handle.write("\n")
    return Path(path)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
    "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "×": r"$\times$",
}


def latex_escape(text: object) -> str:
    """Escape LaTeX special characters in ``text`` (× becomes $\\times$)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def latex_tabular(
    header: Sequence[str], rows: Sequence[Sequence[object]], *, caption: str, label: str, align: str
) -> str:
    """One booktabs ``table`` environment; cells are escaped, ``caption`` is escaped too."""
    if len(align) != len(header):
        raise TableExportError(f"align {align!r} has {len(align)} columns, header has {len(header)}.")
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(caption)}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _num(value: object, digits: int) -> str:
    v = _plain(value)
    return "--" if v is None else f"{float(v):.{digits}f}"


def _p(value: object) -> str:
    v = _plain(value)
    if v is None:
        return "--"
    return "<.001" if float(v) < 0.001 else f"{float(v):.3f}".lstrip("0")


def mos_latex(mos: pd.DataFrame, *, definitions: Mapping[str, str]) -> str:
    """MOS table: one row per (task, system, group), one column per aspect, "mean [low, high]"."""
    aspects = [a for a in ASPECTS if a in set(mos["aspect"])]
    cell = mos.assign(
        text=[f"{_num(m, 2)} [{_num(lo, 2)}, {_num(hi, 2)}]"
              for m, lo, hi in mos[["mos", "ci_low", "ci_high"]].itertuples(index=False)]
    )
    rows = []
    for (task, system, group), part in cell.groupby(["task", "system", "group"], sort=False):
        by_aspect = dict(zip(part["aspect"], part["text"]))
        n = int(part["n_stimuli"].max())
        rows.append([task, system, group, n] + [by_aspect.get(a, "--") for a in aspects])
    caption = f"MOS. {definitions['mos']} {definitions['mos_ci']}"
    return latex_tabular(["Task", "System", "Group", "n"] + [a.capitalize() for a in aspects], rows,
                         caption=caption, label="tab:mos", align="lllr" + "c" * len(aspects))


def subjects_latex(subjects: pd.DataFrame, *, definitions: Mapping[str, str]) -> str:
    """Paper Table 2 layout: one row per statistic, one column per task."""
    tasks = list(subjects["task"])
    get = {t: r for t, r in zip(tasks, records(subjects))}

    def row(name: str, fmt) -> list[str]:
        return [name] + [fmt(get[t]) for t in tasks]

    def pct(v: Any) -> str:
        return "--" if v is None else f"{100 * float(v):.0f}%"

    rows = [
        row("Number of subjects", lambda r: str(r["n_subjects"])),
        row("Time spent per page", lambda r: f"{_num(r['mean_seconds_per_page'], 0)} sec"),
        row("Report vocal 'never heard'", lambda r: pct(r["never_heard_share"])),
        row("Cronbach's alpha", lambda r: _num(r["cronbach_alpha"], 2)),
        row("Alpha 95% CI", lambda r: f"[{_num(r['alpha_ci_low'], 2)}, {_num(r['alpha_ci_high'], 2)}]"),
    ]
    caption = ("Statistics of subjects. "
               + " ".join(definitions[k] for k in ("mean_seconds_per_page", "never_heard_share", "cronbach_alpha")))
    return latex_tabular([""] + [t.capitalize() for t in tasks], rows, caption=caption,
                         label="tab:subjects", align="l" + "c" * len(tasks))


def significance_latex(significance: pd.DataFrame, *, definitions: Mapping[str, str]) -> str:
    """Paper Tables 3/4 layout (level marks, aspects O H R T I) per (task, comparison), then the details."""
    parts = []
    for (task, comparison), part in significance.groupby(["task", "comparison"], sort=False):
        test = " / ".join(sorted({str(t) for t in part["test"].dropna()}))
        rows = []
        key = "system_a" if comparison == "top_vs_bottom" else "system_b"
        for system, sub in part.groupby(key, sort=False):
            marks = dict(zip(sub["aspect"], sub["level"].replace("", "--")))
            rows.append([system] + [marks.get(a, "--") for a in ASPECTS])
        if comparison == "top_vs_bottom":
            title = f"{task.capitalize()}: significance levels, top vs bottom stimuli of each system ({test})."
        else:
            best = str(part["system_a"].iloc[0])
            title = f"{task.capitalize()}: significance levels, {best} vs other systems ({test})."
        title += " × means not significant; -- not computed. " + definitions["level"]
        parts.append(latex_tabular(["System"] + [ASPECT_LETTERS[a] for a in ASPECTS], rows, caption=title,
                                   label=f"tab:sig-{task}-{str(comparison).replace('_', '-')}", align="l" + "c" * 5))
    detail_rows = [
        [r["task"], r["comparison"].replace("_", " "), r["system_a"], r["system_b"], ASPECT_LETTERS[r["aspect"]],
         r["test"] or "--", _num(r["statistic"], 1), _p(r["p"]), _p(r["p_holm"]), _num(r["effect_size"], 2),
         r["level"] or "--"]
        for r in records(significance)
    ]
    caption = ("Significance tests in detail. Mann-Whitney U: " + definitions["mann_whitney"]
               + " Wilcoxon signed-rank: " + definitions["wilcoxon"] + " " + definitions["holm"])
    parts.append(latex_tabular(
        ["Task", "Comparison", "System A", "System B", "Aspect", "Test", "U/W", "p", "p (Holm)", "r", "Level"],
        detail_rows, caption=caption, label="tab:sig-detail", align="lllllcrrrrc"))
    return "\n".join(parts)


def exclusions_latex(exclusions: pd.DataFrame) -> str:
    """Who was excluded and why: one row per excluded rater (a single 'none' row when nobody was)."""
    excluded = exclusions[exclusions["excluded"].astype(bool)]
    rows = [[r["participant"], r["external_id"] or "--", r["pages"], r["gold_failed"], r["speeder_pages"],
             "yes" if r["straightliner"] else "no", r["reason"]] for r in records(excluded)]
    if not rows:
        rows = [["none", "--", "--", "--", "--", "--", "nobody was excluded"]]
    caption = (f"Excluded participants: {len(excluded)} of {len(exclusions)}. Gold: gold pages failed; "
               "speeder: pages faster than the speed rule; straight-lining: the variance of a rater's answers "
               "below the study's threshold (ITU-T P.808: 0.1).")
    return latex_tabular(["Participant", "External id", "Pages", "Gold failed", "Speeder pages", "Straight-lining",
                          "Reason"], rows, caption=caption, label="tab:exclusions", align="llrrrll")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (what ``sha256sum`` prints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_frame(frame: pd.DataFrame) -> str:
    """Hex SHA-256 of a frame's content: pandas' per-row hashes (index excluded), then SHA-256.

    Order- and value-sensitive, independent of how the frame was stored;
    vectorised, so a million rows take well under a second.
    """
    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256(",".join(frame.columns).encode())
    digest.update(row_hashes.tobytes())
    return digest.hexdigest()


def sha256_json(value: object) -> str:
    """Hex SHA-256 of ``value`` as canonical JSON (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def package_versions() -> dict[str, str | None]:
    """Python and the analysis packages' installed versions (None where not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def write_manifest(path: Path, manifest: Mapping[str, object], *, files: Iterable[Path]) -> Path:
    """Write ``manifest`` plus package versions and a hash of every file in ``files`` as JSON, atomically.

    ``files`` are named by their path relative to the manifest's folder.
    """
    body = dict(manifest)
    body["package_versions"] = package_versions()
    root = Path(path).parent
    body["files"] = {_relative(p, root): sha256_file(p) for p in sorted(files, key=lambda p: _relative(p, root))}
    return write_atomic(path, json.dumps(body, indent=2, ensure_ascii=False, default=str) + "\n")


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).name
