"""A watched browser page for the verification page tests (imported by conftest and the tests)."""

from __future__ import annotations

from typing import Any

from api_server import ApiServer


class PageWatch:
    """What a page did that it must not: requests elsewhere, console errors, uncaught exceptions."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.foreign: list[str] = []
        self.errors: list[str] = []

    def request(self, request: Any) -> None:
        url: str = request.url
        if not (url.startswith(self.base_url + "/") or url.startswith("data:") or url == self.base_url):
            self.foreign.append(url)

    def console(self, message: Any) -> None:
        # API answers the page handles on purpose (a refused upload, an unknown licence) are logged
        # by Chromium as "Failed to load resource"; they are what some tests test, not page errors
        where = str((message.location or {}).get("url", ""))
        if message.type == "error" and not ("Failed to load resource" in message.text and "/v1/" in where):
            self.errors.append(message.text)

    def response(self, response: Any) -> None:
        if response.status >= 400 and "/v1/" not in response.url:
            self.errors.append(f"{response.status} for {response.url}")

    def check(self) -> None:
        assert not self.foreign, f"the page loaded resources from elsewhere: {self.foreign}"
        assert not self.errors, f"console errors / uncaught exceptions: {self.errors}"


def new_page(browser: Any, server: ApiServer, **context_options: Any) -> tuple[Any, Any, PageWatch]:
    """A fresh context (Chinese locale, Beijing time, desktop size) and page, watched."""
    options: dict[str, Any] = {
        "viewport": {"width": 1280, "height": 900},
        "locale": "zh-CN",
        "timezone_id": "Asia/Shanghai",
        "base_url": server.base_url,
    }
    options.update(context_options)
    context = browser.new_context(**options)
    context.set_default_timeout(30_000)
    page = context.new_page()
    watch = PageWatch(server.base_url)
    page.on("request", watch.request)
    page.on("console", watch.console)
    page.on("response", watch.response)
    page.on("pageerror", lambda exc: watch.errors.append(f"pageerror: {exc}"))
    return context, page, watch
