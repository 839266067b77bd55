"""Recorded music to train and test on: the free game soundtracks that seven Debian packages install.

Why: generated songs are a fixture with ground truth; the learned systems
must also hold on music nobody on the project made. These packages (about
530 MB, free licences, installed by ``scripts/setup.sh --real-music``) are the
only music the project trains and tests on, so that recordings elsewhere stay
an independent test. Each package is wholly on one side of the split, so the
held-out side never shares a composer's style or a production chain with the
training side:

================== ========= ==============================================
package            side      what is in it
================== ========= ==============================================
wesnoth-1.16-music training  41 Ogg Vorbis tracks (orchestral, folk)
hyperrogue-music   training  101 Ogg Vorbis tracks (ambient, electronic)
ufoai-music        training  64 Ogg Vorbis tracks inside a pk3 (zip) archive
xblast-tnt-musics  training  6 headerless 8-bit PCM songs (``.raw``)
fb-music-high      training  1 FastTracker module (``.xm``, ffmpeg decodes it)
nexuiz-music       held-out  18 Ogg Vorbis tracks inside a pk3 archive (rock, electronic)
asc-music          held-out  3 MP3 tracks
================== ========= ==============================================

Archives are unpacked and raw PCM is wrapped as FLAC once, into a cache
folder outside the repository; ordinary audio files are read where the
package put them. The xblast ``.raw`` songs carry no header: they are read
as unsigned 8-bit mono at 22,050 Hz (their mean byte is 127.6, the silence
of unsigned PCM; at that rate they last 38–110 s like songs).

No Django here.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generation.errors import RealMusicError

TRAINING, HELD_OUT = "training", "held-out"
AUDIO_SUFFIXES = (".ogg", ".mp3", ".flac", ".wav", ".xm")
RAW_SR = 22050  # xblast-tnt's songs: unsigned 8-bit mono at this rate (Hz)



@dataclass(frozen=True)
class Package:
    name: str
    side: str


PACKAGES: tuple[Package, ...] = (
    Package("wesnoth-1.16-music", TRAINING),
    Package("hyperrogue-music", TRAINING),
    Package("ufoai-music", TRAINING),
    Package("xblast-tnt-musics", TRAINING),
    Package("fb-music-high", TRAINING),
    Package("nexuiz-music", HELD_OUT),
    Package("asc-music", HELD_OUT),
)
INSTALL_HINT = "bash scripts/setup.sh --real-music (apt-get install " + " ".join(p.name for p in PACKAGES) + ")"


def package_files(name: str) -> list[Path]:
    """Files a Debian package installed (``dpkg -L``); RealMusicError when it is not installed."""
    try:
        out = subprocess.run(["dpkg", "-L", name], capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        raise RealMusicError(f"cannot ask dpkg about {name}: {exc}; this needs a Debian machine") from None
    if out.returncode != 0:
        raise RealMusicError(f"Debian package {name} is not installed: run {INSTALL_HINT}")
    return [Path(line) for line in out.stdout.splitlines() if line.strip() and Path(line).is_file()]


def sources(package: Package, cache: Path) -> list[Path]:
    """The audio files of ``package``, sorted: its own files, or copies unpacked/wrapped into ``cache``."""
    found: list[Path] = []
    for path in package_files(package.name):
        suffix = path.suffix.lower()
        if suffix in AUDIO_SUFFIXES:
            found.append(path)
        elif suffix == ".pk3":
            found += _unpack(path, cache / package.name)
        elif suffix == ".raw":
            found.append(_wrap_raw(path, cache / package.name))
    if not found:
        raise RealMusicError(f"package {package.name} holds no audio file mashlab can read")
    return sorted(found)


def _unpack(archive: Path, folder: Path) -> list[Path]:
    """The audio members of a pk3 (zip) archive, extracted once into ``folder``."""
    out = []
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            if Path(member).suffix.lower() not in AUDIO_SUFFIXES or member.endswith("/"):
                continue
            dest = folder / Path(member).name
            if not dest.exists() or dest.stat().st_size != zf.getinfo(member).file_size:
                dest.parent.mkdir(parents=True, exist_ok=True)
                _atomic_write(dest, zf.read(member))
            out.append(dest)
    return out


def _wrap_raw(raw: Path, folder: Path) -> Path:
    """A headerless unsigned 8-bit mono song as 16-bit FLAC (lossless for 8-bit samples), made once."""
    import soundfile as sf

    dest = folder / f"{raw.stem}.flac"
    if dest.exists():
        return dest
    samples = (np.fromfile(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".flac")
    os.close(fd)
    sf.write(tmp, samples, RAW_SR, subtype="PCM_16", format="FLAC")
    os.replace(tmp, dest)
    return dest


def _atomic_write(dest: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=dest.suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, dest)


def tracks(paths: list[Path], *, min_seconds: float) -> list[Path]:
    """The files of ``paths`` that last at least ``min_seconds`` (s): music, not a game's sound effects.

    hyperrogue-music, for one, installs its sound effects (0.3–3 s) beside its music.
    """
    from generation.audio import audio_info
    from generation.errors import AudioError

    out = []
    for path in paths:
        try:
            if audio_info(path).seconds >= min_seconds:
                out.append(path)
        except AudioError:
            continue
    return out


def pick(paths: list[Path], *, limit: int | None, seed: int) -> list[Path]:
    """At most ``limit`` of ``paths``, drawn with ``np.random.default_rng(seed)``, in sorted order."""
    if limit is None or limit >= len(paths):
        return list(paths)
    idx = np.random.default_rng(seed).choice(len(paths), size=limit, replace=False)
    return sorted(paths[i] for i in idx)
