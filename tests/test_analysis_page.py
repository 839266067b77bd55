"""The analysis page of a study: results stored once per state of the ratings, Figure 4 drawn in a real browser."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from analysis import studies
from analysis.exports import sha256_file
from listening import services
from listening.models import Study
from tests.test_analysis_study import rate_everything
from tests.test_listening_world import build_world

pytest_plugins = ["tests.test_listening_world"]  # fixtures: world, generation_study

PASSWORD = "x-123456-y"


@pytest.fixture
def staff(client, db):
    user = get_user_model().objects.create_user("analyst", password=PASSWORD, is_staff=True)
    client.force_login(user)
    return client


def result_folders(study) -> list[str]:
    root = studies.study_dir(study)
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def test_a_get_serves_stored_results_and_a_new_rating_recomputes_them(generation_study, staff):
    rate_everything(generation_study, participants=5)
    first = studies.current_results(generation_study)
    assert first.computed and first.folder is not None and not first.error
    stamp = (first.folder / "manifest.json").stat().st_mtime_ns
    url = f"/analysis/study/{generation_study.pk}/"
    for _ in range(2):
        r = staff.get(url)
        assert r.status_code == 200 and r.context["results_key"] == first.key
    again = studies.current_results(generation_study)
    assert not again.computed and again.folder == first.folder
    assert (first.folder / "manifest.json").stat().st_mtime_ns == stamp  # nothing rewritten by the GETs
    assert staff.get(f"/analysis/study/{generation_study.pk}/files/mos.tex").status_code == 200
    assert not studies.current_results(generation_study).computed  # serving a file does not recompute either

    before = result_folders(generation_study)
    assert before == [first.key]
    assert rate_everything(generation_study, participants=3, first=5) > 0  # more ratings: a new key
    changed = studies.current_results(generation_study)
    assert changed.computed and changed.key != first.key
    assert result_folders(generation_study) == [changed.key]  # the outdated results are gone


def test_two_analysts_at_once_get_one_complete_folder(generation_study):
    rate_everything(generation_study, participants=9)
    ratings = services.ratings_table(generation_study)
    config, root = studies.study_config(generation_study), studies.study_dir(generation_study)
    barrier = threading.Barrier(2)
    seen, errors = [], []

    original = studies.analyse_ratings

    def slow_start(*args, **kwargs):  # both threads compute before either renames
        barrier.wait(timeout=60)
        return original(*args, **kwargs)

    studies.analyse_ratings = slow_start
    try:
        def analyst():
            try:
                seen.append(studies.stored_results(ratings, config, root))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
        threads = [threading.Thread(target=analyst) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        studies.analyse_ratings = original
    assert not errors, errors
    assert len(seen) == 2 and seen[0].folder == seen[1].folder
    assert sorted(r.computed for r in seen) == [False, True]  # one rename won, the other found it there
    assert result_folders(generation_study) == [seen[0].key]  # no temporary folder left behind
    manifest = json.loads((seen[0].folder / "manifest.json").read_text())
    assert manifest["input"]["rows"] == len(ratings)
    for name, digest in manifest["files"].items():  # every file whole: the hash the manifest recorded
        assert sha256_file(seen[0].folder / name) == digest, name
    leftovers = [p for p in seen[0].folder.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_a_generation_study_has_no_retrieval_panel(generation_study, staff):
    rate_everything(generation_study, participants=9)
    r = staff.get(f"/analysis/study/{generation_study.pk}/")
    figure = r.context["figure"]
    titles = [a["text"] for a in figure["layout"]["annotations"]]
    assert "Generation task" in titles and "Top (lighter) vs bottom (darker) stimuli" in titles
    assert "Retrieval task" not in titles and "no ratings for this panel" not in titles
    assert b"Retrieval task" not in r.content


def test_the_page_draws_the_figure_inline_and_never_frames_it(generation_study, staff):
    rate_everything(generation_study, participants=9)
    r = staff.get(f"/analysis/study/{generation_study.pk}/")
    html = r.content.decode()
    assert "<iframe" not in html and 'id="figure4-data"' in html and "Plotly.newPlot" in html
    js = staff.get(f"/analysis/plotly-{r.context['plotly_version']}.min.js")
    assert js.status_code == 200 and js["Content-Type"].startswith("text/javascript")
    assert staff.get("/analysis/plotly-0.0.0.min.js").status_code == 404


# --------------------------------------------------------------------------- in chromium


@pytest.fixture
def rated_live_study(transactional_db, settings):
    build_world(Path(settings.MEDIA_ROOT))
    study = services.design_generation_study(
        name="live", db_name="alpha", top_n=2, bottom_n=2, seed=11,
        study_settings=services.StudySettings(ratings_per_page=3, pages_per_participant=3))
    study = services.set_state(study, Study.State.OPEN)
    rate_everything(study, participants=9)
    get_user_model().objects.create_user("analyst", password=PASSWORD, is_staff=True)
    return study


def log_in(page, live_server, next_url: str) -> None:
    page.goto(f"{live_server.url}/admin/login/?next={next_url}")
    page.get_by_label("Username").fill("analyst")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state("load")


def expected_bars(mos: list[dict]) -> int:
    """Bars Figure 4 must draw: generation panel (group all) plus top and bottom, where a MOS exists."""
    task_panel = [r for r in mos if r["group"] == "all" and r["task"] == "generation" and r["mos"] is not None]
    groups = [r for r in mos if r["group"] in ("top", "bottom") and r["mos"] is not None]
    return len(task_panel) + len(groups)


def test_chromium_shows_figure_4_with_every_bar(browser, live_server, rated_live_study):
    page = browser.new_page()
    url = f"/analysis/study/{rated_live_study.pk}/"
    log_in(page, live_server, url)
    assert page.url.endswith(url)
    page.wait_for_selector("#figure4 .barlayer .point", timeout=30_000)
    bars = page.locator("#figure4 .barlayer .point path")
    mos = studies.current_results(rated_live_study).load("mos.json")
    assert expected_bars(mos) > 20
    assert bars.count() == expected_bars(mos)
    heights = page.eval_on_selector_all(
        "#figure4 .barlayer .point path", "els => els.map(e => e.getBoundingClientRect().height)")
    assert min(heights) > 1  # drawn, not zero-height placeholders
    titles = page.eval_on_selector_all("#figure4 .annotation-text", "els => els.map(e => e.textContent)")
    assert "Generation task" in titles and "Retrieval task" not in titles
    assert page.locator("iframe").count() == 0
    page.close()


def test_at_390_px_the_tables_keep_their_labels_and_scroll_sideways(browser, live_server, rated_live_study):
    page = browser.new_page(viewport={"width": 390, "height": 844})
    url = f"/analysis/study/{rated_live_study.pk}/"
    log_in(page, live_server, url)
    page.wait_for_selector("#figure4 .barlayer .point", timeout=30_000)
    for table in ("mos", "subjects", "significance"):
        header = page.locator(f"#{table} thead th").first
        assert header.is_visible(), f"{table}: the header row is hidden"
    significance = page.locator("#significance")
    box = significance.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390 + 0.5  # the table box fits the screen ...
    scroll = page.evaluate("() => { const t = document.querySelector('#significance');"
                           " return [t.scrollWidth, t.clientWidth]; }")
    assert scroll[0] > scroll[1]  # ... and its columns scroll inside it
    page_width = page.evaluate("() => document.documentElement.scrollWidth")
    assert page_width <= 390, f"the page itself is {page_width} px wide"
    labels = page.locator("#significance thead th").all_inner_texts()
    assert labels[:4] == ["Comparison", "A", "B", "Aspect"]
    page.close()
