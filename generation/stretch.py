"""Pitch shift and time stretch with Rubber Band, at float precision and deterministically.

Why not pyrubberband: it hands audio to the ``rubberband`` tool as 16-bit
WAV files (soundfile's default subtype), which quantises the stem and clips
anything above full scale. Here the tool gets 32-bit float WAVs, and two more
traps of the command-line tool are avoided:

* the tool clips its output at ±1.0 even in float files, and when it detects
  clipping it may quietly lower the gain (to no less than 0.75); so the input
  is first scaled by an exact power of two to a peak of at most 0.25
  (12 dB headroom) and scaled back afterwards, which changes no bits of the
  result beyond Rubber Band's own arithmetic, and an output that still reaches
  full scale is refused;
* its output length is ``round(n / ratio)`` samples; this is enforced.

Rubber Band is deterministic for a given input, engine and options (tested),
so the same call gives the same samples. The time spent in the tool is
counted in :func:`stats` for the generation benchmark. No Django here; needs
the ``rubberband`` command (apt: rubberband-cli).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from generation.errors import StretchError
from generation.tools import tool_message

__all__ = ["ENGINES", "RubberBandStats", "StretchError", "adjust", "output_length", "reset_stats", "rubberband_version", "stats"]

ENGINES: dict[str, str] = {"R2": "--fast", "R3": "--fine"}
_HEADROOM_PEAK = 0.25
_CLIP_LEVEL = 0.999
_TIMEOUT_S = 600



@dataclass(frozen=True)
class RubberBandStats:
    """Calls to the ``rubberband`` tool in this process and the wall seconds they took."""

    calls: int
    seconds: float


_lock = threading.Lock()
_calls = 0
_seconds = 0.0


def stats() -> RubberBandStats:
    """Rubber Band calls and seconds since the process started or :func:`reset_stats`."""
    with _lock:
        return RubberBandStats(_calls, _seconds)


def reset_stats() -> None:
    """Set the Rubber Band call counters to zero."""
    global _calls, _seconds
    with _lock:
        _calls, _seconds = 0, 0.0


def _tool() -> str:
    path = shutil.which("rubberband")
    if path is None:
        raise StretchError(tool_message("rubberband") or "the 'rubberband' command is not on PATH")
    return path


def rubberband_version() -> str:
    """Version string of the installed ``rubberband`` tool (part of a cache key: another version, other samples)."""
    result = subprocess.run([_tool(), "--version"], capture_output=True, text=True, check=False)
    return (result.stdout + result.stderr).strip().splitlines()[0] if (result.stdout + result.stderr).strip() else "unknown"


def output_length(n_samples: int, *, ratio: float) -> int:
    """Samples after stretching `n_samples` by tempo factor `ratio` (> 1 = faster = shorter): round(n / ratio)."""
    return round(n_samples / ratio)


def adjust(
    audio: np.ndarray,
    *,
    sr: int,
    shift_semitones: float = 0.0,
    ratio: float = 1.0,
    engine: str = "R2",
) -> np.ndarray:
    """Pitch-shift by `shift_semitones` (positive = up) and multiply the tempo by `ratio`.

    `audio`: float array of shape (channels, n) or (n,) at `sr` Hz. `ratio` is
    the tempo factor (seed tempo / stem tempo): the result has
    ``round(n / ratio)`` samples. `engine`: 'R2' (faster, the default) or 'R3'
    (finer, ~3x slower). Returns float32 of shape (channels, round(n / ratio))
    (or (m,) for 1-D input). When shift is 0 and ratio is 1 the input is
    returned as float32 without calling Rubber Band.
    """
    x = np.asarray(audio)
    if x.ndim not in (1, 2) or x.size == 0:
        raise StretchError(f"audio must be a non-empty (channels, n) or (n,) array, got shape {x.shape}")
    if x.ndim == 2 and x.shape[0] > 8:
        raise StretchError(f"audio must be (channels, n); got {x.shape}, which looks transposed")
    if not np.issubdtype(x.dtype, np.floating):
        raise StretchError(f"audio must be floating point, got {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise StretchError("audio holds NaN or infinite samples")
    if int(sr) != sr or sr <= 0:
        raise StretchError(f"sr must be a positive integer, got {sr!r}")
    if not math.isfinite(float(shift_semitones)) or abs(float(shift_semitones)) > 24:
        raise StretchError(f"shift_semitones must be within ±24, got {shift_semitones!r}")
    if not math.isfinite(float(ratio)) or not 0.25 <= float(ratio) <= 4.0:
        raise StretchError(f"ratio must be in 0.25..4, got {ratio!r}")
    if engine not in ENGINES:
        raise StretchError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if float(shift_semitones) == 0.0 and float(ratio) == 1.0:
        return x.astype(np.float32, copy=True)

    two_d = x if x.ndim == 2 else x[np.newaxis, :]
    n = two_d.shape[1]
    peak = float(np.max(np.abs(two_d)))
    # An exact power-of-two scale: no rounding is added, and the tool never sees a near-full-scale peak.
    exponent = max(0, math.ceil(math.log2(peak / _HEADROOM_PEAK))) if peak > 0 else 0
    scale = 2.0**exponent
    scaled = (two_d.astype(np.float32) / np.float32(scale)).T

    command = [_tool(), "--quiet", ENGINES[engine], "--time", repr(1.0 / float(ratio)), "--pitch", repr(float(shift_semitones))]
    with tempfile.TemporaryDirectory(prefix="mashlab-rb-") as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        sf.write(src, scaled, int(sr), subtype="FLOAT", format="WAV")
        start = time.perf_counter()
        try:
            result = subprocess.run([*command, str(src), str(dst)], capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise StretchError(f"rubberband took longer than {_TIMEOUT_S} s and was stopped") from exc
        finally:
            _count(time.perf_counter() - start)
        if result.returncode != 0 or not dst.exists():
            message = (result.stderr or result.stdout).strip().splitlines()
            raise StretchError(f"rubberband failed (exit {result.returncode}): {message[-1] if message else 'no message'}")
        out, out_sr = sf.read(dst, dtype="float32", always_2d=True)
    if out_sr != sr or out.shape[1] != two_d.shape[0]:
        raise StretchError(f"rubberband wrote {out.shape[1]} channels at {out_sr} Hz, expected {two_d.shape[0]} at {sr} Hz")
    if out.size and float(np.max(np.abs(out))) >= _CLIP_LEVEL:
        raise StretchError("rubberband output reached full scale (clipped) despite 12 dB of headroom; lower the input level")
    out = out.T * np.float32(scale)
    m = output_length(n, ratio=float(ratio))
    if out.shape[1] < m:
        out = np.pad(out, ((0, 0), (0, m - out.shape[1])))
    out = np.ascontiguousarray(out[:, :m], dtype=np.float32)
    return out if x.ndim == 2 else out[0]


def _count(seconds: float) -> None:
    global _calls, _seconds
    with _lock:
        _calls += 1
        _seconds += seconds
