"""python manage.py demo: build the demo data stage by stage (idempotent) and print the links."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from generation.separation import available_models
from generation.services import ingest
from generation.songs import demo_song_specs, render_songs


class Command(BaseCommand):
    help = "Build the demo MashupDB from generated songs and create the experimenter login."

    def add_arguments(self, parser):
        parser.add_argument("--db", default="demo", help="MashupDB name (default demo).")
        parser.add_argument("--songs", type=int, default=12, help="Generated songs (default 12).")
        parser.add_argument("--seconds", type=float, default=30.0, help="Song length in seconds (default 30).")
        parser.add_argument("--seed", type=int, default=2021, help="Random seed of the song generator.")
        parser.add_argument("--host", default=os.environ.get("MASHLAB_DEMO_URL", "http://127.0.0.1:8000"))

    def handle(self, *args, **opts):
        data = Path(settings.DATA_DIR)
        songs_root = data / "demo" / "songs"
        specs = demo_song_specs(count=opts["songs"], seed=opts["seed"], seconds=opts["seconds"])
        self.stdout.write(f"[demo] rendering {len(specs)} songs into {songs_root} (seed {opts['seed']})")
        songs = render_songs(specs, songs_root)
        models = available_models()
        separator = "spleeter:4stems" if "4stems" in models else "spleeter:2stems"
        if separator == "spleeter:2stems":
            self.stdout.write("[demo] no 4stems weights in MODEL_PATH: using 2stems + HPSS (see README)")
        report = ingest([s.mix_path for s in songs], db_name=opts["db"], separator=separator, clip_seconds=opts["seconds"],
                        say=lambda line: self.stderr.write(line))
        self.stdout.write(f"[demo] MashupDB {opts['db']}: {len(report.added)} added, {report.skipped} present, "
                          f"{len(report.failures)} failed")
        if report.failures and not report.added and not report.skipped:
            raise CommandError("the demo MashupDB could not be built")
        user, password = self._experimenter(data)
        host = opts["host"].rstrip("/")
        self.stdout.write("")
        self.stdout.write(f"  Clips of the demo MashupDB: {host}/db/{opts['db']}/")
        self.stdout.write(f"  Admin:                      {host}/admin/")
        self.stdout.write(f"  Experimenter login:         {user} / {password}  (stored in {data / 'demo-login.txt'})")

    def _experimenter(self, data: Path) -> tuple[str, str]:
        """The demo's staff account; its password is made once and kept in the data folder."""
        name = "experimenter"
        login_file = data / "demo-login.txt"
        password = os.environ.get("MASHLAB_DEMO_PASSWORD") or (
            login_file.read_text().strip().split(" ", 1)[1] if login_file.exists() else secrets.token_urlsafe(12)
        )
        User = get_user_model()
        user, _ = User.objects.get_or_create(username=name, defaults={"is_staff": True, "is_superuser": True})
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        login_file.parent.mkdir(parents=True, exist_ok=True)
        login_file.write_text(f"{name} {password}\n")
        login_file.chmod(0o600)
        return name, password
