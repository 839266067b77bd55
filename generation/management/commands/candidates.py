"""python manage.py candidates --db NAME [--condition C] [--json]: the stable candidate export."""

import json

from django.core.management.base import BaseCommand

from config.errors import command_errors
from generation.candidates import candidate_record, get_db
from generation.conditions import Condition
from generation.models import Candidate


class Command(BaseCommand):
    help = "List the candidates of a MashupDB."

    def add_arguments(self, parser):
        parser.add_argument("--db", required=True)
        parser.add_argument("--condition", choices=[c.value for c in Condition], default=None)
        parser.add_argument("--json", action="store_true", help="Print a JSON list.")

    def handle(self, *args, **o):
        with command_errors():
            db = get_db(o["db"])
        qs = Candidate.objects.filter(db=db).select_related("db").order_by("id")
        if o["condition"]:
            qs = qs.filter(condition=o["condition"])
        records = [candidate_record(c) for c in qs]
        if o["json"]:
            self.stdout.write(json.dumps(records, indent=2))
            return
        for r in records:
            self.stdout.write(
                f"{r['id']:>6} {r['condition']:<16} v{r['vocal_clip']:<5} h{r['harmonic_clip']:<5} "
                f"p{r['percussion_clip']:<5} shift {r['harmonic_shift_semitones']:+d} "
                f"ratios {r['harmonic_ratio']:.3f}/{r['percussion_ratio']:.3f} "
                f"{'rendered' if r['mix_path'] else ''}"
            )
        self.stdout.write(f"{len(records)} candidates")
