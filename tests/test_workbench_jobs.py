"""Jobs on the real task queue (issue 14 §1, §3): `manage.py db_worker` runs them against a file database.

Everything runs as separate processes on one SQLite file, as in production: the worker, gunicorn, and
`manage.py shell` to launch jobs; the test reads the rows back with sqlite3. The world is two generated
songs imported as stems (tests/fixtures_songs.py), so no separation model is needed.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.fixtures_songs import stems_folder
from tests.live_site import Site, stop

SONGS = dict(count=16, seed=22, seconds=30.0, take=2)  # a cached set (test_rank's); 2 songs of 30 s


@pytest.fixture(scope="module")
def site(module_tmp):
    s = Site(module_tmp)
    s.manage("migrate", "-v", "0")
    s.songs = stems_folder(module_tmp / "songs", **SONGS)
    yield s


def _ingest_args(site: Site, db: str) -> dict:
    return {"paths": [str(site.songs)], "db": db, "separator": "stems", "jobs": 1}


def test_jobs_run_through_the_real_db_worker_one_ends_done_and_bad_input_ends_failed_with_a_sentence(site):
    pk = site.launch("ingest", _ingest_args(site, "wb"))
    bad = site.launch("render", {"db": "no-such-db"})
    assert site.job(pk)["state"] == "queued"
    assert site.scalar("select status from django_tasks_database_dbtaskresult where id = ?",
                       site.job(pk)["task_id"].replace("-", "")) == "READY"
    site.run_worker_until_idle()  # one worker runs both, one after the other
    job = site.job(pk)
    assert job["state"] == "done", job["error"]
    assert job["total"] == job["done"] == 2 * SONGS["take"]  # two steps per clip: analysed, stored
    assert json.loads(job["outputs"])["added"] == SONGS["take"]
    assert site.scalar("select count(*) from generation_clip c join generation_mashupdb d on c.db_id = d.id "
                       "where d.name = 'wb'") == SONGS["take"]
    assert job["started_at"] and job["finished_at"] and job["heartbeat_at"]
    assert site.scalar("select status from django_tasks_database_dbtaskresult where id = ?",
                       job["task_id"].replace("-", "")) == "SUCCESSFUL"
    failed = site.job(bad)
    assert failed["state"] == "failed"
    assert failed["error"].startswith("Render failed: No MashupDB named 'no-such-db'"), failed["error"]
    assert site.scalar("select status from django_tasks_database_dbtaskresult where id = ?",
                       failed["task_id"].replace("-", "")) == "FAILED"


def test_a_job_whose_worker_is_killed_is_reaped_failed_and_a_retry_completes_storing_each_clip_once(site):
    pk = site.launch("ingest", _ingest_args(site, "wb-kill"))
    worker = site.worker()
    try:
        site.wait_for(pk, lambda r: r["state"] == "running", proc=worker)
        time.sleep(1.0)  # inside the stage: separating and analysing
        assert site.job(pk)["state"] == "running"
        os.killpg(worker.pid, signal.SIGKILL)
    finally:
        worker.wait(timeout=30)
    assert site.job(pk)["state"] == "running"  # nothing in the dead worker could say otherwise

    said = site.manage("db_worker", "--batch", "--interval", "0", stderr=True)  # a worker starting reaps first
    job = site.job(pk)
    assert f"marked failed: jobs {pk} " in said and job["state"] == "failed"
    assert "stopped while it ran" in job["error"], job["error"]
    assert site.scalar("select status from django_tasks_database_dbtaskresult where id = ?",
                       job["task_id"].replace("-", "")) == "FAILED"

    new = site.shell(f"from workbench.jobs import retry; from workbench.models import Job; "
                     f"print(retry(Job.objects.get(pk={pk})).pk)")
    site.run_worker_until_idle()
    again = site.job(new)
    assert again["state"] == "done", again["error"]
    assert again["retry_of_id"] == pk and again["done"] == again["total"]
    rows = site.scalar("select count(*) from generation_clip c join generation_mashupdb d on c.db_id = d.id "
                       "where d.name = 'wb-kill'")
    distinct = site.scalar("select count(distinct c.source_sha256 || c.start_s) from generation_clip c "
                           "join generation_mashupdb d on c.db_id = d.id where d.name = 'wb-kill'")
    assert rows == distinct == SONGS["take"]


def test_the_job_page_in_chromium_shows_render_and_score_launched_from_their_forms_reach_100_percent(site, browser):
    if not site.scalar("select count(*) from generation_mashupdb where name = 'wb'"):  # run alone: the command
        site.manage("ingest", str(site.songs), "--db", "wb", "--separator", "stems", "--jobs", "1", "--no-progress")
    site.manage("generate", "--db", "wb", "--condition", "original", "--count", "2", "--seed", "1")
    site.shell("from django.contrib.auth.models import User; "
               "User.objects.create_superuser('boss', 'b@example.org', 'pw-for-the-test-1'); print(1)")
    server, base = site.server()
    worker = None
    try:
        page = browser.new_page()
        page.goto(base + "/admin/login/?next=/work/launch/render/")
        page.fill("#id_username", "boss")
        page.fill("#id_password", "pw-for-the-test-1")
        page.click("input[type=submit]")
        page.select_option("#id_db", "wb")
        page.click("#launch")
        page.wait_for_url("**/work/jobs/*/")
        assert page.text_content("#state") == "queued"
        assert page.get_attribute("#bar", "value") == "0"
        worker = site.worker()  # the page keeps polling; the bar moves once a worker takes the job
        page.wait_for_function("document.getElementById('state').textContent === 'done'", timeout=120_000)
        assert page.text_content("#percent") == "100 %"
        assert page.get_attribute("#bar", "value") == "100"
        assert page.text_content("#count") == "2 / 2"
        assert "2 candidates rendered" in page.text_content("#log")
        assert page.locator("#links a").first.text_content() == "candidates of wb"
        assert page.is_disabled("#cancel") and not page.is_disabled("#retry")
        page.goto(base + "/work/launch/score/")  # the same worker scores them with the AMU baseline
        page.select_option("#id_system", "amu")
        page.select_option("#id_db", "wb")
        page.click("#launch")
        page.wait_for_url("**/work/jobs/*/")
        page.wait_for_function("document.getElementById('state').textContent === 'done'", timeout=120_000)
        assert page.text_content("#percent") == "100 %" and page.text_content("#count") == "2 / 2"
        page.goto(base + "/work/")
        assert "Nothing runs now." in page.text_content("main")
        assert site.scalar("select count(*) from generation_candidate where mix_path != ''") == 2
        assert site.scalar("select count(*) from scoring_score s join scoring_system y on s.system_id = y.id "
                           "where y.name = 'amu'") == 2
    finally:
        stop(worker)
        stop(server)
