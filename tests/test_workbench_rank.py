"""The workbench's "rank a vocal" page (issue 14 item 2): the launch form, the top N with players, and the
button that renders the ones not rendered.

One module world, built the way tests/test_rank.py builds its own: generated 30 s songs (seed 22, cached)
ingested as stems into MashupDB ``wr-main`` and a tiny random-init PreMixNet registered from a checkpoint
(tests.test_rank._system). Its rank job is launched from the real form's cleaned data and run
synchronously through its django-tasks task, as a worker would. Nothing is mocked: renders are real WAVs.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from generation.models import Candidate, Clip, MashupDB
from scoring.models import Score, System
from tests.fixtures_songs import stems_folder
from tests.test_rank import SECONDS, SONG_SEED, SONGS, _system
from workbench import jobs
from workbench.forms import RankForm
from workbench.models import Job
from workbench.tasks import TASKS

pytestmark = pytest.mark.slow

DB, SYSTEM, TOP = "wr-main", "wr-pre", 3


def run_job(job: Job) -> Job:
    """Run a queued job's task here, synchronously, as `manage.py db_worker` would; the finished row."""
    TASKS[job.stage].call(job.pk)
    job.refresh_from_db()
    return job


def launch_rank(vocal: int) -> Job:
    """A rank job launched with what the real launch form cleans (what the launch view does)."""
    form = RankForm({"system": SYSTEM, "vocal": str(vocal), "top": str(TOP), "accompaniment_db": ""})
    assert form.is_valid(), form.errors
    args = {k: v for k, v in form.cleaned_data.items() if v not in ("", None, False)}
    return jobs.launch("rank", args)


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, module_tmp):
    media = module_tmp / "media"
    media.mkdir()
    with django_db_blocker.unblock(), override_settings(MEDIA_ROOT=media):
        folder = stems_folder(module_tmp / "in", count=SONGS, seed=SONG_SEED, seconds=SECONDS, take=SONGS)
        call_command("ingest", str(folder), "--db", DB, "--separator", "stems", "--no-progress",
                     stdout=io.StringIO(), stderr=io.StringIO())
        _system(SYSTEM, "premix", module_tmp)
        vocal = _best_vocal()
        rank = run_job(launch_rank(vocal))
        assert rank.state == Job.DONE, rank.error
        yield {"media": media, "vocal": vocal, "job": rank}
        Job.objects.filter(mashupdb=DB).delete()
        System.objects.filter(name__startswith="wr-").delete()
        MashupDB.objects.filter(name__startswith="wr-").delete()


def _best_vocal() -> int:
    """The clip of the world with the most qualifying matched pairs (the ranking needs more than TOP)."""
    from generation.candidates import clip_infos
    from generation.conditions import qualifying_stems

    clips = clip_infos(Clip.objects.filter(db__name=DB).prefetch_related("stems").order_by("id"))
    best = max(clips, key=lambda c: qualifying_stems(c, clips).pair_count)
    assert qualifying_stems(best, clips).pair_count > TOP
    return best.id


@pytest.fixture(autouse=True)
def _world_media(world, settings, _private_media_root):
    settings.MEDIA_ROOT = world["media"]


def page(client: Client, job: Job) -> str:
    response = client.get(reverse("workbench:rank_result", args=[job.pk]))
    assert response.status_code == 200
    return response.content.decode()


def rows_of(html: str) -> list[tuple[int, float]]:
    """(candidate id, score) of each table row, in page order."""
    return [(int(c), float(s)) for c, s in
            re.findall(r'<tr data-candidate="(\d+)"><td>\d+</td><td class="score">([\d.]+)</td>', html)]


def render_jobs() -> list[Job]:
    return list(Job.objects.filter(stage="render").order_by("id"))


def options(html: str, name: str) -> list[tuple[str, str]]:
    """(value, label) of each option of the form's select `name`."""
    select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', html, re.S)
    assert select, f"no select {name}"
    return re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select.group(1))


NOT_RENDERED = '<span class="muted">not rendered</span>'


@pytest.mark.django_db
def test_the_form_lists_the_ranking_systems_and_every_clip_and_launches_a_rank_job(staff, world):
    html = staff.get(reverse("workbench:launch", args=["rank"])).content.decode()
    clip = Clip.objects.get(pk=world["vocal"])
    assert [v for v, _ in options(html, "system")] == sorted([SYSTEM, "amu", "amu_rhythm"])
    vocals = options(html, "vocal")
    assert len(vocals) == Clip.objects.count() and (str(clip.pk), f"{DB} / {clip.name} ({clip.pk})") in vocals
    assert options(html, "accompaniment_db")[1:] == [(DB, DB)]
    assert re.search(r'name="top" value="10"', html)
    jobs_page = staff.get(reverse("workbench:jobs")).content.decode()
    assert f'<a href="{reverse("workbench:launch", args=["rank"])}">rank a vocal</a>' in jobs_page
    response = staff.post(reverse("workbench:launch", args=["rank"]),
                          {"system": SYSTEM, "vocal": clip.pk, "top": 5, "accompaniment_db": ""})
    job = Job.objects.filter(stage="rank", state=Job.QUEUED).get()
    assert response["Location"] == reverse("workbench:job", args=[job.pk])
    assert job.arguments == {"system": SYSTEM, "vocal": clip.pk, "top": 5} and job.mashupdb == DB
    bad = staff.post(reverse("workbench:launch", args=["rank"]), {"system": SYSTEM, "vocal": clip.pk, "top": 101})
    assert bad.status_code == 200 and Job.objects.filter(stage="rank", state=Job.QUEUED).count() == 1


@pytest.mark.django_db
def test_the_page_shows_the_top_n_in_score_order_not_rendered_with_one_button(staff, world):
    job = world["job"]
    html = page(staff, job)
    rows = rows_of(html)
    assert [c for c, _ in rows] == job.outputs["candidates"] and len(rows) == TOP
    assert [s for _, s in rows] == sorted((s for _, s in rows), reverse=True)
    assert all(abs(shown - s) < 6e-5 for (_, shown), s in zip(rows, job.outputs["scores"]))
    stored = dict(Score.objects.filter(system__name=SYSTEM).values_list("candidate_id", "value"))
    assert all(abs(stored[c] - s) < 1e-4 for c, s in rows)
    assert html.count(NOT_RENDERED) == TOP and "<audio" not in html
    assert f">Render the {TOP} not rendered</button>" in html and "csrfmiddlewaretoken" in html
    assert f"{job.outputs['pairs']} pairs scored" in html
    job_page = staff.get(reverse("workbench:job", args=[job.pk])).content.decode()
    assert f'<a href="{reverse("workbench:rank_result", args=[job.pk])}">ranking</a>' in job_page


@pytest.mark.django_db
def test_the_button_renders_exactly_the_unrendered_and_a_tampered_post_changes_nothing(staff, world):
    job, url = world["job"], reverse("workbench:rank_result", args=[world["job"].pk])
    first, *rest = job.outputs["candidates"]
    outsider = Candidate.objects.create(**_twin_fields(Candidate.objects.get(pk=first)), spec_key="wr-outsider")
    assert run_job(jobs.launch("render", {"db": DB, "ids": [first]})).state == Job.DONE
    html = page(staff, job)
    assert html.count("<audio") == 1 and f">Render the {TOP - 1} not rendered</button>" in html

    # the posted form says nothing about what to render: ids, db and force are the job's own
    tampered: dict[str, Any] = {"ids": [outsider.pk, first], "db": "elsewhere", "force": "on"}
    response = staff.post(url, tampered)
    render = render_jobs()[-1]
    assert response.status_code == 302 and response["Location"] == reverse("workbench:job", args=[render.pk])
    assert render.arguments == {"db": DB, "ids": rest} and render.state == Job.QUEUED
    waiting = page(staff, job)
    assert f"Job <a href=\"{reverse('workbench:job', args=[render.pk])}\">{render.pk}</a>" in waiting
    assert 'id="render"' not in waiting
    staff.post(url, tampered)  # a second press while it is queued launches nothing more
    assert render_jobs()[-1] == render

    assert run_job(render).state == Job.DONE and render.outputs["rendered"] == TOP - 1
    html = page(staff, job)
    assert html.count("<audio") == TOP and NOT_RENDERED not in html and 'id="render"' not in html
    for c in Candidate.objects.filter(pk__in=job.outputs["candidates"]):
        assert reverse("generation:media", args=[c.mix_path]) in html and c.media("mix_path").is_file()
    outsider.refresh_from_db()
    assert not outsider.is_rendered
    before = len(render_jobs())
    again = staff.post(url, tampered, follow=True)
    assert len(render_jobs()) == before and "Every candidate of this ranking is rendered." in again.content.decode()


def _twin_fields(c: Candidate) -> dict[str, Any]:
    """A candidate of the same clips that no ranking names: what a tampered form would like rendered."""
    keep = ("db", "vocal_clip", "harmonic_clip", "percussion_clip", "condition", "duration_s")
    return {k: getattr(c, k) for k in keep} | {"seed": 12345}


@pytest.mark.django_db
def test_a_rank_job_not_done_says_so_and_renders_nothing(staff, world):
    queued = launch_rank(world["vocal"])
    html = page(staff, queued)
    assert "The rank job is queued" in html and reverse("workbench:job", args=[queued.pk]) in html
    assert "<table" not in html
    staff.post(reverse("workbench:rank_result", args=[queued.pk]))
    assert not render_jobs()


@pytest.mark.django_db
def test_staff_only_and_only_rank_jobs(staff, world):
    url = reverse("workbench:rank_result", args=[world["job"].pk])
    other = Client()
    other.force_login(User.objects.create_user("visitor", password="x-long-password"))
    for who in (other, Client()):
        for response in (who.get(url), who.post(url)):
            assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not render_jobs()
    render = jobs.launch("render", {"db": DB})
    assert staff.get(reverse("workbench:rank_result", args=[render.pk])).status_code == 404
    assert staff.get(reverse("workbench:rank_result", args=[999999])).status_code == 404
    csrf = Client(enforce_csrf_checks=True)
    csrf.force_login(User.objects.get(username="exp"))
    assert csrf.post(url).status_code == 403 and render_jobs() == [render]


@pytest.mark.django_db
def test_chromium_shows_the_table_and_after_the_render_plays_the_mixes(world, staff, request):
    """The page in a real browser after the button's render job ran. Its page and mixes are fetched with the
    Django test client first and handed to chromium by a route (no live server, so the module world stays in
    the test database; route handlers run in Playwright's greenlet, where this test's connection is not).
    Chromium starts only once every database read is done: Django code run after Playwright starts no
    longer sees this test's transaction (what it wrote would be committed and outlive the test)."""
    job = world["job"]
    url = reverse("workbench:rank_result", args=[job.pk])
    pressed = staff.post(url)
    assert pressed.status_code == 302 and render_jobs(), pressed
    run_job(render_jobs()[-1])
    html = page(staff, job)
    srcs = re.findall(r'<audio[^>]* src="([^"]+)"', html)
    answers = {url: (html.encode(), "text/html; charset=utf-8")} | {src: _fetch(staff, src) for src in srcs}
    expected_s = Candidate.objects.get(pk=job.outputs["candidates"][0]).duration_s
    browser = request.getfixturevalue("browser")
    context = browser.new_context()
    context.route("http://testserver/**", lambda route: _fulfil(route, answers))
    tab = context.new_page()
    tab.goto("http://testserver" + url)
    assert tab.locator("#ranking tbody tr").count() == TOP and tab.locator("#render").count() == 0
    players = tab.locator("audio")
    assert players.count() == TOP and len(srcs) == TOP
    seconds = players.first.evaluate(
        "a => new Promise((ok, no) => { a.onloadedmetadata = () => ok(a.duration); a.onerror = () => no(a.error);"
        " a.preload = 'auto'; a.load(); })")
    assert abs(seconds - expected_s) < 0.5
    context.close()


def _fetch(client: Client, path: str) -> tuple[bytes, str]:
    """A staff-only file's bytes and content type, as the test client gets them."""
    response = client.get(path)
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content  # type: ignore[attr-defined]
    return body, response["Content-Type"]


def _fulfil(route: Any, answers: dict[str, tuple[bytes, str]]) -> None:
    """Answer a browser request from what was fetched; anything else is a 404."""
    found = answers.get(route.request.url.removeprefix("http://testserver"))
    if found is None:
        route.fulfill(status=404, body="not fetched")
    else:
        route.fulfill(status=200, body=found[0], headers={"Content-Type": found[1]})
