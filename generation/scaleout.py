"""Worker side of rendering and feature stems: plain data in, files and plain data out (no Django here).

`generation.candidates` turns stored rows into these arguments (CandidateSpec,
ClipInfo, folders) and keeps every database write; the functions here run in
the calling process or on a Dask worker (config.cluster) and give the same
bytes either way, because rendering is a pure function of the spec and its
clips' files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from generation.conditions import ROLES, CandidateSpec, ClipInfo
from generation.errors import CandidateError, GenerationError
from generation.render import adjust_for_features, render_candidate
from generation.stem_cache import StemCache


def about(candidate_id: int, exc: GenerationError) -> GenerationError:
    """The same kind of error, its message led by the candidate it concerns (so a batch says which one)."""
    return type(exc)(f"candidate {candidate_id}: {exc}")


def clips_for(spec: CandidateSpec, clips: dict[int, ClipInfo]) -> dict[int, ClipInfo]:
    """The three clips `spec` reads, out of `clips` (what a worker is sent for one candidate)."""
    return {i: clips[i] for i in (spec.vocal_clip, spec.harmonic_clip, spec.percussion_clip) if i in clips}


def render_one(candidate_id: int, spec: CandidateSpec, clips: dict[int, ClipInfo], folder: Path,
               cache_root: Path, media_root: Path) -> tuple[str, ...]:
    """Render one candidate into `folder`; (mix, vocal, harmonic, percussion) paths relative to `media_root`.

    `cache_root` is the adjusted-stem cache (safe with parallel writers).
    Raises the GenerationError of the failing stage, led by the candidate id.
    """
    try:
        result = render_candidate(spec, clips, Path(folder), cache=StemCache(Path(cache_root)))
    except GenerationError as exc:
        raise about(candidate_id, exc) from exc
    media = Path(media_root)
    return (result.mix_path.relative_to(media).as_posix(),
            *(result.stem_paths[r].relative_to(media).as_posix() for r in ROLES))


def adjusted_stems(candidate_id: int, spec: CandidateSpec, clips: dict[int, ClipInfo], *, sr: int,
                   cache_root: Path) -> dict[str, np.ndarray]:
    """The candidate's adjusted stems, mono at `sr` Hz, role → (n,) float32 (through the stem cache).

    Raises a GenerationError (CandidateError, RenderError, StemCacheError) when a stem's audio is gone or
    unusable; its message names the candidate.
    """
    missing = [str(p) for info in clips.values() for p in info.stems.values() if not Path(p).is_file()]
    if missing:
        raise CandidateError(f"candidate {candidate_id}: stem audio is missing: {', '.join(missing[:3])}")
    try:
        return adjust_for_features(spec, clips, sr=sr, cache=StemCache(Path(cache_root)))
    except GenerationError as exc:
        raise about(candidate_id, exc) from exc
