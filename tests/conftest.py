"""Shared test world: settings pointed at a private MEDIA_ROOT, module work folders, and the generated songs."""

from __future__ import annotations

import shutil

import pytest

pytest_plugins = ["tests.fixtures_songs", "tests.browser"]


@pytest.fixture(autouse=True)
def _private_media_root(settings, tmp_path):
    """Every test writes media to its own folder, never into the developer's data/."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


@pytest.fixture(scope="module")
def module_tmp(request, tmp_path_factory):
    """A module's own work folder, deleted when the module's tests are done.

    Module worlds ingest and render 44.1 kHz float WAVs: the scoring pipeline's
    64 songs alone are about 4 GB. pytest keeps every tmp folder until the
    session ends, so without this the suite's disk footprint would be the sum
    of all worlds rather than the largest one.
    """
    path = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def staff(client, db):
    """The test client logged in as a staff user (modules needing more, e.g. a MashupDB, define their own)."""
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_user("exp", password="x-long-password", is_staff=True))
    return client
