"""Pytest plugin: generated demo songs with ground truth, rendered once and cached.

Load it from the root conftest with ``pytest_plugins = ["tests.fixtures_songs"]``
(or ``pytest -p tests.fixtures_songs``). Songs are rendered into
``$MASHLAB_TEST_CACHE`` (default ``<repo>/data/test-cache``) and reused by later
runs: :func:`generation.synth_songs.render_song` skips a song whose folder already
holds its spec.

Fixtures (session scope):
- ``song_set``: 24 songs of 20 s (seed 0): all 24 keys, 4/4 and 3/4, 70–160 BPM.
- ``few_songs``: the first 4 of them (major 4/4, minor 4/4, major 3/4, minor 3/4).
- ``song_cache_dir``: the folder both are rendered into.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from generation.synth_songs import (
    SongTruth,
    demo_song_specs,
    link_stems_folders,
    render_songs,
)

SONG_SET_COUNT = 24
SONG_SET_SEED = 0
SONG_SET_SECONDS = 20.0
FEW_SONGS_COUNT = 4


def test_cache_root() -> Path:
    """``$MASHLAB_TEST_CACHE`` or ``<repo>/data/test-cache``."""
    env = os.environ.get("MASHLAB_TEST_CACHE")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data" / "test-cache"


test_cache_root.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test (pytest reads it)


def stems_folder(folder: Path, *, count: int, seed: int, seconds: float, take: int | None = None) -> Path:
    """Render (or reuse from the cache) `count` songs and lay the first `take` out in `folder` as song
    folders of stems (vocals/drums/bass/other.wav symlinks), ready for `ingest --separator stems`."""
    cache = test_cache_root() / f"songs-seed{seed}-n{count}-{seconds:g}s"
    songs = render_songs(demo_song_specs(count=count, seed=seed, seconds=seconds), cache, progress=False)
    return link_stems_folders(songs[:take], folder)


def mix_files(folder: Path, *, count: int, seed: int, seconds: float) -> list[Path]:
    """Render (or reuse from the cache) `count` songs and link each one's mix into `folder` as
    `<song name>.wav` (what a user would upload); returns the links in song order."""
    cache = test_cache_root() / f"songs-seed{seed}-n{count}-{seconds:g}s"
    songs = render_songs(demo_song_specs(count=count, seed=seed, seconds=seconds), cache, progress=False)
    folder.mkdir(parents=True, exist_ok=True)
    links = []
    for song in songs:
        link = folder / f"{song.name}.wav"
        link.symlink_to(song.out_dir / "mix.wav")
        links.append(link)
    return links


def _set_dir() -> Path:
    return test_cache_root() / f"songs-seed{SONG_SET_SEED}-n{SONG_SET_COUNT}-{SONG_SET_SECONDS:g}s"


def _specs():
    return demo_song_specs(count=SONG_SET_COUNT, seed=SONG_SET_SEED, seconds=SONG_SET_SECONDS)


@pytest.fixture(scope="session")
def song_cache_dir() -> Path:
    """Folder holding one subfolder per cached demo song."""
    path = _set_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def song_set(song_cache_dir: Path) -> list[SongTruth]:
    """24 rendered 20 s songs with truth (about 20 s to render the first time)."""
    return render_songs(_specs(), song_cache_dir, progress=False)


@pytest.fixture(scope="session")
def few_songs(song_cache_dir: Path) -> list[SongTruth]:
    """The first 4 songs of ``song_set``: every (mode, metre) pair once."""
    return render_songs(_specs()[:FEW_SONGS_COUNT], song_cache_dir, progress=False)
