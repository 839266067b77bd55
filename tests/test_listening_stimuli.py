"""What participants download: 16-bit FLAC by default, or the rendered float WAV itself."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from generation.render import LUFS_TARGET, loudness_lufs, write_float_wav
from listening.stimuli import StimulusError, write_stimulus

HALF_STEP = 0.5 / 32768  # largest rounding error of a 16-bit sample, full scale = 1


@pytest.fixture
def rendered_mix(few_songs, tmp_path):
    """A generated song's stems summed in float and brought to the render's loudness, as render writes a mix."""
    song = few_songs[0]
    stems = [sf.read(str(p), dtype="float32", always_2d=True) for p in song.stem_paths.values()]
    sr = stems[0][1]
    mix = np.sum([a for a, _ in stems], axis=0).T.astype(np.float64)
    mix *= 10 ** ((LUFS_TARGET - loudness_lufs(mix, sr=sr)) / 20)
    assert np.max(np.abs(mix)) < 0.9  # a loud song would be peak-limited by render; this one needs no limit
    return write_float_wav(tmp_path / "mix.wav", mix.astype(np.float32), sr=sr)


def test_flac_holds_the_mix_to_half_a_16_bit_step_in_a_third_of_the_bytes(rendered_mix, tmp_path):
    path = write_stimulus(rendered_mix, tmp_path / "study" / "tok", audio_format="flac")
    assert path == tmp_path / "study" / "tok.flac" and path.read_bytes()[:4] == b"fLaC"
    heard, sr = sf.read(str(path), dtype="float64", always_2d=True)
    rendered, rendered_sr = sf.read(str(rendered_mix), dtype="float64", always_2d=True)
    assert sr == rendered_sr and heard.shape == rendered.shape
    err = np.max(np.abs(heard - rendered))
    ratio = path.stat().st_size / rendered_mix.stat().st_size
    print(f"\nFLAC stimulus: {path.stat().st_size / 1e6:.2f} MB for {rendered.shape[0] / sr:.0f} s, "
          f"{ratio:.2f} of the float WAV; max error {err:.2e} (half a 16-bit step {HALF_STEP:.2e})")
    assert err <= HALF_STEP * 1.001 and ratio < 1 / 3


def test_stimuli_are_byte_for_byte_reproducible(rendered_mix, tmp_path):
    a = write_stimulus(rendered_mix, tmp_path / "a", audio_format="flac")
    b = write_stimulus(rendered_mix, tmp_path / "b", audio_format="flac")
    assert a.read_bytes() == b.read_bytes()


def test_wav_is_the_rendered_file_itself(rendered_mix, tmp_path):
    path = write_stimulus(rendered_mix, tmp_path / "w", audio_format="wav")
    assert path.suffix == ".wav" and path.read_bytes() == rendered_mix.read_bytes()


def test_bad_mixes_are_clear_errors_that_leave_no_file(tmp_path):
    sr = 8000
    loud = tmp_path / "loud.wav"
    sf.write(str(loud), np.full((sr, 2), 1.5, np.float32), sr, subtype="FLOAT")
    nan = tmp_path / "nan.wav"
    sf.write(str(nan), np.full((sr, 2), np.nan, np.float32), sr, subtype="FLOAT")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really a wave file")
    out = tmp_path / "out"
    for src, message in ((loud, "clip at 16 bits"), (nan, "NaN"), (junk, "cannot read"),
                         (tmp_path / "gone.wav", "cannot read")):
        with pytest.raises(StimulusError, match=message):
            write_stimulus(src, out / "x", audio_format="flac")
    with pytest.raises(StimulusError, match="no such file"):
        write_stimulus(tmp_path / "gone.wav", out / "y", audio_format="wav")
    with pytest.raises(StimulusError, match="unknown stimulus format"):
        write_stimulus(loud, out / "x", audio_format="mp3")
    assert not out.exists() or not any(out.iterdir())
