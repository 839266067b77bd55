"""Forms of the participant flow and the experimenter's design page, and the parser of a rated page."""

from __future__ import annotations

from typing import cast

from django import forms

from generation.models import MashupDB
from listening.aspects import ASPECTS
from listening.errors import DesignError, ListeningError, ParticipantError
from listening.flow import PageAnswers
from listening.models import Study
from listening.quality import QualityRules
from listening.stimuli import STIMULUS_FORMATS
from listening.studies import StudySettings, check_name, setting_help
from scoring.models import System

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


def _setting(field: type[forms.Field], name: str, **kwargs) -> forms.Field:
    """A study-setting field: the dataclass default as initial value, `setting_help` as help text."""
    defaults = StudySettings()
    initial = getattr(defaults.quality if name in QualityRules.__dataclass_fields__ else defaults, name)
    return field(initial=initial, help_text=setting_help(name), **kwargs)


class DesignForm(forms.Form):
    """The new-study form: what the study shows (picked from the MashupDBs and systems stored) and how it runs.

    Its checks speak of its own fields; a name already in use is refused
    here, before any work, and never replaces the study that has it.
    """

    name = forms.SlugField(max_length=100, help_text="A short name for the study (letters, digits, dashes); "
                                                     "one not used by another study.")
    task = forms.ChoiceField(choices=Study.Task.choices)
    db = forms.ChoiceField(label="MashupDB (generation) / query MashupDB (retrieval)",
                           error_messages={"invalid_choice": "There is no MashupDB named %(value)s."})
    candidate_db = forms.ChoiceField(required=False, label="Candidate MashupDB (retrieval)",
                                     error_messages={"invalid_choice": "There is no MashupDB named %(value)s."},
                                     help_text="Where the accompaniment comes from; none chosen = any other MashupDB.")
    systems = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                        error_messages={"invalid_choice": "There is no system named %(value)s."},
                                        help_text="The scoring systems to compare; none ticked = every system.")
    top_n = forms.IntegerField(min_value=0, initial=20, label="Top N (generation)",
                               help_text="Each system's best-scored candidates (paper: 20).")
    bottom_n = forms.IntegerField(min_value=0, initial=20, label="Bottom N (generation)",
                                  help_text="Each system's worst-scored candidates (paper: 20).")
    n_queries = forms.IntegerField(min_value=1, initial=30, label="Queries Q (retrieval)",
                                   help_text="Query vocals (paper: 30); fewer if fewer exist, as the study page says.")
    n_candidates = forms.IntegerField(min_value=1, initial=180, label="Candidates per query C (retrieval)",
                                      help_text="Candidates each system ranks per query (paper: 180).")
    seed = forms.IntegerField(min_value=0, initial=0, help_text="Seeds every random choice of the design.")
    # How the study runs: StudySettings and its QualityRules, recorded in the study's config.
    ratings_per_page = _setting(forms.IntegerField, "ratings_per_page", min_value=1, max_value=50)
    pages_per_participant = _setting(forms.IntegerField, "pages_per_participant", min_value=1, max_value=1000)
    reservation_s = _setting(forms.IntegerField, "reservation_s", min_value=60, max_value=7 * 24 * 3600,
                             label="Seconds a page stays reserved")
    require_full_play = _setting(forms.BooleanField, "require_full_play", required=False,
                                 label="Unlock a clip's questions only after it played to the end")
    audio_format = _setting(forms.ChoiceField, "audio_format", choices=list(STIMULUS_FORMATS.items()),
                            label="Audio participants download")
    headphone_check = _setting(forms.BooleanField, "headphone_check", required=False,
                               label="Headphone screening before the first page")
    completion_url = _setting(forms.URLField, "completion_url", required=False, max_length=500,
                              assume_scheme="https", label="Completion URL")
    max_participants = _setting(forms.IntegerField, "max_participants", required=False, min_value=0,
                                label="Most participants")
    client_limit = _setting(forms.IntegerField, "client_limit", required=False, min_value=1, max_value=10000,
                            label="New participants per client per hour")
    first_activity_s = _setting(forms.IntegerField, "first_activity_s", required=False, min_value=10,
                                label="Seconds to start a reserved page")
    gold_every = _setting(forms.IntegerField, "gold_every", required=False, min_value=0, max_value=1000,
                          label="One gold page every N pages")
    speed_share = _setting(forms.FloatField, "speed_share", required=False, min_value=0, max_value=10,
                           label="Speed rule: share of the clips' length")
    max_speeder_share = _setting(forms.FloatField, "max_speeder_share", required=False, min_value=0, max_value=1,
                                 label="Most speeder pages tolerated (share)")
    straightline_variance = _setting(forms.FloatField, "straightline_variance", required=False, min_value=0,
                                     label="Straight-lining: least variance of a rater's answers")
    min_answers_for_variance = _setting(forms.IntegerField, "min_answers_for_variance", required=False,
                                        min_value=2, label="Straight-lining applies from this many answers")

    GROUPS = (
        ("What the study shows", ("name", "task", "db", "candidate_db", "systems", "top_n", "bottom_n",
                                  "n_queries", "n_candidates", "seed")),
        ("Pages and participants", ("ratings_per_page", "pages_per_participant", "reservation_s",
                                    "require_full_play", "audio_format", "headphone_check")),
        ("Crowdsourcing and abuse limits", ("completion_url", "max_participants", "client_limit",
                                            "first_activity_s")),
        ("Quality control (ITU-T P.808)", ("gold_every", "speed_share", "max_speeder_share",
                                           "straightline_variance", "min_answers_for_variance")),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        dbs = [(n, n) for n in MashupDB.objects.order_by("name").values_list("name", flat=True)]
        self._choice("db").choices = dbs
        self._choice("candidate_db").choices = [("", "any other MashupDB"), *dbs]
        self._choice("systems").choices = [(n, n) for n in System.objects.order_by("name").values_list("name", flat=True)]
        if not dbs:
            self.fields["db"].help_text = "No MashupDB is stored yet: build one first (the Jobs pages or manage.py)."
        if not self._choice("systems").choices:
            self.fields["systems"].help_text = "No scoring system is stored yet: score the candidates first."

    def _choice(self, name: str) -> forms.ChoiceField:
        return cast(forms.ChoiceField, self.fields[name])  # declared as ChoiceFields above

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        try:
            check_name(name)
        except DesignError as exc:
            raise forms.ValidationError(exc.message[:1].upper() + exc.message[1:] + ".") from None
        return name

    def clean(self) -> dict:
        data = super().clean()
        assert data is not None  # Form.clean returns cleaned_data
        if data.get("task") == Study.Task.RETRIEVAL and data.get("candidate_db") and \
                data.get("candidate_db") == data.get("db"):
            self.add_error("candidate_db", "The candidate MashupDB must differ from the query MashupDB.")
        return data

    def add_design_error(self, exc: ListeningError) -> None:
        """Show a design refusal beside the field it is about (the form as a whole when it names none)."""
        text = exc.message[:1].upper() + exc.message[1:]
        self.add_error(exc.field if exc.field in self.fields else None, text if text.endswith(".") else text + ".")

    def clean_gold_every(self) -> int | None:
        value = self.cleaned_data.get("gold_every")
        if value == 1:
            raise forms.ValidationError("One gold page every N pages needs N of at least 2 (or 0 for none).")
        return value

    def groups(self) -> list[tuple[str, list[forms.BoundField]]]:
        """The form's fields in titled groups, for the template."""
        return [(title, [self[name] for name in names]) for title, names in self.GROUPS]

    def study_settings(self) -> StudySettings:
        """The validated form as the study's settings (empty optional fields: the defaults)."""
        return StudySettings.from_values(self.cleaned_data)


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


def parse_screening_form(data, *, n_trials: int) -> list[int]:
    """The headphone screening's answers: ``trial1`` .. ``trial<n>``, each 1, 2 or 3 (the tone picked as quietest).

    Anything else is refused (400) and each missing or bad answer is reported
    against its trial (ParticipantError.field_errors), so nothing is scored.
    """
    allowed = {f"trial{n}" for n in range(1, n_trials + 1)} | {"csrfmiddlewaretoken"}
    extra = sorted(set(data.keys()) - allowed)
    if extra:
        raise ParticipantError(f"Unexpected field(s): {', '.join(extra)[:200]}.", status=400)
    answers, problems = [], {}
    for n in range(1, n_trials + 1):
        raw = str(data.get(f"trial{n}", "") or "").strip()
        if raw not in ("1", "2", "3"):
            problems[f"trial{n}"] = f"Sound {n}: please say which tone was the quietest."
            continue
        answers.append(int(raw))
    if problems:
        raise ParticipantError(" ".join(problems.values()), status=400, field_errors=problems)
    return answers
