"""Listening studies: design (stimuli on pages), participants, assignments and ratings.

Invariants kept by the database itself, so that they hold under any number of
concurrent gunicorn workers on SQLite or PostgreSQL:

* a page is held by at most k participants: a live assignment owns a slot
  0..k-1, unique per page (an expired reservation gives its slot up);
* nobody gets a page twice: (participant, page) is unique;
* a page's answers are stored once: one PageResponse per assignment, one
  Rating per (participant, stimulus, aspect);
* a participant holds at most one live reservation: (participant) is unique
  among reserved assignments;
* an external id (a Prolific PID) names one participant per study;
* an answer saved as it is clicked is one Answer per (assignment, stimulus,
  aspect), overwritten by a later click, committed as Ratings by the submit.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from generation.models import Candidate, Clip
from listening.export import ASPECTS


def _token() -> str:
    return secrets.token_urlsafe(18)


def _completion_code() -> str:
    """64 random bits as 16 hex digits: unguessable, one per participant (payment checks)."""
    return secrets.token_hex(8).upper()


class Study(models.Model):
    """A listening test of one task; its design locks when the first rating arrives."""

    class Task(models.TextChoices):
        GENERATION = "generation"
        RETRIEVAL = "retrieval"

    class State(models.TextChoices):
        DRAFT = "draft"
        OPEN = "open"
        CLOSED = "closed"

    name = models.SlugField(max_length=100, unique=True)
    task = models.CharField(max_length=16, choices=Task.choices)
    state = models.CharField(max_length=8, choices=State.choices, default=State.DRAFT)
    config = models.JSONField(default=dict, blank=True, help_text="Every design setting and seed, as given.")
    seed = models.BigIntegerField(default=0)
    ratings_per_page = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1)])
    pages_per_participant = models.PositiveSmallIntegerField(default=10, validators=[MinValueValidator(1)])
    reservation_s = models.PositiveIntegerField(default=20 * 60, help_text="A reserved page goes to someone else after this.")
    require_full_play = models.BooleanField(default=False, help_text="Unlock a clip's questions only after it played to the end.")
    public_token = models.CharField(max_length=32, unique=True, default=_token, help_text="In the participant link.")
    created_at = models.DateTimeField(auto_now_add=True)
    locked_at = models.DateTimeField(null=True, blank=True, help_text="First rating: the design cannot change any more.")

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.task}, {self.state})"

    @property
    def media_dir(self) -> Path:
        return Path(settings.MEDIA_ROOT) / "studies" / str(self.pk)


class Page(models.Model):
    """Two stimuli that share a vocal, rated together; `index` is its place in the design.

    A gold page (quality control) holds a vocal's original beside its unmatched
    key-and-tempo candidate; it is not part of the design's k ratings per page,
    every participant may get it, and its ratings are not exported.
    """

    class Kind(models.TextChoices):
        TEST = "test"
        GOLD = "gold"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="pages")
    index = models.PositiveIntegerField()
    query = models.PositiveIntegerField(null=True, blank=True, help_text="Retrieval: the query number.")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.TEST)

    class Meta:
        ordering = ["study", "index"]
        constraints = [models.UniqueConstraint(fields=["study", "index"], name="unique_page_index")]

    def __str__(self) -> str:
        return f"{self.study.name} page {self.index}"


class Stimulus(models.Model):
    """One clip on one page: a copy of a candidate's rendered mix under an opaque token."""

    page = models.ForeignKey(Page, on_delete=models.CASCADE, related_name="stimuli")
    position = models.PositiveSmallIntegerField(help_text="0 = first (left), 1 = second (right).")
    candidate = models.ForeignKey(Candidate, on_delete=models.PROTECT, related_name="+")
    vocal_clip = models.ForeignKey(Clip, on_delete=models.PROTECT, related_name="+")
    token = models.CharField(max_length=32, unique=True, default=_token, help_text="Opaque name of the audio file.")
    audio_path = models.CharField(max_length=1024, help_text="Relative to MEDIA_ROOT: studies/<study>/<token>.wav")
    query = models.PositiveIntegerField(null=True, blank=True)
    design_key = models.PositiveIntegerField(help_text="Index in the pure design (listening.design).")

    class Meta:
        verbose_name_plural = "stimuli"
        ordering = ["page", "position"]
        constraints = [models.UniqueConstraint(fields=["page", "position"], name="unique_stimulus_position")]

    def __str__(self) -> str:
        return f"stimulus {self.pk} (page {self.page.index}, pos {self.position})"

    @property
    def audio_file(self) -> Path:
        return Path(settings.MEDIA_ROOT) / self.audio_path


class StimulusLabel(models.Model):
    """Why a stimulus is in the study: which system picked it, as what (top, bottom, original, query-top1)."""

    class Group(models.TextChoices):
        TOP = "top"
        BOTTOM = "bottom"
        ORIGINAL = "original"
        QUERY_TOP1 = "query-top1"

    stimulus = models.ForeignKey(Stimulus, on_delete=models.CASCADE, related_name="labels")
    system = models.CharField(max_length=64, help_text="A scoring System name, or 'original'.")
    group = models.CharField(max_length=16, choices=Group.choices)
    rank = models.PositiveIntegerField(null=True, blank=True, help_text="1 = the system's best.")
    score = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["stimulus", "system"]
        constraints = [models.UniqueConstraint(fields=["stimulus", "system"], name="unique_label_per_system")]

    def __str__(self) -> str:
        return f"{self.system}:{self.group} #{self.rank}"


class Participant(models.Model):
    """Someone taking a study; `token` is their private resume link."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="participants")
    token = models.CharField(max_length=32, unique=True, default=_token)
    seed = models.BigIntegerField(help_text="Seeds this participant's page order.")
    external_id = models.CharField(max_length=128, blank=True, help_text="e.g. a Prolific PID (or ?pid=).")
    external_study = models.CharField(max_length=128, blank=True, help_text="Prolific STUDY_ID.")
    external_session = models.CharField(max_length=128, blank=True, help_text="Prolific SESSION_ID.")
    client_key = models.CharField(max_length=64, blank=True, db_index=True,
                                  help_text="Keyed hash of the client's IP address (rate limit); not the address.")
    completion_code = models.CharField(max_length=32, unique=True, default=_completion_code)
    flags = models.JSONField(default=dict, blank=True,
                             help_text="Quality control: see listening.quality.Flags.as_dict().")
    screening = models.JSONField(default=dict, blank=True,
                                 help_text="Headphone screening (listening.screening): seed, key, answers, correct, "
                                           "passed, at; empty when not taken.")
    excluded = models.BooleanField(default=False, help_text="Excluded from the analysis by the study's rules.")
    exclusion_reason = models.CharField(max_length=300, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    consented_at = models.DateTimeField()
    listens_daily = models.BooleanField(null=True, blank=True)
    produces_music = models.BooleanField(null=True, blank=True)
    questionnaire_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["study", "id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "external_id"], condition=~models.Q(external_id=""),
                                    name="one_participant_per_external_id"),
        ]

    def __str__(self) -> str:
        return f"participant {self.pk} of {self.study.name}"


class Assignment(models.Model):
    """A page given to a participant: reserved until it is submitted (done) or its time runs out (expired)."""

    class State(models.TextChoices):
        RESERVED = "reserved"
        DONE = "done"
        EXPIRED = "expired"

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="assignments")
    page = models.ForeignKey(Page, on_delete=models.CASCADE, related_name="assignments")
    slot = models.PositiveSmallIntegerField(null=True, blank=True, help_text="0..k-1 while live; null once expired.")
    state = models.CharField(max_length=8, choices=State.choices, default=State.RESERVED)
    reserved_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    shown_at = models.DateTimeField(null=True, blank=True, help_text="First time the page was served (timing starts).")
    active_at = models.DateTimeField(null=True, blank=True,
                                     help_text="Last sign of life (audio served, answer saved): keeps the reservation.")
    done_at = models.DateTimeField(null=True, blank=True)
    swapped = models.BooleanField(default=False, help_text="Shown right-to-left: clip 1 is position 1.")
    media_key = models.CharField(max_length=32, unique=True, default=_token,
                                 help_text="In this page's audio URLs: differs per participant and page.")
    heard_draft = models.CharField(max_length=3, blank=True, help_text="'yes'/'no' as clicked, before the submit.")

    class Meta:
        ordering = ["participant", "reserved_at"]
        constraints = [
            models.UniqueConstraint(fields=["participant", "page"], name="one_assignment_per_participant_page"),
            models.UniqueConstraint(fields=["page", "slot"], condition=models.Q(slot__isnull=False),
                                    name="one_live_assignment_per_page_slot"),
            models.UniqueConstraint(fields=["participant"], condition=models.Q(state="reserved"),
                                    name="one_live_reservation_per_participant"),
        ]
        indexes = [models.Index(fields=["state", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.participant} page {self.page.index} {self.state}"


class PageResponse(models.Model):
    """What a participant said about a page besides the ratings, and how long it took (server clock)."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="response")
    heard_before = models.BooleanField(help_text="Had heard this vocal melody before.")
    seconds = models.FloatField(help_text="From the page first being served to its submission, server-side.")
    plays = models.JSONField(default=list, help_text="Play count per position, as the browser reported it.")
    submitted_at = models.DateTimeField()
    flags = models.JSONField(default=dict, blank=True, help_text="Per page: speeder, gold_passed (gold pages).")

    def __str__(self) -> str:
        return f"response to {self.assignment}"


class Rating(models.Model):
    """One score 1-5 of one stimulus on one aspect by one participant."""

    Aspect = models.TextChoices("Aspect", [(a, a) for a in ASPECTS])  # type: ignore[call-overload]  # stubs lack the (name, value) pairs form

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="ratings")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="ratings")
    stimulus = models.ForeignKey(Stimulus, on_delete=models.CASCADE, related_name="ratings")
    aspect = models.CharField(max_length=16, choices=Aspect.choices)
    score = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(5)])

    class Meta:
        ordering = ["participant", "stimulus", "aspect"]
        constraints = [
            models.UniqueConstraint(fields=["participant", "stimulus", "aspect"], name="one_rating_per_aspect"),
            models.CheckConstraint(condition=models.Q(score__gte=1, score__lte=5), name="rating_score_1_to_5"),
        ]

    def __str__(self) -> str:
        return f"{self.participant_id} {self.stimulus_id} {self.aspect}={self.score}"


class Answer(models.Model):
    """One answer as it was clicked, before the page is submitted: restored on reload, committed by the submit."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="answers")
    stimulus = models.ForeignKey(Stimulus, on_delete=models.CASCADE, related_name="+")
    aspect = models.CharField(max_length=16, choices=Rating.Aspect.choices)
    score = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(5)])
    answered_at = models.DateTimeField()

    class Meta:
        ordering = ["assignment", "stimulus", "aspect"]
        constraints = [
            models.UniqueConstraint(fields=["assignment", "stimulus", "aspect"], name="one_answer_per_aspect"),
            models.CheckConstraint(condition=models.Q(score__gte=1, score__lte=5), name="answer_score_1_to_5"),
        ]

    def __str__(self) -> str:
        return f"draft {self.assignment_id} {self.stimulus_id} {self.aspect}={self.score}"


class Delivery(models.Model):
    """The bytes of one stimulus file the server handed to one participant's page (full play, checked server-side)."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="deliveries")
    stimulus = models.ForeignKey(Stimulus, on_delete=models.CASCADE, related_name="+")
    size = models.PositiveBigIntegerField(help_text="Bytes in the file as served.")
    ranges = models.JSONField(default=list, help_text="Merged [start, end) byte ranges served.")
    requests = models.PositiveIntegerField(default=0)
    complete = models.BooleanField(default=False, help_text="Every byte served at least once.")
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [models.UniqueConstraint(fields=["assignment", "stimulus"], name="one_delivery_per_stimulus")]

    def __str__(self) -> str:
        return f"delivery {self.assignment_id}/{self.stimulus_id} {'complete' if self.complete else 'partial'}"
