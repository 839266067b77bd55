"""The demo, stage by stage, as jobs: generated songs → two MashupDBs (demo, demo-b) → candidates of every
condition, rendered → four small networks and both AutoMashUpper variants → scores and Table 1 (test set on
demo-b) → a generation and a retrieval study.

Every stage runs as a Job through `workbench.jobs.run_here`, so the job list shows what the demo did, and
every stage is idempotent: a second build reuses what exists and its jobs finish at once. This is the one
module that strings the four stages together; `manage.py demo` is its command-line face.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from generation.conditions import UNMATCHED, Condition
from generation.models import Candidate, Clip
from generation.separation import available_models
from scoring.errors import ScoringError
from scoring.models import System
from scoring.services import AMU_NAMES
from workbench import jobs
from workbench.models import Job

log = logging.getLogger(__name__)

SYSTEMS = (("premix", False), ("postmix", False), ("premix_lsro", True), ("postmix_lsro", True))
DEMO_WIDTH = 0.125  # channel multiplier of the demo's networks
#: Back-to-back crops per candidate, 0–24 s: the demo's mashups last 25 s or more. With width 0.125 and the
#: pitch-band input this is the README's small CPU recipe: PostMixNet reaches 100 % on demo-b in seconds,
#: where full-band 10 s crops left all four systems at 50 %; PreMixNet learns less from so few songs.
DEMO_CROPS = 8
#: Augmentation per network (semitones, scoring.augment): all stems of a training example move together by a
#: seeded shift in ±6 each epoch. On demo-b it lifts PreMixNet from 0.50 to 0.80–0.90 (premix_lsro 0.90–0.95)
#: but costs PostMixNet+LSRO (0.90 → 0.70), so PostMixNet trains on the stems as they are.
DEMO_TRANSPOSE_SEMITONES = {"premix": 6.0, "postmix": 0.0}
#: Every epoch runs and the one with the lowest validation loss is kept: demo's validation split is a few
#: songs, so its loss is noisy and early stopping ended some seeds' runs before PreMixNet had learned.
DEMO_PATIENCE = 0
RETRIEVAL_CANDIDATES = 6  # matched candidates per retrieval query, their accompaniment from demo-b


@dataclass(frozen=True)
class DemoPlan:
    """What the demo builds: its MashupDB names, sizes and the one seed every stage's seed derives from."""

    db: str = "demo"
    songs: int = 16
    seconds: float = 30.0
    seed: int = 2021
    epochs: int = 40
    queries: int = 4

    @property
    def db_b(self) -> str:
        return f"{self.db}-b"


class Demo:
    """Runs the demo's stages as jobs in this process; `say` gets its progress lines."""

    def __init__(self, plan: DemoPlan, data_dir: Path, *, say: Callable[[str], None] = print) -> None:
        self.plan, self.data_dir, self.say = plan, Path(data_dir), say
        self.jobs: list[Job] = []

    def stage(self, stage: str, **arguments) -> Job:
        """One stage as a job; a job that does not end done is a WorkbenchError with its sentence."""
        self.say(f"[demo] job: {stage} {_brief(arguments)}")
        job = jobs.run_here(stage, arguments, echo=self.say)
        self.jobs.append(job)
        if job.state != Job.DONE:
            raise jobs.WorkbenchError(job.error or f"the demo's {stage} job ended {job.state}")
        return job

    def mashupdbs(self) -> None:
        """Generated songs → MashupDBs demo and demo-b (Spleeter 4stems when its weights are present, else
        2stems + HPSS)."""
        p = self.plan
        separator = "spleeter:4stems" if "4stems" in available_models() else "spleeter:2stems"
        if separator == "spleeter:2stems":
            self.say("[demo] no 4stems weights in MODEL_PATH: separating with 2stems + HPSS (see README)")
        for name, count, seed in ((p.db, p.songs, p.seed), (p.db_b, max(4, p.songs * 2 // 3), p.seed + 1)):
            folder = self.data_dir / "demo" / name
            songs = self.stage("songs", db=name, count=count, seed=seed, seconds=p.seconds, folder=str(folder))
            self.stage("ingest", db=name, paths=songs.outputs["paths"], separator=separator,
                       clip_seconds=p.seconds)
            if not Clip.objects.filter(db__name=name).exists():
                raise jobs.WorkbenchError(f"the demo MashupDB {name} could not be built")

    def candidates(self) -> None:
        """Positives, negatives and unlabeled in equal thirds, the retrieval queries' candidates, all rendered."""
        p = self.plan
        n = Clip.objects.filter(db__name=p.db).count()
        self.stage("generate", db=p.db, condition="original", total=n, seed=p.seed)
        for k, condition in enumerate(UNMATCHED):
            self.stage("generate", db=p.db, condition=condition.value, total=n // 3 + (k < n % 3), seed=p.seed + 1 + k)
        self.stage("generate", db=p.db, condition="matched", total=n, seed=p.seed + 4, accompaniment_db=p.db)
        vocals = Clip.objects.filter(db__name=p.db).order_by("id").values_list("id", flat=True)[: p.queries]
        for k, vocal in enumerate(vocals):
            self.stage("generate", db=p.db, condition="matched", total=RETRIEVAL_CANDIDATES, seed=p.seed + 10 + k,
                       accompaniment_db=p.db_b, vocal_id=vocal)
        self.stage("render", db=p.db)
        for c in Condition:
            self.say(f"[demo]   {c.label:<16} {Candidate.objects.filter(db__name=p.db, condition=c.value).count():>4}")

    def scores(self) -> None:
        """Train the four networks briefly (unless trained), score with them and both AMU variants, Table 1."""
        p = self.plan
        for name, lsro in SYSTEMS:
            system = System.objects.filter(name=name).first()
            if system is None or not (system.checkpoint_file and system.checkpoint_file.is_file()):
                arch = name.split("_")[0]
                self.stage("train", db=p.db, arch=arch, lsro=lsro, epochs=p.epochs, seed=p.seed, name=name,
                           width=DEMO_WIDTH, recipe="pitch_band", crops=DEMO_CROPS, batch_size=16,
                           patience=DEMO_PATIENCE, transpose_semitones=DEMO_TRANSPOSE_SEMITONES[arch])
        names = [n for n, _ in SYSTEMS] + list(AMU_NAMES)
        for name in names:
            self.stage("score", db=p.db, system=name)
        try:
            table = self.stage("evaluate", db=p.db_b, systems=names, per_seed=3, seed=p.seed)
        except ScoringError as exc:  # a small demo-b may hold no matched pair: the studies do not need Table 1
            self.say(f"[demo] no Table 1 on {p.db_b}: {exc}")
            return
        self.say(f"[demo] Table 1 on {p.db_b}: " + "; ".join(
            f"{r['system']} acc {'n/a' if r['accuracy'] is None else format(r['accuracy'], '.2f')} "
            f"rank {r['average_rank']:.2f}" for r in table.outputs["table1"]))

    def studies(self) -> list[int]:
        """The generation study on demo and the retrieval study (queries of demo, candidates from demo-b)."""
        p = self.plan
        job = self.stage("studies", generation_db=p.db, retrieval_query_db=p.db, retrieval_candidate_db=p.db_b,
                         top_n=3, bottom_n=3, n_queries=p.queries, seed=p.seed)
        return list(job.outputs["studies"])


def _brief(arguments: dict) -> str:
    """A job's arguments on one line, long lists shortened (the ingest paths)."""
    return " ".join(f"{k}={v if not isinstance(v, list) or len(v) <= 3 else f'[{len(v)} items]'}"
                    for k, v in arguments.items())
