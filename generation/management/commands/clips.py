"""python manage.py clips --db NAME [--json]: list a MashupDB's clips, and which can be vocal seeds."""

import json

from django.core.management.base import BaseCommand

from config.errors import command_errors
from generation.candidates import clip_infos, get_db
from generation.models import Clip
from generation.services import clip_record, db_disk_usage


class Command(BaseCommand):
    help = "List the clips of a MashupDB with key, tempo, beats and stems."

    def add_arguments(self, parser):
        parser.add_argument("--db", required=True, help="MashupDB name.")
        parser.add_argument("--json", action="store_true", help="Print a JSON list (stable export).")

    def handle(self, *args, **opts):
        with command_errors():
            db = get_db(opts["db"])
        clips = Clip.objects.filter(db=db).prefetch_related("stems").order_by("id")
        seeds = {info.id: info.sings for info in clip_infos(clips)}  # measures unmeasured vocal levels once
        records = [{**clip_record(c), "vocal_seed": seeds[c.id]} for c in clips]
        if opts["json"]:
            self.stdout.write(json.dumps(records, indent=2))
            return
        for r in records:
            self.stdout.write(
                f"{r['id']:>5}  {r['name'][:40]:<40} {r['key']:<9} {r['tempo_bpm']:7.2f} BPM  "
                f"{r['beats_per_bar']}/4  {r['duration_s']:6.2f} s from {r['start_s']:7.2f} s "
                f"({r['segment_method']})  {','.join(sorted(r['stems']))}"
                + ("" if r["vocal_seed"] or "vocal" not in r["stems"]
                   else f"  no vocal seed: vocal {-r['vocal_level_db']:.0f} dB below the mix")
            )
        size = db_disk_usage(db.name)
        per_clip = f", {size / len(records) / 1e6:.1f} MB per clip" if records else ""
        seeds_n = sum(r["vocal_seed"] for r in records)
        self.stdout.write(f"{len(records)} clips in {db.name}, {size / 1e6:.1f} MB on disk{per_clip}; "
                          f"vocal seeds: {seeds_n}")
