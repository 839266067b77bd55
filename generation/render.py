"""Render a candidate: adjusted, aligned stems and a loudness-normalised mix, byte for byte reproducible.

Timeline: t = 0 is the start of the vocal seed clip; the vocal stem is not
adjusted. An accompaniment stem stretched by tempo factor ``ratio`` has its
first downbeat at ``d_stem / ratio``; it is placed so that this downbeat
falls at ``d_seed + offset_s`` (offset sign as in
:mod:`generation.conditions`: positive = later). Samples before t = 0 are cut,
gaps are silence, and every stem and the mix last exactly ``duration_s``
(stems that end earlier are padded with silence). Measured on click tracks,
Rubber Band's stretch moves transients by a few milliseconds (−7 ms at tempo
factor 0.85, +6 ms at 1.2), below madmom's 10 ms frame; this is not corrected.

Loudness: the mix is normalised to ``lufs_target`` (default **−16 LUFS**
integrated, ITU-R BS.1770-4 via pyloudnorm, a common target for streamed
music and loud enough for a listening test on a phone), unless that would put
its sample peak above ``peak_limit_dbfs`` (default **−1 dBFS**, 1 dB of room
for inter-sample peaks and lossy encoding); then the gain is lowered so the
peak sits at the limit, and the result says so (``limited``) with the
loudness actually reached. The three stems get the same gain as the mix, so
they sum to it (within float32 rounding) and play at the level heard in it.

Files: ``mix.wav``, 44.1 kHz stereo 32-bit float WAV, written by a small
writer of our own because libsndfile adds a PEAK chunk with a timestamp to
float WAVs (two renders would then differ in bytes); the listening study
serves this file as it is (its ``wav`` format) or encodes it. The three
adjusted stems, which nothing reads back and which only document the render,
are stored compactly as ``vocal.flac``, ``harmonic.flac``, ``percussion.flac``
(24-bit FLAC, `RENDER_STEM_BITS`: their rounding error, at most 6e-8, keeps
their sum within 2e-7 of the mix; a 30 s render then takes the mix's 10.6 MB
plus 5-7 MB for three unadjusted stems of Wesnoth excerpts, up to about 16 MB
for three stretched ones, instead of 42 MB;
float WAV for a stem with samples beyond full scale, see
`generation.audio.store_audio`). libFLAC writes no timestamp, so the same
stored stems give the same bytes here too. Writes are atomic (temporary file +
os.replace). No Django here.
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyloudnorm

from generation.audio import SR, load_audio, store_audio
from generation.conditions import ROLES, CandidateSpec, ClipInfo
from generation.errors import AudioError, RenderError, StemCacheError, StretchError
from generation.stem_cache import StemCache

__all__ = [
    "LUFS_TARGET",
    "PEAK_LIMIT_DBFS",
    "RENDER_STEM_BITS",
    "SR",
    "RenderError",
    "RenderResult",
    "adjust_for_features",
    "loudness_lufs",
    "place",
    "placement_s",
    "render_candidate",
    "render_stems",
    "write_float_wav",
]

LUFS_TARGET = -16.0
PEAK_LIMIT_DBFS = -1.0
RENDER_STEM_BITS = 24  # the rendered stems keep the mix's precision: they sum to it within 2e-7



@dataclass(frozen=True)
class RenderResult:
    """Where a render went and what level it reached.

    `loudness_lufs`: integrated loudness of the written mix; `gain_db`: gain
    applied to mix and stems; `peak_dbfs`: sample peak of the written mix;
    `limited`: True when the peak limit lowered the gain below what the
    loudness target asked for.
    """

    mix_path: Path
    stem_paths: dict[str, Path]
    lufs_target: float
    loudness_lufs: float
    gain_db: float
    peak_dbfs: float
    limited: bool
    sr: int = SR
    seconds: dict[str, float] = field(default_factory=dict)


def placement_s(spec: CandidateSpec, clips: dict[int, ClipInfo], role: str) -> float:
    """Start time (s, on the seed's timeline) at which the adjusted `role` stem begins; may be negative.

    vocal: 0. harmonic/percussion: d_seed + offset − d_stem / ratio, with d the
    clips' first downbeats (s) and ratio the stem's tempo factor.
    """
    if role == "vocal":
        return 0.0
    if role not in ("harmonic", "percussion"):
        raise RenderError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    seed_clip = _clip(clips, spec.vocal_clip)
    stem_clip = _clip(clips, spec.harmonic_clip if role == "harmonic" else spec.percussion_clip)
    ratio = spec.harmonic_ratio if role == "harmonic" else spec.percussion_ratio
    return seed_clip.first_downbeat_s + spec.offsets_s[role] - stem_clip.first_downbeat_s / ratio


def place(audio: np.ndarray, *, start_s: float, sr: int, n_out: int) -> np.ndarray:
    """Put `audio` (channels, m) on a silent timeline of `n_out` samples starting at `start_s` seconds.

    A negative start cuts the head of `audio`; the tail beyond `n_out` is cut.
    Returns float32 of shape (channels, n_out).
    """
    start = round(start_s * sr)
    out = np.zeros((audio.shape[0], n_out), dtype=np.float32)
    src_from = max(0, -start)
    dst_from = max(0, start)
    length = min(audio.shape[1] - src_from, n_out - dst_from)
    if length > 0:
        out[:, dst_from : dst_from + length] = audio[:, src_from : src_from + length]
    return out


def _clip(clips: dict[int, ClipInfo], clip_id: int) -> ClipInfo:
    try:
        return clips[clip_id]
    except KeyError:
        raise RenderError(f"clip {clip_id} is not among the clips given to the renderer") from None


def _stem_path(clip: ClipInfo, role: str) -> Path:
    try:
        return clip.stems[role]
    except KeyError:
        raise RenderError(f"clip {clip.id} has no {role} stem") from None


def _adjustments(spec: CandidateSpec) -> dict[str, tuple[int, float, float]]:
    """role → (clip id, shift semitones, tempo ratio)."""
    return {
        "vocal": (spec.vocal_clip, 0, 1.0),
        "harmonic": (spec.harmonic_clip, spec.harmonic_shift_semitones, spec.harmonic_ratio),
        "percussion": (spec.percussion_clip, 0, spec.percussion_ratio),
    }


def render_stems(
    spec: CandidateSpec,
    clips: dict[int, ClipInfo],
    *,
    sr: int,
    cache: StemCache,
    mono: bool,
    cache_identity: bool,
) -> dict[str, np.ndarray]:
    """The three adjusted stems placed on the seed's timeline: role → float32 (channels, round(duration_s * sr)).

    Adjusted stems come from `cache`; unadjusted ones (shift 0, ratio 1) are
    read directly unless `cache_identity` (worth it at a feature rate, where
    the cache saves the resampling). `mono` averages the channels.
    """
    n_out = round(spec.duration_s * sr)
    out: dict[str, np.ndarray] = {}
    for role, (clip_id, shift, ratio) in _adjustments(spec).items():
        path = _stem_path(_clip(clips, clip_id), role)
        try:
            if shift == 0 and ratio == 1.0 and not cache_identity:
                audio = load_audio(path, sr=sr, min_seconds=0.1, max_seconds=None, allow_silent=True)
                if mono:
                    audio = audio.mean(axis=0, keepdims=True, dtype=np.float32)
            else:
                audio = cache.get(path, sr=sr, shift_semitones=shift, ratio=ratio, mono=mono)
        except (AudioError, StemCacheError, StretchError) as exc:
            raise RenderError(f"candidate {spec.spec_key[:12]}, {role} stem of clip {clip_id}: {exc}") from exc
        out[role] = place(audio, start_s=placement_s(spec, clips, role), sr=sr, n_out=n_out)
    return out


def loudness_lufs(audio: np.ndarray, *, sr: int) -> float:
    """Integrated loudness (LUFS, ITU-R BS.1770-4, K-weighted, gated) of `audio` (channels, n); −inf when silent."""
    meter = pyloudnorm.Meter(int(sr))
    with np.errstate(divide="ignore"):
        return float(meter.integrated_loudness(np.asarray(audio, dtype=np.float64).T))


def render_candidate(
    spec: CandidateSpec,
    clips: dict[int, ClipInfo],
    out_dir: Path,
    *,
    cache: StemCache,
    sr: int = SR,
    lufs_target: float = LUFS_TARGET,
    peak_limit_dbfs: float = PEAK_LIMIT_DBFS,
) -> RenderResult:
    """Render `spec` into `out_dir`: mix.wav (stereo float32 at `sr` Hz) plus vocal/harmonic/percussion.flac.

    `clips` maps clip id → ClipInfo for (at least) the three clips of the
    spec. See the module docstring for alignment, loudness (`lufs_target`
    LUFS) and the peak limit (`peak_limit_dbfs`, sample peak). Same spec and
    inputs → identical bytes. Raises RenderError.
    """
    if int(sr) != sr or sr < 8000:
        raise RenderError(f"sr must be an integer of at least 8000 Hz, got {sr!r}")
    if not -70.0 <= float(lufs_target) <= 0.0:
        raise RenderError(f"lufs_target must be in -70..0 LUFS, got {lufs_target!r}")
    if not -60.0 <= float(peak_limit_dbfs) <= 0.0:
        raise RenderError(f"peak_limit_dbfs must be in -60..0 dBFS, got {peak_limit_dbfs!r}")
    stems = render_stems(spec, clips, sr=int(sr), cache=cache, mono=False, cache_identity=False)
    mix = stems["vocal"].astype(np.float64) + stems["harmonic"] + stems["percussion"]
    loudness = loudness_lufs(mix, sr=sr)
    peak = float(np.max(np.abs(mix)))
    if not math.isfinite(loudness) or peak == 0.0:
        raise RenderError(f"candidate {spec.spec_key[:12]}: the mix is silent, its loudness cannot be normalised")
    gain_db = float(lufs_target) - loudness
    limited = False
    if 20 * math.log10(peak) + gain_db > peak_limit_dbfs:
        gain_db = float(peak_limit_dbfs) - 20 * math.log10(peak) - 1e-4  # a hair under, against float rounding
        limited = True
    gain = 10.0 ** (gain_db / 20.0)
    out_mix = (mix * gain).astype(np.float32)
    out_dir = Path(out_dir)
    stem_paths = {}
    for role in ROLES:
        stem_paths[role] = store_audio(out_dir / role, (stems[role] * gain).astype(np.float32), sr=int(sr),
                                       bits=RENDER_STEM_BITS)
    mix_path = write_float_wav(out_dir / "mix.wav", out_mix, sr=int(sr))
    final_peak = float(np.max(np.abs(out_mix)))
    return RenderResult(
        mix_path=mix_path,
        stem_paths=stem_paths,
        lufs_target=float(lufs_target),
        loudness_lufs=loudness_lufs(out_mix, sr=sr),
        gain_db=gain_db,
        peak_dbfs=20 * math.log10(final_peak),
        limited=limited,
        sr=int(sr),
    )


def adjust_for_features(spec: CandidateSpec, clips: dict[int, ClipInfo], *, sr: int, cache: StemCache) -> dict[str, np.ndarray]:
    """Mono adjusted stems for feature extraction: role → float32 (round(duration_s * sr),) at `sr` Hz.

    Same adjustment and alignment as :func:`render_candidate` but mono, at the
    feature sample rate, without loudness normalisation, and every stem
    (unadjusted ones too) through `cache`, so each stem is decoded, resampled
    and stretched once however many candidates share it.
    """
    if int(sr) != sr or sr < 1000:
        raise RenderError(f"sr must be an integer of at least 1000 Hz, got {sr!r}")
    stems = render_stems(spec, clips, sr=int(sr), cache=cache, mono=True, cache_identity=True)
    return {role: audio[0] for role, audio in stems.items()}


def write_float_wav(path: Path, audio: np.ndarray, *, sr: int) -> Path:
    """Write (channels, n) float32 samples as a 32-bit float WAV with only fmt, fact and data chunks, atomically.

    The bytes depend on nothing but the samples and `sr` (no timestamps, no
    PEAK chunk), so equal audio gives equal files. Returns `path`.
    """
    path = Path(path)
    data = np.asarray(audio)
    if data.ndim != 2 or data.size == 0 or data.shape[0] > 8:
        raise RenderError(f"{path}: audio to write must be a non-empty (channels, n) array, got {data.shape}")
    if not np.all(np.isfinite(data)):
        raise RenderError(f"{path}: refusing to write NaN or infinite samples")
    channels, frames = data.shape
    payload = np.ascontiguousarray(data.T, dtype="<f4").tobytes()
    block_align = 4 * channels
    fmt = struct.pack("<HHIIHHH", 3, channels, int(sr), int(sr) * block_align, block_align, 32, 0)
    fact = struct.pack("<I", frames)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<I", 4) + fact
    body += b"data" + struct.pack("<I", len(payload)) + payload
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".part")
    try:
        os.fchmod(fd, 0o644)  # readable by the web server, like any plainly written file
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"RIFF" + struct.pack("<I", len(body)) + body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
