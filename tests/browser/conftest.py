"""One headless Debian Chromium, driven by Playwright, for every browser test.

Playwright cannot download its own browser here, so the tests use /usr/bin/chromium
(`make test` installs it when missing). Without it the tests skip and say why, except in CI
(BOT_REQUIRE_BROWSER=1), where a missing browser fails the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium tries to reach Google's hosts, which this
# closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A launched Chromium, shared by the session."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (install Debian's chromium package)"
        if os.environ.get("BOT_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " and BOT_REQUIRE_BROWSER=1", pytrace=False)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
