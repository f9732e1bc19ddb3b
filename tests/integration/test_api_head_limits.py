"""What a client can do before its request's body: the head is bounded in time and size.

uvicorn's httptools protocol put no limit on the request line and headers: a client
sending a header byte now and then held its connection (and its buffers) for as long
as it liked, and one endless header grew the server's memory without bound. These
tests talk raw HTTP/1.1 over a socket to a real ``certledger serve`` whose head
deadline is 2 s, so the timing is the server's, not a client library's. Size limits are
tested against a server with a long deadline, so that a slow CI machine cannot turn a
431 into a 408.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from api_server import AgencySpec, ApiServer, TestNode, make_node, refused_start_log, serving

ORIGIN = "certledger.example/guangdong"
SZ = "91440300MA5SZ00001"
DEADLINE = 2.0
#: verify_api.http_protocol.MAX_HEAD_BYTES, restated: the test is about the documented bound
MAX_HEAD = 64 * 1024


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> TestNode:
    agencies = [AgencySpec(SZ, "深圳市市场监督管理局", ("4403",), ("1001",))]
    return make_node(tmp_path_factory.mktemp("head") / "gd", ORIGIN, agencies)


@pytest.fixture(scope="module")
def servers(node: TestNode) -> Iterator[tuple[ApiServer, ApiServer]]:
    quick = ApiServer(node.home, env={"CERTLEDGER_API_RATE": "0", "CERTLEDGER_API_HEAD_TIMEOUT": str(DEADLINE)})
    roomy = ApiServer(node.home, read_only=True, env={"CERTLEDGER_API_RATE": "0", "CERTLEDGER_API_HEAD_TIMEOUT": "120"})
    with serving(quick, roomy):
        yield quick, roomy


@pytest.fixture(scope="module")
def server(servers: tuple[ApiServer, ApiServer]) -> ApiServer:
    """Head deadline DEADLINE."""
    return servers[0]


@pytest.fixture(scope="module")
def roomy(servers: tuple[ApiServer, ApiServer]) -> ApiServer:
    """Head deadline 120 s: only the size limit can refuse a head here."""
    return servers[1]


class _Reader:
    """Responses read one after another from one socket (pipelined answers share reads)."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.buf = b""
        sock.settimeout(timeout)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise AssertionError(f"connection closed before a response: {self.buf!r}")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers["content-length"])
        while len(self.buf) < length and self._fill():
            pass
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(lines[0].split()[1]), headers, body

    def closed(self) -> bool:
        try:
            return not self.buf and self.sock.recv(1) == b""
        except TimeoutError:
            return False


def _connect(server: ApiServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _problem(status: int, headers: dict[str, str], body: bytes, expected: int, reason: str) -> None:
    assert status == expected, body
    assert headers["content-type"] == "application/problem+json"
    assert headers.get("connection") == "close"
    problem = json.loads(body)
    assert problem["status"] == expected and problem["reason"] == reason and problem["detail"], problem


def _get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()


def test_a_stalled_head_is_408_and_closed(server: ApiServer) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /v1/checkpoint HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: te")  # ...and never the rest
        reader = _Reader(sock, timeout=DEADLINE + 10)
        status, headers, body = reader.response()
        waited = time.monotonic() - started
        _problem(status, headers, body, 408, "request.too_slow")
        assert reader.closed(), "the server keeps a connection whose head is still owed"
    assert DEADLINE - 0.2 <= waited <= DEADLINE + 5, waited


def test_a_dripping_head_is_cut_off_at_the_deadline(server: ApiServer) -> None:
    # a byte every 0.2 s never leaves the connection idle: the deadline is for the whole head
    head = b"GET /v1/checkpoint HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    with _connect(server) as sock:
        started = time.monotonic()
        sock.settimeout(0.2)
        answer = b""
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            break
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert waited <= DEADLINE + 5, waited


def test_a_connection_that_says_nothing_is_closed_without_an_answer(server: ApiServer) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        sock.settimeout(DEADLINE + 10)
        assert sock.recv(65536) == b""
        waited = time.monotonic() - started
    assert DEADLINE - 0.2 <= waited <= DEADLINE + 5, waited


def test_a_slow_head_within_the_deadline_is_answered(server: ApiServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /v1/checkpoint HTTP/1.1\r\n")
        time.sleep(DEADLINE / 4)
        sock.sendall(b"Host: 127.0.0.1\r\n\r\n")
        status, _headers, body = _Reader(sock, timeout=30).response()
    assert status == 200, body
    assert body.decode().startswith(ORIGIN)


def test_the_deadline_is_per_request_on_a_kept_alive_connection(server: ApiServer) -> None:
    # three quick requests spread over more than the deadline: none is refused...
    with _connect(server) as sock:
        reader = _Reader(sock, timeout=30)
        for _ in range(3):
            sock.sendall(_get("/healthz"))
            status, _headers, body = reader.response()
            assert status == 200, body
            time.sleep(DEADLINE * 0.6)
        # ...and a later request's stalled head is refused like a first one
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        started = time.monotonic()
        status, headers, body = reader.response()
        waited = time.monotonic() - started
    _problem(status, headers, body, 408, "request.too_slow")
    assert DEADLINE - 0.2 <= waited <= DEADLINE + 5, waited


OVERSIZED = [
    _get("/healthz", "X-Big: " + "a" * (MAX_HEAD + 1024) + "\r\n"),  # one endless header
    _get("/healthz", "".join(f"X-H{i}: {'b' * 100}\r\n" for i in range(2000))),  # many headers
    _get("/healthz?" + "q" * (MAX_HEAD + 1024)),  # an endless request line
]


@pytest.mark.parametrize("head", OVERSIZED, ids=["one-header", "many-headers", "request-line"])
@pytest.mark.parametrize("complete", [False, True], ids=["unfinished", "complete"])
def test_an_oversized_head_is_431_and_closed(roomy: ApiServer, head: bytes, complete: bool) -> None:
    # unfinished: the end of the head is withheld, so the refusal comes from its size while
    # the server still waits for more; complete: the whole head at once, often in one read
    with _connect(roomy) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused while we still wrote
            sock.sendall(head if complete else head[:-4])
        reader = _Reader(sock, timeout=60)
        status, headers, body = reader.response()
        closed = reader.closed()
    _problem(status, headers, body, 431, "request.head_too_large")
    assert b"a" * 100 not in body
    assert closed


def test_a_large_head_within_the_bound_is_answered(roomy: ApiServer) -> None:
    with _connect(roomy) as sock:
        sock.sendall(_get("/healthz", "X-Big: " + "a" * (MAX_HEAD // 2) + "\r\n"))
        status, _headers, body = _Reader(sock, timeout=30).response()
    assert status == 200, body


def test_blank_lines_after_a_request_do_not_hold_the_connection(server: ApiServer) -> None:
    # the parser skips CRLFs before a request without telling anyone: the deadline still runs
    with _connect(server) as sock:
        sock.sendall(_get("/healthz"))
        reader = _Reader(sock, timeout=DEADLINE + 10)
        assert reader.response()[0] == 200
        sock.sendall(b"\r\n")
        started = time.monotonic()
        status, headers, body = reader.response()
        waited = time.monotonic() - started
    _problem(status, headers, body, 408, "request.too_slow")
    assert waited <= DEADLINE + 5, waited


def test_a_bad_pipelined_request_does_not_overtake_the_answer_before_it(server: ApiServer) -> None:
    # both requests arrive in one read: the first is answered in full, then the connection closes
    with _connect(server) as sock:
        sock.sendall(_get("/v1/checkpoint") + b"GET /healthz HTTP/1.1\r\nBad Header Line\r\n\r\n")
        reader = _Reader(sock, timeout=30)
        status, _headers, body = reader.response()
        assert status == 200, body
        assert body.decode().startswith(ORIGIN)
        assert reader.closed() or reader.response()[0] == 400


def test_a_pipelined_head_after_a_large_body_is_not_miscounted(server: ApiServer) -> None:
    # 200 KB of a first request's body and the start of a second request's head can share
    # one read: only the second request's own bytes count towards its head
    upload = b"%PDF-1.7\n" + b"0" * 200_000
    first = (
        f"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/pdf\r\n"
        f"Content-Length: {len(upload)}\r\n\r\n"
    ).encode() + upload
    with _connect(server) as sock:
        sock.sendall(first + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(0.3)
        sock.sendall(b"\r\n")
        reader = _Reader(sock, timeout=30)
        status1, headers1, body1 = reader.response()
        status2, _headers2, body2 = reader.response()
    # not a PDF this node can judge (it has no province roots: 503): anything but a head refusal
    assert status1 != 431 and json.loads(body1)["reason"] != "request.head_too_large", body1
    assert headers1["content-type"] == "application/problem+json"
    assert status2 == 200, body2


def test_requests_after_refusals_are_served(server: ApiServer) -> None:
    assert httpx.get(f"{server.base_url}/v1/checkpoint", timeout=10).status_code == 200


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_the_head_deadline_knob_is_validated(node: TestNode, value: str) -> None:
    log = refused_start_log(node.home, {"CERTLEDGER_API_HEAD_TIMEOUT": value})
    assert "CERTLEDGER_API_HEAD_TIMEOUT must be a" in log and "config.invalid" in log, log
