"""Worker side of scoring: a batch of candidates as plain data → scores, with the network loaded once per process.

`scoring.services` turns stored rows into a :class:`SystemRef` and
:class:`CandidateItem`\\ s and keeps every database write; :func:`score_batch`
runs in the calling process or on a Dask worker (config.cluster) and gives
the same scores either way: features come from the same feature store and
stem cache (under MEDIA_ROOT, shared storage on a cluster), and a Dask worker
runs torch on one thread. No Django here.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from config.cluster import in_dask_worker
from generation.conditions import CandidateSpec, ClipInfo
from generation.errors import StemCacheError
from generation.scaleout import adjusted_stems
from generation.stem_cache import file_sha256
from scoring.errors import ScoringError
from scoring.feature_store import FeatureStore, Recipe
from scoring.features import FeatureConfig, mix_features, stem_features

log = logging.getLogger(__name__)

MAX_CACHED_NETWORKS = 2  # networks a process keeps loaded (a scoring run uses one; evaluate goes system by system)
_networks: dict[tuple[str, str, int], tuple[Any, FeatureConfig, list[float]]] = {}
_networks_lock = threading.Lock()


@dataclass(frozen=True)
class CandidateItem:
    """What scoring one candidate needs: its spec, stored spec key, its three clips and the vocal seed's beats (s)."""

    id: int
    spec: CandidateSpec
    spec_key: str
    clips: dict[int, ClipInfo]
    vocal_beats: tuple[float, ...] = ()


@dataclass(frozen=True)
class SystemRef:
    """A system as plain data: checkpoint path and mtime (ns) key the per-process network cache.

    `feature_config` and `crop_offsets_s` are the registered fallbacks for
    checkpoints older than those fields; `feature_root` and `stem_root` are
    the feature store and the adjusted-stem cache.
    """

    name: str
    arch: str
    feature_root: Path
    stem_root: Path
    checkpoint: str = ""
    mtime_ns: int = 0
    feature_config: dict = field(default_factory=dict)
    crop_offsets_s: tuple[float, ...] = (0.0,)
    amu_variant: str = ""


def recipe_for(arch: str, config: FeatureConfig, offsets_s: Sequence[float]) -> Recipe:
    """The feature recipe of a system: premix reads the three role stems, postmix their mix."""
    offsets = tuple(float(o) for o in offsets_s)
    if not offsets or min(offsets) < 0:
        raise ScoringError(f"offsets_s must be a non-empty list of start times ≥ 0 s, got {list(offsets_s)}")
    return Recipe(kind=arch, config=config, offsets_s=offsets)


def identity(item: CandidateItem) -> dict:
    """What a candidate's features depend on: its spec key and the SHA-256 of each source stem it reads."""
    spec = item.spec
    try:
        sources = [file_sha256(Path(item.clips[clip_id].stems[role])) for clip_id, role in (
            (spec.vocal_clip, "vocal"), (spec.harmonic_clip, "harmonic"), (spec.percussion_clip, "percussion"))]
    except (KeyError, StemCacheError) as exc:
        raise ScoringError(f"candidate {item.id}: stem audio is missing or unreadable: {exc}") from None
    return {"spec_key": item.spec_key, "sources": sources}


def compute_features(item: CandidateItem, recipe: Recipe, stem_root: Path) -> np.ndarray:
    """One candidate's network input under `recipe`: (K, channels, T, n_mels) for its K crop offsets."""
    cfg = recipe.config
    stems = adjusted_stems(item.id, item.spec, item.clips, sr=cfg.sr, cache_root=stem_root)
    rows = []
    for off in recipe.offsets_s:
        if off + cfg.crop_s > item.spec.duration_s + 1e-6:
            raise ScoringError(f"candidate {item.id}: a {cfg.crop_s:g} s crop at {off:g} s runs past its "
                               f"{item.spec.duration_s:g} s")
        rows.append(stem_features(stems, sr=cfg.sr, config=cfg, offset_s=off) if recipe.kind == "premix"
                    else mix_features(stems, sr=cfg.sr, config=cfg, offset_s=off))
    return np.stack(rows)


def batch_features(items: Sequence[CandidateItem], recipe: Recipe, *, feature_root: Path,
                   stem_root: Path) -> np.ndarray:
    """Network input of a batch, candidate-major (row i·K + k = item i at offset k), through the feature store."""
    store = FeatureStore(Path(feature_root))
    arrays = []
    for item in items:
        key = store.key(identity(item), recipe)
        store.get_or_compute(key, recipe, functools.partial(compute_features, item, recipe, stem_root))
        arrays.append(np.asarray(store.load(key, recipe, verify=False)))
    return np.concatenate(arrays).astype(np.float32)


def load_network(ref: SystemRef) -> tuple[Any, FeatureConfig, list[float]]:
    """(model in eval mode, FeatureConfig, crop offsets in s) of a network system, loaded once per process.

    Keyed by name, checkpoint path and mtime, so a retrained checkpoint is
    read again. On a Dask worker torch is set to one thread (the worker is
    one of N processes; one thread also keeps sums in a fixed order).
    """
    from scoring.training import checkpoint_crop_offsets, load_checkpoint

    key = (ref.name, ref.checkpoint, ref.mtime_ns)
    with _networks_lock:
        if key in _networks:
            return _networks[key]
        path = Path(ref.checkpoint) if ref.checkpoint else None
        if path is None or not path.is_file():
            raise ScoringError(f"system {ref.name}: checkpoint {path} is missing")
        if in_dask_worker():
            import torch

            torch.set_num_threads(1)
        model, state = load_checkpoint(path, arch=ref.arch)
        cfg = FeatureConfig.from_dict(state.get("feature_config") or ref.feature_config or {})
        offsets = checkpoint_crop_offsets(state) or [float(o) for o in ref.crop_offsets_s or (0.0,)]
        while len(_networks) >= MAX_CACHED_NETWORKS:
            _networks.pop(next(iter(_networks)))
        _networks[key] = (model, cfg, offsets)
        log.info("loaded system %s from %s", ref.name, path)
        return _networks[key]


def score_batch(ref: SystemRef, items: Sequence[CandidateItem]) -> np.ndarray:
    """Scores of `items` by system `ref`, (N,) float64: mean posterior over its crops, or the AMU total."""
    if ref.arch == "amu":
        return _amu_scores(ref, items)
    from scoring.nets import predict

    model, cfg, offsets = load_network(ref)
    feats = batch_features(items, recipe_for(ref.arch, cfg, offsets), feature_root=ref.feature_root,
                           stem_root=ref.stem_root)
    return predict(model, feats).reshape(len(items), len(offsets)).mean(axis=1)


def _amu_scores(ref: SystemRef, items: Sequence[CandidateItem]) -> np.ndarray:
    """AMU variant scores: adjusted stems at the variant's sample rate, on the vocal seed's beat grid (s)."""
    from scoring.amu import get_variant

    variant = get_variant(ref.amu_variant or ref.name)
    out = []
    for item in items:
        stems = adjusted_stems(item.id, item.spec, item.clips, sr=variant.sr, cache_root=ref.stem_root)
        beats = np.asarray(item.vocal_beats, dtype=float)
        beats = beats[beats < item.spec.duration_s]
        out.append(variant.mashability(stems, sr=variant.sr, beat_times_s=beats).total)
    return np.asarray(out, dtype=float)
