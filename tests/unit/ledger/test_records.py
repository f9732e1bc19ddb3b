"""Records: the canonical byte form, strict parsing, size limits, signatures and the record hash."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from ledger import reasons
from ledger.canonical import canonical_bytes
from ledger.records import (
    MAX_ENTRY_BYTES,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_SIGNATURES,
    RECORD_SIGNER_ID,
    Record,
    RecordType,
    Signature,
    SignedRecord,
    sign_record,
)
from signing.errors import InvalidInputError, VerificationError

from .builders import (
    AGENCIES,
    ORIGIN,
    T0,
    KeyRing,
    agency_json,
    agency_key_json,
    amend_payload,
    build_genesis,
    issue_payload,
    nonce_for,
    resume_payload,
    revoke_payload,
    suspend_payload,
)

SZ = AGENCIES["SZ"]


def licence(keys: KeyRing, rtype: RecordType, payload: dict[str, Any], *, n: int = 7, key: str = "SZ",
            **fields: Any) -> SignedRecord:
    rec = Record(rtype, fields.pop("origin", ORIGIN), fields.pop("time", T0), fields.pop("nonce", nonce_for(n)),
                 SZ.id, keys[key].public_key.key_id, payload)
    return sign_record(rec, [keys[key]])


def governance(keys: KeyRing, rtype: RecordType, payload: dict[str, Any], signers: tuple[str, ...] = ("auth1",),
               n: int = 9) -> SignedRecord:
    return sign_record(Record(rtype, ORIGIN, T0, nonce_for(n), "", "", payload), [keys[s] for s in signers])


def every_type(keys: KeyRing) -> dict[RecordType, SignedRecord]:
    """One well-formed signed record of each type."""
    return {
        RecordType.GENESIS: build_genesis(keys, authorities=("auth1", "auth2"), threshold=2),
        RecordType.ISSUE: licence(keys, RecordType.ISSUE, issue_payload("L1", "440305")),
        RecordType.AMEND: licence(keys, RecordType.AMEND, amend_payload("L1", 2, "440305")),
        RecordType.SUSPEND: licence(keys, RecordType.SUSPEND, suspend_payload("L1")),
        RecordType.RESUME: licence(keys, RecordType.RESUME, resume_payload("L1")),
        RecordType.REVOKE: licence(keys, RecordType.REVOKE, revoke_payload("L1")),
        RecordType.AGENCY_ADMIT: governance(keys, RecordType.AGENCY_ADMIT,
                                            {"agency": agency_json(AGENCIES["NEW"], keys["NEW"])}),
        RecordType.AGENCY_ROTATE_KEY: governance(keys, RecordType.AGENCY_ROTATE_KEY, {
            "agency_id": SZ.id, "new_key": agency_key_json(keys["SZ-2"], T0),
            "retire_key_id": keys["SZ"].public_key.key_id}),
        RecordType.AGENCY_REMOVE: governance(keys, RecordType.AGENCY_REMOVE, {"agency_id": SZ.id}),
        RecordType.NODE_ADMIT: governance(keys, RecordType.NODE_ADMIT, {"node": keys.node.node_json("第二节点")}),
        RecordType.NODE_REMOVE: governance(keys, RecordType.NODE_REMOVE, {"node_id": "node-2"}),
    }


def test_every_type_is_covered(keys: KeyRing) -> None:
    assert set(every_type(keys)) == set(RecordType)


@pytest.mark.parametrize("rtype", list(RecordType), ids=str)
def test_canonical_round_trip(keys: KeyRing, rtype: RecordType) -> None:
    signed = every_type(keys)[rtype]
    data = signed.entry_bytes()
    again = SignedRecord.from_bytes(data)
    assert again == signed
    assert again.entry_bytes() == data
    assert again.record.signed_bytes() == signed.record.signed_bytes()
    assert again.record.record_hash() == signed.record.record_hash()
    assert Record.from_json(signed.record.to_json()) == signed.record
    # the envelope is the record plus its signatures, nothing else
    assert json.loads(data) == {"record": signed.record.to_json(),
                                "signatures": [s.to_json() for s in signed.signatures]}
    for sig in again.signatures:
        key = next(k for k in (keys["auth1"], keys["auth2"], keys["SZ"]) if k.public_key.key_id == sig.key_id)
        again.verify_signature_by(key.public_key)


def test_canonical_form_is_rfc8785(keys: KeyRing) -> None:
    """Independent check: sorted keys, no whitespace, UTF-8 literals (all member names are ASCII)."""
    signed = every_type(keys)[RecordType.ISSUE]
    expected = json.dumps(signed.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert signed.entry_bytes() == expected
    assert "营业执照".encode() in expected


# -- strict parsing ------------------------------------------------------------------------


def _good(keys: KeyRing) -> bytes:
    return every_type(keys)[RecordType.ISSUE].entry_bytes()


def _swap_first_members(data: bytes) -> bytes:
    obj = json.loads(data)
    rec = obj["record"]
    reordered = {"type": rec["type"], **{k: v for k, v in rec.items() if k != "type"}}
    return json.dumps({"signatures": obj["signatures"], "record": reordered}, separators=(",", ":"),
                      ensure_ascii=False).encode()


NON_CANONICAL: dict[str, Callable[[bytes], bytes]] = {
    "indented": lambda d: json.dumps(json.loads(d), indent=1, sort_keys=True, ensure_ascii=False).encode(),
    "space-after-separators": lambda d: json.dumps(json.loads(d), sort_keys=True, ensure_ascii=False).encode(),
    "leading-space": lambda d: b" " + d,
    "trailing-newline": lambda d: d + b"\n",
    "crlf": lambda d: d + b"\r\n",
    "key-order": _swap_first_members,
    "duplicate-key": lambda d: d.replace(b'"v":1', b'"v":1,"v":1', 1),
    "escaped-non-ascii": lambda d: d.replace("营业执照".encode(), b"\\u8425\\u4e1a\\u6267\\u7167"),
    "escaped-slash": lambda d: d.replace(b"example/licences", b"example\\/licences"),
    "float-version": lambda d: d.replace(b'"v":1', b'"v":1.0', 1),
    "exponent-version": lambda d: d.replace(b'"v":1', b'"v":1e0', 1),
    "leading-zero": lambda d: d.replace(b'"version":1', b'"version":01', 1),
    "byte-order-mark": lambda d: b"\xef\xbb\xbf" + d,
    "truncated": lambda d: d[:-1],
    "empty": lambda d: b"",
    "not-utf8": lambda d: d.replace("营".encode(), b"\xff\xfe", 1),
    "nested-too-deep": lambda d: b"[" * 20 + b"]" * 20,
    "huge-integer": lambda d: d.replace(b'"version":1', b'"version":9007199254740993', 1),
    # canonical JSON, but a value the model reads as another one: "v": true == 1
    "boolean-version": lambda d: d.replace(b'"v":1', b'"v":true', 1),
}


@pytest.mark.parametrize("mutate", list(NON_CANONICAL.values()), ids=list(NON_CANONICAL))
def test_parse_rejects_non_canonical_bytes(keys: KeyRing, mutate: Callable[[bytes], bytes]) -> None:
    good = _good(keys)
    bad = mutate(good)
    assert bad != good
    with pytest.raises(InvalidInputError) as info:
        SignedRecord.from_bytes(bad)
    assert info.value.reason == reasons.RECORD_NOT_CANONICAL, info.value


def test_duplicate_key_is_named(keys: KeyRing) -> None:
    with pytest.raises(InvalidInputError, match="twice"):
        SignedRecord.from_bytes(NON_CANONICAL["duplicate-key"](_good(keys)))


def test_signature_base64_has_one_spelling(keys: KeyRing) -> None:
    """A signature whose base64 has non-zero pad bits decodes to the same bytes: refused."""
    record = every_type(keys)[RecordType.ISSUE].record
    # DER signatures are 70-72 bytes; take one whose base64 ends in padding (so it has pad bits)
    signed = next(s for s in (sign_record(record, [keys["SZ"]]) for _ in range(200)) if len(s.signatures[0].sig) % 3)
    obj = signed.to_json()
    sig = obj["signatures"][0]["sig"]
    stem = sig.rstrip("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    # the lowest bit of the last character before the padding is a pad bit
    variant = stem[:-1] + alphabet[alphabet.index(stem[-1]) ^ 1] + sig[len(stem):]
    assert variant != sig and base64.b64decode(variant) == base64.b64decode(sig)
    SignedRecord.from_bytes(canonical_bytes(obj))
    obj["signatures"][0]["sig"] = variant
    with pytest.raises(InvalidInputError) as info:
        SignedRecord.from_bytes(canonical_bytes(obj))
    assert info.value.reason == reasons.RECORD_NOT_CANONICAL


def _with(keys: KeyRing, edit: Callable[[dict[str, Any]], None]) -> bytes:
    obj = every_type(keys)[RecordType.ISSUE].to_json()
    edit(obj)
    return canonical_bytes(obj)


UNKNOWN_FIELDS: dict[str, Callable[[dict[str, Any]], None]] = {
    "envelope": lambda o: o.update(comment="x"),
    "record": lambda o: o["record"].update(extra="x"),
    "payload": lambda o: o["record"]["payload"].update(colour="red"),
    "signature": lambda o: o["signatures"][0].update(alg="sm2"),
    "missing-payload": lambda o: o["record"].pop("payload"),
    "missing-nonce": lambda o: o["record"].pop("nonce"),
    "signatures-not-a-list": lambda o: o.update(signatures={"0": o["signatures"][0]}),
    "record-not-an-object": lambda o: o.update(record=[1]),
    "version-2": lambda o: o["record"].update(v=2),
}


@pytest.mark.parametrize("edit", list(UNKNOWN_FIELDS.values()), ids=list(UNKNOWN_FIELDS))
def test_parse_rejects_unknown_or_missing_fields(keys: KeyRing, edit: Callable[[dict[str, Any]], None]) -> None:
    with pytest.raises(InvalidInputError) as info:
        SignedRecord.from_bytes(_with(keys, edit))
    assert info.value.reason == reasons.RECORD_MALFORMED


def test_unknown_record_type(keys: KeyRing) -> None:
    with pytest.raises(InvalidInputError) as info:
        SignedRecord.from_bytes(_with(keys, lambda o: o["record"].update(type="TRANSFER")))
    assert info.value.reason == reasons.RECORD_UNKNOWN_TYPE


BAD_TIMES = [
    "2026-03-02T09:00:00+00:00",
    "2026-03-02T09:00:00.000Z",
    "2026-03-02T09:00Z",
    "2026-03-02 09:00:00Z",
    "2026-03-02t09:00:00z",
    "2026-03-02T09:00:00",
    "2026-3-2T09:00:00Z",
    "20260302T090000Z",
    "2026-02-30T09:00:00Z",
    "2026-03-02T24:00:00Z",
    "2026-03-02T09:00:60Z",
    "2026-03-02T09:00:00Z\n",
    "２０２６-03-02T09:00:00Z",  # full-width digits are digits to Unicode, not to RFC 3339
    "",
    1772442000,
    None,
]


@pytest.mark.parametrize("value", BAD_TIMES, ids=repr)
def test_parse_rejects_bad_time(keys: KeyRing, value: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        SignedRecord.from_bytes(_with(keys, lambda o: o["record"].update(time=value)))
    assert info.value.reason == reasons.RECORD_MALFORMED


BAD_NONCES = ["", "0" * 31, "0" * 33, "A" * 32, "g" * 32, "0" * 31 + "\n", " " + "0" * 31, "０" * 32, 7]


@pytest.mark.parametrize("value", BAD_NONCES, ids=repr)
def test_parse_rejects_bad_nonce(keys: KeyRing, value: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        SignedRecord.from_bytes(_with(keys, lambda o: o["record"].update(nonce=value)))
    assert info.value.reason in (reasons.RECORD_MALFORMED, reasons.RECORD_TOO_LARGE)


@pytest.mark.parametrize("field,value", [
    ("licence_id", "L1\n"),  # a look-alike of "L1": "$" in a regex would let it through
    ("licence_id", "L 1"),
    ("licence_id", ""),
    ("region", "４４０３０５"),
    ("region", "4403051"),
    ("type_code", "10-01"),
    ("version", 2),
    ("version", True),
    ("version", "1"),
    ("files", {}),
    ("files", {"docx": "0" * 64}),
    ("files", {"pdf": "0" * 63}),
    ("files", {"pdf": "A" * 64}),
    ("metadata", "营业执照"),
], ids=repr)
def test_payload_schema(keys: KeyRing, field: str, value: object) -> None:
    payload = issue_payload("L1", "440305")
    payload[field] = value
    with pytest.raises(InvalidInputError) as info:
        licence(keys, RecordType.ISSUE, payload)
    assert info.value.reason == reasons.RECORD_MALFORMED


@pytest.mark.parametrize("fields", [
    {"origin": "has space/log"},
    {"origin": "plus+sign/log"},
    {"origin": "x" * 256},
    {"origin": "log\n"},
    {"nonce": "0" * 32 + "\n"},
], ids=repr)
def test_record_fields(keys: KeyRing, fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError) as info:
        licence(keys, RecordType.ISSUE, issue_payload("L1", "440305"), **fields)
    assert info.value.reason == reasons.RECORD_MALFORMED


def test_governance_record_carries_no_agency(keys: KeyRing) -> None:
    with pytest.raises(InvalidInputError) as info:
        Record(RecordType.AGENCY_REMOVE, ORIGIN, T0, nonce_for(1), SZ.id, "", {"agency_id": SZ.id})
    assert info.value.reason == reasons.RECORD_MALFORMED


# -- sizes -----------------------------------------------------------------------------------


def test_metadata_limit(keys: KeyRing) -> None:
    payload = issue_payload("L1", "440305")
    overhead = len(canonical_bytes({"note": ""}))
    payload["metadata"] = {"note": "x" * (MAX_METADATA_BYTES - overhead)}
    fits = licence(keys, RecordType.ISSUE, payload)  # exactly at the limit: accepted
    assert SignedRecord.from_bytes(fits.entry_bytes()) == fits
    payload["metadata"] = {"note": "x" * (MAX_METADATA_BYTES - overhead + 1)}
    with pytest.raises(InvalidInputError) as info:
        licence(keys, RecordType.ISSUE, payload)
    assert info.value.reason == reasons.RECORD_TOO_LARGE
    # the same through the parser (the signature is never reached)
    big = _with(keys, lambda o: o["record"]["payload"].update(metadata={"note": "好" * MAX_METADATA_BYTES}))
    with pytest.raises(InvalidInputError) as info:
        SignedRecord.from_bytes(big)
    assert info.value.reason == reasons.RECORD_TOO_LARGE


def test_metadata_nesting_limit_matches_the_parser(keys: KeyRing) -> None:
    """A record built in code is never one its own entry bytes cannot parse back."""

    def nested(depth: int) -> dict[str, Any]:
        value: dict[str, Any] = {}
        for _ in range(depth - 1):
            value = {"a": value}
        return value

    payload = issue_payload("L1", "440305", metadata=nested(MAX_METADATA_DEPTH))
    deepest = licence(keys, RecordType.ISSUE, payload)
    assert SignedRecord.from_bytes(deepest.entry_bytes()) == deepest
    payload["metadata"] = nested(MAX_METADATA_DEPTH + 1)
    with pytest.raises(InvalidInputError) as info:
        licence(keys, RecordType.ISSUE, payload)
    assert info.value.reason == reasons.RECORD_MALFORMED


def test_parsed_metadata_limits_follow_from_the_entry_limits(keys: KeyRing) -> None:
    """The parser skips the metadata's own size and depth checks where its limits imply them."""

    def nested(depth: int) -> dict[str, Any]:
        value: dict[str, Any] = {}
        for _ in range(depth - 1):
            value = {"a": value}
        return value

    # one level too deep: the parser's depth limit refuses the entry before the model sees it
    deep = _with(keys, lambda o: o["record"]["payload"].update(metadata=nested(MAX_METADATA_DEPTH + 1)))
    with pytest.raises(InvalidInputError):
        SignedRecord.from_bytes(deep)
    # an entry above the metadata limit gets the exact size check: just under it parses,
    # one byte over is refused (the signature is never reached)
    overhead = len(canonical_bytes({"note": ""}))
    just = "好" * ((MAX_METADATA_BYTES - overhead) // 3)
    fits = _with(keys, lambda o: o["record"]["payload"].update(metadata={"note": just}))
    assert len(fits) > MAX_METADATA_BYTES
    assert SignedRecord.from_bytes(fits).record.payload["metadata"] == {"note": just}
    pad = MAX_METADATA_BYTES - overhead - len(just.encode()) + 1
    over = _with(keys, lambda o: o["record"]["payload"].update(metadata={"note": just + "x" * pad}))
    with pytest.raises(InvalidInputError) as info:
        SignedRecord.from_bytes(over)
    assert info.value.reason == reasons.RECORD_TOO_LARGE


def test_parsed_record_keeps_the_time_text_it_read(keys: KeyRing) -> None:
    signed = every_type(keys)[RecordType.ISSUE]
    again = SignedRecord.from_bytes(signed.entry_bytes())
    assert again.record.to_json()["time"] == signed.record.to_json()["time"]
    assert again.record.time == signed.record.time
    # a record built from the parsed one encodes the same way
    assert Record.from_json(again.record.to_json()).signed_bytes() == signed.record.signed_bytes()


def test_multi_signature_entry_round_trips(keys: KeyRing) -> None:
    """The signature list of a parsed entry is compared in its canonical spelling."""
    signed = every_type(keys)[RecordType.GENESIS]
    assert len(signed.signatures) == 2
    data = signed.entry_bytes()
    assert SignedRecord.from_bytes(data) == signed
    swapped = json.loads(data)
    swapped["signatures"].reverse()
    # the list order is part of the bytes: a reordered list is another entry, parsed as such
    again = SignedRecord.from_bytes(canonical_bytes(swapped))
    assert again.signatures == tuple(reversed(signed.signatures))
    assert again.entry_bytes() == canonical_bytes(swapped)


@pytest.mark.parametrize("field,limit", [("licence_id", 128), ("reason_text", 1000)])
def test_oversized_strings(keys: KeyRing, field: str, limit: int) -> None:
    payload = revoke_payload("L1")
    payload[field] = "a" * (limit + 1)
    with pytest.raises(InvalidInputError) as info:
        licence(keys, RecordType.REVOKE, payload)
    assert info.value.reason == reasons.RECORD_TOO_LARGE


def test_entry_size_limit() -> None:
    with pytest.raises(InvalidInputError) as info:
        SignedRecord.from_bytes(b"{" + b" " * MAX_ENTRY_BYTES + b"}")
    assert info.value.reason == reasons.RECORD_TOO_LARGE


# -- signatures ------------------------------------------------------------------------------


def test_signature_count_limits(keys: KeyRing) -> None:
    record = every_type(keys)[RecordType.AGENCY_REMOVE].record
    many = [keys[f"extra{i}"] for i in range(MAX_SIGNATURES + 1)]
    assert len(sign_record(record, many[:MAX_SIGNATURES]).signatures) == MAX_SIGNATURES
    with pytest.raises(InvalidInputError) as info:
        sign_record(record, many)
    assert info.value.reason == reasons.RECORD_MALFORMED
    with pytest.raises(InvalidInputError):
        SignedRecord(record, ())
    # and through the parser
    obj = sign_record(record, many[:MAX_SIGNATURES]).to_json()
    obj["signatures"].append(sign_record(record, [many[-1]]).signatures[0].to_json())
    with pytest.raises(InvalidInputError) as info:
        SignedRecord.from_bytes(canonical_bytes(obj))
    assert info.value.reason == reasons.RECORD_MALFORMED


def test_duplicate_signer(keys: KeyRing) -> None:
    record = every_type(keys)[RecordType.AGENCY_REMOVE].record
    with pytest.raises(InvalidInputError, match="only once") as info:
        sign_record(record, [keys["auth1"], keys["auth1"]])
    assert info.value.reason == reasons.RECORD_MALFORMED
    obj = sign_record(record, [keys["auth1"]]).to_json()
    obj["signatures"] *= 2
    with pytest.raises(InvalidInputError):
        SignedRecord.from_bytes(canonical_bytes(obj))


def test_licence_record_has_exactly_its_own_signature(keys: KeyRing) -> None:
    signed = every_type(keys)[RecordType.ISSUE]
    auth1 = keys["auth1"]
    extra = Signature(auth1.public_key.key_id, auth1.sign(signed.record.signed_bytes(), signer_id=RECORD_SIGNER_ID))
    with pytest.raises(InvalidInputError):
        SignedRecord(signed.record, (*signed.signatures, extra))
    with pytest.raises(InvalidInputError):
        SignedRecord(signed.record, (extra,))


def test_signature_verification(keys: KeyRing) -> None:
    signed = every_type(keys)[RecordType.ISSUE]
    signed.verify_signature_by(keys["SZ"].public_key)
    with pytest.raises(VerificationError) as info:
        signed.verify_signature_by(keys["GZ"].public_key)  # no signature by that key
    assert info.value.reason == reasons.SIGNATURE_INVALID
    forged = keys["GZ"].sign(signed.record.signed_bytes(), signer_id=RECORD_SIGNER_ID)
    bad = replace(signed, signatures=(Signature(signed.signatures[0].key_id, forged),))
    with pytest.raises(VerificationError) as info:
        bad.verify_signature_by(keys["SZ"].public_key)
    assert info.value.reason == reasons.SIGNATURE_INVALID
    garbage = replace(signed, signatures=(Signature(signed.signatures[0].key_id, b"\x30\x00"),))
    with pytest.raises(VerificationError):
        garbage.verify_signature_by(keys["SZ"].public_key)
    # another signer ID is another signature (GM/T 0009 Z value)
    other_id = keys["SZ"].sign(signed.record.signed_bytes(), signer_id=b"certledger")
    with pytest.raises(VerificationError):
        replace(signed, signatures=(Signature(signed.signatures[0].key_id, other_id),)).verify_signature_by(
            keys["SZ"].public_key)


# -- the record hash -------------------------------------------------------------------------


def test_record_hash_stability(keys: KeyRing) -> None:
    signed = every_type(keys)[RecordType.ISSUE]
    h = signed.record.record_hash()
    # SM3 of the signed bytes, computed here with OpenSSL's SM3 over an independent JSON encoding
    independent = json.dumps(signed.record.to_json(), sort_keys=True, separators=(",", ":"),
                             ensure_ascii=False).encode()
    assert h == hashlib.new("sm3", independent).hexdigest()
    # the same record built again, parsed back, or signed by other keys keeps its hash
    rebuilt = licence(keys, RecordType.ISSUE, issue_payload("L1", "440305"))
    assert rebuilt.record.record_hash() == h
    assert SignedRecord.from_bytes(signed.entry_bytes()).record.record_hash() == h
    # SM2 signatures are randomised: the envelope (the leaf) differs, the record hash does not
    assert rebuilt.entry_bytes() != signed.entry_bytes()
    gov = every_type(keys)[RecordType.AGENCY_REMOVE].record
    assert sign_record(gov, [keys["auth1"]]).record.record_hash() == sign_record(
        gov, [keys["auth2"], keys["auth3"]]).record.record_hash() == gov.record_hash()
    # any field changes it
    changed = {
        licence(keys, RecordType.ISSUE, issue_payload("L1", "440305"), n=8).record.record_hash(),
        licence(keys, RecordType.ISSUE, issue_payload("L2", "440305")).record.record_hash(),
        licence(keys, RecordType.ISSUE, issue_payload("L1", "440305"), time=T0.replace(second=1)).record.record_hash(),
        licence(keys, RecordType.ISSUE, issue_payload("L1", "440305"), origin="x.example/log").record.record_hash(),
        licence(keys, RecordType.ISSUE, issue_payload("L1", "440305"), key="SZ-2").record.record_hash(),
    }
    assert h not in changed and len(changed) == 5
