"""`ingest` end to end on generated songs: real Spleeter, real madmom, all-or-nothing per clip."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from django.core.management import CommandError, call_command

from generation.models import Clip, MashupDB, Stem
from generation.services import db_disk_usage


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, "--no-progress", stdout=out, stderr=err) if args[0] == "ingest" else call_command(
        *args, stdout=out, stderr=err
    )
    return out.getvalue(), err.getvalue()


def media_files(media_root: Path) -> set[Path]:
    return {p for p in media_root.rglob("*") if p.is_file()}


def snapshot():
    return (
        list(MashupDB.objects.values_list("name", flat=True)),
        list(Clip.objects.values_list("id", flat=True)),
        Stem.objects.count(),
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_ingest_separates_analyses_stores_and_skips_on_rerun(few_songs, tmp_path, settings):
    songs = few_songs[:2]
    folder = tmp_path / "in"
    for s in songs:  # a folder of files, as a user would point ingest at
        (folder / s.name).mkdir(parents=True)
        shutil.copy(s.mix_path, folder / s.name / "mix.wav")
    out, err = run("ingest", str(folder), "--db", "gen", "--separator", "spleeter:2stems", "--jobs", "1")
    assert "2 clips added" in out, out + err
    clips = list(Clip.objects.filter(db__name="gen").order_by("name"))
    assert [c.name for c in clips] == sorted(s.name for s in songs)
    for clip, song in zip(clips, sorted(songs, key=lambda s: s.name)):
        assert clip.audio_file.is_file() and clip.audio_file.suffix == ".flac"
        assert clip.segment_method == "start" and clip.start_s == 0.0 and clip.gain_db == 0.0
        roles = clip.stem_paths(kind="role")
        assert all(p.suffix == ".flac" for p in roles.values())
        assert set(roles) == {"vocal", "harmonic", "percussion"}
        assert set(clip.stem_paths(kind="raw")) == {"vocals", "accompaniment"}
        assert all(p.is_file() and settings.MEDIA_ROOT in p.parents for p in roles.values())
        methods = {s.name: s.method for s in clip.stems.filter(kind="role")}
        assert methods == {"vocal": "spleeter:2stems", "harmonic": "spleeter:2stems+hpss",
                           "percussion": "spleeter:2stems+hpss"}
        assert clip.key_label == song.key.label
        assert clip.tempo_bpm == pytest.approx(song.tempo_bpm, rel=0.03) or clip.tempo_bpm == pytest.approx(
            song.tempo_bpm / 2, rel=0.03)
        assert clip.beats and clip.downbeats and clip.analysis_source == "estimated"
        assert clip.duration_s == pytest.approx(min(30.0, song.seconds), abs=0.05)

    before = (snapshot(), media_files(settings.MEDIA_ROOT))
    out, _ = run("ingest", str(folder), "--db", "gen", "--separator", "spleeter:2stems")
    assert "0 clips added, 2 already present" in out
    assert (snapshot(), media_files(settings.MEDIA_ROOT)) == before

    out, _ = run("clips", "--db", "gen", "--json")
    records = json.loads(out)
    assert len(records) == 2
    for r in records:
        assert set(r) >= {"id", "source", "start_s", "duration_s", "key", "tempo_bpm", "beats", "downbeats",
                          "beats_per_bar", "stems", "methods"}
        assert set(r["stems"]) == {"vocal", "harmonic", "percussion"}
        assert all(Path(p).is_file() for p in r["stems"].values())
        assert (r["segment_method"], r["segment_score"], r["gain_db"]) == ("start", None, 0.0)
    size = db_disk_usage("gen")
    print(f"\n2 clips ({', '.join(f'{c.duration_s:.0f} s' for c in clips)}), spleeter:2stems: {size / 2e6:.1f} MB per clip")
    assert 0 < size < 2 * 8e6  # 20 s clips: five 16-bit FLAC files each; float WAV took 5 x 7.1 MB


def _write(path: Path, audio: np.ndarray, sr: int = 44100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sr)
    return path


@pytest.fixture
def bad_files(tmp_path, few_songs):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "notes.wav").write_text("this is not audio\n")
    good = few_songs[0].mix_path.read_bytes()
    (d / "truncated.wav").write_bytes(good[:30000])
    _write(d / "silent.wav", np.zeros((44100 * 8, 2), dtype=np.float32))
    _write(d / "short.wav", 0.1 * np.random.default_rng(0).standard_normal((44100 * 3, 2)).astype(np.float32))
    _write(d / "six.wav", 0.1 * np.random.default_rng(1).standard_normal((44100 * 8, 6)).astype(np.float32))
    return d


@pytest.mark.django_db(transaction=True)
def test_bad_inputs_get_one_clear_line_each_and_change_nothing(bad_files, tmp_path, settings):
    before = (snapshot(), media_files(settings.MEDIA_ROOT))
    missing = tmp_path / "nope.wav"
    paths = sorted(str(p) for p in bad_files.iterdir()) + [str(missing)]
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing could be ingested"):
        call_command("ingest", *paths, "--db", "bad", "--separator", "spleeter:2stems", "--no-progress",
                     stdout=io.StringIO(), stderr=err)
    lines = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
    expected = {"notes.wav": "", "truncated.wav": "", "silent.wav": "silent", "short.wav": "5",
                "six.wav": "6 channels", "nope.wav": "no such"}
    for name, word in expected.items():
        mine = [line for line in lines if name in line]
        assert len(mine) == 1, (name, lines)
        assert word.lower() in mine[0].lower(), mine[0]
    assert (snapshot(), media_files(settings.MEDIA_ROOT)) == before  # no DB row, no half-ingested clip, no file


@pytest.mark.django_db(transaction=True)
def test_stems_folders_import_as_is_and_a_bad_song_does_not_stop_the_good(few_songs, tmp_path, settings):
    song = few_songs[1]
    root = tmp_path / "multitrack"
    names = {"vocals": "vocals.wav", "drums": "drums.wav", "bass": "bass.wav", "other": "other.wav"}
    for raw, fname in names.items():
        (root / "good").mkdir(parents=True, exist_ok=True)
        shutil.copy(song.stem_paths[raw], root / "good" / fname)
    (root / "broken").mkdir()
    (root / "broken" / "vocals.wav").write_text("not audio")
    out, err = run("ingest", str(root), "--db", "multi", "--separator", "stems", "--jobs", "1")
    assert "1 clips added" in out, out + err
    assert "broken" in err
    clip = Clip.objects.get(db__name="multi")
    assert {s.name: s.method for s in clip.stems.filter(kind="role")} == {
        "vocal": "stems", "harmonic": "stems", "percussion": "stems"}
    vocal, _ = sf.read(clip.stem_paths()["vocal"], always_2d=True)
    truth, _ = sf.read(song.stem_paths["vocals"], always_2d=True)
    n = min(len(vocal), len(truth))
    assert np.allclose(vocal[:n], truth[:n], atol=1e-4)  # imported, not re-separated
    harmonic, _ = sf.read(clip.stem_paths()["harmonic"], always_2d=True)
    bass, _ = sf.read(song.stem_paths["bass"], always_2d=True)
    other, _ = sf.read(song.stem_paths["other"], always_2d=True)
    assert np.allclose(harmonic[:n], (bass + other)[:n], atol=1e-4)  # harmonic = bass + other


@pytest.mark.django_db(transaction=True)
def test_harmonix_annotations_make_verse_and_chorus_clips(few_songs, tmp_path):
    song = few_songs[0]
    audio = tmp_path / "audio" / "0007_tune"  # a song folder of stems, named as its annotation files
    audio.mkdir(parents=True)
    for raw, path in song.stem_paths.items():
        shutil.copy(path, audio / f"{raw}.wav")
    ann = tmp_path / "dataset"
    (ann / "beats_and_downbeats").mkdir(parents=True)
    (ann / "segments").mkdir()
    downs = set(song.downbeats)
    rows, count = [], 0
    for t in song.beats:
        count = 1 if t in downs else count + 1
        rows.append(f"{t:.4f}\t{count}\t0")
    (ann / "beats_and_downbeats" / "0007_tune.txt").write_text("\n".join(rows) + "\n")
    half = round(song.seconds / 2, 3)
    (ann / "segments" / "0007_tune.txt").write_text(f"0.0 verse\n{half} chorus\n{song.seconds - 0.01} end\n")
    out, err = run("ingest", str(audio), "--db", "hx", "--separator", "stems",
                   "--annotations", str(ann), "--jobs", "1")
    clips = list(Clip.objects.filter(db__name="hx").order_by("start_s"))
    assert [c.segment_label for c in clips] == ["verse", "chorus"], out + err
    assert {c.segment_method for c in clips} == {"annotated"}
    for c in clips:
        assert c.analysis_source == "annotated"
        assert c.tempo_bpm == pytest.approx(song.tempo_bpm, rel=0.01)
        assert c.beats_per_bar == song.beats_per_bar
        assert c.beats[0] >= 0 and c.beats[-1] <= c.duration_s
    assert clips[1].start_s == pytest.approx(half)


@pytest.mark.django_db(transaction=True)
def test_unknown_db_and_bad_annotation_folder_are_clear_errors(tmp_path):
    with pytest.raises(CommandError, match="no MashupDB named 'nope'"):
        call_command("clips", "--db", "nope", stdout=io.StringIO())
    with pytest.raises(CommandError, match="annotation folder not found"):
        call_command("ingest", str(tmp_path), "--db", "x", "--annotations", str(tmp_path / "missing"),
                     stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.django_db(transaction=True)
def test_start_cuts_consecutive_clips_and_scales_audio_beyond_full_scale_to_fit(few_songs, tmp_path):
    """--clips-per-file 2 from the start: clips at 0 and 8 s. Stems summing past full scale (as Vorbis decodes
    of loud masters do) are scaled by one gain that is recorded, so 16-bit FLAC holds them unclipped."""
    song = few_songs[0]
    folder = tmp_path / "loud" / "song"
    folder.mkdir(parents=True)
    for raw, path in song.stem_paths.items():
        audio, sr = sf.read(str(path), dtype="float32")
        sf.write(folder / f"{raw}.wav", 2.5 * audio, sr, subtype="FLOAT")
    out, err = run("ingest", str(folder.parent), "--db", "loud", "--separator", "stems", "--clip-seconds", "8",
                   "--clips-per-file", "2", "--jobs", "1")
    assert "2 clips added" in out, out + err
    clips = list(Clip.objects.filter(db__name="loud").order_by("start_s"))
    assert [(c.name, c.start_s, c.duration_s) for c in clips] == [("song", 0.0, 8.0), ("song-2", 8.0, 8.0)]
    for clip in clips:
        truth = sum(sf.read(str(folder / f"{raw}.wav"), dtype="float32", always_2d=True)[0] for raw in song.stem_paths)
        i = int(clip.start_s * 44100)
        window = truth[i: i + int(clip.duration_s * 44100)]
        stored, _ = sf.read(str(clip.audio_file), dtype="float32", always_2d=True)
        assert clip.audio_file.suffix == ".flac" and clip.gain_db < 0
        expected_gain = 10 ** (clip.gain_db / 20)
        assert np.max(np.abs(stored)) <= 1.0 and np.max(np.abs(window)) > 1.0
        assert np.max(np.abs(stored - window * expected_gain)) < 2e-4  # the same audio, one gain, 16-bit rounding


def test_a_stem_beyond_full_scale_scales_the_whole_clip_into_flac(tmp_path):
    """Separators can overshoot full scale; then clip audio and stems share one gain and all become FLAC."""
    from generation.audio import store_audio
    from generation.ingest import ClipPlan, PreparedClip, refit_full_scale

    rng = np.random.default_rng(2)
    vocal = (0.3 * rng.standard_normal((2, 44100 * 6))).clip(-0.9, 0.9).astype(np.float32)
    rest = (1.1 * np.sin(np.linspace(0, 2000, 44100 * 6)))[None].repeat(2, 0).astype(np.float32)  # peaks at 1.1
    folder = tmp_path / "clip"
    names = {key: store_audio(folder / key, audio, sr=44100).name
             for key, audio in (("clip", (vocal + rest) / 2), ("vocals", vocal), ("rest", rest))}
    assert names["rest"] == "rest.wav"
    plan = ClipPlan(tmp_path / "x.wav", "x", 0.0, 6.0, "0" * 64)
    prepared = PreparedClip(plan, folder, names["clip"], 44100, 6.0,
                            stems=[("vocals", "raw", names["vocals"], "m"), ("vocal", "role", names["vocals"], "m"),
                                   ("rest", "role", names["rest"], "m")])
    refit_full_scale(prepared)
    gain = 10 ** (prepared.gain_db / 20)
    assert prepared.gain_db == pytest.approx(20 * np.log10(0.999 / 1.1), abs=1e-3)
    assert {Path(f).suffix for _, _, f, _ in prepared.stems} == {".flac"} and not (folder / "rest.wav").exists()
    back = {f: sf.read(str(folder / f), dtype="float32", always_2d=True)[0].T for _, _, f, _ in prepared.stems}
    assert np.max(np.abs(back["rest.flac"] - rest * gain)) < 1e-4
    assert np.max(np.abs(back["vocals.flac"] - vocal * gain)) < 1e-4  # every file took the same gain


@pytest.mark.django_db(transaction=True)
def test_progress_moves_as_each_clip_is_analysed_and_again_as_it_is_stored(few_songs, tmp_path, settings):
    """Two steps per clip (of 2N): the bar a job page draws moves during the batch, not only at its end."""
    from generation.services import ingest_into_db

    settings.MEDIA_ROOT = str(tmp_path / "media")
    root = tmp_path / "multitrack"
    for song in few_songs[:2]:
        (root / song.name).mkdir(parents=True)
        for raw in ("vocals", "drums", "bass", "other"):
            shutil.copy(song.stem_paths[raw], root / song.name / f"{raw}.wav")
    calls: list[tuple[int, int, str]] = []
    report = ingest_into_db([root], db_name="steps", separator="stems", progress=False, say=lambda line: None,
                            on_progress=lambda done, total, item: calls.append((done, total, item)))
    assert len(report.added) == 2
    assert [c[:2] for c in calls] == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert [c[2].split(" ")[0] for c in calls] == ["separating", "analysed", "analysed", "stored", "stored"]
