"""Where a study's analysis lives and which settings it runs with (Django glue for listening studies)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from listening.models import Study


def study_dir(study: Study) -> Path:
    return Path(settings.MEDIA_ROOT) / "analysis" / f"study-{study.pk}"


def study_config(study: Study) -> dict:
    """Analysis settings from the study: k ratings per page, its design config and seed for the manifest."""
    return {"ratings_per_stimulus": study.ratings_per_page, "seeds": {"design": int(study.seed)},
            "study": {"id": study.pk, "name": study.name, "task": study.task, **(study.config or {})}}
