"""Studies: design one from stored scores, store its pages and stimuli, open and close it.

Views and commands call these functions; the numeric choices live in the
pure `listening.design`. A design is stored all or nothing (one transaction,
and the stimulus files of a failed design are removed).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from generation.models import Candidate, MashupDB
from listening import design as pure
from listening.design import DesignError
from listening.models import Page, Stimulus, StimulusLabel, Study
from listening.stimuli import STIMULUS_FORMATS, StimulusError, write_stimulus
from scoring.models import Score, System


@dataclass(frozen=True)
class StudySettings:
    """How the study runs (not what it shows)."""

    ratings_per_page: int = 3
    pages_per_participant: int = 10
    reservation_minutes: float = 20.0
    require_full_play: bool = False
    audio_format: str = "flac"  # what participants download: listening.stimuli.STIMULUS_FORMATS

    def check(self) -> None:
        if self.audio_format not in STIMULUS_FORMATS:
            raise DesignError(f"unknown audio format {self.audio_format!r}; choose one of {', '.join(STIMULUS_FORMATS)}")
        if self.ratings_per_page < 1:
            raise DesignError(f"ratings per page must be >= 1, got {self.ratings_per_page}")
        if self.pages_per_participant < 1:
            raise DesignError(f"pages per participant must be >= 1, got {self.pages_per_participant}")
        if not self.reservation_minutes > 0:
            raise DesignError(f"reservation minutes must be > 0, got {self.reservation_minutes}")


def _systems(names: Sequence[str] | None) -> list[System]:
    qs = System.objects.order_by("name")
    if names:
        found = {s.name: s for s in qs.filter(name__in=list(names))}
        missing = sorted(set(names) - set(found))
        if missing:
            known = ", ".join(s.name for s in qs) or "none"
            raise DesignError(f"unknown system(s) {', '.join(missing)} (known: {known})")
        return [found[n] for n in sorted(found)]
    systems = list(qs)
    if not systems:
        raise DesignError("no scoring systems: score the candidates first")
    return systems


def _db(name: str) -> MashupDB:
    try:
        return MashupDB.objects.get(name=name)
    except MashupDB.DoesNotExist:
        known = ", ".join(MashupDB.objects.values_list("name", flat=True)) or "none"
        raise DesignError(f"unknown MashupDB {name!r} (known: {known})") from None


def _originals(vocal_ids: set[int]) -> dict[int, int]:
    """vocal clip id -> its original-condition candidate id (the lowest id if several)."""
    out: dict[int, int] = {}
    for cid, vid in (Candidate.objects.filter(condition=Candidate.Condition.ORIGINAL, vocal_clip_id__in=vocal_ids)
                     .order_by("id").values_list("id", "vocal_clip_id")):
        out.setdefault(vid, cid)
    return out


def _prepare_study(name: str, task: str) -> None:
    existing = Study.objects.filter(name=name).first()
    if existing is None:
        return
    if existing.locked_at is not None or existing.participants.exists():
        raise DesignError(f"study {name!r} already has participants: its design is locked (choose another name)")
    if existing.state != Study.State.DRAFT:
        raise DesignError(f"study {name!r} is {existing.state}: only a draft can be designed again")
    shutil.rmtree(existing.media_dir, ignore_errors=True)
    existing.delete()


def _store_design(*, name: str, plan: pure.Design, config: dict, study_settings: StudySettings) -> Study:
    """Write the design's rows and the stimuli's opaque audio files, all or nothing."""
    cands = Candidate.objects.in_bulk({s.candidate_id for s in plan.stimuli})
    for spec in plan.stimuli:
        cand = cands[spec.candidate_id]
        mix = cand.media("mix_path")
        if mix is None or not mix.is_file():
            raise DesignError(f"candidate {cand.pk} ({cand.condition}) is not rendered: render candidates first")
    study = None
    try:
        with transaction.atomic():
            study = Study.objects.create(
                name=name, task=plan.task, seed=plan.seed, config=config,
                ratings_per_page=study_settings.ratings_per_page,
                pages_per_participant=study_settings.pages_per_participant,
                reservation_s=round(study_settings.reservation_minutes * 60),
                require_full_play=study_settings.require_full_play,
            )
            for page_spec in plan.pages:
                page = Page.objects.create(study=study, index=page_spec.index, query=page_spec.query)
                for position, key in enumerate((page_spec.left, page_spec.right)):
                    spec = plan.stimulus(key)
                    cand = cands[spec.candidate_id]
                    token = secrets.token_urlsafe(18)
                    media = Path(settings.MEDIA_ROOT)
                    try:
                        path = write_stimulus(cand.media("mix_path"), media / "studies" / str(study.pk) / token,
                                              audio_format=study_settings.audio_format)
                    except StimulusError as exc:
                        raise DesignError(f"candidate {cand.pk}: {exc}") from None
                    rel = path.relative_to(media).as_posix()
                    stim = Stimulus.objects.create(page=page, position=position, candidate=cand,
                                                   vocal_clip_id=cand.vocal_clip_id, token=token, audio_path=rel,
                                                   query=spec.query, design_key=spec.key)
                    StimulusLabel.objects.bulk_create(
                        StimulusLabel(stimulus=stim, system=lab.system, group=lab.group, rank=lab.rank, score=lab.score)
                        for lab in spec.labels
                    )
    except BaseException:
        if study is not None and study.pk:
            shutil.rmtree(Path(settings.MEDIA_ROOT) / "studies" / str(study.pk), ignore_errors=True)
        raise
    return study


def design_generation_study(
    *,
    name: str,
    db_name: str,
    systems: Sequence[str] | None = None,
    top_n: int = 20,
    bottom_n: int = 20,
    seed: int = 0,
    study_settings: StudySettings = StudySettings(),
) -> Study:
    """Generation study (SPEC §4): each system's top-N and bottom-N matched candidates of `db_name`, each beside its original.

    Candidates: matched, vocal seed in `db_name`, both accompaniment stems from
    `db_name` too (retrieval candidates, made with another MashupDB, are left out).
    """
    study_settings.check()
    db = _db(db_name)
    chosen = _systems(systems)
    matched = Candidate.objects.filter(db=db, condition=Candidate.Condition.MATCHED,
                                       harmonic_clip__db=db, percussion_clip__db=db)
    scores: dict[str, list[tuple[int, float]]] = {}
    vocal_of: dict[int, int] = {}
    for system in chosen:
        rows = list(Score.objects.filter(system=system, candidate__in=matched)
                    .values_list("candidate_id", "value", "candidate__vocal_clip_id"))
        scores[system.name] = [(c, v) for c, v, _ in rows]
        vocal_of.update({c: vid for c, _, vid in rows})
    originals = _originals(set(vocal_of.values()))
    original_of = {c: originals[v] for c, v in vocal_of.items() if v in originals}
    plan = pure.generation_design(scores=scores, original_of=original_of, top_n=top_n, bottom_n=bottom_n, seed=seed)
    _prepare_study(name, "generation")
    config = {"task": "generation", "db": db_name, "systems": [s.name for s in chosen], "top_n": top_n,
              "bottom_n": bottom_n, "seed": seed, **study_settings.__dict__}
    return _store_design(name=name, plan=plan, config=config, study_settings=study_settings)


def design_retrieval_study(
    *,
    name: str,
    query_db: str,
    candidate_db: str | None = None,
    systems: Sequence[str] | None = None,
    n_queries: int = 30,
    n_candidates: int = 180,
    seed: int = 0,
    study_settings: StudySettings = StudySettings(),
) -> Study:
    """Retrieval study (SPEC §4): Q query vocals of `query_db`, C candidates each, each system's top-1 plus the original.

    A query's candidates are the matched candidates with that vocal whose
    accompaniment comes from another MashupDB (`candidate_db` if given),
    C of them drawn with `seed` when there are more; queries with at least one
    are eligible, Q of them drawn with `seed`. Each system ranks only the drawn
    C candidates of a query.
    """
    study_settings.check()
    qdb = _db(query_db)
    cdb = _db(candidate_db) if candidate_db else None
    if cdb is not None and cdb.pk == qdb.pk:
        raise DesignError("the candidate MashupDB must differ from the query MashupDB")
    chosen = _systems(systems)
    pool = Candidate.objects.filter(db=qdb, condition=Candidate.Condition.MATCHED).exclude(harmonic_clip__db=qdb)
    pool = pool.filter(harmonic_clip__db=cdb, percussion_clip__db=cdb) if cdb else pool.exclude(percussion_clip__db=qdb)
    by_vocal: dict[int, list[int]] = {}
    for cid, vid in pool.values_list("id", "vocal_clip_id"):
        by_vocal.setdefault(vid, []).append(cid)
    originals = _originals(set(by_vocal))
    eligible = [v for v in by_vocal if v in originals]
    if not eligible:
        raise DesignError(f"no vocal of {query_db!r} has matched candidates with accompaniment from another MashupDB "
                          "and an original version: generate them first")
    vocals = pure.choose_queries(eligible, n_queries=n_queries, seed=seed)
    queries = []
    for index, vid in enumerate(vocals):
        ids = pure.choose_candidates(by_vocal[vid], n_candidates=n_candidates, seed=seed + 1 + index)
        per_system = {}
        for system in chosen:
            per_system[system.name] = list(Score.objects.filter(system=system, candidate_id__in=ids)
                                           .values_list("candidate_id", "value"))
        queries.append(pure.Query(index, originals[vid], per_system))
    plan = pure.retrieval_design(queries=queries, seed=seed)
    _prepare_study(name, "retrieval")
    config = {"task": "retrieval", "query_db": query_db, "candidate_db": candidate_db,
              "systems": [s.name for s in chosen], "n_queries": n_queries, "n_candidates": n_candidates,
              "seed": seed, "query_vocal_clips": vocals, **study_settings.__dict__}
    return _store_design(name=name, plan=plan, config=config, study_settings=study_settings)


def design_study(
    *,
    task: str,
    name: str,
    db_name: str,
    systems_text: str = "",
    candidate_db: str | None = None,
    top_n: int = 20,
    bottom_n: int = 20,
    n_queries: int = 30,
    n_candidates: int = 180,
    seed: int = 0,
    study_settings: StudySettings = StudySettings(),
) -> Study:
    """The `design_study` command and the new-study form: a generation or retrieval study.

    ``systems_text``: comma-separated system names (empty = every scored system).
    """
    systems = [s.strip() for s in (systems_text or "").split(",") if s.strip()] or None
    if task == "generation":
        return design_generation_study(name=name, db_name=db_name, systems=systems, top_n=top_n,
                                       bottom_n=bottom_n, seed=seed, study_settings=study_settings)
    return design_retrieval_study(name=name, query_db=db_name, candidate_db=candidate_db or None, systems=systems,
                                  n_queries=n_queries, n_candidates=n_candidates, seed=seed,
                                  study_settings=study_settings)


def set_state(study: Study, state: str) -> Study:
    """Open or close a study (draft -> open -> closed; closed -> open reopens)."""
    if state not in Study.State.values:
        raise DesignError(f"unknown state {state!r}")
    if state == Study.State.DRAFT and study.participants.exists():
        raise DesignError("a study with participants cannot go back to draft")
    if state == Study.State.OPEN and not study.pages.exists():
        raise DesignError("the study has no pages to rate")
    Study.objects.filter(pk=study.pk).update(state=state)
    study.state = state
    return study


def build_demo_studies(
    *,
    generation_db: str,
    retrieval_query_db: str | None = None,
    retrieval_candidate_db: str | None = None,
    top_n: int = 3,
    bottom_n: int = 3,
    n_queries: int = 4,
    n_candidates: int = 180,
    seed: int = 2021,
    study_settings: StudySettings = StudySettings(pages_per_participant=5),
) -> list[Study]:
    """Design and open the demo's studies (generation, and retrieval when a query MashupDB is given).

    Names: 'demo-generation' and 'demo-retrieval'; a draft or unrated study of
    that name is replaced, a study with participants is kept as it is.
    """
    made = []
    jobs = [("demo-generation", lambda name: design_generation_study(
        name=name, db_name=generation_db, top_n=top_n, bottom_n=bottom_n, seed=seed, study_settings=study_settings))]
    if retrieval_query_db:
        jobs.append(("demo-retrieval", lambda name: design_retrieval_study(
            name=name, query_db=retrieval_query_db, candidate_db=retrieval_candidate_db, n_queries=n_queries,
            n_candidates=n_candidates, seed=seed, study_settings=study_settings)))
    for name, build in jobs:
        existing = Study.objects.filter(name=name).first()
        if existing is not None and existing.participants.exists():
            made.append(existing)
            continue
        if existing is not None:
            set_state(existing, Study.State.DRAFT)
        made.append(set_state(build(name), Study.State.OPEN))
    return made
