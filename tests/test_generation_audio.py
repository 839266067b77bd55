"""generation.audio: every bad input is refused with one line naming the file and the problem."""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from generation.audio import audio_info, is_audio_file, load_audio, store_audio, write_flac, write_wav
from generation.errors import AudioError

SR = 44100


def tone(seconds: float, *, sr: int = SR, channels: int = 2, freq_hz: float = 440.0, amp: float = 0.3,
         seed: int = 0) -> np.ndarray:
    """(n, channels) float32: a sine plus a little seeded noise, so every channel differs slightly."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    x = amp * np.sin(2 * np.pi * freq_hz * t)
    return (x[:, None] + 0.01 * rng.standard_normal((t.size, channels))).astype(np.float32)


def wav(path: Path, seconds: float = 6.0, **kw) -> Path:
    sr = kw.pop("sr", SR)
    subtype = kw.pop("subtype", "FLOAT")
    sf.write(str(path), tone(seconds, sr=sr, **kw), sr, subtype=subtype)
    return path


def refused(path: Path, *words: str, **kw) -> str:
    """Load `path`, expect AudioError; the message is one line naming the file and containing `words`."""
    with pytest.raises(AudioError) as info:
        load_audio(path, **kw)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path)), message
    for word in words:
        assert word in message, message
    return message


# --- good input -------------------------------------------------------------------------------

def test_it_returns_float32_stereo_at_the_target_rate(tmp_path):
    audio = load_audio(wav(tmp_path / "a.wav", 6.0), sr=SR)
    assert audio.dtype == np.float32
    assert audio.shape == (2, 6 * SR)


def test_it_duplicates_mono_to_stereo(tmp_path):
    audio = load_audio(wav(tmp_path / "mono.flac", 6.0, channels=1, subtype="PCM_24"), sr=SR)
    assert audio.shape == (2, 6 * SR)
    np.testing.assert_array_equal(audio[0], audio[1])


@pytest.mark.parametrize("file_sr", [8000, 192000])
def test_it_accepts_and_resamples_low_and_high_rates(tmp_path, file_sr):
    path = wav(tmp_path / f"rate{file_sr}.wav", 6.0, sr=file_sr, freq_hz=1000.0)
    assert audio_info(path).sr == file_sr
    audio = load_audio(path, sr=SR)
    assert audio.shape == (2, 6 * SR)
    spectrum = np.abs(np.fft.rfft(audio[0]))
    peak_hz = np.argmax(spectrum) * SR / audio.shape[1]
    assert abs(peak_hz - 1000.0) < 1.0  # the tone keeps its pitch through resampling


def test_it_cuts_the_requested_span(tmp_path):
    path = wav(tmp_path / "long.wav", 12.0)
    full, _ = sf.read(str(path), dtype="float32", always_2d=True)
    audio = load_audio(path, sr=SR, start_s=2.0, duration_s=6.0)
    np.testing.assert_array_equal(audio, full[2 * SR: 8 * SR].T)


def test_it_reads_names_with_spaces_quotes_and_non_ascii(tmp_path):
    path = wav(tmp_path / "Björk – \"It's\" 'Oh So' Quiet ♪.wav", 6.0)
    assert load_audio(path, sr=SR).shape == (2, 6 * SR)
    bad = tmp_path / "Sigur Rós – \"Ágætis\" byrjun.wav"
    bad.write_text("not audio at all\n")
    refused(bad, "not an audio file")


def test_it_decodes_m4a_through_ffmpeg(tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg missing: apt-get install ffmpeg")
    src = wav(tmp_path / "src.wav", 6.0)
    m4a = tmp_path / "clip.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c:a", "aac", str(m4a)], check=True)
    assert audio_info(m4a).reader == "ffmpeg"
    audio = load_audio(m4a, sr=SR)
    assert audio.shape[0] == 2 and abs(audio.shape[1] - 6 * SR) < 0.05 * SR
    assert np.corrcoef(audio[0, 10000:200000], sf.read(str(src))[0][10000:200000, 0])[0, 1] > 0.9


def test_audio_info_reads_the_header(tmp_path):
    info = audio_info(wav(tmp_path / "a.wav", 7.5, sr=22050, channels=1))
    assert (info.sr, info.channels, info.frames, info.seconds) == (22050, 1, int(7.5 * 22050), 7.5)


def test_it_recognises_audio_extensions():
    assert is_audio_file(Path("a/B.FLAC")) and is_audio_file(Path("x.m4a")) and is_audio_file(Path("y.aiff"))
    assert not is_audio_file(Path("notes.txt")) and not is_audio_file(Path("wav"))


# --- bad input --------------------------------------------------------------------------------

def test_it_refuses_a_missing_path(tmp_path):
    refused(tmp_path / "nowhere.wav", "no such file")


def test_it_refuses_a_folder(tmp_path):
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    refused(folder, "not a file")


def test_it_refuses_a_text_file_renamed_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("These are my lyrics, not a recording.\n" * 20)
    refused(path, "not an audio file")


def test_it_refuses_an_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    refused(path, "empty")


def test_it_refuses_a_wav_without_samples(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(str(path), np.zeros((0, 2), dtype=np.float32), SR)
    refused(path, "empty")


def test_it_refuses_a_truncated_wav(tmp_path):
    data = wav(tmp_path / "full.wav", 6.0).read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: len(data) // 2])
    refused(path, "truncated", "promises 264600 frames")


def test_it_refuses_a_wav_whose_header_claims_more_samples(tmp_path):
    path = wav(tmp_path / "liar.wav", 6.0, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.index(b"data")
    declared = struct.unpack("<I", data[at + 4: at + 8])[0]
    data[at + 4: at + 8] = struct.pack("<I", declared + 4 * SR * 3)  # three more seconds than present
    path.write_bytes(bytes(data))
    refused(path, "truncated", "promises 396900 frames", "only 264600")


def test_it_refuses_a_wav_cut_inside_its_header(tmp_path):
    path = tmp_path / "stub.wav"
    path.write_bytes(wav(tmp_path / "full.wav").read_bytes()[:30])
    refused(path, "truncated or corrupt WAV")


def test_it_refuses_a_truncated_flac(tmp_path):
    data = wav(tmp_path / "full.flac", 6.0, subtype="PCM_16").read_bytes()
    path = tmp_path / "cut.flac"
    path.write_bytes(data[: len(data) // 2])
    refused(path, "truncated or corrupt FLAC")


def test_it_refuses_a_truncated_mp3(tmp_path):
    data = wav(tmp_path / "full.mp3", 6.0, subtype="MPEG_LAYER_III").read_bytes()
    path = tmp_path / "cut.mp3"
    path.write_bytes(data[: len(data) // 2])
    refused(path, "truncated")


def test_it_refuses_a_silent_file(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(str(path), np.zeros((6 * SR, 2), dtype=np.float32), SR, subtype="FLOAT")
    refused(path, "silent", "-inf dBFS", "below -60 dBFS")


def test_it_refuses_audio_quieter_than_minus_60_dbfs(tmp_path):
    path = tmp_path / "hiss.wav"
    t = np.arange(6 * SR) / SR
    quiet = 10 ** (-70 / 20) * np.sin(2 * np.pi * 440 * t + 0.5)  # peak -70 dBFS
    sf.write(str(path), np.stack([quiet, quiet], axis=1).astype(np.float32), SR, subtype="FLOAT")
    refused(path, "silent (peak -70.0 dBFS, below -60 dBFS)")


def test_it_can_accept_a_silent_stem_when_asked(tmp_path):
    path = tmp_path / "bass.wav"
    sf.write(str(path), np.zeros((6 * SR, 2), dtype=np.float32), SR, subtype="FLOAT")
    assert not load_audio(path, allow_silent=True).any()


def test_it_refuses_nan_samples(tmp_path):
    audio = tone(6.0)
    audio[1000:1010, 0] = np.nan
    audio[5000, 1] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(str(path), audio, SR, subtype="FLOAT")
    refused(path, "11 samples are NaN or infinite")


def test_it_refuses_six_channels(tmp_path):
    refused(wav(tmp_path / "surround 5.1.wav", 6.0, channels=6), "6 channels; mashlab takes mono or stereo")


def test_it_refuses_a_clip_shorter_than_five_seconds(tmp_path):
    refused(wav(tmp_path / "short.wav", 3.0), "3.00 s of audio, shorter than the minimum of 5 s")


def test_it_refuses_a_cut_that_leaves_too_little(tmp_path):
    refused(wav(tmp_path / "late.wav", 8.0), "shorter than the minimum", start_s=4.0)
    refused(wav(tmp_path / "past.wav", 8.0), "past the end", start_s=9.0)


def test_it_refuses_a_too_long_file_from_its_header_alone(tmp_path):
    """An 11-minute WAV header over a sparse file: refused before a single sample is decoded."""
    seconds = 660
    data_bytes = seconds * SR * 2 * 2
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, SR, SR * 4, 4, 16)
    header += b"data" + struct.pack("<I", data_bytes)
    path = tmp_path / "eleven minutes.wav"
    with open(path, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + data_bytes)  # sparse: no disk, and all zeros (silent if it were read)
    started = time.perf_counter()
    refused(path, "660.0 s to read, longer than the limit of 600 s")
    assert time.perf_counter() - started < 1.0
    assert load_audio(path, duration_s=6.0, allow_silent=True).shape == (2, 6 * SR)  # a preview is fine


# --- writing ------------------------------------------------------------------------------

def test_write_wav_round_trips_float_samples_exactly(tmp_path):
    audio = (tone(2.0).T * 3.0).astype(np.float32)  # peaks above 1.0 survive in float WAV
    path = write_wav(tmp_path / "deep" / "out.wav", audio, sr=SR)
    back, sr = sf.read(str(path), dtype="float32", always_2d=True)
    assert sr == SR and sf.info(str(path)).subtype == "FLOAT"
    np.testing.assert_array_equal(back.T, audio)
    assert [p.name for p in path.parent.iterdir()] == ["out.wav"]  # no temporary file left


def test_write_wav_keeps_the_old_file_when_it_refuses(tmp_path):
    folder = tmp_path / "out"
    path = write_wav(folder / "keep.wav", tone(1.0).T, sr=SR)
    before = path.read_bytes()
    bad = tone(1.0).T.copy()
    bad[0, 5] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        write_wav(path, bad, sr=SR)
    with pytest.raises(AudioError, match="transposed"):
        write_wav(path, tone(1.0), sr=SR)
    with pytest.raises(AudioError, match="subtype"):
        write_wav(path, tone(1.0).T, sr=SR, subtype="FLOAT128")
    assert path.read_bytes() == before
    assert [p.name for p in folder.iterdir()] == ["keep.wav"]
    write_wav(path, tone(1.0, seed=1).T, sr=SR)  # replacing an existing file works
    assert path.read_bytes() != before


# --- compact storage ------------------------------------------------------------------------------

def test_store_audio_writes_flac_that_load_audio_reads_within_half_a_step(tmp_path):
    rng = np.random.default_rng(4)
    audio = (0.3 * rng.standard_normal((2, 44100 * 6))).clip(-0.99, 0.99).astype(np.float32)
    path = store_audio(tmp_path / "stem.wav", audio, sr=44100)  # the suffix is the store's choice
    assert path == tmp_path / "stem.flac" and sf.info(str(path)).subtype == "PCM_16"
    back = load_audio(path, sr=44100)
    assert np.max(np.abs(back - audio)) <= 0.5 / 32768 + 1e-9
    deep = write_flac(tmp_path / "deep.flac", audio, sr=44100, bits=24)
    assert np.max(np.abs(load_audio(deep, sr=44100) - audio)) <= 0.5 / 2**23 + 1e-9
    sixteen = np.round(audio * 32768).clip(-32768, 32767) / 32768
    assert np.array_equal(load_audio(write_flac(tmp_path / "s.flac", sixteen, sr=44100, bits=24), sr=44100),
                          sixteen.astype(np.float32))  # 16-bit audio survives 24-bit storage exactly


def test_store_audio_is_byte_stable_and_far_smaller_than_float_wav(tmp_path):
    t = np.arange(44100 * 10) / 44100
    music = (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 0.5 * t)).astype(np.float32)
    a = store_audio(tmp_path / "a", np.stack([music, music]), sr=44100)
    b = store_audio(tmp_path / "b", np.stack([music, music]), sr=44100)
    assert a.read_bytes() == b.read_bytes()
    wav = write_wav(tmp_path / "f.wav", np.stack([music, music]), sr=44100)
    assert a.stat().st_size < 0.25 * wav.stat().st_size


def test_store_audio_keeps_samples_beyond_full_scale_as_float_wav_and_replaces_the_other_format(tmp_path):
    loud = np.full((2, 44100), 1.25, dtype=np.float32)
    path = store_audio(tmp_path / "x", loud, sr=44100)
    assert path.suffix == ".wav" and np.array_equal(load_audio(path, sr=44100, min_seconds=0.5), loud)
    again = store_audio(tmp_path / "x", loud / 2, sr=44100)
    assert again.suffix == ".flac" and not path.exists()  # one name, one version
    with pytest.raises(AudioError, match="beyond full scale"):
        write_flac(tmp_path / "y.flac", loud, sr=44100)
    with pytest.raises(AudioError, match="bits must be one of"):
        write_flac(tmp_path / "y.flac", loud / 2, sr=44100, bits=20)
