"""The headless Debian chromium that every browser test drives through Playwright (pytest plugin: ``browser``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
#: Headless, offline, no first-run work; audio may start without a gesture and stays muted.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required", "--mute-audio"]
NO_CHROMIUM = f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium; scripts/setup.sh --tests does)"


@pytest.fixture
def browser() -> Iterator[Any]:
    """A launched chromium, closed after the test; the test is skipped, saying why, where chromium is absent."""
    if not Path(CHROMIUM).exists():
        pytest.skip(NO_CHROMIUM)
    playwright_sync = pytest.importorskip("playwright.sync_api")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # the live server's ORM calls run beside Playwright's loop
    with playwright_sync.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()
