"""A small etcd v3 client over the JSON gateway (etcd 3.4's ``/v3/...``), with httpx.

Only what certledger's ordering needs: range, put, delete, create-only
transactions, leases and watches. Two quirks of the gateway shape the code:
keys and values are base64 in JSON, and protobuf defaults are *left out* of
responses (a failed txn has no ``succeeded``; a PUT event has no ``type``;
64-bit numbers arrive as strings).

Several endpoints may be given; a request that cannot reach one member is
retried on the next, so a dead etcd member does not stop the node.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from signing.errors import TransportError

#: etcd's default --max-txn-ops
MAX_TXN_OPS = 128
#: bytes of keys and values put in one transaction at most (etcd refuses requests over 1.5 MiB)
_TXN_BYTES = 1024 * 1024


def _b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def _unb64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that selects every key starting with ``prefix``."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"


@dataclass(frozen=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int

    @classmethod
    def from_json(cls, kv: dict[str, Any]) -> KeyValue:
        return cls(
            key=_unb64(kv.get("key")),
            value=_unb64(kv.get("value")),
            create_revision=int(kv.get("create_revision", 0)),
            mod_revision=int(kv.get("mod_revision", 0)),
            lease=int(kv.get("lease", 0)),
        )


@dataclass(frozen=True)
class WatchEvent:
    kind: str  # "PUT" or "DELETE"
    kv: KeyValue


class Etcd:
    def __init__(self, endpoints: list[str], *, timeout: float = 3.0) -> None:
        if not endpoints:
            raise TransportError("no etcd endpoints configured", reason="etcd.config")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self._preferred = 0
        self._lock = threading.Lock()
        self.http = httpx.Client(timeout=timeout)
        # watches reconnect every few seconds: one client (one TLS context, pooled connections) for all
        self._watch_http = httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0))

    def close(self) -> None:
        self.http.close()
        self._watch_http.close()

    # -- transport ------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        errors = []
        n = len(self.endpoints)
        for i in range(n):
            idx = (self._preferred + i) % n
            url = self.endpoints[idx] + path
            try:
                resp = self.http.post(url, json=body)
            except httpx.HTTPError as exc:
                errors.append(f"{url}: {type(exc).__name__}")
                continue
            if resp.status_code >= 500 or resp.status_code == 404:
                # 503/500: member without quorum or stopping; try another
                errors.append(f"{url}: HTTP {resp.status_code} {resp.text[:120]}")
                continue
            if resp.status_code >= 400:
                raise TransportError(f"etcd {path}: HTTP {resp.status_code} {resp.text[:200]}", reason="etcd.request")
            with self._lock:
                self._preferred = idx
            data: dict[str, Any] = resp.json()
            if "error" in data:
                raise TransportError(f"etcd {path}: {data['error']}", reason="etcd.request")
            return data
        raise TransportError("no etcd member answered: " + "; ".join(errors), reason="etcd.unavailable")

    # -- kv -------------------------------------------------------------------------------

    def get(self, key: bytes) -> KeyValue | None:
        kvs = self.range(key)
        return kvs[0] if kvs else None

    def range(
        self,
        key: bytes,
        range_end: bytes | None = None,
        *,
        limit: int = 0,
        sort_by_create: bool = False,
        keys_only: bool = False,
    ) -> list[KeyValue]:
        body: dict[str, Any] = {"key": _b64(key)}
        if range_end is not None:
            body["range_end"] = _b64(range_end)
        if limit:
            body["limit"] = limit
        if sort_by_create:
            body["sort_order"] = "ASCEND"
            body["sort_target"] = "CREATE"
        if keys_only:
            body["keys_only"] = True
        data = self._post("/v3/kv/range", body)
        return [KeyValue.from_json(kv) for kv in data.get("kvs", [])]

    def range_at(self, key: bytes, range_end: bytes, *, limit: int = 0) -> tuple[list[KeyValue], int]:
        """Like :meth:`range`, plus the store revision the answer reflects (to start a watch after it)."""
        body: dict[str, Any] = {"key": _b64(key), "range_end": _b64(range_end)}
        if limit:
            body["limit"] = limit
        data = self._post("/v3/kv/range", body)
        return [KeyValue.from_json(kv) for kv in data.get("kvs", [])], int(data["header"]["revision"])

    def prefix(self, prefix: bytes, *, limit: int = 0, sort_by_create: bool = False) -> list[KeyValue]:
        return self.range(prefix, prefix_end(prefix), limit=limit, sort_by_create=sort_by_create)

    def current_revision(self) -> int:
        """The store's current revision (from any range response header)."""
        return int(self._post("/v3/kv/range", {"key": _b64(b"\x00"), "count_only": True})["header"]["revision"])

    def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        return int(self._post("/v3/kv/put", body)["header"]["revision"])

    def delete(self, key: bytes, range_end: bytes | None = None) -> int:
        body: dict[str, Any] = {"key": _b64(key)}
        if range_end is not None:
            body["range_end"] = _b64(range_end)
        return int(self._post("/v3/kv/deleterange", body).get("deleted", 0))

    def create(
        self, key: bytes, value: bytes, *, lease: int = 0, also_delete: list[bytes] | None = None
    ) -> tuple[bool, KeyValue | None]:
        """Put ``key`` only if it does not exist. Returns (created, existing value if not).

        ``also_delete`` keys are deleted in the same transaction, only if the
        key is created (at most 127: etcd's default limit is 128 operations).
        Safe to retry after a timeout: if an earlier attempt did create the key,
        the retry reports not-created with the stored value, which the caller
        compares with what it meant to write.
        """
        put: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            put["lease"] = str(lease)
        deletes = also_delete or []
        if len(deletes) > MAX_TXN_OPS - 1:
            raise TransportError(f"at most {MAX_TXN_OPS - 1} deletes per create", reason="etcd.request")
        body = {
            "compare": [{"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            "success": [{"request_put": put}, *({"request_delete_range": {"key": _b64(k)}} for k in deletes)],
            "failure": [{"request_range": {"key": _b64(key)}}],
        }
        data = self._post("/v3/kv/txn", body)
        if data.get("succeeded"):  # absent means false (protobuf default)
            return True, None
        for resp in data.get("responses", []):
            kvs = resp.get("response_range", {}).get("kvs", [])
            if kvs:
                return False, KeyValue.from_json(kvs[0])
        return False, None

    def put_many(self, items: list[tuple[bytes, bytes]], *, lease: int = 0) -> None:
        """Put several keys, up to 100 per transaction (one Raft round each instead of one per key)."""
        chunks: list[list[tuple[bytes, bytes]]] = []
        size = 0
        for item in items:
            # at most 100 operations (etcd's default limit is 128) and 1 MiB of keys and values
            # (its request limit is 1.5 MiB) per transaction
            if not chunks or len(chunks[-1]) == 100 or size + len(item[0]) + len(item[1]) > _TXN_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append(item)
            size += len(item[0]) + len(item[1])
        for chunk in chunks:
            extra = {"lease": str(lease)} if lease else {}
            ops = [{"request_put": {"key": _b64(k), "value": _b64(v), **extra}} for k, v in chunk]
            self._post("/v3/kv/txn", {"compare": [], "success": ops})

    def delete_many(self, keys: list[bytes]) -> None:
        for start in range(0, len(keys), 100):  # etcd's default max operations per txn is 128
            ops = [{"request_delete_range": {"key": _b64(k)}} for k in keys[start : start + 100]]
            self._post("/v3/kv/txn", {"compare": [], "success": ops})

    def compact(self, revision: int) -> None:
        self._post("/v3/kv/compaction", {"revision": str(revision), "physical": False})

    # -- leases ---------------------------------------------------------------------------

    def grant(self, ttl: int) -> int:
        return int(self._post("/v3/lease/grant", {"TTL": str(ttl)})["ID"])

    def keepalive(self, lease: int) -> int:
        """Refresh ``lease``; returns the remaining TTL (0 when the lease is gone)."""
        data = self._post("/v3/lease/keepalive", {"ID": str(lease)})
        return int(data.get("result", {}).get("TTL", 0))

    def revoke(self, lease: int) -> None:
        try:
            self._post("/v3/lease/revoke", {"ID": str(lease)})
        except TransportError:
            self._post("/v3/kv/lease/revoke", {"ID": str(lease)})

    def status(self, endpoint: str) -> dict[str, Any]:
        resp = self.http.post(endpoint.rstrip("/") + "/v3/maintenance/status", json={})
        result: dict[str, Any] = resp.json()
        return result

    def _responsive(self, endpoint: str) -> bool:
        try:
            return self.http.post(endpoint + "/v3/maintenance/status", json={}, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    # -- watch ----------------------------------------------------------------------------

    def watch(
        self,
        prefix: bytes,
        start_revision: int,
        stop: Callable[[], bool],
        *,
        timeout: float = 5.0,
        exact: bool = False,
    ) -> Iterator[tuple[int, list[WatchEvent]]]:
        """Events under ``prefix`` (of that one key if ``exact``) from ``start_revision`` until ``stop()``.

        Yields (revision, events); reconnects on errors. The stream read times
        out every ``timeout`` seconds so ``stop`` is checked even when nothing happens.
        """
        next_rev = start_revision
        body_base = {"key": _b64(prefix)} if exact else {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))}
        n = len(self.endpoints)
        attempt = 0
        failed = 0  # in a row: once every member failed, wait a little longer before each next try
        while not stop():
            if failed >= n:
                time.sleep(min(0.5, 0.05 * (failed - n + 1)))
            url = self.endpoints[(self._preferred + attempt) % n] + "/v3/watch"
            req = {"create_request": {**body_base, "start_revision": str(next_rev)}}
            try:
                with self._watch_http.stream(
                    "POST", url, json=req, timeout=httpx.Timeout(timeout, connect=2.0)
                ) as resp:
                    if resp.status_code != 200:
                        raise TransportError(f"watch HTTP {resp.status_code}", reason="etcd.watch")
                    for line in resp.iter_lines():
                        if stop():
                            return
                        if not line.strip():
                            continue
                        msg = json.loads(line)
                        result = msg.get("result", {})
                        if result.get("compact_revision"):
                            # our start revision was compacted away: the caller must resync by range
                            raise WatchCompacted(int(result["compact_revision"]))
                        events = [
                            WatchEvent(ev.get("type", "PUT"), KeyValue.from_json(ev.get("kv", {})))
                            for ev in result.get("events", [])
                        ]
                        failed = 0
                        if events:
                            rev = max(e.kv.mod_revision for e in events)
                            next_rev = rev + 1
                            yield rev, events
            except httpx.ReadTimeout:
                # a quiet period, or a hung member (a stopped process still accepts connections):
                # stay only if the member answers a cheap request
                if not self._responsive(url.removesuffix("/v3/watch")):
                    attempt += 1
                    failed += 1
                continue
            except (httpx.HTTPError, TransportError, ValueError):
                attempt += 1
                failed += 1
                continue


class WatchCompacted(Exception):
    """The watch's start revision is older than etcd's compaction point."""

    def __init__(self, revision: int) -> None:
        super().__init__(f"watch start revision compacted (now {revision})")
        self.revision = revision
