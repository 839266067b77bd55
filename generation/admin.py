from django.contrib import admin

from generation.models import Candidate, Clip, MashupDB, Stem


class StemInline(admin.TabularInline):
    model = Stem
    extra = 0
    readonly_fields = ("name", "kind", "path", "method")


@admin.register(MashupDB)
class MashupDBAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(Clip)
class ClipAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "db", "key_label", "tempo_bpm", "beats_per_bar", "duration_s", "vocal_level_db",
                    "analysis_source")
    list_filter = ("db", "analysis_source", "beats_per_bar")
    search_fields = ("name", "source")
    inlines = [StemInline]


@admin.register(Stem)
class StemAdmin(admin.ModelAdmin):
    list_display = ("clip", "name", "kind", "method")
    list_filter = ("kind", "method")


@admin.register(Candidate)
class CandidateAdmin(admin.ModelAdmin):
    list_display = ("id", "db", "condition", "vocal_clip", "harmonic_clip", "percussion_clip",
                    "harmonic_shift_semitones", "harmonic_ratio", "percussion_ratio", "split", "seed")
    list_filter = ("db", "condition", "split")
    readonly_fields = ("spec_key",)
