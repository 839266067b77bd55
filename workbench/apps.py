from django.apps import AppConfig


class WorkbenchConfig(AppConfig):
    """The app above the four stages: background jobs and the pages that launch them."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "workbench"
