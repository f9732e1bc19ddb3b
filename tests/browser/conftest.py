"""Browser tests of the verification page: a real ``certledger serve`` and Debian's Chromium via Playwright.

Required, not optional: Chromium at ``/usr/bin/chromium`` (Debian package
``chromium``; Playwright's own browser download is not used), the Python package
``playwright``, and axe-core under ``tests/js/node_modules`` (``npm install`` in
tests/js). A missing one FAILS the tests with what to install, unless
``CERTLEDGER_ALLOW_SKIP=1`` turns that into a skip.

Every page a test opens is watched (browser_page.PageWatch): a request to any
other origin, a console error or an uncaught exception fails the test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from api_server import ApiServer, serving
from browser_page import new_page
from licence_files import LicenceHome, shared_licence_home

CHROMIUM = Path(os.environ.get("CERTLEDGER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE_JS = Path(__file__).resolve().parents[1] / "js" / "node_modules" / "axe-core" / "axe.min.js"
REPO = Path(__file__).resolve().parents[2]


def _missing(what: str, how: str) -> NoReturn:
    message = f"{what} is required for the browser tests but is not available: {how}"
    if os.environ.get("CERTLEDGER_ALLOW_SKIP") == "1":
        pytest.skip(message)
    pytest.fail(message + " (set CERTLEDGER_ALLOW_SKIP=1 to skip instead)", pytrace=False)


@pytest.fixture(scope="session")
def licence_home(tmp_path_factory: pytest.TempPathFactory) -> LicenceHome:
    return shared_licence_home(tmp_path_factory.mktemp("licences"))


@pytest.fixture(scope="session")
def licence_paths(licence_home: LicenceHome, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The licence files on disk, for the page's file input."""
    return licence_home.write_files(tmp_path_factory.mktemp("files"))


@pytest.fixture(scope="session")
def server(licence_home: LicenceHome) -> Iterator[ApiServer]:
    # read-only: the tests only read, and a read-only server may share the home with other tests
    srv = ApiServer(licence_home.home, read_only=True, env={"CERTLEDGER_API_RATE": "0"})
    with serving(srv):
        yield srv


@pytest.fixture(scope="session")
def browser_tools() -> Any:
    """Chromium and playwright, checked before anything slow is built."""
    if not CHROMIUM.exists():
        _missing(f"Chromium ({CHROMIUM})", "apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the Python package playwright", "pip install playwright (no `playwright install` needed)")
    return sync_playwright


@pytest.fixture(scope="module")
def chromium(browser_tools: Any, server: ApiServer) -> Iterator[Any]:
    # After the server (and so the licence files): Playwright's sync API keeps an event loop
    # *running* on this thread for as long as its context is open, and signing licence files
    # (pyhanko) needs asyncio.run(). Module scope closes it when the browser tests end, so
    # every later test module (PDF signing, the verify endpoint's slot pool) gets a thread
    # with no running loop.
    with browser_tools() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE_JS.exists():
        _missing("the npm package axe-core", f"cd {AXE_JS.parents[2]} && npm install")
    return AXE_JS.read_text("utf-8")


@pytest.fixture
def page(chromium: Any, server: ApiServer) -> Iterator[Any]:
    context, pg, watch = new_page(chromium, server)
    try:
        yield pg
        watch.check()
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/screenshots/ with CERTLEDGER_UPDATE_SCREENSHOTS=1 (the committed pictures), else a temp dir."""
    if os.environ.get("CERTLEDGER_UPDATE_SCREENSHOTS") == "1":
        path = REPO / "docs" / "screenshots"
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")
