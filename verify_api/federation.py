"""Federation: answering for licences of other provinces without trusting them.

The registry (a TOML file) lists the other provinces: origin, API endpoints,
the regions they issue for, and their trust anchors — the GENESIS record
(pinned by its SM3 hash) and optionally their root CA certificates::

    [[province]]
    name = "广东省"
    origin = "gd.certledger.example/licences"
    endpoints = ["https://ledger.gd.example", "https://ledger2.gd.example"]
    regions = ["44"]
    genesis_file = "gd-genesis.json"
    genesis_sm3 = "5f1c...e2"

Asked about a licence, the node picks the province (explicit origin, else
the region inside the GB/T 36904 identifier's issuer code), fetches status
and proofs from its endpoints and verifies them with :class:`LedgerClient`.
Verified answers are cached with their time; when every endpoint is
unreachable the last verified answer is returned, marked stale with its age.
An answer that fails verification is never cached: it is reported, and the
signed statements involved are kept as evidence.
"""

from __future__ import annotations

import json
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.anchors import TrustAnchors
from signing.errors import InvalidInputError, TransportError, VerificationError
from verify_api.client import CheckpointMemory, LedgerClient

#: GB/T 36904: 1.2.156.3005.2.{type}.{issuer credit code}.{serial}.{version}.{check}
_ID_PREFIX = "1.2.156.3005.2."


#: failed checks kept (in memory and in federation-evidence.json), the latest ones
_EVIDENCE_KEPT = 1000

@dataclass(frozen=True)
class Province:
    name: str
    origin: str
    endpoints: tuple[str, ...]
    regions: tuple[str, ...]
    anchors: TrustAnchors


@dataclass(frozen=True)
class FederatedAnswer:
    province: str
    origin: str
    endpoint: str
    verified: dict[str, Any]
    fetched_at: float
    stale: bool = False
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        age = max(0.0, time.time() - self.fetched_at)
        return {
            "province": self.province,
            "origin": self.origin,
            "endpoint": self.endpoint,
            "fetched_at": self.fetched_at,
            "age_seconds": round(age, 1),
            "stale": self.stale,
            "error": self.error,
            **self.verified,
        }


def region_of_licence(licence_id: str) -> str | None:
    """The 6-digit region code inside a GB/T 36904 identifier's issuer credit code."""
    if not licence_id.startswith(_ID_PREFIX):
        return None
    parts = licence_id[len(_ID_PREFIX) :].split(".")
    if len(parts) < 2 or len(parts[1]) != 18:
        return None
    region = parts[1][2:8]
    return region if region.isdigit() else None


class FederationRegistry:
    def __init__(self, provinces: list[Province]) -> None:
        origins = [p.origin for p in provinces]
        if len(set(origins)) != len(origins):
            raise InvalidInputError("the federation registry lists an origin twice", reason="federation.registry")
        self.provinces = provinces

    @classmethod
    def load(cls, path: Path) -> FederationRegistry:
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"federation registry {path}: {exc}", reason="federation.registry") from None
        provinces = []
        for i, entry in enumerate(data.get("province", [])):
            try:
                genesis = (path.parent / entry["genesis_file"]).read_bytes()
                anchors = TrustAnchors.from_genesis(genesis, expected_hash=entry["genesis_sm3"])
                if anchors.origin != entry["origin"]:
                    raise InvalidInputError(
                        f"province {i}: genesis is for {anchors.origin}", reason="federation.registry"
                    )
                provinces.append(
                    Province(
                        name=str(entry.get("name", entry["origin"])),
                        origin=str(entry["origin"]),
                        endpoints=tuple(str(e) for e in entry["endpoints"]),
                        regions=tuple(str(r) for r in entry.get("regions", [])),
                        anchors=anchors,
                    )
                )
            except (KeyError, TypeError, OSError) as exc:
                raise InvalidInputError(
                    f"federation registry {path}: province {i}: {type(exc).__name__} {exc}",
                    reason="federation.registry",
                ) from None
        return cls(provinces)

    def by_origin(self, origin: str) -> Province:
        for p in self.provinces:
            if p.origin == origin:
                return p
        raise InvalidInputError(
            f"no province with origin {origin} in the federation registry", reason="federation.unknown_origin"
        )

    def for_licence(self, licence_id: str) -> Province:
        region = region_of_licence(licence_id)
        if region is not None:
            best: tuple[int, Province] | None = None
            for p in self.provinces:
                for prefix in p.regions:
                    if region.startswith(prefix) and (best is None or len(prefix) > best[0]):
                        best = (len(prefix), p)
            if best is not None:
                return best[1]
        raise InvalidInputError(
            f"cannot tell which province issued {licence_id}; pass its origin", reason="federation.unknown_origin"
        )


@dataclass
class FederatedVerifier:
    registry: FederationRegistry
    state_dir: Path | None = None
    timeout: float = 5.0
    _cache: dict[tuple[str, str], FederatedAnswer] = field(default_factory=dict)
    _clients: dict[str, LedgerClient] = field(default_factory=dict)
    _memories: dict[str, CheckpointMemory] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    _evidence_lock: threading.Lock = field(default_factory=threading.Lock)

    def _client(self, province: Province, endpoint: str) -> LedgerClient:
        key = f"{province.origin} {endpoint}"
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                memory_path = None
                if self.state_dir is not None:
                    safe = "".join(c if c.isalnum() else "_" for c in province.origin)
                    memory_path = self.state_dir / f"checkpoints-{safe}.json"
                # one memory per origin, shared by its endpoints: a fork between mirrors is caught too
                memory = self._memory(province.origin, memory_path)
                client = LedgerClient(endpoint, province.anchors, memory=memory, timeout=self.timeout)
                self._clients[key] = client
            return client

    def _memory(self, origin: str, path: Path | None) -> CheckpointMemory:
        memory = self._memories.get(origin)
        if memory is None:
            memory = CheckpointMemory(path)
            self._memories[origin] = memory
        return memory

    def status(self, licence_id: str, origin: str | None = None) -> FederatedAnswer:
        province = self.registry.by_origin(origin) if origin else self.registry.for_licence(licence_id)
        errors: list[str] = []
        for endpoint in province.endpoints:
            try:
                verified = self._client(province, endpoint).licence_status(licence_id)
            except TransportError as exc:
                errors.append(f"{endpoint}: {exc}")
                continue
            except VerificationError as exc:
                # a lie: report it, keep the evidence, never cache it
                entry = {
                    "time": time.time(),
                    "origin": province.origin,
                    "endpoint": endpoint,
                    "licence_id": licence_id,
                    "reason": exc.reason,
                    "message": str(exc),
                    "details": exc.details,
                }
                with self._evidence_lock:  # lookups run on several threads: one writer of the file at a time
                    self.evidence.append(entry)
                    del self.evidence[:-_EVIDENCE_KEPT]  # bounded: callers choose what is asked, and how often
                    self._save_evidence()
                raise
            answer = FederatedAnswer(province.name, province.origin, endpoint, verified.to_json(), verified.fetched_at)
            with self._lock:
                self._cache[(province.origin, licence_id)] = answer
            return answer
        cached = self._cache.get((province.origin, licence_id))
        if cached is not None:
            return FederatedAnswer(
                cached.province,
                cached.origin,
                cached.endpoint,
                cached.verified,
                cached.fetched_at,
                stale=True,
                error="; ".join(errors),
            )
        raise TransportError(
            f"no endpoint of {province.name} answered: {'; '.join(errors)}", reason="federation.unreachable"
        )

    def _save_evidence(self) -> None:
        if self.state_dir is None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "federation-evidence.json").write_text(
            json.dumps(self.evidence, ensure_ascii=False, indent=1, default=str), "utf-8"
        )
