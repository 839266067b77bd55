"""Models of the analysis app (filled in by its issue)."""
