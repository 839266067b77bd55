"""Participant flow (consent -> questionnaire -> pages -> thanks) and the experimenter's study pages.

Every refusal is a clear 4xx page and stores nothing. A participant is known
only by the opaque token in their link (also kept in a signed cookie per
study, so the study link resumes too, and by their external id). A page's
clips are served under that page's own random key, only to the participant
holding it (listening.media); answers are saved as they are clicked.
"""

from __future__ import annotations

import functools
import time
from typing import cast
from urllib.parse import quote

from django.core.signing import BadSignature
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from listening import flow, media, screening, studies, tables
from listening.aspects import ASPECT_TEXT, SCALE
from listening.errors import ListeningError, ParticipantError
from listening.flow import ComeBackLater
from listening.forms import ConsentForm, DesignForm, QuestionnaireForm, parse_page_form, parse_screening_form
from listening.headphones import pass_mark, trial_wav
from listening.models import Assignment, Participant, Study
from listening.quality import session_pages
from listening.studies import StudySettings


def _error(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(request, "listening/error.html", {"message": message, "status": status}, status=status)


def _cookie(study: Study) -> str:
    return f"mashlab_study_{study.pk}"


def _participant(token: str) -> Participant:
    participant = Participant.objects.select_related("study").filter(token=token).first()
    if participant is None:
        raise ParticipantError("This participant link is not valid. Please use the link you were given.", status=404)
    return participant


def participant_view(view):
    """Turn ParticipantError into its clear page (JSON for the answer endpoint), with Retry-After when known."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            for attempt in range(10):
                try:
                    return view(request, *args, **kwargs)
                except OperationalError as exc:  # SQLite busy/locked past its timeout: every write rolled back
                    if not flow.retryable(exc):
                        raise
                    time.sleep(0.05 * (attempt + 1))
            raise ParticipantError("The study is very busy right now; please reload this page in a moment.",
                                   status=503, retry_after_s=5)
        except ParticipantError as exc:
            response: HttpResponse
            if request.path.endswith("/answer/"):
                response = JsonResponse({"error": exc.message}, status=exc.status)
            else:
                response = _error(request, exc.message, exc.status)
            if exc.retry_after_s:
                response["Retry-After"] = str(exc.retry_after_s)
            return response

    return wrapper


# --------------------------------------------------------------------------- participants

MAX_FORM_BYTES = 16 * 1024
FORM_TYPES = ("", "application/x-www-form-urlencoded", "multipart/form-data")


def small_form(view):
    """Participant POSTs: a small form body (16 KB) or 413/415 *before* anything reads it, then the CSRF check.

    The CSRF middleware would otherwise parse the body first (a 30 MB
    multipart part on the open consent form was accepted), so the view is
    exempt from the middleware and runs the same check itself, after the size
    and type checks.
    """
    protected = csrf_protect(view)

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method == "POST":
            ctype = request.content_type or ""
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = MAX_FORM_BYTES + 1
            if length > MAX_FORM_BYTES:
                return _error(request, "This request is too large.", 413)
            if ctype not in FORM_TYPES:
                return _error(request, "Please submit the form from the study page.", 415)
        return protected(request, *args, **kwargs)

    return csrf_exempt(wrapper)


def _client_ip(request: HttpRequest) -> str:
    """The peer address (REMOTE_ADDR); a proxy's X-Forwarded-For is not trusted, anyone can write it."""
    return request.META.get("REMOTE_ADDR", "")[:64]


def _external_ids(request: HttpRequest) -> dict[str, str]:
    """PROLIFIC_PID (or ?pid=), STUDY_ID and SESSION_ID from the link, or from the consent form carrying them."""
    def pick(*names):
        for name in names:
            value = request.GET.get(name) or request.POST.get(name)
            if value:
                return value
        return ""
    return {"external_id": flow.clean_external_id(pick("PROLIFIC_PID", "pid")),
            "external_study": flow.clean_external_id(pick("STUDY_ID", "study_id")),
            "external_session": flow.clean_external_id(pick("SESSION_ID", "session_id"))}


def _resume(participant: Participant) -> HttpResponse:
    response = redirect("listening:participant", token=participant.token)
    response.set_signed_cookie(_cookie(participant.study), participant.token, salt="listening",
                               max_age=60 * 60 * 24 * 60, httponly=True, samesite="Lax")
    return response


@require_http_methods(["GET", "POST"])
@small_form
@participant_view
def entry(request: HttpRequest, public_token: str) -> HttpResponse:
    """The participant link: information and consent; resumes a participant who already started.

    The same external id (PROLIFIC_PID / pid) returns to its own participant,
    from any browser: a Prolific rater who switches device keeps their pages.
    """
    study = Study.objects.filter(public_token=public_token).first()
    if study is None:
        raise ParticipantError("There is no study at this address. Please check the link you were given.", status=404)
    try:
        token = request.get_signed_cookie(_cookie(study), default=None, salt="listening")
    except BadSignature:
        token = None
    if token and Participant.objects.filter(token=token, study=study).exists():
        return redirect("listening:participant", token=token)
    ids = _external_ids(request)
    if ids["external_id"]:
        known = Participant.objects.filter(study=study, external_id=ids["external_id"]).first()
        if known is not None:
            return _resume(known)
    flow.require_open(study)
    form = ConsentForm(request.POST if request.method == "POST" else None)
    context = {"study": study, "form": form, **ids}
    if request.method == "POST":
        if not form.is_valid():
            return render(request, "listening/consent.html", context, status=400)
        participant = flow.start_participant(study, **ids, user_agent=request.headers.get("User-Agent", ""),
                                             client_ip=_client_ip(request))
        return _resume(participant)
    return render(request, "listening/consent.html", context)


@require_GET
@participant_view
def participant_home(request: HttpRequest, token: str) -> HttpResponse:
    """Where a participant is now: questionnaire, their current page, come back later, or the thanks page."""
    participant = _participant(token)
    study = participant.study
    if participant.finished_at is not None:
        return _thanks(request, participant)
    live = participant.assignments.filter(state=Assignment.State.RESERVED, expires_at__gte=timezone.now()).first()
    if live is None or study.state != Study.State.CLOSED:
        flow.require_open(study)
    if screening.pending(participant):
        return _render_screening(request, participant)
    if participant.questionnaire_at is None:
        return render(request, "listening/questionnaire.html",
                      {"participant": participant, "form": QuestionnaireForm()})
    try:
        assignment = flow.current_assignment(participant) if study.state == Study.State.OPEN else \
            Assignment.objects.select_related("page").get(pk=cast(Assignment, live).pk)  # not open: require_open let it by with a live one
    except ComeBackLater as exc:
        response = render(request, "listening/come_back.html", {"participant": participant, "message": exc.message,
                                                                 "retry_after_s": exc.retry_after_s})
        response["Retry-After"] = str(exc.retry_after_s)
        return response
    if assignment is None:
        return _thanks(request, participant)
    return _render_page(request, participant, assignment)


def completion_url(participant: Participant) -> str:
    """The study's completion URL with ``{code}`` and ``{pid}`` filled in (URL-encoded); '' when none is set."""
    template = StudySettings.of(participant.study).completion_url
    if not template:
        return ""
    return template.replace("{code}", quote(participant.completion_code, safe="")).replace(
        "{pid}", quote(participant.external_id, safe=""))


def _thanks(request: HttpRequest, participant: Participant) -> HttpResponse:
    done = participant.assignments.filter(state=Assignment.State.DONE).count()
    return render(request, "listening/thanks.html",
                  {"participant": participant, "study": participant.study, "done": done,
                   "screening_failed": screening.failed(participant),
                   "completion_url": completion_url(participant) if done else ""})


def _render_screening(request, participant, *, field_errors=None, values=None, status=200) -> HttpResponse:
    """The headphone check: one player and three choices per trial; the answer key stays on the server."""
    field_errors, values = field_errors or {}, values or {}
    rows = [{"n": n, "field": f"trial{n}", "value": str(values.get(f"trial{n}", "")),
             "error": field_errors.get(f"trial{n}", ""),
             "url": reverse("listening:screening_sound", kwargs={"token": participant.token, "trial": n})}
            for n in range(1, len(screening.trials(participant)) + 1)]
    return render(request, "listening/screening.html", {
        "participant": participant, "trials": rows, "errors": field_errors, "choices": SCREENING_CHOICES,
        "pass_mark": pass_mark(len(rows))}, status=status)


SCREENING_CHOICES = ((1, "First"), (2, "Second"), (3, "Third"))


@require_POST
@small_form
@participant_view
def screening_submit(request: HttpRequest, token: str) -> HttpResponse:
    """Score the headphone check once; a pass goes on to the study, a failure ends the session politely."""
    participant = _participant(token)
    flow.require_open(participant.study)
    if not screening.pending(participant):
        return redirect("listening:participant", token=token)  # taken already (replay, back button): kept as it is
    try:
        answers = parse_screening_form(request.POST, n_trials=len(screening.trials(participant)))
    except ParticipantError as exc:
        if not exc.field_errors:
            raise
        return _render_screening(request, participant, field_errors=exc.field_errors, values=request.POST,
                                 status=400)
    screening.record(participant, answers)
    return redirect("listening:participant", token=token)


@require_GET
@participant_view
def screening_sound(request: HttpRequest, token: str, trial: int) -> HttpResponse:
    """Trial `trial` of the participant's headphone check as a WAV (only while their check is pending)."""
    participant = _participant(token)
    flow.require_open(participant.study)
    response = HttpResponse(trial_wav(screening.trial_of(participant, trial)), content_type="audio/wav")
    response["Cache-Control"] = "private, no-store"
    return response


def _render_page(request, participant, assignment, *, values=None, message="", field_errors=None,
                 status=200) -> HttpResponse:
    study = participant.study
    saved = flow.saved_answers(assignment)
    values = {**saved, **{k: v for k, v in (values or {}).items() if isinstance(v, str)}}
    field_errors = field_errors or {}
    missing = flow.missing_plays(assignment) if study.require_full_play else {}
    clips = []
    for n in (1, 2):
        clips.append({
            "n": n,
            "url": reverse("listening:clip", kwargs={"token": participant.token, "media_key": assignment.media_key,
                                                     "clip": n}),
            "error": field_errors.get(f"clip{n}", ""),
            "locked": f"clip{n}" in missing,
            "aspects": [{"key": a, "name": ASPECT_TEXT[a][0], "text": ASPECT_TEXT[a][1], "field": f"clip{n}_{a}",
                         "value": values.get(f"clip{n}_{a}", ""), "error": field_errors.get(f"clip{n}_{a}", "")}
                        for a in ASPECT_TEXT],
        })
    done = participant.assignments.filter(state=Assignment.State.DONE).count()
    total = max(done + 1, session_pages(
        test_pages=min(study.pages_per_participant, study.pages.filter(kind="test").count()),
        gold_every=StudySettings.of(study).quality.gold_every, gold_pages=study.pages.filter(kind="gold").count()))
    return render(request, "listening/page.html", {
        "participant": participant, "study": study, "assignment": assignment, "clips": clips, "scale": SCALE,
        "number": done + 1, "total": total, "heard": values.get("heard_before", ""), "message": message,
        "errors": field_errors, "heard_error": field_errors.get("heard_before", ""),
        "answer_url": reverse("listening:answer", kwargs={"token": participant.token,
                                                          "assignment_id": assignment.pk}),
    }, status=status)


@require_POST
@small_form
@participant_view
def questionnaire(request: HttpRequest, token: str) -> HttpResponse:
    participant = _participant(token)
    flow.require_open(participant.study)
    form = QuestionnaireForm(request.POST)
    if not form.is_valid():
        return render(request, "listening/questionnaire.html", {"participant": participant, "form": form}, status=400)
    if participant.questionnaire_at is None:
        flow.save_questionnaire(participant, listens_daily=form.cleaned_data["listens_daily"] == "yes",
                                produces_music=form.cleaned_data["produces_music"] == "yes")
    return redirect("listening:participant", token=token)


@require_POST
@small_form
@participant_view
def submit(request: HttpRequest, token: str, assignment_id: int) -> HttpResponse:
    """Commit one page's answers (once), then go on to the next page (302)."""
    participant = _participant(token)
    assignment = Assignment.objects.filter(pk=assignment_id, participant=participant).select_related("page").first()
    if assignment is None:
        raise ParticipantError("This page is not one of yours.", status=404)
    if assignment.state == Assignment.State.DONE:
        return redirect("listening:participant", token=token)  # replay or back button: already stored, keep it
    try:
        answers = parse_page_form(request.POST)
        flow.submit_page(participant, assignment.pk, answers)
    except ParticipantError as exc:
        if assignment.state != Assignment.State.RESERVED or exc.status != 400 or not exc.field_errors:
            raise
        return _render_page(request, participant, assignment, values=request.POST, message=exc.message,
                            field_errors=exc.field_errors, status=400)
    return redirect("listening:participant", token=token)


@require_POST
@small_form
@participant_view
def answer(request: HttpRequest, token: str, assignment_id: int) -> HttpResponse:
    """One answer as it is clicked (fields ``field`` and ``value``): 204 when saved; JSON error otherwise."""
    participant = _participant(token)
    extra = set(request.POST.keys()) - {"field", "value", "csrfmiddlewaretoken"}
    if extra:
        raise ParticipantError("Unexpected field(s).", status=400)
    flow.save_answer(participant, assignment_id, field_name=request.POST.get("field", ""),
                     value=request.POST.get("value", ""))
    return HttpResponse(status=204)


@require_GET
@participant_view
def clip(request: HttpRequest, token: str, media_key: str, clip: int) -> HttpResponseBase:
    """Clip 1 or 2 of the participant's reserved page, under that page's own URL (listening.media)."""
    participant = _participant(token)
    assignment = (Assignment.objects.filter(media_key=media_key, participant=participant)
                  .select_related("page__study").first())
    if assignment is None or clip not in (1, 2) or assignment.state != Assignment.State.RESERVED:
        raise ParticipantError("No such clip.", status=404)
    return media.serve_clip(request, assignment, clip)


# --------------------------------------------------------------------------- experimenters


def experimenter_view(view):
    """Staff only: anyone else gets a clear 403 with a link to log in (no redirect, nothing revealed)."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not (request.user.is_authenticated and request.user.is_staff):
            login = f"{reverse('admin:login')}?next={request.get_full_path()}"
            return render(request, "listening/error.html", {
                "message": "This page is for experimenters. Please log in first.", "status": 403,
                "login_url": login}, status=403)
        return view(request, *args, **kwargs)

    return wrapper


@experimenter_view
def study_list(request: HttpRequest) -> HttpResponse:
    return render(request, "listening/study_list.html", {"studies": Study.objects.all()})


@experimenter_view
def dashboard(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_object_or_404(Study, pk=pk)
    link = request.build_absolute_uri(reverse("listening:entry", kwargs={"public_token": study.public_token}))
    return render(request, "listening/dashboard.html", {
        "study": study, "progress": flow.progress(study), "participant_link": link,
        "analysis_url": f"/analysis/study/{study.pk}/", "error": request.GET.get("error", "")[:300],
    })


@require_POST
@experimenter_view
def set_state(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_object_or_404(Study, pk=pk)
    try:
        studies.set_state(study, request.POST.get("state", ""))
    except ListeningError as exc:
        return _error(request, exc.message, 400)
    return redirect("listening:dashboard", pk=pk)


@require_GET
@experimenter_view
def design_export(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    study = get_object_or_404(Study, pk=pk)
    if fmt == "json":
        return _download(tables.design_json(study), "application/json", f"{study.name}-design.json")
    return _download(tables.design_table(study).to_csv(index=False), "text/csv", f"{study.name}-design.{fmt}")


def _download(body: str, content_type: str, filename: str) -> HttpResponse:
    """`body` as an attachment named `filename`: the one shape of every export download."""
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET
@experimenter_view
def ratings_export(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_object_or_404(Study, pk=pk)
    return _download(tables.ratings_table(study).to_csv(index=False), "text/csv", f"{study.name}-ratings.csv")


@require_GET
@experimenter_view
def participants_export(request: HttpRequest, pk: int) -> HttpResponse:
    """Every participant (screened out ones too) with code, pages done, headphone check and exclusion, as CSV."""
    study = get_object_or_404(Study, pk=pk)
    return _download(tables.participants_table(study).to_csv(index=False), "text/csv",
                     f"{study.name}-participants.csv")


@require_http_methods(["GET", "POST"])
@experimenter_view
def new_study(request: HttpRequest) -> HttpResponse:
    """The design_study command as a form; every refusal shows beside its field, and nothing is stored then."""
    form = DesignForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            study = studies.design_study(
                task=d["task"], name=d["name"], db_name=d["db"], systems=d["systems"],
                candidate_db=d["candidate_db"], top_n=d["top_n"], bottom_n=d["bottom_n"],
                n_queries=d["n_queries"], n_candidates=d["n_candidates"], seed=d["seed"],
                study_settings=form.study_settings())
        except ListeningError as exc:
            form.add_design_error(exc)
        else:
            return redirect("listening:dashboard", pk=study.pk)
    return render(request, "listening/new_study.html", {"form": form}, status=400 if form.errors else 200)
