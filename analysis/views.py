"""The analyst page of a study: Figure 4 drawn inline, the tables, and every exported file.

The results are computed once per state of the ratings (analysis.studies);
a GET only reads and hashes the ratings, then serves the stored files.
"""

from __future__ import annotations

from pathlib import Path

import plotly
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from analysis.studies import current_results
from config.ranged import ranged_file_response, safe_path
from listening.models import Study

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@staff_member_required
@require_GET
def study_analysis(request, pk: int):
    """The study's tables and Figure 4 for its ratings as they stand (stored results, computed on change)."""
    study = get_object_or_404(Study, pk=pk)
    results = current_results(study)
    figure = results.load("figure4.json") or None
    raters = results.load("exclusions.json")
    context = {
        "study": study, "error": results.error, "warnings": results.warnings, "files": results.files(),
        "results_key": results.key,
        "mos": results.load("mos.json"),
        "subjects": results.load("subjects.json"),
        "significance": results.load("significance.json"),
        "figure": figure,
        "has_figure": figure is not None,
        "plotly_version": plotly.__version__,
        "exclusions": {
            "participants": len(raters),
            "excluded": sum(bool(r["excluded"]) for r in raters),
            # excluded raters first, then the flagged ones the rules kept
            "rows": sorted((r for r in raters if r["excluded"] or r["gold_failed"] or r["speeder_pages"]
                            or r["straightliner"]), key=lambda r: not r["excluded"]),
        },
        "mos_without": results.load("mos.json", without_exclusions=True),
        "subjects_without": results.load("subjects.json", without_exclusions=True),
        "files_without": results.files(without_exclusions=True),
    }
    return render(request, "analysis/study.html", context)


@staff_member_required
@require_GET
def study_file(request, pk: int, name: str, without_exclusions: bool = False):
    """One file of the study's current results, or of those over every rater (Range requests honoured)."""
    study = get_object_or_404(Study, pk=pk)
    if "/" in name or name.startswith("."):
        raise Http404("no such file")
    folder = current_results(study).subfolder(without_exclusions=without_exclusions)
    if folder is None:
        raise Http404("no such results")
    path = safe_path(folder, name)
    if path.parent != folder.resolve():
        raise Http404("no such file")
    return ranged_file_response(request, path)


@staff_member_required
@require_GET
@cache_control(private=True, max_age=86400)
def plotly_js(request, version: str):
    """plotly.js as shipped with the installed plotly package (the URL names its version, for caching)."""
    if version != plotly.__version__:
        raise Http404("no such plotly version")
    return ranged_file_response(request, PLOTLY_JS, content_type="text/javascript")
