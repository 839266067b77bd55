"""Where the stage apps' exception families become a person's message, for management commands.

Each app has one family (`generation.errors.GenerationError`,
`scoring.errors.ScoringError`, `analysis.errors.AnalysisError`); a command
wraps its call of the core in :func:`command_errors`, so every error of those
families reaches the person as a ``CommandError`` with the family's message,
and the command itself holds no ``try`` for them. The web side does the same
in its views (the workbench's jobs in ``workbench.jobs.error_sentence``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError

from analysis.errors import AnalysisError
from config.cluster import ClusterError
from generation.errors import GenerationError
from listening.errors import ListeningError
from scoring.errors import ScoringError

#: The families a person can act on: their message says what was wrong and, where it can, what to do.
STAGE_ERRORS: tuple[type[Exception], ...] = (GenerationError, ScoringError, ListeningError, AnalysisError,
                                              ClusterError)


@contextmanager
def command_errors() -> Iterator[None]:
    """Turn any error of the stage families raised inside the block into a ``CommandError`` (same message)."""
    try:
        yield
    except STAGE_ERRORS as exc:
        raise CommandError(str(exc)) from exc
