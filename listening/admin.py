"""Admin for every listening model; design rows are read-only once the study is locked."""

from django.contrib import admin

from listening.models import (
    Assignment,
    Page,
    PageResponse,
    Participant,
    Rating,
    Stimulus,
    StimulusLabel,
    Study,
)


class PageInline(admin.TabularInline):
    model = Page
    extra = 0
    fields = ("index", "query")
    readonly_fields = fields
    show_change_link = True
    can_delete = False


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("name", "task", "state", "ratings_per_page", "pages_per_participant", "created_at", "locked_at")
    list_filter = ("task", "state")
    search_fields = ("name",)
    readonly_fields = ("task", "seed", "config", "public_token", "created_at", "locked_at")
    inlines = [PageInline]


class StimulusInline(admin.TabularInline):
    model = Stimulus
    extra = 0
    fields = ("position", "candidate", "token", "audio_path", "query")
    readonly_fields = fields
    can_delete = False
    show_change_link = True


@admin.register(Page)
class PageAdmin(admin.ModelAdmin):
    list_display = ("study", "index", "query")
    list_filter = ("study",)
    inlines = [StimulusInline]


class LabelInline(admin.TabularInline):
    model = StimulusLabel
    extra = 0


@admin.register(Stimulus)
class StimulusAdmin(admin.ModelAdmin):
    list_display = ("pk", "page", "position", "candidate", "query")
    list_filter = ("page__study",)
    raw_id_fields = ("page", "candidate", "vocal_clip")
    inlines = [LabelInline]


@admin.register(StimulusLabel)
class StimulusLabelAdmin(admin.ModelAdmin):
    list_display = ("stimulus", "system", "group", "rank", "score")
    list_filter = ("system", "group", "stimulus__page__study")
    raw_id_fields = ("stimulus",)


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ("pk", "study", "external_id", "listens_daily", "produces_music", "started_at", "finished_at")
    list_filter = ("study", "listens_daily", "produces_music")
    search_fields = ("external_id", "token")


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("pk", "participant", "page", "slot", "state", "reserved_at", "expires_at", "done_at")
    list_filter = ("state", "page__study")
    raw_id_fields = ("participant", "page")


@admin.register(PageResponse)
class PageResponseAdmin(admin.ModelAdmin):
    list_display = ("assignment", "heard_before", "seconds", "submitted_at")
    raw_id_fields = ("assignment",)


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    list_display = ("participant", "stimulus", "aspect", "score")
    list_filter = ("aspect", "stimulus__page__study")
    raw_id_fields = ("assignment", "participant", "stimulus")
