"""``GET /v1/licences/{id}`` is answered by a plain-ASGI fast path in front of the router.

Its answers must be the route's own, byte for byte, with the same metrics; anything
it does not answer goes on to the application unchanged. Each request here is sent
both ways — through the whole application, and with the fast path handing everything
on to the router — and the ASGI messages are compared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from api_server import AgencySpec, TestNode, make_node
from fastapi import FastAPI

from nodes.server import build_app
from verify_api.app import _StatusFastPath

ORIGIN = "gd.certledger.example/licences"
SZ = "91440300MA5SZ00001"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> TestNode:
    agencies = [AgencySpec(SZ, "深圳市市场监督管理局", ("4403",), ("1001",))]
    node = make_node(tmp_path_factory.mktemp("fast") / "gd", ORIGIN, agencies)
    node.append([node.issue(SZ, "LIC-FAST-1")])
    node.append([node.revoke(SZ, "LIC-FAST-1")])
    return node


@pytest.fixture
def app(node: TestNode, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    monkeypatch.setenv("CERTLEDGER_API_RATE", "0")
    app, close = build_app(node.config, None, read_only=True)
    try:
        yield app
    finally:
        close()


def _fast_path(app: FastAPI) -> _StatusFastPath:
    if app.middleware_stack is None:
        app.middleware_stack = app.build_middleware_stack()
    layer: Any = app.middleware_stack
    while not isinstance(layer, _StatusFastPath):
        layer = layer.app
    return layer


async def _hand_on(_licence_id: str) -> bytes:
    raise RuntimeError("the fast path hands every request on")


def _call(asgi: Any, method: str, path: str) -> list[dict[str, Any]]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    asyncio.run(asgi(scope, receive, send))
    return sent


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v1/licences/LIC-FAST-1"),
        ("GET", "/v1/licences/NO-SUCH"),
        ("GET", "/v1/licences/%00"),
        ("GET", "/v1/licences/a\n"),
        ("GET", "/v1/licences/"),
        ("GET", "/v1/licences/LIC-FAST-1/"),
        ("GET", "/v1/licences/LIC-FAST-1/history"),
        ("HEAD", "/v1/licences/LIC-FAST-1"),
        ("POST", "/v1/licences/LIC-FAST-1"),
    ],
)
def test_fast_path_answers_exactly_as_the_route(app: FastAPI, method: str, path: str) -> None:
    fast = _fast_path(app)
    answer = fast.answer
    fast.answer = _hand_on  # the router and the route answer: the application as before the fast path
    behind = _call(app, method, path)
    fast.answer = answer
    assert _call(app, method, path) == behind


def test_fast_path_answers_are_counted_under_the_route(app: FastAPI) -> None:
    fast = _fast_path(app)
    router = fast.app

    async def no_router(*_args: Any) -> None:
        raise AssertionError("a status answer went past the fast path")

    fast.app = no_router  # the answers below come from the fast path itself
    for _ in range(3):
        sent = _call(app, "GET", "/v1/licences/LIC-FAST-1")
        assert sent[0]["status"] == 200
        assert b'"status":"REVOKED"' in sent[1]["body"]
    fast.app = router
    metrics = _call(app, "GET", "/metrics")[1]["body"].decode()
    assert 'certledger_http_requests_total{route="/v1/licences/{licence_id}",status="200"} 3.0' in metrics
