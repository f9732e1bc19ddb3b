"""Real API servers for integration tests: node homes with ledgers, and ``certledger serve`` processes.

A test builds a node home in-process (keys, genesis, agencies, pre-loaded
records — fast, no network), then serves it with the installed
``certledger serve --home H --port P`` in a subprocess: the same uvicorn,
middleware and process boundary production has. :class:`ApiServer` waits for
``/healthz`` before handing the server over and always stops it (SIGTERM to
its process group, SIGKILL after a grace period), also when a test fails.

Never append records in-process to a home that a *writing* server serves: the
server's sequencer holds the tree edge in memory and owns the appends. Read-only
servers (``read_only=True``) may be served while a test inspects the database.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ledger.records import Record, RecordType, SignedRecord, new_nonce, now_utc, sign_record
from ledger.service import BatchResult, Ledger
from nodes.config import NodeConfig, load_config
from nodes.local import agency_key_json, init_node, open_node
from signing.sm2 import SM2PrivateKey
from signing.sm3 import sm3

#: the node keys' passphrase in every test home (non-ASCII, with a space: quoting slips show)
PASSPHRASE = "api test 口令 passphrase"
_KEYS_VALID_FROM = datetime(2020, 1, 1, tzinfo=UTC)


def certledger_script() -> str:
    """The console script installed next to the interpreter running the tests."""
    beside = Path(sys.executable).with_name("certledger")
    if not beside.exists():
        raise RuntimeError(f"{beside} is missing: pip install -e . into the venv")
    return str(beside)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- ledgers --------------------------------------------------------------------------------


@dataclass
class AgencySpec:
    """An issuing agency of a test ledger, with its SM2 key."""

    id: str
    name: str
    regions: tuple[str, ...]
    types: tuple[str, ...]
    authority: bool = False
    key: SM2PrivateKey = field(default_factory=SM2PrivateKey.generate)

    def genesis_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "regions": list(self.regions),
            "types": list(self.types),
            "authority": self.authority,
            "keys": [agency_key_json(self.key.public_key, _KEYS_VALID_FROM)],
        }


@dataclass
class TestNode:
    """A node home: its config, origin and agencies (to sign records with)."""

    __test__ = False  # not a pytest test class

    home: Path
    origin: str
    agencies: dict[str, AgencySpec]

    @property
    def config(self) -> NodeConfig:
        return load_config(self.home)

    def genesis_bytes(self) -> bytes:
        """The GENESIS entry exactly as stored (what another province pins)."""
        ledger = Ledger.open(self.config.database)
        try:
            return ledger.entry(0).entry_bytes()
        finally:
            ledger.close()

    def genesis_sm3(self) -> str:
        return sm3(self.genesis_bytes()).hex()

    def append(self, records: Sequence[SignedRecord]) -> BatchResult:
        """Append ``records`` as one block, in-process (only while no writing server serves this home)."""
        node = open_node(self.config, PASSPHRASE.encode())
        try:
            result = node.ledger.submit(records)
        finally:
            node.close()
        result.raise_first()
        return result

    # -- records ---------------------------------------------------------------------------

    def record(
        self,
        rtype: RecordType,
        agency: str,
        payload: Mapping[str, Any],
        *,
        time: datetime | None = None,
        origin: str | None = None,
        key: SM2PrivateKey | None = None,
    ) -> SignedRecord:
        """A licence record signed by ``agency`` (or by ``key`` claiming to be the agency's)."""
        spec = self.agencies[agency]
        signer = key or spec.key
        rec = Record(
            rtype,
            origin or self.origin,
            time or now_utc(),
            new_nonce(),
            spec.id,
            signer.public_key.key_id,
            dict(payload),
        )
        return sign_record(rec, [signer])

    def issue(
        self,
        agency: str,
        licence_id: str,
        *,
        region: str | None = None,
        type_code: str | None = None,
        holder: str = "某某科技有限公司",
        **kwargs: Any,
    ) -> SignedRecord:
        spec = self.agencies[agency]
        payload = {
            "licence_id": licence_id,
            "type_code": type_code or spec.types[0],
            "region": region or _full_region(spec.regions[0]),
            "version": 1,
            "files": {"ofd": sm3(f"{licence_id}.ofd".encode()).hex(), "pdf": sm3(f"{licence_id}.pdf".encode()).hex()},
            "metadata": {"holder": holder},
        }
        return self.record(RecordType.ISSUE, agency, payload, **kwargs)

    def revoke(self, agency: str, licence_id: str, reason_text: str = "吊销：违法经营", **kwargs: Any) -> SignedRecord:
        payload = {"licence_id": licence_id, "reason_code": "enforcement.revoked", "reason_text": reason_text}
        return self.record(RecordType.REVOKE, agency, payload, **kwargs)

    def suspend(self, agency: str, licence_id: str, **kwargs: Any) -> SignedRecord:
        payload = {"licence_id": licence_id, "reason_code": "inspection.pending", "reason_text": "暂停：待核查"}
        return self.record(RecordType.SUSPEND, agency, payload, **kwargs)

    def resume(self, agency: str, licence_id: str, **kwargs: Any) -> SignedRecord:
        return self.record(RecordType.RESUME, agency, {"licence_id": licence_id, "reason_text": "核查通过"}, **kwargs)

    def amend(self, agency: str, licence_id: str, version: int, **kwargs: Any) -> SignedRecord:
        spec = self.agencies[agency]
        payload = {
            "licence_id": licence_id,
            "type_code": spec.types[0],
            "region": _full_region(spec.regions[0]),
            "version": version,
            "files": {"pdf": sm3(f"{licence_id}.v{version}.pdf".encode()).hex()},
            "metadata": {"holder": "某某科技有限公司（更名）"},
            "reason_text": "名称变更",
        }
        return self.record(RecordType.AMEND, agency, payload, **kwargs)


def _full_region(prefix: str) -> str:
    """A 6-digit region code inside the agency's region prefix."""
    return (prefix + "0000")[:6] if prefix != "*" else "110000"


def make_node(home: Path, origin: str, agencies: Sequence[AgencySpec], *, node_id: str = "node-1") -> TestNode:
    """A new single-node ledger at ``home``: keys (encrypted with :data:`PASSPHRASE`), genesis, block 0."""
    cfg = NodeConfig(home=home, node_id=node_id)
    cfg.database = cfg.default_database()
    node = init_node(
        cfg,
        PASSPHRASE.encode(),
        origin=origin,
        node_name=f"{origin} {node_id}",
        authority_id="gov",
        authority_name="省政务服务数据管理局",
        agencies=[a.genesis_json() for a in agencies],
    )
    node.close()
    return TestNode(home, origin, {a.id: a for a in agencies})


# -- servers --------------------------------------------------------------------------------


@dataclass
class ApiServer:
    """``certledger serve`` for one node home, as a subprocess on 127.0.0.1."""

    home: Path
    port: int = field(default_factory=free_port)
    read_only: bool = False
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [certledger_script(), "serve", "--home", str(self.home), "--host", "127.0.0.1", "--port", str(self.port)]
        if self.read_only:
            cmd.append("--read-only")
        if self.workers != 1:
            cmd += ["--workers", str(self.workers)]
        return cmd

    def launch(self) -> ApiServer:
        """Start the process without waiting (see :func:`start_all`); :meth:`wait_ready` waits."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("server already running")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CERTLEDGER_")}
        env["CERTLEDGER_PASSPHRASE"] = PASSPHRASE
        env.update(self.env)
        log_path = self.log_path or self.home.parent / f"{self.home.name}-serve-{self.port}.log"
        self.log_path = log_path
        with log_path.open("ab") as log:
            # own session: stop() signals the whole group (uvicorn's worker processes too)
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        return self

    def wait_ready(self, timeout: float = 60.0) -> ApiServer:
        """Return once ``/healthz`` answers 200; stop the server and raise with its log if it never does."""
        proc = self.proc
        if proc is None:
            raise RuntimeError("server not launched")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"server exited with {proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not become ready in {timeout}s:\n{self.log()}")

    def start(self, timeout: float = 60.0) -> ApiServer:
        """Start the server and return once it is ready."""
        return self.launch().wait_ready(timeout)

    def stop(self, grace: float = 10.0) -> None:
        """Stop the server: SIGTERM to its process group, SIGKILL after ``grace`` seconds."""
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text("utf-8", "replace")[-5000:]

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def serving(*servers: ApiServer, timeout: float = 60.0) -> Iterator[tuple[ApiServer, ...]]:
    """Start ``servers`` side by side (their start-up overlaps), wait for all, stop all on exit."""
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready(timeout)
        yield servers
    finally:
        for server in servers:
            server.stop()


def refused_start_log(home: Path, env: dict[str, str], timeout: float = 60.0) -> str:
    """The log of ``certledger serve`` started with ``env``, which must exit non-zero without a traceback."""
    bad = ApiServer(home, env=env)
    bad.launch()
    assert bad.proc is not None
    try:
        assert bad.proc.wait(timeout=timeout) != 0
    finally:
        bad.stop()
    assert bad.log_path is not None
    log = bad.log_path.read_text("utf-8")
    assert "Traceback" not in log, log
    return log


def read_http_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response read from a raw socket: status, lower-cased headers, body (by Content-Length)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {buf!r}")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body[:length]

