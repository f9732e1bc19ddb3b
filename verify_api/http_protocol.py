"""uvicorn's HTTP/1.1 protocol, with its own answers as problem+json and limits on request heads.

A request uvicorn cannot parse (broken framing, an invalid header line, a bad chunk
size) never reaches the app: uvicorn answers it ``400`` with a text/plain body and
closes the connection. Every other error of the API is ``application/problem+json``
with a reason code, so clients handle one error shape; this protocol writes that shape
for the parser's 400 too (reason ``request.malformed``).

uvicorn's httptools protocol also puts no bound on a request's head (request line and
headers): a client could open connections and send a header byte now and then, or one
header of gigabytes, and each connection would hold its buffers for as long as the
client liked, before any of the app's limits (which start with the body) could act.
This protocol bounds both:

* **time**: the head must arrive within ``CERTLEDGER_API_HEAD_TIMEOUT`` seconds
  (default 20; ``0`` = no deadline) of the connection opening or of the request's
  first byte; otherwise ``408`` ``request.too_slow`` and the connection is closed. A
  new connection that sent nothing at all is closed without an answer, as uvicorn
  closes an idle kept-alive one;
* **size**: at most :data:`MAX_HEAD_BYTES` bytes of head; beyond it ``431``
  ``request.head_too_large`` and the connection is closed. Two counts enforce it: the
  exact size of the request target and headers as the parser hands them over (a whole
  oversized head in one read is refused before a request exists), and, for a head that
  is still incomplete, the bytes read of it so far (one endless header never reaches
  the parser's callbacks). A read that also holds the end of the previous request
  (pipelining) is left out of the second count, since where the new head starts in it
  is unknown: no head is ever refused for bytes that were not its own.

A refusal behind a pipelined request that is still being answered does not overtake
that answer: it is finished with ``connection: close`` and nothing more is read.

It also bounds the **connections one client address holds open** at once
(``CERTLEDGER_API_MAX_CONNECTIONS``, default 1024 per server process, room for an office
of browsers behind one NAT address; ``0`` = no bound). The head deadline frees an idle
connection after 20 s, but a client that reopens them as fast as they close could still
hold thousands and starve every other client of file descriptors. A connection beyond
the bound is answered ``503`` ``request.too_many_connections`` with ``Retry-After`` at
once, before anything is read of it, and closed. The address is the TCP peer's: behind a
reverse proxy every client is the proxy, so set the bound there (or turn it off here).

``send_400_response`` is uvicorn's hook for the parser's answer (in its httptools
protocol since 0.13). If a uvicorn release renames it, :data:`PROTOCOL` falls back to
uvicorn's own choice ("auto"): text/plain 400s, and no head limits.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from signing.errors import InvalidInputError
from verify_api.problems import PROBLEM_JSON

_BASE = "https://certledger.example/problems/"

#: the variable of the head deadline, and its default in seconds
HEAD_TIMEOUT_ENV = "CERTLEDGER_API_HEAD_TIMEOUT"
DEFAULT_HEAD_TIMEOUT = 20.0
#: bytes a request line plus headers may take (nginx allows 4 x 8 KiB, Node 16 KiB); the
#: API's own headers are a few hundred bytes, the largest a hand-on ticket (~400)
MAX_HEAD_BYTES = 64 * 1024

#: the variable of the per-address connection bound, and its default
MAX_CONNECTIONS_ENV = "CERTLEDGER_API_MAX_CONNECTIONS"
DEFAULT_MAX_CONNECTIONS = 1024
#: what a client refused for too many connections is told to wait, in seconds
RETRY_AFTER_SECONDS = 1

_REASONS = {
    400: ("Bad Request", "Malformed request", "request.malformed"),
    408: ("Request Timeout", "Request too slow", "request.too_slow"),
    431: ("Request Header Fields Too Large", "Request head too large", "request.head_too_large"),
    503: ("Service Unavailable", "Too many connections", "request.too_many_connections"),
}


def head_timeout(environ: Mapping[str, str] | None = None) -> float:
    """The head deadline from ``CERTLEDGER_API_HEAD_TIMEOUT``; a bad value is ``config.invalid``."""
    value = (os.environ if environ is None else environ).get(HEAD_TIMEOUT_ENV)
    if value is None or value == "":
        return DEFAULT_HEAD_TIMEOUT
    try:
        number = float(value)
    except ValueError:
        number = math.nan
        wanted = "a number"
    else:
        wanted = "a finite number >= 0"
    if not math.isfinite(number) or number < 0:
        raise InvalidInputError(f"{HEAD_TIMEOUT_ENV} must be {wanted}, not {value!r}", reason="config.invalid")
    return number


def max_connections(environ: Mapping[str, str] | None = None) -> int:
    """The per-address connection bound from ``CERTLEDGER_API_MAX_CONNECTIONS`` (0 = none).

    A bad value is ``config.invalid``.
    """
    value = (os.environ if environ is None else environ).get(MAX_CONNECTIONS_ENV)
    if value is None or value == "":
        return DEFAULT_MAX_CONNECTIONS
    text = value.strip()
    if not text.isdecimal() or not text.isascii():
        raise InvalidInputError(
            f"{MAX_CONNECTIONS_ENV} must be a whole number >= 0, not {value!r}", reason="config.invalid"
        )
    return int(text)


def problem_body(detail: str, status: int = 400) -> bytes:
    _phrase, title, reason = _REASONS[status]
    return json.dumps(
        {"type": _BASE + reason, "title": title, "status": status, "detail": detail, "reason": reason}
    ).encode()


#: seconds a refused connection keeps reading (and dropping) what the client still sends
#: before it closes: closing with unread bytes makes the kernel reset the connection, and a
#: reset can destroy the answer before the client reads it (a lingering close, as in nginx)
LINGER_SECONDS = 2.0


def _answer(protocol: Any, status: int, detail: str, *, linger: bool = False, headers: tuple[bytes, ...] = ()) -> None:
    """Write a problem answer on the transport and close it, as uvicorn's own ``send_400_response`` does.

    With ``linger`` the write side is shut down at once (the client sees the answer and
    the end of it) and the connection closes after :data:`LINGER_SECONDS`, or when the
    client closes first; the protocol drops whatever arrives meanwhile.
    """
    body = problem_body(detail, status)
    content = [f"HTTP/1.1 {status} {_REASONS[status][0]}\r\n".encode("ascii")]
    for name, value in protocol.server_state.default_headers:
        content.extend([name, b": ", value, b"\r\n"])
    content.extend(header + b"\r\n" for header in headers)
    content.extend(
        [
            b"content-type: " + PROBLEM_JSON.encode() + b"\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n",
            b"\r\n",
            body,
        ]
    )
    transport = protocol.transport
    transport.write(b"".join(content))
    if linger and transport.can_write_eof():
        transport.write_eof()
        protocol.loop.call_later(LINGER_SECONDS, transport.close)
    else:
        transport.close()


#: what to pass as uvicorn's ``http`` setting: a class at module level, so that uvicorn's
#: worker processes (``serve --workers``) can import it by name
PROTOCOL: Any = "auto"

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # no httptools: uvicorn's h11 protocol, with its text/plain 400s
    pass
else:
    if callable(getattr(HttpToolsProtocol, "send_400_response", None)):

        class _HeadRefused(Exception):
            """Raised in a parser callback to stop parsing a head that was just refused."""

        class ProblemHttpToolsProtocol(HttpToolsProtocol):
            # read once per process: `serve` has validated the variables before binding the port
            _head_timeout: float | None = None
            _max_connections: int | None = None
            # open connections per client address in this process (an address leaves the
            # map with its last connection), and the addresses refused since they last
            # fell back under the bound (one log line per episode, not one per connection)
            _open_by_client: ClassVar[dict[str, int]] = {}
            _refused_clients: ClassVar[set[str]] = set()

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                if ProblemHttpToolsProtocol._head_timeout is None:
                    ProblemHttpToolsProtocol._head_timeout = head_timeout()
                if ProblemHttpToolsProtocol._max_connections is None:
                    ProblemHttpToolsProtocol._max_connections = max_connections()
                self._client_key: str | None = None
                self._head_timer: asyncio.TimerHandle | None = None
                # a head is owed from the moment the connection opens until its headers are
                # complete, and again from the end of each request
                self._head_pending = True
                # bytes read of a head that is not complete yet (per read), and the exact size
                # of the one being parsed (request target and headers, as the parser hands them)
                self._head_bytes = 0
                self._head_parsed = 0
                self._message_ended_in_read = False
                self._got_bytes = False
                self._refused = False

            def send_400_response(self, msg: str) -> None:
                if self._refused:
                    return  # stopped on purpose (a head refused in a callback): answered already
                if self._behind_unfinished_answer():
                    return
                self._refused = True
                self._disarm_head_timer()
                _answer(self, 400, msg)  # uvicorn's answer (status, headers, close), as a problem

            def _behind_unfinished_answer(self) -> bool:
                """A pipelined request is refused while the one before it is still being answered.

                That answer must not be cut or overtaken: it is finished, with
                ``connection: close``, and nothing more is read.
                """
                if self.cycle is None or self.cycle.response_complete or self.cycle.more_body:
                    # no answer pending, or the error is in the current request's own body:
                    # that request is the one refused
                    return False
                self._refused = True
                self._disarm_head_timer()
                self.cycle.keep_alive = False
                self.flow.pause_reading()
                return True

            # -- the head deadline --------------------------------------------------------
            def _arm_head_timer(self) -> None:
                timeout = self._head_timeout or 0.0
                if timeout > 0 and self._head_timer is None:
                    self._head_timer = self.loop.call_later(timeout, self._head_too_slow)

            def _disarm_head_timer(self) -> None:
                if self._head_timer is not None:
                    self._head_timer.cancel()
                    self._head_timer = None

            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(transport)
                key = self.client[0] if self.client else ""
                opened = self._open_by_client.get(key, 0) + 1
                self._open_by_client[key] = opened
                self._client_key = key
                bound = self._max_connections or 0
                if bound and opened > bound:
                    self._too_many_connections(key, bound)
                    return
                self._arm_head_timer()

            def connection_lost(self, exc: Exception | None) -> None:
                self._disarm_head_timer()
                key, self._client_key = self._client_key, None
                if key is not None:
                    left = self._open_by_client.get(key, 1) - 1
                    if left > 0:
                        self._open_by_client[key] = left
                    else:
                        self._open_by_client.pop(key, None)
                    if left < (self._max_connections or 0):  # the next one would be served
                        self._refused_clients.discard(key)
                super().connection_lost(exc)

            def _too_many_connections(self, key: str, bound: int) -> None:
                # refused before a byte is read: the answer waits in the socket for the
                # request the client is about to send, and the linger drops that request
                if key not in self._refused_clients:
                    self._refused_clients.add(key)
                    self.logger.warning("refusing connections from %s: more than %d open", key or "?", bound)
                self._refused = True
                _answer(
                    self,
                    503,
                    f"more than {bound} connections open from this client address; close some and retry",
                    linger=True,
                    headers=(b"retry-after: " + str(RETRY_AFTER_SECONDS).encode("ascii"),),
                )

            def _head_too_slow(self) -> None:
                self._head_timer = None
                if self.transport.is_closing() or not self._head_pending:
                    return
                if not self._got_bytes:
                    self.transport.close()  # a connection that never said anything gets no answer
                    return
                self._refuse(408, f"the request head did not arrive within {self._head_timeout:g} s")

            def _refuse(self, status: int, detail: str) -> None:
                self.logger.warning("refused a request head: %s", detail)
                if self._behind_unfinished_answer():
                    return
                self._refused = True
                self._disarm_head_timer()
                # the client may still be sending the rest of a huge head: let it, unread
                _answer(self, status, detail, linger=True)

            def _too_large(self) -> str:
                return f"the request line and headers exceed {MAX_HEAD_BYTES} bytes"

            # -- reading ------------------------------------------------------------------
            def data_received(self, data: bytes) -> None:
                if self._refused:
                    return
                self._got_bytes = True
                if self._head_pending:
                    # the deadline runs from a head's first byte, even one the parser skips
                    # (blank lines before a request never reach on_message_begin)
                    self._arm_head_timer()
                # a read that starts while a head is owed is all head, unless a request
                # also ends in it: then where the next head starts in it is unknown
                counted = self._head_pending
                self._message_ended_in_read = False
                super().data_received(data)
                if self._refused or self.transport.is_closing() or not self._head_pending:
                    return
                if counted and not self._message_ended_in_read:
                    self._head_bytes += len(data)
                if max(self._head_bytes, self._head_parsed) > MAX_HEAD_BYTES:
                    self._refuse(431, self._too_large())

            def on_message_begin(self) -> None:
                super().on_message_begin()
                self._head_parsed = 0
                self._arm_head_timer()

            def on_url(self, url: bytes) -> None:
                self._head_parsed += len(url)
                super().on_url(url)

            def on_header(self, name: bytes, value: bytes) -> None:
                self._head_parsed += len(name) + len(value) + 4  # ": " and CRLF
                super().on_header(name, value)

            def on_headers_complete(self) -> None:
                self._head_pending = False
                self._disarm_head_timer()
                if self._head_parsed > MAX_HEAD_BYTES:
                    # a whole oversized head in one read: refused before a request exists,
                    # and the parse stops here (the parser reports the raise as its error,
                    # which send_400_response then ignores)
                    self._refuse(431, self._too_large())
                    raise _HeadRefused
                super().on_headers_complete()

            def on_message_complete(self) -> None:
                super().on_message_complete()
                # whatever the client sends next is the next request's head (its deadline
                # starts with its first byte; until then uvicorn's keep-alive timeout runs)
                self._head_pending = True
                self._head_bytes = 0
                self._message_ended_in_read = True

        PROTOCOL = ProblemHttpToolsProtocol
