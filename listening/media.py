"""Serving a page's clips to its participant, and recording which bytes were served (Django glue).

The bytes come from `listening.delivery` (same length for both clips of a
page, a seeded dither per page and participant). Every byte range the server
hands out is merged into the page's `Delivery` row for that clip once it has
been yielded to the server, so "played to the end" is the server's own record:
a client that never fetched the audio cannot claim it.

Range headers follow the one rule of every file the app serves,
`config.ranged.parse_range`: one ``bytes=a-b`` or ``bytes=-n`` range gets 206;
a malformed, over-long or unsatisfiable one is 416; none, another unit or
several ranges get the whole file.
"""

from __future__ import annotations

import hashlib
import time

from django.db import IntegrityError, OperationalError, transaction
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone

from config.ranged import RangeNotSatisfiable, parse_range
from listening.delivery import (
    CONTENT_TYPE,
    DeliveryError,
    covers,
    merge_ranges,
    page_frames,
    read_range,
    source_info,
    wav_size,
)
from listening.flow import ParticipantError, _take_write_lock, retryable, stimulus_at, touch
from listening.models import Assignment, Delivery, Stimulus

CHUNK_BYTES = 64 * 1024


def _dither_seed(assignment: Assignment, position: int) -> int:
    digest = hashlib.sha256(f"{assignment.media_key}:{position}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def record_served(assignment: Assignment, stimulus: Stimulus, *, size: int, start: int, end: int) -> None:
    """Merge bytes start..end-1 of `stimulus` (served file of `size` bytes) into this page's delivery record."""
    if end <= start:
        return
    for attempt in range(10):
        try:
            with transaction.atomic():
                _take_write_lock()
                row, _ = Delivery.objects.select_for_update().get_or_create(
                    assignment=assignment, stimulus=stimulus,
                    defaults={"size": size, "ranges": [], "updated_at": timezone.now()})
                row.ranges = merge_ranges(row.ranges if row.size == size else [], start, end)
                row.size, row.requests = size, row.requests + 1
                row.complete = covers(row.ranges, size)
                row.updated_at = timezone.now()
                row.save()
                return
        except IntegrityError:
            continue
        except OperationalError as exc:
            if not retryable(exc) or attempt == 9:
                raise
            time.sleep(0.05 * (attempt + 1))


def serve_clip(request: HttpRequest, assignment: Assignment, clip: int) -> HttpResponseBase:
    """Clip `clip` (1 or 2, as shown) of a reserved page, as this page's WAV, with Range support."""
    stimuli = {s.position: s for s in Stimulus.objects.filter(page_id=assignment.page_id)}
    stim = stimuli.get(stimulus_at(assignment, clip))
    if stim is None or len(stimuli) != 2:
        raise ParticipantError("No such clip.", status=404)
    try:
        infos = {pos: source_info(s.audio_file) for pos, s in stimuli.items()}
        frames = page_frames(list(infos.values()))
    except DeliveryError:
        raise ParticipantError("This clip's audio is missing on the server.", status=404) from None
    info = infos[stim.position]
    size = wav_size(frames=frames, channels=info.channels)
    start, end, status = 0, size, 200
    try:
        asked = parse_range(request.headers.get("Range", ""), size)
    except RangeNotSatisfiable:
        return _unsatisfiable(size)
    if asked is not None:
        (start, end), status = asked, 206
    touch(assignment)
    seed = _dither_seed(assignment, stim.position)

    def body():
        sent = start
        try:
            while sent < end:
                stop = min(end, sent + CHUNK_BYTES)
                block = read_range(stim.audio_file, frames=frames, sample_rate=info.sample_rate,
                                   channels=info.channels, seed=seed, start=sent, end=stop)
                yield block
                sent = stop
        finally:
            record_served(assignment, stim, size=size, start=start, end=sent)

    response = StreamingHttpResponse(body(), status=status, content_type=CONTENT_TYPE)
    response["Content-Length"] = str(end - start)
    response["Accept-Ranges"] = "bytes"
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    response["Cache-Control"] = "private, no-store"
    return response


def _unsatisfiable(size: int) -> HttpResponse:
    response = HttpResponse(status=416)
    response["Content-Range"] = f"bytes */{size}"
    return response
