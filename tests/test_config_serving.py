"""Settings readers, Range responses for seeking, and the experimenter pages' access rules."""

import pytest
from django.contrib.auth import get_user_model

from config.env import ConfigError, env_bool, env_int, env_list


def test_env_readers_parse_and_fail_loudly(monkeypatch):
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_INT", "12")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert env_bool("X_BOOL", False) is True
    assert env_int("X_INT", 0) == 12
    assert env_list("X_LIST", []) == ["a", "b", "c"]
    assert env_bool("X_MISSING", True) is True
    monkeypatch.setenv("X_BOOL", "perhaps")
    with pytest.raises(ConfigError, match="X_BOOL"):
        env_bool("X_BOOL", False)
    monkeypatch.setenv("X_INT", "twelve")
    with pytest.raises(ConfigError, match="X_INT"):
        env_int("X_INT", 0)


@pytest.fixture
def staff_client(client, db):
    user = get_user_model().objects.create_user("exp", password="pw-123456", is_staff=True)
    client.force_login(user)
    return client


@pytest.fixture
def media_file(settings):
    path = settings.MEDIA_ROOT / "a" / "x.wav"
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(range(256)) * 4)  # 1024 bytes
    return path


def test_range_request_returns_the_exact_bytes(staff_client, media_file):
    whole = media_file.read_bytes()
    r = staff_client.get("/media/a/x.wav", HTTP_RANGE="bytes=100-199")
    assert r.status_code == 206
    assert r["Content-Range"] == "bytes 100-199/1024"
    assert b"".join(r.streaming_content) == whole[100:200]
    r = staff_client.get("/media/a/x.wav", HTTP_RANGE="bytes=-24")
    assert b"".join(r.streaming_content) == whole[-24:]
    r = staff_client.get("/media/a/x.wav", HTTP_RANGE="bytes=1000-")
    assert b"".join(r.streaming_content) == whole[1000:]


def test_whole_file_advertises_ranges_and_bad_range_is_416(staff_client, media_file):
    r = staff_client.get("/media/a/x.wav")
    assert r.status_code == 200 and r["Accept-Ranges"] == "bytes"
    assert b"".join(r.streaming_content) == media_file.read_bytes()
    assert staff_client.get("/media/a/x.wav", HTTP_RANGE="bytes=5000-").status_code == 416


def test_media_outside_media_root_is_not_served(staff_client, media_file, settings):
    outside = settings.MEDIA_ROOT.parent / "secret.txt"
    outside.write_text("secret")
    assert staff_client.get("/media/../secret.txt").status_code == 404
    assert staff_client.get("/media/a/%2e%2e/%2e%2e/secret.txt").status_code == 404


def test_library_pages_need_login(client, db, media_file):
    for url in ["/", "/db/demo/", "/media/a/x.wav"]:
        r = client.get(url)
        assert r.status_code == 302 and "/admin/login/" in r["Location"]
