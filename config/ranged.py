"""File responses that honour HTTP Range requests, so audio players can seek."""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 64 * 1024


def safe_path(root: Path, relative: str) -> Path:
    """`root/relative`, refusing anything that resolves outside `root` (404, not 403: reveal nothing)."""
    root = root.resolve()
    path = (root / relative).resolve()
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


def ranged_file_response(request: HttpRequest, path: Path, *, content_type: str | None = None) -> HttpResponse:
    """200 with the whole file, or 206 with the requested byte range, or 416 when it cannot be met."""
    size = path.stat().st_size
    ctype = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    header = request.headers.get("Range", "").strip()
    match = _RANGE.match(header) if header else None
    if not match:
        response = FileResponse(open(path, "rb"), content_type=ctype)
        response["Accept-Ranges"] = "bytes"
        return response
    first, last = match.groups()
    if first == "":  # suffix range: the last N bytes
        length = min(int(last or 0), size)
        start, end = size - length, size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    length = end - start + 1
    response = StreamingHttpResponse(_chunks(path, start, length), status=206, content_type=ctype)
    response["Content-Length"] = str(length)
    response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Accept-Ranges"] = "bytes"
    return response
