"""``POST /v1/verify`` (a licence file -> verdict) and ``GET /v1/lookup/{identifier}``.

Upload: ``multipart/form-data`` with one ``file`` field (what a browser form
sends) or the raw file as the body (``application/octet-stream``,
``application/pdf``, ``application/ofd``). The body size is capped by the
app's middleware (20 MiB for this path) and again here.

The file is hostile input: verification runs in a worker thread (the event
loop stays free), at most :data:`MAX_CONCURRENT` at a time, each bounded by
:data:`VERIFY_TIMEOUT_SECONDS`. A verification that overruns its time is
answered with a 422, but its slot is only released when the thread really
ends, so slow files cannot pile up threads. Anything the file can cause is a
4xx problem with a reason code; an unexpected parser exception on a hostile
file is a malformed file (logged), never a 500.

The answer is the file verdict (:meth:`FileVerdict.to_json`) plus the history
of the licence the file names, when that licence is on this ledger.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from cert_formats.verify_file import MAX_FILE_BYTES, StatusSource, verify_licence_file
from ledger.anchors import TrustAnchors
from ledger.service import Ledger
from signing.errors import CertLedgerError, InvalidInputError
from signing.x509 import Certificate, load_certificates
from verify_api import models, problems
from verify_api.lookup import history_timeline, lookup_licence

_log = structlog.get_logger("certledger.api.verify")

VERIFY_TIMEOUT_SECONDS: Final = 30.0
MAX_CONCURRENT: Final = 4
#: how long an upload may wait for a free verification slot before a 503
QUEUE_WAIT_SECONDS: Final = 5.0
RAW_MEDIA_TYPES: Final = ("application/octet-stream", "application/pdf", "application/ofd", "application/zip")

Verdict = Literal["valid", "suspended", "revoked", "superseded", "unknown", "forged"]


class CheckModel(BaseModel):
    name: str = Field(description="What was checked, e.g. signature, seal, identifier, ledger, digest.")
    ok: bool
    detail: str = Field(description="What was found (English).")
    reason: str = Field("", description="Stable reason code when the check failed.")


class TimelineEntryModel(BaseModel):
    index: int = Field(description="Ledger entry index of the record.")
    type: str = Field(description="ISSUE, AMEND, SUSPEND, RESUME or REVOKE.")
    time: str = Field(description="Record time, RFC 3339 UTC.")
    agency: str = Field(description="ID (credit code) of the agency that signed the record.")
    agency_name: str
    version: int | None = Field(None, description="Licence version an ISSUE/AMEND record creates.")
    reason_code: str = ""
    reason_text: str = ""


class VerdictResponse(BaseModel):
    verdict: Verdict
    format: str = Field(description='"pdf" or "ofd" for a file; "" for a lookup by ID.')
    licence_id: str = Field(description="The ledger's licence ID (the identifier's lineage).")
    identifier: str = Field(description="GB/T 36904 identifier of the file or the query.")
    digest_sm3: str = Field(description="SM3 of the file's signed content (hex); empty for a lookup.")
    status_source: str = Field(description="ledger, proof bundle, or empty when no status was found.")
    status: str = Field(description="ACTIVE, SUSPENDED, REVOKED or empty.")
    version: int | None
    issuer: str
    metadata: dict[str, Any] = Field(description="GB/T 36903 licence fields recorded on the ledger.")
    revocation_reason: str
    checkpoint: str = Field(description="The signed checkpoint the status was proven against.")
    reason: str = Field(description="Reason code of the first failed check, or empty.")
    checks: list[CheckModel]
    history: list[TimelineEntryModel] = Field(description="The licence's records on this ledger, oldest first.")


_DESCRIPTIONS = {
    404: "the licence is not on this ledger",
    413: "the file (request body) is larger than 20 MiB",
    415: "not a PDF or OFD file, or an unsupported request media type",
    422: "empty, malformed or unverifiable upload / query (reason code in the problem)",
    429: "rate limited: retry after Retry-After seconds",
    503: "busy or not ready: retry after Retry-After seconds",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": models.Problem, "description": _DESCRIPTIONS[code]}
        if code in (429, 503):
            entry["headers"] = _RETRY_AFTER
        out[code] = entry
    return out


_UPLOAD_BODY: Final = {
    "requestBody": {
        "required": True,
        "description": "The licence file (PDF or OFD), as a multipart form field `file` or as the raw body.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            **{m: {"schema": {"type": "string", "format": "binary"}} for m in RAW_MEDIA_TYPES},
        },
    }
}

#: reasons an upload's answer has that are not 422; a node without province roots cannot verify
#: any file: the server is not ready (503), the upload is not wrong
_STATUS_BY_REASON = {"file.unsupported": 415, "file.too_large": 413, "verify.no_roots": 503}


class TrustRoots:
    """The province root certificates in a directory (``<home>/trust/*.pem``), re-read when they change."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._key: tuple[tuple[str, int, int], ...] | None = None
        self._roots: list[Certificate] = []

    def load(self) -> list[Certificate]:
        """The roots; raises ``InvalidInputError`` (``verify.no_roots``) when there are none."""
        files = sorted(self.directory.glob("*.pem")) if self.directory.is_dir() else []
        key = tuple((p.name, (st := p.stat()).st_mtime_ns, st.st_size) for p in files)
        with self._lock:
            if key != self._key:
                self._roots = [c for p in files for c in load_certificates(p.read_bytes())]
                self._key = key
            roots = list(self._roots)
        if not roots:
            raise InvalidInputError(
                "this node has no trust roots to verify files with (<home>/trust/*.pem)", reason="verify.no_roots"
            )
        return roots


class _LedgerAnchors:
    """This ledger's own trust anchors, from its genesis entry (it never changes: read once)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._anchors: TrustAnchors | None = None

    def get(self) -> TrustAnchors:
        if self._anchors is None:
            self._anchors = TrustAnchors.from_genesis(self.ledger.entry(0).entry_bytes())
        return self._anchors


class _Slots:
    """At most ``size`` verifications at once; a slot is freed when its thread ends, not when its caller gives up.

    The counter is only touched on the event loop's thread (the done callback runs there too).
    """

    def __init__(self, size: int, queue_wait: float) -> None:
        self.size = size
        self.queue_wait = queue_wait
        self._running = 0

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._running -= 1
        if not task.cancelled():
            task.exception()  # consumed here too: an abandoned (timed-out) task must not log "never retrieved"

    async def run(self, fn: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + self.queue_wait
        while self._running >= self.size:
            if time.monotonic() >= deadline:
                raise _Busy
            await asyncio.sleep(0.05)
        self._running += 1
        task = asyncio.ensure_future(asyncio.to_thread(fn))
        task.add_done_callback(self._done)
        # shield: a timeout abandons the wait, not the thread (which cannot be killed)
        return await asyncio.wait_for(asyncio.shield(task), timeout)


class _Busy(Exception):
    pass


def _problem_for(exc: CertLedgerError) -> JSONResponse:
    status = _STATUS_BY_REASON.get(exc.reason) or problems.status_for(exc)
    extra: dict[str, Any] = {}
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int):
        extra["retry_after"] = retry_after
    return problems.problem(status, type(exc).__name__, " ".join(str(exc).split()), exc.reason, **extra)


async def _read_upload(request: Request) -> bytes | JSONResponse:
    """The uploaded file's bytes, or the problem to answer with."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=8, max_part_size=64 * 1024)
        except StarletteHTTPException as exc:
            return problems.problem(422, "Malformed upload", str(exc.detail), "request.malformed")
        try:
            field = form.get("file")
            if not isinstance(field, UploadFile):
                return problems.problem(
                    422, "No file", 'the multipart form needs the file in a field named "file"', "request.no_file"
                )
            return await field.read()
        finally:
            await form.close()
    if media_type and media_type not in RAW_MEDIA_TYPES:
        return problems.problem(
            415,
            "Unsupported media type",
            f"send the file as multipart/form-data or as one of {', '.join(RAW_MEDIA_TYPES)}",
            "request.media_type",
        )
    return await request.body()


def verify_routes(
    trust_dir: Path,
    *,
    timeout: float = VERIFY_TIMEOUT_SECONDS,
    concurrency: int = MAX_CONCURRENT,
    queue_wait: float = QUEUE_WAIT_SECONDS,
) -> Callable[[FastAPI], None]:
    """The routes, for :attr:`verify_api.app.ApiSettings.extra_routes`; roots come from ``trust_dir``."""
    roots = TrustRoots(trust_dir)

    def install(app: FastAPI) -> None:
        ledger: Ledger = app.state.ledger
        anchors = _LedgerAnchors(ledger)
        slots = _Slots(concurrency, queue_wait)

        def local_status(licence_id: str) -> dict[str, Any] | None:
            try:
                status: dict[str, Any] = ledger.status_document(licence_id)
            except CertLedgerError as exc:
                if exc.reason == "state.unknown_licence":
                    return None
                raise
            return status

        def verify(data: bytes) -> dict[str, Any]:
            live: StatusSource = local_status
            anchor = anchors.get()
            result = verify_licence_file(
                data, roots=roots.load(), anchors=[anchor], live=live, live_origin=anchor.origin
            )
            answer = result.to_json()
            answer["history"] = (
                [e.to_json() for e in history_timeline(ledger, result.licence_id)] if result.licence_id else []
            )
            return answer

        @app.post(
            "/v1/verify",
            response_model=VerdictResponse,
            tags=["verification"],
            responses=_responses(413, 415, 422, 429, 503),
            openapi_extra=_UPLOAD_BODY,
        )
        async def verify_file(request: Request) -> Any:
            """Verify a licence file (PDF or OFD): valid / suspended / revoked / superseded / unknown / forged.

            Every check behind the verdict is listed with its reason code; the licence's
            history comes from this ledger when the licence is on it.
            """
            data = await _read_upload(request)
            if isinstance(data, JSONResponse):
                return data
            if not data:
                return problems.problem(422, "Empty file", "the uploaded file is empty", "file.empty")
            if len(data) > MAX_FILE_BYTES:
                return problems.problem(
                    413, "File too large", f"the file is larger than {MAX_FILE_BYTES} bytes", "file.too_large"
                )
            try:
                answer = await slots.run(lambda: verify(data), timeout)
            except _Busy:
                return problems.problem(
                    503, "Busy", "all verification slots are in use", "verify.busy", retry_after=int(queue_wait) or 1
                )
            except TimeoutError:
                return problems.problem(
                    422, "Verification timed out", f"the file took longer than {timeout:g}s to verify", "file.timeout"
                )
            except CertLedgerError as exc:
                return _problem_for(exc)
            except (RecursionError, MemoryError) as exc:
                # a hostile structure exhausted the parser: the file is refused, the server stays up
                return problems.problem(
                    422, "Malformed file", f"the file cannot be parsed ({type(exc).__name__})", "file.malformed"
                )
            except Exception as exc:
                # third-party parsers (pypdf, pyhanko, asn1crypto) on hostile input raise anything
                _log.warning("file verification failed", error=type(exc).__name__, detail=str(exc)[:200])
                return problems.problem(422, "Malformed file", "the file cannot be parsed", "file.malformed")
            return answer

        @app.get(
            "/v1/lookup/{identifier}",
            response_model=VerdictResponse,
            tags=["verification"],
            responses=_responses(404, 422, 429, 503),
        )
        def lookup(identifier: str) -> Any:
            """Verdict on a licence by its ledger ID, its GB/T 36904 identifier or the identifier's lineage.

            The ledger's status proof is verified against this ledger's genesis anchors and
            each check listed; an identifier of an older version is ``superseded``.
            """
            return lookup_licence(ledger, anchors.get(), identifier)

    return install
