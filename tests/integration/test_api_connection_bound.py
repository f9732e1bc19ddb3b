"""One client address holds at most ``CERTLEDGER_API_MAX_CONNECTIONS`` connections open.

The head deadline frees an idle connection after a while, but a client reopening
connections as fast as they close could hold thousands of them and starve every other
client of file descriptors. These tests hold connections open against a real
``certledger serve`` whose bound is 3 (each connection is parked mid-head, so neither
uvicorn's keep-alive timeout nor the head deadline, 120 s here, closes it during the
test) and check what the fourth one is told.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from api_server import AgencySpec, ApiServer, TestNode, make_node, read_http_response, refused_start_log, serving

ORIGIN = "certledger.example/guangdong"
SZ = "91440300MA5SZ00001"
BOUND = 3


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> TestNode:
    agencies = [AgencySpec(SZ, "深圳市市场监督管理局", ("4403",), ("1001",))]
    return make_node(tmp_path_factory.mktemp("conns") / "gd", ORIGIN, agencies)


@pytest.fixture(scope="module")
def servers(node: TestNode) -> Iterator[tuple[ApiServer, ApiServer]]:
    quiet = {"CERTLEDGER_API_RATE": "0", "CERTLEDGER_API_HEAD_TIMEOUT": "120"}
    bounded = ApiServer(node.home, env={**quiet, "CERTLEDGER_API_MAX_CONNECTIONS": str(BOUND)})
    unbounded = ApiServer(node.home, read_only=True, env={**quiet, "CERTLEDGER_API_MAX_CONNECTIONS": "0"})
    with serving(bounded, unbounded):
        yield bounded, unbounded


@pytest.fixture(scope="module")
def server(servers: tuple[ApiServer, ApiServer]) -> ApiServer:
    return servers[0]


_HEALTH = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _parked(server: ApiServer) -> socket.socket:
    """A connection the server has accepted and answered once, now held mid-way through a head."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(_HEALTH)
    status, _headers, body = read_http_response(sock)
    assert status == 200, body
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127")  # ...the rest never comes
    return sock


@contextlib.contextmanager
def _holding(server: ApiServer, count: int) -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(_parked(server))
        yield socks
    finally:
        for sock in socks:
            sock.close()


def _ask(server: ApiServer, *, see_close: bool = False) -> tuple[int, dict[str, str], bytes, bool]:
    """One request on a new connection: status, headers, body and (``see_close``) whether the server closed it."""
    closed = False
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_HEALTH)
        status, headers, body = read_http_response(sock)
        if see_close:
            try:
                sock.settimeout(5)
                closed = sock.recv(1) == b""
            except (TimeoutError, ConnectionResetError):
                closed = False
    return status, headers, body, closed


def _served_again(server: ApiServer, within: float = 10.0) -> int:
    """The status of a new connection's request once the server has seen a close (it learns asynchronously)."""
    deadline = time.monotonic() + within
    while True:
        status, _headers, _body, _closed = _ask(server)
        if status != 503 or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def test_a_connection_beyond_the_bound_is_503_with_retry_after_and_closed(server: ApiServer) -> None:
    with _holding(server, BOUND):
        status, headers, body, closed = _ask(server, see_close=True)
    assert status == 503, body
    assert headers["content-type"] == "application/problem+json"
    assert headers.get("connection") == "close" and headers.get("retry-after") == "1", headers
    problem = json.loads(body)
    assert problem["reason"] == "request.too_many_connections" and problem["status"] == 503, problem
    assert str(BOUND) in problem["detail"], problem
    assert closed, "a refused connection stays open"


def test_the_bound_counts_open_connections_not_past_ones(server: ApiServer) -> None:
    with _holding(server, BOUND) as socks:
        assert _ask(server)[0] == 503
        socks.pop().close()
        # one freed: the next connection is served, and the bound holds again behind it
        assert _served_again(server) == 200
        socks.append(_parked(server))
        assert _ask(server)[0] == 503
    assert _served_again(server) == 200


def test_connections_answered_and_closed_one_by_one_never_meet_the_bound(server: ApiServer) -> None:
    for _ in range(BOUND * 4):
        status, _headers, body, _closed = _ask(server)
        if status == 503:  # the server may not have seen the previous close yet
            status = _served_again(server)
        assert status == 200, body


def test_a_real_client_is_told_503_problem(server: ApiServer) -> None:
    with _holding(server, BOUND), httpx.Client(base_url=server.base_url, timeout=10) as client:
        resp = client.get("/healthz")
    assert resp.status_code == 503
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["reason"] == "request.too_many_connections"


def test_the_refusals_are_logged_once_per_episode_not_per_connection(server: ApiServer) -> None:
    assert server.log_path is not None
    before = server.log_path.read_text("utf-8").count("refusing connections from")
    with _holding(server, BOUND):
        for _ in range(5):
            assert _ask(server)[0] == 503
    assert _served_again(server) == 200
    after = server.log_path.read_text("utf-8").count("refusing connections from")
    assert after - before == 1, server.log_path.read_text("utf-8")[-2000:]
    # a structured line like every other log line of the server (stderr is no terminal: JSON)
    line = next(x for x in server.log_path.read_text("utf-8").splitlines() if "refusing connections from" in x)
    record = json.loads(line)
    assert record["level"] == "warning" and record["timestamp"], record


def test_zero_means_no_bound(servers: tuple[ApiServer, ApiServer]) -> None:
    unbounded = servers[1]
    with _holding(unbounded, BOUND * 3):
        status, _headers, body, _closed = _ask(unbounded)
    assert status == 200, body


@pytest.mark.parametrize("value", ["-1", "many", "2.5", "1e3", "٣"])
def test_a_bad_bound_stops_serve_with_config_invalid(node: TestNode, value: str) -> None:
    log = refused_start_log(node.home, {"CERTLEDGER_API_MAX_CONNECTIONS": value})
    assert "CERTLEDGER_API_MAX_CONNECTIONS must be a whole number" in log and "config.invalid" in log, log
