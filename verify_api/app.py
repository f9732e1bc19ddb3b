"""The FastAPI application: ``/v1`` submission, status, history, entries, proofs, checkpoints.

Every answer carries what a client needs to check it without trusting this
node: records as stored (canonical envelopes), inclusion proofs to the size
of the signed checkpoint returned alongside, and the governance record that
admitted the signing agency's key, itself with its inclusion proof.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.checkpoint import open_checkpoint, verify_quorum
from ledger.identity import checkpoint_verifiers, note_key_name
from ledger.records import MAX_ENTRY_BYTES, SignedRecord
from ledger.sequencer import OverloadedError, Sequencer
from ledger.service import InclusionProof, Ledger
from ledger.state import Node
from signing.errors import CertLedgerError, InvalidInputError
from signing.note.model import Verifier
from verify_api import models, problems
from verify_api.federation import FederatedAnswer, FederatedVerifier
from verify_api.limits import ASGIApp, BodyRefused, BodySizeLimit, RateLimit, Receive, RequestMetrics, Scope, Send
from verify_api.proof_batch import ProofBatcher

API_VERSION = "1.0.0"
MAX_ENTRIES_PER_PAGE = 1000
#: indices and sizes are bounded by what the store holds (SQL BIGINT); a larger number is a 422,
#: never an overflow deep in the database driver
MAX_INDEX = 2**63 - 1

_PROBLEM_DESCRIPTIONS = {
    403: "the signer is not allowed to do this",
    404: "not on this ledger (a licence, entry, checkpoint or block)",
    409: "conflict (double issue, replayed nonce, revoked)",
    413: "request body too large",
    422: "invalid request or record (reason code in the problem)",
    429: "rate limited: retry after Retry-After seconds",
    502: "another province's node did not answer",
    503: "overloaded, or not final yet (ledger.not_final): retry after Retry-After seconds",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
#: answered around every route, by the HTTP protocol (verify_api/http_protocol.py) and the
#: body limits (verify_api/limits.py): declared on each operation they apply to
_ANY_REQUEST_PROBLEMS = {
    400: "the HTTP parser cannot read the request (request.malformed; the connection is closed)",
    408: "the request head, or its body, did not arrive in time (request.too_slow; the connection is closed)",
    431: "the request line and headers exceed 64 KiB (request.head_too_large; the connection is closed)",
    503: "too many connections open from this client address "
    "(request.too_many_connections): retry after Retry-After seconds; the connection is closed",
}
_BODY_PROBLEMS = {413: "request body too large (request.too_large)"}
_RATE_PROBLEM = {429: "rate limited (request.rate_limited): retry after Retry-After seconds"}
#: the path prefixes of the public reads, rate limited per client address
RATE_LIMITED_PREFIXES = (
    "/v1/licences",
    "/v1/entries",
    "/v1/proofs",
    "/v1/checkpoint",
    "/v1/verify",
    "/v1/lookup",
    "/v1/federation",
)


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error statuses: problem+json bodies (see ``_problem_media_type``)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": models.Problem, "description": _PROBLEM_DESCRIPTIONS[code]}
        if code in (429, 503):
            entry["headers"] = _RETRY_AFTER
        out[code] = entry
    return out


#: public read endpoints: rate limited, and a bad query is a 422
_READ_PROBLEMS = (422, 429, 503)
#: federation lookups in flight at once: each may wait on another province for seconds, and
#: must never take the threads the node's own answers need
_FEDERATION_IN_FLIGHT = 8


@dataclass
class ApiSettings:
    node_id: str = "node-1"
    max_record_bytes: int = MAX_ENTRY_BYTES
    max_upload_bytes: int = 20 * 1024 * 1024
    #: tokens per second and burst per client address on public read endpoints (0 = off)
    rate_per_client: float = 200.0
    burst_per_client: int = 400
    #: seconds a request body may take to arrive, from its first read (0 = no deadline)
    body_timeout: float = 60.0
    extra_routes: list[Callable[[FastAPI], None]] = field(default_factory=list)
    #: request body limits of extra routes, by path (the default is ``max_record_bytes``)
    body_limits: dict[str, int] = field(default_factory=dict)


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "certledger_http_requests_total", "HTTP requests", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "certledger_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.submissions = Counter(
            "certledger_submissions_total", "Submitted records", ["outcome"], registry=self.registry
        )
        self.tree_size = Gauge("certledger_tree_size", "Entries in the ledger", registry=self.registry)


def _proof_model(p: InclusionProof) -> models.InclusionProofModel:
    return models.InclusionProofModel(
        index=p.index, tree_size=p.tree_size, leaf_hash=p.leaf_hash.hex(), path=[h.hex() for h in p.path]
    )


def _encode_status(ledger: Ledger, licence_id: str) -> tuple[bytes, int]:
    """The status document as the JSON bytes served, and the tree size it is proven to."""
    doc = ledger.status_document(licence_id)
    body = models.LicenceResponse(**doc).model_dump_json().encode()
    return body, int(doc["inclusion_proof"]["tree_size"])


class _StatusCache:
    """Serialised status answers per licence, valid for one (final size, applied size); bounded. Dict ops are atomic."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._items: dict[str, tuple[tuple[int, int], bytes]] = {}

    def get(self, licence_id: str, sizes: tuple[int, int]) -> bytes | None:
        found = self._items.get(licence_id)
        if found is None or found[0] != sizes:
            return None
        return found[1]

    def put(self, licence_id: str, sizes: tuple[int, int], body: bytes) -> None:
        found = self._items.get(licence_id)
        if found is not None and found[0] > sizes:
            return  # never replace a newer answer by an older one
        if len(self._items) >= self.max_entries and licence_id not in self._items:
            self._items.clear()  # crude bound: a full cache is rebuilt from the ledger on demand
        self._items[licence_id] = (sizes, body)


class _FinalVerdicts:
    """Quorum verdicts per (note text, policy); a note's signatures never change. Bounded."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._items: dict[tuple[Any, ...], bool] = {}

    def get(self, key: tuple[Any, ...]) -> bool | None:
        return self._items.get(key)

    def put(self, key: tuple[Any, ...], verdict: bool) -> None:
        if len(self._items) >= self.max_entries:
            self._items.clear()
        self._items[key] = verdict


class _StatusFastPath:
    """``GET /v1/licences/{licence_id}`` answered in front of the router, as plain ASGI.

    The hot route of a verification service: with its answer cached, FastAPI's routing, request
    handling and exception middleware were most of its cost. Only a successful GET is answered
    here, with the same body and headers the route sends; anything else — an error (problem+json
    from the exception handlers), another method, a path the router treats differently — goes on
    to the application unchanged, which answers it exactly as before. Sets ``scope["route"]``
    as the router does, so the request is counted under the route's template.
    """

    _PREFIX = "/v1/licences/"

    def __init__(self, app: ASGIApp, *, route: APIRoute, answer: Callable[[str], Awaitable[bytes]]) -> None:
        self.app = app
        self.route = route
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            path: str = scope["path"]
            licence_id = path[len(self._PREFIX) :]
            # the route's pattern: one non-empty path segment; one with a newline is left to the
            # router, whose regex ("...$") reads it differently (a ledger ID never has one anyway)
            if path.startswith(self._PREFIX) and licence_id and "/" not in licence_id and "\n" not in licence_id:
                try:
                    body = await self.answer(licence_id)
                except Exception:  # handed on: the application maps it to its problem, as always
                    body = None
                if body is not None:
                    scope["route"] = self.route
                    scope["path_params"] = {"licence_id": licence_id}
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [
                                (b"content-length", str(len(body)).encode()),
                                (b"content-type", b"application/json"),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)


def _overloaded(exc: CertLedgerError) -> Response | None:
    """The 503 a submission gets when the sequencer pushes back (None for any other error)."""
    if not isinstance(exc, OverloadedError):
        return None
    return problems.problem(503, "Overloaded", str(exc), exc.reason, retry_after=exc.retry_after)


class _SubmitFastPath:
    """Answers ``POST /v1/records`` before FastAPI's router, with the route's own answer.

    A cluster node handles one submission per record: FastAPI's request handling and routing
    were about a millisecond of CPU of each. The body is read here (through the size limit
    outside, which still answers 413), handed to the same function the route calls, and the
    answer — 201 JSON, or the problem+json the exception handlers would write for a
    CertLedgerError — is sent as the application would send it. Anything else goes on to the
    application unchanged. Sets ``scope["route"]`` so the request is counted under the route.
    """

    _PATH = "/v1/records"

    def __init__(self, app: ASGIApp, *, route: APIRoute, answer: Callable[[bytes], Awaitable[bytes]]) -> None:
        self.app = app
        self.route = route
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == self._PATH
            and not scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away before sending its record: nothing to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            body = await self.answer(b"".join(chunks))
        except CertLedgerError as exc:
            problem = _overloaded(exc) or await problems.certledger_error_handler(Request(scope), exc)
            await problem(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def create_app(
    ledger: Ledger,
    *,
    sequencer: Sequencer | None = None,
    settings: ApiSettings | None = None,
    federation: FederatedVerifier | None = None,
) -> FastAPI:
    """The API over ``ledger``; submissions need a ``sequencer`` (read-only without one)."""
    cfg = settings or ApiSettings()
    metrics = _Metrics()
    app = FastAPI(
        title="certledger verification API",
        version=API_VERSION,
        description="Submit SM2-signed licence records; fetch licence status and history with "
        "RFC 9162 (SM3) inclusion proofs and signed checkpoints you can check yourself.",
    )
    app.state.ledger = ledger
    app.state.metrics = metrics
    app.add_exception_handler(CertLedgerError, problems.certledger_error_handler)
    app.add_exception_handler(RequestValidationError, problems.validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, problems.http_error_handler)
    app.add_exception_handler(BodyRefused, problems.body_refused_handler)
    app.add_exception_handler(Exception, problems.unexpected_error_handler)

    final_verdicts = _FinalVerdicts()
    proofs = ProofBatcher(ledger)

    #: (commit counter, quorum policy) as last read: the policy changes only by a commit
    policy_seen: list[tuple[int, tuple[str, list[Node], int] | None]] = []
    #: checkpoint verifiers per (origin, node keys): decoding the keys costs about one verification
    verifier_cache: dict[tuple[str, tuple[tuple[str, bytes, bytes], ...]], list[Verifier]] = {}
    #: one check per note at a time: concurrent acknowledgements of one block share its verdict
    in_flight: dict[tuple[Any, ...], asyncio.Future[bool]] = {}

    async def _policy() -> tuple[str, list[Node], int] | None:
        counter = ledger.store.commit_counter()  # a PRAGMA on a kept connection: cheap enough on the loop
        if counter is not None and policy_seen and policy_seen[0][0] == counter:
            return policy_seen[0][1]
        policy = await asyncio.to_thread(ledger.quorum_policy)
        if counter is not None:
            policy_seen[:] = [(counter, policy)]
        return policy

    def _verifiers(origin: str, nodes: list[Node]) -> list[Verifier]:
        key = (origin, tuple((n.id, n.sm2_public_key.to_bytes(), n.ed25519_public_key) for n in nodes))
        found = verifier_cache.get(key)
        if found is None:
            if len(verifier_cache) > 64:
                verifier_cache.clear()  # node sets change rarely: a bound, not an eviction policy
            found = verifier_cache[key] = checkpoint_verifiers(origin, nodes)
        return found

    async def _quorum_final(note: str) -> bool:
        """Whether ``note`` carries the quorum's signatures (SM2 + Ed25519 checks, cached per note, off the loop)."""
        policy = await _policy()
        if policy is None:
            return False
        origin, nodes, threshold = policy
        # the verdict depends on the node keys, not only their IDs
        node_keys = tuple(sorted((n.id, n.sm2_public_key.to_bytes(), n.ed25519_public_key) for n in nodes))
        key = (note, origin, node_keys, threshold)
        cached = final_verdicts.get(key)
        if cached is not None:
            return cached
        # shared per event loop: a future can only be awaited on the loop it belongs to (one loop per
        # server process; tests and embedders may drive the app from several)
        flight = (asyncio.get_running_loop(), key)
        pending = in_flight.get(flight)
        if pending is None:
            verifiers = _verifiers(origin, nodes)
            names = [note_key_name(origin, n.id) for n in nodes]

            def check() -> bool:
                try:
                    verify_quorum(open_checkpoint(note, verifiers, origin=origin), names, threshold)
                except CertLedgerError:
                    return False
                return True

            pending = in_flight[flight] = asyncio.ensure_future(asyncio.to_thread(check))

            def settle(task: asyncio.Future[bool]) -> None:
                in_flight.pop(flight, None)
                if not task.cancelled() and task.exception() is None:
                    final_verdicts.put(key, task.result())

            pending.add_done_callback(settle)
        # shielded: a client that goes away cancels its own wait, not the check others share
        return await asyncio.shield(pending)

    status_cache = _StatusCache()
    #: (commit counter, sizes) as last read: one tuple, replaced whole, so a reader never sees a mix
    sizes_seen: list[tuple[int, tuple[int | None, int]]] = []

    def _ledger_sizes() -> tuple[int | None, int]:
        """(newest final tree size, applied tree size), current for every request.

        Both sizes only grow, and the ledger's state is a function of them: while both are
        unchanged, a cached answer is exactly what the ledger would compute now. They are
        re-read (indexed queries) only after a commit: the store's commit counter is read
        first, so a commit racing the queries moves it and the next request reads again.
        """
        store = ledger.store
        counter = store.commit_counter()
        if counter is not None and sizes_seen and sizes_seen[0][0] == counter:
            return sizes_seen[0][1]
        with store.read() as conn:
            policy = store.cached_policy(conn)
            threshold = policy.quorum_threshold if policy is not None else 1
            sizes = store.final_tree_size(conn, threshold - 1), store.tree_size(conn)
        if counter is not None:
            sizes_seen[:] = [(counter, sizes)]
        return sizes

    # -- submission ---------------------------------------------------------------------------

    @app.post(
        "/v1/records",
        status_code=201,
        response_model=models.SubmitResponse,
        tags=["records"],
        responses=_problems(403, 409, 413, 422, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "The signed record envelope as canonical JSON (RFC 8785).",
                "content": {"application/json": {"schema": models.SIGNED_RECORD_SCHEMA}},
            }
        },
    )
    async def submit_record(request: Request) -> Response:
        """Submit one signed record (its canonical JSON envelope). Answers once it is durable."""
        # normally answered by _SubmitFastPath in front of the router; this route documents it in
        # the OpenAPI schema and answers what reaches the router all the same
        try:
            body = await submit_body(await request.body())
        except OverloadedError as exc:
            return _overloaded(exc) or problems.problem(503, "Overloaded", str(exc), exc.reason)
        return Response(body, status_code=201, media_type="application/json")

    async def submit_body(body: bytes) -> bytes:
        """The 201 answer to a submitted envelope, as JSON bytes; raises CertLedgerError (a problem)."""
        if sequencer is None:
            raise InvalidInputError("this node does not accept submissions", reason="ledger.read_only")
        # one trailing newline (files end with one) is not part of the canonical JSON
        body = body.removesuffix(b"\n")
        try:
            signed = SignedRecord.from_bytes(body)
        except CertLedgerError:
            metrics.submissions.labels("malformed").inc()
            raise
        try:
            ack = await asyncio.wrap_future(sequencer.submit(signed))
        except OverloadedError:
            metrics.submissions.labels("overloaded").inc()
            raise  # 503 with Retry-After (_overloaded)
        except CertLedgerError:
            metrics.submissions.labels("rejected").inc()
            raise
        metrics.submissions.labels("accepted").inc()
        metrics.tree_size.set(ack.tree_size)
        proof = await proofs.proof(ack.accepted.index, ack.tree_size)
        # a cluster node that waited for finality says so (it verified every cosignature it
        # stored); otherwise the note's signatures are checked against the quorum here
        final = ack.final if ack.final is not None else await _quorum_final(ack.checkpoint)
        # the fields of models.SubmitResponse, in its order (tests/integration/test_api.py validates it)
        answer = {
            "index": ack.accepted.index,
            "record_hash": ack.accepted.record_hash,
            "leaf_hash": ack.accepted.leaf_hash.hex(),
            "block_height": ack.block_height,
            "tree_size": ack.tree_size,
            "checkpoint": ack.checkpoint,
            "inclusion_proof": {
                "index": proof.index,
                "tree_size": proof.tree_size,
                "leaf_hash": proof.leaf_hash.hex(),
                "path": [h.hex() for h in proof.path],
            },
            "final": final,
        }
        return json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode()

    # -- licences -----------------------------------------------------------------------------

    @app.get(
        "/v1/licences/{licence_id}",
        response_model=models.LicenceResponse,
        tags=["licences"],
        responses=_problems(404, *_READ_PROBLEMS),
    )
    async def licence_status(licence_id: str) -> Response:
        """Current status, latest record with its inclusion proof, the signing key's admission, checkpoint."""
        # normally answered by _StatusFastPath in front of the router; this route documents it in
        # the OpenAPI schema and answers whatever the fast path hands on (errors, other methods)
        return Response(await status_body(licence_id), media_type="application/json")

    async def status_body(licence_id: str) -> bytes:
        """The JSON body of ``GET /v1/licences/{licence_id}``; raises the ledger's errors."""
        # Freshness: the sizes are current for every request (see _ledger_sizes), so an answer is
        # never older than what the ledger acknowledged before the request began; an answer for a
        # given (licence, sizes) never changes (append-only).
        final, applied = _ledger_sizes()
        key = (final or 0, applied)
        cached = status_cache.get(licence_id, key)
        if cached is not None:
            return cached
        if ledger.store.embedded:
            # SQLite: under a millisecond of Python, done on this thread. In a worker thread it took
            # ~25% more CPU (the GIL changes hands at every query: sqlite3 releases it) and, with 64
            # clients on a cold cache, queued ~160 ms (p99) behind the pool. A network database's
            # waits still go off the loop.
            body, size = _encode_status(ledger, licence_id)
        else:
            body, size = await asyncio.to_thread(_encode_status, ledger, licence_id)
        if size == final:  # computed at the sizes just read: valid while they stay the same
            status_cache.put(licence_id, key, body)
        return body

    @app.get(
        "/v1/licences/{licence_id}/history",
        response_model=models.HistoryResponse,
        tags=["licences"],
        responses=_problems(404, *_READ_PROBLEMS),
    )
    def licence_history(licence_id: str) -> models.HistoryResponse:
        """Every record of the licence, each with an inclusion proof to the returned checkpoint."""
        size, note = ledger.latest_checkpoint()
        items = ledger.history(licence_id, size)
        if not items:
            raise InvalidInputError(f"licence {licence_id} is not on this ledger", reason="state.unknown_licence")
        return models.HistoryResponse(
            origin=ledger.origin,
            licence_id=licence_id,
            tree_size=size,
            checkpoint=note,
            records=[
                models.HistoryItemModel(
                    index=it.index,
                    block_height=it.block_height,
                    record=it.record.to_json(),
                    inclusion_proof=_proof_model(it.proof),
                )
                for it in items
            ],
        )

    # -- log ----------------------------------------------------------------------------------

    @app.get("/v1/entries", response_model=models.EntriesResponse, tags=["log"], responses=_problems(*_READ_PROBLEMS))
    def entries(
        start: Annotated[int, Query(ge=0, le=MAX_INDEX)] = 0,
        end: Annotated[int | None, Query(ge=1, le=MAX_INDEX, description="exclusive")] = None,
    ) -> models.EntriesResponse:
        """Entries [start, end), at most 1000 per call."""
        size = ledger.tree_size()
        stop = min(size, end if end is not None else start + 100, start + MAX_ENTRIES_PER_PAGE)
        if start >= size or stop <= start:
            raise InvalidInputError(f"no entries in [{start}, {end}) of a tree of size {size}", reason="entry.range")
        rows = ledger.entries(start, stop)
        return models.EntriesResponse(
            start=start,
            end=stop,
            tree_size=size,
            entries=[
                models.EntryModel(
                    index=r.index, leaf_hash=r.leaf_hash.hex(), block_height=r.block_height, entry=s.to_json()
                )
                for r, s in rows
            ],
        )

    @app.get(
        "/v1/proofs/inclusion",
        response_model=models.InclusionProofModel,
        tags=["log"],
        responses=_problems(*_READ_PROBLEMS),
    )
    def inclusion(
        index: Annotated[int, Query(ge=0, le=MAX_INDEX)],
        tree_size: Annotated[int | None, Query(ge=1, le=MAX_INDEX)] = None,
    ) -> models.InclusionProofModel:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``tree_size`` (default: latest checkpoint)."""
        size = tree_size if tree_size is not None else ledger.latest_checkpoint()[0]
        if size > ledger.tree_size():
            raise InvalidInputError(f"tree size {size} is beyond the log", reason="proof.range")
        return _proof_model(ledger.inclusion_proof(index, size))

    @app.get(
        "/v1/proofs/consistency",
        response_model=models.ConsistencyProofModel,
        tags=["log"],
        responses=_problems(*_READ_PROBLEMS),
    )
    def consistency(
        first: Annotated[int, Query(ge=0, le=MAX_INDEX)],
        second: Annotated[int | None, Query(ge=1, le=MAX_INDEX)] = None,
    ) -> models.ConsistencyProofModel:
        """RFC 9162 consistency proof between tree sizes ``first`` and ``second`` (default: latest checkpoint)."""
        size = second if second is not None else ledger.latest_checkpoint()[0]
        path = ledger.consistency_proof(first, size)
        return models.ConsistencyProofModel(first=first, second=size, path=[h.hex() for h in path])

    @app.get(
        "/v1/checkpoint",
        response_class=PlainTextResponse,
        tags=["log"],
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "C2SP signed note"},
            **_problems(404, *_READ_PROBLEMS),
        },
    )
    def checkpoint(size: Annotated[int | None, Query(ge=1, le=MAX_INDEX)] = None) -> PlainTextResponse:
        """The latest (or the given size's) signed checkpoint as a C2SP signed note."""
        if size is None:
            note = ledger.latest_checkpoint()[1]
        else:
            found = ledger.checkpoint_at(size)
            if found is None:
                raise InvalidInputError(f"no checkpoint at tree size {size}", reason="checkpoint.unknown")
            note = found
        return PlainTextResponse(note, media_type="text/plain; charset=utf-8")

    @app.get("/v1/blocks/{height}", response_model=models.BlockModel, tags=["log"], responses=_problems(404, 422))
    def block(height: Annotated[int, Path(ge=0, le=MAX_INDEX)]) -> models.BlockModel:
        """A block header with its proposer's SM2 signature."""
        found = ledger.block(height)
        if found is None:
            raise InvalidInputError(f"no block {height}", reason="block.unknown")
        data = found.to_json()
        return models.BlockModel(header=data["header"], hash=data["hash"], signature=data["signature"])

    # -- federation -----------------------------------------------------------------------------

    @app.get("/v1/federation", tags=["federation"])
    def federation_provinces() -> dict[str, object]:
        """The other provinces this node can verify licences of."""
        provinces = federation.registry.provinces if federation else []
        return {
            "provinces": [
                {
                    "name": p.name,
                    "origin": p.origin,
                    "endpoints": list(p.endpoints),
                    "regions": list(p.regions),
                    "genesis_sm3": p.anchors.genesis_hash,
                }
                for p in provinces
            ]
        }

    # a thread semaphore, taken without waiting (usable from any event loop driving the app), and
    # threads of their own: lookups never queue behind, or take the threads of, the node's own answers
    federation_slots = threading.BoundedSemaphore(_FEDERATION_IN_FLIGHT)
    federation_pool = ThreadPoolExecutor(_FEDERATION_IN_FLIGHT, thread_name_prefix="federation")

    @app.get("/v1/federation/licences/{licence_id}", tags=["federation"], responses=_problems(404, 422, 429, 502, 503))
    async def federated_status(
        licence_id: Annotated[str, Path(max_length=256)], origin: Annotated[str | None, Query(max_length=255)] = None
    ) -> dict[str, object]:
        """Status of another province's licence, fetched from it and verified here (each check listed).

        When the province is unreachable the last verified answer is returned with
        ``stale: true`` and its ``age_seconds``; an answer that fails verification is an error.
        At most 8 lookups wait on other provinces at once; more are answered 503 with Retry-After.
        """
        if federation is None:
            raise InvalidInputError("this node has no federation registry", reason="federation.disabled")
        registry = federation
        if not federation_slots.acquire(blocking=False):
            raise OverloadedError(f"{_FEDERATION_IN_FLIGHT} federation lookups are in flight already; try again")

        def lookup() -> FederatedAnswer:
            try:
                return registry.status(licence_id, origin)
            finally:
                federation_slots.release()  # when the lookup ends, not when its client goes away

        future = asyncio.get_running_loop().run_in_executor(federation_pool, lookup)
        verified = await asyncio.shield(future)
        answer: dict[str, object] = verified.to_json()
        return answer

    # -- operations ---------------------------------------------------------------------------

    @app.get("/healthz", response_model=models.HealthResponse, tags=["operations"], responses=_problems(503))
    def healthz() -> models.HealthResponse:
        size = ledger.tree_size()
        metrics.tree_size.set(size)
        return models.HealthResponse(status="ok", origin=ledger.origin, tree_size=size, node_id=cfg.node_id)

    @app.get("/metrics", response_class=PlainTextResponse, tags=["operations"])
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    for extra in cfg.extra_routes:
        extra(app)

    base_openapi = app.openapi

    def openapi_with_problems() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = base_openapi()
            _problem_media_type(schema)
            _declare_transport_problems(schema)
        return app.openapi_schema or {}

    app.openapi = openapi_with_problems  # type: ignore[method-assign]

    # added last = outermost: size limits run before rate limits, both before metrics and routing;
    # the status fast path sits innermost, so limits and metrics treat its answers like any other
    status_route = next(r for r in app.routes if isinstance(r, APIRoute) and r.endpoint is licence_status)
    app.add_middleware(_StatusFastPath, route=status_route, answer=status_body)
    submit_route = next(r for r in app.routes if isinstance(r, APIRoute) and r.endpoint is submit_record)
    app.add_middleware(_SubmitFastPath, route=submit_route, answer=submit_body)
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(
        RateLimit,
        rate=cfg.rate_per_client,
        burst=cfg.burst_per_client,
        prefixes=RATE_LIMITED_PREFIXES,
    )
    app.add_middleware(
        BodySizeLimit,
        default_limit=cfg.max_record_bytes,
        limits={**cfg.body_limits, "/v1/verify": cfg.max_upload_bytes},
        body_timeout=cfg.body_timeout,
    )
    return app


def _declare_transport_problems(schema: dict[str, Any]) -> None:
    """Add the answers no route writes itself to the operations they can reach.

    Every request can meet the HTTP protocol's 400/408/431/503; a request with a body the
    413 (and the body deadline's 408); a public read the rate limit's 429. Derived
    here from the same prefixes the middleware uses, so the schema cannot miss a
    route that a limit covers.
    """
    problem = {problems.PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            extra = dict(_ANY_REQUEST_PROBLEMS)
            if "requestBody" in operation or method in ("post", "put", "patch"):
                extra.update(_BODY_PROBLEMS)
            if path.startswith(RATE_LIMITED_PREFIXES):
                extra.update(_RATE_PROBLEM)
            responses = operation.setdefault("responses", {})
            for code, description in extra.items():
                entry = responses.get(str(code))
                if entry is None:
                    entry = responses[str(code)] = {"description": description}
                elif description not in entry.get("description", ""):
                    # the route's own answer with this status (a 503 of its own): both are possible
                    entry["description"] = f"{entry.get('description', '')}; or {description}"
                entry.setdefault("content", problem)
                if code in (429, 503):
                    entry.setdefault("headers", _RETRY_AFTER)


def _problem_media_type(schema: dict[str, Any]) -> None:
    """Declare error bodies as what they are on the wire: application/problem+json.

    FastAPI files an extra response's model under the route's media type; every
    4xx/5xx here is answered by the problem handlers, so the schema says so (a
    client or a schema fuzzer checks responses against it).
    """
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            for code, response in operation.get("responses", {}).items():
                content = response.get("content")
                if str(code)[:1] in ("4", "5") and content:
                    response["content"] = {problems.PROBLEM_JSON: next(iter(content.values()))}
