"""The headphone screening of a study's participants (Django glue of the pure `listening.headphones`).

When a study sets ``headphone_check`` (StudySettings, recorded in its
config), a consenting participant takes the screening before anything else.
The trials come from the participant's own seed (never sent to the browser);
the page carries only "trial n" and its audio URL, and the answers are scored
here. The result is recorded once, in `Participant.screening` (seed, key,
answers, correct, passed, time): no retake. A participant who fails is
finished there, rates no page, and is excluded with the reason
(`FAILED_REASON`), which the participants export and the dashboard show.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from listening.errors import ParticipantError
from listening.headphones import ScreeningResult, Trial, pass_mark, score_screening, screening_trials
from listening.models import Participant
from listening.studies import StudySettings

FAILED_REASON = "failed the headphone screening ({correct} of {trials} correct, {needed} needed)"


def required(participant: Participant) -> bool:
    """Whether the participant's study screens for headphones."""
    return StudySettings.of(participant.study).headphone_check


def pending(participant: Participant) -> bool:
    """The study screens and this participant has not taken the screening yet."""
    return required(participant) and not participant.screening


def failed(participant: Participant) -> bool:
    """The participant took the screening and failed it."""
    return (participant.screening or {}).get("passed") is False


def trials(participant: Participant) -> list[Trial]:
    """The participant's trials, from their own seed (the same on every request)."""
    return screening_trials(seed=int(participant.seed))


def trial_of(participant: Participant, number: int) -> Trial:
    """Trial `number` (1-based) of a participant whose screening is pending; 404 otherwise."""
    mine = trials(participant)
    if not pending(participant) or not 1 <= number <= len(mine):
        raise ParticipantError("No such sound.", status=404)
    return mine[number - 1]


def record(participant: Participant, answers: list[int]) -> ScreeningResult:
    """Score and store the participant's answers once; a second submission returns the stored result unchanged.

    A failed screening finishes the participant (no page is ever reserved for
    them) and excludes them with the reason.
    """
    with transaction.atomic():
        fresh = Participant.objects.select_for_update().get(pk=participant.pk)
        own = trials(fresh)
        if fresh.screening:
            done = fresh.screening
            return ScreeningResult(correct=done["correct"], trials=done["trials"], passed=done["passed"],
                                   answers=tuple(done["answers"]))
        result = score_screening(own, answers)
        now = timezone.now()
        fresh.screening = {"seed": int(fresh.seed), "key": [t.answer for t in own], "answers": list(result.answers),
                           "correct": result.correct, "trials": result.trials, "passed": result.passed,
                           "at": now.isoformat()}
        fields = ["screening"]
        if not result.passed:
            fresh.excluded, fresh.finished_at = True, now
            fresh.exclusion_reason = failed_reason(fresh.screening)
            fields += ["excluded", "finished_at", "exclusion_reason"]
        fresh.save(update_fields=fields)
    participant.screening = fresh.screening
    participant.excluded, participant.finished_at = fresh.excluded, fresh.finished_at
    participant.exclusion_reason = fresh.exclusion_reason
    return result


def failed_reason(screening: dict) -> str:
    """The exclusion reason of a failed screening record."""
    return FAILED_REASON.format(correct=screening["correct"], trials=screening["trials"],
                                needed=pass_mark(int(screening["trials"])))


def outcome(participant: Participant) -> str:
    """'passed', 'failed', or '' when not taken (the export's headphones column)."""
    done = participant.screening or {}
    return "" if not done else ("passed" if done.get("passed") else "failed")
