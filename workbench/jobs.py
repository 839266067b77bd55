"""The job runtime: launch, progress, heartbeat, cancel, retry and the reaper for jobs whose worker died.

Scheduling is django-tasks' (the database backend and `manage.py db_worker`); this module only keeps the
Job row that people read in step with the run. One progress mechanism: a stage loop calls
`on_progress(done, total, item)` beside its tqdm bar, and a JobReporter is that callback for a job.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from datetime import timedelta
from typing import Any, Callable

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists
from django.utils import timezone
from tqdm import tqdm

from config.errors import STAGE_ERRORS  # a job that raises one of these failed for a reason its user can act on
from workbench.models import Job

log = logging.getLogger(__name__)
LOG_LINES = 40  # how many of a job's last log lines its row keeps


class WorkbenchError(ValueError):
    """The workbench's own exception family: a job that cannot be launched, retried or cancelled."""


class JobCancelled(Exception):
    """Raised inside a running job at its next progress report once someone asked to cancel it."""


def error_sentence(stage: str, exc: BaseException) -> str:
    """The one place a stage's exception becomes the sentence a job page shows."""
    if isinstance(exc, STAGE_ERRORS):
        text = str(exc).strip() or type(exc).__name__
    else:
        text = f"unexpected {type(exc).__name__}: {exc}"
    text = text[0].upper() + text[1:]
    return f"{stage.capitalize()} failed: {text}" + ("" if text.endswith(".") else ".")


class JobReporter:
    """A stage's `on_progress(done, total, item)` callback and `say(line)` log sink for one job.

    Writes the row at most every `min_interval_s` seconds (and always at the last item), so a fast loop
    does not hammer the database; checks for a cancel request at every write. A job run from the command
    line (`run_here(..., echo=...)`) also drives a tqdm bar and echoes its log lines from the same calls.
    """

    def __init__(self, job_id: int, *, min_interval_s: float = 0.5, echo: Callable[[str], None] | None = None,
                 label: str = "") -> None:
        self.job_id = job_id
        self.min_interval_s = min_interval_s
        self.lines: deque[str] = deque(maxlen=LOG_LINES)
        self._last = 0.0
        self.done = self.total = 0
        self.history: list[dict[str, float]] = []
        self.echo = echo
        self.bar = tqdm(desc=label or f"job {job_id}", unit="item", leave=False) if echo else None

    def __call__(self, done: int, total: int, item: str) -> None:
        self.done, self.total = done, total
        if self.bar is not None:
            self.bar.total, self.bar.n = total, done
            self.bar.set_postfix_str(item[:40], refresh=True)
        now = time.monotonic()
        if done < total and now - self._last < self.min_interval_s:
            return
        self._last = now
        Job.objects.filter(pk=self.job_id).update(done=done, total=total, current=item[:300],
                                                  heartbeat_at=timezone.now())
        self.check_cancel()

    def epoch(self, record: dict[str, float]) -> None:
        """Training's `on_epoch`: append one epoch (train_loss, val_loss, val_accuracy) to the job's outputs,
        which the job page polls and draws."""
        self.history.append({k: float(v) for k, v in record.items()})
        Job.objects.filter(pk=self.job_id).update(outputs={"history": self.history}, heartbeat_at=timezone.now())
        self.check_cancel()

    def say(self, line: str) -> None:
        self.lines.append(line.rstrip())
        Job.objects.filter(pk=self.job_id).update(log="\n".join(self.lines))
        if self.echo is not None and self.bar is not None:
            self.bar.clear()  # the line goes above the bar, not through it
            self.echo(line.rstrip())
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def check_cancel(self) -> None:
        if Job.objects.filter(pk=self.job_id, cancel_requested=True).exists():
            raise JobCancelled()


class Heartbeat(threading.Thread):
    """Refreshes a running job's heartbeat_at every MASHLAB_JOB_HEARTBEAT_S seconds, even inside a long item."""

    def __init__(self, job_id: int) -> None:
        super().__init__(name=f"job-{job_id}-heartbeat", daemon=True)
        self.job_id = job_id
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(settings.MASHLAB_JOB_HEARTBEAT_S):
                try:
                    Job.objects.filter(pk=self.job_id, state=Job.RUNNING).update(heartbeat_at=timezone.now())
                except DatabaseError as exc:  # a busy SQLite file: the next beat tries again, the job goes on
                    log.warning("job %d: heartbeat not written (%s)", self.job_id, exc)
        finally:
            connection.close()  # this thread's own connection

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


def _pid_gone(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def reap() -> list[int]:
    """Mark failed every running job whose worker is gone; returns their ids.

    Gone: its worker process on this host no longer exists, or (any host) its heartbeat is older than
    MASHLAB_JOB_STALE_S seconds. The task queue's own result row is marked failed too, so nothing is left
    "running". Run at worker start, at each job's start and whenever the jobs page is shown.
    """
    from django_tasks_db.models import DBTaskResult  # the backend's model; the app is installed with it

    host = socket.gethostname()
    stale_before = timezone.now() - timedelta(seconds=settings.MASHLAB_JOB_STALE_S)
    reaped = []
    for job in Job.objects.filter(state=Job.RUNNING):
        dead = job.worker_host == host and _pid_gone(job.worker_pid)
        silent = (job.heartbeat_at or job.started_at or job.created_at) < stale_before
        if not (dead or silent):
            continue
        why = (f"its worker (process {job.worker_pid} on {host}) stopped" if dead
               else f"its worker sent no heartbeat for {settings.MASHLAB_JOB_STALE_S} s")
        n = Job.objects.filter(pk=job.pk, state=Job.RUNNING).update(
            state=Job.FAILED, finished_at=timezone.now(),
            error=f"{job.stage.capitalize()} failed: {why} while it ran; retry resumes where it stopped.")
        if n:
            reaped.append(job.pk)
            if job.task_id:
                DBTaskResult.objects.filter(id=job.task_id, status="RUNNING").update(
                    status="FAILED", finished_at=timezone.now())
    return reaped


def writes_db(stage: str, arguments: dict[str, Any]) -> str:
    """The MashupDB a run of `stage` writes (its lock key); '' for none.

    Every stage that names a `db` writes into it (clips, candidates, renders, scores, the test set) or reads
    it while others might write (train). `rank` stores its top pairs in its vocal clip's MashupDB.
    """
    if stage == "rank" and arguments.get("vocal"):
        from generation.models import Clip
        return Clip.objects.filter(pk=arguments["vocal"]).values_list("db__name", flat=True).first() or ""
    return str(arguments.get("db") or "")


def launch(stage: str, arguments: dict[str, Any], *, retry_of: Job | None = None) -> Job:
    """Create a queued Job for `stage` and enqueue its task."""
    from workbench.tasks import TASKS

    if stage not in TASKS:
        raise WorkbenchError(f"unknown stage {stage!r}; choose one of {', '.join(sorted(TASKS))}")
    job = Job.objects.create(stage=stage, arguments=arguments, retry_of=retry_of,
                             mashupdb=writes_db(stage, arguments))
    result = TASKS[stage].enqueue(job.pk)
    Job.objects.filter(pk=job.pk).update(task_id=str(result.id))
    job.refresh_from_db()
    return job


def retry(job: Job) -> Job:
    """A new run of a failed or cancelled job with the same arguments; the stages resume (stored work is kept)."""
    if job.state in Job.ACTIVE:
        raise WorkbenchError(f"job {job.pk} is still {job.state}; cancel it first")
    return launch(job.stage, job.arguments, retry_of=job)


def cancel(job: Job) -> Job:
    """A queued job is cancelled at once; a running one stops at its next progress report."""
    if job.state == Job.QUEUED:
        Job.objects.filter(pk=job.pk, state=Job.QUEUED).update(
            state=Job.CANCELLED, finished_at=timezone.now(), error="Cancelled before it started.")
    elif job.state == Job.RUNNING:
        Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    else:
        raise WorkbenchError(f"job {job.pk} is already {job.state}")
    job.refresh_from_db()
    return job


def _claim(job_id: int, mashupdb: str) -> bool:
    """Mark the job running unless another job on the same MashupDB runs; True when this one may start.

    One conditional UPDATE (atomic on SQLite); on PostgreSQL the active rows of that MashupDB are locked
    first, so two workers claiming two jobs of one MashupDB at once are serialised by the database.
    """
    claim = Job.objects.filter(pk=job_id, state=Job.QUEUED)
    if mashupdb:
        claim = claim.exclude(Exists(Job.objects.filter(mashupdb=mashupdb, state=Job.RUNNING).exclude(pk=job_id)))
    with transaction.atomic():
        if mashupdb and connection.features.has_select_for_update:
            list(Job.objects.select_for_update().filter(mashupdb=mashupdb, state__in=Job.ACTIVE).values_list("pk"))
        return bool(claim.update(state=Job.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now(),
                                 worker_host=socket.gethostname(), worker_pid=os.getpid()))


def _requeue(job: Job) -> dict:
    """Put a job whose MashupDB is busy back on the queue, to run after MASHLAB_JOB_REQUEUE_S seconds."""
    from workbench.tasks import TASKS

    busy = Job.objects.filter(mashupdb=job.mashupdb, state=Job.RUNNING).exclude(pk=job.pk).first()
    when = timezone.now() + timedelta(seconds=settings.MASHLAB_JOB_REQUEUE_S)
    result = TASKS[job.stage].using(run_after=when).enqueue(job.pk)
    waiting = f"waiting for job {busy.pk} ({busy.stage}) on MashupDB {job.mashupdb}" if busy else "waiting"
    Job.objects.filter(pk=job.pk, state=Job.QUEUED).update(task_id=str(result.id), current=waiting[:300])
    return {"requeued": str(result.id)}


def run_here(stage: str, arguments: dict[str, Any], *, echo: Callable[[str], None] | None = None) -> Job:
    """Run `stage` as a Job in this process (no worker needed) and return its finished row.

    What the demo and the command line use so their runs appear in the job list like any other: the same
    stage code and Job row as a queued run, with a tqdm bar and log lines on the terminal through `echo`.
    A stage error is re-raised after the row records it; a MashupDB another job is writing is refused.
    """
    from workbench.tasks import BODIES

    if stage not in BODIES:
        raise WorkbenchError(f"unknown stage {stage!r}; choose one of {', '.join(sorted(BODIES))}")
    job = Job.objects.create(stage=stage, arguments=arguments, mashupdb=writes_db(stage, arguments))
    run(job.pk, BODIES[stage], echo=echo, wait=False)
    job.refresh_from_db()
    return job


def run(job_id: int, body: Callable[[dict, JobReporter], dict], *, echo: Callable[[str], None] | None = None,
        wait: bool = True) -> dict:
    """Run one job's stage `body(arguments, reporter) -> outputs` inside a task, keeping its row in step.

    A job whose MashupDB another running job writes is not started: it goes back on the queue (deferred by
    MASHLAB_JOB_REQUEUE_S seconds) and stays queued, so two jobs on one MashupDB run one after the other.
    Without a queue to go back to (`wait=False`, a run in this process) that is a WorkbenchError instead.
    """
    reap()
    job = Job.objects.get(pk=job_id)
    started = _claim(job_id, job.mashupdb)
    job.refresh_from_db()
    if not started:
        if job.state == Job.QUEUED and wait:  # its MashupDB is busy
            return _requeue(job)
        if job.state == Job.QUEUED:
            Job.objects.filter(pk=job_id).update(state=Job.CANCELLED, finished_at=timezone.now(),
                                                 error=f"MashupDB {job.mashupdb} is being written by another job.")
            raise WorkbenchError(f"MashupDB {job.mashupdb} is being written by another job; try again when it ends")
        return {"skipped": job.state}  # cancelled before it started, or already run
    reporter = JobReporter(job_id, echo=echo, label=job.stage)
    beat = Heartbeat(job_id)
    beat.start()
    try:
        outputs = body(job.arguments, reporter)
    except JobCancelled:
        Job.objects.filter(pk=job_id).update(state=Job.CANCELLED, finished_at=timezone.now(),
                                             error="Cancelled while it ran; what it finished is kept.")
        return {"cancelled": True}
    except BaseException as exc:
        reporter.say(f"error: {exc}")
        Job.objects.filter(pk=job_id).update(state=Job.FAILED, finished_at=timezone.now(),
                                             error=error_sentence(job.stage, exc))
        raise
    finally:
        beat.stop()
        reporter.close()
    total = max(reporter.total, reporter.done)
    Job.objects.filter(pk=job_id).update(state=Job.DONE, finished_at=timezone.now(), done=total, total=total,
                                         outputs=outputs, heartbeat_at=timezone.now())
    return outputs
