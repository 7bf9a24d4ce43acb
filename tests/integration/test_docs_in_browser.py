"""The docs pages render in a real headless Chromium with every non-loopback host unreachable.

The real app runs under uvicorn on loopback. Chromium is Debian's (``scripts/install-browser``
installs it when missing), driven by the pinned Playwright. Every request the page makes goes
through one route handler: loopback requests go on, any other is aborted and recorded, so a
page that reaches for a CDN (for a script, a style, a font or a validator badge) fails here
rather than rendering blank for a user without internet.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect, sync_playwright

from riskgate.app import create_app
from riskgate.settings import Settings
from server_support import served_on_loopback

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = frozenset({"127.0.0.1", "localhost"})
PAGES = ["/schema", "/schema/swagger"]
"""Every Swagger UI page riskgate serves (the other render plugins serve JSON and YAML)."""
METHODS = frozenset({"get", "put", "post", "patch", "delete", "head", "options", "trace"})
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # as root there is no user namespace sandbox to use
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Chromium's own calls home (updates, sync, field trials) would be refused by this closed
    # network, and are not what the page does.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Requests that bypass the page's routing (DNS prefetch, preconnect) cannot leave either.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]
"""Playwright adds a fresh, empty ``--user-data-dir`` of its own to every launch."""
RENDER_SECONDS = 30


@pytest.fixture(scope="session")
def chromium() -> str:
    """The pinned Debian Chromium's path, installed by the project's script when missing."""
    script = ROOT / "scripts" / "install-browser"
    result = subprocess.run([script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def server_url(settings: Settings) -> Iterator[str]:
    with served_on_loopback(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


class OfflinePage:
    """A page whose requests to any host but loopback are refused and recorded, as are the
    console's errors and uncaught exceptions."""

    def __init__(self, browser: Browser) -> None:
        self.left_loopback: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context()
        self.context.set_default_timeout(RENDER_SECONDS * 1000)
        # Every request of every page in this context, whatever its type, comes here first.
        self.context.route("**/*", self._route)
        self.page: Page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _route(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            self.left_loopback.append(route.request.url)
            route.abort("addressunreachable")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} ({message.location.get('url')})")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def offline_page(browser: Browser) -> Iterator[OfflinePage]:
    page = OfflinePage(browser)
    try:
        yield page
    finally:
        page.close()


def documented_operations(document: dict[str, Any]) -> int:
    """Operations of ``paths`` and ``webhooks``: Swagger UI renders a block for each."""
    return sum(
        1
        for section in ("paths", "webhooks")
        for item in document.get(section, {}).values()
        for method in item
        if method in METHODS
    )


@pytest.mark.parametrize("path", PAGES)
def test_docs_page_renders_every_operation_offline(
    server_url: str, offline_page: OfflinePage, path: str
) -> None:
    document = httpx.get(f"{server_url}/schema/openapi.json").raise_for_status().json()
    expected = documented_operations(document)
    assert expected > len(document["webhooks"]), "the document lists no paths"
    page = offline_page.page

    # Once the network is quiet, every asset, the spec and anything the scripts fetched is in.
    response = page.goto(server_url + path, wait_until="networkidle")

    assert response is not None
    assert response.status == 200
    assert offline_page.left_loopback == []
    # Swagger UI renders from script: poll for the blocks, with a deadline.
    expect(page.locator(".opblock")).to_have_count(expected, timeout=RENDER_SECONDS * 1000)
    score = page.locator("#operations-scoring-scoreEvent")
    expect(score).to_be_visible()
    expect(score.locator(".opblock-summary-method")).to_have_text("POST")
    expect(score.locator(".opblock-summary-path")).to_have_attribute("data-path", "/v1/score")
    assert offline_page.left_loopback == []
    assert offline_page.errors == []
