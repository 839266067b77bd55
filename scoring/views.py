"""Experimenter pages: the registered systems with Table 1, and each system's ranking with players."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from scoring.models import Evaluation, Score, System


@login_required
def systems(request):
    rows = System.objects.order_by("name")
    table1 = Evaluation.objects.select_related("system", "db").order_by("db__name", "system__name")
    return render(request, "scoring/systems.html", {"systems": rows, "table1": table1})


@login_required
def ranking(request, name: str):
    """Matched candidates by descending score (top 25 and bottom 25), with their mixes."""
    system = get_object_or_404(System, name=name)
    qs = (Score.objects.filter(system=system, candidate__condition="matched")
          .select_related("candidate", "candidate__vocal_clip", "candidate__db"))
    top = list(qs.order_by("-value", "candidate_id")[:25])
    bottom = list(qs.order_by("value", "candidate_id")[:25])
    return render(request, "scoring/ranking.html",
                  {"system": system, "top": top, "bottom": bottom, "n": qs.count()})
