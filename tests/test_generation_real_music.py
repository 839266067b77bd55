"""The real-music catalogue (generation.real_music): packages split by side, archives and raw PCM made readable.

The archive and raw files here are made by the test (a zip holding a tone, a
few bytes of unsigned 8-bit PCM), standing in for the packages' pk3 and
.raw files; the packages themselves are used when installed.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from generation import real_music
from generation.errors import RealMusicError
from generation.real_music import HELD_OUT, PACKAGES, TRAINING, pick


def test_every_package_is_on_exactly_one_side_and_both_sides_are_used():
    sides = {p.name: p.side for p in PACKAGES}
    assert len(sides) == len(PACKAGES) == 7
    assert set(sides.values()) == {TRAINING, HELD_OUT}


def test_a_missing_package_names_the_setup_command():
    with pytest.raises(RealMusicError, match="setup.sh --real-music"):
        real_music.package_files("mashlab-no-such-package")


def test_pick_draws_the_same_tracks_for_the_same_seed():
    paths = [Path(f"/x/{i:02d}.ogg") for i in range(20)]
    a, b = pick(paths, limit=5, seed=3), pick(paths, limit=5, seed=3)
    assert a == b and len(a) == 5 and a == sorted(a)
    assert pick(paths, limit=5, seed=4) != a
    assert pick(paths, limit=None, seed=0) == paths


def test_raw_pcm_is_wrapped_as_lossless_flac_once(tmp_path):
    raw = tmp_path / "song.raw"
    samples = (128 + 100 * np.sin(np.arange(22050) * 0.05)).astype(np.uint8)
    samples.tofile(raw)
    out = real_music._wrap_raw(raw, tmp_path / "cache")
    audio, sr = sf.read(out, dtype="float32")
    assert sr == real_music.RAW_SR and audio.shape == (22050,)
    assert np.allclose(audio, (samples.astype(np.float32) - 128) / 128, atol=1e-4)
    mtime = out.stat().st_mtime_ns
    assert real_music._wrap_raw(raw, tmp_path / "cache") == out and out.stat().st_mtime_ns == mtime


def test_audio_members_of_an_archive_are_unpacked_and_other_members_ignored(tmp_path):
    buf = io.BytesIO()
    sf.write(buf, np.zeros(4410, dtype=np.float32), 44100, format="WAV")
    archive = tmp_path / "music.pk3"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("music/track.wav", buf.getvalue())
        zf.writestr("maps/readme.txt", "not audio")
    out = real_music._unpack(archive, tmp_path / "cache")
    assert [p.name for p in out] == ["track.wav"] and out[0].read_bytes() == buf.getvalue()


def test_short_files_are_not_tracks(tmp_path):
    sf.write(tmp_path / "blip.wav", np.zeros(4410, dtype=np.float32), 44100)
    sf.write(tmp_path / "song.wav", np.zeros(44100 * 3, dtype=np.float32), 44100)
    kept = real_music.tracks(sorted(tmp_path.glob("*.wav")), min_seconds=2.0)
    assert [p.name for p in kept] == ["song.wav"]


@pytest.mark.skipif(not Path("/usr/share/games/wesnoth").exists(), reason="wesnoth-1.16-music is not installed "
                    "(bash scripts/setup.sh --real-music)")
def test_an_installed_package_lists_its_ogg_tracks(tmp_path):
    package = next(p for p in PACKAGES if p.name == "wesnoth-1.16-music")
    found = real_music.sources(package, tmp_path)
    assert len(found) >= 30 and all(p.suffix == ".ogg" for p in found)
