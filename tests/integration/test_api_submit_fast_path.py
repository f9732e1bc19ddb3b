"""``POST /v1/records`` is answered by a plain-ASGI fast path in front of the router.

A refused submission changes nothing, so each one is sent both ways — through the
whole application, and straight to the router behind the fast path — and the ASGI
messages must be equal. An accepted one is answered once each way (a record is
accepted once): both answers must be valid ``SubmitResponse`` documents with the
same headers, counted under the route's template, and the size limit outside still
answers 413.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from api_server import PASSPHRASE, AgencySpec, TestNode, make_node
from fastapi import FastAPI

from ledger.records import SignedRecord
from ledger.sequencer import GroupCommitSequencer
from ledger.service import Ledger
from nodes.local import open_node
from nodes.server import build_app
from verify_api.app import ApiSettings, _SubmitFastPath, create_app
from verify_api.models import SubmitResponse

ORIGIN = "gd.certledger.example/licences"
SZ = "91440300MA5SZ00001"


@pytest.fixture
def node(tmp_path_factory: pytest.TempPathFactory) -> TestNode:
    agencies = [AgencySpec(SZ, "深圳市市场监督管理局", ("4403",), ("1001",))]
    return make_node(tmp_path_factory.mktemp("submit-fast") / "gd", ORIGIN, agencies)


@pytest.fixture
def app(node: TestNode, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    monkeypatch.setenv("CERTLEDGER_API_RATE", "0")
    app, close = build_app(node.config, PASSPHRASE.encode())
    try:
        yield app
    finally:
        close()


def _fast_path(app: FastAPI) -> _SubmitFastPath:
    if app.middleware_stack is None:
        app.middleware_stack = app.build_middleware_stack()
    layer: Any = app.middleware_stack
    while not isinstance(layer, _SubmitFastPath):
        layer = layer.app
    return layer


def _call(asgi: Any, method: str, path: str, body: bytes, *, chunk: int = 0) -> list[dict[str, Any]]:
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
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if parts:
            part = parts.pop(0)
            return {"type": "http.request", "body": part, "more_body": bool(parts)}
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    asyncio.run(asgi(scope, receive, send))
    return sent


def _size(node: TestNode) -> int:
    ledger = Ledger.open(node.config.database)  # a reader beside the app's writer
    try:
        return ledger.tree_size()
    finally:
        ledger.close()


def _envelope(signed: SignedRecord) -> bytes:
    return signed.entry_bytes()


def _bad_signature(signed: SignedRecord) -> bytes:
    doc = json.loads(signed.entry_bytes())
    sig = doc["signatures"][0]["sig"]
    doc["signatures"][0]["sig"] = sig[:-6] + ("AAAAAA" if sig[-6:] != "AAAAAA" else "BBBBBB")
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


@pytest.mark.parametrize("case", ["malformed", "not_json", "bad_signature", "empty", "committed_again"])
def test_refusals_are_the_routes_own(app: FastAPI, node: TestNode, case: str) -> None:
    signed = node.issue(SZ, "LIC-SUBMIT-REFUSED")
    if case == "committed_again":
        assert _call(app, "POST", "/v1/records", _envelope(signed))[0]["status"] == 201
    body = {
        "malformed": b'{"record":{}}',
        "not_json": b"\xff\xfe not json",
        "bad_signature": _bad_signature(signed),
        "empty": b"",
        "committed_again": _envelope(signed),
    }[case]
    size = _size(node)
    fast = _fast_path(app)
    behind = _call(fast.app, "POST", "/v1/records", body)
    ahead = _call(app, "POST", "/v1/records", body)
    assert ahead == behind
    if case != "committed_again":
        assert ahead[0]["status"] in (400, 422)
        assert (b"content-type", b"application/problem+json") in ahead[0]["headers"]
    assert _size(node) == size  # nothing was appended either way


def test_accepted_answers_match_the_route(app: FastAPI, node: TestNode) -> None:
    fast = _fast_path(app)
    one, two = node.issue(SZ, "LIC-SUBMIT-1"), node.issue(SZ, "LIC-SUBMIT-2")
    via_fast = _call(app, "POST", "/v1/records", _envelope(one) + b"\n", chunk=100)  # in pieces, with a newline
    via_route = _call(fast.app, "POST", "/v1/records", _envelope(two))
    answers = []
    for sent, signed in ((via_fast, one), (via_route, two)):
        assert sent[0]["status"] == 201
        headers = dict(sent[0]["headers"])
        assert headers[b"content-type"] == b"application/json"
        assert int(headers[b"content-length"]) == len(sent[1]["body"])
        answer = SubmitResponse.model_validate_json(sent[1]["body"])
        assert answer.record_hash == signed.record.record_hash()
        assert answer.final  # a single node: its own checkpoint is the quorum
        answers.append(answer)
    assert answers[1].index == answers[0].index + 1
    metrics = _call(app, "GET", "/metrics", b"")[1]["body"].decode()
    assert 'certledger_http_requests_total{route="/v1/records",status="201"} 1.0' in metrics
    assert 'certledger_submissions_total{outcome="accepted"} 2.0' in metrics


def test_size_limit_still_applies(app: FastAPI, node: TestNode) -> None:
    size = _size(node)
    huge = b'{"record":"' + b"x" * (2 * 1024 * 1024) + b'"}'
    sent = _call(app, "POST", "/v1/records", huge, chunk=64 * 1024)
    assert sent[0]["status"] == 413
    assert _size(node) == size


def test_overload_answers_are_the_routes_own(node: TestNode) -> None:
    """A sequencer with a full queue pushes back: 503 Overloaded with Retry-After, both ways alike."""
    local = open_node(node.config, PASSPHRASE.encode())
    # one record per batch and a queue of one: A is taken and waits on the ledger, B fills the queue
    sequencer = GroupCommitSequencer(local.ledger, max_batch=1, max_queue=1)
    app = create_app(local.ledger, sequencer=sequencer, settings=ApiSettings(rate_per_client=0))
    fast = _fast_path(app)
    queued = sequencer._queue
    waiting: list[threading.Thread] = []

    def submit_in_background(licence_id: str) -> None:
        body = _envelope(node.issue(SZ, licence_id))
        thread = threading.Thread(target=_call, args=(app, "POST", "/v1/records", body))
        thread.start()
        waiting.append(thread)

    def until(condition: Any) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, "the sequencer did not take the submission"
            time.sleep(0.01)

    try:
        with local.ledger._write_lock:  # the sequencer's batch waits here: the queue stays full
            submit_in_background("LIC-OVER-1")
            until(lambda: queued.unfinished_tasks == 1 and queued.qsize() == 0)  # taken, blocked on the lock
            submit_in_background("LIC-OVER-2")
            until(lambda: queued.qsize() == 1)  # the queue (of one) is full
            body = _envelope(node.issue(SZ, "LIC-OVER-3"))
            ahead = _call(app, "POST", "/v1/records", body)
            behind = _call(fast.app, "POST", "/v1/records", body)
        assert ahead == behind
        assert ahead[0]["status"] == 503
        headers = dict(ahead[0]["headers"])
        assert headers[b"retry-after"] == b"1"
        problem = json.loads(ahead[1]["body"])
        assert (problem["title"], problem["reason"]) == ("Overloaded", "ledger.overloaded")
    finally:
        for thread in waiting:
            thread.join(30)
        sequencer.close()
        local.close()
    assert _size(node) == 3  # genesis and the two queued submissions; the refused one was not appended
