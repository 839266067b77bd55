"""Uploading audio to a MashupDB (issue 14 §2-§3): several files at once, each checked by size and content
before anything is stored, all or nothing; file parts stay refused everywhere else."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from generation.models import MashupDB
from workbench.models import Job
from workbench.uploads import upload_folder

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    client.force_login(User.objects.create_user("exp", password="x-long-password", is_staff=True))
    MashupDB.objects.create(name="up")
    return client


def wav(name: str, *, seconds: float = 2.0, sr: int = 8000) -> SimpleUploadedFile:
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * 440.0 * t), sr, format="WAV")
    return SimpleUploadedFile(name, buf.getvalue(), content_type="audio/wav")


def url() -> str:
    return reverse("workbench:upload", args=["up"])


def test_two_good_files_are_both_stored(staff):
    r = staff.post(url(), {"files": [wav("a song.wav"), wav("b.wav")]}, follow=True)
    assert r.status_code == 200
    assert sorted(p.name for p in upload_folder("up").iterdir()) == ["a-song.wav", "b.wav"]
    assert b"Ingest these files" in r.content


def test_a_name_in_use_gets_a_new_name_not_an_overwrite(staff):
    staff.post(url(), {"files": [wav("a.wav")]})
    staff.post(url(), {"files": [wav("a.wav", seconds=1.0)]})
    assert sorted(p.name for p in upload_folder("up").iterdir()) == ["a-2.wav", "a.wav"]


def test_one_non_audio_file_among_good_ones_stores_nothing_and_is_named(staff):
    bad = SimpleUploadedFile("notes.wav", b"this is not audio at all" * 100)
    r = staff.post(url(), {"files": [wav("a.wav"), bad, wav("b.wav")]})
    assert r.status_code == 200 and b"notes.wav is not audio" in r.content
    assert not upload_folder("up").exists() or not any(upload_folder("up").iterdir())


def test_a_file_over_the_size_limit_is_refused(staff, settings):
    settings.MASHLAB_UPLOAD_MAX_FILE_BYTES = 10_000
    r = staff.post(url(), {"files": [wav("small.wav", seconds=0.1), wav("big.wav", seconds=2.0)]})
    assert b"big.wav is larger than the limit" in r.content
    assert not upload_folder("up").exists() or not any(upload_folder("up").iterdir())


def test_the_upload_page_takes_a_body_over_the_plain_limit(staff, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    staff.post(url(), {"files": [wav("long.wav", seconds=10.0)]})  # 160 kB
    assert [p.name for p in upload_folder("up").iterdir()] == ["long.wav"]


def test_a_file_part_elsewhere_is_still_refused(staff):
    r = staff.post(reverse("workbench:new_db"), {"name": "other", "f": wav("a.wav")})
    assert r.status_code == 400 and not MashupDB.objects.filter(name="other").exists()


def test_someone_not_staff_cannot_upload(client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    MashupDB.objects.create(name="up")
    client.force_login(User.objects.create_user("p", password="x-long-password"))
    r = client.post(url(), {"files": [wav("a.wav")]})
    assert r.status_code == 302 and not upload_folder("up").exists()


def test_the_ingest_form_launches_a_job_on_the_uploaded_files(staff):
    staff.post(url(), {"files": [wav("a.wav")]})
    r = staff.post(reverse("workbench:launch", args=["ingest"]), {
        "db": "up", "source": "uploads", "separator": "stems", "clip_seconds": "1.5", "segment": "start",
        "clips_per_file": "1"})
    job = Job.objects.get()
    assert r.status_code == 302 and job.stage == "ingest" and job.mashupdb == "up"
    assert job.arguments["paths"] == [str(upload_folder("up") / "a.wav")]


def test_the_ingest_form_says_when_nothing_was_uploaded(staff):
    r = staff.post(reverse("workbench:launch", args=["ingest"]), {
        "db": "up", "source": "uploads", "separator": "stems", "clip_seconds": "30", "segment": "start",
        "clips_per_file": "1"})
    assert r.status_code == 200 and b"has no uploaded files" in r.content and not Job.objects.exists()


def test_the_mashupdb_page_and_the_nav_link_to_the_audio_pages(staff):
    page = staff.get(reverse("generation:db", args=["up"])).content.decode()
    assert reverse("workbench:upload", args=["up"]) in page and reverse("workbench:import", args=["up"]) in page
    assert reverse("workbench:new_db") in page
