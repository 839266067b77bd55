"""Hostile files and command arguments (issue 7 §2): a clear message each, nothing stored, memory bounded.

Already covered elsewhere and not repeated: tests/test_generation_audio.py
(empty file, text renamed .wav, truncated WAV/FLAC/MP3, header claiming more
samples, NaN/inf, 8 kHz and 192 kHz accepted, 6 channels refused, an
11-minute header refused without decoding, odd names through load_audio);
tests/test_generation_ingest.py (text/truncated/silent/short/6-channel files
through `ingest`, unknown MashupDB for `clips`); tests/test_listening_study.py
(unknown MashupDB for `design_study`); tests/test_analysis_report.py (a score
outside 1-5 in a ratings CSV); tests/test_scoring_training.py (a checkpoint of
the other architecture). Here: truncated OGG, a 3-hour file with a memory
bound, every broken kind through the `ingest` command at once, an odd file name
ingested fine, and the command errors those files leave out.

Paths outside the allowed roots: `ingest` takes any readable path the operator
names on the command line (they own the machine); the web side never serves a
file outside MEDIA_ROOT (tests/test_reliability_hostile_http.py, ../ and symlinks).
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from django.core.management import CommandError, call_command

from generation.audio import load_audio
from generation.errors import AudioError
from generation.models import Clip, MashupDB, Stem

pytest_plugins = ["tests.test_listening_world"]  # its fixture: world

SR = 44100
REPO = Path(__file__).resolve().parent.parent


def noise(seconds: float, *, sr: int = SR, channels: int = 2, seed: int = 0) -> np.ndarray:
    """(n, channels) float32 seeded noise at -20 dBFS-ish: loud enough to pass the silence check."""
    return (0.1 * np.random.default_rng(seed).standard_normal((int(seconds * sr), channels))).astype(np.float32)


def sparse_wav(path: Path, *, seconds: float, sr: int = SR, channels: int = 2) -> Path:
    """A 16-bit PCM WAV whose header claims `seconds` of audio over a sparse (zero, diskless) data chunk."""
    data_bytes = int(seconds * sr) * channels * 2
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sr, sr * channels * 2, channels * 2, 16)
    header += b"data" + struct.pack("<I", data_bytes)
    with open(path, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + data_bytes)
    return path


def snapshot(media_root: Path):
    return (sorted(MashupDB.objects.values_list("name", flat=True)), Clip.objects.count(), Stem.objects.count(),
            sorted(p for p in media_root.rglob("*") if p.is_file()))


# --- load_audio ------------------------------------------------------------------------------

def test_a_truncated_ogg_is_refused_with_one_line(tmp_path):
    good = tmp_path / "good.ogg"
    sf.write(good, noise(8.0), SR, format="OGG", subtype="VORBIS")
    assert load_audio(good).shape[0] == 2
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(AudioError) as info:
        load_audio(cut)
    assert str(info.value).startswith(str(cut)) and "\n" not in str(info.value)


def test_a_three_hour_file_is_refused_from_its_header_and_previewed_in_little_memory(tmp_path):
    """3 h of 44.1 kHz stereo (1.9 GB of samples, sparse on disk): refused at once; a 6 s cut reads in < 300 MB.

    Peak memory is this process's VmHWM (ru_maxrss would include pytest's, inherited across fork and exec).
    """
    path = sparse_wav(tmp_path / "three hours.wav", seconds=3 * 3600)
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from generation.audio import load_audio
        from generation.errors import AudioError
        t0 = time.perf_counter()
        try:
            load_audio({str(path)!r})
            print("loaded")
        except AudioError as exc:
            print("refused", time.perf_counter() - t0, exc)
        audio = load_audio({str(path)!r}, start_s=5000.0, duration_s=6.0, allow_silent=True)
        hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
        print("preview", audio.shape, hwm_kb // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    refused, preview = out.stdout.strip().splitlines()[-2:]
    assert refused.startswith("refused") and "10800.0 s to read, longer than the limit" in refused, refused
    assert float(refused.split()[1]) < 1.0
    assert preview.startswith("preview (2, 264600)"), preview
    assert int(preview.split()[-1]) < 300, f"peak memory {preview.split()[-1]} MB for a 6 s cut of a 3 h file"


# --- the ingest command ----------------------------------------------------------------------

@pytest.fixture
def broken_files(tmp_path) -> Path:
    """One file of every broken kind not yet tried through `ingest`."""
    d = tmp_path / "broken"
    d.mkdir()
    (d / "empty.wav").write_bytes(b"")
    for fmt, ext, subtype in [("FLAC", "flac", "PCM_16"), ("OGG", "ogg", "VORBIS")]:
        whole = tmp_path / f"whole.{ext}"
        sf.write(whole, noise(10.0), SR, format=fmt, subtype=subtype)
        (d / f"truncated.{ext}").write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    whole_wav = tmp_path / "whole.wav"
    sf.write(whole_wav, noise(10.0), SR, subtype="PCM_16")
    if shutil.which("ffmpeg"):
        whole_mp3 = tmp_path / "whole.mp3"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(whole_wav), "-b:a", "128k", str(whole_mp3)],
                       check=True)
        (d / "truncated.mp3").write_bytes(whole_mp3.read_bytes()[: whole_mp3.stat().st_size // 3])
    audio = noise(10.0)
    audio[100:110] = np.nan
    audio[200, 1] = np.inf
    sf.write(d / "nan.wav", audio, SR, subtype="FLOAT")
    liar = whole_wav.read_bytes()
    (d / "liar.wav").write_bytes(liar[: len(liar) // 2])  # the header still claims 10 s
    sparse_wav(d / "three hours.wav", seconds=3 * 3600)
    return d


@pytest.mark.django_db(transaction=True)
def test_ingest_reports_each_broken_file_in_one_line_and_stores_nothing(broken_files, settings):
    before = snapshot(settings.MEDIA_ROOT)
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing could be ingested"):
        call_command("ingest", str(broken_files), "--db", "hostile", "--separator", "spleeter:2stems",
                     "--no-progress", stdout=io.StringIO(), stderr=err)
    lines = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
    names = sorted(p.name for p in broken_files.iterdir())
    for name in names:
        mine = [line for line in lines if name in line]
        assert len(mine) == 1, (name, err.getvalue())
    assert "NaN or infinite" in next(line for line in lines if "nan.wav" in line)
    # ingest reads the 3 h file one clip window at a time (streamed, never whole); its samples are zeros
    three = next(line for line in lines if "three hours.wav" in line)
    assert "longer than the limit" in three or "silent" in three, three
    assert snapshot(settings.MEDIA_ROOT) == before


@pytest.mark.django_db(transaction=True)
def test_a_file_name_with_spaces_quotes_and_non_ascii_is_ingested(few_songs, tmp_path, settings):
    song = few_songs[2]
    odd = tmp_path / "multi track" / "Ünïcödé \"song\" it's №1 — 🎵"
    odd.mkdir(parents=True)
    for raw in ("vocals", "drums", "bass", "other"):
        shutil.copy(song.stem_paths[raw], odd / f"{raw}.wav")
    out = io.StringIO()
    call_command("ingest", str(odd.parent), "--db", "odd-names", "--separator", "stems", "--jobs", "1",
                 "--no-progress", stdout=out, stderr=io.StringIO())
    assert "1 clips added" in out.getvalue(), out.getvalue()
    clip = Clip.objects.get(db__name="odd-names")
    assert "Ünïcödé" in clip.source
    for path in clip.stem_paths().values():
        assert Path(path).is_file()
        assert str(path).isascii() or Path(path).resolve().is_relative_to(Path(settings.MEDIA_ROOT).resolve())


# --- other commands ----------------------------------------------------------------------------

@pytest.mark.django_db
def test_commands_name_an_unknown_mashupdb(world):
    for args in (["candidates", "--db", "nope"],
                 ["generate", "--db", "nope", "--condition", "matched", "--count", "1", "--seed", "0"],
                 ["score", "--system", "amu", "--db", "nope"]):
        with pytest.raises(CommandError, match="nope") as info:
            call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())
        assert "\n" not in str(info.value)


@pytest.mark.django_db
def test_generate_refuses_a_condition_that_cannot_be_satisfied(tmp_path):
    """A MashupDB without stems has no vocal seed; one whose clips are all C major at 120 BPM has no
    accompaniment in another key. Both: a one-line CommandError and no candidate stored."""
    from generation.models import Candidate

    db = MashupDB.objects.create(name="same-key")
    args = ["generate", "--db", "same-key", "--count", "3", "--seed", "0", "--condition", "unmatched_key"]
    clips = [Clip.objects.create(db=db, name=f"c{i}", source=f"/s/{i}.wav", source_sha256=f"{i:064d}", start_s=0.0,
                                 duration_s=30.0, sample_rate=SR, audio_path=f"clips/{i}.wav", key_label="C major",
                                 tempo_bpm=120.0, beats_per_bar=4, analysis_source="estimated",
                                 beats=[0.5 * b for b in range(60)], downbeats=[2.0 * b for b in range(15)])
             for i in range(3)]
    with pytest.raises(CommandError, match="no seed clip has a vocal stem"):
        call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())
    for clip in clips:
        for role in ("vocal", "harmonic", "percussion"):
            Stem.objects.create(clip=clip, name=role, kind="role", path=f"stems/{clip.pk}/{role}.wav", method="stems")
    with pytest.raises(CommandError) as info:
        call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())
    assert "\n" not in str(info.value) and str(info.value), str(info.value)
    assert not Candidate.objects.exists()


@pytest.mark.django_db
def test_score_refuses_a_checkpoint_that_does_not_match_its_architecture(tmp_path):
    import torch

    from scoring.models import System

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    wrong = tmp_path / "wrong.pt"
    torch.save({"architecture": {"arch": "premix", "width": 1.0, "n_mels": 128},
                "model_state": {"conv.weight": torch.zeros(3, 3)}}, wrong)
    for path in (garbage, wrong, tmp_path / "missing.pt"):
        with pytest.raises(CommandError) as info:
            call_command("score", "--system", "mine", "--checkpoint", str(path), stdout=io.StringIO())
        assert str(path) in str(info.value), str(info.value)
    assert not System.objects.filter(name="mine").exists()


@pytest.mark.django_db
def test_analyse_refuses_a_ratings_csv_with_missing_columns_or_bad_scores(tmp_path):
    missing = tmp_path / "missing.csv"
    missing.write_text("task,page,participant,stimulus\ngeneration,1,p1,s1\n")
    with pytest.raises(CommandError) as info:
        call_command("analyse", "--ratings", str(missing), "--out", str(tmp_path / "o1"))
    assert "column" in str(info.value).lower(), str(info.value)
    assert not (tmp_path / "o1").exists() or not any((tmp_path / "o1").iterdir())
    for bad in ("abc", "3.5", ""):
        path = tmp_path / "bad.csv"
        path.write_text("task,page,participant,stimulus,system,group,aspect,score\n"
                        f"generation,1,p1,s1,A,top,overall,{bad}\n")
        with pytest.raises(CommandError) as info:
            call_command("analyse", "--ratings", str(path), "--out", str(tmp_path / "o2"))
        assert "score" in str(info.value), (bad, str(info.value))
