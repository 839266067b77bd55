"""Training examples as a ``torch.utils.data.Dataset``: held in memory, or streamed from the feature store.

Why: the training loop (:mod:`scoring.training`) reads batches through a
``DataLoader``, so the same loop trains on a small in-memory set (tests,
synthetic data) and on a collection whose features do not fit in memory
(each batch read from memory-mapped entries of
:class:`scoring.feature_store.FeatureStore`, by worker processes). Both kinds
name each example by the BLAKE2b checksum of its float32 bytes, so the same
data gives the same data hash, the same split and the same weights whichever
way it is held.

Example ``i`` is ``(features (C, T, 128) float32 tensor, label int64 tensor)``;
``labels`` (N,) are 1 positive, 0 negative, −1 unlabeled; ``groups`` (N,) the
vocal seed of each example. No Django here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from scoring.errors import ScoringError
from scoring.feature_store import crop_digests

OPEN_ENTRIES = 64  # memory maps kept open per process by StoredExamples


class Examples(Dataset):
    """Labelled examples with per-example checksums; subclasses say where the features live."""

    labels: np.ndarray
    groups: np.ndarray
    digests: list[str]
    example_shape: tuple[int, int, int]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def features(self, i: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.array(self.features(int(i)), dtype=np.float32))
        return x, torch.tensor(int(self.labels[i]), dtype=torch.long)

    def _set_targets(self, labels: Sequence[int] | np.ndarray, groups: Sequence | np.ndarray, n: int) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        self.groups = np.asarray(groups)
        if self.labels.shape != (n,):
            raise ScoringError(f"labels must be (N,) with N={n}, got {self.labels.shape}")
        if self.groups.shape != (n,):
            raise ScoringError(f"groups must be (N,) with N={n}, got {self.groups.shape}")


class ArrayExamples(Examples):
    """Examples held in one array ``features`` (N, C, T, 128)."""

    def __init__(self, features: np.ndarray | torch.Tensor, labels: Sequence[int] | np.ndarray,
                 groups: Sequence | np.ndarray) -> None:
        x = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
        self.array = np.ascontiguousarray(x, dtype=np.float32)
        if self.array.ndim != 4:
            raise ScoringError(f"features must be (N, C, T, 128), got {self.array.shape}")
        self._set_targets(labels, groups, self.array.shape[0])
        self.example_shape = tuple(self.array.shape[1:])
        self.digests = crop_digests(self.array)

    def features(self, i: int) -> np.ndarray:
        return self.array[i]


class StoredExamples(Examples):
    """Examples read from feature-store entries: ``entries[j]`` holds the crops of one candidate.

    Example ``i`` is crop ``i % n_crops`` of entry ``i // n_crops``: candidate-
    major, as :func:`scoring.services.candidate_features` stacks them.
    ``digests`` come from the entries' metadata (no feature is read here).
    """

    def __init__(self, entries: Sequence[Path], *, n_crops: int, example_shape: tuple[int, int, int],
                 labels: Sequence[int] | np.ndarray, groups: Sequence | np.ndarray,
                 digests: Sequence[str]) -> None:
        if n_crops < 1:
            raise ScoringError(f"n_crops must be ≥ 1, got {n_crops}")
        self.entries = [str(p) for p in entries]
        self.n_crops = int(n_crops)
        self.example_shape = tuple(example_shape)  # type: ignore[assignment]
        self._set_targets(labels, groups, len(self.entries) * self.n_crops)
        self.digests = list(digests)
        if len(self.digests) != len(self):
            raise ScoringError(f"{len(self.digests)} checksums for {len(self)} examples")

    def features(self, i: int) -> np.ndarray:
        entry, crop = divmod(i, self.n_crops)
        return self._open(entry)[crop]

    def _open(self, entry: int) -> np.ndarray:
        """Entry ``entry`` memory-mapped; the last few stay open, so its other crops cost no new open."""
        cache = self.__dict__.setdefault("_maps", {})  # per process: DataLoader workers get their own copy
        if entry in cache:
            return cache[entry]
        try:
            array = np.load(self.entries[entry], mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ScoringError(f"feature entry {self.entries[entry]} cannot be read: {exc}") from exc
        if array.shape[1:] != self.example_shape or array.shape[0] != self.n_crops:
            raise ScoringError(f"feature entry {self.entries[entry]} has shape {array.shape}, expected "
                               f"({self.n_crops}, {', '.join(map(str, self.example_shape))})")
        if len(cache) >= OPEN_ENTRIES:
            cache.pop(next(iter(cache)))
        cache[entry] = array
        return array
