"""Hostile HTTP requests (issue 7 §2): each gets a clear 4xx and leaves every stored row as it was.

Cases already in tests/test_listening_http.py are not repeated here: ratings
0, 6, 3.5, "abc", "", -1; a missing aspect or heard answer; extra fields;
another participant's page and audio; a forged participant token; a missing
or wrong CSRF token; a closed or draft study; a replayed submit and the back
button; the experimenter pages without login. This file adds what they leave
out, and checks the row counts of every listening table before and after.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from listening.models import (
    Assignment,
    PageResponse,
    Participant,
    Rating,
    Stimulus,
    Study,
)
from tests.test_listening_http import _current, _start
from tests.test_listening_world import full_answers

pytest_plugins = ["tests.test_listening_world"]  # its fixtures: world, generation_study


def counts() -> dict[str, int]:
    """Rows of every table a participant can write to, plus the done assignments."""
    return {
        "participants": Participant.objects.count(),
        "assignments": Assignment.objects.count(),
        "done": Assignment.objects.filter(state="done").count(),
        "responses": PageResponse.objects.count(),
        "ratings": Rating.objects.count(),
        "studies": Study.objects.count(),
    }


@pytest.fixture
def started(client, generation_study):
    token = _start(client, generation_study, pid="HOSTILE")
    assert client.get(f"/study/p/{token}/").status_code == 200
    return token, _current(token)


def test_an_oversized_post_body_is_4xx_and_stores_nothing(client, started, settings):
    token, a = started
    before = counts()
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024  # the same check as the 2.5 MB default, smaller data
    big = {**full_answers(), "heard_before": "no" + "x" * (128 * 1024)}
    r = client.post(f"/study/p/{token}/page/{a.pk}/", big)
    assert r.status_code == 413  # refused on its Content-Length, before anything reads the body
    many = {**full_answers(), **{f"f{i}": "1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 10)}}
    r = client.post(f"/study/p/{token}/page/{a.pk}/", many)
    assert r.status_code in (400, 413)
    assert counts() == before
    assert Assignment.objects.get(pk=a.pk).state == "reserved"  # the page can still be answered
    assert client.post(f"/study/p/{token}/page/{a.pk}/", full_answers()).status_code == 302


def test_an_expired_reservation_taken_by_someone_else_is_409_and_stores_nothing(client, started, generation_study):
    token, a = started
    Study.objects.filter(pk=generation_study.pk).update(ratings_per_page=1)
    Assignment.objects.filter(pk=a.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    other = Client()
    other_token = _start(other, generation_study)
    # the newcomer's reservation expires the old one; with k=1 it may take that very page
    Participant.objects.filter(token=other_token).update(seed=0)
    assert other.get(f"/study/p/{other_token}/").status_code == 200
    assert Assignment.objects.get(pk=a.pk).state == "expired"
    before = counts()
    r = client.post(f"/study/p/{token}/page/{a.pk}/", full_answers())
    assert r.status_code == 409 and "ran out" in r.content.decode()
    assert counts() == before
    # the participant goes on with another page, not the lost one
    assert client.get(f"/study/p/{token}/").status_code == 200
    assert _current(token).pk != a.pk


@pytest.mark.parametrize("assignment_id", ["0", "99999999", "9223372036854775807", "99999999999999999999999"])
def test_a_guessed_or_huge_page_id_is_404_not_500(client, started, assignment_id):
    token, _a = started
    before = counts()
    r = client.post(f"/study/p/{token}/page/{assignment_id}/", full_answers())
    assert r.status_code == 404 and "not one of yours" in r.content.decode()
    assert counts() == before


@pytest.mark.parametrize("token", ["x" * 5000, "%00", "'; DROP TABLE listening_rating; --", "..%2F..%2Fetc%2Fpasswd"])
def test_malformed_participant_tokens_are_404(client, started, token):
    _token, a = started
    before = counts()
    assert client.get(f"/study/p/{token}/").status_code == 404
    assert client.post(f"/study/p/{token}/page/{a.pk}/", full_answers()).status_code == 404
    assert client.get(f"/study/p/{token}/clip/{a.media_key}/1").status_code == 404
    assert counts() == before


def test_a_participant_of_another_study_cannot_use_its_pages(client, started, world):
    """A valid token of study B with a page id of study A: refused, even though the token is genuine."""
    from listening import services

    _token, a = started
    other_study = services.design_generation_study(
        name="gen2", db_name="alpha", top_n=1, bottom_n=1, seed=3,
        study_settings=services.StudySettings(ratings_per_page=3, pages_per_participant=1))
    services.set_state(other_study, Study.State.OPEN)
    stranger = Client()
    stranger_token = _start(stranger, other_study)
    before = counts()
    assert stranger.post(f"/study/p/{stranger_token}/page/{a.pk}/", full_answers()).status_code == 404
    assert stranger.get(f"/study/p/{stranger_token}/clip/{a.media_key}/1").status_code == 404
    assert counts() == before


def test_wrong_methods_are_405(client, started):
    token, a = started
    before = counts()
    assert client.get(f"/study/p/{token}/page/{a.pk}/").status_code == 405
    assert client.put(f"/study/p/{token}/page/{a.pk}/").status_code == 405
    assert client.delete(f"/study/p/{token}/").status_code == 405
    assert client.post(f"/study/p/{token}/clip/{a.media_key}/1").status_code == 405
    assert counts() == before


def test_a_tampered_study_cookie_does_not_resume_anyone(started, generation_study):
    """The resume cookie is signed: a forged value (someone else's token) is ignored, no one is impersonated."""
    token, _a = started
    c = Client()
    c.cookies[f"mashlab_study_{generation_study.pk}"] = f"{token}:forged-signature"
    r = c.get(f"/study/s/{generation_study.public_token}/")
    assert r.status_code == 200 and token not in r.content.decode()  # the consent page, not a redirect to them


def test_multiple_values_and_garbage_in_fields_are_refused(client, started):
    token, a = started
    before = counts()
    for field, value in [("heard_before", "maybe"), ("clip1_overall", "3\x00"), ("clip1_overall", "٣"),
                         ("clip1_overall", "²"), ("clip1_overall", "1e0"), ("clip1_overall", "0x3")]:
        r = client.post(f"/study/p/{token}/page/{a.pk}/", {**full_answers(), field: value})
        assert r.status_code == 400, (field, value)  # non-ASCII digits: str.isdigit() is True, int() may fail
    r = client.post(f"/study/p/{token}/page/{a.pk}/", {**full_answers(), "plays1": "²", "plays2": "x" * 50})
    assert r.status_code == 302  # a garbled play counter is recorded as 0, never a 500
    assert PageResponse.objects.get().plays == [0, 0]
    before = counts()
    r = client.post(f"/study/p/{token}/questionnaire/", {"listens_daily": "always", "produces_music": "no"})
    assert r.status_code in (302, 400)  # already answered: a resubmit changes nothing either way
    assert Participant.objects.get(token=token).listens_daily is True
    assert counts() == before


def test_stimulus_files_are_not_reachable_without_login_or_by_path_tricks(client, started, settings, tmp_path):
    """Stimulus audio under /media/ needs a staff login; no /media/ path escapes MEDIA_ROOT, symlinks included."""
    _token, a = started
    stim = a.page.stimuli.first()
    r = client.get(f"/media/{stim.audio_path}")
    assert r.status_code == 302 and "/admin/login/" in r["Location"]
    assert client.get(f"/media/studies/{a.page.study.pk}/").status_code in (302, 404)

    user = get_user_model().objects.create_user("exp", password="pw-123456", is_staff=True)
    staff = Client()
    staff.force_login(user)
    assert staff.get(f"/media/{stim.audio_path}").status_code == 200
    secret = tmp_path / "secret.txt"
    secret.write_text("database password")
    link = settings.MEDIA_ROOT / "studies" / "link.txt"
    os.symlink(secret, link)
    os.symlink(tmp_path, settings.MEDIA_ROOT / "escape")
    for url in ["/media/studies/link.txt", "/media/escape/secret.txt", "/media/../secret.txt",
                "/media/studies/%2e%2e/%2e%2e/secret.txt", "/media/studies/..%2f..%2fsecret.txt",
                f"/media/{secret}", "/media//etc/passwd", "/media/studies/"]:
        r = staff.get(url)
        assert r.status_code == 404, url
        assert b"database password" not in b"".join(getattr(r, "streaming_content", [r.content]))


def test_stimulus_tokens_are_unguessable_and_reveal_nothing(started):
    tokens = list(Stimulus.objects.values_list("token", flat=True))
    assert len(set(tokens)) == len(tokens) and all(len(t) >= 20 for t in tokens)
    for stim in Stimulus.objects.all():
        # the file name is the random token alone: no candidate id, system or condition in it
        assert stim.audio_path.split("/")[-1] == f"{stim.token}.flac"


def test_admin_and_analysis_pages_need_a_login(client, generation_study):
    before = counts()
    for url in ["/admin/", "/admin/listening/rating/", "/admin/listening/participant/",
                f"/admin/listening/study/{generation_study.pk}/change/"]:
        r = client.get(url)
        assert r.status_code == 302 and "/admin/login/" in r["Location"], url
    for url in [f"/analysis/study/{generation_study.pk}/", f"/analysis/study/{generation_study.pk}/files/x.csv"]:
        r = client.get(url)
        assert r.status_code in (302, 403), url
        if r.status_code == 302:
            assert "/admin/login/" in r["Location"]
    r = client.post(f"/admin/listening/study/{generation_study.pk}/delete/", {"post": "yes"})
    assert r.status_code == 302 and "/admin/login/" in r["Location"]
    non_staff = get_user_model().objects.create_user("someone", password="pw-123456", is_staff=False)
    c = Client()
    c.force_login(non_staff)
    assert c.get(f"/study/{generation_study.pk}/ratings.csv").status_code == 403
    assert c.get("/admin/listening/rating/").status_code == 302
    assert counts() == before


@pytest.mark.parametrize("header", ["bytes=" + "9" * 4300 + "-", "bytes=0-" + "1" * 4300, "bytes=-" + "5" * 30,
                                    "bytes=abc", "bytes=5-2", "bytes=999999999-", "bytes=-"])
def test_a_hostile_range_header_is_416_not_500(client, started, header):
    token, a = started
    before = counts()
    r = client.get(f"/study/p/{token}/clip/{a.media_key}/1", HTTP_RANGE=header)
    assert r.status_code in (206, 416), header  # a suffix longer than the file is the whole file (RFC 9110)
    if r.status_code == 206:
        assert r["Content-Range"].startswith("bytes 0-")
    assert counts() == before


@pytest.mark.parametrize("path", ["%00", "1%00", "x%00.wav", "..%2F1"])
def test_nul_bytes_and_tricks_in_a_clip_path_are_404(client, started, path):
    token, a = started
    before = counts()
    assert client.get(f"/study/p/{token}/clip/{a.media_key}/{path}").status_code == 404
    assert client.get(f"/study/p/{token}/clip/{path}/1").status_code == 404
    assert counts() == before


def test_another_participants_clip_url_is_404(client, started, generation_study):
    token, a = started
    other = Client()
    other_token = _start(other, generation_study, pid="OTHER-CLIP")
    assert other.get(f"/study/p/{other_token}/clip/{a.media_key}/1").status_code == 404
    assert client.get(f"/study/p/{token}/clip/{a.media_key}/3").status_code == 404
