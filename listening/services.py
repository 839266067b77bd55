"""Django glue of the listening app: build studies from stored scores, hand out pages, store answers.

Views and commands call these functions; the numeric choices live in
`listening.design` and `listening.assignment`.

Concurrency: every write path opens with a write statement, so on SQLite the
transaction takes the database's write lock before it reads (a deferred
read-then-write transaction could otherwise fail with "database is locked"
instead of waiting), and on PostgreSQL rows are claimed with conditional
UPDATEs and unique constraints (see `listening.models`), so concurrent
arrivals never over-assign a page and a replayed submit stores nothing.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from generation.models import Candidate, MashupDB
from listening import design as pure
from listening.assignment import choose_page, free_slot, step_seed
from listening.design import DesignError
from listening.export import (
    ASPECTS,
    RatingRow,
    design_frame,
    export_group,
    ratings_frame,
    yes_no,
)
from listening.models import (
    Assignment,
    Page,
    PageResponse,
    Participant,
    Rating,
    Stimulus,
    StimulusLabel,
    Study,
)
from listening.stimuli import STIMULUS_FORMATS, StimulusError, write_stimulus
from scoring.models import Score, System


class ParticipantError(Exception):
    """A participant request that cannot be served; `status` is the HTTP status the view answers with."""

    def __init__(self, message: str, *, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


# --------------------------------------------------------------------------- design


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


# --------------------------------------------------------------------------- design export


def design_rows(study: Study) -> list[dict]:
    """One row per (page, position, label); a filler stimulus gets one row with empty system."""
    rows = []
    stimuli = Stimulus.objects.filter(page__study=study).select_related("page").prefetch_related("labels")
    for stim in stimuli.order_by("page__index", "position"):
        labels = list(stim.labels.all()) or [None]
        for lab in labels:
            rows.append({
                "study": study.name, "task": study.task, "seed": study.seed, "page": stim.page.index,
                "position": stim.position, "query": "" if stim.query is None else stim.query, "stimulus": stim.pk,
                "candidate": stim.candidate_id, "system": lab.system if lab else "",
                "group": lab.group if lab else "filler", "rank": lab.rank if lab and lab.rank else "",
                "score": lab.score if lab and lab.score is not None else "",
            })
    return rows


def design_table(study: Study) -> pd.DataFrame:
    return design_frame(design_rows(study))


def design_json(study: Study) -> str:
    """The whole design with its settings and seeds, as JSON text."""
    pages = []
    for page in study.pages.order_by("index").prefetch_related("stimuli__labels"):
        pages.append({
            "index": page.index, "query": page.query,
            "stimuli": [{"stimulus": s.pk, "position": s.position, "candidate": s.candidate_id,
                         "vocal_clip": s.vocal_clip_id,
                         "labels": [{"system": lab.system, "group": lab.group, "rank": lab.rank, "score": lab.score}
                                    for lab in s.labels.all()]}
                        for s in page.stimuli.all()],
        })
    doc = {"study": study.name, "task": study.task, "seed": study.seed, "config": study.config,
           "ratings_per_page": study.ratings_per_page, "pages": pages}
    return json.dumps(doc, indent=2)


# --------------------------------------------------------------------------- ratings export


def ratings_table(study: Study) -> pd.DataFrame:
    """The study's ratings in the long format of issue 6 §1 (see `listening.export`)."""
    labels: dict[int, list[StimulusLabel]] = {}
    for lab in StimulusLabel.objects.filter(stimulus__page__study=study):
        labels.setdefault(lab.stimulus_id, []).append(lab)
    responses = {r.assignment_id: r for r in PageResponse.objects.filter(assignment__page__study=study)}
    rows = []
    ratings = (Rating.objects.filter(stimulus__page__study=study)
               .select_related("participant", "stimulus__page").order_by("id"))
    for rating in ratings:
        response = responses[rating.assignment_id]
        part = rating.participant
        stim = rating.stimulus
        for lab in labels.get(stim.pk, []):
            rows.append(RatingRow(
                task=study.task, page=stim.page.index, participant=str(part.pk), stimulus=f"{stim.pk}/{lab.system}",
                system=lab.system, group=export_group(lab.group), query="" if stim.query is None else str(stim.query),
                aspect=rating.aspect, score=rating.score, heard_before=yes_no(response.heard_before),
                seconds=response.seconds, listens_daily=yes_no(part.listens_daily),
                produces_music=yes_no(part.produces_music),
            ))
    return ratings_frame(rows)


# --------------------------------------------------------------------------- participants


def require_open(study: Study) -> None:
    if study.state == Study.State.DRAFT:
        raise ParticipantError("This study is not open yet.", status=403)
    if study.state == Study.State.CLOSED:
        raise ParticipantError("This study is closed. Thank you for your interest.", status=410)


def start_participant(study: Study, *, external_id: str = "", user_agent: str = "") -> Participant:
    """A consenting participant; their page order is seeded by a fresh random seed stored with them."""
    require_open(study)
    return Participant.objects.create(study=study, seed=secrets.randbits(31), consented_at=timezone.now(),
                                      external_id=external_id[:128], user_agent=user_agent[:512])


def save_questionnaire(participant: Participant, *, listens_daily: bool, produces_music: bool) -> None:
    Participant.objects.filter(pk=participant.pk).update(
        listens_daily=listens_daily, produces_music=produces_music, questionnaire_at=timezone.now())


def _take_write_lock() -> None:
    """On SQLite, make the transaction a writer now, so that it waits for the lock instead of failing later."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cur:
            cur.execute("UPDATE listening_study SET id = id WHERE id = -1")


def _expire_reservations(study: Study, now: datetime) -> None:
    """Give up the slots of reservations past their time (their owner gets another page if they come back)."""
    stale = Assignment.objects.filter(page__study=study, state=Assignment.State.RESERVED, expires_at__lt=now)
    if connection.features.has_select_for_update_skip_locked:
        ids = list(stale.select_for_update(skip_locked=True).values_list("pk", flat=True))
        if ids:
            Assignment.objects.filter(pk__in=ids, state=Assignment.State.RESERVED).update(
                state=Assignment.State.EXPIRED, slot=None)
    else:
        stale.update(state=Assignment.State.EXPIRED, slot=None)


def _reserve(participant: Participant, study: Study, now: datetime) -> Assignment | None:
    k = study.ratings_per_page
    for attempt in range(12):
        try:
            with transaction.atomic():
                _take_write_lock()
                _expire_reservations(study, now)
                loads = dict(Page.objects.filter(study=study).annotate(
                    n=Count("assignments", filter=Q(assignments__slot__isnull=False))).values_list("id", "n"))
                seen = set(Assignment.objects.filter(participant=participant).values_list("page_id", flat=True))
                page_id = choose_page(loads=loads, seen=seen, ratings_per_page=k,
                                      seed=step_seed(participant.seed, len(seen) * 64 + attempt))
                if page_id is None:
                    return None
                taken = Assignment.objects.filter(page_id=page_id, slot__isnull=False).values_list("slot", flat=True)
                slot = free_slot(taken, ratings_per_page=k)
                if slot is None:
                    continue
                return Assignment.objects.create(participant=participant, page_id=page_id, slot=slot,
                                                 reserved_at=now, expires_at=now + timedelta(seconds=study.reservation_s))
        except IntegrityError:
            continue  # someone took that slot (or this participant's twin request took the page): choose again
        except OperationalError as exc:  # SQLite busy beyond its timeout, PostgreSQL serialization: retry
            if "locked" not in str(exc) and "deadlock" not in str(exc) and "serializ" not in str(exc):
                raise
    raise ParticipantError("The study is very busy right now; please reload this page in a moment.", status=503)


def current_assignment(participant: Participant) -> Assignment | None:
    """The page this participant should see now: their live reservation, or a new one; None when finished.

    Side effects: sets `shown_at` the first time a page is served (the
    server-side timer), renews an expired reservation nobody else has taken,
    and marks the participant finished.
    """
    study = participant.study
    now = timezone.now()
    while True:
        live = (Assignment.objects.filter(participant=participant, state=Assignment.State.RESERVED)
                .select_related("page").order_by("reserved_at").first())
        if live is None:
            break
        if live.expires_at >= now:
            break
        renewed = now + timedelta(seconds=study.reservation_s)
        if Assignment.objects.filter(pk=live.pk, state=Assignment.State.RESERVED).update(expires_at=renewed):
            live.expires_at = renewed
            break
        # reclaimed by someone else between the read and the renewal: look again
    if live is None:
        done = Assignment.objects.filter(participant=participant, state=Assignment.State.DONE).count()
        if done < study.pages_per_participant:
            require_open(study)
            live = _reserve(participant, study, now)
    if live is None:
        if participant.finished_at is None:
            Participant.objects.filter(pk=participant.pk, finished_at__isnull=True).update(finished_at=now)
            participant.finished_at = now
        return None
    if live.shown_at is None:
        Assignment.objects.filter(pk=live.pk, shown_at__isnull=True).update(shown_at=now)
        live.shown_at = now
    return live


@dataclass(frozen=True)
class PageAnswers:
    """Validated answers to one page: scores[position][aspect] in 1..5."""

    scores: dict[int, dict[str, int]]
    heard_before: bool
    plays: list[int]


def submit_page(participant: Participant, assignment_id: int, answers: PageAnswers) -> bool:
    """Store a page's answers in one transaction; True if stored now, False if they were already stored.

    Raises ParticipantError (404) for a page that is not this participant's,
    (409) for a reservation that expired and went to someone else, (410/403)
    when the study is not open.
    """
    study = participant.study
    require_open(study)
    now = timezone.now()
    for attempt in range(6):
        try:
            with transaction.atomic():
                claimed = Assignment.objects.filter(pk=assignment_id, participant=participant,
                                                    state=Assignment.State.RESERVED).update(
                    state=Assignment.State.DONE, done_at=now)
                assignment = (Assignment.objects.filter(pk=assignment_id, participant=participant)
                              .select_related("page").first())
                if assignment is None:
                    raise ParticipantError("This page is not one of yours.", status=404)
                if not claimed:
                    if assignment.state == Assignment.State.DONE:
                        return False
                    raise ParticipantError("Your time on this page ran out and it was given to someone else; "
                                           "your answers to it were not stored. Please continue with the next page.",
                                           status=409)
                stimuli = {s.position: s for s in assignment.page.stimuli.all()}
                if sorted(answers.scores) != sorted(stimuli):
                    raise ParticipantError("The answers do not match the clips of this page.", status=400)
                started = assignment.shown_at or assignment.reserved_at
                PageResponse.objects.create(assignment=assignment, heard_before=answers.heard_before,
                                            seconds=max(0.0, (now - started).total_seconds()),
                                            plays=list(answers.plays), submitted_at=now)
                Rating.objects.bulk_create(
                    Rating(assignment=assignment, participant=participant, stimulus=stimuli[pos], aspect=aspect,
                           score=score)
                    for pos, by_aspect in sorted(answers.scores.items()) for aspect, score in by_aspect.items()
                )
                Study.objects.filter(pk=study.pk, locked_at__isnull=True).update(locked_at=now)
                return True
        except IntegrityError:
            # a twin request stored this page first (its PageResponse / ratings exist): nothing stored twice
            if Assignment.objects.filter(pk=assignment_id, participant=participant,
                                         state=Assignment.State.DONE).exists():
                return False
            raise
        except OperationalError as exc:
            if "locked" not in str(exc) and "deadlock" not in str(exc) or attempt == 5:
                raise
    return False  # pragma: no cover


def progress(study: Study) -> dict:
    """Counts for the dashboard: ratings per page, participants active and finished."""
    pages = list(Page.objects.filter(study=study).order_by("index").annotate(
        done=Count("assignments", filter=Q(assignments__state=Assignment.State.DONE)),
        reserved=Count("assignments", filter=Q(assignments__state=Assignment.State.RESERVED)),
    ))
    parts = Participant.objects.filter(study=study)
    k = study.ratings_per_page
    return {
        "pages": pages,
        "n_pages": len(pages),
        "pages_complete": sum(p.done >= k for p in pages),
        "ratings_done": sum(p.done for p in pages),
        "ratings_needed": k * len(pages),
        "participants": parts.count(),
        "finished": parts.filter(finished_at__isnull=False).count(),
        "active": parts.filter(finished_at__isnull=True,
                               assignments__state=Assignment.State.RESERVED).distinct().count(),
    }


def parse_page_form(data, *, require_full_play: bool) -> PageAnswers:
    """Validate a submitted page form (a QueryDict or mapping of single values).

    Fields: clip1_<aspect>, clip2_<aspect> for the five aspects (integers
    1..5), heard_before (yes|no), plays1/plays2 and ended1/ended2 (written by
    the page's script). Anything else is refused, so a malformed or tampered
    request stores nothing.
    """
    allowed = {f"clip{n}_{a}" for n in (1, 2) for a in ASPECTS} | {
        "heard_before", "plays1", "plays2", "ended1", "ended2", "csrfmiddlewaretoken"}
    extra = sorted(set(data.keys()) - allowed)
    if extra:
        raise ParticipantError(f"Unexpected field(s): {', '.join(extra)[:200]}.", status=400)
    problems = []
    scores: dict[int, dict[str, int]] = {0: {}, 1: {}}
    for n in (1, 2):
        for aspect in ASPECTS:
            raw = data.get(f"clip{n}_{aspect}")
            if raw is None or str(raw).strip() == "":
                problems.append(f"Clip {n}: please rate {aspect}.")
                continue
            raw = str(raw).strip()
            if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 5:
                problems.append(f"Clip {n}: {aspect} must be a whole number from 1 to 5, got {raw[:20]!r}.")
                continue
            scores[n - 1][aspect] = int(raw)
    heard = data.get("heard_before")
    if heard not in ("yes", "no"):
        problems.append("Please say whether you had heard this vocal melody before.")
    plays = []
    for n in (1, 2):
        raw = str(data.get(f"plays{n}", "0") or "0")
        plays.append(int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 7 else 0)
        if require_full_play and data.get(f"ended{n}") != "1":
            problems.append(f"Clip {n}: please listen to the whole clip before rating it.")
    if problems:
        raise ParticipantError(" ".join(problems), status=400)
    return PageAnswers(scores=scores, heard_before=heard == "yes", plays=plays)
