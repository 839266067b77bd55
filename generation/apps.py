from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"
    verbose_name = "Generation: MashupDB and candidates"

    def ready(self) -> None:
        """Register the project's system checks for external tools and paths (`config/checks.py`)."""
        from config import checks  # noqa: F401  (importing registers them)
