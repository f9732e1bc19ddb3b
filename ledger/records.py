"""Ledger records: one signed statement each, and their canonical bytes.

A record is a JSON object in RFC 8785 canonical form; it is hashed and signed
exactly as encoded. The entry stored in the ledger (the Merkle leaf) is the
*envelope* ``{"record": {...}, "signatures": [...]}``, also canonical, so the
tree commits to the signatures as well as to the statement.

Record fields common to every type::

    v        1
    type     ISSUE | AMEND | SUSPEND | RESUME | REVOKE | GENESIS
             | AGENCY_ADMIT | AGENCY_ROTATE_KEY | AGENCY_REMOVE | NODE_ADMIT | NODE_REMOVE
    origin   the ledger's origin string (binds the record to one ledger: no cross-ledger replay)
    time     RFC 3339 UTC, second precision ("2026-11-22T03:00:00Z")
    nonce    32 lower-case hex digits, new for each record of a signer
    agency   the signing agency's ID (统一社会信用代码); "" for governance records
    key_id   hex SM3 of the signing key's SPKI; "" for governance records
    payload  the type-specific object, checked by :func:`check_payload`

The model has no I/O: parsing, encoding and signature checks only.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Any, Final

from ledger import reasons
from ledger.canonical import canonical_bytes, parse_canonical, reencode_parsed
from signing.errors import CertLedgerError, InvalidInputError, VerificationError
from signing.sm2 import DEFAULT_SIGNER_ID, SM2PrivateKey, SM2PublicKey
from signing.sm3 import sm3

FORMAT_VERSION: Final = 1
#: an entry (envelope) larger than this is refused: records hold digests and metadata, never files
MAX_ENTRY_BYTES: Final = 64 * 1024
MAX_METADATA_BYTES: Final = 16 * 1024
#: nesting limit of a parsed entry; the metadata object sits 3 levels down (envelope,
#: record, payload), so a record built in code can never be one its own bytes cannot parse as
MAX_ENTRY_DEPTH: Final = 16
MAX_METADATA_DEPTH: Final = MAX_ENTRY_DEPTH - 3
MAX_SIGNATURES: Final = 16
#: the GM/T 0009 ID used for every record signature (the standard's default)
RECORD_SIGNER_ID: Final = DEFAULT_SIGNER_ID

# \Z, not $: "$" also matches before a final newline, so "L1\n" would pass as a licence ID
# distinct from "L1"; re.ASCII: "\d" would otherwise accept any Unicode digit ("２０２６")
_ORIGIN_RE = re.compile(r"^[!-*,-~]{1,255}\Z")
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z", re.ASCII)
_HEX64_RE = re.compile(r"^[0-9a-f]{64}\Z")
_NONCE_RE = re.compile(r"^[0-9a-f]{32}\Z")
_ID_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._:\-]{0,127}\Z")
_REGION_RE = re.compile(r"^\d{2}(\d{2}){0,2}\Z", re.ASCII)
_TYPE_CODE_RE = re.compile(r"^[0-9A-Za-z]{1,32}\Z")  # GB/T 36904 type codes are 21 characters
_FILE_FORMATS: Final = frozenset({"ofd", "pdf"})


class RecordType(StrEnum):
    GENESIS = "GENESIS"
    ISSUE = "ISSUE"
    AMEND = "AMEND"
    SUSPEND = "SUSPEND"
    RESUME = "RESUME"
    REVOKE = "REVOKE"
    AGENCY_ADMIT = "AGENCY_ADMIT"
    AGENCY_ROTATE_KEY = "AGENCY_ROTATE_KEY"
    AGENCY_REMOVE = "AGENCY_REMOVE"
    NODE_ADMIT = "NODE_ADMIT"
    NODE_REMOVE = "NODE_REMOVE"


LICENCE_TYPES: Final = frozenset(
    {RecordType.ISSUE, RecordType.AMEND, RecordType.SUSPEND, RecordType.RESUME, RecordType.REVOKE}
)
GOVERNANCE_TYPES: Final = frozenset(
    {
        RecordType.GENESIS,
        RecordType.AGENCY_ADMIT,
        RecordType.AGENCY_ROTATE_KEY,
        RecordType.AGENCY_REMOVE,
        RecordType.NODE_ADMIT,
        RecordType.NODE_REMOVE,
    }
)


def _bad(message: str, reason: str = reasons.RECORD_MALFORMED) -> InvalidInputError:
    return InvalidInputError(message, reason=reason)


# -- small field parsers -------------------------------------------------------------------


def format_time(t: datetime) -> str:
    if t.tzinfo is None:
        raise ValueError("naive datetime")
    if t.tzinfo is UTC and t.microsecond == 0 and t.year >= 1000:
        # what every parsed time is: isoformat gives the same text ~4x faster than strftime
        return t.isoformat()[:19] + "Z"
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object, what: str = "time") -> datetime:
    if not isinstance(value, str) or not _TIME_RE.match(value):
        raise _bad(f"{what} must be RFC 3339 UTC with seconds, like 2026-11-22T03:00:00Z")
    try:
        # the pattern fixed every digit position: build the datetime directly (strptime is
        # ~25 us, half of parsing an entry); an impossible date still raises ValueError
        return datetime(
            int(value[0:4]), int(value[5:7]), int(value[8:10]),
            int(value[11:13]), int(value[14:16]), int(value[17:19]), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        raise _bad(f"{what} is not a real date/time: {value}") from None


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def new_nonce() -> str:
    return secrets.token_hex(16)


def _str(
    obj: Mapping[str, Any],
    key: str,
    *,
    pattern: re.Pattern[str] | None = None,
    max_len: int = 512,
    optional: bool = False,
    what: str = "",
) -> str:
    value = obj.get(key)
    label = f"{what}{key}"
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise _bad(f"{label} must be a string")
    if len(value) > max_len:
        raise _bad(f"{label} is longer than {max_len} characters", reasons.RECORD_TOO_LARGE)
    if pattern is not None and not pattern.match(value):
        raise _bad(f"{label} has an invalid format: {value[:80]!r}")
    return value


def _int(obj: Mapping[str, Any], key: str, *, minimum: int = 0, what: str = "") -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _bad(f"{what}{key} must be an integer >= {minimum}")
    return value


def _only(obj: Mapping[str, Any], allowed: set[str], what: str) -> None:
    extra = set(obj) - allowed
    if extra:
        raise _bad(f"{what}: unexpected field(s) {', '.join(sorted(extra))}")


def _depth(value: object) -> int:
    """Nesting depth of a JSON value (a scalar is 0); its input is bounded by canonical_bytes."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list | tuple):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _bad(f"{what} must be an object")
    return value


def decode_public_key(b64: object, what: str) -> SM2PublicKey:
    if not isinstance(b64, str):
        raise _bad(f"{what} must be base64 SPKI DER")
    try:
        der = base64.b64decode(b64, validate=True)
    except ValueError:
        raise _bad(f"{what} is not valid base64") from None
    try:
        return SM2PublicKey.from_der(der)
    except CertLedgerError as exc:
        raise _bad(f"{what}: {exc}") from None


def encode_public_key(key: SM2PublicKey) -> str:
    return base64.b64encode(key.to_der()).decode()


# -- payload schemas -----------------------------------------------------------------------


def _check_files(value: object) -> None:
    files = _obj(value, "payload.files")
    if not files:
        raise _bad("payload.files must name at least one file digest")
    for fmt, digest in files.items():
        if fmt not in _FILE_FORMATS:
            raise _bad(f"payload.files: unknown format {fmt!r} (ofd, pdf)")
        if not isinstance(digest, str) or not _HEX64_RE.match(digest):
            raise _bad(f"payload.files.{fmt} must be a lower-case hex SM3 digest")


def _check_agency_key(value: object, what: str) -> None:
    key = _obj(value, what)
    _only(key, {"key_id", "public_key", "not_before", "not_after"}, what)
    pub = decode_public_key(key.get("public_key"), f"{what}.public_key")
    if _str(key, "key_id", pattern=_HEX64_RE, what=f"{what}.") != pub.key_id:
        raise _bad(f"{what}.key_id does not match its public key")
    parse_time(key.get("not_before"), f"{what}.not_before")
    if "not_after" in key:
        parse_time(key["not_after"], f"{what}.not_after")


def check_agency(value: object, what: str = "payload.agency") -> None:
    ag = _obj(value, what)
    _only(ag, {"id", "name", "regions", "types", "authority", "keys"}, what)
    _str(ag, "id", pattern=_ID_RE, what=f"{what}.")
    _str(ag, "name", max_len=200, what=f"{what}.")
    for list_key, pattern in (("regions", _REGION_RE), ("types", _TYPE_CODE_RE)):
        items = ag.get(list_key)
        if not isinstance(items, list) or not items or len(items) > 256:
            raise _bad(f"{what}.{list_key} must be a non-empty list")
        for item in items:
            if not isinstance(item, str) or not (item == "*" or pattern.match(item)):
                raise _bad(f"{what}.{list_key}: invalid entry {item!r}")
    if not isinstance(ag.get("authority"), bool):
        raise _bad(f"{what}.authority must be true or false")
    keys = ag.get("keys")
    if not isinstance(keys, list) or not 1 <= len(keys) <= 8:
        raise _bad(f"{what}.keys must list 1 to 8 keys")
    for i, key in enumerate(keys):
        _check_agency_key(key, f"{what}.keys[{i}]")


def check_node(value: object, what: str = "payload.node") -> None:
    node = _obj(value, what)
    _only(node, {"id", "name", "sm2_public_key", "ed25519_public_key", "endpoint"}, what)
    _str(node, "id", pattern=_ID_RE, what=f"{what}.")
    _str(node, "name", max_len=200, what=f"{what}.")
    decode_public_key(node.get("sm2_public_key"), f"{what}.sm2_public_key")
    ed = _str(node, "ed25519_public_key", max_len=64, what=f"{what}.")
    try:
        if len(base64.b64decode(ed, validate=True)) != 32:
            raise ValueError
    except ValueError:
        raise _bad(f"{what}.ed25519_public_key must be 32 bytes, base64") from None
    _str(node, "endpoint", max_len=300, optional=True, what=f"{what}.")


def _check_genesis(p: Mapping[str, Any]) -> None:
    _only(p, {"agencies", "nodes", "governance", "quorum", "time_window_seconds", "description"}, "GENESIS payload")
    agencies = p.get("agencies")
    nodes = p.get("nodes")
    if not isinstance(agencies, list) or not isinstance(nodes, list) or not nodes:
        raise _bad("GENESIS needs a list of agencies and a non-empty list of nodes")
    for i, ag in enumerate(agencies):
        check_agency(ag, f"payload.agencies[{i}]")
    for i, node in enumerate(nodes):
        check_node(node, f"payload.nodes[{i}]")
    gov = _obj(p.get("governance"), "payload.governance")
    _only(gov, {"authorities", "threshold"}, "payload.governance")
    auths = gov.get("authorities")
    if not isinstance(auths, list) or not auths:
        raise _bad("payload.governance.authorities must be a non-empty list")
    for i, auth in enumerate(auths):
        a = _obj(auth, f"payload.governance.authorities[{i}]")
        _only(a, {"id", "name", "public_key"}, "governance authority")
        _str(a, "id", pattern=_ID_RE, what="authority.")
        _str(a, "name", max_len=200, what="authority.")
        decode_public_key(a.get("public_key"), "authority.public_key")
    threshold = _int(gov, "threshold", minimum=1, what="payload.governance.")
    if threshold > len(auths):
        raise _bad("payload.governance.threshold exceeds the number of authorities")
    quorum = _obj(p.get("quorum"), "payload.quorum")
    _only(quorum, {"threshold"}, "payload.quorum")
    if _int(quorum, "threshold", minimum=1, what="payload.quorum.") > len(nodes):
        raise _bad("payload.quorum.threshold exceeds the number of nodes")
    _int(p, "time_window_seconds", minimum=1)
    _str(p, "description", max_len=1000, optional=True)


def check_payload(rtype: RecordType, payload: Mapping[str, Any], *, entry_size: int | None = None) -> None:
    """Validate the shape of a record's payload for its type (no state involved).

    ``entry_size``: the byte length of the entry the payload was parsed from, if it was.
    The entry parser's own limits then bound the metadata: its canonical bytes are part of
    an entry that either re-encodes exactly (so they are no longer than it) or is refused
    anyway, and its nesting is within the parser's depth limit less the three levels above it.
    """
    lid = {"licence_id"}
    if rtype in (RecordType.ISSUE, RecordType.AMEND):
        allowed = lid | {"type_code", "region", "version", "files", "metadata"}
        if rtype is RecordType.AMEND:
            allowed |= {"reason_text"}
        _only(payload, allowed, f"{rtype} payload")
        _str(payload, "licence_id", pattern=_ID_RE, max_len=128)
        _str(payload, "type_code", pattern=_TYPE_CODE_RE)
        _str(payload, "region", pattern=_REGION_RE)
        version = _int(payload, "version", minimum=1)
        if rtype is RecordType.ISSUE and version != 1:
            raise _bad("ISSUE must carry version 1")
        if rtype is RecordType.AMEND and version < 2:
            raise _bad("AMEND must carry the new version (>= 2)")
        _check_files(payload.get("files"))
        meta = _obj(payload.get("metadata", {}), "payload.metadata")
        if (entry_size is None or entry_size > MAX_METADATA_BYTES) and len(
            canonical_bytes(meta)
        ) > MAX_METADATA_BYTES:
            raise _bad("payload.metadata is larger than 16 KiB", reasons.RECORD_TOO_LARGE)
        if entry_size is None and _depth(meta) > MAX_METADATA_DEPTH:
            raise _bad(f"payload.metadata nests deeper than {MAX_METADATA_DEPTH} levels")
        _str(payload, "reason_text", max_len=1000, optional=True)
    elif rtype in (RecordType.SUSPEND, RecordType.REVOKE):
        _only(payload, lid | {"reason_code", "reason_text"}, f"{rtype} payload")
        _str(payload, "licence_id", pattern=_ID_RE, max_len=128)
        _str(payload, "reason_code", pattern=re.compile(r"^[a-z][a-z0-9_.]{0,63}\Z"))
        _str(payload, "reason_text", max_len=1000)
    elif rtype is RecordType.RESUME:
        _only(payload, lid | {"reason_text"}, "RESUME payload")
        _str(payload, "licence_id", pattern=_ID_RE, max_len=128)
        _str(payload, "reason_text", max_len=1000, optional=True)
    elif rtype is RecordType.GENESIS:
        _check_genesis(payload)
    elif rtype is RecordType.AGENCY_ADMIT:
        _only(payload, {"agency"}, "AGENCY_ADMIT payload")
        check_agency(payload.get("agency"))
    elif rtype is RecordType.AGENCY_ROTATE_KEY:
        _only(payload, {"agency_id", "new_key", "retire_key_id"}, "AGENCY_ROTATE_KEY payload")
        _str(payload, "agency_id", pattern=_ID_RE)
        _check_agency_key(payload.get("new_key"), "payload.new_key")
        _str(payload, "retire_key_id", pattern=_HEX64_RE, optional=True)
    elif rtype is RecordType.AGENCY_REMOVE:
        _only(payload, {"agency_id", "reason_text"}, "AGENCY_REMOVE payload")
        _str(payload, "agency_id", pattern=_ID_RE)
        _str(payload, "reason_text", max_len=1000, optional=True)
    elif rtype is RecordType.NODE_ADMIT:
        _only(payload, {"node"}, "NODE_ADMIT payload")
        check_node(payload.get("node"))
    elif rtype is RecordType.NODE_REMOVE:
        _only(payload, {"node_id"}, "NODE_REMOVE payload")
        _str(payload, "node_id", pattern=_ID_RE)


# -- the record and its envelope -----------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One statement, before signing. Validates its own shape on construction."""

    type: RecordType
    origin: str
    time: datetime
    nonce: str
    agency: str
    key_id: str
    payload: Mapping[str, Any]
    #: set only by the entry parser: see check_payload
    entry_size: InitVar[int | None] = None

    def __post_init__(self, entry_size: int | None) -> None:
        if not isinstance(self.origin, str) or not _ORIGIN_RE.match(self.origin):
            # the origin is also a signed-note key name prefix: no spaces, no '+'
            raise _bad("origin must be 1..255 printable characters without spaces or '+'")
        if not _NONCE_RE.match(self.nonce):
            raise _bad("nonce must be 32 lower-case hex digits")
        if self.type in LICENCE_TYPES:
            if not _ID_RE.match(self.agency):
                raise _bad("agency must be the signing agency's ID")
            if not _HEX64_RE.match(self.key_id):
                raise _bad("key_id must be the hex SM3 of the signing key")
        elif self.agency or self.key_id:
            raise _bad("governance records carry no agency or key_id: authorities sign them")
        check_payload(self.type, self.payload, entry_size=entry_size)

    # -- encoding ---------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "type": str(self.type),
            "origin": self.origin,
            "time": self._time_text,
            "nonce": self.nonce,
            "agency": self.agency,
            "key_id": self.key_id,
            "payload": dict(self.payload),
        }

    @classmethod
    def from_json(cls, obj: object, *, entry_size: int | None = None) -> Record:
        """The record of a JSON object; ``entry_size`` only from the entry parser (check_payload)."""
        rec = _obj(obj, "record")
        _only(rec, {"v", "type", "origin", "time", "nonce", "agency", "key_id", "payload"}, "record")
        if rec.get("v") != FORMAT_VERSION:
            raise _bad(f"record format version must be {FORMAT_VERSION}")
        try:
            rtype = RecordType(str(rec.get("type")))
        except ValueError:
            raise _bad(f"unknown record type {rec.get('type')!r}", reasons.RECORD_UNKNOWN_TYPE) from None
        time_text = rec.get("time")
        record = cls(
            type=rtype,
            origin=_str(rec, "origin", max_len=255),
            time=parse_time(time_text),
            nonce=_str(rec, "nonce", max_len=32),
            agency=_str(rec, "agency", max_len=128),
            key_id=_str(rec, "key_id", max_len=64),
            payload=_obj(rec.get("payload"), "payload"),
            entry_size=entry_size,
        )
        if record.time.year >= 1000:
            # parse_time fixed every digit and format_time writes those years back digit for
            # digit: the text read is the text format_time would write, so keep it
            record.__dict__["_time_text"] = time_text
        return record

    @cached_property
    def _time_text(self) -> str:
        return format_time(self.time)

    @cached_property
    def _signed(self) -> bytes:
        # a frozen record always encodes the same way: encode once
        return canonical_bytes(self.to_json())

    def signed_bytes(self) -> bytes:
        """The canonical bytes that signatures cover."""
        return self._signed

    @cached_property
    def _hash(self) -> str:
        return sm3(self._signed).hex()

    def record_hash(self) -> str:
        """Hex SM3 of the signed bytes: the record's stable identity."""
        return self._hash

    # -- convenience ------------------------------------------------------------------

    @property
    def licence_id(self) -> str:
        value = self.payload.get("licence_id", "")
        return value if isinstance(value, str) else ""


class _ParseMemo:
    """The last successful parses, by their exact bytes: bounded in bytes, oldest dropped first."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: dict[bytes, SignedRecord] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, data: bytes) -> SignedRecord | None:
        return self._items.get(data)  # a single dict read: atomic under the GIL

    def put(self, data: bytes, signed: SignedRecord) -> None:
        with self._lock:
            if data in self._items:
                return
            self._items[data] = signed
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                oldest = next(iter(self._items))
                del self._items[oldest]
                self._bytes -= len(oldest)


#: a few thousand typical entries; a record is parsed again once it has fallen out
_PARSED = _ParseMemo(8 * 1024 * 1024)


@dataclass(frozen=True)
class Signature:
    key_id: str
    sig: bytes  # DER SEQUENCE {r, s}

    def to_json(self) -> dict[str, str]:
        return {"key_id": self.key_id, "sig": base64.b64encode(self.sig).decode()}


@dataclass(frozen=True)
class SignedRecord:
    """A record with its SM2 signatures: what is submitted and what becomes a ledger entry."""

    record: Record
    signatures: tuple[Signature, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not 1 <= len(self.signatures) <= MAX_SIGNATURES:
            raise _bad(f"a record needs 1 to {MAX_SIGNATURES} signatures")
        key_ids = [s.key_id for s in self.signatures]
        if len(set(key_ids)) != len(key_ids):
            raise _bad("a key may sign a record only once")
        if self.record.type in LICENCE_TYPES and key_ids != [self.record.key_id]:
            raise _bad("a licence record carries exactly one signature, by record.key_id")

    def to_json(self) -> dict[str, Any]:
        return {
            "record": self.record.to_json(),
            "signatures": [s.to_json() for s in self.signatures],
        }

    @cached_property
    def _entry(self) -> bytes:
        # RFC 8785 writes the envelope's two members in this order ("record" < "signatures"),
        # so its bytes are the record's signed bytes spliced in: the record is encoded once
        return _envelope(self.record.signed_bytes(), self.signatures, canonical_bytes)

    def entry_bytes(self) -> bytes:
        """Canonical bytes of the envelope: the Merkle leaf data."""
        return self._entry

    @classmethod
    def from_json(cls, obj: object, *, entry_size: int | None = None) -> SignedRecord:
        env = _obj(obj, "signed record")
        _only(env, {"record", "signatures"}, "signed record")
        sigs = env.get("signatures")
        if not isinstance(sigs, list):
            raise _bad("signatures must be a list")
        parsed: list[Signature] = []
        for i, s in enumerate(sigs[: MAX_SIGNATURES + 1]):
            so = _obj(s, f"signatures[{i}]")
            _only(so, {"key_id", "sig"}, f"signatures[{i}]")
            try:
                raw = base64.b64decode(_str(so, "sig", max_len=200), validate=True)
            except ValueError:
                raise _bad(f"signatures[{i}].sig is not valid base64") from None
            parsed.append(Signature(_str(so, "key_id", pattern=_HEX64_RE), raw))
        return cls(Record.from_json(env.get("record"), entry_size=entry_size), tuple(parsed))

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedRecord:
        """Parse an entry strictly: it must be canonical JSON, within size limits.

        The result is a pure function of ``data``: bytes this process parsed successfully a
        moment ago (a cluster node parses a submission when it accepts it, again when the
        leader's block brings it back) are answered from a small memo of the same parse.
        """
        if len(data) > MAX_ENTRY_BYTES:
            raise _bad(f"record is {len(data)} bytes; the limit is {MAX_ENTRY_BYTES}", reasons.RECORD_TOO_LARGE)
        found = _PARSED.get(data)
        if found is not None:
            return found
        try:
            # fast path: the final byte comparison below refuses every non-canonical input
            # (duplicate names included), so the parser's own form checks are redundant here
            signed = cls._from_bytes(data, check_form=False)
        except InvalidInputError:
            # refused: the exact path says why, with the same reason as it always did
            return cls._from_bytes(data, check_form=True)
        _PARSED.put(data, signed)
        return signed

    @classmethod
    def _from_bytes(cls, data: bytes, *, check_form: bool) -> SignedRecord:
        try:
            obj = parse_canonical(data, max_bytes=MAX_ENTRY_BYTES, max_depth=MAX_ENTRY_DEPTH, check_form=check_form)
        except InvalidInputError as exc:
            raise InvalidInputError(str(exc), reason=reasons.RECORD_NOT_CANONICAL) from None
        signed = cls.from_json(obj, entry_size=len(data))
        # canonical JSON is not enough: a value the model normalises ("v": true read as 1,
        # base64 with non-zero pad bits) would give one entry two byte forms and two hashes.
        # The model's JSON holds only parser output and plain str/int fields, which
        # reencode_parsed writes exactly as canonical_bytes does, at C speed; its result
        # becomes the record's cached signed bytes, so the record is encoded once.
        record_bytes = reencode_parsed(signed.record.to_json())
        if _envelope(record_bytes, signed.signatures, _signatures_bytes) != data:
            raise InvalidInputError("record does not re-encode to the same bytes (a field value is not in "
                                    "its canonical form)", reason=reasons.RECORD_NOT_CANONICAL)
        signed.record.__dict__["_signed"] = record_bytes  # the cached_property's slot
        signed.__dict__["_entry"] = data  # equal to what _entry would build: compared just above
        return signed

    def verify_signature_by(self, key: SM2PublicKey) -> None:
        """Verify the signature made with ``key`` (raises VerificationError)."""
        message = self.record.signed_bytes()
        for s in self.signatures:
            if s.key_id == key.key_id:
                try:
                    key.verify(s.sig, message, signer_id=RECORD_SIGNER_ID)
                except CertLedgerError as exc:
                    raise VerificationError(
                        f"signature by key {key.key_id[:16]}… does not verify: {exc}",
                        reason=reasons.SIGNATURE_INVALID,
                    ) from None
                return
        raise VerificationError(f"no signature by key {key.key_id[:16]}…", reason=reasons.SIGNATURE_INVALID)


def _envelope(record_bytes: bytes, signatures: Sequence[Signature], encode: Callable[[Any], bytes]) -> bytes:
    """Canonical bytes of ``{"record": ..., "signatures": [...]}`` around the record's own bytes."""
    return b'{"record":' + record_bytes + b',"signatures":' + encode([s.to_json() for s in signatures]) + b"}"


def _signatures_bytes(signatures: list[dict[str, str]]) -> bytes:
    """Canonical bytes of a signature list, written directly.

    Exact for what SignedRecord.from_json builds: a key_id is 64 lower-case hex digits and a
    sig is base64 (``A-Za-z0-9+/=``), characters RFC 8785 writes as they are, and "key_id"
    sorts before "sig".
    """
    return (
        "[" + ",".join(f'{{"key_id":"{s["key_id"]}","sig":"{s["sig"]}"}}' for s in signatures) + "]"
    ).encode("ascii")


def sign_record(record: Record, keys: Sequence[SM2PrivateKey]) -> SignedRecord:
    """Sign ``record`` with each key (one for licence records, authorities for governance)."""
    message = record.signed_bytes()
    sigs = tuple(Signature(k.public_key.key_id, k.sign(message, signer_id=RECORD_SIGNER_ID)) for k in keys)
    return SignedRecord(record, sigs)
