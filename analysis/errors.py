"""The analysis app's one exception family (no Django here).

Every error the analysis core raises for bad input or settings derives from
`AnalysisError`, so the `analyse` command turns all of them into a
``CommandError`` in one place (`config.errors.command_errors`) and the views
into their page's message. The base stays a ``ValueError``: each of these is
a complaint about the data or the settings given.
"""

from __future__ import annotations

__all__ = ["AnalysisError", "FigureError", "RatingsError", "StatsError", "TableExportError"]


class AnalysisError(ValueError):
    """Base of every error the analysis core raises for bad input or settings."""


class RatingsError(AnalysisError):
    """The ratings table is malformed; the message names the row and/or column."""


class StatsError(AnalysisError):
    """A statistic cannot be computed from the data given; the message says why."""


class TableExportError(AnalysisError):
    """A table export was asked for something it cannot write (unknown format, unwritable folder).

    Distinct from ``listening.errors.ExportError``, which refuses rows of the ratings export.
    """


class FigureError(AnalysisError):
    """The figure cannot be drawn or written (e.g. the MOS table lacks columns)."""
