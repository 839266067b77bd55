"""python manage.py evaluate --db NAME --system NAME... [--per-seed 5] [--json PATH]: the paper's Table 1."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from scoring.errors import ScoringError
from scoring.services import evaluate


class Command(BaseCommand):
    help = "Objective evaluation: accuracy on labeled test candidates and average rank of positives."

    def add_arguments(self, parser):
        parser.add_argument("--db", required=True, help="Test MashupDB (its test set is built when absent).")
        parser.add_argument("--system", nargs="+", required=True)
        parser.add_argument("--per-seed", type=int, default=5, help="Matched candidates per vocal seed.")
        parser.add_argument("--seed", type=int, default=0, help="Random seed for building the test set.")
        parser.add_argument("--json", type=Path, default=None, help="Also write the rows to this file.")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **o):
        try:
            rows = evaluate(o["db"], o["system"], per_seed=o["per_seed"], seed=o["seed"],
                            progress=not o["no_progress"])
        except ScoringError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{'system':<16} {'accuracy':>9} {'avg rank':>9} {'labeled':>8} {'unlabeled':>10}")
        for r in rows:
            acc = "n/a" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f} %"
            self.stdout.write(f"{r['system']:<16} {acc:>9} {r['average_rank']:>9.3f} {r['n_labeled']:>8} "
                              f"{r['n_unlabeled']:>10}")
            if r.get("accuracy_note"):
                self.stdout.write(f"  note: {r['accuracy_note']}")
        if o["json"]:
            keys = ("system", "accuracy", "average_rank", "n_labeled", "n_unlabeled", "accuracy_note")
            o["json"].write_text(json.dumps([{k: r.get(k) for k in keys} for r in rows], indent=2))
            self.stdout.write(f"wrote {o['json']}")
