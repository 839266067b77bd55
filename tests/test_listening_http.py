"""The participant flow over HTTP, and hostile requests: each gets a clear 4xx and stores nothing."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from listening.models import Assignment, PageResponse, Participant, Rating, Stimulus, Study
from tests.test_listening_world import full_answers

pytest_plugins = ["tests.test_listening_world"]  # its fixtures: world, generation_study


def _start(client, study, pid=""):
    r = client.post(f"/study/s/{study.public_token}/" + (f"?PROLIFIC_PID={pid}" if pid else ""), {"consent": "on"})
    assert r.status_code == 302
    token = r["Location"].rstrip("/").split("/")[-1]
    r = client.post(f"/study/p/{token}/questionnaire/", {"listens_daily": "yes", "produces_music": "no"})
    assert r.status_code == 302
    return token


def _current(token):
    return Assignment.objects.get(participant__token=token, state="reserved")


def _nothing_stored():
    return not Rating.objects.exists() and not PageResponse.objects.exists() and not Assignment.objects.filter(
        state="done").exists()


@pytest.fixture
def started(client, generation_study):
    token = _start(client, generation_study, pid="PROLIFIC123")
    r = client.get(f"/study/p/{token}/")
    assert r.status_code == 200
    return token, _current(token)


def test_a_participant_rates_pages_and_gets_the_completion_code(client, generation_study):
    token = _start(client, generation_study, pid="ABC")
    p = Participant.objects.get(token=token)
    assert p.external_id == "ABC" and p.listens_daily is True and p.produces_music is False
    for number in range(1, 4):
        r = client.get(f"/study/p/{token}/")
        assert f"Page {number} of 3" in r.content.decode()
        a = _current(token)
        r = client.post(f"/study/p/{token}/page/{a.pk}/", full_answers(number))
        assert r.status_code == 302
    r = client.get(f"/study/p/{token}/")
    p.refresh_from_db()
    assert len(p.completion_code) == 16 and p.completion_code in r.content.decode()
    assert Rating.objects.filter(participant=p).count() == 3 * 10
    assert sorted(set(Rating.objects.values_list("score", flat=True))) == [1, 2, 3]
    assert Participant.objects.get(pk=p.pk).finished_at is not None


def test_the_study_link_resumes_a_started_participant(client, started):
    token, assignment = started
    study = assignment.page.study
    r = client.get(f"/study/s/{study.public_token}/")
    assert r.status_code == 302 and r["Location"].endswith(f"/study/p/{token}/")
    client.get(f"/study/p/{token}/")
    assert _current(token).pk == assignment.pk  # a refresh keeps the same page


def test_audio_is_served_with_ranges_under_per_page_urls(client, started, world):
    token, assignment = started
    html = client.get(f"/study/p/{token}/").content.decode()
    for n in (1, 2):
        url = f"/study/p/{token}/clip/{assignment.media_key}/{n}"
        assert url in html
        whole = client.get(url)
        body = b"".join(whole.streaming_content)
        assert whole.status_code == 200 and whole["Content-Type"] == "audio/wav" and body[:4] == b"RIFF"
        r = client.get(url, HTTP_RANGE="bytes=0-99")
        assert r.status_code == 206 and b"".join(r.streaming_content) == body[:100]
        assert r["Content-Range"] == f"bytes 0-99/{len(body)}"
        r = client.get(url, HTTP_RANGE="bytes=-10")
        assert b"".join(r.streaming_content) == body[-10:]
    for stim in assignment.page.stimuli.all():
        assert stim.token not in html  # the stored file's name never reaches the browser
    assert 'name="clip1_harmony"' in html and "excellent" in html and "<label" in html


def test_page_text_names_no_system_or_condition(client, started):
    token, _ = started
    html = client.get(f"/study/p/{token}/").content.decode().lower()
    for word in ("amu", "premix", "original", "matched", "unmatched", "renders/", ".wav"):
        assert word not in html


@pytest.mark.parametrize("bad", ["0", "6", "3.5", "abc", "", "-1", "4 "])
def test_a_rating_outside_1_to_5_is_refused(client, started, bad):
    token, a = started
    data = full_answers()
    data["clip2_rhythm"] = bad
    r = client.post(f"/study/p/{token}/page/{a.pk}/", data)
    if bad == "4 ":
        assert r.status_code == 302  # surrounding spaces are harmless
        return
    assert r.status_code == 400 and "Clip 2" in r.content.decode() and "rhythm" in r.content.decode()
    assert _nothing_stored()


def test_a_missing_aspect_or_heard_answer_is_refused(client, started):
    token, a = started
    data = full_answers()
    del data["clip1_timbre"]
    r = client.post(f"/study/p/{token}/page/{a.pk}/", data)
    assert r.status_code == 400 and "please rate timbre" in r.content.decode()
    data = full_answers()
    del data["heard_before"]
    assert client.post(f"/study/p/{token}/page/{a.pk}/", data).status_code == 400
    assert _nothing_stored()


def test_extra_fields_are_refused(client, started):
    token, a = started
    r = client.post(f"/study/p/{token}/page/{a.pk}/", {**full_answers(), "system": "premix"})
    assert r.status_code == 400 and "Unexpected field" in r.content.decode()
    assert _nothing_stored()


def test_another_participants_page_is_refused(client, started, generation_study):
    _token, a = started
    other = Client()
    other_token = _start(other, generation_study)
    r = other.post(f"/study/p/{other_token}/page/{a.pk}/", full_answers())
    assert r.status_code == 404 and "not one of yours" in r.content.decode()
    assert other.get(f"/study/p/{other_token}/clip/{a.media_key}/1").status_code == 404
    assert _nothing_stored()


def test_a_forged_token_or_guessed_audio_url_is_404(client, started):
    token, a = started
    assert client.get("/study/p/forged-token-123/").status_code == 404
    r = client.post(f"/study/p/forged-token-123/page/{a.pk}/", full_answers())
    assert r.status_code == 404 and "not valid" in r.content.decode()
    assert client.get(f"/study/p/{token}/clip/guessed/1").status_code == 404
    assert client.get(f"/media/studies/{a.page.study.pk}/").status_code in (302, 403, 404)
    assert client.get("/study/s/not-a-study/").status_code == 404
    assert _nothing_stored()


def test_a_missing_csrf_token_is_refused(generation_study):
    client = Client(enforce_csrf_checks=True)
    r = client.post(f"/study/s/{generation_study.public_token}/", {"consent": "on"})
    assert r.status_code == 403 and not Participant.objects.exists()
    page = client.get(f"/study/s/{generation_study.public_token}/")
    csrf = page.cookies["csrftoken"].value
    r = client.post(f"/study/s/{generation_study.public_token}/", {"consent": "on", "csrfmiddlewaretoken": csrf})
    token = r["Location"].rstrip("/").split("/")[-1]
    client.post(f"/study/p/{token}/questionnaire/", {"listens_daily": "no", "produces_music": "no",
                                                     "csrfmiddlewaretoken": csrf})
    client.get(f"/study/p/{token}/")
    a = _current(token)
    assert client.post(f"/study/p/{token}/page/{a.pk}/", full_answers()).status_code == 403
    wrong = {**full_answers(), "csrfmiddlewaretoken": "x" * 64}
    assert client.post(f"/study/p/{token}/page/{a.pk}/", wrong).status_code == 403
    assert _nothing_stored()
    ok = {**full_answers(), "csrfmiddlewaretoken": csrf}
    assert client.post(f"/study/p/{token}/page/{a.pk}/", ok).status_code == 302
    assert Rating.objects.count() == 10


def test_a_closed_or_draft_study_refuses_participants(client, started, generation_study):
    token, a = started
    Study.objects.filter(pk=generation_study.pk).update(state="closed")
    Assignment.objects.filter(pk=a.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    r = client.post(f"/study/p/{token}/page/{a.pk}/", full_answers())
    assert r.status_code == 410 and "closed" in r.content.decode()
    assert client.get(f"/study/p/{token}/").status_code == 410
    Study.objects.filter(pk=generation_study.pk).update(state="draft")
    r = Client().get(f"/study/s/{generation_study.public_token}/")
    assert r.status_code == 403 and "not open yet" in r.content.decode()
    assert Client().post(f"/study/s/{generation_study.public_token}/", {"consent": "on"}).status_code == 403
    assert _nothing_stored() and Participant.objects.count() == 1


def test_a_study_closed_mid_page_still_takes_the_page_being_rated(client, started, generation_study):
    token, a = started
    client.post(f"/study/p/{token}/page/{a.pk}/answer/", {"field": "clip1_harmony", "value": "2"})
    Study.objects.filter(pk=generation_study.pk).update(state="closed")
    html = client.get(f"/study/p/{token}/").content.decode()
    assert f"/page/{a.pk}/" in html  # the rater still sees their page, answer kept
    assert client.post(f"/study/p/{token}/page/{a.pk}/answer/", {"field": "clip1_rhythm", "value": "3"}).status_code \
        == 204
    assert client.post(f"/study/p/{token}/page/{a.pk}/", full_answers(4)).status_code == 302
    assert Rating.objects.filter(assignment=a).count() == 10
    assert client.get(f"/study/p/{token}/").status_code == 410  # but no new page
    assert Assignment.objects.filter(participant__token=token).count() == 1


def test_a_replayed_submit_stores_once_and_back_cannot_overwrite(client, started):
    token, a = started
    assert client.post(f"/study/p/{token}/page/{a.pk}/", full_answers(5)).status_code == 302
    r = client.post(f"/study/p/{token}/page/{a.pk}/", full_answers(1))
    assert r.status_code == 302
    assert Rating.objects.count() == 10 and set(Rating.objects.values_list("score", flat=True)) == {5}


def test_consent_is_required(client, generation_study):
    r = client.post(f"/study/s/{generation_study.public_token}/", {})
    assert r.status_code == 400 and "tick the box" in r.content.decode()
    assert not Participant.objects.exists()


def test_experimenter_pages_need_a_staff_login(client, generation_study):
    for url in ("/study/", f"/study/{generation_study.pk}/", f"/study/{generation_study.pk}/ratings.csv",
                f"/study/{generation_study.pk}/design.json", "/study/new/"):
        r = client.get(url)
        assert r.status_code == 403 and "log in" in r.content.decode().lower()
    assert client.post(f"/study/{generation_study.pk}/state/", {"state": "closed"}).status_code == 403
    assert Study.objects.get(pk=generation_study.pk).state == "open"


def test_dashboard_shows_progress_links_and_closes_the_study(client, generation_study):
    user = get_user_model().objects.create_user("exp", password="pw-123456", is_staff=True)
    client.force_login(user)
    html = client.get(f"/study/{generation_study.pk}/").content.decode()
    assert f"/study/s/{generation_study.public_token}/" in html
    assert f"/analysis/study/{generation_study.pk}/" in html
    assert "Pages complete: 0" in html
    assert client.get(f"/study/{generation_study.pk}/design.csv").status_code == 200
    r = client.post(f"/study/{generation_study.pk}/state/", {"state": "closed"})
    assert r.status_code == 302 and Study.objects.get(pk=generation_study.pk).state == "closed"
    r = client.post("/study/new/", {"name": "web", "task": "generation", "db": "alpha", "top_n": 1, "bottom_n": 1,
                                    "n_queries": 1, "n_candidates": 5, "seed": 1, "ratings_per_page": 3,
                                    "pages_per_participant": 2, "reservation_s": 1200, "audio_format": "wav"})
    assert r.status_code == 302 and Study.objects.filter(name="web", state="draft").exists()
    web = Stimulus.objects.filter(page__study__name="web")
    assert web.exists() and all(s.audio_path.endswith(".wav") for s in web)
    assert Study.objects.get(name="web").config["audio_format"] == "wav"
    r = client.post("/study/new/", {"name": "web2", "task": "generation", "db": "nope", "top_n": 1, "bottom_n": 1,
                                    "n_queries": 1, "n_candidates": 5, "seed": 1, "ratings_per_page": 3,
                                    "pages_per_participant": 2, "reservation_s": 1200, "audio_format": "flac"})
    assert r.status_code == 400 and "There is no MashupDB named nope." in r.content.decode()


def test_admin_lists_every_listening_model(client, generation_study):
    user = get_user_model().objects.create_superuser("root", password="pw-123456")
    client.force_login(user)
    for model in ("study", "page", "stimulus", "stimuluslabel", "participant", "assignment", "pageresponse", "rating"):
        assert client.get(f"/admin/listening/{model}/").status_code == 200


def test_full_play_is_checked_on_the_server_and_names_the_missing_clip(client, generation_study):
    Study.objects.filter(pk=generation_study.pk).update(require_full_play=True)
    token = _start(client, generation_study)
    client.get(f"/study/p/{token}/")
    a = _current(token)
    r = client.post(f"/study/p/{token}/page/{a.pk}/", {**full_answers(), "ended1": "1", "ended2": "1"})
    html = r.content.decode()
    assert r.status_code == 400 and "Clip 1 has not been played to the end" in html and 'id="clip1-error"' in html
    assert _nothing_stored()
    url = f"/study/p/{token}/clip/{a.media_key}/1"
    size = len(b"".join(client.get(url).streaming_content))
    half = f"bytes=0-{size // 2}"
    b"".join(client.get(f"/study/p/{token}/clip/{a.media_key}/2", HTTP_RANGE=half).streaming_content)
    r = client.post(f"/study/p/{token}/page/{a.pk}/", full_answers())
    html = r.content.decode()
    assert r.status_code == 400 and "Clip 2 has not been played" in html and "Clip 1 has not" not in html
    assert _nothing_stored()
    rest = f"bytes={size // 2 + 1}-"
    b"".join(client.get(f"/study/p/{token}/clip/{a.media_key}/2", HTTP_RANGE=rest).streaming_content)
    r = client.post(f"/study/p/{token}/page/{a.pk}/", full_answers())
    assert r.status_code == 302 and Rating.objects.count() == 10
