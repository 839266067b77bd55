"""The jobs pages and the job runtime in-process (issue 14 §1-§3): staff only, POST with CSRF, cancel, retry,
the reaper on the jobs page, and a stage's exception turned into one sentence."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from generation.errors import GenerationError
from workbench import jobs
from workbench.models import Job

pytestmark = pytest.mark.django_db


def test_it_sends_someone_not_staff_to_the_login_page(client):
    client.force_login(User.objects.create_user("p", password="x-long-password"))
    for url in (reverse("workbench:jobs"), reverse("workbench:launch", args=["render"])):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_launching_a_render_queues_a_job_and_its_task(staff):
    from generation.models import MashupDB
    MashupDB.objects.create(name="pages")
    response = staff.post(reverse("workbench:launch", args=["render"]), {"db": "pages", "condition": ""})
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("workbench:job", args=[job.pk])
    assert job.stage == "render" and job.arguments == {"db": "pages"} and job.state == Job.QUEUED
    from django_tasks_db.models import DBTaskResult
    assert DBTaskResult.objects.get(id=job.task_id).status == "READY"
    snap = staff.get(reverse("workbench:job_json", args=[job.pk])).json()
    assert snap["state"] == "queued" and snap["percent"] == 0


def test_the_launch_form_refuses_a_mashupdb_that_does_not_exist(staff):
    response = staff.post(reverse("workbench:launch", args=["score"]), {"db": "nope", "system": "amu"})
    assert response.status_code == 200 and not Job.objects.exists()
    assert "Select a valid choice" in response.content.decode()


def test_cancel_and_retry_are_post_only_and_need_the_csrf_token():
    User.objects.create_user("exp2", password="x-long-password", is_staff=True)
    c = Client(enforce_csrf_checks=True)
    c.login(username="exp2", password="x-long-password")
    job = jobs.launch("render", {"db": "x"})
    assert c.get(reverse("workbench:cancel", args=[job.pk])).status_code == 405
    assert c.post(reverse("workbench:cancel", args=[job.pk])).status_code == 403
    job.refresh_from_db()
    assert job.state == Job.QUEUED


def test_a_queued_job_cancelled_never_runs_and_its_retry_is_a_new_run_with_the_same_arguments(staff):
    job = jobs.launch("render", {"db": "x"})
    staff.post(reverse("workbench:cancel", args=[job.pk]))
    job.refresh_from_db()
    assert job.state == Job.CANCELLED
    assert jobs.run(job.pk, lambda a, rep: {"ran": True}) == {"skipped": "cancelled"}
    response = staff.post(reverse("workbench:retry", args=[job.pk]))
    new = Job.objects.exclude(pk=job.pk).get()
    assert response["Location"] == reverse("workbench:job", args=[new.pk])
    assert new.retry_of == job and new.arguments == job.arguments and new.state == Job.QUEUED


def test_a_running_job_asked_to_cancel_stops_at_its_next_progress_report(settings):
    settings.MASHLAB_JOB_HEARTBEAT_S = 60
    job = jobs.launch("render", {"db": "x"})
    seen = []

    def stage(arguments, rep):
        rep(1, 3, "one")
        jobs.cancel(Job.objects.get(pk=job.pk))
        seen.append("asked")
        rep(3, 3, "three")  # the last item always writes, and checks
        seen.append("went on")
        return {}

    assert jobs.run(job.pk, stage) == {"cancelled": True}
    job.refresh_from_db()
    assert seen == ["asked"] and job.state == Job.CANCELLED  # nothing after the report ran
    assert (job.done, job.total) == (3, 3)  # what was finished before it stopped is counted


def test_a_stage_error_becomes_the_jobs_error_sentence_and_the_task_fails(settings):
    settings.MASHLAB_JOB_HEARTBEAT_S = 60
    job = jobs.launch("render", {"db": "x"})

    def stage(arguments, rep):
        raise GenerationError("no MashupDB named 'x' (known: none)")

    with pytest.raises(GenerationError):
        jobs.run(job.pk, stage)
    job.refresh_from_db()
    assert job.state == Job.FAILED
    assert job.error == "Render failed: No MashupDB named 'x' (known: none)."
    assert "error: no MashupDB named 'x'" in job.log


def test_the_jobs_page_marks_failed_a_running_job_whose_heartbeat_stopped(staff, settings):
    settings.MASHLAB_JOB_STALE_S = 60
    job = jobs.launch("score", {"db": "x", "system": "amu"})
    old = timezone.now() - timedelta(seconds=61)
    Job.objects.filter(pk=job.pk).update(state=Job.RUNNING, started_at=old, heartbeat_at=old,
                                         worker_host="elsewhere", worker_pid=1)
    fresh = jobs.launch("score", {"db": "y", "system": "amu"})
    Job.objects.filter(pk=fresh.pk).update(state=Job.RUNNING, started_at=timezone.now(),
                                           heartbeat_at=timezone.now(), worker_host=socket.gethostname(),
                                           worker_pid=__import__("os").getpid())
    page = staff.get(reverse("workbench:jobs")).content.decode()
    job.refresh_from_db()
    fresh.refresh_from_db()
    assert job.state == Job.FAILED and "no heartbeat for 60 s" in job.error
    assert fresh.state == Job.RUNNING  # alive and beating: left alone
    assert f"job {job.pk}" in page and "Marked failed" in page
