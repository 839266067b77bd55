"""The generation app's one exception family (no Django here).

Every error the generation stages raise on purpose derives from
`GenerationError`, so an entry point turns all of them into a message in one
place: the management commands through `config.errors.command_errors`, the
workbench's jobs through their error sentence. The subclasses say which stage
refused; each keeps the builtin base it had before the family existed
(``ValueError`` for bad input, ``RuntimeError`` for a tool or a file that
failed), so code that catches those still does. Messages are one line naming
the file or the item and the problem.
"""

from __future__ import annotations

__all__ = [
    "AnnotationError", "AudioError", "CandidateError", "ConditionError", "EstimationError", "GenerationError",
    "IngestError", "KeyLabelError", "RealMusicError", "RenderError", "SegmentError", "SeparationError",
    "SongError", "StemCacheError", "StretchError",
]


class GenerationError(Exception):
    """Base of every generation error; the message is the sentence shown to the person who asked."""


class AudioError(GenerationError):
    """Unusable audio input; the message is one line naming the file and the problem."""


class AnnotationError(GenerationError, ValueError):
    """An annotation file that is missing or cannot be read; the message names the file."""


class EstimationError(GenerationError, ValueError):
    """Audio whose key, tempo and beats cannot be estimated: wrong shape, not finite, too short, silent."""


class KeyLabelError(GenerationError, ValueError):
    """A key label (or note name) that cannot be parsed."""


class SegmentError(GenerationError, ValueError):
    """Windows cannot be chosen (bad arguments, audio too short)."""


class SeparationError(GenerationError):
    """Separation cannot be done as asked; the message says why and what to do (one line)."""


class IngestError(GenerationError, ValueError):
    """A problem with one input; the message is one line naming the file."""


class RealMusicError(GenerationError, ValueError):
    """A package that is not installed or holds no audio; the message says what to do."""


class SongError(GenerationError, RuntimeError):
    """A synthetic test song cannot be specified or rendered (bad spec, missing tool, tool failure)."""


class ConditionError(GenerationError, ValueError):
    """A candidate cannot be specified or drawn (bad input, nothing qualifies)."""


class CandidateError(GenerationError, ValueError):
    """A generate/render request on stored MashupDBs that cannot be carried out; the message says why."""


class StretchError(GenerationError, RuntimeError):
    """Rubber Band cannot adjust this audio (bad input, tool missing or failing, clipped output)."""


class StemCacheError(GenerationError, RuntimeError):
    """A stem cannot be read or adjusted into the cache."""


class RenderError(GenerationError, RuntimeError):
    """A candidate cannot be rendered (missing clip or stem, unreadable audio, silent mix)."""
