"""The listening app's one exception family (no Django here).

Every error the listening code raises on purpose derives from
`ListeningError`, so each entry point turns all of them into a message in one
place: the participant views into a clear 4xx page (`ParticipantError` carries
its HTTP status), the experimenter views into the form's or the page's error,
and the management commands into a ``CommandError``. The subclasses say which
stage refused: designing a study, its quality rules, writing or serving a
stimulus, choosing a page, exporting, or a participant's request.

``field``: where a form shows the message (a form field name), or '' for the
form as a whole. The messages themselves speak of what a person sets (``top
N``, ``queries Q``), never of a command-line flag, so the form and the command
can show them as they are.
"""

from __future__ import annotations

__all__ = [
    "AssignmentError", "DeliveryError", "DesignError", "ExportError", "ListeningError", "ParticipantError",
    "QualityError", "ScreeningError", "StimulusError",
]


class ListeningError(Exception):
    """Base of every listening error; `message` is the sentence shown to the person who asked."""

    def __init__(self, message: str, *, field: str = ""):
        super().__init__(message)
        self.message = message
        self.field = field


class DesignError(ListeningError, ValueError):
    """A study cannot be designed from the given candidates, scores or settings."""


class QualityError(ListeningError, ValueError):
    """Quality-control settings that cannot be applied."""


class StimulusError(ListeningError, ValueError):
    """A stimulus file cannot be made; the message names the file."""


class DeliveryError(ListeningError, ValueError):
    """A stimulus that cannot be served as a page's clip."""


class AssignmentError(ListeningError, ValueError):
    """Bad settings for page assignment."""


class ExportError(ListeningError, ValueError):
    """Rows that cannot be written in the export format."""


class ScreeningError(ListeningError, ValueError):
    """A headphone screening that cannot be generated or scored (bad trial count, answers of the wrong shape)."""


class ParticipantError(ListeningError):
    """A participant request that cannot be served; `status` is the HTTP status the view answers with.

    field_errors: form field (``clip2_rhythm``, ``clip1``, ``heard_before``) -> its message, so the page can
    show each message beside its question. retry_after_s: sent as Retry-After when set.
    """

    def __init__(self, message: str, *, status: int = 400, field_errors: dict[str, str] | None = None,
                 retry_after_s: int | None = None):
        super().__init__(message)
        self.status = status
        self.field_errors = field_errors or {}
        self.retry_after_s = retry_after_s
