"""Request limits checked before any view, or Django's own body parsing, sees a request.

* A NUL byte in the path (``%00``) is 404, in the query string 400: no file
  name, token or database value may hold one (``os.stat`` raises ValueError
  on it and PostgreSQL refuses it, both answered 500).
* A body larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (its Content-Length) is
  413 before anything reads it; a Content-Length that is not a number is 400.
  The upload page (``config.uploads.UPLOAD_VIEWS``, matched by URL name) is
  the one exception: its limit is ``DATA_UPLOAD_MAX_NUMBER_FILES`` files of
  ``MASHLAB_UPLOAD_MAX_FILE_BYTES`` each plus the plain limit.
* File parts: ``FILE_UPLOAD_HANDLERS`` refuses them with 400 wherever a body
  is parsed (the CSRF check included), so a 30 MB part on a form is never
  stored; only on the upload page are the temporary-file handlers set.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from config.uploads import UPLOAD_VIEWS


def _takes_files(path_info: str) -> bool:
    try:
        return resolve(path_info).view_name in UPLOAD_VIEWS
    except Resolver404:
        return False


class RequestLimitsMiddleware:
    """First in MIDDLEWARE: refuse NUL bytes and oversized bodies with a 4xx, touching nothing."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path_info:
            raise Http404("no such page")
        if b"\x00" in unquote_to_bytes(request.META.get("QUERY_STRING", "")):
            return HttpResponse("A NUL byte is not allowed in the address.", status=400, content_type="text/plain")
        raw = request.META.get("CONTENT_LENGTH") or "0"
        if not raw.isdigit() or len(raw) > 18:
            return HttpResponse("Bad Content-Length.", status=400, content_type="text/plain")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if _takes_files(request.path_info):
            if limit is not None:  # bytes: every file at its largest, plus the form's plain fields
                limit += settings.DATA_UPLOAD_MAX_NUMBER_FILES * settings.MASHLAB_UPLOAD_MAX_FILE_BYTES
            request.upload_handlers = [TemporaryFileUploadHandler(request)]
        if limit is not None and int(raw) > limit:
            return HttpResponse(f"This request is too large (at most {limit} bytes).", status=413,
                                content_type="text/plain")
        return self.get_response(request)
