"""Workbench stage jobs (issue 14 §2, §3): the generate and evaluate launch forms, and one job per MashupDB."""

from __future__ import annotations

import pytest
from django.urls import reverse

from generation.models import MashupDB
from workbench import jobs
from workbench.models import Job

pytestmark = pytest.mark.django_db


def test_the_generate_form_queues_a_job_that_writes_its_mashupdb(staff):
    MashupDB.objects.create(name="gen")
    response = staff.post(reverse("workbench:launch", args=["generate"]),
                          {"db": "gen", "condition": "matched", "count": 3, "seed": 7, "accompaniment_db": ""})
    job = Job.objects.get()
    assert response.status_code == 302
    assert job.arguments == {"db": "gen", "condition": "matched", "count": 3, "seed": 7} and job.mashupdb == "gen"


def test_the_evaluate_form_takes_several_systems(staff):
    MashupDB.objects.create(name="ev")
    staff.post(reverse("workbench:launch", args=["evaluate"]),
               {"db": "ev", "systems": ["amu", "amu_rhythm"], "per_seed": 2, "seed": 0})
    assert Job.objects.get().arguments["systems"] == ["amu", "amu_rhythm"]


def test_a_job_on_a_busy_mashupdb_goes_back_on_the_queue_and_runs_after(settings):
    settings.MASHLAB_JOB_HEARTBEAT_S = 60
    first = jobs.launch("render", {"db": "busy"})
    second = jobs.launch("score", {"db": "busy", "system": "amu"})
    other = jobs.launch("render", {"db": "free"})
    ran = []

    def body(arguments, rep):
        ran.append(arguments["db"])
        inner = jobs.run(second.pk, lambda a, r: ran.append("second") or {})  # while the first one runs
        assert "requeued" in inner
        assert jobs.run(other.pk, lambda a, r: ran.append("other") or {}) == {}  # another DB: not held up
        return {}

    jobs.run(first.pk, body)
    second.refresh_from_db()
    from django_tasks_db.models import DBTaskResult
    assert second.state == Job.QUEUED and "waiting for job" in second.current
    assert DBTaskResult.objects.get(id=second.task_id).run_after is not None
    assert jobs.run(second.pk, lambda a, r: ran.append("second") or {}) == {}  # the DB is free now
    assert ran == ["busy", "other", "second"]


def test_a_new_mashupdb_is_created_from_its_page_and_a_name_in_use_is_refused(staff):
    assert reverse("workbench:new_db") in staff.get(reverse("workbench:jobs")).content.decode()
    response = staff.post(reverse("workbench:new_db"), {"name": "mine", "description": "my songs"})
    assert response.status_code == 302 and MashupDB.objects.get().description == "my songs"
    again = staff.post(reverse("workbench:new_db"), {"name": "mine"})
    assert again.status_code == 200 and "already exists" in again.content.decode()
    assert MashupDB.objects.count() == 1
