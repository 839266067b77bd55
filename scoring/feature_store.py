"""Network inputs computed once per (candidate, feature recipe) and kept on disk.

Why: training at the paper's scale (51,507 examples of 3 roles × 1,292 frames
× 128 bins, 2 MB each in float32) cannot hold every feature in memory, and
train, score and evaluate would otherwise compute the same log-mels again.
Each entry is one candidate's crops under one :class:`Recipe`, a float32 array
of shape ``(n_crops, channels, n_frames, 128)``, stored as ``<key>.npy`` (read
memory-mapped) beside ``<key>.json`` (the recipe, the shape and a BLAKE2b
checksum of the array's bytes, plus one checksum per crop).

The key is content-addressed: SHA-256 over the candidate's identity (its
spec key and the SHA-256 of every source stem it reads) and the recipe, so a
re-ingested stem or another recipe never reads an old entry. An entry whose
files are missing, truncated, of another shape or recipe, or whose bytes do
not match their checksum is treated as absent and recomputed, never read as
garbage. Files are written to a temporary name and renamed into place, so
parallel writers (DataLoader workers, Dask workers) never expose half a file.

No Django here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from scoring.errors import ScoringError
from scoring.features import N_MELS, FeatureConfig

STORE_FORMAT = "mashlab-features/1"
KINDS = {"premix": 3, "postmix": 1}  # input kind → channels: the three role stems, or the one mix


@dataclass(frozen=True)
class Recipe:
    """How a candidate becomes network input: ``kind`` ('premix' stems | 'postmix' mix), log-mel config, crops.

    ``offsets_s``: start times (s from the mashup's start) of the crops, each
    ``config.crop_s`` seconds long.
    """

    kind: str
    config: FeatureConfig
    offsets_s: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ScoringError(f"feature kind must be one of {sorted(KINDS)}, got {self.kind!r}")
        if not self.offsets_s or min(self.offsets_s) < 0:
            raise ScoringError(f"crop offsets must be a non-empty list of start times ≥ 0 s, got {self.offsets_s}")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(n_crops, channels, n_frames, 128) of one entry."""
        return (len(self.offsets_s), KINDS[self.kind], self.config.n_frames, N_MELS)

    def to_dict(self) -> dict[str, Any]:
        return {"format": STORE_FORMAT, "kind": self.kind, "config": self.config.to_dict(),
                "offsets_s": [float(o) for o in self.offsets_s]}


def _digest(data: bytes | memoryview) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def crop_digests(array: np.ndarray) -> list[str]:
    """BLAKE2b of each crop's float32 bytes: names a training example independently of where it is kept."""
    a = np.ascontiguousarray(array, dtype=np.float32)
    return [_digest(a[k].tobytes()) for k in range(a.shape[0])]


class FeatureStore:
    """Content-addressed feature entries under ``root`` (safe for parallel readers and writers)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def key(self, identity: dict[str, Any], recipe: Recipe) -> str:
        """The entry name (SHA-256 hex) of a candidate ``identity`` (JSON-able) under ``recipe``."""
        record = {"identity": identity, "recipe": recipe.to_dict()}
        return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()

    def path_for(self, key: str) -> Path:
        """Where entry ``key``'s array lives (its metadata is the same path with ``.json``)."""
        return self.root / key[:2] / f"{key}.npy"

    def load(self, key: str, recipe: Recipe, *, verify: bool = True) -> np.ndarray | None:
        """The entry as a read-only memory map, or None when it is absent or not a sound entry of ``recipe``.

        ``verify`` checks the bytes against the stored checksum (reads the
        whole file); without it only the metadata, shape and file size are
        checked.
        """
        path = self.path_for(key)
        meta = self._meta(path)
        if meta is None or meta.get("recipe") != recipe.to_dict() or tuple(meta.get("shape", ())) != recipe.shape:
            return None
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if array.dtype != np.float32 or array.shape != recipe.shape:
            return None
        flat = memoryview(np.ascontiguousarray(array)).cast("B")  # type: ignore[arg-type]  # ndarray is a buffer
        if verify and _digest(flat) != meta.get("blake2b"):
            return None
        return array

    def crop_digests_of(self, key: str) -> list[str]:
        """Per-crop checksums recorded for entry ``key`` (see :func:`crop_digests`)."""
        meta = self._meta(self.path_for(key))
        if meta is None:
            raise ScoringError(f"feature entry {key} is missing")
        return list(meta["crops"])

    def save(self, key: str, recipe: Recipe, array: np.ndarray) -> Path:
        """Store ``array`` (of ``recipe.shape``) as entry ``key`` atomically; returns the array's path."""
        a = np.ascontiguousarray(array, dtype=np.float32)
        if a.shape != recipe.shape:
            raise ScoringError(f"feature entry must have shape {recipe.shape}, got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ScoringError("features contain NaN or infinite values")
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"recipe": recipe.to_dict(), "shape": list(a.shape), "blake2b": _digest(a.tobytes()),
                "crops": crop_digests(a)}
        self._atomic(path, lambda f: np.save(f, a, allow_pickle=False))
        self._atomic(path.with_suffix(".json"), lambda f: f.write(json.dumps(meta).encode()))
        return path

    def get_or_compute(self, key: str, recipe: Recipe, compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, bool]:
        """(entry, computed?): the stored entry, or ``compute()`` stored and returned."""
        found = self.load(key, recipe)
        if found is not None:
            return found, False
        array = np.asarray(compute(), dtype=np.float32)
        self.save(key, recipe, array)
        return array, True

    def entries(self) -> Iterator[Path]:
        """Every entry's array file."""
        if self.root.is_dir():
            yield from sorted(self.root.glob("*/*.npy"))

    def size_bytes(self) -> int:
        """Bytes on disk of every file in the store (arrays and metadata)."""
        if not self.root.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def clear(self) -> int:
        """Remove every entry; returns how many there were."""
        n = sum(1 for _ in self.entries())
        if self.root.is_dir():
            shutil.rmtree(self.root)
        return n

    @staticmethod
    def _meta(path: Path) -> dict[str, Any] | None:
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) and "blake2b" in meta and "crops" in meta else None

    @staticmethod
    def _atomic(path: Path, write: Callable[[Any], Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
