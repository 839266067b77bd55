"""The audio files participants download: one per stimulus, in the study's delivery format.

A rendered mix is a 44.1 kHz stereo 32-bit float WAV, 10.6 MB per 30 s. A
participant on a phone fetches two per page, so ten pages of 30 s clips cost
over 200 MB as float WAV. Formats:

* ``flac`` (default): 16-bit FLAC, lossless at CD resolution, about a quarter
  of the float file (measured in the tests on a generated song at -16 LUFS:
  1.7 MB for 20 s, 0.24 of the float WAV).
  Samples are rounded to 16 bits without dither: the rounding error is at most
  half a step, about -96 dBFS, 80 dB below a mix normalised to -16 LUFS
  (generation.render). Played by every current browser (Chrome 56+,
  Firefox 51+, Safari 11+, iOS 11+).
* ``wav``: the rendered float WAV itself (a hard link where the file system
  allows, else a copy), bit for bit what was rendered, at full size.

Same input, same bytes, in both formats. No Django here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from listening.errors import StimulusError

__all__ = ["CONTENT_TYPES", "STIMULUS_FORMATS", "StimulusError", "write_stimulus"]

STIMULUS_FORMATS: dict[str, str] = {  # format -> what an experimenter is told when choosing
    "flac": "FLAC, 16-bit (lossless at CD resolution, about a quarter of the size)",
    "wav": "WAV, 32-bit float (the rendered file, bit for bit)",
}
CONTENT_TYPES: dict[str, str] = {".flac": "audio/flac", ".wav": "audio/wav"}




def write_stimulus(mix: Path, out_stem: Path, *, audio_format: str) -> Path:
    """Write `mix` (a rendered mix WAV) as ``out_stem`` + the format's suffix; returns the path written.

    The file appears whole or not at all (temporary file, then one rename).
    """
    if audio_format not in STIMULUS_FORMATS:
        raise StimulusError(f"unknown stimulus format {audio_format!r}; choose one of {', '.join(STIMULUS_FORMATS)}")
    mix, out_stem = Path(mix), Path(out_stem)
    if not mix.is_file():
        raise StimulusError(f"{mix}: cannot read the rendered mix: no such file")
    dst = out_stem.with_name(f"{out_stem.name}.{audio_format}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if audio_format == "wav":
        _link_or_copy(mix, dst)
        return dst
    try:
        audio, sr = sf.read(str(mix), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise StimulusError(f"{mix}: cannot read the rendered mix: {exc}") from exc
    if audio.size == 0 or not np.all(np.isfinite(audio)):
        raise StimulusError(f"{mix}: the rendered mix is empty or holds NaN/infinite samples")
    if float(np.max(np.abs(audio))) > 1.0:
        raise StimulusError(f"{mix}: samples beyond full scale would clip at 16 bits (render normalises to -1 dBFS)")
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.stem}.", suffix=".part")
    os.close(fd)
    try:
        sf.write(tmp, audio, sr, format="FLAC", subtype="PCM_16")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
