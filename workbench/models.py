"""One Job row per run of a pipeline stage launched as a background task."""

from __future__ import annotations

from django.db import models


class Job(models.Model):
    """A stage run: its arguments, state, progress (items done of total), timings, log tail and outcome.

    The task queue (django-tasks' database backend) owns scheduling; this row is what people read. A job's
    `heartbeat_at` is refreshed every few seconds while it runs, so a job whose worker died is recognisable
    (workbench.jobs.reap) and never stays "running".
    """

    QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
    STATES = [(s, s) for s in (QUEUED, RUNNING, DONE, FAILED, CANCELLED)]
    ACTIVE = (QUEUED, RUNNING)

    stage = models.CharField(max_length=32)
    arguments = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=STATES, default=QUEUED, db_index=True)
    task_id = models.CharField(max_length=64, blank=True, help_text="id of the django-tasks result")
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    mashupdb = models.CharField(max_length=100, blank=True, db_index=True,
                                help_text="the MashupDB this job writes: one running job per MashupDB at a time")

    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    current = models.CharField(max_length=300, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker_host = models.CharField(max_length=255, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)

    log = models.TextField(blank=True, help_text="the last lines of the job's log")
    error = models.TextField(blank=True, help_text="why it failed, as a sentence")
    outputs = models.JSONField(default=dict, blank=True, help_text="what it made: counts and links")

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"job {self.pk} {self.stage} ({self.state})"

    @property
    def percent(self) -> int:
        """Progress in whole percent (0 until the total is known; 100 once done)."""
        if self.state == self.DONE:
            return 100
        return int(100 * self.done / self.total) if self.total else 0

    @property
    def seconds(self) -> float | None:
        """Run time in seconds: start to finish, or to the last heartbeat while running."""
        end = self.finished_at or self.heartbeat_at
        return (end - self.started_at).total_seconds() if self.started_at and end else None

    def snapshot(self) -> dict:
        """What the job page polls (JSON)."""
        return {
            "id": self.pk, "stage": self.stage, "state": self.state, "done": self.done, "total": self.total,
            "current": self.current, "percent": self.percent, "seconds": self.seconds, "log": self.log,
            "error": self.error, "outputs": self.outputs, "cancel_requested": self.cancel_requested,
        }
