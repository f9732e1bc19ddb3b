"""RFC 9457 problem details: the only place CertLedgerError families become HTTP statuses.

Every error response is ``application/problem+json`` with the stable ``reason``
code next to the human ``detail``, so a client in another province can act on
it without parsing English.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from signing.errors import (
    AuthorizationError,
    CertLedgerError,
    ConflictError,
    CryptoBackendError,
    InvalidInputError,
    StorageError,
    TransportError,
    VerificationError,
)
from verify_api.limits import BodyRefused

_log = structlog.get_logger("certledger.api")

PROBLEM_JSON = "application/problem+json"
_BASE = "https://certledger.example/problems/"

#: family -> HTTP status
STATUS_BY_FAMILY: list[tuple[type[CertLedgerError], int]] = [
    (ConflictError, 409),
    (AuthorizationError, 403),
    (VerificationError, 422),
    (InvalidInputError, 422),
    (TransportError, 502),
    (StorageError, 503),
    (CryptoBackendError, 503),
]
#: reason codes that mean "not found" rather than "invalid"
NOT_FOUND_REASONS = frozenset({"state.unknown_licence", "entry.unknown", "checkpoint.unknown", "block.unknown"})


def status_for(exc: CertLedgerError, method: str = "GET") -> int:
    # "not found" only describes a read; a submitted record about an unknown licence is invalid (422)
    if exc.reason in NOT_FOUND_REASONS and method in ("GET", "HEAD"):
        return 404
    for family, status in STATUS_BY_FAMILY:
        if isinstance(exc, family):
            return status
    return 400


def problem(status: int, title: str, detail: str, reason: str, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": str(extra.pop("retry_after"))} if "retry_after" in extra else None
    body = {"type": _BASE + reason, "title": title, "status": status, "detail": detail, "reason": reason, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def certledger_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CertLedgerError)
    status = status_for(exc, request.method)
    extra: dict[str, Any] = {}
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int):
        extra["retry_after"] = retry_after  # explicit pushback: 503 + Retry-After
    if "absence" in exc.details:
        # a licence the ledger does not hold, proven so against the status map (ADR 0018)
        extra["absence"] = exc.details["absence"]
    return problem(status, type(exc).__name__, " ".join(str(exc).split()), exc.reason, **extra)


async def validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return problem(422, "Invalid request", f"{where}: {first.get('msg', 'invalid')}", "request.invalid")


async def http_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    reason = {
        404: "request.not_found",
        405: "request.method",
        413: "request.too_large",
        415: "request.media_type",
        429: "request.rate_limited",
    }.get(exc.status_code, "request.error")
    return problem(exc.status_code, "Request error", str(exc.detail), reason)


async def body_refused_handler(_request: Request, exc: Exception) -> JSONResponse:
    # a body over its limit or too slow, seen by a route that awaits the body itself
    assert isinstance(exc, BodyRefused)
    response = problem(exc.status, "Request refused", exc.detail, exc.reason)
    for name, value in exc.headers():
        response.headers[name.decode()] = value.decode()
    return response


async def unexpected_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    # never leak internals; the log has the traceback
    _log.exception("unhandled error", error=type(exc).__name__)
    return problem(500, "Internal error", "the server failed; the incident is logged", "server.internal")
