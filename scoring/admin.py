from django.contrib import admin

from scoring.models import Evaluation, Score, System


@admin.register(System)
class SystemAdmin(admin.ModelAdmin):
    list_display = ("name", "arch", "lsro", "checkpoint", "created_at")


@admin.register(Score)
class ScoreAdmin(admin.ModelAdmin):
    list_display = ("system", "candidate", "value")
    list_filter = ("system",)


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    list_display = ("system", "db", "accuracy", "average_rank", "n_labeled", "n_unlabeled")
