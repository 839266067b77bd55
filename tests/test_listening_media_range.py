"""A participant's clip answers Range headers by the app's one rule (`config.ranged.parse_range`), like /media/."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from config.ranged import RangeNotSatisfiable, parse_range
from tests.test_listening_http import _current, _start

pytest_plugins = ["tests.test_listening_world"]  # its fixtures: world, generation_study

HEADERS = ["", "bytes=0-99", "bytes=-10", "bytes=100-", "bytes=0-99999999999", "bytes=5-2", "bytes=-",
           "bytes=abc", "items=0-5", "bytes=0-1,5-6", "bytes=" + "9" * 4300 + "-", "BYTES=0-3"]


def expected_status(header: str, size: int) -> int:
    try:
        return 200 if parse_range(header, size) is None else 206
    except RangeNotSatisfiable:
        return 416


@pytest.mark.parametrize("header", HEADERS)
def test_a_clip_and_a_media_file_answer_a_range_header_alike(client, generation_study, settings, header):
    token = _start(client, generation_study, pid="RANGE")
    assert client.get(f"/study/p/{token}/").status_code == 200
    url = f"/study/p/{token}/clip/{_current(token).media_key}/1"
    whole = b"".join(client.get(url).streaming_content)
    r = client.get(url, HTTP_RANGE=header)
    assert r.status_code == expected_status(header, len(whole)), header
    if r.status_code == 206:
        start, end = parse_range(header, len(whole))
        assert r["Content-Range"] == f"bytes {start}-{end - 1}/{len(whole)}"
        assert b"".join(r.streaming_content) == whole[start:end]
    elif r.status_code == 416:
        assert r["Content-Range"] == f"bytes */{len(whole)}"
    # the experimenter's /media/ view, on a file of the same size, answers with the same status
    path = settings.MEDIA_ROOT / "range" / "same.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(whole)
    client.force_login(get_user_model().objects.create_user("exp", password="pw-123456", is_staff=True))
    assert client.get("/media/range/same.wav", HTTP_RANGE=header).status_code == r.status_code, header
