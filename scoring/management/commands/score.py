"""python manage.py score --system NAME (--db NAME | --candidates IDS) [--checkpoint FILE]."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.errors import command_errors
from generation.candidates import get_db
from generation.models import Candidate
from scoring.services import get_system, register_checkpoint, score


class Command(BaseCommand):
    help = "Store one score per (system, candidate); --checkpoint registers a checkpoint made elsewhere."

    def add_arguments(self, parser):
        parser.add_argument("--system", required=True, help="System name (amu and amu_rhythm need no checkpoint).")
        parser.add_argument("--db", default=None, help="Score every candidate of this MashupDB.")
        parser.add_argument("--candidates", default=None, help="Comma-separated candidate ids.")
        parser.add_argument("--checkpoint", type=Path, default=None, help="Register this checkpoint as --system.")
        parser.add_argument("--condition", default=None, help="Only candidates of this condition.")
        parser.add_argument("--rescore", action="store_true", help="Score again candidates already scored.")
        parser.add_argument("--jobs", type=int, default=1,
                            help="Dask workers: a local cluster of N processes (default 1: serial); "
                                 "MASHLAB_DASK_SCHEDULER names a running cluster instead.")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **o):
        with command_errors():
            if o["checkpoint"] is not None:
                system = register_checkpoint(o["system"], o["checkpoint"])
                self.stdout.write(f"system {system.name} ({system.arch}) registered")
                if not (o["db"] or o["candidates"]):
                    return
            system = get_system(o["system"])
            if bool(o["db"]) == bool(o["candidates"]):
                raise CommandError("give exactly one of --db NAME or --candidates IDS")
            if o["db"]:
                qs = Candidate.objects.filter(db=get_db(o["db"]))
            else:
                try:
                    ids = [int(x) for x in o["candidates"].split(",") if x.strip()]
                except ValueError:
                    raise CommandError("--candidates takes comma-separated integer ids") from None
                qs = Candidate.objects.filter(id__in=ids)
                missing = set(ids) - set(qs.values_list("id", flat=True))
                if missing:
                    raise CommandError(f"no candidates with ids {sorted(missing)}")
            if o["condition"]:
                qs = qs.filter(condition=o["condition"])
            qs = qs.select_related("vocal_clip").order_by("id")
            n = score(system, qs, progress=not o["no_progress"], rescore=o["rescore"], jobs=o["jobs"])
        self.stdout.write(f"{system.name}: {n} candidates scored")
