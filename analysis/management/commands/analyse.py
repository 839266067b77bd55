"""``manage.py analyse``: ratings in, MOS / subjects / significance tables, figure and manifest out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis.exports import FORMATS
from analysis.report import analyse_ratings
from config.errors import command_errors


class Command(BaseCommand):
    help = (
        "Analyse listening-test ratings: median-MOS with 95% CIs, the subjects table with "
        "Cronbach's alpha, Mann-Whitney / Wilcoxon significance tables, Figure 4 and a manifest."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--study", type=int, metavar="ID", help="analyse the ratings of study ID")
        source.add_argument(
            "--ratings", type=Path, metavar="FILE.csv",
            help="a ratings CSV in long format (task, page, participant, stimulus, system, group, "
                 "query, aspect, score, heard_before, seconds, listens_daily, produces_music)",
        )
        parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the output files")
        parser.add_argument(
            "--format", default=",".join(FORMATS), metavar="LIST",
            help=f"comma-separated subset of {','.join(FORMATS)} (default: all); manifest.json is always written",
        )
        parser.add_argument("--holm", action="store_true",
                            help="add Holm-adjusted p-values per table and mark levels by them")

    def handle(self, *args: Any, **options: Any) -> None:
        config = None
        if options["study"] is not None:
            ratings, config = self._study_ratings(int(options["study"]))
        else:
            ratings = options["ratings"]
        with command_errors():
            report = analyse_ratings(
                ratings,
                options["out"],
                formats=str(options["format"]),
                holm=bool(options["holm"]),
                config=config,
            )
        for message in report.warnings:
            self.stderr.write(self.style.WARNING(f"warning: {message}"))
        self.stdout.write(report.summary())

    def _study_ratings(self, study_id: int):
        """The study's ratings (DataFrame in the ratings CSV format) and its analysis settings."""
        from analysis.studies import study_config
        from listening.models import Study
        from listening.services import ratings_table

        study = Study.objects.filter(pk=study_id).first()
        if study is None:
            raise CommandError(f"no study with id {study_id}")
        ratings = ratings_table(study)
        if ratings.empty:
            raise CommandError(f"study {study_id} ({study.name}) has no ratings yet")
        return ratings, study_config(study)
