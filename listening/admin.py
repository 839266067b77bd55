"""Admin for every listening model, respecting the design lock.

* What participants produced (participants, assignments, answers, page
  responses, ratings, deliveries) is recorded by the participant flow and is
  view-only here: every answer is kept as it was given, and a completion code,
  full-play record or reservation changed by hand would make payments and the
  "needed" counts wrong.
* A study's design (the study's settings, its pages, stimuli and labels) can
  be edited in admin only while the study is unlocked; once the first rating
  arrives (``Study.locked_at``) it is view-only, cannot be deleted, and no
  page, stimulus or label can be added to it. Opening and closing a study
  goes through its dashboard, which checks the state changes.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from listening.models import (
    Answer,
    Assignment,
    Delivery,
    Page,
    PageResponse,
    Participant,
    Rating,
    Stimulus,
    StimulusLabel,
    Study,
)


def is_locked(study: Study | None) -> bool:
    """Whether the study's design is locked (its first rating has arrived)."""
    return study is not None and study.locked_at is not None


class DesignLockMixin:
    """Change and delete allowed only while the object's study is unlocked (ModelAdmin or inline).

    ``study_of(obj)`` gives the study of the object the admin is asked about
    (for an inline: the parent object). Foreign keys named in
    ``unlocked_study_fields`` only offer (and only accept) rows of unlocked
    studies, so nothing can be added to a locked design either.
    """

    unlocked_study_fields: dict[str, str] = {}  # FK field -> filter that means "its study is unlocked"

    def study_of(self, obj) -> Study | None:
        raise NotImplementedError

    def locked(self, obj) -> bool:
        return obj is not None and is_locked(self.study_of(obj))

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_change_permission(request, obj) and not self.locked(obj)  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and not self.locked(obj)  # type: ignore[misc]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        unlocked = self.unlocked_study_fields.get(db_field.name)
        if unlocked:
            kwargs["queryset"] = db_field.remote_field.model.objects.filter(**{unlocked: True})
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]


class InlineDesignLockMixin(DesignLockMixin):
    """For inlines: adding rows is refused too once the parent's study is locked."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_add_permission(request, obj) and not self.locked(obj)  # type: ignore[misc]


class RecordAdmin(admin.ModelAdmin):
    """A row the participant flow records: view-only, never added, changed or deleted by hand."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class PageInline(InlineDesignLockMixin, admin.TabularInline):
    model = Page
    extra = 0
    fields = ("index", "kind", "query")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def study_of(self, obj: Study) -> Study:
        return obj


@admin.register(Study)
class StudyAdmin(DesignLockMixin, admin.ModelAdmin):
    list_display = ("name", "task", "state", "ratings_per_page", "pages_per_participant", "created_at", "locked_at")
    list_filter = ("task", "state")
    search_fields = ("name",)
    readonly_fields = ("task", "state", "seed", "config", "public_token", "created_at", "locked_at")
    inlines = [PageInline]

    def study_of(self, obj: Study) -> Study:
        return obj


class StimulusInline(InlineDesignLockMixin, admin.TabularInline):
    model = Stimulus
    extra = 0
    fields = ("position", "candidate", "token", "audio_path", "query")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def study_of(self, obj: Page) -> Study:
        return obj.study


@admin.register(Page)
class PageAdmin(DesignLockMixin, admin.ModelAdmin):
    list_display = ("study", "index", "kind", "query")
    list_filter = ("study", "kind")
    inlines = [StimulusInline]
    unlocked_study_fields = {"study": "locked_at__isnull"}

    def study_of(self, obj: Page) -> Study:
        return obj.study


class LabelInline(InlineDesignLockMixin, admin.TabularInline):
    model = StimulusLabel
    extra = 0

    def study_of(self, obj: Stimulus) -> Study:
        return obj.page.study


@admin.register(Stimulus)
class StimulusAdmin(DesignLockMixin, admin.ModelAdmin):
    list_display = ("pk", "page", "position", "candidate", "query")
    list_filter = ("page__study",)
    raw_id_fields = ("page", "candidate", "vocal_clip")
    inlines = [LabelInline]
    unlocked_study_fields = {"page": "study__locked_at__isnull"}

    def study_of(self, obj: Stimulus) -> Study:
        return obj.page.study


@admin.register(StimulusLabel)
class StimulusLabelAdmin(DesignLockMixin, admin.ModelAdmin):
    list_display = ("stimulus", "system", "group", "rank", "score")
    list_filter = ("system", "group", "stimulus__page__study")
    raw_id_fields = ("stimulus",)
    unlocked_study_fields = {"stimulus": "page__study__locked_at__isnull"}

    def study_of(self, obj: StimulusLabel) -> Study:
        return obj.stimulus.page.study


@admin.register(Participant)
class ParticipantAdmin(RecordAdmin):
    list_display = ("pk", "study", "external_id", "completion_code", "excluded", "exclusion_reason",
                    "listens_daily", "produces_music", "started_at", "finished_at")
    list_filter = ("study", "excluded", "listens_daily", "produces_music")
    search_fields = ("external_id", "completion_code")
    exclude = ("token", "client_key")  # the private resume link and the keyed client hash stay out of sight


@admin.register(Assignment)
class AssignmentAdmin(RecordAdmin):
    list_display = ("pk", "participant", "page", "slot", "state", "reserved_at", "expires_at", "done_at")
    list_filter = ("state", "page__study")
    exclude = ("media_key",)  # a live clip URL: not for display


@admin.register(PageResponse)
class PageResponseAdmin(RecordAdmin):
    list_display = ("assignment", "heard_before", "seconds", "submitted_at")


@admin.register(Rating)
class RatingAdmin(RecordAdmin):
    list_display = ("participant", "stimulus", "aspect", "score")
    list_filter = ("aspect", "stimulus__page__study")


@admin.register(Answer)
class AnswerAdmin(RecordAdmin):
    list_display = ("assignment", "stimulus", "aspect", "score", "answered_at")


@admin.register(Delivery)
class DeliveryAdmin(RecordAdmin):
    list_display = ("assignment", "stimulus", "size", "requests", "complete", "updated_at")
    list_filter = ("complete",)
