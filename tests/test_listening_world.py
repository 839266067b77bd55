"""The listening tests' small world: two MashupDBs, rendered candidates (short real WAVs), two systems, scores.

Other listening test modules import the fixtures from here. Everything is
drawn from fixed seeds, so every test sees the same world.

- MashupDB ``alpha``: 4 songs; per vocal an original and 3 matched candidates
  made within alpha (generation pool: 12 matched candidates).
- MashupDB ``beta``: 4 songs; per alpha vocal 5 matched candidates whose
  accompaniment comes from beta (retrieval pool).
- Systems ``amu`` and ``premix`` with seeded scores for every matched candidate.
- Per alpha vocal one unmatched key-and-tempo candidate (gold pages).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 8000
SECONDS = 1.0


@dataclass
class World:
    alpha: object
    beta: object
    vocals: list
    originals: dict
    gen_matched: list
    ret_matched: list
    systems: list


def write_tone(path: Path, *, freq_hz: float, seconds: float = SECONDS, sr: int = SR) -> None:
    """A short sine tone with a fade, 16-bit WAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * freq_hz * t) * np.minimum(1.0, np.minimum(t, t[::-1]) * 20)
    sf.write(path, y.astype(np.float32), sr, subtype="PCM_16")


def build_world(media_root: Path, *, seed: int = 7, render: bool = True) -> World:
    from generation.models import Candidate, Clip, MashupDB
    from scoring.models import Score, System

    rng = np.random.default_rng(seed)
    alpha = MashupDB.objects.create(name="alpha")
    beta = MashupDB.objects.create(name="beta")

    def clip(db, i):
        rel = f"clips/{db.name}/{i}.wav"
        write_tone(media_root / rel, freq_hz=220 + 20 * i)
        return Clip.objects.create(
            db=db, name=f"{db.name}-song{i}", source=f"/songs/{db.name}{i}.wav",
            source_sha256=hashlib.sha256(f"{db.name}{i}".encode()).hexdigest(), start_s=0.0, duration_s=SECONDS,
            sample_rate=SR, audio_path=rel, key_label="C major", tempo_bpm=120.0, beats_per_bar=4,
            analysis_source="estimated")

    a_clips = [clip(alpha, i) for i in range(4)]
    b_clips = [clip(beta, i) for i in range(4)]
    counter = iter(range(10_000))

    def candidate(vocal, harmonic, percussion, condition):
        n = next(counter)
        rel = f"renders/cand{n}.wav"
        if render:
            write_tone(media_root / rel, freq_hz=300 + 7 * n)
        return Candidate.objects.create(
            db=vocal.db, vocal_clip=vocal, harmonic_clip=harmonic, percussion_clip=percussion, condition=condition,
            duration_s=SECONDS, seed=n, spec_key=f"spec{n}", mix_path=rel if render else "")

    originals = {v.pk: candidate(v, v, v, "original") for v in a_clips}
    gen = []
    for i, v in enumerate(a_clips):
        for j in range(1, 4):
            other = a_clips[(i + j) % 4]
            gen.append(candidate(v, other, a_clips[(i + j + 1) % 4] if j < 3 else other, "matched"))
    ret = []
    for v in a_clips:
        for j in range(5):
            ret.append(candidate(v, b_clips[j % 4], b_clips[(j + 1) % 4] if j < 4 else b_clips[0], "matched"))
    systems = [System.objects.create(name="amu", arch="amu"), System.objects.create(name="premix", arch="premix")]
    for system in systems:
        for c in gen + ret:
            Score.objects.create(system=system, candidate=c, value=float(rng.random()))
    for i, v in enumerate(a_clips):
        candidate(v, a_clips[(i + 2) % 4], a_clips[(i + 3) % 4], "unmatched_both")
    return World(alpha, beta, a_clips, originals, gen, ret, systems)


@pytest.fixture
def world(db, settings):
    return build_world(Path(settings.MEDIA_ROOT))


@pytest.fixture
def generation_study(world):
    """An open generation study: top 2 + bottom 2 per system, k = 3, 3 pages per participant."""
    from listening import services
    from listening.models import Study

    study = services.design_generation_study(
        name="gen", db_name="alpha", top_n=2, bottom_n=2, seed=11,
        study_settings=services.StudySettings(ratings_per_page=3, pages_per_participant=3))
    return services.set_state(study, Study.State.OPEN)


def full_answers(score: int = 4, heard: str = "no") -> dict[str, str]:
    """A complete, valid page form."""
    from listening.export import ASPECTS

    data = {f"clip{n}_{a}": str(score) for n in (1, 2) for a in ASPECTS}
    data["heard_before"] = heard
    return data


def test_world_has_rendered_candidates_and_scores(world):
    from scoring.models import Score

    assert len(world.gen_matched) == 12 and len(world.ret_matched) == 20
    assert all(c.media("mix_path").is_file() for c in world.gen_matched + list(world.originals.values()))
    assert Score.objects.count() == 2 * 32
    assert {c.harmonic_clip.db.name for c in world.ret_matched} == {"beta"}
