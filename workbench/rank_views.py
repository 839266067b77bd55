"""The results page of a rank job: its top N in rank order with players, and one button that renders the rest.

The page reads only the rank job's own outputs (candidate ids in rank order and their scores), so what the
button renders is fixed by the job: a posted form carries no ids and a tampered one changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from generation.models import Candidate
from workbench import jobs
from workbench.models import Job


@dataclass(frozen=True)
class RankedRow:
    """One row of the table: the rank (1 = best), the score the rank job computed, and the stored candidate."""

    rank: int
    score: float
    candidate: Candidate


def ranked_rows(job: Job) -> list[RankedRow]:
    """The rank job's candidates in its rank order; a candidate deleted since is left out."""
    ids = [int(i) for i in job.outputs.get("candidates", [])]
    scores = [float(s) for s in job.outputs.get("scores", [])]
    found = Candidate.objects.select_related("harmonic_clip", "percussion_clip", "vocal_clip").in_bulk(ids)
    return [RankedRow(rank, score, found[i]) for rank, (i, score) in enumerate(zip(ids, scores), start=1)
            if i in found]


def pending_render(db: str, ids: list[int]) -> Job | None:
    """A queued or running render job of `db` that covers some of `ids`: while it runs, the button would only
    launch the same work twice."""
    wanted = set(ids)
    for job in Job.objects.filter(stage="render", mashupdb=db, state__in=Job.ACTIVE):
        if wanted & {int(i) for i in job.arguments.get("ids", [])}:
            return job
    return None


def _render_unrendered(request: HttpRequest, job: Job, unrendered: list[int]) -> HttpResponse:
    """Launch one render job narrowed to the rank job's unrendered candidates and show it (POST)."""
    db = str(job.outputs["db"])
    if not unrendered:
        messages.info(request, "Every candidate of this ranking is rendered.")
        return redirect("workbench:rank_result", pk=job.pk)
    busy = pending_render(db, unrendered)
    if busy is not None:
        messages.info(request, f"Job {busy.pk} already renders these candidates.")
        return redirect("workbench:job", pk=busy.pk)
    render_job = jobs.launch("render", {"db": db, "ids": unrendered})
    return redirect("workbench:job", pk=render_job.pk)


@staff_member_required
@require_http_methods(["GET", "POST"])
def rank_result(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the ranking (or, until the job is done, where it stands); POST: render what is not rendered."""
    jobs.reap()
    job = get_object_or_404(Job, pk=pk, stage="rank")
    if job.state != Job.DONE:
        if request.method == "POST":
            messages.error(request, f"Job {job.pk} is {job.state}: nothing to render yet.")
        return render(request, "workbench/rank.html", {"job": job})
    rows = ranked_rows(job)
    unrendered = [r.candidate.id for r in rows if not r.candidate.is_rendered]
    if request.method == "POST":
        return _render_unrendered(request, job, unrendered)
    return render(request, "workbench/rank.html", {
        "job": job, "rows": rows, "unrendered": unrendered,
        "pending": pending_render(str(job.outputs["db"]), unrendered) if unrendered else None})
