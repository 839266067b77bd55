"""Audio input: validated loading, header-only info, atomic float WAV and compact FLAC writing.

Everything that enters mashlab passes `load_audio`, which refuses bad input
with one clear line naming the file and the problem (`AudioError`) before any
numeric work, so a bad file never becomes a half-made clip. libsndfile (via
soundfile) reads WAV/FLAC/OGG/MP3/AIFF; formats it cannot read (M4A/AAC, …)
are decoded by the ffmpeg command-line tool.

Storage: a MashupDB keeps clip audio and stems as FLAC (`store_audio`), about
a quarter to a half of a 32-bit float WAV; see `STORE_BITS` for the depth and
why. Readers never care: `load_audio` reads WAV and FLAC alike, so databases
ingested before (float WAV paths in their rows) keep working. No Django here.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from generation.errors import AudioError
from generation.tools import tool_message

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".m4a"})
SILENCE_DBFS = -60.0
# Lossy formats only estimate their length in the header (MP3 without a Xing frame);
# a decode that falls short by less than this is not called truncated.
_LOSSY_SLACK = 0.02
_LOSSLESS = {"WAV", "WAVEX", "RF64", "FLAC", "AIFF", "CAF", "W64"}


#: Bits per sample of stored clip audio and stems (FLAC, integer PCM). 16 bits
#: put the rounding error at most half a step, -96 dBFS, below the noise of any
#: source mashlab takes in (CD audio is 16-bit; Vorbis/MP3 decodes carry their
#: codec's noise, far above it) and 80 dB or more below the separation error of
#: a Spleeter stem (its SDR is 5-15 dB); the log-mel features floor each band
#: at 1e-5 power (-50 dB), far above the rounding noise. 24 bits would cost
#: twice as much for nothing measurable: on a 30 s Wesnoth excerpt, 5.3 MB per
#: stereo file at 24 bits against 2.7 MB at 16 (float WAV: 10.6 MB).
#: The platform's sample rate (Hz): every stored clip, stem and render, and the rate Spleeter and madmom
#: work at. Defined here once; the stages import it.
SR = 44100
STORE_BITS = 16
STORE_SUFFIX = ".flac"
_SUBTYPES = {16: "PCM_16", 24: "PCM_24"}



@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: sample rate (Hz), channels, frames (samples per channel), seconds."""

    sr: int
    channels: int
    frames: int
    seconds: float
    format: str
    reader: str  # "soundfile" or "ffmpeg"


def is_audio_file(path: Path) -> bool:
    """True when the file name ends in an audio extension mashlab reads (for folder scans; content unchecked)."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def audio_info(path: Path) -> AudioInfo:
    """Sample rate, channels, frames and duration from the header only (the samples are not decoded).

    For WAV files the RIFF header is checked against the file size, so a file
    whose header promises more samples than it holds is refused here already.
    Raises AudioError for a missing, empty, non-audio or corrupt file.
    """
    path = Path(path)
    _check_path(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        return _ffprobe_info(path, str(exc))
    if info.format in ("WAV", "WAVEX"):
        _check_wav_length(path)
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames),
                     float(info.frames) / info.samplerate, str(info.format), "soundfile")


def load_audio(
    path: Path,
    *,
    sr: int = SR,
    min_seconds: float = 5.0,
    max_seconds: float | None = 600.0,
    start_s: float = 0.0,
    duration_s: float | None = None,
    allow_silent: bool = False,
) -> np.ndarray:
    """Read, check and resample audio: float32 array of shape (2, n) at `sr` Hz, mono duplicated to stereo.

    Reads `duration_s` seconds from `start_s` (None: to the end). `max_seconds`
    bounds the span to be read and is checked from the header before any
    decoding, so a very long file is refused without loading it. Refused with
    AudioError: missing path, not a file, not audio, empty, truncated or
    corrupt, more than two channels, NaN/inf samples, silent (peak below
    -60 dBFS, unless `allow_silent`, e.g. a stem without that instrument), or
    shorter than `min_seconds` after cutting.
    """
    path = Path(path)
    if sr <= 0:
        raise AudioError(f"{path}: target sample rate must be positive, got {sr}")
    if start_s < 0 or (duration_s is not None and duration_s <= 0):
        raise AudioError(f"{path}: start_s must be >= 0 and duration_s > 0 (got {start_s}, {duration_s})")
    info = audio_info(path)
    if info.channels > 2:
        raise AudioError(f"{path}: {info.channels} channels; mashlab takes mono or stereo")
    if info.frames <= 0:
        raise AudioError(f"{path}: empty, the file holds no audio samples")
    if start_s >= info.seconds:
        raise AudioError(f"{path}: start {start_s:g} s is past the end of the audio ({info.seconds:.2f} s)")
    span_s = (info.seconds - start_s) if duration_s is None else min(duration_s, info.seconds - start_s)
    if max_seconds is not None and span_s > max_seconds:
        raise AudioError(
            f"{path}: {span_s:.1f} s to read, longer than the limit of {max_seconds:g} s; cut it or pass a duration"
        )
    if span_s < min_seconds:
        raise AudioError(f"{path}: {span_s:.2f} s of audio, shorter than the minimum of {min_seconds:g} s")
    start = int(round(start_s * info.sr))
    frames = min(info.frames - start, int(round(span_s * info.sr)))
    if info.reader == "soundfile":
        audio = _read_soundfile(path, info, start=start, frames=frames)
    else:
        audio = _read_ffmpeg(path, info, start_s=start_s, frames=frames)
    if not np.all(np.isfinite(audio)):
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        raise AudioError(f"{path}: {bad} samples are NaN or infinite; the file is corrupt")
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    peak_dbfs = 20 * math.log10(peak) if peak > 0 else -math.inf
    if not allow_silent and peak_dbfs < SILENCE_DBFS:
        raise AudioError(f"{path}: silent (peak {peak_dbfs:.1f} dBFS, below {SILENCE_DBFS:g} dBFS)")
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    if info.sr != sr:
        audio = soxr.resample(audio.T, info.sr, sr, quality="HQ").T
    return np.ascontiguousarray(audio, dtype=np.float32)


def relative_level_db(part: np.ndarray, whole: np.ndarray) -> float:
    """RMS level of `part` relative to `whole` in dB (a stem against its mix); floored at −120 dB."""
    p = float(np.mean(np.square(part, dtype=np.float64))) if np.size(part) else 0.0
    w = float(np.mean(np.square(whole, dtype=np.float64))) if np.size(whole) else 0.0
    if w <= 0.0:
        raise AudioError("the reference audio is silent: no level can be relative to it")
    return max(-120.0, 10.0 * math.log10(max(p, 1e-30) / w))


def write_wav(path: Path, audio: np.ndarray, *, sr: int, subtype: str = "FLOAT") -> Path:
    """Write `audio` (shape (channels, n) or (n,), floats in [-1, 1]) as a WAV file at `sr` Hz, atomically.

    The samples go to a temporary file in the same folder, which then replaces
    `path` in one step: a reader never sees a half-written file, and a crash
    leaves the old file (or none). Parent folders are created. Returns `path`.
    """
    path = Path(path)
    audio = _checked_for_writing(path, audio, sr)
    if not sf.check_format("WAV", subtype):
        raise AudioError(f"{path}: WAV cannot hold subtype {subtype!r}; use FLOAT, PCM_16 or PCM_24")
    return _atomic_write(path, audio, sr, format="WAV", subtype=subtype)


def write_flac(path: Path, audio: np.ndarray, *, sr: int, bits: int = STORE_BITS) -> Path:
    """Write `audio` ((channels, n) or (n,), floats in [-1, 1]) as integer FLAC of `bits` (16 or 24), atomically.

    Samples are rounded to the nearest step (at most half a step of error;
    16-bit values round-trip exactly at either depth). The bytes depend only on
    the samples, `sr` and the libFLAC version (no timestamp), so equal audio
    gives equal files. Samples beyond full scale cannot be held and raise
    AudioError (`store_audio` falls back to float WAV for them).
    """
    path = Path(path)
    audio = _checked_for_writing(path, audio, sr)
    if bits not in _SUBTYPES:
        raise AudioError(f"{path}: FLAC bits must be one of {sorted(_SUBTYPES)}, got {bits!r}")
    peak = float(np.max(np.abs(audio)))
    if peak > 1.0:
        raise AudioError(f"{path}: peak {peak:.3f} is beyond full scale; integer FLAC would clip it")
    return _atomic_write(path, audio, sr, format="FLAC", subtype=_SUBTYPES[bits])


def store_audio(path: Path, audio: np.ndarray, *, sr: int, bits: int = STORE_BITS) -> Path:
    """Store clip audio or a stem compactly; returns the path written, whose suffix says the format.

    `path`'s suffix is replaced: `<stem>.flac` (integer FLAC of `bits`, see
    STORE_BITS) in the usual case; `<stem>.wav` (32-bit float) when a sample
    lies beyond full scale (a sum of stems, an HPSS residual), which integer
    PCM would clip. A stale file of the other format is removed, so one name
    never has two versions.
    """
    path = Path(path)
    audio = _checked_for_writing(path, audio, sr)
    if float(np.max(np.abs(audio))) <= 1.0:
        written = write_flac(path.with_suffix(STORE_SUFFIX), audio, sr=sr, bits=bits)
    else:
        written = write_wav(path.with_suffix(".wav"), audio, sr=sr)
    for other in (path.with_suffix(".wav"), path.with_suffix(STORE_SUFFIX)):
        if other != written:
            other.unlink(missing_ok=True)
    return written


def _checked_for_writing(path: Path, audio: np.ndarray, sr: int) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2) or audio.size == 0:
        raise AudioError(f"{path}: audio to write must be a non-empty (channels, n) or (n,) array, got {audio.shape}")
    if audio.ndim == 2 and audio.shape[0] > audio.shape[1]:
        raise AudioError(f"{path}: audio to write must be (channels, n); got {audio.shape}, which looks transposed")
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{path}: refusing to write NaN or infinite samples")
    if sr <= 0:
        raise AudioError(f"{path}: sample rate must be positive, got {sr}")
    return audio


def _atomic_write(path: Path, audio: np.ndarray, sr: int, *, format: str, subtype: str) -> Path:
    """soundfile write into a temporary file of the same folder, then one os.replace (readable by all)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".part")
    os.close(fd)
    try:
        sf.write(tmp, audio.T if audio.ndim == 2 else audio, sr, subtype=subtype, format=format)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --- checks ---------------------------------------------------------------------------

_MAGIC = {
    b"RIFF": "WAV", b"RF64": "WAV", b"fLaC": "FLAC", b"OggS": "OGG", b"FORM": "AIFF", b"ID3": "MP3",
}


def _check_path(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if not path.is_file():
        raise AudioError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")


def _sniff(path: Path) -> str | None:
    """The container the first bytes announce, or None when they look like no audio format."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    if head[4:8] == b"ftyp":
        return "M4A"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        return "MP3"
    return None


def _check_wav_length(path: Path) -> None:
    """Refuse a WAV whose 'data' chunk promises more bytes than the file holds.

    libsndfile quietly shortens such a file to what is there; for mashlab a cut-off
    download or copy is an error to report, not audio to use. Sizes 0 and
    0xFFFFFFFF mean "unknown" (streamed WAVs) and are accepted.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        riff = fh.read(12)
        if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            return
        pos, block_align = 12, 0
        while pos + 8 <= size:
            fh.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
            if chunk_id == b"fmt ":
                fmt = fh.read(min(chunk_size, 16))
                if len(fmt) >= 14:
                    block_align = struct.unpack("<H", fmt[12:14])[0]
            elif chunk_id == b"data":
                available = size - (pos + 8)
                if chunk_size in (0, 0xFFFFFFFF) or chunk_size <= available:
                    return
                if block_align:
                    raise AudioError(
                        f"{path}: truncated: the WAV header promises {chunk_size // block_align} frames "
                        f"but the file holds only {available // block_align}"
                    )
                raise AudioError(f"{path}: truncated: the WAV header promises {chunk_size} bytes of samples "
                                 f"but the file holds only {available}")
            pos += 8 + chunk_size + (chunk_size & 1)


def _read_soundfile(path: Path, info: AudioInfo, *, start: int, frames: int) -> np.ndarray:
    """Decode `frames` frames from `start` with libsndfile; (channels, n) float32. Refuses short reads."""
    try:
        with sf.SoundFile(str(path)) as fh:
            if start:
                fh.seek(start)
            data = fh.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{path}: truncated or corrupt {info.format} file ({_first_line(exc)})") from None
    got = data.shape[0]
    slack = 0 if info.format in _LOSSLESS else int(_LOSSY_SLACK * frames)
    if got < frames - slack:
        raise AudioError(
            f"{path}: truncated: the header promises {frames / info.sr:.2f} s from {start / info.sr:g} s "
            f"but only {got / info.sr:.2f} s could be decoded"
        )
    if got == 0:
        raise AudioError(f"{path}: empty, the file holds no audio samples")
    return data.T


def _ffprobe_info(path: Path, soundfile_error: str) -> AudioInfo:
    """Header info through ffprobe, for formats libsndfile does not read; AudioError when it is not audio."""
    kind = _sniff(path)
    if kind in ("WAV", "FLAC", "AIFF"):  # libsndfile reads these: it failing means a broken file
        raise AudioError(f"{path}: truncated or corrupt {kind} file ({_first_line(soundfile_error)})")
    if shutil.which("ffprobe") is None:
        raise AudioError(f"{path}: not an audio file libsndfile can read, and {tool_message('ffprobe')}")
    cmd = ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=sample_rate,channels,duration,duration_ts,time_base:format=duration,format_name",
           "-of", "json", f"file:{path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    try:
        probe = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        probe = {}
    streams = probe.get("streams") or []
    if proc.returncode != 0 or not streams:
        if kind is None:
            raise AudioError(f"{path}: not an audio file (no known audio format in its contents)")
        raise AudioError(f"{path}: truncated or corrupt {kind} file ({_first_line(proc.stderr) or 'no audio stream'})")
    stream = streams[0]
    sr = int(stream.get("sample_rate") or 0)
    channels = int(stream.get("channels") or 0)
    duration = stream.get("duration") or (probe.get("format") or {}).get("duration")
    if not sr or not channels or duration in (None, "N/A"):
        raise AudioError(f"{path}: corrupt audio: ffprobe finds no sample rate, channel count or duration")
    seconds = float(str(duration))
    names = ((probe.get("format") or {}).get("format_name") or "ffmpeg").split(",")
    suffix = path.suffix.lower().lstrip(".")
    fmt = (suffix if suffix in names else names[0]).upper()
    return AudioInfo(sr, channels, int(round(seconds * sr)), seconds, fmt, "ffmpeg")


def _read_ffmpeg(path: Path, info: AudioInfo, *, start_s: float, frames: int) -> np.ndarray:
    """Decode with the ffmpeg CLI to 32-bit float at the file's own rate; (channels, n) float32."""
    if shutil.which("ffmpeg") is None:
        raise AudioError(f"{path}: {tool_message('ffmpeg')}")
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-ss", f"{start_s:.6f}", "-i", f"file:{path}",
           "-map", "0:a:0", "-t", f"{frames / info.sr:.6f}",
           "-f", "f32le", "-acodec", "pcm_f32le", "-ac", str(info.channels), "-"]
    proc = subprocess.run(cmd, capture_output=True, timeout=600)
    if proc.returncode != 0:
        raise AudioError(f"{path}: truncated or corrupt {info.format} file "
                         f"({_first_line(proc.stderr.decode(errors='replace'))})")
    data = np.frombuffer(proc.stdout, dtype="<f4")
    data = data[: data.size - data.size % info.channels].reshape(-1, info.channels)
    if data.shape[0] < frames * (1 - _LOSSY_SLACK) or data.shape[0] == 0:
        raise AudioError(
            f"{path}: truncated: the header promises {frames / info.sr:.2f} s but only "
            f"{data.shape[0] / info.sr:.2f} s could be decoded"
        )
    return data[:frames].T.copy()


def _first_line(text: object) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0] if lines else ""
