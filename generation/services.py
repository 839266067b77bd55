"""Django side of ingest: skip what is stored, move finished clips into MEDIA_ROOT, write rows."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from django.conf import settings
from django.db import transaction

from generation.errors import IngestError
from generation.ingest import (
    SEGMENTS,
    ClipPlan,
    Failure,
    PreparedClip,
    discover_sources,
    plan_auto_clips,
    plan_clips,
    prepare_clips,
)
from generation.models import Clip, MashupDB, Stem

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    added: list[Clip] = field(default_factory=list)
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)


def db_folder(db_name: str) -> Path:
    return Path(settings.MEDIA_ROOT) / "mashupdb" / db_name


def segment_cache_dir() -> Path:
    """Where `--segment auto` keeps each recording's chosen windows (small JSON files), under MEDIA_ROOT."""
    return Path(settings.MEDIA_ROOT) / "cache" / "segments"


def ingest_into_db(
    paths: list[Path],
    *,
    db_name: str,
    separator: str = "spleeter:4stems",
    clip_seconds: float = 30.0,
    annotations_dir: Path | None = None,
    segment: str = "start",
    clips_per_file: int = 1,
    jobs: int = 1,
    progress: bool = True,
    say: Callable[[str], None] = print,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> IngestReport:
    """Add every new clip of `paths` to MashupDB `db_name`; stored clips are skipped (resumable).

    `segment` 'start' cuts `clips_per_file` consecutive clips from each file's
    start; 'auto' separates each file whole and keeps its `clips_per_file`
    best non-overlapping windows (generation.segments). With `annotations_dir`
    the annotated verses and choruses are the clips, whatever `segment` says.
    `on_progress(done, total, current item)` counts two steps per planned clip
    (of 2N): one as its analysis ends, one as it is stored (or fails); 0 until
    separation, which runs as one batch, is over.
    """
    report = IngestReport()

    def fail(failure: Failure) -> None:
        report.failures.append(failure)
        say(f"error: {failure.message}")

    if segment not in SEGMENTS:
        raise IngestError(f"unknown segment method {segment!r}; choose one of {', '.join(SEGMENTS)}")
    sources, failures = discover_sources(paths, separator=separator)
    for f in failures:
        fail(f)
    db = MashupDB.objects.filter(name=db_name).first()
    known = set(Clip.objects.filter(db=db).values_list("source_sha256", "start_s")) if db else set()

    def is_known(plan: ClipPlan) -> bool:
        return (plan.source_sha256, plan.start_s) in known

    media = Path(settings.MEDIA_ROOT)
    staging = media / ".staging" / uuid.uuid4().hex
    try:
        plans: list[ClipPlan] = []
        if segment == "auto" and annotations_dir is None:
            plans, report.skipped = plan_auto_clips(
                sources, staging, separator=separator, clip_seconds=clip_seconds, clips_per_file=clips_per_file,
                cache_dir=segment_cache_dir(), is_known=is_known, progress=progress, report=fail)
        else:
            for source in sources:
                try:
                    for plan in plan_clips(source, clip_seconds=clip_seconds, annotations_dir=annotations_dir,
                                           clips_per_file=clips_per_file):
                        if is_known(plan):
                            report.skipped += 1
                        else:
                            plans.append(plan)
                except IngestError as exc:
                    fail(Failure(source, str(exc)))
        if not plans:
            return report
        total = 2 * len(plans)
        analysed = 0

        def step(source: str) -> None:
            nonlocal analysed
            analysed += 1
            if on_progress is not None:
                on_progress(analysed, total, f"analysed {source}")

        if on_progress is not None:
            on_progress(0, total, "separating")
        prepared = prepare_clips(plans, staging, separator=separator, jobs=jobs, progress=progress, report=fail,
                                 on_analysed=step)
        settled = total - len(prepared)  # every step but the storing of the clips that are ready
        for clip in prepared:
            try:
                stored = _store(clip, db_name)
            except Exception as exc:  # keep the DB and MEDIA_ROOT consistent, go on with the rest
                fail(Failure(clip.plan.source, f"{clip.plan.source}: could not store clip: {exc}"))
            else:
                report.added.append(stored)
                log.info("ingested clip %d of %s into MashupDB %s: key %s, %.2f BPM, %.1f s", stored.id,
                         clip.plan.source, db_name, stored.key_label, stored.tempo_bpm, stored.duration_s)
            settled += 1
            if on_progress is not None:
                on_progress(settled, total, f"stored {clip.plan.source}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _store(clip: PreparedClip, db_name: str) -> Clip:
    """Move the clip folder into place and write its rows; all or nothing."""
    final = db_folder(db_name) / clip.plan.uid
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():  # left over by an interrupted run, not in the DB: replace it
        shutil.rmtree(final)
    media = Path(settings.MEDIA_ROOT)
    rel = final.relative_to(media)
    try:
        with transaction.atomic():
            db, _ = MashupDB.objects.get_or_create(name=db_name)
            row = Clip.objects.create(
                db=db,
                name=clip.plan.name,
                source=str(clip.plan.source),
                source_sha256=clip.plan.source_sha256,
                start_s=clip.plan.start_s,
                duration_s=clip.duration_s,
                sample_rate=clip.sample_rate,
                audio_path=(rel / clip.audio_name).as_posix(),
                segment_label=clip.plan.segment_label,
                segment_method=clip.plan.segment_method,
                segment_score=clip.plan.segment_score,
                gain_db=clip.gain_db,
                key_label=clip.key_label,
                tempo_bpm=clip.tempo_bpm,
                beats=clip.beats,
                downbeats=clip.downbeats,
                beats_per_bar=clip.beats_per_bar,
                analysis_source=clip.analysis_source,
            )
            Stem.objects.bulk_create(
                Stem(clip=row, name=name, kind=kind, path=(rel / file).as_posix(), method=method)
                for name, kind, file, method in clip.stems
            )
            os.replace(clip.folder, final)
    except Exception:
        if final.exists() and not clip.folder.exists():
            shutil.rmtree(final, ignore_errors=True)
        raise
    return row


def clip_record(clip: Clip) -> dict:
    """The stable JSON form of a clip (the `clips --json` export)."""
    stems = list(clip.stems.all())
    return {
        "id": clip.id,
        "db": clip.db.name,
        "name": clip.name,
        "source": clip.source,
        "start_s": clip.start_s,
        "duration_s": clip.duration_s,
        "key": clip.key_label,
        "tempo_bpm": round(clip.tempo_bpm, 3),
        "beats": clip.beats,
        "downbeats": clip.downbeats,
        "beats_per_bar": clip.beats_per_bar,
        "analysis_source": clip.analysis_source,
        "segment_label": clip.segment_label,
        "segment_method": clip.segment_method,
        "segment_score": clip.segment_score,
        "gain_db": clip.gain_db,
        "vocal_level_db": clip.vocal_level_db,
        "stems": {s.name: str(s.file) for s in stems if s.kind == Stem.Kind.ROLE},
        "raw_stems": {s.name: str(s.file) for s in stems if s.kind == Stem.Kind.RAW},
        "methods": {s.name: s.method for s in stems if s.kind == Stem.Kind.ROLE},
    }


def db_disk_usage(db_name: str) -> int:
    """Bytes on disk of a MashupDB's clips (audio and stems, each file once); 0 for an unknown or empty DB.

    Renders and caches are not counted: they belong to candidates and can be
    made again from these files.
    """
    clips = Clip.objects.filter(db__name=db_name).prefetch_related("stems")
    seen: set[Path] = set()
    total = 0
    for clip in clips:
        for path in (clip.audio_file, *(s.file for s in clip.stems.all())):
            if path not in seen and path.is_file():
                seen.add(path)
                total += path.stat().st_size
    return total
