"""python manage.py design_study: build a generation or retrieval study from stored scores."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from listening import services
from listening.design import DesignError
from listening.models import Study
from listening.stimuli import STIMULUS_FORMATS


class Command(BaseCommand):
    help = "Design a listening study (generation: top/bottom-N per system; retrieval: top-1 per system per query)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="Study name (slug); a draft of that name is replaced.")
        parser.add_argument("--task", required=True, choices=["generation", "retrieval"])
        parser.add_argument("--db", required=True, help="MashupDB (generation) or query MashupDB (retrieval).")
        parser.add_argument("--candidate-db", help="Retrieval: MashupDB of the accompaniment (default: any other).")
        parser.add_argument("--systems", help="Comma-separated system names (default: every system).")
        parser.add_argument("--top", type=int, default=20, help="Generation: top N per system (default 20).")
        parser.add_argument("--bottom", type=int, default=20, help="Generation: bottom N per system (default 20).")
        parser.add_argument("--queries", type=int, default=30, help="Retrieval: query vocals Q (default 30).")
        parser.add_argument("--candidates", type=int, default=180, help="Retrieval: candidates per query C (default 180).")
        parser.add_argument("--seed", type=int, default=0, help="Seed of every random choice of the design.")
        parser.add_argument("--ratings-per-page", type=int, default=3)
        parser.add_argument("--pages-per-participant", type=int, default=10)
        parser.add_argument("--reservation-minutes", type=float, default=20.0)
        parser.add_argument("--require-full-play", action="store_true",
                            help="Unlock a clip's questions only after it played to the end.")
        parser.add_argument("--audio", choices=list(STIMULUS_FORMATS), default="flac",
                            help="What participants download: " + "; ".join(
                                f"{k} = {v}" for k, v in STIMULUS_FORMATS.items()) + " (default flac).")
        parser.add_argument("--open", action="store_true", help="Open the study for participants right away.")
        parser.add_argument("--export", type=Path, help="Write <name>-design.json and .csv into this folder.")

    def handle(self, *args, **opts):
        study_settings = services.StudySettings(
            ratings_per_page=opts["ratings_per_page"], pages_per_participant=opts["pages_per_participant"],
            reservation_minutes=opts["reservation_minutes"], require_full_play=opts["require_full_play"],
            audio_format=opts["audio"])
        try:
            study = services.design_study(
                task=opts["task"], name=opts["name"], db_name=opts["db"], systems_text=opts["systems"],
                candidate_db=opts["candidate_db"], top_n=opts["top"], bottom_n=opts["bottom"],
                n_queries=opts["queries"], n_candidates=opts["candidates"], seed=opts["seed"],
                study_settings=study_settings)
            if opts["open"]:
                services.set_state(study, Study.State.OPEN)
        except DesignError as exc:
            raise CommandError(str(exc)) from None
        n_stimuli = sum(p.stimuli.count() for p in study.pages.all())
        self.stdout.write(f"study {study.name} (id {study.pk}, {study.task}, {study.state}): "
                          f"{study.pages.count()} pages, {n_stimuli} stimuli, seed {study.seed}")
        if opts["export"]:
            out = opts["export"]
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{study.name}-design.json").write_text(services.design_json(study))
            services.design_table(study).to_csv(out / f"{study.name}-design.csv", index=False)
            self.stdout.write(f"design written to {out}")
        self.stdout.write(f"participant link: /study/s/{study.public_token}/  dashboard: /study/{study.pk}/")
