"""Participant flow (consent -> questionnaire -> pages -> thanks) and the experimenter's study pages.

Every refusal is a clear 4xx page and stores nothing. A participant is known
only by the opaque token in their link (also kept in a signed cookie per
study, so the study link resumes too); stimulus audio is served under the
participant's link and a random per-stimulus token, and only to the
participant holding that page.
"""

from __future__ import annotations

import functools
from pathlib import Path

from django.conf import settings
from django.core.signing import BadSignature
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from config.ranged import ranged_file_response, safe_path
from listening import services
from listening.design import DesignError
from listening.export import ASPECTS
from listening.forms import ConsentForm, DesignForm, QuestionnaireForm
from listening.models import Assignment, Participant, Stimulus, Study
from listening.services import ParticipantError
from listening.stimuli import CONTENT_TYPES

ASPECT_TEXT = {
    "harmony": ("Harmony", "Harmonic compatibility between the vocals and the music."),
    "rhythm": ("Rhythm", "Rhythmic compatibility between the vocals and the music."),
    "timbre": ("Timbre", "Is each part clear and recognisable? Is the mix spectrally balanced and professional?"),
    "innovation": ("Innovation", "Does the combination sound unexpected without clashing?"),
    "overall": ("Overall", "Does it sound professionally made, not like a random remix?"),
}
ASPECT_ORDER = ("harmony", "rhythm", "timbre", "innovation", "overall")
SCALE = [(1, "awful"), (2, "poor"), (3, "fair"), (4, "good"), (5, "excellent")]
assert set(ASPECT_ORDER) == set(ASPECTS)


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
    """Resolve the token and turn ParticipantError into its clear 4xx page."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except ParticipantError as exc:
            return _error(request, exc.message, exc.status)

    return wrapper


# --------------------------------------------------------------------------- participants


@require_http_methods(["GET", "POST"])
@participant_view
def entry(request: HttpRequest, public_token: str) -> HttpResponse:
    """The participant link: information and consent; resumes a participant who already started."""
    study = Study.objects.filter(public_token=public_token).first()
    if study is None:
        raise ParticipantError("There is no study at this address. Please check the link you were given.", status=404)
    try:
        token = request.get_signed_cookie(_cookie(study), default=None, salt="listening")
    except BadSignature:
        token = None
    if token and Participant.objects.filter(token=token, study=study).exists():
        return redirect("listening:participant", token=token)
    services.require_open(study)
    external_id = (request.GET.get("PROLIFIC_PID") or request.GET.get("pid") or request.POST.get("pid") or "").strip()
    form = ConsentForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if not form.is_valid():
            return render(request, "listening/consent.html", {"study": study, "form": form, "pid": external_id},
                          status=400)
        participant = services.start_participant(study, external_id=external_id,
                                                 user_agent=request.headers.get("User-Agent", ""))
        response = redirect("listening:participant", token=participant.token)
        response.set_signed_cookie(_cookie(study), participant.token, salt="listening", max_age=60 * 60 * 24 * 60,
                                   httponly=True, samesite="Lax", secure=request.is_secure())
        return response
    return render(request, "listening/consent.html", {"study": study, "form": form, "pid": external_id})


@require_GET
@participant_view
def participant_home(request: HttpRequest, token: str) -> HttpResponse:
    """Where a participant is now: questionnaire, their current page, or the thanks page."""
    participant = _participant(token)
    study = participant.study
    if participant.finished_at is not None:
        return _thanks(request, participant)
    services.require_open(study)
    if participant.questionnaire_at is None:
        return render(request, "listening/questionnaire.html",
                      {"participant": participant, "form": QuestionnaireForm()})
    assignment = services.current_assignment(participant)
    if assignment is None:
        return _thanks(request, participant)
    return _render_page(request, participant, assignment)


def _thanks(request: HttpRequest, participant: Participant) -> HttpResponse:
    done = participant.assignments.filter(state=Assignment.State.DONE).count()
    return render(request, "listening/thanks.html",
                  {"participant": participant, "study": participant.study, "done": done})


def _render_page(request, participant, assignment, *, values=None, message="", status=200) -> HttpResponse:
    study = participant.study
    stimuli = list(assignment.page.stimuli.order_by("position"))
    clips = []
    for stim in stimuli:
        n = stim.position + 1
        clips.append({
            "n": n,
            "url": reverse("listening:audio", kwargs={"token": participant.token, "stimulus_token": stim.token}),
            "aspects": [{"key": a, "name": ASPECT_TEXT[a][0], "text": ASPECT_TEXT[a][1], "field": f"clip{n}_{a}",
                         "value": (values or {}).get(f"clip{n}_{a}", "")} for a in ASPECT_ORDER],
        })
    done = participant.assignments.filter(state=Assignment.State.DONE).count()
    total = min(study.pages_per_participant, study.pages.count())
    return render(request, "listening/page.html", {
        "participant": participant, "study": study, "assignment": assignment, "clips": clips, "scale": SCALE,
        "number": done + 1, "total": total, "heard": (values or {}).get("heard_before", ""), "message": message,
    }, status=status)


@require_POST
@participant_view
def questionnaire(request: HttpRequest, token: str) -> HttpResponse:
    participant = _participant(token)
    services.require_open(participant.study)
    form = QuestionnaireForm(request.POST)
    if not form.is_valid():
        return render(request, "listening/questionnaire.html", {"participant": participant, "form": form}, status=400)
    if participant.questionnaire_at is None:
        services.save_questionnaire(participant, listens_daily=form.cleaned_data["listens_daily"] == "yes",
                                    produces_music=form.cleaned_data["produces_music"] == "yes")
    return redirect("listening:participant", token=token)


@require_POST
@participant_view
def submit(request: HttpRequest, token: str, assignment_id: int) -> HttpResponse:
    """Store one page's answers (once), then go on to the next page (303)."""
    participant = _participant(token)
    assignment = Assignment.objects.filter(pk=assignment_id, participant=participant).select_related("page").first()
    if assignment is None:
        raise ParticipantError("This page is not one of yours.", status=404)
    services.require_open(participant.study)
    if assignment.state == Assignment.State.DONE:
        return redirect("listening:participant", token=token)  # replay or back button: already stored, keep it
    try:
        answers = services.parse_page_form(request.POST, require_full_play=participant.study.require_full_play)
    except ParticipantError as exc:
        if assignment.state != Assignment.State.RESERVED or exc.status != 400:
            raise
        return _render_page(request, participant, assignment, values=request.POST, message=exc.message,
                            status=400)
    services.submit_page(participant, assignment.pk, answers)
    return redirect("listening:participant", token=token)


@require_GET
@participant_view
def audio(request: HttpRequest, token: str, stimulus_token: str) -> HttpResponse:
    """A stimulus' audio, with Range support, only for the participant who holds its page."""
    participant = _participant(token)
    stim = Stimulus.objects.filter(token=stimulus_token, page__assignments__participant=participant).first()
    if stim is None:
        raise ParticipantError("No such clip.", status=404)
    try:
        path = safe_path(Path(settings.MEDIA_ROOT), stim.audio_path)
    except Http404:
        raise ParticipantError("This clip's audio is missing on the server.", status=404) from None
    response = ranged_file_response(request, path, content_type=CONTENT_TYPES.get(path.suffix))
    response["Cache-Control"] = "private, max-age=3600"
    return response


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
        "study": study, "progress": services.progress(study), "participant_link": link,
        "analysis_url": f"/analysis/study/{study.pk}/", "error": request.GET.get("error", "")[:300],
    })


@require_POST
@experimenter_view
def set_state(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_object_or_404(Study, pk=pk)
    try:
        services.set_state(study, request.POST.get("state", ""))
    except DesignError as exc:
        return _error(request, str(exc), 400)
    return redirect("listening:dashboard", pk=pk)


@require_GET
@experimenter_view
def design_export(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    study = get_object_or_404(Study, pk=pk)
    if fmt == "json":
        response = HttpResponse(services.design_json(study), content_type="application/json")
    else:
        response = HttpResponse(services.design_table(study).to_csv(index=False), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{study.name}-design.{fmt}"'
    return response


@require_GET
@experimenter_view
def ratings_export(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_object_or_404(Study, pk=pk)
    response = HttpResponse(services.ratings_table(study).to_csv(index=False), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{study.name}-ratings.csv"'
    return response


@require_http_methods(["GET", "POST"])
@experimenter_view
def new_study(request: HttpRequest) -> HttpResponse:
    """The design_study command as a form."""
    form = DesignForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        study_settings = services.StudySettings(
            ratings_per_page=d["ratings_per_page"], pages_per_participant=d["pages_per_participant"],
            reservation_minutes=d["reservation_minutes"], require_full_play=d["require_full_play"],
            audio_format=d["audio_format"])
        try:
            study = services.design_study(
                task=d["task"], name=d["name"], db_name=d["db"], systems_text=d["systems"],
                candidate_db=d["candidate_db"], top_n=d["top_n"], bottom_n=d["bottom_n"],
                n_queries=d["n_queries"], n_candidates=d["n_candidates"], seed=d["seed"],
                study_settings=study_settings)
        except DesignError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("listening:dashboard", pk=study.pk)
    return render(request, "listening/new_study.html", {"form": form}, status=400 if form.errors else 200)
