"""A study's analysis as stored results (Django glue for listening studies).

The analysis of a study is computed once per state of its ratings: the
results live in ``MEDIA_ROOT/analysis/study-<pk>/<key>/``, where ``key`` is a
hash of the ratings table, the analysis settings and :data:`RESULTS_VERSION`.
A GET of the analysis page or of one of its files reads the ratings, hashes
them and serves the stored folder; only a new or changed rating (or new
settings) triggers a computation. That computation writes into a private
temporary folder that is renamed into place with ``os.replace``: two analysts
who open the page at once compute side by side and the second rename finds
the results already there, so nobody ever reads a half-written folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from analysis.errors import AnalysisError
from analysis.exports import sha256_frame, sha256_json
from analysis.report import WITHOUT_EXCLUSIONS, analyse_ratings
from listening.models import Study
from listening.services import ratings_table

RESULTS_VERSION = 3  # bump when the files a study's analysis writes change
KEY_HEX = 16  # characters of the results key shown in folder names
FORMATS = "json,csv,latex,html"
STALE_TMP_S = 3600.0  # a temporary folder older than this is an abandoned computation


def study_dir(study: Study) -> Path:
    return Path(settings.MEDIA_ROOT) / "analysis" / f"study-{study.pk}"


def study_config(study: Study) -> dict:
    """Analysis settings from the study: k ratings per page, its design config and seed, its speed rule's share."""
    config = {"ratings_per_stimulus": study.ratings_per_page, "seeds": {"design": int(study.seed)},
              "study": {"id": study.pk, "name": study.name, "task": study.task, **(study.config or {})}}
    quality = (study.config or {}).get("quality") or {}
    if "max_speeder_share" in quality:
        config["max_speeder_share"] = float(quality["max_speeder_share"])
    return config


@dataclass
class StudyResults:
    """Where a study's current results are (``folder``), or why there are none (``error``)."""

    key: str = ""
    folder: Path | None = None
    error: str = ""
    computed: bool = False  # True when this call ran the analysis, False when it found it stored
    warnings: list[str] = field(default_factory=list)

    def load(self, name: str, *, without_exclusions: bool = False) -> list | dict:
        """A JSON file of the results ([] when absent or when there are no results)."""
        folder = self.subfolder(without_exclusions=without_exclusions)
        if folder is None:
            return []
        path = folder / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []

    def subfolder(self, *, without_exclusions: bool = False) -> Path | None:
        """The folder of the results with exclusions applied, or of those over every rater (None if absent)."""
        if self.folder is None:
            return None
        if not without_exclusions:
            return self.folder
        alt = self.folder / WITHOUT_EXCLUSIONS
        return alt if alt.is_dir() else None

    def files(self, *, without_exclusions: bool = False) -> list[str]:
        """Names of the result files, sorted."""
        folder = self.subfolder(without_exclusions=without_exclusions)
        if folder is None:
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def results_key(ratings, config: dict) -> str:
    """Hash of what the results depend on: the ratings table, the analysis settings and the code version."""
    return sha256_json({"ratings": sha256_frame(ratings), "config": config, "version": RESULTS_VERSION})[:KEY_HEX]


def current_results(study: Study) -> StudyResults:
    """The study's results for its ratings as they stand, computed only if no stored folder matches them."""
    ratings = ratings_table(study)
    if ratings.empty:
        return StudyResults(error="No ratings yet: the tables appear once participants have submitted pages.")
    return stored_results(ratings, study_config(study), study_dir(study))


def stored_results(ratings, config: dict, root: Path) -> StudyResults:
    """Results of ``ratings`` under ``config`` in ``root/<key>/``: read if stored, else computed and renamed in.

    The analysis runs in a private temporary folder under ``root`` that is
    renamed to ``root/<key>`` (``os.replace``, atomic on one file system);
    when another process renamed its folder first, ours is discarded and
    theirs served. Older result folders are removed afterwards.
    """
    key = results_key(ratings, config)
    final = root / key
    computed = False
    if not (final / "manifest.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        try:
            analyse_ratings(ratings, tmp, formats=FORMATS, config=config)
            try:
                os.replace(tmp, final)
                computed = True
            except OSError:
                if not (final / "manifest.json").is_file():  # not a lost race: a real failure
                    raise
        except AnalysisError as exc:
            return StudyResults(key=key, error=str(exc))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _prune(root, keep=key)
    manifest = json.loads((final / "manifest.json").read_text(encoding="utf-8"))
    return StudyResults(key=key, folder=final, computed=computed, warnings=list(manifest.get("warnings", [])))


def _prune(root: Path, *, keep: str) -> None:
    """Remove result folders of earlier ratings and temporary folders abandoned for over an hour.

    Another analyst's computation in progress (a young temporary folder) is
    left alone; a file being downloaded from a removed folder stays readable
    to its open handle.
    """
    now = time.time()
    for entry in root.iterdir():
        if not entry.is_dir() or entry.name == keep:
            continue
        if entry.name.startswith("."):
            try:
                if now - entry.stat().st_mtime < STALE_TMP_S:
                    continue
            except FileNotFoundError:
                continue
        elif len(entry.name) != KEY_HEX:
            continue
        shutil.rmtree(entry, ignore_errors=True)
