"""Headless Chromium for browser tests: Debian's `chromium` driven by Playwright (no browser download).

Use the `browser_page` fixture (registered in tests/conftest.py). It yields a `BrowserPage`: a Playwright
page plus the console errors and failed requests seen so far; on teardown a screenshot of the page is kept
under `test-artifacts/screenshots/` (git-ignored) whether the test passed or not.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_executable() -> str:
    """The system Chromium (Debian's package; `.ci/run` installs it). Fails loudly rather than skipping."""
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no Chromium on PATH: install Debian's `chromium` package (apt-get install chromium)")


@dataclass
class BrowserPage:
    page: object  # playwright.sync_api.Page
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def browser_page(request: pytest.FixtureRequest) -> Iterator[BrowserPage]:
    from playwright.sync_api import sync_playwright  # imported here: only browser tests pay for it

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_executable(),
            headless=True,
            # Root in CI: Chromium's sandbox needs user namespaces the container may not grant.
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(30_000)
            seen = BrowserPage(page)
            page.on("console", lambda msg: msg.type == "error" and seen.console_errors.append(msg.text))
            page.on("pageerror", lambda exc: seen.console_errors.append(str(exc)))
            page.on("requestfailed", lambda req: seen.failed_requests.append(req.url))
            yield seen
            try:
                seen.screenshot(request.node.name)
            except Exception as exc:  # a closed page must not hide the test's own outcome
                print(f"screenshot not kept: {exc}")
        finally:
            browser.close()
