"""One call from ratings to every output file: :func:`analyse_ratings`.

Used by the ``analyse`` management command (CSV from elsewhere) and, through
the same function, for a study's own ratings export (a DataFrame in the
ratings CSV format), so both paths produce identical files.

No Django here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import exclusions, exports, figures, tables
from analysis.errors import AnalysisError, TableExportError
from analysis.ratings import coverage, read_ratings_csv, validate_ratings

TABLE_NAMES: tuple[str, ...] = ("mos", "subjects", "significance")
WITHOUT_EXCLUSIONS = "without_exclusions"  # subfolder with the results of every rater, excluded ones included


@dataclass
class Report:
    """What one analysis computed and wrote.

    Tables are DataFrames with the exported columns, computed without the
    raters the quality rules exclude; ``exclusions`` lists every rater with
    their flags and whether / why they are excluded; ``without_exclusions``
    holds the same tables over every rater (None when nobody is excluded).
    ``files`` maps each written file's path relative to ``out_dir`` to its
    path; ``warnings`` are the non-fatal problems
    found (short coverage, cells that could not be tested, static figure
    export), also recorded in the manifest; no Python warnings or log records
    are emitted, the caller decides how to show them.
    """

    mos: pd.DataFrame
    subjects: pd.DataFrame
    significance: pd.DataFrame
    medians: pd.DataFrame
    config: tables.AnalysisConfig
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    exclusions: pd.DataFrame | None = None
    without_exclusions: "Results | None" = None

    def summary(self) -> str:
        """A few lines for a terminal: counts, best systems and where the files are."""
        n_cells = len(self.significance)
        n_skipped = int(self.significance["reason"].notna().sum()) if n_cells else 0
        lines = [
            f"{int(self.medians['stimulus'].nunique())} stimuli, {len(self.mos)} MOS rows, "
            f"{n_cells} significance cells ({n_skipped} not computed).",
        ]
        for task, best in dict(self.manifest.get("best_system", {})).items():
            shown = best if best is not None else "none (no system besides the original)"
            lines.append(f"best {task} system (highest overall MOS, original excluded): {shown}")
        for _, row in self.subjects.iterrows():
            alpha = row["cronbach_alpha"]
            shown = "n/a" if pd.isna(alpha) else f"{alpha:.3f}"
            lines.append(f"{row['task']}: {row['n_subjects']} subjects, Cronbach's alpha {shown}")
        excl = dict(self.manifest.get("exclusions", {}))
        if excl.get("excluded"):
            lines.append(f"excluded {excl['excluded']} of {excl['participants']} participants by the quality rules "
                         f"(results without exclusions in {excl['without_exclusions']}):")
            for row in self.exclusions[self.exclusions["excluded"]].itertuples(index=False):  # type: ignore[index]
                who = f"{row.participant} ({row.external_id})" if row.external_id else str(row.participant)
                lines.append(f"  {who}: {row.reason}")
        else:
            lines.append(f"no participant excluded by the quality rules ({excl.get('participants', 0)} participants)")
        lines.append(f"wrote {len(self.files)} files to {self.out_dir}: {', '.join(sorted(self.files))}")
        return "\n".join(lines)


def _skipped_cells(significance: pd.DataFrame) -> list[str]:
    """One warning per comparison whose cells could not be computed, aspects with the same reason merged."""
    if significance.empty:
        return []
    skipped = significance[significance["reason"].notna()]
    out = []
    keys = ["task", "comparison", "system_a", "system_b", "reason"]
    for (task, comparison, system_a, system_b, reason), part in skipped.groupby(keys, sort=False):
        what = (f"{system_a} top vs bottom" if comparison == "top_vs_bottom"
                else f"{system_a} (best) vs {system_b}")
        out.append(f"{task}: {what} not tested on {', '.join(part['aspect'])}: {reason}")
    return out


def analyse_ratings(
    df_or_path: pd.DataFrame | str | Path,
    out_dir: str | Path,
    *,
    formats: str | Iterable[str] = exports.FORMATS,
    holm: bool = False,
    config: Mapping[str, object] | tables.AnalysisConfig | None = None,
) -> Report:
    """Validate ratings, compute the MOS, subjects and significance tables, write every file.

    ``df_or_path``: a ratings CSV path or a DataFrame in the same long format
    (analysis.ratings.COLUMNS). ``out_dir`` is created if needed. ``formats``:
    any of json, csv, latex, html (figure4). ``holm``: add Holm-adjusted p per
    (task, comparison) and mark levels by it. ``config``: analysis settings
    (tables.AnalysisConfig fields, e.g. ratings_per_stimulus, seeds).

    Quality control (analysis.exclusions): the raters the study excluded
    (its ``excluded`` column) or, without that column, those the flag columns
    exclude, are left out of the tables; the same tables over every rater go
    to ``without_exclusions/`` when anyone was excluded.

    Files, by format: json → mos.json, subjects.json, significance.json,
    exclusions.json; csv → the same tables as .csv plus stimulus_medians.csv
    and ratings.csv (a CSV input copied as given; a DataFrame written after
    validation, every rater); latex → mos.tex, subjects.tex, significance.tex,
    exclusions.tex;
    html → figure4.html and figure4.json (+ .png/.svg with kaleido), with
    one panel per task in the ratings. manifest.json always. Every file is
    written atomically (temporary file, then ``os.replace``).

    Raises AnalysisError (RatingsError, TableExportError, ...) with a message that
    names the bad row, column or setting; non-fatal problems are returned in
    ``Report.warnings`` (and written to the manifest).
    """
    cfg = tables.AnalysisConfig.from_mapping(config)  # type: ignore[arg-type]
    cfg.check()
    wanted = exports.parse_formats(formats)

    if isinstance(df_or_path, pd.DataFrame):
        raw = df_or_path
        source: dict[str, object] = {"kind": "dataframe"}
    elif isinstance(df_or_path, (str, Path)):
        path = Path(df_or_path)
        raw = read_ratings_csv(path)
        source = {"kind": "csv", "name": path.name, "file_sha256": exports.sha256_file(path)}
    else:
        raise AnalysisError(
            f"ratings must be a CSV path or a pandas DataFrame, got {type(df_or_path).__name__}."
        )
    everyone = validate_ratings(raw)  # errors name rows of the input as given
    source["rows"] = len(everyone)
    source["ratings_sha256"] = exports.sha256_frame(everyone)

    excl = exclusions.exclusion_table(raw, exclusions.ExclusionRules(max_speeder_share=cfg.max_speeder_share))
    dropped = exclusions.excluded_participants(excl)
    if dropped:
        keep = ~raw["participant"].astype(str).str.strip().isin(dropped).to_numpy()
        if not keep.any():
            raise AnalysisError(
                f"every participant ({len(excl)}) is excluded by the quality rules; nothing is left to analyse. "
                "The exclusions table says why; see the ratings export for their answers."
            )
        ratings = validate_ratings(raw[keep].reset_index(drop=True))
    else:
        ratings = everyone

    main = _results(ratings, cfg, holm=holm)
    warnings = list(main.warnings)
    if dropped:
        warnings.insert(0, f"{len(dropped)} of {len(excl)} participants excluded by the quality rules "
                           f"({len(everyone) - len(ratings)} of {len(everyone)} rating rows); the results "
                           f"without exclusions are in {WITHOUT_EXCLUSIONS}/.")

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TableExportError(f"cannot create output folder {str(out)!r}: {exc}") from exc

    written: list[Path] = []
    try:
        written += _write(main, out, wanted, cfg=cfg, warnings=warnings)
        if "json" in wanted:
            written.append(exports.write_json(excl, out / "exclusions.json"))
        if "csv" in wanted:
            written.append(exports.write_csv(excl, out / "exclusions.csv"))
            if source["kind"] == "csv":  # the raw file as given, byte for byte
                target = out / "ratings.csv"
                if not (target.exists() and target.samefile(Path(df_or_path))):
                    fd, tmp = tempfile.mkstemp(dir=out, prefix=".ratings.csv.", suffix=".tmp")
                    os.close(fd)
                    try:
                        shutil.copyfile(Path(df_or_path), tmp)
                        os.replace(tmp, target)
                    finally:
                        Path(tmp).unlink(missing_ok=True)
                written.append(target)
            else:
                written.append(exports.write_csv(everyone, out / "ratings.csv"))
        if "latex" in wanted:
            written.append(exports.write_atomic(out / "exclusions.tex", exports.exclusions_latex(excl)))
        unfiltered = None
        if dropped:
            unfiltered = _results(everyone, cfg, holm=holm)
            alt = out / WITHOUT_EXCLUSIONS
            alt.mkdir(exist_ok=True)
            written += _write(unfiltered, alt, wanted, cfg=cfg, warnings=[])
    except OSError as exc:
        raise TableExportError(f"cannot write into {str(out)!r}: {exc}") from exc

    manifest: dict[str, object] = {
        "input": source,
        "config": cfg.as_dict(),
        "config_sha256": exports.sha256_json(cfg.as_dict()),
        "study_config_sha256": exports.sha256_json(cfg.study) if cfg.study else None,
        "seeds": dict(cfg.seeds),
        "formats": list(wanted),
        "holm": holm,
        "best_system": main.best,
        "exclusions": {
            "participants": len(excl), "excluded": len(dropped),
            "decided_by": sorted({d for d in excl["decided_by"] if d}),
            "rows_used": len(ratings), "rows_in_input": len(everyone),
            "without_exclusions": f"{WITHOUT_EXCLUSIONS}/" if dropped else None,
            "best_system_without_exclusions": unfiltered.best if unfiltered is not None else None,
        },
        "definitions": tables.DEFINITIONS,
        "warnings": warnings,
    }
    manifest_path = exports.write_manifest(out / "manifest.json", manifest, files=written)
    files = {p.relative_to(out).as_posix(): p for p in [*written, manifest_path]}
    return Report(mos=main.mos, subjects=main.subjects, significance=main.significance, medians=main.medians,
                  config=cfg, out_dir=out, files=files, warnings=warnings, manifest=manifest, exclusions=excl,
                  without_exclusions=unfiltered)


@dataclass
class Results:
    """The tables of one set of ratings, and the non-fatal problems met computing them."""

    mos: pd.DataFrame
    subjects: pd.DataFrame
    significance: pd.DataFrame
    medians: pd.DataFrame
    best: dict[str, str | None]
    warnings: list[str]


def _results(ratings: pd.DataFrame, cfg: tables.AnalysisConfig, *, holm: bool) -> Results:
    """MOS, subjects and significance tables of validated ``ratings``, with their warnings."""
    warnings = coverage(ratings, ratings_per_stimulus=cfg.ratings_per_stimulus).messages()
    medians = tables.stimulus_medians(ratings)
    mos = tables.mos_table(medians, config=cfg)
    subjects = tables.subjects_table(ratings, config=cfg)
    significance = tables.significance_table(medians, mos, config=cfg, holm=holm)
    best = {
        task: tables.best_system(mos, task, original_system=cfg.original_system)
        for task in subjects["task"]
    }
    for task, system in best.items():
        if system is None:
            warnings.append(f"{task}: no system other than {cfg.original_system!r}; no best-vs-other tests.")
    for row in subjects.itertuples(index=False):
        if row.alpha_reason:
            warnings.append(f"{row.task}: {row.alpha_reason}")
    warnings += _skipped_cells(significance)
    return Results(mos=mos, subjects=subjects, significance=significance, medians=medians, best=best,
                   warnings=warnings)


def _write(results: Results, out: Path, wanted: tuple[str, ...], *, cfg: tables.AnalysisConfig,
           warnings: list[str]) -> list[Path]:
    """Write one set of results' tables and figure into ``out``; figure problems are appended to ``warnings``."""
    named = {"mos": results.mos, "subjects": results.subjects, "significance": results.significance}
    written: list[Path] = []
    if "json" in wanted:
        written += [exports.write_json(t, out / f"{n}.json") for n, t in named.items()]
    if "csv" in wanted:
        written += [exports.write_csv(t, out / f"{n}.csv") for n, t in named.items()]
        written.append(exports.write_csv(results.medians, out / "stimulus_medians.csv"))
    if "latex" in wanted:
        for name, fn in (("mos", exports.mos_latex), ("subjects", exports.subjects_latex),
                         ("significance", exports.significance_latex)):
            written.append(exports.write_atomic(out / f"{name}.tex", fn(named[name], definitions=tables.DEFINITIONS)))
    if "html" in wanted:
        fig = figures.figure4(results.mos, original_system=cfg.original_system)
        paths, problems = figures.write_figure(fig, out)
        written += paths
        warnings += problems
    return written
