"""Hostile HTTP on the project-wide layer (config/): Range headers, NUL bytes, request bodies. Each is 4xx, never 500."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from config.ranged import MAX_DIGITS, RangeNotSatisfiable, parse_range
from listening.models import Participant

pytest_plugins = ["tests.test_listening_world"]  # fixtures: world, generation_study

SIZE = 1024


@pytest.fixture
def staff(db):
    c = Client(raise_request_exception=False)  # a 500 is an answer here, not a test crash
    c.force_login(get_user_model().objects.create_user("exp", password="pw-123456", is_staff=True))
    return c


@pytest.fixture
def media_file(settings):
    path = settings.MEDIA_ROOT / "a" / "x.wav"
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(range(256)) * 4)  # SIZE bytes
    return path


# --------------------------------------------------------------------------- Range


@pytest.mark.parametrize("header, expected", [
    ("bytes=0-99", (0, 100)),
    ("bytes=1000-", (1000, SIZE)),
    ("bytes=-24", (SIZE - 24, SIZE)),
    ("bytes=-5000", (0, SIZE)),  # a suffix longer than the file is the whole file (RFC 9110 §14.1.2)
    ("bytes=10-99999", (10, SIZE)),  # a last byte past the end is the end
    ("bytes=0-" + "9" * MAX_DIGITS, (0, SIZE)),
    ("", None), ("items=0-5", None), ("bytes=0-1,5-9", None),  # no range, another unit, several ranges
])
def test_parse_range_follows_rfc_9110(header, expected):
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize("header", [
    "bytes=" + "9" * 4300 + "-", "bytes=0-" + "1" * 4300, "bytes=-" + "5" * 4301, "bytes=" + "1" * (MAX_DIGITS + 1) + "-",
    "bytes=5000-", "bytes=5-2", "bytes=-", "bytes=abc", "bytes=٣-", "bytes=-0",
])
def test_parse_range_refuses_huge_malformed_and_unsatisfiable_ranges(header):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, SIZE)


@pytest.mark.parametrize("header", ["bytes=" + "9" * 4300 + "-", "bytes=0-" + "1" * 4300, "bytes=-" + "5" * 4300])
def test_a_range_of_4300_digits_is_416_on_every_file_view(staff, media_file, header):
    r = staff.get("/media/a/x.wav", HTTP_RANGE=header)
    assert r.status_code == 416 and r["Content-Range"] == f"bytes */{SIZE}"
    assert staff.get("/analysis/plotly-x.min.js", HTTP_RANGE=header).status_code == 404  # wrong version, not 500


def test_a_plotly_js_range_of_4300_digits_is_416(staff):
    import plotly

    r = staff.get(f"/analysis/plotly-{plotly.__version__}.min.js", HTTP_RANGE="bytes=" + "7" * 4300 + "-")
    assert r.status_code == 416


# --------------------------------------------------------------------------- NUL bytes


@pytest.mark.parametrize("url", ["/media/a%00", "/media/a/x.wav%00", "/media/%00/x.wav", "/db/a%00b/",
                                 "/analysis/study/1/files/x%00", "/study/p/%00/", "/systems/a%00/"])
def test_a_nul_byte_in_a_path_is_404(staff, media_file, url):
    assert staff.get(url).status_code == 404


def test_a_nul_byte_in_the_query_string_is_400_and_creates_nobody(generation_study):
    c = Client(raise_request_exception=False)
    r = c.get(f"/study/s/{generation_study.public_token}/?PROLIFIC_PID=a%00b")
    assert r.status_code == 400
    r = c.post(f"/study/s/{generation_study.public_token}/?PROLIFIC_PID=a%00b", {"consent": "on"})
    assert r.status_code == 400 and not Participant.objects.exists()
    assert c.get(f"/study/s/{generation_study.public_token}/?PROLIFIC_PID=ab").status_code == 200


# --------------------------------------------------------------------------- bodies


def test_a_30_mb_multipart_part_on_the_consent_form_is_refused(generation_study):
    from django.core.files.uploadedfile import SimpleUploadedFile

    c = Client(raise_request_exception=False)
    url = f"/study/s/{generation_study.public_token}/"
    big = SimpleUploadedFile("x.bin", b"\0" * (30 * 1024 * 1024))
    r = c.post(url, {"consent": "on", "blob": big})
    assert r.status_code == 413
    r = c.post(url, {"consent": "on", "blob": "x" * (30 * 1024 * 1024)})  # a plain field as big
    assert r.status_code == 413
    assert not Participant.objects.exists()


def test_a_file_part_is_refused_where_no_upload_is_expected(staff, generation_study, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    small = SimpleUploadedFile("x.bin", b"12345")
    anonymous = Client(raise_request_exception=False)
    r = anonymous.post("/admin/login/", {"username": "exp", "password": "pw-123456", "f": small})
    assert r.status_code == 400  # refused while the CSRF check parses the body, before any view runs
    small.seek(0)
    r = staff.post(f"/study/{generation_study.pk}/state/", {"state": "closed", "f": small})
    assert r.status_code == 400
    generation_study.refresh_from_db()
    assert generation_study.state == "open"


def test_a_body_over_the_limit_is_413_on_staff_forms_too(staff, generation_study, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    r = staff.post(f"/study/{generation_study.pk}/state/", {"state": "closed", "pad": "x" * (65 * 1024)})
    assert r.status_code == 413
    generation_study.refresh_from_db()
    assert generation_study.state == "open"


@pytest.mark.parametrize("length", ["9" * 4300, "12abc", "-1"])
def test_a_bad_content_length_is_400(db, length):
    c = Client(raise_request_exception=False)
    r = c.generic("POST", "/admin/login/", b"a=1", content_type="application/x-www-form-urlencoded",
                  CONTENT_LENGTH=length)
    assert r.status_code == 400
