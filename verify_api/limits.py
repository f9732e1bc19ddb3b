"""Request size limits and per-client rate limits, as plain ASGI middleware.

Size: a declared Content-Length over the limit is refused before the body is
read; a chunked body is counted as it streams and cut off at the limit.
Rate: a token bucket per client address for the public read endpoints, so one
client cannot starve the others; 429 with Retry-After when empty.
"""

from __future__ import annotations

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


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, default_limit: int, limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = limits or {}

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

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        too_large = False
        try:
            await self.app(scope, limited_receive, tracking_send)
        except* _TooLarge:
            # except*: middleware that reads the body in a task group (Starlette's
            # BaseHTTPMiddleware) hands the error up wrapped in an ExceptionGroup
            too_large = True
        if too_large and not started:
            await _problem(send, 413, "request.too_large", f"body larger than {limit} bytes")


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
        finally:
            route = scope.get("route")
            name = getattr(route, "path", "unmatched")
            children = self._children.get((name, status))
            if children is None:
                children = (self.metrics.requests.labels(name, str(status)), self.metrics.latency.labels(name))
                self._children[(name, status)] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - start)
