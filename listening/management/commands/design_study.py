"""python manage.py design_study: build a generation or retrieval study from stored scores."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from listening import services
from listening.errors import ListeningError
from listening.models import Study
from listening.quality import QualityRules
from listening.stimuli import STIMULUS_FORMATS
from listening.studies import setting_help


class Command(BaseCommand):
    help = "Design a listening study (generation: top/bottom-N per system; retrieval: top-1 per system per query)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="Study name (slug); a name in use is refused.")
        parser.add_argument("--replace-draft", action="store_true",
                            help="Replace the draft of that name (no participants yet) once the new design is stored; "
                                 "its participant link stays.")
        parser.add_argument("--task", required=True, choices=["generation", "retrieval"])
        parser.add_argument("--db", required=True, help="MashupDB (generation) or query MashupDB (retrieval).")
        parser.add_argument("--candidate-db", help="Retrieval: MashupDB of the accompaniment (default: any other).")
        parser.add_argument("--systems", help="Comma-separated system names (default: every system).")
        parser.add_argument("--top", dest="top_n", type=int, default=20,
                            help="Generation: top N per system (default 20).")
        parser.add_argument("--bottom", dest="bottom_n", type=int, default=20,
                            help="Generation: bottom N per system (default 20).")
        parser.add_argument("--queries", dest="n_queries", type=int, default=30,
                            help="Retrieval: queries Q (default 30).")
        parser.add_argument("--candidates", dest="n_candidates", type=int, default=180,
                            help="Retrieval: candidates per query C (default 180).")
        parser.add_argument("--seed", type=int, default=0, help="Seed of every random choice of the design.")
        # How the study runs (listening.studies.StudySettings and its QualityRules; recorded in the study config).
        defaults, rules = services.StudySettings(), QualityRules()
        parser.add_argument("--ratings-per-page", type=int, default=defaults.ratings_per_page,
                            help=setting_help("ratings_per_page"))
        parser.add_argument("--pages-per-participant", type=int, default=defaults.pages_per_participant,
                            help=setting_help("pages_per_participant"))
        parser.add_argument("--reservation-s", type=int, default=defaults.reservation_s,
                            help=setting_help("reservation_s"))
        parser.add_argument("--require-full-play", action="store_true", help=setting_help("require_full_play"))
        parser.add_argument("--audio", dest="audio_format", choices=list(STIMULUS_FORMATS),
                            default=defaults.audio_format, help=setting_help("audio_format"))
        parser.add_argument("--headphone-check", action="store_true", help=setting_help("headphone_check"))
        parser.add_argument("--completion-url", default=defaults.completion_url, help=setting_help("completion_url"))
        parser.add_argument("--max-participants", type=int, default=defaults.max_participants,
                            help=setting_help("max_participants"))
        parser.add_argument("--client-limit", type=int, default=defaults.client_limit,
                            help=setting_help("client_limit"))
        parser.add_argument("--first-activity-seconds", dest="first_activity_s", type=int,
                            default=defaults.first_activity_s, help=setting_help("first_activity_s"))
        parser.add_argument("--gold-every", type=int, default=rules.gold_every, help=setting_help("gold_every"))
        parser.add_argument("--speed-share", type=float, default=rules.speed_share, help=setting_help("speed_share"))
        parser.add_argument("--max-speeder-share", type=float, default=rules.max_speeder_share,
                            help=setting_help("max_speeder_share"))
        parser.add_argument("--straightline-variance", type=float, default=rules.straightline_variance,
                            help=setting_help("straightline_variance"))
        parser.add_argument("--min-answers-for-variance", type=int, default=rules.min_answers_for_variance,
                            help=setting_help("min_answers_for_variance"))
        parser.add_argument("--open", action="store_true", help="Open the study for participants right away.")
        parser.add_argument("--export", type=Path, help="Write <name>-design.json and .csv into this folder.")

    def handle(self, *args, **opts):
        systems = [s.strip() for s in (opts["systems"] or "").split(",") if s.strip()]
        try:
            study = services.design_study(
                task=opts["task"], name=opts["name"], db_name=opts["db"], systems=systems,
                candidate_db=opts["candidate_db"], top_n=opts["top_n"], bottom_n=opts["bottom_n"],
                n_queries=opts["n_queries"], n_candidates=opts["n_candidates"], seed=opts["seed"],
                study_settings=services.StudySettings.from_values(opts), replace_draft=opts["replace_draft"])
            if opts["open"]:
                services.set_state(study, Study.State.OPEN)
        except ListeningError as exc:
            raise CommandError(exc.message) from None
        n_stimuli = sum(p.stimuli.count() for p in study.pages.all())
        self.stdout.write(f"study {study.name} (id {study.pk}, {study.task}, {study.state}): "
                          f"{study.pages.count()} pages, {n_stimuli} stimuli, seed {study.seed}")
        if opts["export"]:
            out = opts["export"]
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{study.name}-design.json").write_text(services.design_json(study))
            services.design_table(study).to_csv(out / f"{study.name}-design.csv", index=False)
            self.stdout.write(f"design written to {out}")
        for note in study.config.get("notes", []):
            self.stdout.write(f"note: {note}")
        self.stdout.write(f"participant link: /study/s/{study.public_token}/  dashboard: /study/{study.pk}/")
