"""The participant flow: consent, page reservations and page submits.

Concurrency: every write path opens with a write statement, so on SQLite the
transaction takes the database's write lock before it reads (a deferred
read-then-write transaction could otherwise fail with "database is locked"
instead of waiting), and on PostgreSQL rows are claimed with conditional
UPDATEs and unique constraints (see `listening.models`), so concurrent
arrivals never over-assign a page and a replayed submit stores nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from listening.assignment import choose_page, free_slot, step_seed
from listening.models import Assignment, Page, PageResponse, Participant, Rating, Study


class ParticipantError(Exception):
    """A participant request that cannot be served; `status` is the HTTP status the view answers with."""

    def __init__(self, message: str, *, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


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
