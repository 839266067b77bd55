"""A disk cache of adjusted stems, so that candidates sharing a stem do not stretch it again.

An entry is the stem file's samples at `sr` Hz (stereo, or mono = channel
mean), pitch-shifted and time-stretched by Rubber Band. It is keyed by:

* the SHA-256 of the source file's **content** (not its path: a re-written
  file gets a new entry, a copied one shares it);
* shift (semitones), ratio (tempo factor, exact float repr), sr, mono;
* the Rubber Band engine and tool version and this module's format version.

The downbeat offset is deliberately *not* part of the key, although issue 3
lists it: placing a stem at its offset is a slice of the cached array that
costs microseconds (see :mod:`generation.render`), whereas keying on it would
stretch the stem again for every random offset of the unmatched-tempo
conditions and share nothing among them.

Entries are ``.npy`` files (float32, shape (channels, n)) under
``root/ab/abcdef….npy``. Writers put the array in a temporary file in the same
folder and publish it with one ``os.replace``, so parallel workers (threads or
processes, one cache folder) never see a partial entry; two workers that miss
the same entry at once both compute it and the identical result is published
twice, harmlessly. No Django here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generation.audio import load_audio
from generation.errors import AudioError, StemCacheError
from generation.stretch import ENGINES, adjust, rubberband_version

__all__ = ["CACHE_VERSION", "CacheStats", "StemCache", "StemCacheError", "file_sha256"]

CACHE_VERSION = 1
_MIN_STEM_S = 0.1

_hash_lock = threading.Lock()
_hash_memo: dict[tuple[str, int, int], str] = {}



@dataclass(frozen=True)
class CacheStats:
    """Lookups answered from disk (hits) and computed (misses) by one StemCache object."""

    hits: int
    misses: int

    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses); 0.0 before any lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, memoised per (path, size, mtime) within the process."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise StemCacheError(f"{path}: cannot read stem file: {exc.strerror or exc}") from exc
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        if memo_key in _hash_memo:
            return _hash_memo[memo_key]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    with _hash_lock:
        _hash_memo[memo_key] = value
    return value


@functools.lru_cache(maxsize=1)
def _tool_version() -> str:
    return rubberband_version()


class StemCache:
    """Adjusted stems on disk under `root`, with hit and miss counters.

    `engine` is the Rubber Band engine used for misses ('R2' or 'R3'); it is
    part of every key, so caches of both engines can share a folder.
    """

    def __init__(self, root: Path, *, engine: str = "R2") -> None:
        if engine not in ENGINES:
            raise StemCacheError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        self.root = Path(root)
        self.engine = engine
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    # -- counters ---------------------------------------------------------
    @property
    def stats(self) -> CacheStats:
        """Hits and misses of this object since it was made or :meth:`reset_stats`."""
        with self._lock:
            return CacheStats(self._hits, self._misses)

    def reset_stats(self) -> None:
        """Set the hit and miss counters to zero (entries stay)."""
        with self._lock:
            self._hits = self._misses = 0

    # -- keys -------------------------------------------------------------
    def key(self, source: Path, *, sr: int, shift_semitones: float, ratio: float, mono: bool) -> str:
        """The entry name (SHA-256 hex) for adjusting `source` this way."""
        record = {
            "version": CACHE_VERSION,
            "source_sha256": file_sha256(source),
            "sr": int(sr),
            "shift_semitones": repr(float(shift_semitones)),
            "ratio": repr(float(ratio)),
            "mono": bool(mono),
            "engine": self.engine,
            "rubberband": _tool_version(),
        }
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()

    def path_for(self, key: str) -> Path:
        """Where the entry `key` lives."""
        return self.root / key[:2] / f"{key}.npy"

    # -- lookups ----------------------------------------------------------
    def get(self, source: Path, *, sr: int, shift_semitones: float = 0.0, ratio: float = 1.0, mono: bool = False) -> np.ndarray:
        """The stem at `source`, at `sr` Hz, shifted by `shift_semitones` and stretched by tempo factor `ratio`.

        Returns float32 of shape (2, n) or, with `mono`, (1, n), where
        n = round(source samples at `sr` / ratio). Reads the entry when it
        exists (a hit), otherwise loads, adjusts and publishes it (a miss).
        Raises StemCacheError for an unreadable source.
        """
        if int(sr) != sr or sr <= 0:
            raise StemCacheError(f"sr must be a positive integer, got {sr!r}")
        key = self.key(source, sr=sr, shift_semitones=shift_semitones, ratio=ratio, mono=mono)
        path = self.path_for(key)
        if path.exists():
            try:
                audio = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                audio = None  # unreadable (e.g. a disk-full accident): compute it again
            if audio is not None:
                with self._lock:
                    self._hits += 1
                return audio
        audio = self._compute(source, sr=int(sr), shift_semitones=shift_semitones, ratio=ratio, mono=mono)
        self._publish(path, audio)
        with self._lock:
            self._misses += 1
        return audio

    def _compute(self, source: Path, *, sr: int, shift_semitones: float, ratio: float, mono: bool) -> np.ndarray:
        try:
            audio = load_audio(Path(source), sr=sr, min_seconds=_MIN_STEM_S, max_seconds=None, allow_silent=True)
        except AudioError as exc:
            raise StemCacheError(str(exc)) from exc
        if mono:
            audio = audio.mean(axis=0, keepdims=True, dtype=np.float32)
        return adjust(audio, sr=sr, shift_semitones=shift_semitones, ratio=ratio, engine=self.engine)

    def _publish(self, path: Path, audio: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem[:16]}.", suffix=".part")
        try:
            os.fchmod(fd, 0o644)
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, np.ascontiguousarray(audio, dtype=np.float32), allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- housekeeping -----------------------------------------------------
    def entries(self) -> list[Path]:
        """The published entries, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(self.root.glob("??/*.npy"))

    def clear(self) -> int:
        """Remove every entry (and stray temporary file); return how many entries were removed."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for folder in sorted(self.root.glob("??")):
            if not folder.is_dir():
                continue
            for item in folder.iterdir():
                if item.suffix in (".npy", ".part") and item.is_file():
                    removed += item.suffix == ".npy"
                    item.unlink(missing_ok=True)
            try:
                folder.rmdir()
            except OSError:
                pass  # another worker just wrote into it
        return removed
