"""File-part upload handlers: refused everywhere, taken only where a view asks for them.

``FILE_UPLOAD_HANDLERS`` is ``RefuseFileUploadHandler`` alone, so a multipart file part on any form is a 400
(SuspiciousOperation) while the body is parsed, the CSRF check included, before any view runs. The one URL
that takes audio (``workbench:upload``) gets Django's temporary-file handler instead, set per request by
``config.middleware.RequestLimitsMiddleware`` before anything reads the body.
"""

from __future__ import annotations

from django.core.exceptions import TooManyFilesSent
from django.core.files.uploadhandler import FileUploadHandler

UPLOAD_VIEWS = frozenset({"workbench:upload"})


class RefuseFileUploadHandler(FileUploadHandler):
    """Refuse the first file part: no view but UPLOAD_VIEWS takes files."""

    def new_file(self, *args, **kwargs) -> None:
        raise TooManyFilesSent("This form takes no files.")

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:  # never reached
        return None

    def file_complete(self, file_size: int) -> None:
        return None
