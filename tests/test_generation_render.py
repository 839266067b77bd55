"""Rubber Band adjustment, the adjusted-stem cache and candidate rendering, on real audio through the real tool."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from generation import stretch
from generation.conditions import CandidateSpec, ClipInfo, draw_candidates
from generation.errors import RenderError, StemCacheError, StretchError
from generation.keys import Key, key_distance
from generation.render import (
    LUFS_TARGET,
    PEAK_LIMIT_DBFS,
    adjust_for_features,
    loudness_lufs,
    placement_s,
    render_candidate,
    write_float_wav,
)
from generation.stem_cache import StemCache
from generation.stretch import adjust

SR = 44100
CLIP_S = 26.0


def click_track(*, tempo_bpm: float, first_s: float, seconds: float, sr: int) -> np.ndarray:
    """Mono clicks (5 ms decaying 2 kHz bursts) on every beat from `first_s`: shape (n,)."""
    n = round(seconds * sr)
    out = np.zeros(n)
    burst_t = np.arange(int(0.005 * sr)) / sr
    burst = 0.6 * np.sin(2 * np.pi * 2000 * burst_t) * np.exp(-burst_t / 0.0015)
    t = first_s
    while t < seconds - 0.01:
        i = round(t * sr)
        out[i : i + burst.size] += burst[: n - i]
        t += 60.0 / tempo_bpm
    return out


def onsets_s(audio: np.ndarray, *, sr: int) -> np.ndarray:
    """Times (s) where the 1 ms envelope first passes half its maximum, at least 100 ms apart."""
    env = np.abs(np.asarray(audio, dtype=np.float64))
    hop = max(1, sr // 1000)
    env = env[: env.size // hop * hop].reshape(-1, hop).max(axis=1)
    above = np.flatnonzero(env > 0.5 * env.max())
    picked: list[int] = []
    for i in above:
        if not picked or i - picked[-1] > 100:
            picked.append(int(i))
    return np.array(picked) * hop / sr


def chord_tones(key: Key, *, seconds: float, sr: int) -> np.ndarray:
    """Tonic triad of `key` as sines around middle C: shape (n,)."""
    t = np.arange(round(seconds * sr)) / sr
    third = 3 if key.mode == "minor" else 4
    freqs = [261.63 * 2 ** ((key.tonic + s) / 12) for s in (0, third, 7)]
    return np.asarray(sum(0.15 * np.sin(2 * np.pi * f * t) for f in freqs))


def dominant_hz(audio: np.ndarray, *, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    return float(np.argmax(spectrum) * sr / audio.size)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[int, ClipInfo]:
    """Three 26 s clips with stereo stems: chord tones in a known key, clicks at a known tempo and first downbeat."""
    root = tmp_path_factory.mktemp("clips")
    specs = {1: ("C major", 120.0, 0.3), 2: ("D major", 110.0, 0.7), 3: ("A minor", 130.0, 0.1)}
    clips = {}
    for clip_id, (label, tempo, first) in specs.items():
        key = Key.parse(label)
        folder = root / f"clip{clip_id}"
        folder.mkdir()
        t = np.arange(int(CLIP_S * SR)) / SR
        vocal = 0.2 * np.sin(2 * np.pi * 2 * 261.63 * 2 ** (key.tonic / 12) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * t))
        stems = {
            "vocal": vocal,
            "harmonic": chord_tones(key, seconds=CLIP_S, sr=SR),
            "percussion": click_track(tempo_bpm=tempo, first_s=first, seconds=CLIP_S, sr=SR),
        }
        paths = {}
        for role, mono in stems.items():
            paths[role] = folder / f"{role}.wav"
            sf.write(paths[role], np.stack([mono, 0.8 * mono]).T.astype(np.float32), SR, subtype="FLOAT")
        downbeats = tuple(first + k * 4 * 60.0 / tempo for k in range(int((CLIP_S - first) / (240.0 / tempo))))
        clips[clip_id] = ClipInfo(id=clip_id, key=key, tempo_bpm=tempo, downbeats=downbeats, duration_s=CLIP_S, stems=paths)
    return clips


def spec(**changes) -> CandidateSpec:
    """A matched candidate: D major 110 BPM vocal (clip 2), C major chords shifted +2, A minor 130 BPM clicks."""
    base: dict[str, Any] = {
        "vocal_clip": 2, "harmonic_clip": 1, "percussion_clip": 3, "condition": "matched",
        "harmonic_shift_semitones": 2, "harmonic_ratio": 110 / 120, "percussion_ratio": 110 / 130,
        "offsets_s": {"harmonic": 0.0, "percussion": 0.0}, "duration_s": 25.0, "seed": 1,
    }
    return CandidateSpec(**(base | changes))


# -- stretch.adjust -----------------------------------------------------------------

def test_stretch_multiplies_the_tempo_of_a_click_track_by_the_ratio() -> None:
    sr = 22050
    clicks = click_track(tempo_bpm=120.0, first_s=0.25, seconds=8.0, sr=sr)
    out = adjust(clicks.astype(np.float32), sr=sr, ratio=1.1)
    assert out.shape == (round(clicks.size / 1.1),)
    spacing = np.median(np.diff(onsets_s(out, sr=sr)))
    assert spacing == pytest.approx(0.5 / 1.1, rel=0.01)


def test_pitch_shift_moves_a_tone_by_the_semitones() -> None:
    sr = 22050
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(4 * sr) / sr)).astype(np.float32)
    for shift in (3, -2):
        out = adjust(tone, sr=sr, shift_semitones=shift)
        assert out.shape == tone.shape
        assert dominant_hz(out[sr:-sr], sr=sr) == pytest.approx(440.0 * 2 ** (shift / 12), rel=0.005)


def test_adjust_keeps_float_samples_above_full_scale_and_below_16_bit() -> None:
    sr = 22050
    t = np.arange(3 * sr) / sr
    loud = np.stack([1.6 * np.sin(2 * np.pi * 300 * t), 2e-5 * np.sin(2 * np.pi * 300 * t)]).astype(np.float32)
    out = adjust(loud, sr=sr, shift_semitones=1, ratio=0.9)
    assert np.abs(out[0]).max() > 1.3  # neither clipped at 1.0 nor quietly turned down by the tool
    # 2e-5 is below half a 16-bit step: a 16-bit round trip would leave silence, float keeps the tone
    assert np.sqrt(np.mean(out[1, sr:-sr] ** 2)) == pytest.approx(2e-5 / np.sqrt(2), rel=0.2)


def test_adjust_is_deterministic_and_skips_the_tool_when_nothing_changes() -> None:
    sr = 22050
    audio = np.random.default_rng(0).normal(0, 0.1, size=(2, 2 * sr)).astype(np.float32)
    a = adjust(audio, sr=sr, shift_semitones=-3, ratio=1.15)
    b = adjust(audio, sr=sr, shift_semitones=-3, ratio=1.15)
    assert a.dtype == np.float32 and np.array_equal(a, b)
    calls = stretch.stats().calls
    same = adjust(audio, sr=sr, shift_semitones=0, ratio=1.0)
    assert stretch.stats().calls == calls and np.array_equal(same, audio) and same is not audio


@pytest.mark.parametrize(
    ("audio", "kwargs", "message"),
    [
        (np.zeros((2, 0), np.float32), {}, "non-empty"),
        (np.zeros((1000, 2), np.float32), {}, "looks transposed"),
        (np.full(100, np.nan, np.float32), {}, "NaN"),
        (np.zeros(100, np.int16), {}, "floating point"),
        (np.zeros(100, np.float32), {"ratio": 5.0}, "ratio must be in"),
        (np.zeros(100, np.float32), {"engine": "R9"}, "engine must be one of"),
    ],
)
def test_adjust_refuses_bad_input(audio, kwargs, message) -> None:
    with pytest.raises(StretchError, match=message):
        adjust(audio, **({"sr": 22050, "shift_semitones": 1} | kwargs))


# -- stem cache --------------------------------------------------------------------------

def test_cache_hits_for_a_repeated_stem_and_keys_on_content(world, tmp_path) -> None:
    cache = StemCache(tmp_path / "cache")
    source = world[1].stems["harmonic"]
    first = cache.get(source, sr=16000, shift_semitones=2, ratio=0.9, mono=True)
    second = cache.get(source, sr=16000, shift_semitones=2, ratio=0.9, mono=True)
    copy = tmp_path / "copy.wav"
    copy.write_bytes(source.read_bytes())
    third = cache.get(copy, sr=16000, shift_semitones=2, ratio=0.9, mono=True)
    cache.get(source, sr=16000, shift_semitones=1, ratio=0.9, mono=True)
    assert first.shape == (1, round(CLIP_S * 16000 / 0.9))
    assert np.array_equal(first, second) and np.array_equal(first, third)
    assert (cache.stats.hits, cache.stats.misses) == (2, 2)
    assert cache.stats.hit_rate == pytest.approx(0.5)
    assert len(cache.entries()) == 2
    assert cache.clear() == 2 and cache.entries() == []


def test_cache_is_safe_with_parallel_workers(world, tmp_path) -> None:
    cache = StemCache(tmp_path / "cache")
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(cache.get(world[3].stems["percussion"], sr=16000, ratio=1.2, mono=True))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 3
    assert all(np.array_equal(r, results[0]) for r in results)
    assert len(cache.entries()) == 1
    assert not list((tmp_path / "cache").rglob("*.part"))  # no partial file is left or visible
    assert np.array_equal(np.load(cache.entries()[0]), results[0])


def test_cache_reports_an_unreadable_stem(tmp_path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(StemCacheError, match="bad.wav"):
        StemCache(tmp_path / "cache").get(bad, sr=16000, ratio=1.1)


# -- rendering -----------------------------------------------------------------------------

def test_rendering_twice_gives_identical_bytes(world, tmp_path) -> None:
    candidate = spec(condition="unmatched_tempo", harmonic_ratio=1.0, percussion_ratio=1.0,
                     offsets_s={"harmonic": 0.0, "percussion": -0.37})
    a = render_candidate(candidate, world, tmp_path / "a", cache=StemCache(tmp_path / "cache-a"))
    b = render_candidate(candidate, world, tmp_path / "b", cache=StemCache(tmp_path / "cache-b"))  # tool runs again
    for name in ("mix", "vocal", "harmonic", "percussion"):
        path_a = a.mix_path if name == "mix" else a.stem_paths[name]
        path_b = b.mix_path if name == "mix" else b.stem_paths[name]
        assert hashlib.sha256(path_a.read_bytes()).digest() == hashlib.sha256(path_b.read_bytes()).digest()


def test_render_is_loudness_normalised_stereo_44k_without_clipping(world, tmp_path) -> None:
    result = render_candidate(spec(), world, tmp_path / "out", cache=StemCache(tmp_path / "cache"))
    info = sf.info(result.mix_path)
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (44100, 2, "FLOAT", 25 * 44100)
    mix, _ = sf.read(result.mix_path, always_2d=True)
    assert not result.limited
    assert loudness_lufs(mix.T, sr=44100) == pytest.approx(LUFS_TARGET, abs=0.5)
    assert 20 * np.log10(np.abs(mix).max()) <= PEAK_LIMIT_DBFS
    stems = sum(sf.read(p, always_2d=True)[0] for p in result.stem_paths.values())
    assert np.allclose(stems, mix, atol=1e-5)  # the stems carry the mix's gain and sum to it


def test_a_too_loud_target_is_limited_at_the_peak_limit(world, tmp_path) -> None:
    result = render_candidate(spec(), world, tmp_path / "out", cache=StemCache(tmp_path / "cache"), lufs_target=-4.0)
    mix, _ = sf.read(result.mix_path, always_2d=True)
    assert result.limited and result.loudness_lufs < -4.5
    assert 20 * np.log10(np.abs(mix).max()) <= PEAK_LIMIT_DBFS
    assert result.peak_dbfs == pytest.approx(PEAK_LIMIT_DBFS, abs=0.01)


def test_stretched_clicks_land_on_the_seed_downbeat_at_the_seed_tempo(world, tmp_path) -> None:
    cache = StemCache(tmp_path / "cache")
    stems = adjust_for_features(spec(), world, sr=16000, cache=cache)
    assert set(stems) == {"vocal", "harmonic", "percussion"} and stems["percussion"].shape == (25 * 16000,)
    clicks = onsets_s(stems["percussion"], sr=16000)
    # Rubber Band moves stretched transients by a few ms (measured: -7 ms at ratio 0.85, +6 ms at 1.2),
    # under madmom's 10 ms frame and far under the 1 s offsets of the unmatched conditions
    assert clicks[0] == pytest.approx(world[2].first_downbeat_s, abs=0.010)
    assert np.median(np.diff(clicks)) == pytest.approx(60.0 / 110.0, rel=0.01)


def test_an_offset_moves_the_stem_by_that_many_seconds(world, tmp_path) -> None:
    cache = StemCache(tmp_path / "cache")
    candidate = spec(condition="unmatched_tempo", harmonic_ratio=1.0, percussion_ratio=1.0,
                     offsets_s={"harmonic": 0.0, "percussion": 0.45})
    assert placement_s(candidate, world, "percussion") == pytest.approx(0.7 + 0.45 - 0.1)
    clicks = onsets_s(adjust_for_features(candidate, world, sr=16000, cache=cache)["percussion"], sr=16000)
    assert clicks[0] == pytest.approx(0.7 + 0.45, abs=0.006)
    assert np.median(np.diff(clicks)) == pytest.approx(60.0 / 130.0, rel=0.01)  # not stretched


def test_candidates_sharing_a_stem_reuse_its_adjustment(world, tmp_path) -> None:
    cache = StemCache(tmp_path / "cache")
    adjust_for_features(spec(), world, sr=16000, cache=cache)
    misses = cache.stats.misses
    adjust_for_features(spec(percussion_clip=2, percussion_ratio=1.0, seed=2), world, sr=16000, cache=cache)
    # the second candidate shares the vocal and the shifted, stretched harmonic stem; only its drums are new
    assert cache.stats.misses == misses + 1 and cache.stats.hits == 2


def test_a_silent_mix_is_refused(world, tmp_path) -> None:
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros((int(CLIP_S * SR), 2), np.float32), SR, subtype="FLOAT")
    quiet = {i: ClipInfo(id=i, key=c.key, tempo_bpm=c.tempo_bpm, downbeats=c.downbeats, duration_s=c.duration_s,
                         stems={r: silent for r in c.stems}) for i, c in world.items()}
    with pytest.raises(RenderError, match="the mix is silent"):
        render_candidate(spec(condition="original", vocal_clip=1, harmonic_clip=1, percussion_clip=1,
                              harmonic_shift_semitones=0, harmonic_ratio=1.0, percussion_ratio=1.0),
                         quiet, tmp_path / "out", cache=StemCache(tmp_path / "cache"))


def test_a_missing_clip_is_named(world, tmp_path) -> None:
    with pytest.raises(RenderError, match="clip 9 is not among"):
        render_candidate(spec(harmonic_clip=9), world, tmp_path / "out", cache=StemCache(tmp_path / "cache"))


def test_float_wav_writer_is_byte_stable_and_readable(tmp_path) -> None:
    audio = np.random.default_rng(1).uniform(-1, 1, size=(2, 1000)).astype(np.float32)
    a = write_float_wav(tmp_path / "a.wav", audio, sr=44100)
    b = write_float_wav(tmp_path / "b.wav", audio, sr=44100)
    assert a.read_bytes() == b.read_bytes()
    back, sr = sf.read(a, dtype="float32", always_2d=True)
    assert sr == 44100 and np.array_equal(back.T, audio)


# -- measured on generated songs with madmom ----------------------------------------------------

@pytest.fixture(scope="module")
def song_clips(song_set, tmp_path_factory) -> dict[int, ClipInfo]:
    """The 24 demo songs as clips: vocal = vocals, harmonic = bass + other, percussion = drums."""
    root = tmp_path_factory.mktemp("song-stems")
    clips = {}
    for i, song in enumerate(song_set):
        paths = song.stem_paths
        bass, sr = sf.read(paths["bass"], dtype="float32")
        other, _ = sf.read(paths["other"], dtype="float32")
        harmonic = root / f"{song.name}-harmonic.wav"
        sf.write(harmonic, bass + other, sr, subtype="FLOAT")
        clips[i + 1] = ClipInfo(id=i + 1, key=song.key, tempo_bpm=song.tempo_bpm, downbeats=song.downbeats,
                                duration_s=song.seconds,
                                stems={"vocal": paths["vocals"], "harmonic": harmonic, "percussion": paths["drums"]})
    return clips


@pytest.mark.slow
def test_matched_renders_measure_at_the_seed_tempo_and_key(song_clips, tmp_path) -> None:
    """madmom on the rendered accompaniment: tempo within 3 % of the seed's; shifted harmonic stem in the seed's key.

    Key tolerance: the same pitch-class set (key distance 0), because the
    matching rule compares relative majors: a C major stem shifted under an
    A minor vocal is correct, and it may be heard as either of the two.
    """
    from generation.annotate_audio import analyse

    infos = list(song_clips.values())
    cache = StemCache(tmp_path / "cache")
    drawn = draw_candidates(infos, infos, condition="matched", count=2, seed=5).candidates
    assert all(c.harmonic_shift_semitones != 0 and abs(c.harmonic_ratio - 1) > 0.1 for c in drawn)  # real work to check
    for candidate in drawn:
        result = render_candidate(candidate, song_clips, tmp_path / str(candidate.seed), cache=cache)
        seed_clip = song_clips[candidate.vocal_clip]
        n = int(18 * result.sr)  # the songs last 20 s; leave out the silent tail of the 25 s render
        harmonic, _ = sf.read(result.stem_paths["harmonic"], dtype="float32", always_2d=True)
        percussion, _ = sf.read(result.stem_paths["percussion"], dtype="float32", always_2d=True)
        accompaniment = analyse((harmonic + percussion)[:n].T, sr=result.sr)
        assert accompaniment.tempo_bpm == pytest.approx(seed_clip.tempo_bpm, rel=0.03)
        shifted = analyse(harmonic[:n].T, sr=result.sr)
        assert key_distance(shifted.key, seed_clip.key) == 0, (shifted.key.label, seed_clip.key.label)
