"""``POST /v1/verify``, ``GET /v1/lookup/{identifier}`` and the page routes against a real ``certledger serve``.

The node home holds real licence files: PAdES-signed PDFs and GB/T 38540-sealed
OFDs whose ISSUE/AMEND/SUSPEND/REVOKE records are on its ledger, plus a
tampered and a forged file (tests/browser/licence_files.py builds them). The
server verifies uploads against ``<home>/trust/root.pem`` and its own ledger.
Every refusal must be a 4xx problem+json with a reason code, never a 5xx.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import ApiServer, serving

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))

from licence_files import HRSS, REVOKE_REASON, SUSPEND_REASON, XIHU, LicenceHome, shared_licence_home

from cert_formats.binding import ofd_bundle_path, ofd_digest, pdf_digest
from cert_formats.identifier import LicenceIdentifier
from cert_formats.ofd import read_ofd
from verify_api.verify_route import _Busy, _Slots

PROBLEM = "application/problem+json"
CORPUS = Path(__file__).resolve().parents[1] / "corpus"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> LicenceHome:
    return shared_licence_home(tmp_path_factory.mktemp("licences"))


@pytest.fixture(scope="module")
def servers(home: LicenceHome) -> Iterator[tuple[ApiServer, ApiServer]]:
    """The node's server (no rate limit: the tests send many requests) and one with a tiny rate budget."""
    main = ApiServer(home.home, read_only=True, env={"CERTLEDGER_API_RATE": "0"})
    limited = ApiServer(home.home, read_only=True, env={"CERTLEDGER_API_RATE": "0.2", "CERTLEDGER_API_BURST": "2"})
    with serving(main, limited):
        yield main, limited


@pytest.fixture
def http(servers: tuple[ApiServer, ApiServer]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=servers[0].base_url, timeout=60) as client:
        yield client


def raw(http: httpx.Client, data: bytes, media_type: str = "application/octet-stream") -> httpx.Response:
    return http.post("/v1/verify", content=data, headers={"content-type": media_type})


def multipart(http: httpx.Client, data: bytes, name: str = "licence.bin") -> httpx.Response:
    return http.post("/v1/verify", files={"file": (name, data, "application/octet-stream")})


def assert_problem(resp: httpx.Response, status: int, reason: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text[:500]
    assert resp.headers["content-type"].startswith(PROBLEM), resp.headers
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and body["type"].endswith(body["reason"])
    assert "Traceback" not in body["detail"]
    if reason is not None:
        assert body["reason"] == reason, body
    return body


def file_digest(name: str, data: bytes) -> str:
    """The SM3 digest the ledger binds, computed by the binding module (not by the endpoint)."""
    if name.endswith(".pdf"):
        return pdf_digest(data)
    read = read_ofd(data)
    parts = dict(read.parts)
    bundle = next(a.data for a in read.document.attachments if a.name == "certledger-proof.json")
    return ofd_digest(parts, ofd_bundle_path(parts, bundle))


# -- verdicts on real files ----------------------------------------------------------------------


@pytest.mark.parametrize("send", [raw, multipart], ids=["raw", "multipart"])
@pytest.mark.parametrize("name", ["genuine.pdf", "genuine.ofd", "amended-v2.ofd"])
def test_genuine_files_are_valid(http: httpx.Client, home: LicenceHome, name: str, send: Any) -> None:
    data = home.files[name]
    resp = send(http, data)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["verdict"] == "valid"
    assert answer["format"] == name.rsplit(".", 1)[1]
    assert answer["licence_id"] == home.licence_id(name)
    assert answer["identifier"] == home.licences[name].identifier
    assert answer["digest_sm3"] == file_digest(name, data)
    assert answer["status"] == "ACTIVE" and answer["status_source"] == "ledger"
    assert answer["reason"] == ""
    assert all(c["ok"] for c in answer["checks"])
    names = [c["name"] for c in answer["checks"]]
    assert ("signature" if name.endswith(".pdf") else "seal") in names
    assert {"identifier", "ledger", "digest"} <= set(names)
    lic = home.licences[name]
    assert answer["metadata"]["holder"] == lic.holder and answer["metadata"]["name"] == lic.name
    assert answer["history"][0]["type"] == "ISSUE"
    assert answer["history"][0]["agency"] == lic.issuer_code
    assert answer["history"][0]["agency_name"] in (XIHU.name, HRSS.name)


@pytest.mark.parametrize("name", ["revoked.pdf", "revoked.ofd"])
def test_revoked_files_are_revoked(http: httpx.Client, home: LicenceHome, name: str) -> None:
    answer = raw(http, home.files[name]).json()
    assert answer["verdict"] == "revoked"
    assert answer["status"] == "REVOKED"
    history = answer["history"]
    assert [h["type"] for h in history] == ["ISSUE", "REVOKE"]
    assert history[1]["reason_text"] == REVOKE_REASON and history[1]["reason_code"] == "fraud"
    assert history[0]["index"] < history[1]["index"]
    assert history[1]["time"].endswith("Z")


def test_suspended_and_superseded_files(http: httpx.Client, home: LicenceHome) -> None:
    suspended = raw(http, home.files["suspended.pdf"]).json()
    assert suspended["verdict"] == "suspended"
    assert [h["type"] for h in suspended["history"]] == ["ISSUE", "SUSPEND"]
    assert suspended["history"][1]["reason_text"] == SUSPEND_REASON
    old = raw(http, home.files["amended-v1.pdf"]).json()
    assert old["verdict"] == "superseded"
    assert old["version"] == 2  # the ledger's current version, not the file's
    assert [(h["type"], h["version"]) for h in old["history"]] == [("ISSUE", 1), ("AMEND", 2)]


def test_tampered_byte_is_forged(http: httpx.Client, home: LicenceHome) -> None:
    answer = raw(http, home.files["tampered.pdf"]).json()
    assert answer["verdict"] == "forged"
    signature = next(c for c in answer["checks"] if c["name"] == "signature")
    assert not signature["ok"] and signature["reason"].startswith("pdf.")
    assert answer["reason"] == signature["reason"]
    # the verdict stops at the signature: no ledger status is reported for a forged file
    assert answer["status"] == "" and answer["status_source"] == ""


def test_look_alike_sealed_by_a_forger_is_forged(http: httpx.Client, home: LicenceHome) -> None:
    answer = multipart(http, home.files["forged.ofd"], "forged.ofd").json()
    assert answer["verdict"] == "forged"
    seal = next(c for c in answer["checks"] if c["name"] == "seal")
    assert not seal["ok"] and seal["reason"] == answer["reason"]
    assert answer["identifier"] == home.licences["forged.ofd"].identifier  # what it claims to be


# -- refusals ----------------------------------------------------------------------------------


def test_random_bytes_are_refused(http: httpx.Client) -> None:
    junk = os.urandom(64 * 1024).replace(b"%PDF-", b"").replace(b"PK", b"pk")
    assert_problem(raw(http, junk), 415, "file.unsupported")
    assert_problem(multipart(http, junk), 415, "file.unsupported")


def test_empty_uploads_are_refused(http: httpx.Client) -> None:
    assert_problem(raw(http, b""), 422, "file.empty")
    assert_problem(multipart(http, b""), 422, "file.empty")


def test_oversized_upload_is_413(http: httpx.Client) -> None:
    big = b"%PDF-1.7\n" + b"0" * (25 * 1024 * 1024)
    assert_problem(raw(http, big), 413)
    assert_problem(multipart(http, big), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: cut off while streaming
        for _ in range(25):
            yield b"0" * (1024 * 1024)

    assert_problem(http.post("/v1/verify", content=chunks(), headers={"content-type": "application/pdf"}), 413)


def test_malformed_requests(http: httpx.Client, home: LicenceHome) -> None:
    # a form without the file field
    resp = http.post("/v1/verify", data={"note": "x"}, files={"other": ("a.pdf", b"%PDF-1.7", "application/pdf")})
    assert_problem(resp, 422, "request.no_file")
    # a broken multipart body
    resp = http.post(
        "/v1/verify",
        content=b"--xx\r\nContent-Disposition: form-data; name=file\r\n\r\nnot closed",
        headers={"content-type": "multipart/form-data; boundary=xx"},
    )
    assert resp.status_code in (200, 415, 422)  # parsed leniently or refused, never a 5xx
    if resp.status_code != 200:
        assert_problem(resp, resp.status_code)
    # a media type that is not a file
    assert_problem(raw(http, home.files["genuine.pdf"], "text/plain"), 415, "request.media_type")
    # a PDF header over garbage, a zip header over garbage
    for junk in (b"%PDF-1.7\n" + os.urandom(4096), b"PK\x03\x04" + os.urandom(4096)):
        resp = raw(http, junk)
        assert resp.status_code in (200, 422), resp.text
        if resp.status_code == 200:
            assert resp.json()["verdict"] in ("forged", "unknown")
        else:
            assert_problem(resp, 422)


def test_hostile_corpus_never_causes_a_server_error(http: httpx.Client, servers: tuple[ApiServer, ...]) -> None:
    files = sorted(p for p in CORPUS.rglob("*") if p.suffix in (".ofd", ".pdf"))
    assert len(files) > 20
    for path in files:
        resp = raw(http, path.read_bytes())
        assert resp.status_code in (200, 413, 415, 422), f"{path.name}: {resp.status_code} {resp.text[:300]}"
        if resp.status_code == 200:
            assert resp.json()["verdict"] in ("forged", "unknown"), path.name
        else:
            assert_problem(resp, resp.status_code)
    log = servers[0].log()
    assert "unhandled error" not in log and "Traceback" not in log


def test_rate_limited(servers: tuple[ApiServer, ApiServer], home: LicenceHome) -> None:
    with httpx.Client(base_url=servers[1].base_url, timeout=60) as client:
        codes = [raw(client, b"x").status_code for _ in range(4)]
        assert codes[:2] == [415, 415]
        assert 429 in codes[2:]
        resp = raw(client, b"x")
        assert_problem(resp, 429, "request.rate_limited")
        assert int(resp.headers["retry-after"]) >= 1


def test_concurrent_uploads(servers: tuple[ApiServer, ApiServer], home: LicenceHome) -> None:
    """More uploads than verification slots: each is verified, or pushed back with 503 + Retry-After."""
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def send() -> None:
        with httpx.Client(base_url=servers[0].base_url, timeout=120) as client:
            resp = raw(client, home.files["genuine.ofd"])
        with lock:
            results.append(resp)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6
    ok = [r for r in results if r.status_code == 200]
    assert ok and all(r.json()["verdict"] == "valid" for r in ok)
    for r in results:
        if r.status_code != 200:
            assert_problem(r, 503, "verify.busy")
            assert r.headers["retry-after"]


# -- lookups ---------------------------------------------------------------------------------


def test_lookup_by_identifier_lineage_and_ledger_id(http: httpx.Client, home: LicenceHome) -> None:
    identifier = home.licences["genuine.pdf"].identifier
    lineage = home.licence_id("genuine.pdf")
    by_identifier = http.get(f"/v1/lookup/{identifier}").json()
    assert by_identifier["verdict"] == "valid" and by_identifier["licence_id"] == lineage
    assert by_identifier["identifier"] == identifier
    names = [c["name"] for c in by_identifier["checks"]]
    # the ledger's answer is proven: checkpoint quorum, inclusion, key admission, the agency's signature
    for name in ("identifier", "ledger", "checkpoint", "record inclusion", "key admission", "record signature"):
        assert name in names
    assert all(c["ok"] for c in by_identifier["checks"])
    assert [h["type"] for h in by_identifier["history"]] == ["ISSUE"]
    by_lineage = http.get(f"/v1/lookup/{lineage}").json()
    assert by_lineage["verdict"] == "valid" and by_lineage["identifier"] == identifier
    assert "version" not in [c["name"] for c in by_lineage["checks"]]
    # whitespace around a pasted identifier is forgiven
    assert http.get(f"/v1/lookup/%20{identifier}%20").json()["verdict"] == "valid"


def test_lookup_verdicts_follow_the_ledger(http: httpx.Client, home: LicenceHome) -> None:
    assert http.get(f"/v1/lookup/{home.licences['revoked.pdf'].identifier}").json()["verdict"] == "revoked"
    assert http.get(f"/v1/lookup/{home.licences['suspended.pdf'].identifier}").json()["verdict"] == "suspended"
    old = http.get(f"/v1/lookup/{home.licences['amended-v1.pdf'].identifier}").json()
    assert old["verdict"] == "superseded" and old["reason"] == "licence.superseded"
    assert http.get(f"/v1/lookup/{home.licences['amended-v2.ofd'].identifier}").json()["verdict"] == "valid"
    v2 = LicenceIdentifier.parse(home.licences["amended-v2.ofd"].identifier)
    future = http.get(f"/v1/lookup/{v2.with_version(3)}").json()
    assert future["verdict"] == "unknown" and future["reason"] == "licence.version_unknown"


def test_lookup_refusals(http: httpx.Client, home: LicenceHome) -> None:
    good = LicenceIdentifier.parse(home.licences["genuine.pdf"].identifier)
    bad_check = f"{good.lineage}.{good.version_text}.{'0' if good.check != '0' else '1'}"
    assert_problem(http.get(f"/v1/lookup/{bad_check}"), 422, "licence.bad_identifier_check")
    assert_problem(http.get("/v1/lookup/1.2.156.3005.2.x.y"), 422, "licence.bad_identifier")
    assert_problem(http.get("/v1/lookup/%3Cscript%3E"), 422, "licence.bad_identifier")
    assert_problem(http.get("/v1/lookup/" + "A" * 300), 422, "licence.bad_identifier")
    assert_problem(http.get(f"/v1/lookup/{good.lineage}9"), 404, "state.unknown_licence")


# -- the page and the schema ---------------------------------------------------------------------


def test_page_routes(http: httpx.Client, home: LicenceHome) -> None:
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<html lang="zh-CN">' in page.text
    # nothing is loaded from elsewhere: every src/href is local (or a data: icon, or an in-page anchor)
    for attr in ("src=", "href="):
        for chunk in page.text.split(attr)[1:]:
            target = chunk[1:].split(chunk[0], 1)[0]
            assert target.startswith(("/", "#", "data:")), target
    # the QR code's address serves the same page; the identifier is never written into the HTML
    identifier = home.licences["genuine.pdf"].identifier
    qr = http.get(f"/v/{identifier}")
    assert qr.status_code == 200 and qr.text == page.text
    assert http.get("/v/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E").text == page.text
    for name, media in (("app.js", "text/javascript"), ("app.css", "text/css")):
        asset = http.get(f"/static/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(media)
        again = http.get(f"/static/{name}", headers={"if-none-match": asset.headers["etag"]})
        assert again.status_code == 304
    assert_problem(http.get("/static/../app.py"), 404)
    assert_problem(http.get("/static/index.html"), 404)
    assert http.head("/").status_code == 200


def test_openapi_documents_the_endpoints(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    verify = schema["paths"]["/v1/verify"]["post"]
    assert set(verify["requestBody"]["content"]) >= {"multipart/form-data", "application/octet-stream"}
    assert {"200", "413", "415", "422", "429", "503"} <= set(verify["responses"])
    assert PROBLEM in verify["responses"]["415"]["content"]
    assert "/v1/lookup/{identifier}" in schema["paths"]
    assert "/" not in schema["paths"] and "/v/{identifier}" not in schema["paths"]


# -- the slot pool (in-process) ----------------------------------------------------------------


def test_slots_hold_until_the_thread_ends() -> None:
    """A timed-out verification keeps its slot until its thread really ends: slow files cannot pile up."""

    async def scenario() -> None:
        slots = _Slots(1, queue_wait=0.1)
        with pytest.raises(TimeoutError):
            await slots.run(lambda: time.sleep(0.6), timeout=0.05)
        with pytest.raises(_Busy):  # the first thread is still running
            await slots.run(lambda: 1, timeout=1)
        await asyncio.sleep(0.8)
        assert await slots.run(lambda: 42, timeout=1) == 42

    asyncio.run(scenario())
