"""python manage.py demo: build the demo stage by stage (idempotent) and print the links.

Stages: generated songs → two MashupDBs (demo, demo-b) → candidates of every
condition, rendered → four networks trained briefly plus AutoMashUpper →
scores and Table 1 (test set on demo-b) → a generation and a retrieval study.
A second run reuses everything that exists.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from generation.candidates import render_candidates, top_up
from generation.models import Candidate, Clip
from generation.separation import available_models
from generation.services import ingest_into_db
from generation.synth_songs import demo_song_specs, render_songs

SYSTEMS = (("premix", False), ("postmix", False), ("premix_lsro", True), ("postmix_lsro", True))
DEMO_WIDTH = 0.125  # channel multiplier of the demo's networks
DEMO_CROPS = 8  # back-to-back crops per candidate, 0-24 s: the demo's mashups last 25 s or more


class Command(BaseCommand):
    help = "Build the demo MashupDB from generated songs and create the experimenter login."

    def add_arguments(self, parser):
        parser.add_argument("--db", default="demo", help="MashupDB name (default demo).")
        parser.add_argument("--songs", type=int, default=16, help="Generated songs (default 16).")
        parser.add_argument("--seconds", type=float, default=30.0, help="Song length in seconds (default 30).")
        parser.add_argument("--seed", type=int, default=2021, help="Random seed of the song generator.")
        parser.add_argument("--host", default=os.environ.get("MASHLAB_DEMO_URL", "http://127.0.0.1:8000"))
        parser.add_argument("--epochs", type=int, default=20,
                            help="Training epochs per demo system at most (the best by validation loss is kept).")
        parser.add_argument("--queries", type=int, default=4, help="Retrieval queries of the demo study.")
        parser.add_argument("--stage", choices=["mashupdb", "candidates", "scores", "studies"], default="studies",
                            help="Stop after this stage (default: build everything).")

    def handle(self, *args, **opts):
        data = Path(settings.DATA_DIR)
        db, db_b = opts["db"], f"{opts['db']}-b"
        self._mashupdb(data, db, count=opts["songs"], seed=opts["seed"], seconds=opts["seconds"])
        self._mashupdb(data, db_b, count=max(4, opts["songs"] * 2 // 3), seed=opts["seed"] + 1,
                       seconds=opts["seconds"])
        links = [("Clips of the demo MashupDB", f"/db/{db}/")]
        stage = opts["stage"]
        if stage != "mashupdb":
            self._candidates(db, db_b, seed=opts["seed"], queries=opts["queries"])
            links.append(("Candidates of every condition", f"/db/{db}/candidates/"))
        if stage in ("scores", "studies"):
            self._scores(db, db_b, seed=opts["seed"], epochs=opts["epochs"])
            links.append(("Systems, rankings and Table 1", "/systems/"))
        if stage == "studies":
            for study in self._studies(db, db_b, seed=opts["seed"], queries=opts["queries"]):
                links.append((f"Participant link ({study.task})", f"/study/s/{study.public_token}/"))
                links.append((f"Dashboard ({study.task})", f"/study/{study.pk}/"))
                links.append((f"Analysis ({study.task})", f"/analysis/study/{study.pk}/"))
        user, password = self._experimenter(data)
        host = opts["host"].rstrip("/")
        self.stdout.write("")
        for label, path in links + [("Admin", "/admin/")]:
            self.stdout.write(f"  {label + ':':<36} {host}{path}")
        self.stdout.write(f"  {'Experimenter login:':<36} {user} / {password}  (kept in {data / 'demo-login.txt'})")

    def _say(self, text: str) -> None:
        self.stdout.write(f"[demo] {text}")

    def _mashupdb(self, data: Path, name: str, *, count: int, seed: int, seconds: float) -> None:
        """Generated songs → MashupDB `name` (Spleeter 4stems when its weights are present, else 2stems + HPSS)."""
        songs_root = data / "demo" / name
        specs = demo_song_specs(count=count, seed=seed, seconds=seconds)
        self._say(f"{name}: rendering {len(specs)} songs into {songs_root} (seed {seed})")
        songs = render_songs(specs, songs_root)
        separator = "spleeter:4stems" if "4stems" in available_models() else "spleeter:2stems"
        if separator == "spleeter:2stems":
            self._say("no 4stems weights in MODEL_PATH: separating with 2stems + HPSS (see README)")
        report = ingest_into_db([s.mix_path for s in songs], db_name=name, separator=separator, clip_seconds=seconds,
                        say=lambda line: self.stderr.write(line))
        self._say(f"MashupDB {name}: {len(report.added)} added, {report.skipped} present, "
                  f"{len(report.failures)} failed")
        if not Clip.objects.filter(db__name=name).exists():
            raise CommandError(f"the demo MashupDB {name} could not be built")

    def _top_up(self, db: str, condition: str, target: int, *, seed: int, **kw) -> None:
        """Generate until `db` holds `target` candidates of `condition` (fewer if nothing more qualifies)."""
        held = top_up(db_name=db, condition=condition, total=target, seed=seed, **kw)
        if held < target:
            self._say(f"{condition}: {held} of {target} candidates qualify")

    def _candidates(self, db: str, db_b: str, *, seed: int, queries: int) -> None:
        """Positives, negatives and unlabeled in equal thirds, retrieval candidates, all rendered."""
        n = Clip.objects.filter(db__name=db).count()
        self._top_up(db, "original", n, seed=seed)
        for k, condition in enumerate(("unmatched_key", "unmatched_tempo", "unmatched_both")):
            self._top_up(db, condition, n // 3 + (k < n % 3), seed=seed + 1 + k)
        self._top_up(db, "matched", n, seed=seed + 4, accompaniment_db=db)
        vocals = list(Clip.objects.filter(db__name=db).order_by("id").values_list("id", flat=True))[:queries]
        for k, vocal in enumerate(vocals):
            self._top_up(db, "matched", 6, seed=seed + 10 + k, accompaniment_db=db_b, vocal_id=vocal)
        todo = Candidate.objects.filter(db__name=db, mix_path="").exclude(split="test").select_related("db")
        self._say(f"rendering {todo.count()} candidates (44.1 kHz stereo, -16 LUFS)")
        render_candidates(todo.order_by("id"))
        for c, label in ((c.value, c.label) for c in Candidate.Condition):
            self._say(f"  {label:<16} {Candidate.objects.filter(db__name=db, condition=c).count():>4}")

    def _scores(self, db: str, db_b: str, *, seed: int, epochs: int) -> None:
        """Train the four networks briefly, score with them and both AMU baselines (amu, amu_rhythm), Table 1.

        The recipe is the README's small CPU one, the learned-model test's: width
        0.125, `FeatureConfig.pitch_band()` input, 8 back-to-back 3 s crops per
        candidate. On the demo's 12 songs it took PostMixNet to 100 % on demo-b
        (16 labeled) in 17 s of training, where full-band 10 s crops left all four
        systems at 50 %. PreMixNet, three SourceNets, learns less from so few songs.
        """
        from scoring.features import FeatureConfig
        from scoring.models import System
        from scoring.services import AMU_NAMES, evaluate, get_system, score, train

        config = FeatureConfig.pitch_band()
        offsets = [k * config.crop_s for k in range(DEMO_CROPS)]
        for name, lsro in SYSTEMS:
            system = System.objects.filter(name=name).first()
            if system is None or not (system.checkpoint_file and system.checkpoint_file.is_file()):
                self._say(f"training {name} ({epochs} epochs, width {DEMO_WIDTH}, pitch-band input, "
                          f"{DEMO_CROPS} crops of {config.crop_s:g} s)")
                train(db_name=db, arch=name.split("_")[0], lsro=lsro, epochs=epochs, seed=seed, name=name,
                      width=DEMO_WIDTH, config=config, crop_offsets_s=offsets, batch_size=16)
        names = [n for n, _ in SYSTEMS] + list(AMU_NAMES)
        cands = Candidate.objects.filter(db__name=db).select_related("vocal_clip").order_by("id")
        for name in names:
            n = score(get_system(name), cands)
            self._say(f"{name}: {n} new scores")
        rows = evaluate(db_b, names, per_seed=3, seed=seed)
        self._say("Table 1 on " + db_b + ": " + "; ".join(
            f"{r['system']} acc {'n/a' if r['accuracy'] is None else format(r['accuracy'], '.2f')} "
            f"rank {r['average_rank']:.2f}" for r in rows))

    def _studies(self, db: str, db_b: str, *, seed: int, queries: int):
        from listening.services import build_demo_studies

        return build_demo_studies(generation_db=db, retrieval_query_db=db, retrieval_candidate_db=db_b,
                                  top_n=3, bottom_n=3, n_queries=queries, seed=seed)

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
