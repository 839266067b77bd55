"""python manage.py evaluate --db NAME --system NAME... [--per-seed 5] [--json PATH]: the paper's Table 1."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand

from config.errors import command_errors
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
        with command_errors():
            rows = evaluate(o["db"], o["system"], per_seed=o["per_seed"], seed=o["seed"],
                            progress=not o["no_progress"])
        self.stdout.write(f"{'system':<16} {'accuracy':>9} {'avg rank':>9} {'labeled':>8} {'unlabeled':>10} "
                          f"{'R@1':>6} {'R@5':>6} {'R@10':>6} {'med nrank':>10} {'pool':>5}")
        for r in rows:
            acc = "n/a" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f} %"
            ret = r["retrieval"]
            recall = " ".join(f"{100 * ret['recall_at'][k]:>5.1f}%" for k in ("1", "5", "10"))
            self.stdout.write(f"{r['system']:<16} {acc:>9} {r['average_rank']:>9.3f} {r['n_labeled']:>8} "
                              f"{r['n_unlabeled']:>10} {recall} {100 * ret['median_normalised_rank']:>9.1f}% "
                              f"{ret['mean_pool']:>5.1f}")
            if r.get("accuracy_note"):
                self.stdout.write(f"  note: {r['accuracy_note']}")
            whole = r["whole_accompaniment"]
            if whole["n_unlabeled"] and whole["average_rank_without"] is not None:
                self.stdout.write(f"  whole accompaniments (harmonic and percussion from one clip): "
                                  f"{whole['n_unlabeled']} of {r['n_unlabeled']} unlabeled, mean score "
                                  f"{whole['mean_score']:.3f} vs {whole['mean_score_others']:.3f}; "
                                  f"avg rank without them {whole['average_rank_without']:.3f}")
        self.stdout.write("R@k: share of vocal seeds whose original ranks in the top k of its own candidates; "
                          "med nrank: median of rank / pool size.")
        if o["json"]:
            keys = ("system", "accuracy", "average_rank", "n_labeled", "n_unlabeled", "accuracy_note", "retrieval",
                    "whole_accompaniment")
            o["json"].write_text(json.dumps([{k: r.get(k) for k in keys} for r in rows], indent=2))
            self.stdout.write(f"wrote {o['json']}")
