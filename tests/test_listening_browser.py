"""End to end in Debian's chromium (Playwright) against a live server: the DB holds exactly the answers given."""

from pathlib import Path

import pytest

from listening import services
from listening.models import Assignment, Delivery, PageResponse, Participant, Rating, Study
from listening.quality import QualityRules
from tests.browser import CHROMIUM, NO_CHROMIUM
from tests.rater import ASPECTS, begin, fill, scores_for
from tests.test_listening_world import build_world

playwright_sync = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=NO_CHROMIUM)


@pytest.fixture
def live_study(transactional_db, settings):
    build_world(Path(settings.MEDIA_ROOT))
    study = services.design_generation_study(
        name="live", db_name="alpha", top_n=1, bottom_n=1, seed=3,
        study_settings=services.StudySettings(ratings_per_page=3, pages_per_participant=3))
    return services.set_state(study, Study.State.OPEN)


def _begin(page, live_server, study, pid):
    begin(page, f"{live_server.url}/study/s/{study.public_token}/?PROLIFIC_PID={pid}")


def test_a_participant_resumes_after_a_refresh_and_a_double_click_stores_once(browser, live_server, live_study):
    ctx = browser.new_context()
    page = ctx.new_page()
    _begin(page, live_server, live_study, "P-1")
    given = {}
    for number in range(1, 4):
        page.wait_for_selector("h1:has-text('Page')")
        assert page.locator("h1").inner_text() == f"Page {number} of 3"
        token = page.url.rstrip("/").split("/")[-1]
        held = Assignment.objects.get(participant__token=token, state="reserved")
        if number == 2:  # refresh mid-study (answers half filled): the same page comes back, answers kept
            fill(page, {"clip1_harmony": 1, "clip2_timbre": 4}, "yes")
            page.wait_for_function("document.getElementById('save-status').textContent === 'Saved.'")
            page.reload()
            assert page.locator("h1").inner_text() == "Page 2 of 3"
            assert Assignment.objects.get(participant__token=token, state="reserved").pk == held.pk
            assert page.get_by_role("radiogroup", name="Clip 1 · Harmony").get_by_role(
                "radio", name="1", exact=False).first.is_checked()
            assert page.get_by_role("radiogroup", name="Clip 2 · Timbre").get_by_role(
                "radio", name="4", exact=False).first.is_checked()
            assert page.get_by_role("radiogroup", name="Have you heard this vocal melody before?").get_by_label(
                "Yes").is_checked()
        scores = scores_for(number)
        fill(page, scores, "yes" if number == 3 else "no")
        given[held.page_id] = scores
        page.locator("#submit-page").dblclick()
        page.wait_for_load_state("load")
    page.wait_for_selector("#completion-code")
    participant = Participant.objects.get(external_id="P-1")
    assert page.locator("#completion-code").inner_text() == participant.completion_code
    page.goto(page.url)  # the same link later: still finished, nothing added
    assert participant.listens_daily is True and participant.produces_music is False
    assert Rating.objects.filter(participant=participant).count() == 3 * 10
    for a in Assignment.objects.filter(participant=participant):
        stored = {f"clip{(r.stimulus.position ^ a.swapped) + 1}_{r.aspect}": r.score
                  for r in a.ratings.select_related("stimulus")}
        assert stored == given[a.page_id]
    heard = sorted(PageResponse.objects.filter(assignment__participant=participant).values_list("heard_before",
                                                                                                flat=True))
    assert heard == [False, False, True]
    assert all(r.seconds > 0 for r in PageResponse.objects.all())
    ctx.close()


def test_three_browsers_rate_until_every_page_has_three_ratings(browser, live_server, live_study):
    n_pages = live_study.pages.count()
    contexts = [browser.new_context(viewport={"width": 390, "height": 844}) for _ in range(3)]  # phone-sized
    pages = [c.new_page() for c in contexts]
    for i, page in enumerate(pages):
        _begin(page, live_server, live_study, f"B{i}")
    active = list(range(3))
    rounds = 0
    while active and rounds < 100:
        rounds += 1
        for i in list(active):
            page = pages[i]
            if page.locator("#completion-code").count() or "nothing left" in page.content():
                # finished its quota: a fresh participant in the same browser carries on
                contexts[i].clear_cookies()
                if Assignment.objects.filter(state="done").count() >= 3 * n_pages:
                    active.remove(i)
                    continue
                _begin(page, live_server, live_study, f"B{i}-{rounds}")
                continue
            if page.locator("#come-back").count():  # every page it could rate is held by another browser
                page.get_by_role("link", name="Try again").click()
                page.wait_for_load_state("load")
                continue
            fill(page, scores_for(rounds, i), "no")
            page.locator("#submit-page").press("Enter")  # keyboard only
            page.wait_for_load_state("load")
    for page_row in live_study.pages.all():
        assert page_row.assignments.filter(state="done").count() == 3
        assert Rating.objects.filter(stimulus__page=page_row).count() == 3 * 2 * 5
    for c in contexts:
        c.close()


PLAY_TO_END = """async (player) => {
  if (player.readyState < 1) await new Promise((ok, bad) => {
    player.addEventListener("loadedmetadata", ok, {once: true});
    player.addEventListener("error", () => bad(new Error("cannot load: " + (player.error && player.error.code))), {once: true});
  });
  const duration = player.duration;
  await new Promise((ok, bad) => {
    player.addEventListener("ended", ok, {once: true});
    player.addEventListener("error", () => bad(new Error("cannot decode: " + (player.error && player.error.code))), {once: true});
    player.play().catch(bad);
  });
  return {duration, ended: player.ended, src: player.currentSrc};
}"""


def test_chromium_plays_the_served_wav_clips_to_the_end_and_only_then_unlocks_the_questions(
        browser, live_server, transactional_db, settings):
    build_world(Path(settings.MEDIA_ROOT))
    study = services.design_generation_study(
        name="full-play", db_name="alpha", top_n=1, bottom_n=0, seed=5,
        study_settings=services.StudySettings(ratings_per_page=1, pages_per_participant=1, require_full_play=True))
    services.set_state(study, Study.State.OPEN)
    assert all(s.audio_path.endswith(".flac") for s in study.pages.first().stimuli.all())  # stored; served as WAV
    page = browser.new_context().new_page()
    _begin(page, live_server, study, "F-1")
    page.wait_for_selector("h1:has-text('Page')")
    for n in (1, 2):
        assert page.locator(f'fieldset.rating[data-clip="{n}"] input').first.is_disabled()
        played = page.locator(f'audio[data-clip="{n}"]').evaluate(PLAY_TO_END)
        assert played["ended"] and abs(played["duration"] - 1.0) < 0.05, played  # the world's clips last 1 s
        assert page.locator(f'fieldset.rating[data-clip="{n}"] input').first.is_enabled()
    fill(page, scores_for(1), "no")
    page.locator("#submit-page").click()
    page.wait_for_selector("#completion-code")
    response = PageResponse.objects.get(assignment__participant__external_id="F-1")
    assert response.plays == [1, 1] and Rating.objects.filter(participant__external_id="F-1").count() == 10
    assert Delivery.objects.filter(assignment=response.assignment, complete=True).count() == 2  # the server saw it


def test_at_360_px_the_scale_is_one_row_and_one_clip_plays_at_a_time(browser, live_server, live_study):
    page = browser.new_context(viewport={"width": 360, "height": 740}).new_page()
    _begin(page, live_server, live_study, "PHONE")
    page.wait_for_selector("h1:has-text('Page')")
    for group in ("Clip 1 · Harmony", "Clip 2 · Overall"):
        boxes = [page.get_by_role("radiogroup", name=group).locator("label").nth(i).bounding_box() for i in range(5)]
        assert len({round(b["y"]) for b in boxes}) == 1, boxes  # one row
        assert boxes[-1]["x"] + boxes[-1]["width"] <= 360
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.locator('audio[data-clip="1"]').evaluate("p => p.play()")
    page.wait_for_function("!document.querySelector('audio[data-clip=\"1\"]').paused")
    page.locator('audio[data-clip="2"]').evaluate("p => p.play()")
    page.wait_for_function("!document.querySelector('audio[data-clip=\"2\"]').paused")
    assert page.locator('audio[data-clip="1"]').evaluate("p => p.paused")


def test_a_prolific_style_study_end_to_end(browser, live_server, transactional_db, settings):
    """Raters arrive with PIDs; one reloads mid-page and keeps every answer; one fails a gold page, one speeds;
    both are flagged and excluded with the reason; each gets their own code and is redirected."""
    build_world(Path(settings.MEDIA_ROOT))
    study = services.design_generation_study(
        name="prolific", db_name="alpha", top_n=2, bottom_n=2, seed=11,
        study_settings=services.StudySettings(
            ratings_per_page=3, pages_per_participant=2, quality=QualityRules(gold_every=2, speed_share=1.0),
            completion_url=f"{live_server.url}/study/s/done/?cc={{code}}&pid={{pid}}"))
    services.set_state(study, Study.State.OPEN)
    codes = {}
    for pid, kind in (("5f00000000000000000000a1", "honest"), ("5f00000000000000000000a2", "careless"),
                      ("5f00000000000000000000a3", "speeder")):
        page = browser.new_context().new_page()
        _begin(page, live_server, study, pid)
        for number in range(1, 4):
            page.wait_for_selector("h1:has-text('Page')")
            token = page.url.rstrip("/").split("/")[-1]
            a = Assignment.objects.select_related("page").get(participant__token=token, state="reserved")
            scores = scores_for(number)
            if a.page.kind == "gold":
                orig = next(s.position for s in a.page.stimuli.select_related("candidate")
                            if s.candidate.condition == "original")
                shown = (orig ^ a.swapped) + 1
                good, bad = (5, 1) if kind != "careless" else (1, 5)
                scores = {f"clip{n}_{asp}": good if n == shown else bad for n in (1, 2) for asp in ASPECTS}
            if kind == "honest" and number == 1:
                fill(page, scores, "no")
                page.wait_for_function("document.getElementById('save-status').textContent === 'Saved.'")
                page.reload()
                for field, value in scores.items():
                    clip, aspect = field.split("_")
                    assert page.get_by_role("radiogroup", name=f"Clip {clip[-1]} · {aspect.capitalize()}") \
                        .get_by_role("radio", name=str(value), exact=False).first.is_checked(), field
            else:
                fill(page, scores, "no")
            if kind != "speeder":
                page.wait_for_timeout(2100)  # both 1 s clips' worth of listening
            page.locator("#submit-page").click()
            page.wait_for_load_state("load")
        page.wait_for_url("**/study/s/done/**", timeout=15000)
        participant = Participant.objects.get(external_id=pid)
        assert f"cc={participant.completion_code}" in page.url and f"pid={pid}" in page.url
        codes[kind] = participant
    assert len({p.completion_code for p in codes.values()}) == 3
    assert not codes["honest"].excluded
    assert codes["careless"].excluded and "gold" in codes["careless"].exclusion_reason
    assert codes["speeder"].excluded and "faster" in codes["speeder"].exclusion_reason
    table = services.ratings_table(study)
    assert set(table.loc[table["excluded"] == "yes", "external_id"]) == {"5f00000000000000000000a2",
                                                                         "5f00000000000000000000a3"}
