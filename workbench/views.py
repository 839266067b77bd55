"""Staff pages for background jobs: the list, one job (polled JSON for its progress bar), cancel, retry, launch."""

from __future__ import annotations

from importlib.metadata import version

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from generation.models import MashupDB
from workbench import jobs, uploads
from workbench.forms import FORMS, ImportForm, MashupDBForm
from workbench.models import Job


@staff_member_required
def job_list(request):
    reaped = jobs.reap()
    return render(request, "workbench/jobs.html", {
        "active": Job.objects.filter(state__in=Job.ACTIVE),
        "failed": Job.objects.filter(state=Job.FAILED)[:20],
        "recent": Job.objects.exclude(state__in=Job.ACTIVE)[:50],
        "reaped": reaped, "stages": sorted(FORMS),
    })


@staff_member_required
def job_detail(request, pk: int):
    jobs.reap()
    job = get_object_or_404(Job, pk=pk)
    # the training curve is drawn with the plotly.js the analysis app serves (its version, not an import)
    plotly_version = version("plotly") if job.stage == "train" else ""
    return render(request, "workbench/job.html", {"job": job, "plotly_version": plotly_version})


@staff_member_required
def job_json(request, pk: int):
    jobs.reap()
    return JsonResponse(get_object_or_404(Job, pk=pk).snapshot())


@staff_member_required
@require_POST
def job_cancel(request, pk: int):
    try:
        jobs.cancel(get_object_or_404(Job, pk=pk))
    except jobs.WorkbenchError as exc:
        messages.error(request, str(exc))
    return redirect("workbench:job", pk=pk)


@staff_member_required
@require_POST
def job_retry(request, pk: int):
    try:
        new = jobs.retry(get_object_or_404(Job, pk=pk))
    except jobs.WorkbenchError as exc:
        messages.error(request, str(exc))
        return redirect("workbench:job", pk=pk)
    return redirect("workbench:job", pk=new.pk)


def _job_arguments(cleaned: dict) -> dict:
    """A form's answers as a Job's arguments: blank and unticked fields are left to the stage's defaults,
    while a number 0 (patience 0, seed 0) is kept as given."""
    return {k: v for k, v in cleaned.items() if v is not False and v not in ("", None)}


@staff_member_required
def launch(request, stage: str):
    if stage not in FORMS:
        raise Http404(f"no launch form for {stage!r}")
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    form = FORMS[stage](request.POST or None, initial=request.GET or None)
    if request.method == "POST" and form.is_valid():
        args = _job_arguments(form.cleaned_data)
        job = jobs.launch(stage, args)
        return redirect("workbench:job", pk=job.pk)
    return render(request, "workbench/launch.html", {"form": form, "stage": stage})


@staff_member_required
def new_db(request):
    """Create a MashupDB; its page then takes audio and the ingest job."""
    form = MashupDBForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        db = form.save()
        messages.success(request, f"MashupDB {db.name} created.")
        return redirect("generation:db", name=db.name)
    return render(request, "workbench/new_db.html", {"form": form})


@staff_member_required
def upload(request, name: str):
    """Take several audio files for MashupDB `name` (all checked first; one bad file stores none), then offer
    an ingest job on what the MashupDB's upload folder holds."""
    db = get_object_or_404(MashupDB, name=name)
    if request.method == "POST":
        files = request.FILES.getlist("files")
        try:
            stored = uploads.store_uploads(files, db_name=db.name)
        except jobs.WorkbenchError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Stored {len(stored)} file(s): {', '.join(p.name for p in stored)}.")
            return redirect("workbench:upload", name=db.name)
    waiting = uploads.stored_uploads(db.name)
    return render(request, "workbench/upload.html", {
        "db": db, "waiting": waiting, "max_bytes": settings.MASHLAB_UPLOAD_MAX_FILE_BYTES,
        "ingest_url": reverse("workbench:launch", args=["ingest"]) + f"?db={db.name}&source=uploads"})


@staff_member_required
def import_folder(request, name: str):
    """Launch an ingest job on the audio in a server folder under MASHLAB_IMPORT_ROOTS."""
    db = get_object_or_404(MashupDB, name=name)
    form = ImportForm(request.POST or None, initial={"db": db.name})
    if request.method == "POST" and form.is_valid():
        args = _job_arguments(form.cleaned_data)
        job = jobs.launch("ingest", args)
        return redirect("workbench:job", pk=job.pk)
    return render(request, "workbench/launch.html", {"form": form, "stage": "ingest (server folder)"})
