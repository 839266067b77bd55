"""The scoring app's one exception family.

Every pure scoring module (features, nets, factorised, losses, training,
evaluation, amu) raises :class:`ScoringError` from an explicit input check
before any numeric work; the management commands turn it into a
``CommandError`` in one place.
"""


class ScoringError(ValueError):
    """Bad input to a scoring function: shapes, checkpoints, audio, labels."""
