"""The two AutoMashUpper baselines (issue 11 item 7).

``amu`` (the paper's, as migperfer/AutoMashupper computes it) and
``amu_rhythm`` (mashlab's) on synthetic stems — a C-major melody, C F G C
chords and a rock beat at 120 BPM, made here — and then through the Django
services on ingested generated songs. What each must get right: a stem
against itself scores highest; a key-shifted harmonic is undone by
``amu``'s shift search (its sign correct both ways) but costs ``amu_rhythm``,
which hears the shift; ``amu`` ignores rhythm, ``amu_rhythm`` does not; each
spectral balance is across the three bands, ``amu`` of the excerpt's mean,
``amu_rhythm`` per beat.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import call_command

from scoring import amu
from scoring.errors import ScoringError

SR = 16000
DUR_S = 8.0
TEMPO_BPM = 120.0
BEATS_S = np.arange(0.0, DUR_S, 60.0 / TEMPO_BPM)


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _note(midi: float, dur_s: float, *, decay: float) -> np.ndarray:
    """Three harmonics with an exponential decay and a 20 ms fade-out (no click at the end)."""
    t = np.arange(int(dur_s * SR)) / SR
    fade = np.minimum(1.0, (t[-1] - t) / 0.02)
    return sum(np.sin(2 * np.pi * _hz(midi) * k * t) / k for k in (1, 2, 3)) * np.exp(-decay * t) * fade


def _place(y: np.ndarray, start_s: float, x: np.ndarray) -> None:
    s = int(start_s * SR)
    n = min(x.size, y.size - s)
    if n > 0:
        y[s : s + n] += x[:n]


def vocal(*, shift_semitones: int = 0) -> np.ndarray:
    """A C-major melody, one note per beat at 120 BPM."""
    melody = [72, 76, 79, 76, 74, 77, 81, 77, 72, 76, 79, 84, 79, 74, 71, 72]
    y = np.zeros(int(DUR_S * SR))
    for k, b in enumerate(BEATS_S):
        _place(y, b, _note(melody[k % len(melody)] + shift_semitones, 0.45, decay=2.0))
    return (0.2 * y).astype(np.float32)


def harmonic(*, shift_semitones: int = 0) -> np.ndarray:
    """C, F, G, C major chords, two beats each."""
    chords = [[48, 52, 55, 60], [53, 57, 60, 65], [55, 59, 62, 67], [48, 52, 55, 60]]
    y = np.zeros(int(DUR_S * SR))
    for k, b in enumerate(BEATS_S[::2]):
        for m in chords[k % 4]:
            _place(y, b, _note(m + shift_semitones, 1.0, decay=1.5))
    return (0.1 * y).astype(np.float32)


def drums(*, tempo_bpm: float = TEMPO_BPM, seed: int = 0) -> np.ndarray:
    """Kick on 1 and 3, snare on 2 and 4, hi-hat on every eighth note."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.12 * SR)) / SR
    fade = np.minimum(1.0, (t[-1] - t) / 0.02)
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-30 * t)) * t) * np.exp(-20 * t) * fade
    snare = 0.5 * rng.standard_normal(t.size) * np.exp(-25 * t) * fade
    hat = 0.2 * np.diff(rng.standard_normal(t.size + 1)) * np.exp(-80 * t)
    y = np.zeros(int(DUR_S * SR))
    eighth = 30.0 / tempo_bpm
    for k in range(int(DUR_S / eighth)):
        _place(y, k * eighth, hat)
        if k % 2 == 0:
            _place(y, k * eighth, kick if (k // 2) % 2 == 0 else snare)
    return (0.5 * y).astype(np.float32)


@pytest.fixture(scope="module")
def stems() -> dict[str, np.ndarray]:
    return {"vocal": vocal(), "harmonic": harmonic(), "percussion": drums()}


@pytest.fixture(scope="module")
def matched(stems) -> amu.AmuScore:
    return amu.mashability(stems, sr=SR, beat_times_s=BEATS_S)


def test_in_key_pair_scores_above_the_pair_with_one_stem_six_semitones_off(stems, matched):
    in_key = amu.pair_mashability(stems["vocal"], stems["harmonic"], sr=SR, beat_times_s=BEATS_S)
    off_key = amu.pair_mashability(stems["vocal"], harmonic(shift_semitones=6), sr=SR, beat_times_s=BEATS_S)
    assert in_key.total > off_key.total
    assert in_key.harmonic > off_key.harmonic + 0.1
    off_three = amu.mashability({**stems, "harmonic": harmonic(shift_semitones=6)}, sr=SR, beat_times_s=BEATS_S)
    assert matched.total > off_three.total


def test_the_amu_search_finds_the_shift_that_undoes_the_tritone(stems):
    off = amu.pair_mashability(stems["vocal"], harmonic(shift_semitones=6), sr=SR, beat_times_s=BEATS_S,
                               search_shift=True)
    assert off.best_shift_semitones == -6  # −6 ≡ +6: bring F# major back to C major
    assert off.harmonic == off.best_harmonic


def test_pitch_shift_sign_raises_the_candidate():
    a = np.zeros((12, 4))
    a[0] = a[4] = a[7] = 1.0  # C major triad
    b = np.roll(a, -2, axis=0)  # the same chord two semitones lower (A# major)
    shift, corr = amu.best_pitch_shift(a, b)
    assert shift == 2 and corr == pytest.approx(1.0)


def test_tempo_matched_pair_scores_above_a_point_eight_ratio_pair(stems, matched):
    slow = drums(tempo_bpm=0.8 * TEMPO_BPM)
    on_grid = amu.pair_mashability(stems["vocal"], stems["percussion"], sr=SR, beat_times_s=BEATS_S)
    off_grid = amu.pair_mashability(stems["vocal"], slow, sr=SR, beat_times_s=BEATS_S)
    assert on_grid.total > off_grid.total
    assert on_grid.rhythmic > off_grid.rhythmic + 0.3
    off_three = amu.mashability({**stems, "percussion": slow}, sr=SR, beat_times_s=BEATS_S)
    assert matched.total > off_three.total


def test_three_stems_score_the_mean_of_their_three_pairs(matched):
    assert set(matched.pairs) == {"vocal+harmonic", "vocal+percussion", "harmonic+percussion"}
    assert matched.total == pytest.approx(np.mean([p.total for p in matched.pairs.values()]))
    w = amu.AmuWeights()
    p = matched.pairs["vocal+harmonic"]
    assert p.total == pytest.approx(w.harmonic * p.harmonic + w.rhythmic * p.rhythmic + w.spectral * p.spectral)


def test_spectral_balance_prefers_energy_spread_over_the_three_bands():
    t = np.arange(int(2.0 * SR)) / SR
    low = (0.5 * np.sin(2 * np.pi * 100 * t)).astype(np.float32)
    mid = (0.5 * np.sin(2 * np.pi * 700 * t)).astype(np.float32)
    high = (0.5 * np.sin(2 * np.pi * 4000 * t)).astype(np.float32)
    beats = np.arange(0.0, 2.0, 0.5)
    one_band = amu.spectral_balance(low, 0.5 * low, sr=SR, beat_times_s=beats)
    spread = amu.spectral_balance(low + high, mid, sr=SR, beat_times_s=beats)
    assert one_band == pytest.approx(1 - np.sqrt(2 / 9), abs=0.01)  # all energy in one band: 1 − std(1, 0, 0)
    assert spread > 0.95


def test_rhythmic_compatibility_of_a_constant_pattern_is_zero():
    assert amu.rhythmic_compatibility(np.ones(8), np.arange(8.0)) == 0.0
    assert amu.rhythmic_compatibility(np.arange(8.0), np.arange(8.0)) == pytest.approx(1.0)


def test_it_rejects_bad_beats_and_stems(stems):
    with pytest.raises(ScoringError, match="at least 2 beats"):
        amu.mashability(stems, sr=SR, beat_times_s=np.array([1.0]))
    with pytest.raises(ScoringError, match="strictly increasing"):
        amu.mashability(stems, sr=SR, beat_times_s=np.array([1.0, 0.5, 2.0]))
    with pytest.raises(ScoringError, match="at least two stems"):
        amu.mashability({"vocal": stems["vocal"]}, sr=SR, beat_times_s=BEATS_S)
    with pytest.raises(ScoringError, match="finite"):
        amu.pair_mashability(stems["vocal"], np.full(100, np.nan), sr=SR, beat_times_s=BEATS_S)
    with pytest.raises(ScoringError, match="at least two stems"):
        amu.paper_mashability({"vocal": stems["vocal"]}, sr=SR, beat_times_s=BEATS_S)
    with pytest.raises(ScoringError, match="at least 2 beats"):
        amu.paper_mashability(stems, sr=SR, beat_times_s=np.array([1.0]))


# --- both variants ---------------------------------------------------------------------------------------


def _pair(variant: str, a: np.ndarray, b: np.ndarray) -> amu.AmuPairScore:
    return amu.get_variant(variant).mashability({"a": a, "b": b}, sr=SR, beat_times_s=BEATS_S).pairs["a+b"]


@pytest.fixture(scope="module")
def paper_self(stems) -> amu.AmuPairScore:
    return _pair("amu", stems["harmonic"], stems["harmonic"])


def test_the_variants_are_named_as_their_systems():
    assert set(amu.VARIANTS) == {"amu", "amu_rhythm"}
    assert all(name == v.name for name, v in amu.VARIANTS.items())
    assert amu.get_variant("amu").sr == 44100 and amu.get_variant("amu").mashability is amu.paper_mashability
    with pytest.raises(ScoringError, match="no AMU variant 'amu_x'.*amu, amu_rhythm"):
        amu.get_variant("amu_x")


@pytest.mark.parametrize("variant", ["amu", "amu_rhythm"])
def test_a_stem_against_itself_scores_highest(variant, stems):
    self_pair = _pair(variant, stems["harmonic"], stems["harmonic"])
    assert self_pair.harmonic == pytest.approx(1.0) and self_pair.best_shift_semitones == 0
    for other in ("vocal", "percussion"):
        assert self_pair.total > _pair(variant, stems["harmonic"], stems[other]).total + 0.1, other


def test_amu_undoes_a_key_shift_with_the_right_sign(stems, paper_self):
    for shift in (3, -2):  # the open-source code would report +3 and +2: the sign of the first lost
        moved = _pair("amu", stems["harmonic"], harmonic(shift_semitones=shift))
        assert moved.best_shift_semitones == -shift
        assert moved.total == pytest.approx(paper_self.total, abs=0.03)
        assert moved.harmonic == moved.best_harmonic


def test_amu_rhythm_hears_a_key_shift_that_its_search_would_undo(stems):
    same = _pair("amu_rhythm", stems["harmonic"], stems["harmonic"])
    moved = _pair("amu_rhythm", stems["harmonic"], harmonic(shift_semitones=3))
    assert moved.total < same.total - 0.5
    assert moved.best_shift_semitones == -3 and moved.best_harmonic > moved.harmonic + 0.5


def test_amu_ignores_rhythm_where_amu_rhythm_does_not(stems):
    eighth_beat = int(SR * 60 / TEMPO_BPM / 8)
    off = np.roll(stems["percussion"], eighth_beat)  # every hit an eighth of a beat late: off the sub-beat grid
    paper = [_pair("amu", stems["vocal"], d) for d in (stems["percussion"], off)]
    ours = [_pair("amu_rhythm", stems["vocal"], d) for d in (stems["percussion"], off)]
    assert paper[0].rhythmic == paper[1].rhythmic == 0.0
    assert abs(paper[0].total - paper[1].total) < 0.02
    assert ours[0].rhythmic > ours[1].rhythmic + 0.5
    assert ours[0].total > ours[1].total + 0.1


def test_amu_total_is_best_harmony_plus_a_fifth_of_the_balance(paper_self):
    assert paper_self.total == pytest.approx(paper_self.harmonic + 0.2 * paper_self.spectral)
    assert amu.PAPER_WEIGHTS.rhythmic == 0.0


def test_amu_balance_is_across_bands_of_the_excerpt_mean_and_amu_rhythm_per_beat():
    # a low first half and a high second half: balanced on average, one band in every beat
    low_then_high = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    expected = 1 - np.std([0.5, 0.0, 0.5])
    assert amu.paper_spectral_balance(low_then_high, np.zeros_like(low_then_high)) == pytest.approx(expected)
    assert amu.paper_spectral_balance(np.zeros((3, 4)), np.zeros((3, 4))) == 0.0
    t = np.arange(int(2.0 * SR)) / SR
    audio = np.where(t < 1.0, np.sin(2 * np.pi * 100 * t), np.sin(2 * np.pi * 4000 * t)).astype(np.float32)
    beats = np.arange(0.0, 2.01, 0.5)
    assert amu.spectral_balance(audio, np.zeros_like(audio), sr=SR, beat_times_s=beats) == pytest.approx(
        1 - np.sqrt(2 / 9), abs=0.02)  # per beat: one band only


# Steady-state gain (dB) of essentia 2.1b6.dev1389's EqualLoudness (pip wheel, 44.1 kHz), the filter the open-source
# AMU applies: measured on 1 s sines, second half, with the same gain_db as below.
ESSENTIA_EQUAL_LOUDNESS_DB = {30.0: -35.376, 100.0: -15.246, 1000.0: -8.307, 3000.0: -1.621}


def test_the_equal_loudness_filter_matches_essentia_at_44_1_khz():
    sr = amu.PAPER_SR
    t = np.arange(sr) / sr

    def gain_db(hz: float) -> float:
        y = amu.equal_loudness(np.sin(2 * np.pi * hz * t).astype(np.float32), sr=sr)[sr // 2 :]
        return 20 * np.log10(np.sqrt(2) * np.std(y))

    for hz, db in ESSENTIA_EQUAL_LOUDNESS_DB.items():
        assert gain_db(hz) == pytest.approx(db, abs=0.01), hz
    with pytest.raises(ScoringError, match="44100 Hz"):
        amu.equal_loudness(np.zeros(100, dtype=np.float32), sr=22050)


# --- through the Django services, on ingested generated songs -------------------------------------------

AMU_DB = "amu-db"


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, module_tmp):
    """6 cached 30 s songs (the learned-model test's seed-11 set) ingested as stems, 2 original and 2
    matched candidates, and the vocal with the most qualifying matched pairs."""
    from django.test import override_settings

    from generation.candidates import clip_infos, generate
    from generation.conditions import qualifying_stems
    from generation.models import Clip, MashupDB
    from scoring.models import System
    from tests.fixtures_songs import stems_folder

    media = module_tmp / "media"
    media.mkdir()
    with django_db_blocker.unblock(), override_settings(MEDIA_ROOT=media):
        folder = stems_folder(module_tmp / "in", count=48, seed=11, seconds=30.0, take=6)
        call_command("ingest", str(folder), "--db", AMU_DB, "--separator", "stems", "--no-progress",
                     stdout=io.StringIO(), stderr=io.StringIO())
        generate(db_name=AMU_DB, condition="original", count=2, seed=0)
        generate(db_name=AMU_DB, condition="matched", count=2, seed=1)
        clips = clip_infos(Clip.objects.filter(db__name=AMU_DB).prefetch_related("stems").order_by("id"))
        best = max(clips, key=lambda c: qualifying_stems(c, clips).pair_count)
        q = qualifying_stems(best, clips)
        assert q.pair_count >= 1, "the world needs a vocal with a qualifying matched pair"
        yield {"media": media, "vocal": best.id, "pair": (q.harmonic[0].id, q.percussion[0].id)}
        System.objects.filter(name__in=list(amu.VARIANTS)).delete()
        MashupDB.objects.filter(name=AMU_DB).delete()


@pytest.fixture
def media(world, settings):
    settings.MEDIA_ROOT = world["media"]
    return world["media"]


@pytest.mark.slow
@pytest.mark.django_db
def test_both_amu_systems_score_through_the_services(world, media):
    from generation.candidates import feature_stems
    from generation.models import Candidate
    from scoring.models import Score
    from scoring.services import AMU_NAMES, get_system, score

    cands = list(Candidate.objects.filter(db__name=AMU_DB).select_related("vocal_clip").order_by("id"))
    assert AMU_NAMES == ("amu", "amu_rhythm") and len(cands) == 4
    values = {}
    for name in AMU_NAMES:
        system = get_system(name)
        assert system.arch == "amu" and system.config["amu_variant"] == name and not system.checkpoint
        assert score(system, cands, progress=False) == len(cands)
        values[name] = np.array([Score.objects.get(system=system, candidate=c).value for c in cands])
        assert np.all(np.isfinite(values[name]))
    assert np.max(np.abs(values["amu"] - values["amu_rhythm"])) > 0.01  # two rules, not one under two names
    c = cands[0]  # the stored amu score is the paper rule on the candidate's 44.1 kHz stems and vocal beats
    beats = np.asarray(c.vocal_clip.beats)
    direct = amu.paper_mashability(feature_stems(c, sr=amu.PAPER_SR), sr=amu.PAPER_SR,
                                   beat_times_s=beats[beats < c.duration_s])
    assert values["amu"][0] == pytest.approx(direct.total, abs=1e-6)


@pytest.mark.slow
@pytest.mark.django_db
def test_an_amu_system_from_before_the_variants_becomes_amu_rhythm_with_its_scores(world, media):
    from generation.models import Candidate
    from scoring.models import Score, System
    from scoring.services import get_system

    old = System.objects.create(name="amu", arch="amu")  # what every "amu" was: today's amu_rhythm
    Score.objects.create(system=old, candidate=Candidate.objects.filter(db__name=AMU_DB).first(), value=0.5)
    new = get_system("amu")
    old.refresh_from_db()
    assert old.name == "amu_rhythm" and old.config["amu_variant"] == "amu_rhythm" and old.scores.count() == 1
    assert new.pk != old.pk and new.config["amu_variant"] == "amu" and new.scores.count() == 0
    assert get_system("amu_rhythm").pk == old.pk


@pytest.mark.slow
@pytest.mark.django_db
def test_rank_accepts_amu_and_its_pair_score_is_what_score_stores(world, media):
    from scoring.retrieval import rank_pairs, store_top
    from scoring.services import get_system, score

    out = io.StringIO()
    call_command("rank", "--system", "amu_rhythm", "--vocal", str(world["vocal"]), "--top", "1", "--no-progress",
                 stdout=out)
    assert "amu_rhythm (amu, naive)" in out.getvalue()
    system = get_system("amu")
    ranking = rank_pairs(system, world["vocal"], pairs=[world["pair"]], progress=False)
    (pair,) = ranking.pairs
    report = store_top(system, ranking, top=1)
    score(system, report.candidates, progress=False, rescore=True)
    assert report.candidates[0].scores.get(system=system).value == pytest.approx(pair.score, abs=1e-6)
