"""python manage.py render --db NAME [--condition C] [--candidates IDS] [--force] [--clear-cache]."""

from django.core.management.base import BaseCommand, CommandError

from config.errors import command_errors
from generation.candidates import get_db, render_candidates, stem_cache
from generation.models import Candidate


class Command(BaseCommand):
    help = "Render candidates' mixes and adjusted stems; --clear-cache empties the adjusted-stem cache."

    def add_arguments(self, parser):
        parser.add_argument("--db", default=None)
        parser.add_argument("--condition", default=None)
        parser.add_argument("--candidates", default=None, help="Comma-separated candidate ids.")
        parser.add_argument("--force", action="store_true", help="Render again what is already rendered.")
        parser.add_argument("--clear-cache", action="store_true", help="Remove every cached adjusted stem first.")
        parser.add_argument("--jobs", type=int, default=1,
                            help="Dask workers: a local cluster of N processes (default 1: serial); "
                                 "MASHLAB_DASK_SCHEDULER names a running cluster instead.")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **o):
        if o["clear_cache"]:
            self.stdout.write(f"{stem_cache().clear()} cached stems removed")
        if not (o["db"] or o["candidates"]):
            if o["clear_cache"]:
                return
            raise CommandError("give --db NAME or --candidates IDS")
        try:
            ids = [int(x) for x in (o["candidates"] or "").split(",") if x.strip()]
        except ValueError:
            raise CommandError("--candidates takes comma-separated integer ids") from None
        with command_errors():
            qs = Candidate.objects.all()
            if o["db"]:
                qs = qs.filter(db=get_db(o["db"]))
            if o["candidates"]:
                qs = qs.filter(id__in=ids)
            if o["condition"]:
                qs = qs.filter(condition=o["condition"])
            n = render_candidates(qs.select_related("db").order_by("id"), progress=not o["no_progress"],
                                  force=o["force"], jobs=o["jobs"])
        self.stdout.write(f"{n} candidates rendered")
