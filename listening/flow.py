"""The participant flow: admission, page reservations, answers saved as clicked, page submits, quality flags.

Rules (each enforced here, on the server):

* **admission**: a participant is created at most `client_limit` times per
  hour per client (a keyed hash of the IP address, never the address) and at
  most `max_participants` times per study; the same external id (Prolific
  PID, ``?pid=``) comes back to its own participant;
* **one live reservation per participant** (a partial unique index, so two
  parallel page loads cannot both reserve), and never more test pages than
  the quota;
* **a page nobody uses is freed early**: a new reservation lasts
  `first_activity_s` until the page's audio is fetched or an answer is saved,
  then `reservation_s` from the last such sign of life;
* **nothing free now is not finished**: a participant who finds every open
  page held by someone else is told to come back (`ComeBackLater`) and keeps
  their place; only a study with nothing left for them finishes them;
* **a study closed mid-page** still accepts the pages already reserved until
  their reservation ends;
* **full play** (when the study requires it): a page is accepted only after
  the server served this participant every byte of both clips
  (`listening.models.Delivery`).

Concurrency: every write path opens with a write statement, so on SQLite the
transaction takes the database's write lock before it reads, and on
PostgreSQL rows are claimed with conditional UPDATEs, row locks and unique
constraints (see `listening.models`), so concurrent arrivals never
over-assign a page and a replayed submit stores nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from listening import screening
from listening.assignment import choose_page, free_slot, reference_side, step_seed
from listening.errors import ParticipantError
from listening.export import ASPECTS
from listening.models import (
    Answer,
    Assignment,
    Delivery,
    Page,
    PageResponse,
    Participant,
    Rating,
    Stimulus,
    Study,
)
from listening.quality import PageRecord, gold_passed, is_gold_step, is_speeder, participant_flags
from listening.studies import StudySettings

EXTERNAL_ID = re.compile(r"[A-Za-z0-9_.@+\-]{1,128}")
CLIENT_WINDOW_S = 3600


class ComeBackLater(ParticipantError):
    """Every page this participant could rate is held by someone else right now: not finished, come back."""


def retryable(exc: OperationalError) -> bool:
    """A lock or serialisation failure: the transaction rolled back and may run again."""
    text = str(exc)
    return "locked" in text or "deadlock" in text or "serializ" in text


def _take_write_lock() -> None:
    """On SQLite, make the transaction a writer now, so that it waits for the lock instead of failing later."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cur:
            cur.execute("UPDATE listening_study SET id = id WHERE id = -1")


# --------------------------------------------------------------------------- admission


def require_open(study: Study) -> None:
    if study.state == Study.State.DRAFT:
        raise ParticipantError("This study is not open yet.", status=403)
    if study.state == Study.State.CLOSED:
        raise ParticipantError("This study is closed. Thank you for your interest.", status=410)


def _require_open_or_live(study: Study, assignment: Assignment, now: datetime) -> None:
    """Open, or closed while this page's reservation still runs (a rater mid-page keeps their page)."""
    if study.state == Study.State.CLOSED and assignment.state == Assignment.State.RESERVED \
            and assignment.expires_at >= now:
        return
    require_open(study)


def clean_external_id(raw: str) -> str:
    """An external id as given in a link (a Prolific PID is 24 hex digits); '' if none. Refuses control bytes."""
    raw = (raw or "").strip()
    if raw and not EXTERNAL_ID.fullmatch(raw):
        raise ParticipantError("The participant id in your link is not valid (letters, digits and . _ @ + - only, "
                               "at most 128). Please use the link you were given.", status=400)
    return raw


def client_key(ip: str) -> str:
    """A keyed hash of a client address: enough to count arrivals, useless to recover the address."""
    if not ip:
        return ""
    return hmac.new(settings.SECRET_KEY.encode(), ip.encode(), hashlib.sha256).hexdigest()[:32]


def participant_cap(study: Study, study_settings: StudySettings) -> int:
    """The most participants the study admits: as set, else twice what the design needs, plus 10."""
    if study_settings.max_participants:
        return study_settings.max_participants
    n_pages = study.pages.filter(kind=Page.Kind.TEST).count()
    per = max(1, min(study.pages_per_participant, n_pages))
    return 2 * -(-n_pages * study.ratings_per_page // per) + 10


def start_participant(study: Study, *, external_id: str = "", external_study: str = "", external_session: str = "",
                      user_agent: str = "", client_ip: str = "") -> Participant:
    """A consenting participant, or the one who already came with this external id.

    Raises ParticipantError 429 past the client's hourly limit, 403 when the
    study has all the participants it admits (neither creates anything).
    Their page order is seeded by a fresh random seed stored with them.
    """
    require_open(study)
    external_id = clean_external_id(external_id)
    external_study, external_session = clean_external_id(external_study), clean_external_id(external_session)
    rules = StudySettings.of(study)
    key = client_key(client_ip)
    for attempt in range(6):
        try:
            with transaction.atomic():
                _take_write_lock()
                list(Study.objects.select_for_update().filter(pk=study.pk).values_list("pk"))  # serialise arrivals
                if external_id:
                    mine = Participant.objects.filter(study=study, external_id=external_id).first()
                    if mine is not None:
                        return mine
                now = timezone.now()
                if key and Participant.objects.filter(
                        study=study, client_key=key, started_at__gte=now - timedelta(seconds=CLIENT_WINDOW_S)
                ).count() >= rules.client_limit:
                    raise ParticipantError("Too many people have joined this study from your network in the last "
                                           "hour. Please try again later.", status=429, retry_after_s=600)
                if Participant.objects.filter(study=study).count() >= participant_cap(study, rules):
                    raise ParticipantError("This study has all the participants it needs. Thank you for your "
                                           "interest.", status=403)
                return Participant.objects.create(
                    study=study, seed=secrets.randbits(31), consented_at=now, external_id=external_id,
                    external_study=external_study, external_session=external_session, client_key=key,
                    user_agent=user_agent.replace("\x00", "")[:512])
        except IntegrityError:
            if external_id:
                mine = Participant.objects.filter(study=study, external_id=external_id).first()
                if mine is not None:
                    return mine
            raise
        except OperationalError as exc:
            if not retryable(exc) or attempt == 5:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def save_questionnaire(participant: Participant, *, listens_daily: bool, produces_music: bool) -> None:
    Participant.objects.filter(pk=participant.pk).update(
        listens_daily=listens_daily, produces_music=produces_music, questionnaire_at=timezone.now())


# --------------------------------------------------------------------------- reservations


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


def _come_back_after(study: Study, pages: set[int], now: datetime) -> int:
    """Seconds until the first reservation of `pages` held by others runs out (at least 30)."""
    first = (Assignment.objects.filter(page_id__in=pages, state=Assignment.State.RESERVED)
             .order_by("expires_at").values_list("expires_at", flat=True).first())
    return max(30, int((first - now).total_seconds()) + 1) if first else 60


def _reserve(participant: Participant, study: Study, now: datetime) -> Assignment | int | None:
    """A new reservation; the live one if a twin request made it first; None when finished; int: come back (s)."""
    rules = StudySettings.of(study)
    k = study.ratings_per_page
    lease = timedelta(seconds=min(rules.first_activity_s, study.reservation_s))
    for attempt in range(12):
        try:
            with transaction.atomic():
                _take_write_lock()
                live = Assignment.objects.filter(participant=participant, state=Assignment.State.RESERVED).first()
                if live is not None:
                    return live
                _expire_reservations(study, now)
                mine = list(Assignment.objects.filter(participant=participant)
                            .values_list("page_id", "state", "page__kind"))
                seen = {page_id for page_id, _, _ in mine}
                done = [kind for _, state, kind in mine if state == Assignment.State.DONE]
                if done.count(Page.Kind.TEST) >= study.pages_per_participant:
                    return None
                pages = dict(Stimulus.objects.filter(page__study=study, position=0)
                             .values_list("page_id", "vocal_clip_id"))
                kinds = dict(Page.objects.filter(study=study).values_list("id", "kind"))
                seen_vocals = {pages[p] for p in seen if p in pages}
                step_rng = step_seed(participant.seed, len(seen) * 64 + attempt)
                page_id, slot = None, None
                gold = [p for p, kind in kinds.items() if kind == Page.Kind.GOLD and p not in seen]
                if gold and is_gold_step(len(done), gold_every=rules.quality.gold_every):
                    page_id = choose_page(loads={p: 0 for p in gold}, seen=(), ratings_per_page=1, seed=step_rng,
                                          vocal_of=pages, seen_vocals=seen_vocals)
                else:
                    loads = dict(Page.objects.filter(study=study, kind=Page.Kind.TEST).annotate(
                        n=Count("assignments", filter=Q(assignments__slot__isnull=False))).values_list("id", "n"))
                    page_id = choose_page(loads=loads, seen=seen, ratings_per_page=k, seed=step_rng,
                                          vocal_of=pages, seen_vocals=seen_vocals)
                    if page_id is None:
                        done_per_page = dict(Page.objects.filter(study=study, kind=Page.Kind.TEST).annotate(
                            n=Count("assignments", filter=Q(assignments__state=Assignment.State.DONE)))
                            .values_list("id", "n"))
                        held = {p for p, n in done_per_page.items() if n < k and p not in seen}
                        return _come_back_after(study, held, now) if held else None
                    taken = cast("Iterable[int]", Assignment.objects.filter(page_id=page_id, slot__isnull=False)
                                 .values_list("slot", flat=True))  # slot__isnull=False: no None among them
                    slot = free_slot(taken, ratings_per_page=k)
                    if slot is None:
                        continue
                assert page_id is not None  # the gold branch draws from a non-empty list with nothing seen
                stimuli = list(Stimulus.objects.filter(page_id=page_id).select_related("candidate")
                               .order_by("position"))
                reference = next((s.position for s in stimuli if s.candidate.condition == "original"), 0)
                swapped = reference != reference_side(participant.seed, len(seen))
                return Assignment.objects.create(participant=participant, page_id=page_id, slot=slot, reserved_at=now,
                                                 expires_at=now + lease, swapped=swapped)
        except IntegrityError:
            continue  # someone took that slot, or this participant's twin request reserved first: look again
        except OperationalError as exc:  # SQLite busy beyond its timeout, PostgreSQL serialization: retry
            if not retryable(exc):
                raise
    raise ParticipantError("The study is very busy right now; please reload this page in a moment.", status=503)


def current_assignment(participant: Participant) -> Assignment | None:
    """The page this participant should see now: their live reservation, or a new one; None when finished.

    Raises ComeBackLater when every page they could rate is held by someone
    else (they are not finished). Side effects: sets `shown_at` the first time
    a page is served (the server-side timer), renews their own lapsed
    reservation nobody else has taken, and marks the participant finished.
    """
    study = participant.study
    now = timezone.now()
    if screening.pending(participant) or screening.failed(participant):
        raise ParticipantError("Please take the headphone check first." if screening.pending(participant) else
                               "Your session has ended: thank you for your time.", status=403)
    while True:
        live = (Assignment.objects.filter(participant=participant, state=Assignment.State.RESERVED)
                .select_related("page").order_by("reserved_at").first())
        if live is None or live.expires_at >= now:
            break
        renewed = now + timedelta(seconds=min(StudySettings.of(study).first_activity_s, study.reservation_s))
        if Assignment.objects.filter(pk=live.pk, state=Assignment.State.RESERVED).update(expires_at=renewed):
            live.expires_at = renewed
            break
        # reclaimed by someone else between the read and the renewal: look again
    if live is None:
        require_open(study)
        got = _reserve(participant, study, now)
        if isinstance(got, int) and not isinstance(got, bool):
            raise ComeBackLater("Every page you could rate is being rated by someone else right now. Please come "
                                f"back in about {max(1, round(got / 60))} minute(s): your place is kept.",
                                status=200, retry_after_s=got)
        live = None if got is None else Assignment.objects.select_related("page").get(pk=cast(Assignment, got).pk)
    if live is None:
        if participant.finished_at is None:
            Participant.objects.filter(pk=participant.pk, finished_at__isnull=True).update(finished_at=now)
            participant.finished_at = now
        return None
    if live.shown_at is None:
        Assignment.objects.filter(pk=live.pk, shown_at__isnull=True).update(shown_at=now)
        live.shown_at = now
    return live


def touch(assignment: Assignment, *, now: datetime | None = None) -> bool:
    """A sign of life on a reserved page (audio served, answer saved): it keeps the page for `reservation_s`."""
    now = now or timezone.now()
    study = assignment.page.study
    return bool(Assignment.objects.filter(pk=assignment.pk, state=Assignment.State.RESERVED).update(
        active_at=now, expires_at=now + timedelta(seconds=study.reservation_s)))


# --------------------------------------------------------------------------- answers


def stimulus_at(assignment: Assignment, clip: int) -> int:
    """The stored position (0/1) of the clip shown as number `clip` (1 left, 2 right) on this assignment."""
    return (clip - 1) ^ int(assignment.swapped)


def _answerable(participant: Participant, assignment_id: int, now: datetime) -> Assignment:
    assignment = (Assignment.objects.filter(pk=assignment_id, participant=participant)
                  .select_related("page__study").first())
    if assignment is None:
        raise ParticipantError("This page is not one of yours.", status=404)
    _require_open_or_live(participant.study, assignment, now)
    if assignment.state == Assignment.State.DONE:
        raise ParticipantError("This page is already submitted; its answers cannot change.", status=409)
    if assignment.state != Assignment.State.RESERVED:
        raise ParticipantError("Your time on this page ran out and it was given to someone else. Please continue "
                               "with the next page.", status=409)
    return assignment


def save_answer(participant: Participant, assignment_id: int, *, field_name: str, value: str) -> None:
    """Store one answer as it is clicked (idempotent: the same click twice is one row; a new click replaces it).

    field_name: ``clip<1|2>_<aspect>`` with value 1..5, or ``heard_before``
    with yes/no. Raises ParticipantError 400 (bad field or value), 404 (not
    their page), 409 (page done or lost), 410/403 (study not open); nothing is
    stored then.
    """
    now = timezone.now()
    if field_name == "heard_before":
        if value not in ("yes", "no"):
            raise ParticipantError("heard_before must be yes or no.", status=400)
    else:
        match = re.fullmatch(r"clip([12])_([a-z]+)", field_name or "")
        if not match or match.group(2) not in ASPECTS:
            raise ParticipantError("Unknown question.", status=400)
        if not (isinstance(value, str) and len(value) == 1 and value in "12345"):
            raise ParticipantError("A rating is a whole number from 1 to 5.", status=400)
    for attempt in range(6):
        try:
            with transaction.atomic():
                _take_write_lock()
                assignment = _answerable(participant, assignment_id, now)
                if field_name == "heard_before":
                    Assignment.objects.filter(pk=assignment.pk).update(heard_draft=value)
                else:
                    assert match is not None  # checked before the loop
                    position = stimulus_at(assignment, int(match.group(1)))
                    stim = Stimulus.objects.get(page_id=assignment.page_id, position=position)
                    Answer.objects.update_or_create(assignment=assignment, stimulus=stim, aspect=match.group(2),
                                                    defaults={"score": int(value), "answered_at": now})
                touch(assignment, now=now)
                return
        except IntegrityError:
            continue  # a twin click created the row first: update it on the next round
        except OperationalError as exc:
            if not retryable(exc) or attempt == 5:
                raise
    raise ParticipantError("The study is very busy right now; please try again.", status=503)


def saved_answers(assignment: Assignment) -> dict[str, str]:
    """The answers saved so far as form values (``clip1_harmony`` -> '3', ``heard_before`` -> 'yes')."""
    values = {}
    for position, aspect, score in Answer.objects.filter(assignment=assignment).values_list(
            "stimulus__position", "aspect", "score"):
        values[f"clip{(position ^ int(assignment.swapped)) + 1}_{aspect}"] = str(score)
    if assignment.heard_draft:
        values["heard_before"] = assignment.heard_draft
    return values


# --------------------------------------------------------------------------- submit


@dataclass(frozen=True)
class PageAnswers:
    """Validated answers to one page: scores[clip][aspect] in 1..5, clip 0 = the one shown first (left).

    plays: play count per shown clip, as the browser reported it.
    """

    scores: dict[int, dict[str, int]]
    heard_before: bool
    plays: list[int] = field(default_factory=lambda: [0, 0])


def missing_plays(assignment: Assignment) -> dict[str, str]:
    """Clips the server has not yet served whole to this page's participant: field ``clip<n>`` -> message."""
    complete = set(Delivery.objects.filter(assignment=assignment, complete=True).values_list("stimulus_id", flat=True))
    missing = {}
    for stim in Stimulus.objects.filter(page_id=assignment.page_id):
        if stim.pk not in complete:
            n = (stim.position ^ int(assignment.swapped)) + 1
            missing[f"clip{n}"] = f"Clip {n} has not been played to the end yet: please listen to all of it."
    return dict(sorted(missing.items()))


def _page_record(response: PageResponse, page: Page, ratings: list[tuple[str, int, str, float]],
                 rules: StudySettings) -> PageRecord:
    """ratings: (aspect, score, candidate condition, clip seconds) of the page's two clips."""
    gold = page.kind == Page.Kind.GOLD
    passed = None
    if gold:
        orig = {a: s for a, s, cond, _ in ratings if cond == "original"}
        neg = {a: s for a, s, cond, _ in ratings if cond != "original"}
        passed = gold_passed(orig, neg)
    seconds = sorted({(cond, secs) for _, _, cond, secs in ratings})
    speeder = is_speeder(page_seconds=response.seconds, clip_seconds=[s for _, s in seconds],
                         speed_share=rules.quality.speed_share)
    return PageRecord(gold=gold, passed=passed, speeder=speeder, scores=tuple(s for _, s, _, _ in ratings))


def update_flags(participant: Participant) -> None:
    """Recompute a participant's quality flags from their submitted pages and store them (listening.quality)."""
    rules = StudySettings.of(participant.study)
    rows: dict[int, list] = {}
    for aid, aspect, score, cond, secs in Rating.objects.filter(participant=participant).values_list(
            "assignment_id", "aspect", "score", "stimulus__candidate__condition", "stimulus__candidate__duration_s"):
        rows.setdefault(aid, []).append((aspect, score, cond, secs))
    records = []
    for response in PageResponse.objects.filter(assignment__participant=participant).select_related(
            "assignment__page").order_by("submitted_at"):
        record = _page_record(response, response.assignment.page, rows.get(response.assignment_id, []), rules)
        page_flags = {"speeder": record.speeder, **({"gold_passed": record.passed} if record.gold else {})}
        if response.flags != page_flags:
            PageResponse.objects.filter(pk=response.pk).update(flags=page_flags)
        records.append(record)
    flags, excluded, reason = participant_flags(records, rules.quality)
    screened = Participant.objects.filter(pk=participant.pk).values_list("screening", flat=True).first() or {}
    if screened.get("passed") is False:  # never reached by the flow (no page after a failure); kept if it were
        excluded, reason = True, "; ".join(filter(None, [screening.failed_reason(screened), reason]))
    Participant.objects.filter(pk=participant.pk).update(flags=flags.as_dict(), excluded=excluded,
                                                         exclusion_reason=reason[:300])


def submit_page(participant: Participant, assignment_id: int, answers: PageAnswers) -> bool:
    """Commit a page's answers in one transaction; True if stored now, False if they were already stored.

    Raises ParticipantError (404) for a page that is not this participant's,
    (409) for a reservation that expired and went to someone else, (400) when
    the study requires full play and a clip was not served whole, (410/403)
    when the study is not open (a closed study still takes pages reserved
    before it closed, until their reservation ends).
    """
    study = participant.study
    now = timezone.now()
    assignment = (Assignment.objects.filter(pk=assignment_id, participant=participant).select_related("page").first())
    if assignment is None:
        raise ParticipantError("This page is not one of yours.", status=404)
    if assignment.state == Assignment.State.DONE:
        return False
    _require_open_or_live(study, assignment, now)
    if study.require_full_play and assignment.state == Assignment.State.RESERVED:
        missing = missing_plays(assignment)
        if missing:
            raise ParticipantError(" ".join(missing.values()), status=400, field_errors=missing)
    for attempt in range(6):
        try:
            with transaction.atomic():
                claimed = Assignment.objects.filter(pk=assignment_id, participant=participant,
                                                    state=Assignment.State.RESERVED).update(
                    state=Assignment.State.DONE, done_at=now)
                assignment = (Assignment.objects.filter(pk=assignment_id, participant=participant)
                              .select_related("page").first())
                if assignment is None:  # assignments are never deleted: checked above, cannot happen here
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
                plays = [0, 0]
                for clip, count in enumerate(list(answers.plays)[:2]):
                    plays[stimulus_at(assignment, clip + 1)] = int(count)
                PageResponse.objects.create(assignment=assignment, heard_before=answers.heard_before,
                                            seconds=max(0.0, (now - started).total_seconds()),
                                            plays=plays, submitted_at=now)
                Rating.objects.bulk_create(
                    Rating(assignment=assignment, participant=participant,
                           stimulus=stimuli[stimulus_at(assignment, clip + 1)], aspect=aspect, score=score)
                    for clip, by_aspect in sorted(answers.scores.items()) for aspect, score in by_aspect.items()
                )
                Study.objects.filter(pk=study.pk, locked_at__isnull=True).update(locked_at=now)
                update_flags(participant)
                return True
        except IntegrityError:
            # a twin request stored this page first (its PageResponse / ratings exist): nothing stored twice
            if Assignment.objects.filter(pk=assignment_id, participant=participant,
                                         state=Assignment.State.DONE).exists():
                return False
            raise
        except OperationalError as exc:
            if not retryable(exc) or attempt == 5:
                raise
    return False  # pragma: no cover


# --------------------------------------------------------------------------- dashboard


def progress(study: Study) -> dict:
    """Counts for the dashboard: ratings per page, participants in flight, finished, excluded."""
    pages = list(Page.objects.filter(study=study, kind=Page.Kind.TEST).order_by("index").annotate(
        done=Count("assignments", filter=Q(assignments__state=Assignment.State.DONE)),
        reserved=Count("assignments", filter=Q(assignments__state=Assignment.State.RESERVED)),
    ))
    parts = Participant.objects.filter(study=study)
    k = study.ratings_per_page
    now = timezone.now()
    return {
        "pages": pages,
        "n_pages": len(pages),
        "gold_pages": Page.objects.filter(study=study, kind=Page.Kind.GOLD).count(),
        "pages_complete": sum(p.done >= k for p in pages),
        "ratings_done": sum(p.done for p in pages),
        "ratings_needed": k * len(pages),
        "participants": parts.count(),
        "finished": parts.filter(finished_at__isnull=False).count(),
        "excluded": parts.filter(excluded=True).count(),
        "screening_failed": parts.filter(screening__passed=False).count(),
        "active": parts.filter(finished_at__isnull=True,
                               assignments__state=Assignment.State.RESERVED).distinct().count(),
        "in_flight": parts.filter(assignments__state=Assignment.State.RESERVED,
                                  assignments__expires_at__gte=now).distinct().count(),
    }
