"""python manage.py rank --system NAME --vocal CLIP_ID [--top K] [--store] [--json PATH] [--no-progress]."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.errors import command_errors
from generation.models import Clip
from scoring.retrieval import rank_pairs, store_top
from scoring.services import get_system


class Command(BaseCommand):
    help = ("Score every qualifying matched (harmonic, percussion) pair of one vocal seed and print the best; "
            "PreMixNet systems are factorised, PostMixNet and AMU ones scored pair by pair.")

    def add_arguments(self, parser):
        parser.add_argument("--system", required=True, help="A registered premix or postmix system, or amu / amu_rhythm.")
        parser.add_argument("--vocal", type=int, required=True, help="Clip id of the vocal seed.")
        parser.add_argument("--top", type=int, default=10, help="Pairs to print (and store with --store); default 10.")
        parser.add_argument("--store", action="store_true",
                            help="Store the top pairs as matched candidates with their scores for --system.")
        parser.add_argument("--accompaniment-db", default=None,
                            help="MashupDB the accompaniment stems come from (default: the vocal's).")
        parser.add_argument("--duration", type=float, default=None, help="Mashup length in seconds (25-60).")
        parser.add_argument("--json", type=Path, default=None, help="Also write the full ranking to this file.")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **o):
        if o["top"] < 1:
            raise CommandError(f"--top must be at least 1, got {o['top']}")
        with command_errors():
            system = get_system(o["system"])
            ranking = rank_pairs(system, o["vocal"], progress=not o["no_progress"],
                                 accompaniment_db=o["accompaniment_db"], duration_s=o["duration"])
            report = store_top(system, ranking, top=o["top"]) if o["store"] else None
        r = ranking
        self.stdout.write(
            f"{r.system} ({r.arch}, {r.method}): vocal clip {r.vocal_clip} of {r.db}: {r.n_harmonic} harmonic x "
            f"{r.n_percussion} percussion stems, {r.n_pairs} pairs scored in {r.seconds:.2f} s "
            f"({r.pairs_per_second:.1f} pairs/s; adjust {r.adjust_s:.2f} s, log-mels {r.features_s:.2f} s, "
            f"network {r.network_s:.2f} s)"
        )
        top = r.pairs[: o["top"]]
        names = dict(Clip.objects.filter(id__in={i for p in top for i in (p.harmonic_clip, p.percussion_clip)})
                     .values_list("id", "name"))
        self.stdout.write(f"{'rank':>4} {'score':>8} {'harmonic':>9} {'shift':>5} {'ratio':>6} "
                          f"{'percussion':>10} {'ratio':>6}  names")
        for n, p in enumerate(top, 1):
            s = p.spec
            self.stdout.write(f"{n:>4} {p.score:>8.5f} {p.harmonic_clip:>9} {s.harmonic_shift_semitones:>+5d} "
                              f"{s.harmonic_ratio:>6.3f} {p.percussion_clip:>10} {s.percussion_ratio:>6.3f}  "
                              f"{names.get(p.harmonic_clip, '?')} / {names.get(p.percussion_clip, '?')}")
        if report is not None:
            self.stdout.write(f"stored {len(report.candidates)} candidates ({report.created} created, "
                              f"{report.existing} already stored) with their {r.system} scores")
        if o["json"]:
            data = r.to_dict()
            ids: list[int | None] = [c.id for c in report.candidates] if report is not None else [None] * len(top)
            data["top"] = [{"rank": n, **p.to_dict(), "candidate_id": cid, "spec": p.spec.to_dict()}
                           for n, (p, cid) in enumerate(zip(top, ids), 1)]
            o["json"].write_text(json.dumps(data, indent=2))
            self.stdout.write(f"wrote {o['json']}")
