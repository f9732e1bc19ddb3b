"""Request size limits and per-client rate limits, as plain ASGI middleware.

Size: a declared Content-Length over the limit is refused before the body is
read; a chunked body is counted as it streams and cut off at the limit.
Time: the whole body must arrive within a deadline from its first read, so a
client that declares a body and sends it a byte at a time cannot hold a request
(and the worker awaiting it) open for ever; 408 when it does not.
Rate: a token bucket per client address for the public read endpoints, so one
client cannot starve the others; 429 with Retry-After when empty.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _problem(
    send: Send, status: int, reason: str, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(
        {
            "type": f"https://certledger.example/problems/{reason}",
            "title": "Request refused",
            "status": status,
            "detail": detail,
            "reason": reason,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyRefused(Exception):
    """Raised from ``receive`` into the app when a body breaks a limit.

    A route that awaits the body itself lets the app's handler for this class answer
    (problems.body_refused_handler: the app's catch-all would make it a 500);
    otherwise :class:`BodySizeLimit` answers once the exception reaches it.
    """

    status = 400
    reason = "request.malformed"
    #: the connection cannot be reused: the rest of the body may still be on its way
    close = False

    def __init__(self, detail: str, *, close: bool | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if close is not None:
            self.close = close

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"connection", b"close")] if self.close else []


class _TooLarge(BodyRefused):
    status = 413
    reason = "request.too_large"


class _TooSlow(BodyRefused):
    status = 408
    reason = "request.too_slow"
    close = True


class BodySizeLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        default_limit: int,
        limits: dict[str, int] | None = None,
        body_timeout: float = 60.0,
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = limits or {}
        #: seconds from the first read of a body to its last byte (0 = no deadline)
        self.body_timeout = body_timeout

    def _limit(self, path: str) -> int:
        return self.limits.get(path, self.default_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["path"])
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _problem(send, 400, "request.malformed", "invalid Content-Length")
                    return
                if declared > limit:
                    await _problem(send, 413, "request.too_large", f"body larger than {limit} bytes")
                    return
        received = 0
        started = False
        complete = False
        deadline: float | None = None
        loop = asyncio.get_running_loop()

        async def limited_receive() -> Message:
            nonlocal received, complete, deadline
            if complete or self.body_timeout <= 0:
                # the body is in: what follows is the wait for a disconnect, which has no deadline
                message = await receive()
            else:
                if deadline is None:
                    deadline = loop.time() + self.body_timeout
                try:
                    # a timeout scope, not wait_for: no task per read of every body
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                except TimeoutError:
                    raise _TooSlow(f"the request body did not arrive within {self.body_timeout:g} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > limit:
                    # cut off mid-stream, the rest may still be coming: the connection is not reused
                    raise _TooLarge(f"body larger than {limit} bytes", close=not complete)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        refused: BodyRefused | None = None
        try:
            await self.app(scope, limited_receive, tracking_send)
        except* BodyRefused as group:
            # except*: middleware that reads the body in a task group (Starlette's
            # BaseHTTPMiddleware) hands the error up wrapped in an ExceptionGroup (maybe nested)
            refused = _first_refusal(group)
        if refused is not None and not started:
            await _problem(send, refused.status, refused.reason, refused.detail, refused.headers())


def _first_refusal(error: BaseException) -> BodyRefused | None:
    if isinstance(error, BodyRefused):
        return error
    for inner in getattr(error, "exceptions", ()):
        found = _first_refusal(inner)
        if found is not None:
            return found
    return None


class RateLimit:
    """Token bucket per client host on paths with one of ``prefixes``."""

    def __init__(self, app: ASGIApp, *, rate: float, burst: int, prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.rate = rate
        self.burst = burst
        self.prefixes = prefixes
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _take(self, client: str) -> float:
        """0 when allowed, else seconds until a token is available."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            if len(self._buckets) > 100_000:  # bound memory under address churn
                self._buckets.clear()
            return (1.0 - tokens) / self.rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.rate > 0 and scope["path"].startswith(self.prefixes):
            client = (scope.get("client") or ("unknown", 0))[0]
            wait = self._take(client)
            if wait > 0:
                retry = str(max(1, int(wait + 0.999))).encode()
                await _problem(send, 429, "request.rate_limited", "too many requests", [(b"retry-after", retry)])
                return
        await self.app(scope, receive, send)


class RequestMetrics:
    """Request count and latency per route template, as a plain ASGI middleware.

    It replaces an ``@app.middleware("http")`` function (Starlette's
    ``BaseHTTPMiddleware``: a task group and a stream per request, most of the
    HTTP stack's CPU here). The route is read from the scope after the router set it.
    """

    def __init__(self, app: ASGIApp, *, metrics: Any) -> None:
        self.app = app
        self.metrics = metrics
        #: the labelled children per (route, status): ``labels()`` costs as much as the rest of a
        #: cached status answer; few keys (route templates x statuses), so unbounded is fine
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except BaseException as exc:
            # a body refusal is answered outside this middleware (BodySizeLimit): count what the
            # client gets, not a 500 (re-raised as it came, grouped or not)
            refused = _first_refusal(exc)
            if refused is not None and status == 500:
                status = refused.status
            raise
        finally:
            route = scope.get("route")
            name = getattr(route, "path", "unmatched")
            children = self._children.get((name, status))
            if children is None:
                children = (self.metrics.requests.labels(name, str(status)), self.metrics.latency.labels(name))
                self._children[(name, status)] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - start)
