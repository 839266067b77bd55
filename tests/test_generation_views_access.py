"""The experimenter's MashupDB pages and MEDIA_ROOT files are staff only, like the rest of the experimenter side."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from generation.models import MashupDB

pytestmark = pytest.mark.django_db

PAGES = ["/", "/db/lib/", "/db/lib/candidates/", "/media/a/x.wav"]


@pytest.fixture
def world(settings):
    path = settings.MEDIA_ROOT / "a" / "x.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + bytes(1020))
    MashupDB.objects.create(name="lib")
    return path


@pytest.mark.parametrize("url", PAGES)
def test_a_logged_in_non_staff_user_is_sent_to_the_login_page(client, world, url):
    client.force_login(get_user_model().objects.create_user("rater", password="pw-123456", is_staff=False))
    r = client.get(url)
    assert r.status_code == 302 and "/admin/login/" in r["Location"], (url, r.status_code)


@pytest.mark.parametrize("url", PAGES)
def test_an_anonymous_visitor_is_sent_to_the_login_page(client, world, url):
    r = client.get(url)
    assert r.status_code == 302 and "/admin/login/" in r["Location"]


def test_staff_get_the_media_file_and_the_pages(client, world):
    client.force_login(get_user_model().objects.create_user("exp", password="pw-123456", is_staff=True))
    r = client.get("/media/a/x.wav")
    assert r.status_code == 200
    assert b"".join(r.streaming_content) == world.read_bytes()
    for url in PAGES[:3]:
        assert client.get(url).status_code == 200, url
