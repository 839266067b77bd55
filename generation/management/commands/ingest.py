"""python manage.py ingest PATH... --db NAME: cut, separate, analyse and store clips."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.errors import command_errors
from generation.ingest import SEGMENTS, SEPARATORS
from generation.services import ingest_into_db


class Command(BaseCommand):
    help = "Build or extend a MashupDB from audio files, folders, or folders of stems."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path, help="Audio files or folders (searched recursively).")
        parser.add_argument("--db", required=True, help="MashupDB name (created on first success).")
        parser.add_argument("--separator", default="spleeter:4stems", choices=SEPARATORS,
                            help="Source separation model, or 'stems' to import folders of vocals/drums/bass/other.")
        parser.add_argument("--clip-seconds", type=float, default=30.0, help="Clip length in seconds (default 30).")
        parser.add_argument("--annotations", type=Path, default=None,
                            help="Harmonix-style folder (beats_and_downbeats/, segments/): verses and choruses become clips.")
        parser.add_argument("--segment", default="start", choices=SEGMENTS,
                            help="Where to cut: 'start' (from 0 s, default) or 'auto' (separate the whole file and "
                                 "take the windows with the most vocal, a steady beat and the most energy).")
        parser.add_argument("--clips-per-file", type=int, default=1,
                            help="Clips per file (default 1): with auto the N best non-overlapping windows, "
                                 "with start N consecutive ones.")
        parser.add_argument("--jobs", type=int, default=1,
                            help="Dask workers for separation and analysis: N > 1 starts a local cluster, "
                                 "MASHLAB_DASK_SCHEDULER names a shared one (default 1: in this process).")
        parser.add_argument("--no-progress", action="store_true", help="Hide progress bars.")

    def handle(self, *args, **opts):
        if opts["annotations"] is not None and not opts["annotations"].is_dir():
            raise CommandError(f"{opts['annotations']}: annotation folder not found")
        with command_errors():
            report = ingest_into_db(
                opts["paths"],
                db_name=opts["db"],
                separator=opts["separator"],
                clip_seconds=opts["clip_seconds"],
                annotations_dir=opts["annotations"],
                segment=opts["segment"],
                clips_per_file=opts["clips_per_file"],
                jobs=max(1, opts["jobs"]),
                progress=not opts["no_progress"],
                say=lambda line: self.stderr.write(line),
            )
        self.stdout.write(
            f"{opts['db']}: {len(report.added)} clips added, {report.skipped} already present, "
            f"{len(report.failures)} failed"
        )
        if report.failures and not report.added and not report.skipped:
            raise CommandError("nothing could be ingested")
