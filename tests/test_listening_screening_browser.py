"""The headphone check (Woods et al. 2017) in Debian's chromium (Playwright) against a live server: what a participant
sees on a study with ``headphone_check`` on. After consent the check comes first (six players, three choices each, no
answer in the markup); answering every trial right goes on to page 1; answering wrongly ends the session on a polite
end page that stays the end, and the experimenter's dashboard and participants CSV show the exclusion."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from listening.models import Assignment, Participant, Rating, Study
from tests.browser import CHROMIUM, NO_CHROMIUM
from tests.rater import consent, questionnaire
from tests.test_listening_headphones import design_screened_study, screening_key
from tests.test_listening_world import build_world

pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=NO_CHROMIUM)

PASSWORD = "pw-123456-screen"
CHOICES = ("First", "Second", "Third")
TRIALS = 6
FAILED_WORDS = "the headphone check did not show that your sound came through headphones"
#: How long one trial's sound lasts: three 1 s tones with 0.5 s of silence between them.
TRIAL_S = 4.0


@pytest.fixture
def live_screened_study(transactional_db, settings) -> Study:
    build_world(Path(settings.MEDIA_ROOT))
    get_user_model().objects.create_user("exp", password=PASSWORD, is_staff=True)
    return design_screened_study("phones-live")


def _entry(live_server: Any, study: Study, pid: str) -> str:
    return f"{live_server.url}/study/s/{study.public_token}/?PROLIFIC_PID={pid}"


def _token(page: Any) -> str:
    return page.url.rstrip("/").split("/")[-1]


def _answer(page: Any, answers: list[int]) -> None:
    """Pick one tone per sound through the accessible names only (radiogroup 'Sound n', radio 'First tone' ...)."""
    for n, value in enumerate(answers, start=1):
        page.get_by_role("radiogroup", name=f"Sound {n}", exact=True).get_by_role(
            "radio", name=f"{CHOICES[value - 1]} tone").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_load_state("load")


def _neutral(html: str, token: str) -> str:
    """The page with what legitimately differs between participants taken out (their token, the CSRF token)."""
    html = html.replace(token, "TOKEN")
    return re.sub(r'(name="csrfmiddlewaretoken" value=")[^"]+"', r'\1"', html)


def _shows_the_screening(page: Any) -> None:
    """The check as a participant sees it: heading, six players with an accessible name, three choices each."""
    page.wait_for_selector("h1:has-text('Headphone check')")
    assert page.locator("h1").inner_text() == "Headphone check"
    assert "choose the tone that is the quietest" in page.locator(".study").inner_text()
    assert page.locator("audio").count() == TRIALS
    for n in range(1, TRIALS + 1):
        assert page.get_by_label(f"Sound {n} player").is_visible()
        group = page.get_by_role("radiogroup", name=f"Sound {n}", exact=True)
        assert group.get_by_role("radio").count() == 3
        for word in CHOICES:
            radio = group.get_by_role("radio", name=f"{word} tone")
            assert radio.is_visible() and radio.is_enabled() and not radio.is_checked()
    assert page.get_by_role("button", name="Continue").is_visible()


def _no_answer_in_the_markup(page: Any, ctx: Any, token: str) -> str:
    """Neither the served HTML nor the live DOM tells the trials apart: no role words, no seed, no data-*
    attributes, the same value and label on every trial's choices, file names that differ only by the trial
    number. Returns the served HTML, neutralised, for the comparison between participants."""
    served = ctx.request.get(page.url)
    assert served.status == 200
    html = served.text()
    participant = Participant.objects.get(token=token)
    for words in (html, page.content()):
        lowered = words.lower()
        for word in ('quiet"', "antiphase", "reference", "data-answer", "data-key", "data-correct"):
            assert word not in lowered, word
        assert str(participant.seed) not in words
        assert re.findall(r'src="([^"]+)"', words) == [f"/study/p/{token}/screening/{n}.wav"
                                                      for n in range(1, TRIALS + 1)]
    assert page.evaluate("""Array.from(document.querySelectorAll('.study, .study *'))
        .flatMap(e => e.getAttributeNames().filter(a => a.startsWith('data-')))""") == []
    fieldsets = page.locator("fieldset.trial").evaluate_all("els => els.map(e => e.outerHTML)")
    assert len(fieldsets) == TRIALS
    shapes = {re.sub(r"(Sound |trial|screening/)\d", r"\1N", f.replace(token, "TOKEN")) for f in fieldsets}
    assert len(shapes) == 1, shapes  # the six trials are the same markup but for their number
    return _neutral(html, token)


def _plays_a_trial(page: Any) -> None:
    """Chromium decodes the served WAV of trial 1 (three 1 s tones, 0.5 s gaps)."""
    duration = page.get_by_label("Sound 1 player").evaluate("""async (player) => {
      player.load();
      if (player.readyState < 1) await new Promise((ok, bad) => {
        player.addEventListener("loadedmetadata", ok, {once: true});
        player.addEventListener("error", () => bad(new Error("cannot load: " + (player.error && player.error.code))),
                                {once: true});
      });
      return player.duration;
    }""")
    assert abs(duration - TRIAL_S) < 0.05, duration


def test_a_screened_study_in_chromium_passes_the_headphone_user_and_ends_politely_for_the_other(
        browser, live_server, live_screened_study):
    study = live_screened_study

    # --- the first participant: the check comes right after consent, holds no answer, and a pass goes on
    passer_ctx = browser.new_context()
    page = passer_ctx.new_page()
    consent(page, _entry(live_server, study, "PASSER"))
    _shows_the_screening(page)
    passer = _token(page)
    assert not Assignment.objects.filter(participant__token=passer).exists()  # nothing reserved before the check
    passer_page = _no_answer_in_the_markup(page, passer_ctx, passer)
    _plays_a_trial(page)
    key = screening_key(passer)  # from the server side: the participant's seed; never in the page
    _answer(page, key)
    p = Participant.objects.get(token=passer)
    assert p.screening["passed"] is True and p.screening["correct"] == TRIALS and p.screening["key"] == key
    assert not p.excluded and p.finished_at is None
    page.wait_for_selector("h1:has-text('Two questions about you')")
    questionnaire(page)
    page.wait_for_selector("h1:has-text('Page')")
    assert page.locator("h1").inner_text() == "Page 1 of 2"
    assert page.get_by_role("radiogroup", name="Clip 1 · Harmony").get_by_role("radio").count() == 5
    assert Assignment.objects.filter(participant=p, state="reserved").count() == 1
    assert passer_ctx.request.get(f"{live_server.url}/study/p/{passer}/screening/1.wav").status == 404  # taken

    # --- the second participant: a different key, the very same page; wrong answers end the session
    failer_ctx = browser.new_context()
    page = failer_ctx.new_page()
    consent(page, _entry(live_server, study, "SPEAKERS"))
    _shows_the_screening(page)
    failer = _token(page)
    assert failer != passer
    assert _no_answer_in_the_markup(page, failer_ctx, failer) == passer_page  # nothing in it depends on the key
    wrong = [k % 3 + 1 for k in screening_key(failer)]
    _answer(page, wrong)
    page.wait_for_selector("#screening-failed")
    assert page.locator("h1").inner_text() == "Thank you!"
    end = page.locator("#screening-failed").inner_text()
    assert FAILED_WORDS in " ".join(end.split()) and "no ratings were taken from you" in end
    assert "please return the study there" in page.locator(".study").inner_text()
    assert page.locator("#completion-code").count() == 0 and page.locator("form").count() == 0
    f = Participant.objects.get(token=failer)
    assert f.excluded and f.finished_at is not None and f.screening["correct"] == 0
    assert f.exclusion_reason == "failed the headphone screening (0 of 6 correct, 5 needed)"
    assert f.completion_code not in page.content()

    # no way back in: the study link again, the participant link, the same PID from a fresh browser, a sound
    for url, ctx in ((_entry(live_server, study, "SPEAKERS"), failer_ctx),
                     (f"{live_server.url}/study/p/{failer}/", failer_ctx),
                     (_entry(live_server, study, "SPEAKERS"), browser.new_context())):
        again = ctx.pages[0] if ctx.pages else ctx.new_page()
        again.goto(url)
        assert again.locator("#screening-failed").inner_text() == end, url
        assert again.locator("h1:has-text('Page')").count() == 0 and again.locator("audio").count() == 0
    assert failer_ctx.request.get(f"{live_server.url}/study/p/{failer}/screening/1.wav").status == 404
    assert not Assignment.objects.filter(participant=f).exists()
    assert not Rating.objects.filter(participant=f).exists()
    assert Participant.objects.filter(study=study).count() == 2  # the fresh browser resumed, no new participant

    # --- the experimenter: the dashboard counts the failure, the participants CSV marks the exclusion and why
    staff_ctx = browser.new_context()
    page = staff_ctx.new_page()
    dashboard = f"/study/{study.pk}/"
    page.goto(f"{live_server.url}/admin/login/?next={dashboard}")
    page.get_by_label("Username").fill("exp")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("#screening")
    assert " ".join(page.locator("#screening").inner_text().split()) == \
        "Headphone screening on: 1 participant(s) failed it and rated nothing"
    link = page.get_by_role("link", name="participants CSV")
    exported = staff_ctx.request.get(live_server.url + link.get_attribute("href"))
    assert exported.status == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = {r["external_id"]: r for r in csv.DictReader(io.StringIO(exported.text()))}
    assert set(rows) == {"PASSER", "SPEAKERS"}
    assert rows["SPEAKERS"]["headphones"] == "failed" and rows["SPEAKERS"]["excluded"] == "yes"
    assert rows["SPEAKERS"]["exclusion_reason"] == f.exclusion_reason and rows["SPEAKERS"]["pages_done"] == "0"
    assert rows["SPEAKERS"]["headphones_correct"] == "0" and rows["SPEAKERS"]["headphones_trials"] == "6"
    assert rows["PASSER"]["headphones"] == "passed" and rows["PASSER"]["excluded"] == "no"
    assert rows["PASSER"]["headphones_correct"] == "6" and not rows["PASSER"]["exclusion_reason"]
    for ctx in browser.contexts:
        ctx.close()
