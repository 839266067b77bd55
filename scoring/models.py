"""Models of the scoring app (filled in by its issue)."""
