"""Ranking every qualifying pair of a vocal seed (issue 4 §6): rank_pairs, the rank command, bad input.

One module-scoped world: 8 generated 30 s songs (seed 22, cached in the
test cache) imported as stems into MashupDB ``rk-main`` and analysed with
madmom, one more song alone in ``rk-solo`` (a vocal with nothing to pair
with), and tiny random-init systems registered from checkpoints written by
``scoring.training.save_checkpoint``: a PreMixNet and a PostMixNet of width
0.125 on 3 s crops, scored at three crop offsets. Their BatchNorm statistics
and FC weights are spread out so that scores differ across pairs and an
agreement to 1e-5 means something. Quality is irrelevant here.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from generation.candidates import clip_infos, generate, spec_of
from generation.conditions import qualifying_stems
from generation.models import Candidate, Clip, MashupDB
from generation.stem_cache import StemCache
from scoring.errors import ScoringError
from scoring.factorised import RoleTermer, role_terms, score_crops
from scoring.features import FeatureConfig
from scoring.models import Score, System
from scoring.nets import (
    MashabilityNet,
    PostMixNet,
    PreMixNet,
    build_model,
    predict,
    randomise_batchnorm,
)
from scoring.retrieval import rank_pairs, store_top
from scoring.services import register_checkpoint, score
from scoring.training import save_checkpoint
from tests.fixtures_songs import stems_folder

pytestmark = pytest.mark.slow

SONGS, SONG_SEED, SECONDS = 8, 22, 30.0
CROPS_S = [0.0, 7.0, 21.0]
CFG = FeatureConfig(crop_s=3.0)


def _spread(model: MashabilityNet, seed: int, *, fc_gain: float = 6.0, mean: float = -7.0) -> None:
    """Non-trivial BatchNorm statistics and larger FC weights, so eval-mode scores vary across pairs.

    ``mean``: the input normalisation mean (log-mel units; std 3.7, both measured on these songs' 3 s crops).
    """
    randomise_batchnorm(model, seed)
    with torch.no_grad():
        for fc in (model.head.fc1, model.head.fc2, model.head.out):
            fc.weight.mul_(fc_gain)
    model.set_input_normalisation(mean=mean, std=3.7)


def _system(name: str, arch: str, folder) -> System:
    torch.manual_seed(5)
    model = build_model(arch, width=0.125)
    # gains that keep these songs' scores in the middle of 0..1 (measured: 0.34-0.82 and 0.43-0.47)
    _spread(model, seed=6, **({"fc_gain": 4.0, "mean": -8.1} if arch == "premix" else {"fc_gain": 2.0, "mean": -5.1}))
    path = folder / f"{name}.pt"
    save_checkpoint(path, model=model.eval(), optimizer=None, epoch=0, history=[], feature_config=CFG,
                    crop_offsets_s=CROPS_S)
    system = register_checkpoint(name, path)  # the crops come from the checkpoint
    assert system.config["crop_offsets_s"] == CROPS_S
    return system


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, module_tmp):
    tmp = module_tmp
    media = tmp / "media"
    media.mkdir()
    with django_db_blocker.unblock(), override_settings(MEDIA_ROOT=media):
        for name, take, folder_seed in (("rk-main", SONGS, SONG_SEED), ("rk-solo", 1, 11)):
            count = SONGS if name == "rk-main" else 48  # the learned-model test's training set: cached once
            folder = stems_folder(tmp / f"in-{name}", count=count, seed=folder_seed, seconds=SECONDS, take=take)
            call_command("ingest", str(folder), "--db", name, "--separator", "stems", "--no-progress",
                         stdout=io.StringIO(), stderr=io.StringIO())
        clips = clip_infos(Clip.objects.filter(db__name="rk-main").prefetch_related("stems").order_by("id"))
        best = max(clips, key=lambda c: qualifying_stems(c, clips).pair_count)
        q = qualifying_stems(best, clips)
        assert q.pair_count >= 4, f"the world needs a vocal with several pairs, best has {q.pair_count}"
        systems = {"premix": _system("rk-pre", "premix", tmp), "postmix": _system("rk-post", "postmix", tmp)}
        yield {"media": media, "tmp": tmp, "vocal": best.id, "q": q, "systems": systems}
        System.objects.filter(name__startswith="rk-").delete()
        MashupDB.objects.filter(name__startswith="rk-").delete()


@pytest.fixture(autouse=True)
def _module_media(request, settings, _private_media_root):
    """Tests of the world read its media; the kernel tests need no world (pytest-django runs them
    after the database tests, so depending on the world would build it a second time)."""
    if "world" in request.fixturenames:
        settings.MEDIA_ROOT = request.getfixturevalue("world")["media"]


def test_score_crops_equals_full_passes_averaged_over_crops():
    torch.manual_seed(0)
    model = PreMixNet(width=0.125)
    _spread(model, seed=1, fc_gain=1.0)  # scores 0.651-0.661 on this input
    model.eval()
    g = torch.Generator().manual_seed(2)
    k, t = 2, 40
    v = torch.randn(k, t, 128, generator=g) * 3 - 7
    hs = torch.randn(3, k, t, 128, generator=g) * 3 - 7
    ps = torch.randn(4, k, t, 128, generator=g) * 3 - 7
    pairs = np.array([[2, 0], [0, 3], [1, 1], [2, 3]])
    fast = score_crops(model, v, hs, ps, pairs=pairs, batch_pairs=3, batch_stems=2)
    plain = score_crops(model, v, hs, ps, pairs=pairs, batch_pairs=3, batch_stems=2, fast=False)
    naive = np.array([np.mean([predict(model, torch.stack([v[c], hs[i, c], ps[j, c]])[None])[0] for c in range(k)])
                      for i, j in pairs])
    assert fast.shape == plain.shape == (4,)
    assert np.max(np.abs(fast - naive)) < 1e-5 and np.max(np.abs(plain - naive)) < 1e-5
    assert np.ptp(naive) > 1e-3
    everything = score_crops(model, v, hs, ps)
    assert everything.shape == (12,) and abs(everything[2 * 4 + 3] - fast[3]) < 1e-6
    with pytest.raises(ScoringError, match="pair indices"):
        score_crops(model, v, hs, ps, pairs=np.array([[3, 0]]))
    with pytest.raises(ScoringError, match="same number of crops"):
        score_crops(model, v[:1], hs, ps)
    with pytest.raises(ScoringError, match="PreMixNet"):
        score_crops(PostMixNet(width=0.125), v, hs, ps)


@pytest.mark.django_db
def test_rank_pairs_scores_every_qualifying_pair_once_best_first(world, tmp_path):
    q = world["q"]
    cache = StemCache(tmp_path / "fresh-cache")
    ranking = rank_pairs(world["systems"]["premix"], world["vocal"], progress=False, cache=cache)
    got = [(p.harmonic_clip, p.percussion_clip) for p in ranking.pairs]
    want = {(h.id, p.id) for h in q.harmonic for p in q.percussion}
    assert ranking.method == "factorised"
    assert ranking.n_pairs == q.pair_count == len(q.harmonic) * len(q.percussion)
    assert (ranking.n_harmonic, ranking.n_percussion) == (len(q.harmonic), len(q.percussion))
    assert set(got) == want and len(got) == len(want)
    scores = [p.score for p in ranking.pairs]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    # each stem adjusted once: the vocal and every qualifying stem, at most one cache miss each
    assert 0 < ranking.cache_misses <= 1 + len(q.harmonic) + len(q.percussion)
    assert ranking.stats["sourcenet_stems"] == len(CROPS_S) * (1 + len(q.harmonic) + len(q.percussion))
    again = rank_pairs(world["systems"]["premix"], world["vocal"], progress=False, cache=cache)
    assert again.cache_misses == 0 and again.cache_hits == ranking.cache_misses + ranking.cache_hits
    assert [(p.harmonic_clip, p.percussion_clip, p.score) for p in again.pairs] == \
        [(p.harmonic_clip, p.percussion_clip, p.score) for p in ranking.pairs]


@pytest.mark.django_db
@pytest.mark.parametrize("arch", ["premix", "postmix"])
def test_rank_pairs_agrees_with_scoring_the_matched_candidates_one_by_one(world, arch):
    system = world["systems"][arch]
    count = min(6, world["q"].pair_count)
    made = generate(db_name="rk-main", condition="matched", count=count, seed=9, vocal_id=world["vocal"]).created
    assert len(made) == count
    ranking = rank_pairs(system, world["vocal"], progress=False)
    assert ranking.method == ("factorised" if arch == "premix" else "naive")
    assert score(system, made, progress=False, rescore=True) == count
    stored = dict(Score.objects.filter(system=system, candidate__in=made).values_list("candidate_id", "value"))
    ranked = {(p.harmonic_clip, p.percussion_clip): p for p in ranking.pairs}
    diffs = []
    for c in made:
        pair = ranked[(c.harmonic_clip_id, c.percussion_clip_id)]
        mine, theirs = pair.spec.to_dict(), spec_of(c).to_dict()
        mine.pop("seed"), theirs.pop("seed")
        assert mine == theirs  # the ranked pair stands for exactly this matched candidate
        diffs.append(abs(pair.score - stored[c.id]))
    assert max(diffs) < 1e-5
    assert np.ptp([p.score for p in ranking.pairs]) > 1e-3, "scores must vary for the agreement to mean something"


@pytest.mark.django_db
def test_rank_command_prints_the_top_and_stores_it_once(world, tmp_path):
    system = world["systems"]["premix"]
    before = Candidate.objects.filter(db__name="rk-main").count()
    out = io.StringIO()
    path = tmp_path / "rank.json"
    call_command("rank", "--system", "rk-pre", "--vocal", str(world["vocal"]), "--top", "3", "--store",
                 "--json", str(path), "--no-progress", stdout=out)
    text = out.getvalue()
    print(text)
    n = world["q"].pair_count
    assert f"{n} pairs scored" in text and "stored 3 candidates (3 created, 0 already stored)" in text
    data = json.loads(path.read_text())
    assert data["pairs_scored"] == n == len(data["pairs"]) and len(data["top"]) == 3
    assert [t["score"] for t in data["top"]] == [p["score"] for p in data["pairs"][:3]]
    for t in data["top"]:
        assert f"{t['score']:.5f}" in text
        cand = Candidate.objects.get(id=t["candidate_id"])
        assert cand.condition == "matched" and cand.vocal_clip_id == world["vocal"]
        assert (cand.harmonic_clip_id, cand.percussion_clip_id) == (t["harmonic_clip"], t["percussion_clip"])
        assert Score.objects.get(system=system, candidate=cand).value == t["score"]
    assert Candidate.objects.filter(db__name="rk-main").count() == before + 3
    # stored scores are what `score` computes for those candidates
    cands = list(Candidate.objects.filter(id__in=[t["candidate_id"] for t in data["top"]]))
    first = dict(Score.objects.filter(system=system, candidate__in=cands).values_list("candidate_id", "value"))
    score(system, cands, progress=False, rescore=True)
    again = dict(Score.objects.filter(system=system, candidate__in=cands).values_list("candidate_id", "value"))
    assert max(abs(first[k] - again[k]) for k in first) < 1e-5

    out = io.StringIO()
    call_command("rank", "--system", "rk-pre", "--vocal", str(world["vocal"]), "--top", "3", "--store",
                 "--no-progress", stdout=out)
    assert "stored 3 candidates (0 created, 3 already stored)" in out.getvalue()
    assert Candidate.objects.filter(db__name="rk-main").count() == before + 3
    # generation never draws a stored ranked pair again
    rest = world["q"].pair_count - 3
    made = generate(db_name="rk-main", condition="matched", count=rest, seed=1, vocal_id=world["vocal"]).created
    pairs = {(c.harmonic_clip_id, c.percussion_clip_id) for c in made}
    assert len(pairs) == rest and not pairs & {(t["harmonic_clip"], t["percussion_clip"]) for t in data["top"]}


@pytest.mark.django_db
def test_rank_command_bad_input_is_a_clear_error_and_stores_nothing(world, tmp_path):
    def counts() -> tuple[int, int, int]:
        return Candidate.objects.count(), Score.objects.count(), System.objects.count()

    before = counts()
    vocal = str(world["vocal"])

    def fails(match: str, *args: str) -> None:
        with pytest.raises(CommandError, match=match):
            call_command("rank", *args, "--store", "--no-progress", stdout=io.StringIO())
        assert counts() == before

    fails("no system named 'rk-ghost'", "--system", "rk-ghost", "--vocal", vocal)
    fails("no clip with id 999999", "--system", "rk-pre", "--vocal", "999999")
    solo = Clip.objects.get(db__name="rk-solo").id
    fails("no qualifying matched pair", "--system", "rk-pre", "--vocal", str(solo))
    fails("--top must be at least 1", "--system", "rk-pre", "--vocal", vocal, "--top", "0")
    fails("duration_s must be in 25..60", "--system", "rk-pre", "--vocal", vocal, "--duration", "5")
    fails("no MashupDB named 'rk-nowhere'", "--system", "rk-pre", "--vocal", vocal, "--accompaniment-db", "rk-nowhere")
    gone = System.objects.create(name="rk-gone", arch="premix", checkpoint=str(tmp_path / "gone.pt"))
    before = counts()
    fails("checkpoint .* is missing", "--system", gone.name, "--vocal", vocal)
    post_ckpt = world["systems"]["postmix"].checkpoint_file
    System.objects.create(name="rk-wrong", arch="premix", checkpoint=str(post_ckpt))
    before = counts()
    fails("postmix", "--system", "rk-wrong", "--vocal", vocal)
    with pytest.raises(ScoringError, match="top must be"):
        store_top(world["systems"]["premix"], rank_pairs(world["systems"]["premix"], world["vocal"], progress=False),
                  top=0)
    assert counts() == before


def test_inference_kernels_reproduce_the_model_modules():
    torch.manual_seed(3)
    model = PreMixNet(width=0.25)
    _spread(model, seed=4, fc_gain=1.0)
    model.eval()
    x = torch.randn(3, 1, 36, 128, generator=torch.Generator().manual_seed(5)) * 3
    for role in ("vocal", "harmonic", "percussion"):
        fast, plain = RoleTermer(model, role), RoleTermer(model, role, fast=False)
        z = plain.sourcenet(x)
        assert z.shape == (3, model.source_channels, 9, 128)
        assert torch.allclose(fast.sourcenet(x), z, atol=1e-5, rtol=1e-5)
        ref = plain.role_conv(z)
        assert ref.shape == (3, model.head.channels, 9, 1)
        assert torch.allclose(fast.role_conv(z), ref, atol=1e-4, rtol=1e-5)
        assert ref.abs().max() > 1e-2  # the comparison is not between zeros
    with pytest.raises(ScoringError, match="another model or role"):
        role_terms(model, x[:, 0], role="vocal", termer=RoleTermer(model, "harmonic"))
