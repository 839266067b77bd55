"""The real-music catalogue (generation.real_music): packages split by side, archives and raw PCM made readable.

The archive and raw files here are made by the test (a zip holding a tone, a
few bytes of unsigned 8-bit PCM), standing in for the packages' pk3 and
.raw files; the packages themselves are used when installed: the command
itself runs on two tracks of xblast-tnt-musics (`setup.sh --tests` installs it).
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


XBLAST = "/usr/share/games/xblast-tnt/sounds"


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.skipif(not Path(XBLAST).exists(), reason="xblast-tnt-musics is not installed (bash scripts/setup.sh "
                    "--tests installs it: 4 MB)")
def test_the_command_stores_batch_by_batch_and_a_rerun_adds_nothing(tmp_path, settings):
    """Two real tracks (xblast-tnt-musics' raw PCM) through Spleeter and madmom, one batch each."""
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from generation.models import Clip, MashupDB
    from tests.test_generation_separation import needs_spleeter

    needs_spleeter()
    settings.DATA_DIR = tmp_path / "data"
    args = ["real_music", "--packages", "xblast-tnt-musics", "--tracks", "2", "--clips-per-track", "1",
            "--batch-tracks", "1", "--jobs", "1", "--train-db", "rm-train", "--held-db", "rm-held", "--no-progress"]
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    print(text)
    assert "xblast-tnt-musics (training): 2 of 4 tracks" in text
    assert "rm-train: tracks 1-1 of 2 done" in text and "rm-train: tracks 2-2 of 2 done" in text
    clips = list(Clip.objects.filter(db__name="rm-train"))
    assert len(clips) == 2 and len({c.source_sha256 for c in clips}) == 2  # one clip from each track
    for clip in clips:
        assert clip.source.startswith(str(settings.DATA_DIR / "real-music"))  # the raw PCM, wrapped as FLAC
        assert clip.segment_method == "auto" and clip.segment_score is not None
        assert 20 < clip.tempo_bpm < 400 and len(clip.beats) > 8
        assert {s.name for s in clip.stems.filter(kind="role")} == {"vocal", "harmonic", "percussion"}
        assert all(Path(settings.MEDIA_ROOT, s.path).is_file() for s in clip.stems.all())
    mb_per_clip = float(text.split(" MB per clip")[0].rsplit("= ", 1)[1])
    assert 0 < mb_per_clip < 15  # issue 11: under 15 MB per clip
    assert not MashupDB.objects.filter(name="rm-held").exists()  # no held-out package was asked for

    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    assert "0 clips added, 2 present, 0 failed" in out.getvalue()
    assert Clip.objects.filter(db__name="rm-train").count() == 2

    with pytest.raises(CommandError, match="not one of the seven packages"):
        call_command("real_music", "--packages", "vgmusic", stdout=io.StringIO())
    with pytest.raises(CommandError, match="--batch-tracks must be at least 1"):
        call_command(*args, "--batch-tracks", "0", stdout=io.StringIO())
