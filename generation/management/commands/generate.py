"""python manage.py generate --db NAME --condition C --count N --seed S [--render]."""

from django.core.management.base import BaseCommand, CommandError

from config.errors import command_errors
from generation.candidates import generate, render_candidates, top_up
from generation.conditions import Condition


class Command(BaseCommand):
    help = "Draw mashup candidates of one condition (and optionally render them)."

    def add_arguments(self, parser):
        parser.add_argument("--db", required=True, help="MashupDB of the vocal seeds.")
        parser.add_argument("--accompaniment-db", default=None, help="MashupDB the accompaniment stems come from.")
        parser.add_argument("--condition", required=True, choices=[c.value for c in Condition])
        parser.add_argument("--count", type=int, required=True, help="Candidates to draw.")
        parser.add_argument("--seed", type=int, required=True, help="Random seed (recorded per candidate).")
        parser.add_argument("--vocal", type=int, default=None, help="Use only this vocal clip id as the seed.")
        parser.add_argument("--duration", type=float, default=None, help="Mashup length in seconds (25-60).")
        parser.add_argument("--total", action="store_true",
                            help="--count is the number of such candidates the DB should hold (test set aside): "
                            "draw only the missing ones, fewer if fewer qualify. Idempotent.")
        parser.add_argument("--instrumental-seeds", action="store_true",
                            help="Also take clips whose vocal stem lies more than 30 dB below the mix (instrumental "
                            "music) as vocal seeds: more training data. Test sets (evaluate) never take them.")
        parser.add_argument("--whole-accompaniment", action="store_true",
                            help="Harmonic and percussion stems from one other clip (another song's whole "
                            "accompaniment); with --total, only such candidates are counted.")
        parser.add_argument("--render", action="store_true", help="Render mixes and adjusted stems.")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **o):
        if o["total"]:
            if o["render"]:
                raise CommandError("--total does not render: run `manage.py render --db NAME` after it")
            with command_errors():
                held = top_up(db_name=o["db"], accompaniment_db=o["accompaniment_db"], condition=o["condition"],
                              total=o["count"], seed=o["seed"], vocal_id=o["vocal"], duration_s=o["duration"],
                              instrumental_seeds=o["instrumental_seeds"],
                              whole_accompaniment=o["whole_accompaniment"])
            whole = " whole-accompaniment" if o["whole_accompaniment"] else ""
            self.stdout.write(f"{o['db']} holds {held}{whole} {o['condition']} candidates (asked for {o['count']})")
            return
        with command_errors():
            report = generate(db_name=o["db"], accompaniment_db=o["accompaniment_db"], condition=o["condition"],
                              count=o["count"], seed=o["seed"], vocal_id=o["vocal"], duration_s=o["duration"],
                              instrumental_seeds=o["instrumental_seeds"],
                              whole_accompaniment=o["whole_accompaniment"])
            self.stdout.write(f"{len(report.created)} {o['condition']} candidates created, "
                              f"{report.existing} already stored, {report.skipped_seeds} vocal seeds skipped "
                              "(nothing qualified: no other recording in key and tempo range)")
            if o["render"]:
                n = render_candidates(report.created, progress=not o["no_progress"])
                self.stdout.write(f"{n} candidates rendered")
