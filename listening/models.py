"""Models of the listening app (filled in by its issue)."""
