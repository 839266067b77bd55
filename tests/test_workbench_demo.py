"""The demo runs its stages as jobs (issue 14 §5): `manage.py demo` leaves one Job row per stage in the job
list, a second run adds nothing to the MashupDBs, and a run in this process is refused while a worker writes
the same MashupDB.

The demo's first stage for real, at a small size: 2 + 4 generated songs of 10 s, separated with Spleeter
(the weights the setup fetched) and analysed with madmom. The later stages are the same job bodies the
workbench tests and the browser pipeline test run.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from generation.models import Clip, MashupDB
from workbench import jobs
from workbench.models import Job

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def demo_dirs(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    settings.MEDIA_ROOT = tmp_path / "data" / "media"
    return tmp_path


def _demo(**options) -> str:
    out = io.StringIO()
    call_command("demo", "--songs", "2", "--seconds", "10", "--stage", "mashupdb", stdout=out, **options)
    return out.getvalue()


def test_the_demo_runs_each_stage_as_a_job_and_a_second_run_adds_nothing(demo_dirs, staff):
    first = _demo()
    done = list(Job.objects.order_by("id").values_list("stage", "arguments__db", "state"))
    assert done == [("songs", "demo", "done"), ("ingest", "demo", "done"),
                    ("songs", "demo-b", "done"), ("ingest", "demo-b", "done")]
    clips = {db: Clip.objects.filter(db__name=db).count() for db in ("demo", "demo-b")}
    assert clips == {"demo": 2, "demo-b": 4}
    assert "Jobs the demo ran:" in first and "/work/" in first
    ingest = Job.objects.filter(stage="ingest", arguments__db="demo").get()
    assert ingest.outputs["added"] == 2 and ingest.started_at and ingest.finished_at

    _demo()
    assert {db: Clip.objects.filter(db__name=db).count() for db in ("demo", "demo-b")} == clips
    again = Job.objects.filter(stage="ingest", arguments__db="demo").order_by("-id").first()
    assert again is not None and again.pk != ingest.pk and again.outputs["added"] == 0
    assert again.outputs["skipped"] == 2

    page = staff.get(reverse("workbench:jobs")).content.decode()
    assert page.count("<td>songs</td>") == 4 and page.count("<td>ingest</td>") == 4


def test_a_stage_run_here_is_refused_while_another_job_writes_its_mashupdb(demo_dirs):
    MashupDB.objects.create(name="busy")
    Job.objects.create(stage="render", arguments={"db": "busy"}, mashupdb="busy", state=Job.RUNNING,
                       worker_host="elsewhere", heartbeat_at=timezone.now())  # alive on another host: not reaped
    with pytest.raises(jobs.WorkbenchError, match="MashupDB busy is being written by another job"):
        jobs.run_here("generate", {"db": "busy", "condition": "original", "count": 1})
    refused = Job.objects.filter(stage="generate").get()
    assert refused.state == Job.CANCELLED and "another job" in refused.error
