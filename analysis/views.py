"""The analyst page of a study: interactive Figure 4, the tables, and every exported file."""

from __future__ import annotations

import json
from pathlib import Path

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404
from django.shortcuts import get_object_or_404, render

from analysis.ratings import AnalysisError
from analysis.report import analyse_ratings
from analysis.studies import study_config, study_dir
from config.ranged import ranged_file_response, safe_path
from listening.models import Study
from listening.services import ratings_table


def _load(out: Path, name: str) -> list[dict]:
    path = out / name
    return json.loads(path.read_text()) if path.is_file() else []


@staff_member_required
def study_analysis(request, pk: int):
    """Analyse the study's ratings as they stand now (a few seconds at most) and show the results."""
    study = get_object_or_404(Study, pk=pk)
    out = study_dir(study)
    error, warnings = "", []
    ratings = ratings_table(study)
    if ratings.empty:
        error = "No ratings yet: the tables appear once participants have submitted pages."
    else:
        try:
            report = analyse_ratings(ratings, out, formats="json,csv,latex,html", config=study_config(study))
            warnings = report.warnings
        except AnalysisError as exc:
            error = str(exc)
    files = sorted(p.name for p in out.iterdir() if p.is_file()) if out.is_dir() and not error else []
    context = {
        "study": study, "error": error, "warnings": warnings, "files": files,
        "mos": _load(out, "mos.json") if not error else [],
        "subjects": _load(out, "subjects.json") if not error else [],
        "significance": _load(out, "significance.json") if not error else [],
        "has_figure": "figure4.html" in files,
    }
    return render(request, "analysis/study.html", context)


@staff_member_required
def study_file(request, pk: int, name: str):
    study = get_object_or_404(Study, pk=pk)
    if "/" in name:
        raise Http404("no such file")
    return ranged_file_response(request, safe_path(study_dir(study), name))
