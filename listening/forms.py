"""Forms of the participant flow and the experimenter's design page, and the parser of a rated page."""

from __future__ import annotations

from django import forms

from listening.export import ASPECTS
from listening.flow import PageAnswers, ParticipantError
from listening.stimuli import STIMULUS_FORMATS

YES_NO = [("yes", "Yes"), ("no", "No")]


class ConsentForm(forms.Form):
    consent = forms.BooleanField(
        required=True, label="I have read the information above and agree to take part.",
        error_messages={"required": "Please tick the box to agree before starting."},
    )


class QuestionnaireForm(forms.Form):
    listens_daily = forms.ChoiceField(choices=YES_NO, widget=forms.RadioSelect,
                                      label="Do you listen to music every day?")
    produces_music = forms.ChoiceField(choices=YES_NO, widget=forms.RadioSelect,
                                       label="Have you ever produced music (recorded, mixed or composed)?")


class DesignForm(forms.Form):
    name = forms.SlugField(max_length=100, help_text="A short name for the study (letters, digits, dashes).")
    task = forms.ChoiceField(choices=[("generation", "generation"), ("retrieval", "retrieval")])
    db = forms.CharField(max_length=100, label="MashupDB (generation) / query MashupDB (retrieval)")
    candidate_db = forms.CharField(max_length=100, required=False, label="Candidate MashupDB (retrieval, optional)")
    systems = forms.CharField(max_length=500, required=False, help_text="Comma-separated; empty = every system.")
    top_n = forms.IntegerField(min_value=0, initial=20, label="Top N (generation)")
    bottom_n = forms.IntegerField(min_value=0, initial=20, label="Bottom N (generation)")
    n_queries = forms.IntegerField(min_value=1, initial=30, label="Queries Q (retrieval)")
    n_candidates = forms.IntegerField(min_value=1, initial=180, label="Candidates per query C (retrieval)")
    seed = forms.IntegerField(min_value=0, initial=0)
    ratings_per_page = forms.IntegerField(min_value=1, max_value=50, initial=3)
    pages_per_participant = forms.IntegerField(min_value=1, max_value=1000, initial=10)
    reservation_minutes = forms.FloatField(min_value=0.1, initial=20)
    require_full_play = forms.BooleanField(required=False, label="Unlock a clip's questions only after it played to the end")
    audio_format = forms.ChoiceField(choices=list(STIMULUS_FORMATS.items()), initial="flac",
                                     label="Audio participants download")


def parse_page_form(data, *, require_full_play: bool = False) -> PageAnswers:
    """Validate a submitted page form (a QueryDict or mapping of single values).

    Fields: clip1_<aspect>, clip2_<aspect> for the five aspects (integers
    1..5, clip 1 = the clip shown first), heard_before (yes|no), plays1/plays2
    (written by the page's script). Anything else is refused, so a malformed
    or tampered request stores nothing. Each problem is reported against its
    question (ParticipantError.field_errors).

    `require_full_play` is accepted for older callers and ignored: whether a
    clip was heard whole is the server's own record (`flow.missing_plays`),
    never a flag the browser sends.
    """
    allowed = {f"clip{n}_{a}" for n in (1, 2) for a in ASPECTS} | {
        "heard_before", "plays1", "plays2", "ended1", "ended2", "csrfmiddlewaretoken"}
    extra = sorted(set(data.keys()) - allowed)
    if extra:
        raise ParticipantError(f"Unexpected field(s): {', '.join(extra)[:200]}.", status=400)
    problems: dict[str, str] = {}
    scores: dict[int, dict[str, int]] = {0: {}, 1: {}}
    for n in (1, 2):
        for aspect in ASPECTS:
            name = f"clip{n}_{aspect}"
            raw = data.get(name)
            if raw is None or str(raw).strip() == "":
                problems[name] = f"Clip {n}: please rate {aspect}."
                continue
            raw = str(raw).strip()
            if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 5:
                problems[name] = f"Clip {n}: {aspect} must be a whole number from 1 to 5, got {raw[:20]!r}."
                continue
            scores[n - 1][aspect] = int(raw)
    heard = data.get("heard_before")
    if heard not in ("yes", "no"):
        problems["heard_before"] = "Please say whether you had heard this vocal melody before."
    plays = []
    for n in (1, 2):
        raw = str(data.get(f"plays{n}", "0") or "0")
        plays.append(int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 7 else 0)
    if problems:
        raise ParticipantError(" ".join(problems.values()), status=400, field_errors=problems)
    return PageAnswers(scores=scores, heard_before=heard == "yes", plays=plays)
