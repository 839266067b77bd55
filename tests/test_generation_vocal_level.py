"""A clip's vocal level against its mix: measured from its files once, stored, and keeping instrumentals from being vocal seeds.

The clips are a fixture written here: a 220 Hz "vocal" and a 110 Hz
accompaniment, 6 s each, at chosen levels (no separation involved).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from generation.audio import SR, relative_level_db, write_flac
from generation.candidates import clip_infos
from generation.models import Candidate, Clip, MashupDB, Stem

SECONDS = 6.0


def tone(hz: float, amplitude: float) -> np.ndarray:
    t = np.arange(int(SECONDS * SR)) / SR
    return np.stack([amplitude * np.sin(2 * np.pi * hz * t)] * 2).astype(np.float32)


def make_clip(db: MashupDB, name: str, *, vocal_amplitude: float) -> Clip:
    """A clip whose mix is its vocal plus a 0.3-amplitude accompaniment, with its three role stems on disk."""
    folder = settings.MEDIA_ROOT / name
    vocal, harmonic, percussion = tone(220.0, vocal_amplitude), tone(110.0, 0.3), tone(55.0, 0.1)
    write_flac(folder / "mix.flac", vocal + harmonic + percussion, sr=SR)
    clip = Clip.objects.create(db=db, name=name, source=f"/music/{name}.wav", source_sha256=name.ljust(64, "0"),
                               start_s=0.0, duration_s=SECONDS, sample_rate=SR, audio_path=f"{name}/mix.flac",
                               key_label="C major", tempo_bpm=120.0, beats_per_bar=4, analysis_source="estimated",
                               beats=[0.5 * b for b in range(12)], downbeats=[2.0 * b for b in range(3)])
    for role, audio in (("vocal", vocal), ("harmonic", harmonic), ("percussion", percussion)):
        write_flac(folder / f"{role}.flac", audio, sr=SR)
        Stem.objects.create(clip=clip, name=role, kind="role", path=f"{name}/{role}.flac", method="stems")
    return clip


def expected_db(vocal_amplitude: float) -> float:
    """The vocal's level against the mix of make_clip: sines of distinct frequencies add their powers."""
    return 10 * np.log10(vocal_amplitude**2 / (vocal_amplitude**2 + 0.3**2 + 0.1**2))


def test_relative_level_is_the_rms_ratio_in_db():
    assert relative_level_db(tone(220.0, 0.01), tone(220.0, 1.0)) == pytest.approx(-40.0, abs=1e-6)
    assert relative_level_db(np.zeros((2, 10)), tone(220.0, 1.0)) == -120.0


@pytest.mark.django_db
def test_the_vocal_level_is_measured_once_stored_and_an_instrumental_clip_gives_no_original():
    db = MashupDB.objects.create(name="levels")
    singing = make_clip(db, "singing", vocal_amplitude=0.3)
    instrumental = make_clip(db, "instrumental", vocal_amplitude=0.003)  # leakage: 40 dB below the mix
    clips = list(Clip.objects.filter(db=db).prefetch_related("stems").order_by("id"))
    levels = {info.id: info.vocal_level_db for info in clip_infos(clips)}
    assert levels[singing.id] == pytest.approx(expected_db(0.3), abs=0.05)
    assert levels[instrumental.id] == pytest.approx(expected_db(0.003), abs=0.05)
    stored = dict(Clip.objects.filter(db=db).values_list("id", "vocal_level_db"))
    assert stored == levels
    (settings.MEDIA_ROOT / "instrumental" / "vocal.flac").unlink()  # a second look reads no file: stored value
    assert clip_infos(Clip.objects.filter(id=instrumental.id).prefetch_related("stems"))[0].vocal_level_db == stored[instrumental.id]

    listing = io.StringIO()
    call_command("clips", "--db", "levels", stdout=listing)
    lines = listing.getvalue().splitlines()
    assert "no vocal seed: vocal 40 dB below the mix" in next(line for line in lines if "instrumental" in line)
    assert "no vocal seed" not in next(line for line in lines if "singing" in line)
    assert lines[-1].endswith("vocal seeds: 1")
    exported = io.StringIO()
    call_command("clips", "--db", "levels", "--json", stdout=exported)
    assert {r["name"]: (r["vocal_seed"], r["vocal_level_db"]) for r in json.loads(exported.getvalue())} == {
        "singing": (True, stored[singing.id]), "instrumental": (False, stored[instrumental.id])}

    out = io.StringIO()
    call_command("generate", "--db", "levels", "--condition", "original", "--count", "1", "--seed", "0", stdout=out)
    assert list(Candidate.objects.filter(db=db).values_list("vocal_clip_id", flat=True)) == [singing.id]
    with pytest.raises(CommandError, match=f"clip {instrumental.id} cannot be a vocal seed: its vocal stem is 40 dB below"):
        call_command("generate", "--db", "levels", "--condition", "original", "--count", "1", "--seed", "0",
                     "--vocal", str(instrumental.id), stdout=io.StringIO())
    assert Candidate.objects.filter(db=db).count() == 1
    call_command("generate", "--db", "levels", "--condition", "original", "--count", "2", "--total", "--seed", "0",
                 "--instrumental-seeds", stdout=io.StringIO())  # training data may take it
    assert sorted(Candidate.objects.filter(db=db).values_list("vocal_clip_id", flat=True)) == [singing.id, instrumental.id]
