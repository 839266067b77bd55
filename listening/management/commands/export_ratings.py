"""python manage.py export_ratings: a study's ratings as CSV in the analysis' long format."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from listening import services
from listening.errors import ListeningError
from listening.models import Study


class Command(BaseCommand):
    help = "Write a study's ratings (one row per participant, stimulus, aspect, system) as CSV."

    def add_arguments(self, parser):
        parser.add_argument("--study", required=True, help="Study name or id.")
        parser.add_argument("--out", type=Path, help="CSV file to write (default: standard output).")

    def handle(self, *args, **opts):
        key = opts["study"]
        study = Study.objects.filter(name=key).first() or (
            Study.objects.filter(pk=int(key)).first() if key.isdigit() else None)
        if study is None:
            known = ", ".join(Study.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"unknown study {key!r} (known: {known})")
        try:
            frame = services.ratings_table(study)
        except ListeningError as exc:
            raise CommandError(exc.message) from None
        if opts["out"]:
            opts["out"].parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(opts["out"], index=False)
            self.stdout.write(f"{len(frame)} rating rows of study {study.name} written to {opts['out']}")
        else:
            self.stdout.write(frame.to_csv(index=False), ending="")
