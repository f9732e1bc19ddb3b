"""The human verification page: ``/``, ``/v/{identifier}`` (the licence QR code's address) and ``/static/*``.

The page is three static files in ``verify_api/web/`` (HTML, CSS, vanilla JS)
that talk to ``POST /v1/verify`` and ``GET /v1/lookup/{identifier}``. Nothing
is loaded from anywhere else, and the Content-Security-Policy says so to the
browser: a page that tells people whether a licence is genuine must not run
code it did not ship. ``/v/{identifier}`` serves the same page; its script
reads the identifier from the address, so nothing from the URL is ever
written into HTML on the server.

The files are read once at start-up and served from memory with an ETag.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

#: served name -> media type; nothing else under /static exists
STATIC_FILES: Final = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
PAGE: Final = "index.html"
WEB_DIR: Final = Path(__file__).resolve().parent / "web"

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # revalidate every time (cheap: 304 by ETag), so a new release is never half-cached
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


def _load(name: str, media_type: str) -> _Asset:
    body = (WEB_DIR / name).read_bytes()
    return _Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def _serve(asset: _Asset, request: Request) -> Response:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def install_web_routes(app: FastAPI) -> None:
    """Add the page's routes to ``app`` (for :attr:`verify_api.app.ApiSettings.extra_routes`)."""
    page = _load(PAGE, "text/html; charset=utf-8")
    assets = {name: _load(name, media) for name, media in STATIC_FILES.items()}

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index(request: Request) -> Response:
        return _serve(page, request)

    @app.api_route("/v/{identifier}", methods=["GET", "HEAD"], include_in_schema=False)
    def licence_page(identifier: str, request: Request) -> Response:
        # the same page: its script reads the identifier from location.pathname and looks it up
        return _serve(page, request)

    @app.api_route("/static/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    def static(name: str, request: Request) -> Response:
        asset = assets.get(name)
        if asset is None:
            raise StarletteHTTPException(404, f"no static file {name!r}")
        return _serve(asset, request)
