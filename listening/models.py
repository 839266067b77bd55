"""Listening studies: design (stimuli on pages), participants, assignments and ratings.

Invariants kept by the database itself, so that they hold under any number of
concurrent gunicorn workers on SQLite or PostgreSQL:

* a page is held by at most k participants: a live assignment owns a slot
  0..k-1, unique per page (an expired reservation gives its slot up);
* nobody gets a page twice: (participant, page) is unique;
* a page's answers are stored once: one PageResponse per assignment, one
  Rating per (participant, stimulus, aspect).
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
    return secrets.token_hex(4).upper()


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
    completion_code = models.CharField(max_length=16, default=_completion_code)
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
    """Two stimuli that share a vocal, rated together; `index` is its place in the design."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="pages")
    index = models.PositiveIntegerField()
    query = models.PositiveIntegerField(null=True, blank=True, help_text="Retrieval: the query number.")

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
    external_id = models.CharField(max_length=128, blank=True, help_text="e.g. a Prolific PID.")
    user_agent = models.CharField(max_length=512, blank=True)
    consented_at = models.DateTimeField()
    listens_daily = models.BooleanField(null=True, blank=True)
    produces_music = models.BooleanField(null=True, blank=True)
    questionnaire_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["study", "id"]

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
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["participant", "reserved_at"]
        constraints = [
            models.UniqueConstraint(fields=["participant", "page"], name="one_assignment_per_participant_page"),
            models.UniqueConstraint(fields=["page", "slot"], condition=models.Q(slot__isnull=False),
                                    name="one_live_assignment_per_page_slot"),
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

    def __str__(self) -> str:
        return f"response to {self.assignment}"


class Rating(models.Model):
    """One score 1-5 of one stimulus on one aspect by one participant."""

    Aspect = models.TextChoices("Aspect", [(a, a) for a in ASPECTS])

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
