"""What a participant's browser receives for a clip: blind by construction (no Django here).

The bytes of a stored stimulus file could tell the original from a mashup:
FLAC sizes follow the content (the mashup's file was the larger one on 10 of
11 pages), and the original's file was byte-identical on every page that used
it. So a page's clips are served as:

* **16-bit PCM WAV of one length per page**: both clips of a page are padded
  with silence to the longer one's frame count, so the two files have the
  same byte length (44-byte header + frames x channels x 2);
* **with a seeded dither per page and participant**: -1, 0 or +1 LSB (at most
  -90 dBFS, far below a mix normalised to -16 LUFS) added to every sample
  from a counter-based hash of (seed, sample index), so the same clip differs
  in its bytes on every page and for every participant, and any byte range
  can be computed on its own (Range requests) without the rest of the file;
* under a per-page URL (the assignment's media key), never the stimulus'
  stored name.

Reading uses soundfile's seek, so a range costs the frames it covers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from listening.errors import DeliveryError

HEADER_BYTES = 44
SAMPLE_BYTES = 2
CONTENT_TYPE = "audio/wav"




@dataclass(frozen=True)
class SourceInfo:
    frames: int
    sample_rate: int
    channels: int


def source_info(path: Path) -> SourceInfo:
    """Frames, rate (Hz) and channels of a stored stimulus file."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise DeliveryError(f"{path}: cannot read the stimulus: {exc}") from exc
    return SourceInfo(int(info.frames), int(info.samplerate), int(info.channels))


def page_frames(infos: list[SourceInfo]) -> int:
    """The frame count both clips of a page are served with (the longer one); their rate and channels must agree."""
    if len({(i.sample_rate, i.channels) for i in infos}) != 1:
        raise DeliveryError("the clips of a page differ in sample rate or channels: their files would differ in size")
    return max(i.frames for i in infos)


def wav_size(*, frames: int, channels: int) -> int:
    """Bytes of a 16-bit PCM WAV of `frames` frames."""
    return HEADER_BYTES + frames * channels * SAMPLE_BYTES


def wav_header(*, frames: int, sample_rate: int, channels: int) -> bytes:
    """The canonical 44-byte RIFF/WAVE header of 16-bit PCM."""
    data = frames * channels * SAMPLE_BYTES
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * channels * SAMPLE_BYTES,
                                    channels * SAMPLE_BYTES, 16)
            + b"data" + struct.pack("<I", data))


def dither(seed: int, first: int, count: int) -> np.ndarray:
    """-1/0/+1 for samples first..first+count-1 (interleaved index), from a splitmix64 hash of (seed, index)."""
    with np.errstate(over="ignore"):
        x = np.arange(first, first + count, dtype=np.uint64) + np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * np.uint64(
            0x9E3779B97F4A7C15)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x % np.uint64(3)).astype(np.int32) - 1


def read_range(path: Path, *, frames: int, sample_rate: int, channels: int, seed: int, start: int,
               end: int) -> bytes:
    """Bytes start..end-1 of the served WAV of `path` (padded to `frames`, dithered with `seed`)."""
    size = wav_size(frames=frames, channels=channels)
    if not 0 <= start <= end <= size:
        raise DeliveryError(f"byte range {start}-{end} is outside 0-{size}")
    out = bytearray()
    if start < HEADER_BYTES:
        out += wav_header(frames=frames, sample_rate=sample_rate, channels=channels)[start:min(end, HEADER_BYTES)]
    lo, hi = max(start, HEADER_BYTES) - HEADER_BYTES, end - HEADER_BYTES
    if hi > lo:
        frame_bytes = channels * SAMPLE_BYTES
        f0, f1 = lo // frame_bytes, -(-hi // frame_bytes)
        block = np.zeros((f1 - f0, channels), dtype=np.int32)
        with sf.SoundFile(str(path)) as fh:
            if f0 < fh.frames:
                fh.seek(f0)
                got = fh.read(min(f1, fh.frames) - f0, dtype="int16", always_2d=True)
                block[:len(got)] = got
        flat = block.reshape(-1) + dither(seed, f0 * channels, block.size)
        pcm = np.clip(flat, -32768, 32767).astype("<i2").tobytes()
        skip = lo - f0 * frame_bytes
        out += pcm[skip:skip + (hi - lo)]
    return bytes(out)


def merge_ranges(ranges: list[list[int]], start: int, end: int) -> list[list[int]]:
    """`ranges` (sorted, disjoint [start, end) byte ranges) with [start, end) added, merged where they touch."""
    out: list[list[int]] = []
    for a, b in sorted([*map(list, ranges), [start, end]]):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def covers(ranges: list[list[int]], size: int) -> bool:
    """Whether the merged `ranges` hold every byte 0..size-1."""
    return size == 0 or (len(ranges) == 1 and ranges[0][0] <= 0 and ranges[0][1] >= size)
