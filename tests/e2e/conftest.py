"""A live server on a free port and Debian's chromium (its headless shell) driven by Playwright.

The server (`live_server` in tests/conftest.py, sandbox on) runs in a thread on the real engine:
rows are committed, and the `committed` fixture empties the tables after each test. With
SCREENSHOTS=1 (`make screenshots`) each named step's full page goes to test-artifacts/ for people to
look at; without, `shot` takes none (they were a quarter of the browser tests' time).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = os.environ.get("SCREENSHOTS") == "1"
# Debian's build of Chromium's headless shell, the browser Playwright itself runs headless: the same
# engine as chromium without the desktop browser around it, at two thirds of its CPU a page.
CHROMIUM = "/usr/bin/chromium-headless-shell"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


# One browser for the tests of tests/e2e that a worker runs (they run first and together: see
# pytest_collection_modifyitems in tests/conftest.py), not one per session: Playwright's sync API keeps
# its event loop running while the browser is open, and a later test in the same worker that calls
# asyncio.run (the job worker) would fail.
@pytest.fixture(scope="package")
def browser() -> Iterator:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Page:
    """A browser tab that records console errors and takes named screenshots."""

    def __init__(self, page, base: str, name: str) -> None:
        self.page, self.base, self.name = page, base, name
        self.console_errors: list[str] = []
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.console_errors.append(str(e)))

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path)

    def register(self, email: str, password: str = "browser-password") -> None:
        """Create an account through /register; the new person lands signed in on the dashboard."""
        self.goto("/register")
        self.page.fill("input[name=email]", email)
        self.page.fill("input[name=password]", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(f"{self.base}/")

    def shot(self, label: str) -> None:
        if not SCREENSHOTS:
            return
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{self.name}-{label}.png"), full_page=True)


@pytest.fixture(params=[("wide", 1366, 900), ("narrow", 390, 844)], ids=["wide", "narrow"])
def page(request, browser, live_server, committed) -> Iterator[Page]:
    label, width, height = request.param
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    tab = Page(context.new_page(), live_server.url, f"{request.node.originalname}-{label}")
    yield tab
    context.close()


class Tabs:
    """Opens tabs in one language and viewport, each in a browser context of its own (its own
    cookies: one person each); closes them all at the end. `tabs("admin")` returns a Page. An
    init script runs in every document the tabs open, before the page's own scripts."""

    def __init__(
        self, browser, base: str, language: str, width: int, height: int, prefix: str, init_script: str | None = None
    ) -> None:
        self.browser, self.base, self.language = browser, base, language
        self.width, self.height, self.prefix = width, height, prefix
        self.init_script = init_script
        self.contexts: list = []

    def __call__(self, who: str) -> Page:
        context = self.browser.new_context(
            viewport={"width": self.width, "height": self.height}, locale="zh-CN", accept_downloads=True
        )
        context.add_cookies([{"name": "lang", "value": self.language, "url": self.base}])
        if self.init_script:
            context.add_init_script(self.init_script)
        self.contexts.append(context)
        return Page(context.new_page(), self.base, f"{self.prefix}-{self.language}-{self.width}-{who}")

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@contextmanager
def tabs(
    browser, live_server, param: tuple[str, int, int], prefix: str, init_script: str | None = None
) -> Iterator[Tabs]:
    """The Tabs of a fixture's (language, width, height) parameter."""
    opened = Tabs(browser, live_server.url, *param, prefix, init_script)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def job_worker(database_url: str) -> Iterator[None]:
    """A job worker process beside the live server, on the same database, as `make run` has one."""
    env = {**os.environ, "DATABASE_URL": database_url, "LEDGER_ENV": "testing"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield
    worker.terminate()  # finishes its running jobs, then exits
    worker.wait(timeout=30)
