"""Audio brought in through the browser: check every uploaded file, then store all of them or none.

Files land under ``MEDIA_ROOT/uploads/<db>/`` with a safe name (the upload's stem as a slug) and a
numbered suffix when that name is taken, so two uploads never overwrite each other.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import soundfile as sf
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils.text import slugify

from workbench.jobs import WorkbenchError


def upload_folder(db_name: str) -> Path:
    """Where a MashupDB's uploaded audio waits for (and stays after) ingest."""
    return Path(settings.MEDIA_ROOT) / "uploads" / db_name


def check_audio(files: Sequence[UploadedFile]) -> None:
    """Raise WorkbenchError naming the first file that is empty, over MASHLAB_UPLOAD_MAX_FILE_BYTES, or not
    audio soundfile can read (judged by its content, not its extension)."""
    if not files:
        raise WorkbenchError("choose at least one audio file")
    limit = settings.MASHLAB_UPLOAD_MAX_FILE_BYTES
    for f in files:
        if f.size is None or f.size > limit:
            raise WorkbenchError(f"{f.name} is larger than the limit of {limit} bytes; nothing was stored")
        try:
            f.seek(0)
            info = sf.info(f)
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            raise WorkbenchError(f"{f.name} is not audio that can be read ({exc}); nothing was stored") from exc
        finally:
            f.seek(0)
        if info.frames <= 0:
            raise WorkbenchError(f"{f.name} holds no audio; nothing was stored")


def _free_name(folder: Path, original: str, taken: set[str]) -> str:
    path = Path(Path(original).name)  # no folder part, whatever the browser sent
    base, suffix = slugify(path.stem) or "audio", path.suffix.lower()
    suffix = suffix if suffix[1:].isalnum() else ""
    name, n = f"{base}{suffix}", 1
    while name in taken or (folder / name).exists():
        n += 1
        name = f"{base}-{n}{suffix}"
    taken.add(name)
    return name


def store_uploads(files: Sequence[UploadedFile], *, db_name: str) -> list[Path]:
    """Check every file (check_audio), then copy all into upload_folder(db_name); on any failure remove the
    ones already written and re-raise, so nothing or everything is stored. Returns the stored paths."""
    check_audio(files)
    folder = upload_folder(db_name)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    taken: set[str] = set()
    try:
        for f in files:
            target = folder / _free_name(folder, f.name or "audio", taken)
            with target.open("xb") as out:
                written.append(target)
                f.seek(0)
                shutil.copyfileobj(f, out)
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return written


def stored_uploads(db_name: str) -> list[Path]:
    """The files waiting in a MashupDB's upload folder, by name."""
    folder = upload_folder(db_name)
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
