"""python manage.py train --db NAME --arch premix|postmix [--lsro] --epochs E --seed S --out DIR."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.errors import command_errors
from scoring.features import FeatureConfig
from scoring.services import train


class Command(BaseCommand):
    help = "Train a mashability network on a MashupDB's candidates and register it as a system."

    def add_arguments(self, parser):
        parser.add_argument("--db", required=True, nargs="+", help="One or more MashupDBs to train on together.")
        parser.add_argument("--arch", required=True, choices=["premix", "postmix"])
        parser.add_argument("--lsro", action="store_true", help="Unlabeled (matched) candidates get target (0.5, 0.5).")
        parser.add_argument("--epochs", type=int, required=True)
        parser.add_argument("--seed", type=int, required=True)
        parser.add_argument("--out", type=Path, default=None, help="Checkpoint folder (default MEDIA_ROOT/systems/NAME).")
        parser.add_argument("--name", default=None, help="System name (default arch, arch_lsro).")
        parser.add_argument("--width", type=float, default=1.0, help="Filter multiplier (1 = the paper's sizes).")
        parser.add_argument("--crop-seconds", type=float, default=None, help="Input length in seconds.")
        inputs = parser.add_mutually_exclusive_group()
        inputs.add_argument("--paper-input", action="store_true", help="The paper's 30 s, 22.05 kHz input.")
        inputs.add_argument("--pitch-band", action="store_true",
                            help="The small CPU recipe: 16 kHz, n_fft 2048, mel bins up to 1 kHz, 3 s crops.")
        parser.add_argument("--batch-size", type=int, default=16)
        parser.add_argument("--crop-offsets", default="0", help="Comma-separated start times (s) of the training "
                            "crops per candidate (more examples from a small DB); scoring averages the "
                            "posterior over the same crops.")
        parser.add_argument("--patience", type=int, default=None,
                            help="Stop after this many epochs without a lower validation loss (default 5; 0 = never). "
                            "The epoch with the lowest validation loss is the one registered.")
        parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (default the paper's 1e-4).")
        parser.add_argument("--device", default=None,
                            help="torch device, e.g. cpu or cuda (default: CUDA when present, mixed precision on it).")
        parser.add_argument("--workers", type=int, default=0,
                            help="DataLoader worker processes reading features from the store (default 0).")
        parser.add_argument("--transpose", type=float, default=0.0, metavar="SEMITONES",
                            help="Augment: move all stems of each training example together by a seeded random "
                            "shift within ±SEMITONES each epoch (default 0 = off).")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **o):
        cfg = (FeatureConfig.paper() if o["paper_input"] else FeatureConfig.pitch_band() if o["pitch_band"]
               else FeatureConfig())
        if o["crop_seconds"]:
            cfg = FeatureConfig(**{**cfg.to_dict(), "crop_s": o["crop_seconds"]})
        try:
            offsets = [float(x) for x in o["crop_offsets"].split(",") if x.strip()]
        except ValueError:
            raise CommandError("--crop-offsets takes comma-separated seconds, e.g. 0,5,10") from None
        with command_errors():
            system = train(db_name=o["db"], arch=o["arch"], lsro=o["lsro"], epochs=o["epochs"], seed=o["seed"],
                           out_dir=o["out"], name=o["name"], width=o["width"], config=cfg,
                           batch_size=o["batch_size"], progress=not o["no_progress"], crop_offsets_s=offsets,
                           patience=o["patience"], lr=o["lr"], device=o["device"], workers=o["workers"],
                           transpose_semitones=o["transpose"])
        self.stdout.write(f"system {system.name} registered: {system.checkpoint_file}")
        metrics = system.metrics or {}
        if metrics.get("best"):
            stop = ", stopped early" if metrics.get("stopped_early") else ""
            self.stdout.write(f"kept epoch {metrics['best_epoch']} of {len(metrics['history'])}{stop}: "
                              f"{metrics['best']}")
