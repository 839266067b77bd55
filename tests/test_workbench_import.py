"""Importing a server folder (issue 14 §2-§3): only under MASHLAB_IMPORT_ROOTS, no `..`, no symlink out, a
clear message for an empty folder or one without audio; a good folder launches an ingest job on its audio."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from django.contrib.auth.models import User
from django.urls import reverse

from generation.models import MashupDB
from workbench.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(tmp_path, settings):
    r = (tmp_path / "music").resolve()
    r.mkdir()
    settings.MASHLAB_IMPORT_ROOTS = [r]
    return r


@pytest.fixture
def staff(client):
    client.force_login(User.objects.create_user("exp", password="x-long-password", is_staff=True))
    MashupDB.objects.create(name="imp")
    return client


def song(path, *, seconds: float = 1.0, sr: int = 8000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220.0 * np.arange(int(seconds * sr)) / sr), sr)


def post(client, folder) -> object:
    return client.post(reverse("workbench:import", args=["imp"]), {
        "db": "imp", "folder": str(folder), "separator": "stems", "clip_seconds": "30", "segment": "start",
        "clips_per_file": "1"})


def test_a_folder_under_a_root_launches_an_ingest_job_on_its_audio(staff, root):
    song(root / "album" / "a.wav")
    song(root / "album" / "sub" / "b.flac")
    (root / "album" / "cover.txt").write_text("not audio")
    r = post(staff, root / "album")
    job = Job.objects.get()
    assert r.status_code == 302 and job.stage == "ingest" and job.mashupdb == "imp"
    assert job.arguments["paths"] == [str(root / "album" / "a.wav"), str(root / "album" / "sub" / "b.flac")]


def test_a_folder_outside_the_roots_is_refused(staff, root, tmp_path):
    song(tmp_path / "elsewhere" / "a.wav")
    r = post(staff, tmp_path / "elsewhere")
    assert b"outside the import folders" in r.content and not Job.objects.exists()


def test_dot_dot_is_refused(staff, root):
    (root / "album").mkdir()
    r = post(staff, f"{root}/album/../album")
    assert b"holds &#x27;..&#x27;" in r.content and not Job.objects.exists()


def test_a_symlink_leading_out_of_the_roots_is_refused(staff, root, tmp_path):
    song(tmp_path / "secret" / "a.wav")
    (root / "link").symlink_to(tmp_path / "secret")
    r = post(staff, root / "link")
    assert b"outside the import folders" in r.content and not Job.objects.exists()


def test_a_symlinked_file_leading_out_is_not_imported(staff, root, tmp_path):
    song(tmp_path / "secret" / "a.wav")
    (root / "album").mkdir()
    (root / "album" / "a.wav").symlink_to(tmp_path / "secret" / "a.wav")
    r = post(staff, root / "album")
    assert b"holds no audio files" in r.content and not Job.objects.exists()


def test_an_empty_folder_is_named_empty(staff, root):
    (root / "empty").mkdir()
    r = post(staff, root / "empty")
    assert b"is empty" in r.content and not Job.objects.exists()


def test_a_folder_without_audio_says_so(staff, root):
    (root / "docs").mkdir()
    (root / "docs" / "readme.txt").write_text("hello")
    r = post(staff, root / "docs")
    assert b"holds no audio files" in r.content and not Job.objects.exists()
