"""Django side of candidate generation: MashupDB rows → ClipInfo, drawn specs → Candidate rows, renders."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from tqdm import tqdm

from config.cluster import ClusterError, check_jobs, dask_client, each_result
from generation.audio import load_audio, relative_level_db
from generation.conditions import CandidateSpec, ClipInfo, Condition, draw_candidates
from generation.errors import AudioError, CandidateError, ConditionError
from generation.keys import Key
from generation.models import Candidate, Clip, MashupDB, Stem
from generation.scaleout import adjusted_stems, clips_for, render_one
from generation.stem_cache import StemCache

log = logging.getLogger(__name__)


@dataclass
class GenerateReport:
    created: list[Candidate]
    existing: int
    skipped_seeds: int


def get_db(name: str) -> MashupDB:
    db = MashupDB.objects.filter(name=name).first()
    if db is None:
        known = ", ".join(MashupDB.objects.values_list("name", flat=True)) or "none"
        raise CandidateError(f"no MashupDB named {name!r} (known: {known})")
    return db


def clip_infos(clips: Iterable[Clip]) -> list[ClipInfo]:
    """The candidate rules' view of stored clips (role stems only); measures each unmeasured vocal level once."""
    infos = []
    for clip in clips:
        stems = {s.name: s.file for s in clip.stems.all() if s.kind == Stem.Kind.ROLE}
        infos.append(ClipInfo(id=clip.id, key=Key.parse(clip.key_label), tempo_bpm=clip.tempo_bpm,
                              downbeats=tuple(clip.downbeats), duration_s=clip.duration_s, stems=stems,
                              recording=clip.source_sha256, vocal_level_db=vocal_level_db(clip, stems)))
    return infos


def vocal_level_db(clip: Clip, stems: dict[str, Path]) -> float | None:
    """The clip's vocal level against its mix (dB), measured from its files and stored the first time.

    None when the clip has no vocal stem, or its audio cannot be read (logged;
    rendering will then say what is wrong with the file).
    """
    if clip.vocal_level_db is not None or "vocal" not in stems:
        return clip.vocal_level_db
    try:
        vocal = load_audio(stems["vocal"], sr=clip.sample_rate, min_seconds=0.0, max_seconds=None, allow_silent=True)
        mix = load_audio(clip.audio_file, sr=clip.sample_rate, min_seconds=0.0, max_seconds=None, allow_silent=True)
        level = round(relative_level_db(vocal, mix), 2)
    except AudioError as exc:
        log.warning("clip %d: vocal level not measured: %s", clip.id, exc)
        return None
    Clip.objects.filter(id=clip.id).update(vocal_level_db=level)
    clip.vocal_level_db = level
    return level


def candidate_fields(spec: CandidateSpec) -> dict[str, Any]:
    """The Candidate columns that record `spec` (all but `db` and `spec_key`); `spec_of` reads them back.

    The one place the spec ↔ row mapping is written: offsets in seconds, ratios as seed / stem tempo.
    """
    return dict(
        vocal_clip_id=spec.vocal_clip,
        harmonic_clip_id=spec.harmonic_clip,
        percussion_clip_id=spec.percussion_clip,
        condition=spec.condition.value,
        harmonic_shift_semitones=spec.harmonic_shift_semitones,
        harmonic_ratio=spec.harmonic_ratio,
        percussion_ratio=spec.percussion_ratio,
        harmonic_offset_s=spec.offsets_s["harmonic"],
        percussion_offset_s=spec.offsets_s["percussion"],
        duration_s=spec.duration_s,
        seed=spec.seed,
    )


def spec_of(candidate: Candidate) -> CandidateSpec:
    """The candidate spec a stored row records (the inverse of `candidate_fields`)."""
    return CandidateSpec(
        vocal_clip=candidate.vocal_clip_id,
        harmonic_clip=candidate.harmonic_clip_id,
        percussion_clip=candidate.percussion_clip_id,
        condition=Condition.parse(candidate.condition),
        harmonic_shift_semitones=candidate.harmonic_shift_semitones,
        harmonic_ratio=candidate.harmonic_ratio,
        percussion_ratio=candidate.percussion_ratio,
        offsets_s={"harmonic": candidate.harmonic_offset_s, "percussion": candidate.percussion_offset_s},
        duration_s=candidate.duration_s,
        seed=candidate.seed,
    )


def generate(
    *,
    db_name: str,
    condition: str,
    count: int,
    seed: int,
    accompaniment_db: str | None = None,
    vocal_id: int | None = None,
    duration_s: float | None = None,
    instrumental_seeds: bool = False,
    whole_accompaniment: bool = False,
) -> GenerateReport:
    """Draw `count` new candidates of `condition` for MashupDB `db_name` and store them.

    Candidates already stored are never drawn again, so running the same
    command twice adds new candidates instead of duplicates.
    `instrumental_seeds`: clips whose vocal stem lies far below the mix may be
    vocal seeds too (training data; test sets never take them).
    `whole_accompaniment`: harmonic and percussion stems from one clip
    (another song's whole accompaniment, the A-vs-B mashup; see README).
    """
    db = get_db(db_name)
    acc = get_db(accompaniment_db) if accompaniment_db else db
    seeds = clip_infos(Clip.objects.filter(db=db).prefetch_related("stems").order_by("id"))
    pool = seeds if acc == db else clip_infos(Clip.objects.filter(db=acc).prefetch_related("stems").order_by("id"))
    if vocal_id is not None and not any(s.id == vocal_id for s in seeds):
        raise CandidateError(f"clip {vocal_id} is not a clip of MashupDB {db.name!r}")
    stored = [spec_of(c) for c in Candidate.objects.filter(db=db, condition=Condition.parse(condition).value)]
    result = draw_candidates(seeds, pool, condition=condition, count=count, seed=seed, vocal_id=vocal_id,
                             duration_s=duration_s, exclude=stored, instrumental_seeds=instrumental_seeds,
                             whole_accompaniment=whole_accompaniment)
    created, existing = [], 0
    with transaction.atomic():
        for spec in result.candidates:
            obj, made = store_spec(db, spec)
            if made:
                created.append(obj)
            else:
                existing += 1
    return GenerateReport(created, existing, result.skipped_seeds)


def top_up(*, db_name: str, condition: str, total: int, seed: int, accompaniment_db: str | None = None,
           vocal_id: int | None = None, duration_s: float | None = None, instrumental_seeds: bool = False,
           whole_accompaniment: bool = False) -> int:
    """Draw until MashupDB `db_name` holds `total` non-test candidates of `condition`; returns how many it holds.

    `whole_accompaniment`: draw and count only candidates whose harmonic and
    percussion stems come from one clip.

    Idempotent (a second call draws nothing). When fewer than the missing
    number qualify, it takes what exists: the request halves until one draw
    succeeds or none is left to ask for.
    """
    qs = Candidate.objects.filter(db__name=db_name, condition=Condition.parse(condition).value).exclude(split="test")
    if accompaniment_db:
        qs = qs.filter(harmonic_clip__db__name=accompaniment_db)
    if vocal_id:
        qs = qs.filter(vocal_clip_id=vocal_id)
    if whole_accompaniment:
        qs = qs.filter(harmonic_clip=F("percussion_clip"))
    missing = total - qs.count()
    while missing > 0:
        try:
            generate(db_name=db_name, condition=condition, count=missing, seed=seed, accompaniment_db=accompaniment_db,
                     vocal_id=vocal_id, duration_s=duration_s, instrumental_seeds=instrumental_seeds,
                     whole_accompaniment=whole_accompaniment)
            break
        except (CandidateError, ConditionError):
            if missing == 1:
                break
            missing //= 2
    return qs.count()


def store_spec(db: MashupDB, spec: CandidateSpec) -> tuple[Candidate, bool]:
    """Store one candidate spec (drawn, or a ranked pair): (row, True), or its stored twin and False.

    Deduplicated by `spec_key`.
    """
    try:
        with transaction.atomic():
            return Candidate.objects.get_or_create(
                spec_key=spec.spec_key,
                defaults=dict(db=db, **candidate_fields(spec)),
            )
    except IntegrityError:  # a parallel writer stored the same spec first
        return Candidate.objects.get(spec_key=spec.spec_key), False


def candidate_record(c: Candidate) -> dict:
    """The stable export of `candidates --json`: exactly the fields of issue 3 §3 (paths None until rendered)."""
    media = Path(settings.MEDIA_ROOT)

    def path(rel: str) -> str | None:
        return str(media / rel) if rel else None

    return {
        "id": c.id,
        "condition": c.condition,
        "vocal_clip": c.vocal_clip_id,
        "harmonic_clip": c.harmonic_clip_id,
        "percussion_clip": c.percussion_clip_id,
        "harmonic_shift_semitones": c.harmonic_shift_semitones,
        "harmonic_ratio": c.harmonic_ratio,
        "percussion_ratio": c.percussion_ratio,
        "offsets_s": {"harmonic": c.harmonic_offset_s, "percussion": c.percussion_offset_s},
        "duration_s": c.duration_s,
        "seed": c.seed,
        "mix_path": path(c.mix_path),
        "stem_paths": {"vocal": path(c.vocal_path), "harmonic": path(c.harmonic_path),
                       "percussion": path(c.percussion_path)},
    }


def stem_cache() -> StemCache:
    """The shared cache of adjusted stems, under MEDIA_ROOT (safe with parallel workers)."""
    return StemCache(Path(settings.MEDIA_ROOT) / "cache" / "stems")


def clips_of(candidates: Iterable[Candidate]) -> dict[int, ClipInfo]:
    ids = {i for c in candidates for i in (c.vocal_clip_id, c.harmonic_clip_id, c.percussion_clip_id)}
    return {info.id: info for info in clip_infos(Clip.objects.filter(id__in=ids).prefetch_related("stems"))}


def feature_stems(candidate: Candidate, *, sr: int, clips: dict[int, ClipInfo] | None = None) -> dict[str, np.ndarray]:
    """The candidate's adjusted stems, mono at `sr` Hz, role → (n,) float32 (through the stem cache).

    Raises a GenerationError (CandidateError, RenderError, StemCacheError) when a stem's audio is gone or
    unusable; its message names the candidate.
    """
    clips = clips if clips is not None else clips_of([candidate])
    spec = spec_of(candidate)
    return adjusted_stems(candidate.id, spec, clips_for(spec, clips), sr=sr, cache_root=stem_cache().root)


def render_folder(candidate: Candidate) -> Path:
    return Path(settings.MEDIA_ROOT) / "renders" / candidate.db.name / candidate.spec_key[:24]


def render_args(candidate: Candidate, clips: dict[int, ClipInfo]) -> tuple:
    """The plain arguments of `generation.scaleout.render_one` for one candidate (what a worker is sent)."""
    spec = spec_of(candidate)
    return (candidate.id, spec, clips_for(spec, clips), render_folder(candidate), stem_cache().root,
            Path(settings.MEDIA_ROOT))


def render_candidates(candidates: Iterable[Candidate], *, progress: bool = True, force: bool = False,
                      on_progress: Callable[[int, int, str], None] | None = None, jobs: int = 1) -> int:
    """Render mixes and adjusted stems (44.1 kHz stereo float WAV); returns how many were rendered.

    `on_progress(done, total, current item)` is called after each candidate, beside the tqdm bar
    (the workbench feeds its Job row from it).

    Rendering is a pure function of the stored record, so a render that
    exists is kept unless `force`; the same candidate always gives the same bytes.
    With `jobs` > 1 or MASHLAB_DASK_SCHEDULER set, the renders run on Dask
    workers (config.cluster) and this process stores each one as it arrives.
    """
    try:
        check_jobs(jobs)
    except ClusterError:
        raise CandidateError(f"jobs must be a positive integer, got {jobs!r}") from None
    todo = [c for c in candidates if force or not c.mix_path]
    if not todo:
        return 0
    clips = clips_of(todo)
    args = [render_args(c, clips) for c in todo]
    done = 0
    with dask_client(jobs if len(todo) > 1 else 1) as client, \
            tqdm(total=len(todo), desc="render", unit="cand", disable=not progress) as bar:
        for i, paths in each_result(client, render_one, args):
            c = todo[i]
            c.mix_path, c.vocal_path, c.harmonic_path, c.percussion_path = paths
            c.save(update_fields=["mix_path", "vocal_path", "harmonic_path", "percussion_path"])
            log.info("rendered candidate %d (%s, %.1f s) to %s", c.id, c.condition, c.duration_s, c.mix_path)
            done += 1
            bar.update(1)
            if on_progress is not None:
                on_progress(done, len(todo), f"candidate {c.id}")
    return done
