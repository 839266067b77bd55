"""Render and score on a dask.distributed LocalCluster of 2 workers give exactly what the serial run gives.

One module world (issue 14 item 4): 6 generated 14 s songs (the cached set of
seed 0) imported as stems and analysed on a 2-worker cluster (`ingest --jobs
2`), original and unmatched candidates drawn, and a one-epoch PostMixNet.
Each comparison empties the render folder and the caches (adjusted stems,
features) before the cluster run, so the workers compute everything again
instead of reading what the serial run stored.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from generation.candidates import render_candidates
from generation.models import Candidate, Clip, MashupDB
from scoring.models import Score, System
from scoring.services import get_system, score
from tests.fixtures_songs import stems_folder

pytestmark = pytest.mark.slow

SONGS, SONG_SEED, SONG_SECONDS = 6, 0, 14.0
DB = "dk-songs"
WORKERS = 2
CANDIDATES = 8  # half original, half unmatched_key
BATCH = 4  # candidates per scoring batch: two batches, one per worker
AMU_CANDIDATES = 4  # the AMU baseline is the slow scorer here: fewer candidates, batches of 2


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, module_tmp):
    media = module_tmp / "media"
    media.mkdir()
    with django_db_blocker.unblock(), override_settings(MEDIA_ROOT=media):
        folder = stems_folder(module_tmp / "in", count=SONGS, seed=SONG_SEED, seconds=SONG_SECONDS)
        call_command("ingest", str(folder), "--db", DB, "--separator", "stems", "--jobs", str(WORKERS),
                     "--no-progress", stdout=io.StringIO(), stderr=io.StringIO())
        for i, condition in enumerate(("original", "unmatched_key")):
            call_command("generate", "--db", DB, "--condition", condition, "--count", str(CANDIDATES // 2),
                         "--seed", str(i), "--no-progress", stdout=io.StringIO())
        call_command("train", "--db", DB, "--arch", "postmix", "--epochs", "1", "--seed", "3", "--width", "0.125",
                     "--crop-seconds", "2", "--crop-offsets", "0,2", "--name", "dk-tiny",
                     "--out", str(module_tmp / "tiny"), "--no-progress", stdout=io.StringIO())
        yield {"media": media}
        System.objects.filter(name="dk-tiny").delete()
        MashupDB.objects.filter(name=DB).delete()


@pytest.fixture(autouse=True)
def _module_media(world, settings, _private_media_root):
    settings.MEDIA_ROOT = world["media"]


def _empty(media: Path, *names: str) -> None:
    for name in names:
        shutil.rmtree(media / name, ignore_errors=True)


def _rendered(media: Path) -> dict[int, dict[str, str]]:
    """candidate id → {mix/stem relative path: SHA-256 of its bytes}."""
    out = {}
    for c in Candidate.objects.filter(db__name=DB).order_by("id"):
        paths = [c.mix_path, c.vocal_path, c.harmonic_path, c.percussion_path]
        assert all(paths), c.id
        out[c.id] = {p: hashlib.sha256((media / p).read_bytes()).hexdigest() for p in paths}
    return out


def _scores(name: str) -> dict[int, float]:
    return dict(Score.objects.filter(system__name=name, candidate__db__name=DB).values_list("candidate_id", "value"))


@pytest.mark.django_db
def test_ingest_on_the_cluster_analysed_every_clip(world):
    clips = Clip.objects.filter(db__name=DB)
    assert clips.count() == SONGS
    assert all(c.tempo_bpm > 0 and c.beats and c.key_label for c in clips)


@pytest.mark.django_db
def test_render_on_two_workers_gives_the_serial_bytes(world):
    """Serially through the function, then through `render --jobs 2` (the command passes the count on)."""
    media = world["media"]
    cands = Candidate.objects.filter(db__name=DB).select_related("db").order_by("id")
    n = cands.count()
    assert n == CANDIDATES
    seen: list[tuple[int, int]] = []
    assert render_candidates(cands, progress=False, force=True,
                             on_progress=lambda done, total, item: seen.append((done, total))) == n
    assert seen == [(k, n) for k in range(1, n + 1)]
    serial = _rendered(media)
    _empty(media, "renders", "cache")
    out = io.StringIO()
    call_command("render", "--db", DB, "--force", "--jobs", str(WORKERS), "--no-progress", stdout=out)
    assert f"{n} candidates rendered" in out.getvalue()
    assert _rendered(media) == serial


@pytest.mark.django_db
@pytest.mark.parametrize("system", ["dk-tiny", "amu"])
def test_score_on_two_workers_gives_the_serial_scores(world, system):
    media = world["media"]
    cands = list(Candidate.objects.filter(db__name=DB).order_by("id"))
    batch = BATCH
    if system == "amu":
        cands, batch = cands[:AMU_CANDIDATES], AMU_CANDIDATES // 2
    _empty(media, "cache")
    assert score(get_system(system), cands, batch=batch, progress=False, rescore=True) == len(cands)
    serial = _scores(system)
    _empty(media, "cache")
    Score.objects.filter(system__name=system).delete()
    seen: list[int] = []
    assert score(get_system(system), cands, batch=batch, progress=False, jobs=WORKERS,
                 on_progress=lambda done, total, item: seen.append(done)) == len(cands)
    assert seen == [batch, 2 * batch]  # one call per stored batch, as each arrives
    assert _scores(system) == serial  # float-equal, not approximately
