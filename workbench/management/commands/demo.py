"""python manage.py demo: build the demo as jobs (idempotent) and print the links; see workbench.demo."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from config.errors import command_errors
from workbench.demo import Demo, DemoPlan
from workbench.jobs import WorkbenchError

STAGES = ("mashupdb", "candidates", "scores", "studies")


class Command(BaseCommand):
    help = "Build the demo MashupDBs from generated songs, stage by stage as jobs, and create the experimenter login."

    def add_arguments(self, parser):
        d = DemoPlan()
        parser.add_argument("--db", default=d.db, help=f"MashupDB name (default {d.db}; the test set goes in NAME-b).")
        parser.add_argument("--songs", type=int, default=d.songs, help=f"Generated songs (default {d.songs}).")
        parser.add_argument("--seconds", type=float, default=d.seconds, help="Song length in seconds (default 30).")
        parser.add_argument("--seed", type=int, default=d.seed, help="The seed every stage's seed derives from.")
        parser.add_argument("--host", default=os.environ.get("MASHLAB_DEMO_URL", "http://127.0.0.1:8000"))
        parser.add_argument("--epochs", type=int, default=d.epochs,
                            help="Training epochs per demo system at most (the best by validation loss is kept).")
        parser.add_argument("--queries", type=int, default=d.queries, help="Retrieval queries of the demo study.")
        parser.add_argument("--stage", choices=STAGES, default="studies",
                            help="Stop after this stage (default: build everything).")

    def handle(self, *args, **o):
        data = Path(settings.DATA_DIR)
        plan = DemoPlan(db=o["db"], songs=o["songs"], seconds=o["seconds"], seed=o["seed"], epochs=o["epochs"],
                        queries=o["queries"])
        demo = Demo(plan, data, say=self.stdout.write)
        upto = STAGES.index(o["stage"])
        links = [("Clips of the demo MashupDB", f"/db/{plan.db}/")]
        try:
            with command_errors():
                demo.mashupdbs()
                if upto >= 1:
                    demo.candidates()
                    links.append(("Candidates of every condition", f"/db/{plan.db}/candidates/"))
                if upto >= 2:
                    demo.scores()
                    links.append(("Systems, rankings and Table 1", "/systems/"))
                if upto >= 3:
                    links += self._study_links(demo.studies())
        except WorkbenchError as exc:
            raise CommandError(str(exc)) from exc
        user, password = experimenter(data)
        host = o["host"].rstrip("/")
        self.stdout.write("")
        for label, path in links + [("Jobs the demo ran", "/work/"), ("Admin", "/admin/")]:
            self.stdout.write(f"  {label + ':':<36} {host}{path}")
        self.stdout.write(f"  {'Experimenter login:':<36} {user} / {password}  (kept in {data / 'demo-login.txt'})")

    @staticmethod
    def _study_links(study_ids: list[int]) -> list[tuple[str, str]]:
        from listening.models import Study

        links = []
        for study in Study.objects.filter(pk__in=study_ids).order_by("pk"):
            links.append((f"Participant link ({study.task})", f"/study/s/{study.public_token}/"))
            links.append((f"Dashboard ({study.task})", f"/study/{study.pk}/"))
            links.append((f"Analysis ({study.task})", f"/analysis/study/{study.pk}/"))
        return links


def experimenter(data: Path) -> tuple[str, str]:
    """The demo's staff account; its password is made once and kept in the data folder (0600)."""
    name = "experimenter"
    login_file = data / "demo-login.txt"
    password = os.environ.get("MASHLAB_DEMO_PASSWORD") or (
        login_file.read_text().strip().split(" ", 1)[1] if login_file.exists() else secrets.token_urlsafe(12)
    )
    User = get_user_model()
    user, _ = User.objects.get_or_create(username=name, defaults={"is_staff": True, "is_superuser": True})
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    login_file.parent.mkdir(parents=True, exist_ok=True)
    login_file.write_text(f"{name} {password}\n")
    login_file.chmod(0o600)
    return name, password
