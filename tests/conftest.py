"""Shared test world: settings pointed at a private MEDIA_ROOT, and the generated songs."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.fixtures_songs"]


@pytest.fixture(autouse=True)
def _private_media_root(settings, tmp_path):
    """Every test writes media to its own folder, never into the developer's data/."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT
