"""What a client's pace and framing can do: a body must arrive within CERTLEDGER_API_BODY_TIMEOUT.

A client that declares a body and sends it slowly used to hold the request, and the
task awaiting it, open for as long as it liked (a byte now and then kept it alive).
These tests talk raw HTTP/1.1 over a socket to a real ``certledger serve`` with a
1.5 s deadline, so the timing is the server's, not a client library's. A request the
HTTP parser cannot read is answered by the parser itself, still as problem+json.
"""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_server import AgencySpec, ApiServer, TestNode, make_node, read_http_response, refused_start_log, serving

ORIGIN = "certledger.example/guangdong"
SZ = "91440300MA5SZ00001"
DEADLINE = 1.5
_serial = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}-{next(_serial):06d}"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> TestNode:
    agencies = [AgencySpec(SZ, "深圳市市场监督管理局", ("4403",), ("1001",))]
    return make_node(tmp_path_factory.mktemp("deadline") / "gd", ORIGIN, agencies)


@pytest.fixture(scope="module")
def server(node: TestNode) -> Iterator[ApiServer]:
    srv = ApiServer(node.home, env={"CERTLEDGER_API_RATE": "0", "CERTLEDGER_API_BODY_TIMEOUT": str(DEADLINE)})
    with serving(srv):
        yield srv


def _tree_size(server: ApiServer) -> int:
    resp = httpx.get(f"{server.base_url}/v1/checkpoint", timeout=10)
    resp.raise_for_status()
    return int(resp.text.splitlines()[1])


def _read_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes, bool]:
    """Status, headers, body of one response; and whether the server then closed the connection."""
    sock.settimeout(timeout)
    status, headers, body = read_http_response(sock)
    try:
        closed = sock.recv(1) == b""
    except TimeoutError:
        closed = False
    return status, headers, body, closed


def _open(
    server: ApiServer, declared: int, path: str = "/v1/records", media_type: str = "application/json"
) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {media_type}\r\n"
        f"Content-Length: {declared}\r\n\r\n".encode()
    )
    return sock


def _assert_too_slow(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert status == 408, body
    assert headers["content-type"] == "application/problem+json"
    assert headers.get("connection") == "close"
    problem: dict[str, Any] = json.loads(body)
    assert problem["reason"] == "request.too_slow" and problem["status"] == 408
    return problem


def test_a_stalled_body_is_408_and_changes_nothing(server: ApiServer, node: TestNode) -> None:
    before = _tree_size(server)
    entry = node.issue(SZ, new_id("SLOW")).entry_bytes()
    with _open(server, len(entry)) as sock:
        started = time.monotonic()
        sock.sendall(entry[:20])  # ...and never the rest
        status, headers, body, closed = _read_response(sock, timeout=DEADLINE + 10)
        waited = time.monotonic() - started
    _assert_too_slow(status, headers, body)
    assert closed, "the server keeps a connection whose body is still owed"
    assert DEADLINE - 0.2 <= waited <= DEADLINE + 5, waited
    assert _tree_size(server) == before
    # counted as what the client got, not as a server error
    metrics = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    requests = [line for line in metrics.splitlines() if line.startswith("certledger_http_requests_total{")]
    assert any('status="408"' in line for line in requests), requests
    assert not any('status="500"' in line for line in requests), requests


def test_a_dripping_body_is_cut_off_at_the_deadline(server: ApiServer, node: TestNode) -> None:
    # a byte every 0.25 s never leaves the connection idle: the deadline is for the whole body
    entry = node.issue(SZ, new_id("DRIP")).entry_bytes()
    with _open(server, len(entry)) as sock:
        started = time.monotonic()
        sock.settimeout(0.25)
        answer = b""
        for byte in entry:
            sock.sendall(bytes([byte]))
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            break
        waited = time.monotonic() - started
        assert answer, "the server waited for the whole dripped body"
        assert waited <= DEADLINE + 5, waited
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        sock.settimeout(10)
        while b"request.too_slow" not in answer:  # the body may come in a write of its own
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    assert b"request.too_slow" in answer, answer


def test_a_slow_body_within_the_deadline_is_accepted(server: ApiServer, node: TestNode) -> None:
    signed = node.issue(SZ, new_id("INTIME"))
    entry = signed.entry_bytes()
    with _open(server, len(entry)) as sock:
        sock.sendall(entry[:100])
        time.sleep(DEADLINE / 3)
        sock.sendall(entry[100:])
        status, _headers, body, _closed = _read_response(sock, timeout=30)
    assert status == 201, body
    assert json.loads(body)["record_hash"] == signed.record.record_hash()


def test_a_routed_endpoint_answers_a_stalled_upload_with_408(server: ApiServer) -> None:
    # /v1/verify reads its body inside FastAPI: the refusal must not become the catch-all 500
    with _open(server, 4096, path="/v1/verify", media_type="application/pdf") as sock:
        sock.sendall(b"%PDF-1.7\n")
        status, headers, body, _closed = _read_response(sock, timeout=DEADLINE + 10)
    _assert_too_slow(status, headers, body)


def test_the_deadline_knob_is_validated(node: TestNode) -> None:
    log = refused_start_log(node.home, {"CERTLEDGER_API_BODY_TIMEOUT": "soon"})
    assert "CERTLEDGER_API_BODY_TIMEOUT must be a number" in log


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /v1/records HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /v1/checkpoint HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
    ],
)
def test_unparseable_http_is_a_problem_400(server: ApiServer, request_bytes: bytes) -> None:
    # answered by the HTTP parser before any app code runs: still the API's one error shape
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request_bytes)
        status, headers, body, closed = _read_response(sock, timeout=10)
    assert status == 400, body
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == 400 and problem["reason"] == "request.malformed" and problem["detail"]
    assert closed


def test_worker_processes_answer_unparseable_http_as_a_problem_too(node: TestNode) -> None:
    # `serve --workers` starts fresh interpreters: the protocol must reach them by its import name
    srv = ApiServer(node.home, read_only=True, workers=2, env={"CERTLEDGER_API_RATE": "0"})
    with serving(srv):
        assert httpx.get(f"{srv.base_url}/v1/checkpoint", timeout=10).status_code == 200
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            sock.sendall(b"GARBAGE\r\n\r\n")
            status, headers, body, _closed = _read_response(sock, timeout=10)
    assert status == 400 and headers["content-type"] == "application/problem+json", body
    assert json.loads(body)["reason"] == "request.malformed"
