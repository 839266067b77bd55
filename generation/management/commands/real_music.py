"""python manage.py real_music [--train-db real-train] [--held-db real-held] [--clips-per-track 3] [--tracks N] [--packages …]

Build two MashupDBs from the recorded music of seven Debian packages
(generation.real_music): the training packages into one, the held-out
packages into the other, several representative clips per track
(`ingest --segment auto`). Idempotent: clips already stored are skipped.
Tracks go through ingest `--batch-tracks` at a time (separated, analysed and
stored before the next batch is separated), so a run stopped part way keeps
every finished batch and the next run goes on from there.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.errors import command_errors
from generation.ingest import SEPARATORS
from generation.models import Clip
from generation.real_music import HELD_OUT, PACKAGES, TRAINING, pick, sources, tracks
from generation.services import db_disk_usage, ingest_into_db

MIN_TRACK_S = 40.0  # shorter files are sound effects or jingles, not tracks


class Command(BaseCommand):
    help = "Build training and held-out MashupDBs from the free game soundtracks of seven Debian packages."

    def add_arguments(self, parser):
        parser.add_argument("--train-db", default="real-train")
        parser.add_argument("--held-db", default="real-held")
        parser.add_argument("--clips-per-track", type=int, default=3,
                            help="Best non-overlapping windows per track (default 3).")
        parser.add_argument("--clip-seconds", type=float, default=30.0)
        parser.add_argument("--tracks", type=int, default=None,
                            help="At most this many tracks per package, drawn with --seed (default: all).")
        parser.add_argument("--seed", type=int, default=0, help="Seed of the track draw (default 0).")
        parser.add_argument("--separator", default="spleeter:2stems", choices=[s for s in SEPARATORS if s != "stems"])
        parser.add_argument("--side", choices=["both", TRAINING, HELD_OUT], default="both")
        parser.add_argument("--packages", nargs="+", default=None, metavar="PACKAGE",
                            help="Only these of the seven packages (default all); each still goes to its own side.")
        parser.add_argument("--jobs", type=int, default=2, help="Processes for analysis (default 2).")
        parser.add_argument("--batch-tracks", type=int, default=16,
                            help="Tracks separated and stored together before the next batch (default 16): a run "
                            "stopped part way keeps the finished batches; each batch loads Spleeter once.")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **o):
        batch = o["batch_tracks"]
        if batch < 1:
            raise CommandError(f"--batch-tracks must be at least 1, got {batch}")
        known = [p.name for p in PACKAGES]
        wanted = set(o["packages"] or known)
        if wanted - set(known):
            raise CommandError(f"--packages: {', '.join(sorted(wanted - set(known)))} is not one of the seven "
                               f"packages ({', '.join(known)})")
        cache = Path(settings.DATA_DIR) / "real-music"
        dbs = {TRAINING: o["train_db"], HELD_OUT: o["held_db"]}
        for side in (TRAINING, HELD_OUT):
            chosen_packages = [p for p in PACKAGES if p.side == side and p.name in wanted]
            if o["side"] not in ("both", side) or not chosen_packages:
                continue
            paths: list[Path] = []
            for package in chosen_packages:
                with command_errors():
                    found = sources(package, cache)
                found = tracks(found, min_seconds=MIN_TRACK_S)
                chosen = pick(found, limit=o["tracks"], seed=o["seed"])
                self.stdout.write(f"{package.name} ({side}): {len(chosen)} of {len(found)} tracks")
                paths += chosen
            added = present = failed = 0
            for start in range(0, len(paths), batch):
                with command_errors():
                    report = ingest_into_db(paths[start:start + batch], db_name=dbs[side], separator=o["separator"],
                                            clip_seconds=o["clip_seconds"], segment="auto",
                                            clips_per_file=o["clips_per_track"], jobs=o["jobs"],
                                            progress=not o["no_progress"], say=lambda line: self.stderr.write(line))
                added, present, failed = added + len(report.added), present + report.skipped, failed + len(report.failures)
                if len(paths) > batch:
                    self.stdout.write(f"{dbs[side]}: tracks {start + 1}-{min(start + batch, len(paths))} of "
                                      f"{len(paths)} done")
            n = Clip.objects.filter(db__name=dbs[side]).count()
            mb = db_disk_usage(dbs[side]) / 1e6
            self.stdout.write(f"MashupDB {dbs[side]}: {added} clips added, {present} present, "
                              f"{failed} failed; {mb:.0f} MB on disk for {n} clips = "
                              f"{mb / max(n, 1):.1f} MB per clip")
