"""Navigation: staff reach the studies, a new study and logout from every page; participants never get a way out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from listening import services
from listening.models import Study
from tests.test_analysis_page import PASSWORD, log_in
from tests.test_listening_http import _start
from tests.test_listening_world import build_world

pytest_plugins = ["tests.test_listening_world"]  # fixtures: world, generation_study

HEADER = re.compile(r"<header>(.*?)</header>", re.S)


def header_links(html: str) -> list[str]:
    match = HEADER.search(html)
    assert match, "the page has no header"
    return re.findall(r'<a\s[^>]*href="([^"]*)"', match.group(1))


def test_participants_see_no_link_out_of_their_study(client, generation_study):
    for url in (f"/study/s/{generation_study.public_token}/",):
        html = client.get(url).content.decode()
        assert header_links(html) == [], url
        assert 'href="/admin' not in html
    token = _start(client, generation_study, pid="NAV-1")
    for url in (f"/study/p/{token}/",):
        r = client.get(url)
        html = r.content.decode()
        assert r.status_code == 200 and "<fieldset" in html  # the rating page itself
        assert header_links(html) == [], url
        assert "logout" not in html and 'href="/admin' not in html and 'href="/"' not in html


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user("analyst", password=PASSWORD, is_staff=True)


def test_staff_pages_link_to_studies_new_study_and_logout(client, staff_user, generation_study):
    client.force_login(staff_user)
    for url in ("/", "/study/", f"/study/{generation_study.pk}/", "/systems/"):
        html = client.get(url).content.decode()
        links = header_links(html)
        assert "/study/" in links and "/study/new/" in links, (url, links)
        assert 'action="/admin/logout/"' in html and 'method="post"' in html.split('action="/admin/logout/"')[0][-60:]


def test_logout_is_a_post_that_ends_the_session(client, staff_user):
    client.force_login(staff_user)
    assert client.get("/study/").status_code == 200
    r = client.post("/admin/logout/", {"next": "/admin/login/"})
    assert r.status_code == 302 and r["Location"] == "/admin/login/"
    assert client.get("/study/").status_code in (302, 403)  # anonymous again


# --------------------------------------------------------------------------- in chromium


@pytest.fixture
def live_world(transactional_db, settings):
    build_world(Path(settings.MEDIA_ROOT))
    study = services.design_generation_study(
        name="nav", db_name="alpha", top_n=1, bottom_n=1, seed=3,
        study_settings=services.StudySettings(ratings_per_page=3, pages_per_participant=3))
    get_user_model().objects.create_user("analyst", password=PASSWORD, is_staff=True)
    return services.set_state(study, Study.State.OPEN)


def test_in_chromium_staff_navigate_and_log_out_and_a_participant_has_no_header_link(browser, live_server,
                                                                                      live_world):
    page = browser.new_page()
    log_in(page, live_server, "/study/")
    nav = page.get_by_role("navigation", name="Site")
    nav.get_by_role("link", name="design a new study").click()
    page.wait_for_load_state("load")
    assert page.url == f"{live_server.url}/study/new/"
    page.get_by_role("navigation", name="Site").get_by_role("link", name="studies").click()
    page.wait_for_load_state("load")
    assert page.url == f"{live_server.url}/study/"
    assert page.get_by_text("nav").first.is_visible()
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the table keeps its header row and fits
    page.reload()
    assert page.locator("table thead th").first.is_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.get_by_role("button", name=re.compile("^log out")).click()
    page.wait_for_load_state("load")
    assert "/admin/login/" in page.url
    page.goto(f"{live_server.url}/study/")
    assert "/admin/login/" in page.url or page.locator("nav[aria-label=Site]").count() == 0  # the session is gone
    page.close()

    participant = browser.new_context().new_page()
    participant.goto(f"{live_server.url}/study/s/{live_world.public_token}/?PROLIFIC_PID=NAV-2")
    assert participant.locator("header a").count() == 0
    assert participant.locator("header").inner_text().strip() == "mashlab"
    assert participant.locator("a[href^='/admin']").count() == 0
    participant.close()
