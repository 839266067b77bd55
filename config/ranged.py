"""File responses that honour HTTP Range requests, so audio players can seek.

One rule for every file the app serves (RFC 9110 §14): a single
``bytes=first-last`` or ``bytes=-suffix`` range gets 206 with those bytes; a
range that cannot be met, or that is malformed, gets 416 with
``Content-Range: bytes */size``; no Range header, another unit, or several
ranges get the whole file (200). Numbers longer than 18 digits are refused
(416) before Python parses them: a 4,300-digit header used to reach
``int()``, which refuses strings that long, and answered 500.
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse

MAX_DIGITS = 18  # 10**18 bytes is an exabyte: no file here is larger, and int() parses 18 digits instantly
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
CHUNK = 64 * 1024


class RangeNotSatisfiable(Exception):
    """The Range header asks for bytes the file does not have, or says it unparseably (answered 416)."""


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The byte range ``[start, end)`` a Range header asks of a ``size``-byte file; None for the whole file.

    Raises RangeNotSatisfiable for a malformed or unsatisfiable ``bytes=``
    range (including any number over :data:`MAX_DIGITS` digits). A suffix
    longer than the file is the whole file, a last byte past the end is the
    end (RFC 9110 §14.1.2).
    """
    header = header.strip()
    if not header or not header.lower().startswith("bytes=") or "," in header:
        return None
    match = _RANGE.fullmatch(header[:6].lower() + header[6:].strip())
    if not match or match.groups() == ("", "") or any(len(g) > MAX_DIGITS for g in match.groups()):
        raise RangeNotSatisfiable(header[:40])
    first, last = match.groups()
    if first == "":  # suffix range: the last N bytes
        start, end = max(0, size - int(last)), size
    else:
        start = int(first)
        end = min(int(last) + 1, size) if last else size
    if start >= size or end <= start:
        raise RangeNotSatisfiable(header[:40])
    return start, end


def safe_path(root: Path, relative: str) -> Path:
    """`root/relative`, refusing anything that resolves outside `root` or names no file (404: reveal nothing).

    A NUL byte (``%00`` in a URL) is refused before the file system sees it
    (``os.stat`` raises ValueError on one, which answered 500).
    """
    if "\x00" in relative:
        raise Http404("no such file")
    root = root.resolve()
    try:
        path = (root / relative).resolve()
    except (OSError, ValueError):
        raise Http404("no such file") from None
    if root not in path.parents or not path.is_file():
        raise Http404("no such file")
    return path


def _chunks(path: Path, start: int, length: int):
    with open(path, "rb") as fh:
        fh.seek(start)
        left = length
        while left > 0:
            block = fh.read(min(CHUNK, left))
            if not block:
                break
            left -= len(block)
            yield block


def unsatisfiable(size: int) -> HttpResponse:
    """416 with the ``Content-Range: bytes */size`` the RFC asks for."""
    response = HttpResponse(status=416)
    response["Content-Range"] = f"bytes */{size}"
    return response


def ranged_file_response(request: HttpRequest, path: Path, *,
                         content_type: str | None = None) -> HttpResponse | StreamingHttpResponse:
    """200 with the whole file, or 206 with the requested byte range, or 416 when it cannot be met."""
    size = path.stat().st_size
    ctype = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    try:
        wanted = parse_range(request.headers.get("Range", ""), size)
    except RangeNotSatisfiable:
        return unsatisfiable(size)
    if wanted is None:
        whole = FileResponse(open(path, "rb"), content_type=ctype)
        whole["Accept-Ranges"] = "bytes"
        return whole
    start, end = wanted
    length = end - start
    response = StreamingHttpResponse(_chunks(path, start, length), status=206, content_type=ctype)
    response["Content-Length"] = str(length)
    response["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    response["Accept-Ranges"] = "bytes"
    return response
