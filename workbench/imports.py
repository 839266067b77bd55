"""Audio already on the server: a folder under one of MASHLAB_IMPORT_ROOTS, nothing outside them.

A folder is named by its absolute path; ``..`` is refused outright, and the path (and every file found in
it) is resolved through its symlinks before it is compared with the roots, so a link cannot lead out.
"""

from __future__ import annotations

from pathlib import Path

import soundfile as sf
from django.conf import settings

from workbench.jobs import WorkbenchError

AUDIO_SUFFIXES = frozenset({f".{ext.lower()}" for ext in sf.available_formats()} | {".mp3", ".aif"})


def _inside_roots(path: Path) -> bool:
    return any(path == root or path.is_relative_to(root) for root in settings.MASHLAB_IMPORT_ROOTS)


def resolve_import_folder(raw: str) -> Path:
    """The real folder `raw` names, or WorkbenchError if it is relative, holds `..`, is missing, is not a
    folder, or lies (after its symlinks) outside every import root."""
    roots = settings.MASHLAB_IMPORT_ROOTS
    if not roots:
        raise WorkbenchError("no import folders are configured (set MASHLAB_IMPORT_ROOTS)")
    given = Path(raw.strip())
    if ".." in given.parts:
        raise WorkbenchError(f"{raw} holds '..'; name the folder by its plain absolute path")
    if not given.is_absolute():
        raise WorkbenchError(f"{raw} is not an absolute path")
    try:
        folder = given.resolve(strict=True)
    except (OSError, RuntimeError):
        raise WorkbenchError(f"{raw} does not exist") from None
    if not _inside_roots(folder):
        raise WorkbenchError(f"{raw} is outside the import folders ({', '.join(str(r) for r in roots)})")
    if not folder.is_dir():
        raise WorkbenchError(f"{raw} is not a folder")
    return folder


def audio_in_folder(folder: Path) -> list[Path]:
    """Audio files (by suffix) anywhere under `folder`, resolved, those whose real path stays inside the
    import roots; WorkbenchError when the folder is empty or holds none."""
    entries = sorted(folder.rglob("*"))
    if not entries:
        raise WorkbenchError(f"{folder} is empty")
    found = []
    for p in entries:
        real = p.resolve()
        if real.is_file() and real.suffix.lower() in AUDIO_SUFFIXES and _inside_roots(real):
            found.append(real)
    if not found:
        raise WorkbenchError(f"{folder} holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    return sorted(set(found))
