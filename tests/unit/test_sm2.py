"""SM2: the GB/T 32918.5 Annex A vector, both backends against each other, keys, and every
way a signature or key can be wrong (each must raise the project's error with its reason)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from signing import der
from signing.errors import CertLedgerError, CryptoBackendError, InvalidInputError, VerificationError
from signing.sm2 import (
    DEFAULT_SIGNER_ID,
    SM2PrivateKey,
    SM2PublicKey,
    curve,
    decode_der,
    decode_raw,
    der_to_raw,
    encode_der,
    encoding,
    load_public_key,
    raw_to_der,
)
from signing.sm2.backends import SM2Backend, available, get_backend, self_test
from signing.sm2.backends.reference import sign_digest, verify_digest
from signing.sm2.za import MAX_SIGNER_ID_BYTES, message_digest, z_a
from signing.sm3 import sm3

_ANNEX = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "sm2" / "gbt32918_5_annex_a_signature.json").read_text(
        encoding="utf-8"
    )
)
D = int(_ANNEX["private_key_hex"], 16)
PUB = (int(_ANNEX["public_key_x_hex"], 16), int(_ANNEX["public_key_y_hex"], 16))
ID = _ANNEX["signer_id_ascii"].encode()
MSG = _ANNEX["message_ascii"].encode()
K = int(_ANNEX["k_hex"], 16)
R = int(_ANNEX["r_hex"], 16)
S = int(_ANNEX["s_hex"], 16)
N = curve.N

BACKEND_NAMES = ["libcrypto", "reference"]
NON_ASCII_ID = "北京市市场监督管理局".encode()


@pytest.fixture(params=BACKEND_NAMES)
def backend(request: pytest.FixtureRequest) -> SM2Backend:
    return get_backend(request.param)


@pytest.fixture(scope="module")
def key() -> SM2PrivateKey:
    return SM2PrivateKey.generate()


def _raises(exc_type: type[CertLedgerError], reason: str, fn: Callable[[], object]) -> CertLedgerError:
    with pytest.raises(exc_type) as info:
        fn()
    assert info.value.reason == reason, f"reason {info.value.reason!r} != {reason!r}: {info.value}"
    assert str(info.value), "error without a message"
    return info.value


# -- GB/T 32918.5-2017 Annex A ----------------------------------------------------------


def test_annex_public_key_is_derived_from_d() -> None:
    assert curve.base_mult(D) == PUB
    assert SM2PrivateKey(D).public_key.point == PUB


def test_annex_intermediate_values() -> None:
    assert z_a(ID, PUB).hex().upper() == _ANNEX["z_a_hex"]
    assert message_digest(MSG, ID, PUB) == int(_ANNEX["e_hex"], 16)
    assert curve.base_mult(K) == (int(_ANNEX["kg_x_hex"], 16), int(_ANNEX["kg_y_hex"], 16))


def test_annex_fixed_k_signature_is_reproduced() -> None:
    e = message_digest(MSG, ID, PUB)
    assert sign_digest(D, e, K) == (R, S)
    assert verify_digest(PUB, e, R, S)
    assert not verify_digest(PUB, e + 1, R, S)


def test_annex_signature_verifies_with_each_backend(backend: SM2Backend) -> None:
    pub = SM2PublicKey(*PUB)
    pub.verify_rs(R, S, MSG, signer_id=ID, backend=backend)
    pub.verify(encode_der(R, S), MSG, signer_id=ID, backend=backend)
    pub.verify_raw(R.to_bytes(32, "big") + S.to_bytes(32, "big"), MSG, signer_id=ID, backend=backend)
    # the Annex ID is GM/T 0009's default, so the default must verify too
    pub.verify(encode_der(R, S), MSG, backend=backend)


def test_annex_signature_fails_with_other_id_or_message(backend: SM2Backend) -> None:
    pub = SM2PublicKey(*PUB)
    sig = encode_der(R, S)
    _raises(
        VerificationError, "sig.invalid", lambda: pub.verify(sig, MSG, signer_id=b"1234567812345679", backend=backend)
    )
    _raises(VerificationError, "sig.invalid", lambda: pub.verify(sig, b"message digesT", signer_id=ID, backend=backend))
    _raises(VerificationError, "sig.invalid", lambda: pub.verify_rs(R, S - 1, MSG, signer_id=ID, backend=backend))


def test_annex_der_encoding() -> None:
    # both r and s have the top bit set, so each INTEGER carries a 0x00: 2 + 2 * 35 bytes
    sig = encode_der(R, S)
    assert len(sig) == 72
    assert sig.hex().startswith("3046022100f5a03b06")
    assert decode_der(sig) == (R, S)


# -- backends -------------------------------------------------------------------------


def test_both_backends_available_and_self_tested(backend: SM2Backend) -> None:
    assert available() == BACKEND_NAMES
    self_test(backend)
    assert get_backend(backend.name) is backend  # cached: self-test runs once


def test_backend_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTLEDGER_SM2_BACKEND", "reference")
    assert get_backend().name == "reference"
    monkeypatch.delenv("CERTLEDGER_SM2_BACKEND")
    assert get_backend().name == "libcrypto"


def test_unknown_backend_is_a_crypto_backend_error() -> None:
    err = _raises(CryptoBackendError, "crypto.backend", lambda: get_backend("gmssl"))
    assert "unknown SM2 backend 'gmssl'" in str(err)


class _FakeHandle:
    """A deliberately broken backend: shows that self_test refuses what it must refuse."""

    def __init__(self, verdict: bool | None, sig: tuple[int, int]) -> None:
        self.verdict, self.sig = verdict, sig
        self._ref = get_backend("reference").load_public(PUB)

    def verify(self, message: bytes, signer_id: bytes, r: int, s: int) -> bool:
        if self.verdict is None:  # honest verification, dishonest signing
            return self._ref.verify(message, signer_id, r, s)
        return self.verdict

    def sign(self, message: bytes, signer_id: bytes) -> tuple[int, int]:
        return self.sig


class _FakeBackend:
    def __init__(self, name: str, verdict: bool | None, sig: tuple[int, int] = (1, 1)) -> None:
        self.name = name
        self._handle = _FakeHandle(verdict, sig)

    def load_private(self, d: int, public_point: tuple[int, int]) -> _FakeHandle:
        return self._handle

    def load_public(self, public_point: tuple[int, int]) -> _FakeHandle:
        return self._handle


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        (False, "rejects the Annex A signature"),
        (True, "accepts a tampered message"),
        (None, "signature fails reference check"),  # signs "self-test" with the Annex (r, s)
    ],
)
def test_self_test_refuses_a_broken_backend(verdict: bool | None, expected: str) -> None:
    with pytest.raises(CryptoBackendError, match=expected):
        self_test(_FakeBackend("broken", verdict, (R, S)))


def test_reference_verify_digest_range_checks() -> None:
    e = message_digest(MSG, ID, PUB)
    for r, s in [(0, S), (R, 0), (N, S), (R, N), (R + N, S), (N - S, S)]:  # last: t = 0
        assert not verify_digest(PUB, e, r, s), (r, s)


def test_sign_digest_redraws_on_degenerate_k() -> None:
    # k with r + k = n must be rejected (GB/T 32918.2 §6.1 A5)
    e = message_digest(MSG, ID, PUB)
    x1 = curve.base_mult(K)
    assert x1 is not None
    assert sign_digest(D, (N - K - x1[0]) % N, K) is None
    assert sign_digest(D, e, K) is not None


# -- keys ------------------------------------------------------------------------------


def test_encrypted_pem_round_trip(key: SM2PrivateKey) -> None:
    pem = key.to_pem(b"pass phrase")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert all(len(line) <= 64 for line in pem.splitlines())
    loaded = SM2PrivateKey.from_pem(pem, b"pass phrase")
    assert loaded.private_scalar() == key.private_scalar()
    assert loaded.public_key == key.public_key


def test_plain_pem_and_der_round_trip(key: SM2PrivateKey) -> None:
    pem = key.to_pem(None)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert SM2PrivateKey.from_pem(pem).private_scalar() == key.private_scalar()
    assert SM2PrivateKey.from_der(key.to_der()).private_scalar() == key.private_scalar()
    # SEC1 ECPrivateKey, as "EC PRIVATE KEY" (older tools) or "SM2 PRIVATE KEY" (OpenSSL 3)
    ec_private = der.children(der.parse_one(key.to_der()))[2].value
    for label in ("EC PRIVATE KEY", "SM2 PRIVATE KEY"):
        loaded = SM2PrivateKey.from_pem(encoding.pem_encode(label, ec_private))
        assert loaded.private_scalar() == key.private_scalar()


def test_private_key_repr_hides_the_scalar(key: SM2PrivateKey) -> None:
    assert f"{key.private_scalar():x}" not in repr(key)
    assert key.public_key.key_id[:16] in repr(key)


def test_public_key_encodings(key: SM2PrivateKey) -> None:
    pub = key.public_key
    raw = pub.to_bytes()
    assert len(raw) == 65 and raw[0] == 4
    x = raw[1:33]
    compressed = bytes([2 + (pub.y & 1)]) + x
    for data in (raw, compressed, pub.to_der(), pub.to_pem(), b"  \n" + pub.to_pem()):
        assert load_public_key(data) == pub
    assert SM2PublicKey.from_bytes(compressed) == pub
    assert SM2PublicKey.from_der(pub.to_der()) == pub
    assert SM2PublicKey.from_pem(pub.to_pem()) == pub
    assert hash(SM2PublicKey.from_bytes(raw)) == hash(pub)
    assert pub != SM2PrivateKey.generate().public_key
    # key ID: hex SM3 of the SPKI DER
    assert pub.key_id == sm3(pub.to_der()).hex()
    assert len(pub.key_id) == 64


def test_spki_is_what_openssl_writes(key: SM2PrivateKey) -> None:
    # id-ecPublicKey + sm2 curve OID, uncompressed point: the fixed 27-byte prefix of SM2 SPKI
    assert key.public_key.to_der()[:27].hex() == ("3059301306072a8648ce3d020106082a811ccf5501822d03420004")


def test_spki_with_curve_oid_as_algorithm_is_accepted(key: SM2PrivateKey) -> None:
    # some Chinese toolkits put the curve OID itself in the AlgorithmIdentifier
    spki = der.sequence(der.sequence(der.oid("1.2.156.10197.1.301")), der.bit_string(key.public_key.to_bytes()))
    assert SM2PublicKey.from_der(spki) == key.public_key


@pytest.mark.parametrize("d", [0, N - 1, N, N + 5, -1])
def test_private_scalar_out_of_range(d: int) -> None:
    err = _raises(InvalidInputError, "key.malformed", lambda: SM2PrivateKey(d))
    assert "[1, n-2]" in str(err)


def test_private_scalar_bounds_accepted() -> None:
    assert SM2PrivateKey(1).public_key.point == (curve.GX, curve.GY)
    SM2PrivateKey(N - 2)


def test_private_key_with_foreign_public_key(key: SM2PrivateKey) -> None:
    other = SM2PrivateKey.generate().public_key
    _raises(InvalidInputError, "key.mismatch", lambda: SM2PrivateKey(key.private_scalar(), other))
    forged = encoding.pkcs8_der(key.private_scalar(), other.point)
    _raises(InvalidInputError, "key.mismatch", lambda: SM2PrivateKey.from_der(forged))


def test_generated_keys_differ() -> None:
    assert len({SM2PrivateKey.generate().private_scalar() for _ in range(8)}) == 8


# -- signing and encodings -------------------------------------------------------------


def test_sign_and_verify_each_backend(key: SM2PrivateKey, backend: SM2Backend) -> None:
    sig = key.sign(b"licence", signer_id=ID, backend=backend)
    assert decode_der(sig) and encode_der(*decode_der(sig)) == sig  # strict DER, re-encodes
    key.public_key.verify(sig, b"licence", signer_id=ID, backend=backend)
    raw = key.sign_raw(b"licence", backend=backend)
    assert len(raw) == 64
    key.public_key.verify_raw(raw, b"licence", backend=backend)
    assert der_to_raw(raw_to_der(raw)) == raw
    assert raw_to_der(der_to_raw(sig)) == sig


def test_signatures_are_randomized(key: SM2PrivateKey, backend: SM2Backend) -> None:
    assert key.sign(b"m", backend=backend) != key.sign(b"m", backend=backend)


# -- differential: each backend verifies the other's signatures ---------------------------


def _id_cases(rng: random.Random) -> list[bytes]:
    return [
        DEFAULT_SIGNER_ID,
        b"A",  # 1 byte
        b"\x00",
        NON_ASCII_ID,
        bytes(rng.randrange(256) for _ in range(MAX_SIGNER_ID_BYTES)),  # the longest ENTL allows
        rng.randbytes(rng.randint(1, 100)),
    ]


def _message_cases(rng: random.Random) -> list[bytes]:
    return [b"", b"x", rng.randbytes(1 << 20), *(rng.randbytes(rng.randint(0, 300)) for _ in range(3))]


def _cross_check(key: SM2PrivateKey, message: bytes, signer_id: bytes, other_id: bytes) -> None:
    lc, ref = get_backend("libcrypto"), get_backend("reference")
    for signer in (lc, ref):
        sig = key.sign(message, signer_id=signer_id, backend=signer)
        for verifier in (lc, ref):
            key.public_key.verify(sig, message, signer_id=signer_id, backend=verifier)
            with pytest.raises(VerificationError):
                key.public_key.verify(sig, message, signer_id=other_id, backend=verifier)
            with pytest.raises(VerificationError):
                key.public_key.verify(sig, message + b"\x00", signer_id=signer_id, backend=verifier)


def test_differential_seeded() -> None:
    rng = random.Random(32918)
    keys = [SM2PrivateKey(rng.randrange(1, N - 1)) for _ in range(3)]
    ids = _id_cases(rng)
    messages = _message_cases(rng)
    for i, message in enumerate(messages):
        for j, signer_id in enumerate(ids):
            key = keys[(i + j) % len(keys)]
            other_id = ids[(j + 1) % len(ids)]
            _cross_check(key, message, signer_id, other_id)


@settings(max_examples=25, deadline=None)
@given(
    d=st.integers(min_value=1, max_value=N - 2),
    message=st.binary(max_size=2000),
    signer_id=st.one_of(
        st.binary(min_size=1, max_size=200),
        st.text(min_size=1, max_size=40).map(lambda t: t.encode("utf-8")),
    ),
)
def test_differential_property(d: int, message: bytes, signer_id: bytes) -> None:
    other = signer_id + b"!"
    if len(other) > MAX_SIGNER_ID_BYTES:
        other = signer_id[:-1] or b"?"
    _cross_check(SM2PrivateKey(d), message, signer_id, other)


def test_signer_id_limits(key: SM2PrivateKey, backend: SM2Backend) -> None:
    longest = b"i" * MAX_SIGNER_ID_BYTES
    sig = key.sign(b"m", signer_id=longest, backend=backend)
    key.public_key.verify(sig, b"m", signer_id=longest, backend=backend)
    too_long = longest + b"i"
    err = _raises(InvalidInputError, "sig.signer_id", lambda: key.sign(b"m", signer_id=too_long, backend=backend))
    assert "8191" in str(err)
    _raises(InvalidInputError, "sig.signer_id", lambda: key.public_key.verify(sig, b"m", signer_id=too_long))
    bad_type: Any = "1234567812345678"  # a str, not bytes: refused rather than encoded silently
    _raises(InvalidInputError, "sig.signer_id", lambda: key.sign(b"m", signer_id=bad_type, backend=backend))


# -- threads ---------------------------------------------------------------------------


def test_libcrypto_backend_is_correct_under_threads() -> None:
    backend = get_backend("libcrypto")
    key = SM2PrivateKey.generate()
    pub = key.public_key  # shared: one EVP_PKEY, one context per thread
    n_threads, per_thread = 4, 120
    barrier = threading.Barrier(n_threads)
    results: dict[int, list[tuple[bytes, bytes, bytes]]] = {}
    failures: list[str] = []

    def work(t: int) -> None:
        rng = random.Random(t)
        ids = [DEFAULT_SIGNER_ID, f"agency-{t}".encode(), NON_ASCII_ID]
        mine: list[tuple[bytes, bytes, bytes]] = []
        barrier.wait()
        for i in range(per_thread):
            message = rng.randbytes(rng.randint(0, 200)) + bytes([t, i & 0xFF])
            signer_id = ids[i % len(ids)]
            sig = key.sign(message, signer_id=signer_id, backend=backend)
            pub.verify(sig, message, signer_id=signer_id, backend=backend)
            try:
                pub.verify(sig, message + b"!", signer_id=signer_id, backend=backend)
                failures.append(f"thread {t}: tampered message verified")
            except VerificationError:
                pass
            mine.append((message, signer_id, sig))
        results[t] = mine

    def guarded(t: int) -> None:
        try:
            work(t)
        except Exception as exc:  # surfaced below: a thread's exception would be lost
            failures.append(f"thread {t}: {exc!r}")

    threads = [threading.Thread(target=guarded, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not failures, failures
    assert sorted(results) == list(range(n_threads))
    # every signature made concurrently verifies afterwards; a sample through the reference too
    reference = get_backend("reference")
    for t, items in results.items():
        assert len(items) == per_thread
        for i, (message, signer_id, sig) in enumerate(items):
            pub.verify(sig, message, signer_id=signer_id, backend=backend)
            if i % 20 == 0:
                pub.verify(sig, message, signer_id=signer_id, backend=reference)
        assert len({sig for _, _, sig in items}) == per_thread, f"thread {t} repeated a signature"


# -- negative cases: each raises the project's error with its reason -----------------------


def _der_sig(r_body: bytes, s_body: bytes) -> bytes:
    return der.tlv(der.TAG_SEQUENCE, der.tlv(der.TAG_INTEGER, r_body) + der.tlv(der.TAG_INTEGER, s_body))


_R32, _S32 = R.to_bytes(32, "big"), S.to_bytes(32, "big")
_GOOD = encode_der(R, S)

BAD_SIGNATURES = [
    # (case, signature bytes, error family, reason)
    ("r = 0", _der_sig(b"\x00", b"\x00" + _S32), VerificationError, "sig.range"),
    ("s = 0", _der_sig(b"\x00" + _R32, b"\x00"), VerificationError, "sig.range"),
    ("r = n", _der_sig(b"\x00" + N.to_bytes(32, "big"), b"\x00" + _S32), VerificationError, "sig.range"),
    ("s = n", _der_sig(b"\x00" + _R32, b"\x00" + N.to_bytes(32, "big")), VerificationError, "sig.range"),
    ("s > n", _der_sig(b"\x00" + _R32, b"\x00" + (N + 1).to_bytes(32, "big")), VerificationError, "sig.range"),
    ("r = 2^256 - 1", _der_sig(b"\x00" + b"\xff" * 32, b"\x00" + _S32), VerificationError, "sig.range"),
    ("truncated DER", _GOOD[:-1], InvalidInputError, "sig.malformed"),
    ("truncated to the header", _GOOD[:2], InvalidInputError, "sig.malformed"),
    ("empty", b"", InvalidInputError, "sig.malformed"),
    ("padded DER (trailing byte)", _GOOD + b"\x00", InvalidInputError, "sig.malformed"),
    ("non-minimal INTEGER r", _der_sig(b"\x00\x00" + _R32, b"\x00" + _S32), InvalidInputError, "sig.malformed"),
    ("non-minimal INTEGER (small)", _der_sig(b"\x00\x01", b"\x00" + _S32), InvalidInputError, "sig.malformed"),
    ("negative r", _der_sig(_R32, b"\x00" + _S32), InvalidInputError, "sig.malformed"),
    ("long-form length", bytes([0x30, 0x81, 0x46]) + _GOOD[2:], InvalidInputError, "sig.malformed"),
    (
        "three INTEGERs",
        der.sequence(der.integer(R), der.integer(S), der.integer(1)),
        InvalidInputError,
        "sig.malformed",
    ),
    ("one INTEGER", der.sequence(der.integer(R)), InvalidInputError, "sig.malformed"),
    ("SET instead of SEQUENCE", bytes([0x31]) + _GOOD[1:], InvalidInputError, "sig.malformed"),
    ("OCTET STRING r", der.sequence(der.octet_string(_R32), der.integer(S)), InvalidInputError, "sig.malformed"),
    ("raw r||s given as DER", _R32 + _S32, InvalidInputError, "sig.malformed"),
    ("over-long", _GOOD + b"\x00" * 8, InvalidInputError, "sig.malformed"),
]


@pytest.mark.parametrize(("case", "sig", "family", "reason"), BAD_SIGNATURES, ids=[c[0] for c in BAD_SIGNATURES])
def test_bad_der_signature(
    case: str, sig: bytes, family: type[CertLedgerError], reason: str, backend: SM2Backend
) -> None:
    pub = SM2PublicKey(*PUB)
    _raises(family, reason, lambda: pub.verify(sig, MSG, signer_id=ID, backend=backend))


@pytest.mark.parametrize(
    ("raw", "family", "reason"),
    [
        (bytes(32) + _S32, VerificationError, "sig.range"),
        (_R32 + bytes(32), VerificationError, "sig.range"),
        (N.to_bytes(32, "big") + _S32, VerificationError, "sig.range"),
        (_R32 + b"\xff" * 32, VerificationError, "sig.range"),
        (_R32 + _S32[:-1], InvalidInputError, "sig.malformed"),
        (_R32 + _S32 + b"\x00", InvalidInputError, "sig.malformed"),
        (_GOOD, InvalidInputError, "sig.malformed"),
    ],
)
def test_bad_raw_signature(raw: bytes, family: type[CertLedgerError], reason: str) -> None:
    pub = SM2PublicKey(*PUB)
    _raises(family, reason, lambda: pub.verify_raw(raw, MSG, signer_id=ID))
    _raises(family, reason, lambda: decode_raw(raw))


@pytest.mark.parametrize(("r", "s"), [(0, S), (R, 0), (N, S), (R, N), (-1, S)])
def test_out_of_range_rs(r: int, s: int, backend: SM2Backend) -> None:
    pub = SM2PublicKey(*PUB)
    err = _raises(VerificationError, "sig.range", lambda: pub.verify_rs(r, s, MSG, signer_id=ID, backend=backend))
    assert "[1, n-1]" in str(err)
    _raises(VerificationError, "sig.range", lambda: encode_der(r, s))


def test_wrong_and_empty_id_and_tampered_message(key: SM2PrivateKey, backend: SM2Backend) -> None:
    sig = key.sign(b"licence 42", signer_id=b"agency-a", backend=backend)
    pub = key.public_key
    err = _raises(
        VerificationError, "sig.invalid", lambda: pub.verify(sig, b"licence 42", signer_id=b"agency-b", backend=backend)
    )
    assert str(err) == "SM2 signature does not verify"
    _raises(
        VerificationError, "sig.invalid", lambda: pub.verify(sig, b"licence 43", signer_id=b"agency-a", backend=backend)
    )
    _raises(VerificationError, "sig.invalid", lambda: pub.verify(sig, b"licence 42", backend=backend))
    err = _raises(
        InvalidInputError, "sig.signer_id", lambda: pub.verify(sig, b"licence 42", signer_id=b"", backend=backend)
    )
    assert "must not be empty" in str(err)
    _raises(InvalidInputError, "sig.signer_id", lambda: key.sign(b"licence 42", signer_id=b"", backend=backend))
    # a valid signature by another key
    other = SM2PrivateKey.generate().sign(b"licence 42", signer_id=b"agency-a", backend=backend)
    _raises(
        VerificationError,
        "sig.invalid",
        lambda: pub.verify(other, b"licence 42", signer_id=b"agency-a", backend=backend),
    )


def _spki(point: bytes) -> bytes:
    alg = der.sequence(der.oid(encoding.OID_EC_PUBLIC_KEY), der.oid(encoding.OID_SM2_CURVE))
    return der.sequence(alg, der.bit_string(point))


def _off_curve() -> tuple[int, int]:
    return (PUB[0], (PUB[1] + 1) % curve.P)


def test_off_curve_public_key() -> None:
    x, y = _off_curve()
    _raises(VerificationError, "key.off_curve", lambda: SM2PublicKey(x, y))
    point = b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")
    _raises(VerificationError, "key.off_curve", lambda: SM2PublicKey.from_bytes(point))
    spki = _spki(point)
    _raises(VerificationError, "key.off_curve", lambda: load_public_key(spki))
    pem = encoding.pem_encode("PUBLIC KEY", spki)
    _raises(VerificationError, "key.off_curve", lambda: load_public_key(pem))
    # coordinates >= p are not field elements, even if they reduce onto the curve
    _raises(VerificationError, "key.off_curve", lambda: SM2PublicKey(PUB[0] + curve.P, PUB[1]))
    # a compressed x with no square root on the curve
    bad_x = next(x for x in range(2, 100) if curve.decompress(2, x) is None)
    _raises(VerificationError, "key.off_curve", lambda: SM2PublicKey.from_bytes(b"\x02" + bad_x.to_bytes(32, "big")))


def test_point_at_infinity() -> None:
    for data in (b"\x00", b""):
        err = _raises(VerificationError, "key.infinity", partial(SM2PublicKey.from_bytes, data))
        assert "infinity" in str(err)
    spki = _spki(b"\x00")
    _raises(VerificationError, "key.infinity", lambda: load_public_key(spki))
    # (0, 0), the usual in-memory stand-in for infinity, is not on the curve either
    _raises(VerificationError, "key.off_curve", lambda: SM2PublicKey(0, 0))


def test_wrong_point_length() -> None:
    _raises(InvalidInputError, "key.malformed", lambda: SM2PublicKey.from_bytes(b"\x04" + bytes(63)))


@pytest.mark.parametrize(("curve_obj", "name"), [(ec.SECP256R1(), "P-256"), (ec.SECP256K1(), "secp256k1")])
def test_non_sm2_curve_keys_are_refused(curve_obj: ec.EllipticCurve, name: str) -> None:
    other = ec.generate_private_key(curve_obj)
    priv_pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub_pem = other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sec1_pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    for fn in (
        lambda: SM2PrivateKey.from_pem(priv_pem),
        lambda: load_public_key(pub_pem),
        lambda: SM2PrivateKey.from_pem(sec1_pem),
    ):
        err = _raises(InvalidInputError, "key.not_sm2", fn)
        assert name in str(err) and "not SM2" in str(err)


def test_ed25519_key_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pub_pem = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    # Ed25519 SPKI: not an EC key at all
    err = _raises(InvalidInputError, "key.not_sm2", lambda: load_public_key(pub_pem))
    assert "1.3.101.112" in str(err)


def test_passphrase_errors(key: SM2PrivateKey) -> None:
    pem = key.to_pem(b"right")
    err = _raises(VerificationError, "key.passphrase", lambda: SM2PrivateKey.from_pem(pem, b"wrong"))
    assert "wrong passphrase" in str(err)
    for missing in (None, b""):
        err = _raises(InvalidInputError, "key.passphrase", partial(SM2PrivateKey.from_pem, pem, missing))
        assert "passphrase is required" in str(err)
    _raises(InvalidInputError, "input.invalid", lambda: key.to_pem(b""))


def test_wrong_pem_blocks(key: SM2PrivateKey) -> None:
    _raises(InvalidInputError, "key.malformed", lambda: SM2PrivateKey.from_pem(key.public_key.to_pem()))
    _raises(InvalidInputError, "key.malformed", lambda: SM2PublicKey.from_pem(key.to_pem(None)))
    _raises(InvalidInputError, "key.malformed", lambda: SM2PublicKey.from_pem(b"no pem here"))
    broken = key.public_key.to_pem().replace(b"MFkw", b"MF!w")
    _raises(InvalidInputError, "key.malformed", lambda: SM2PublicKey.from_pem(broken))


# -- hostile key files -------------------------------------------------------------------


def test_pem_scan_is_linear_in_whitespace() -> None:
    # regression: the PEM regex was cubic in a run of whitespace (8000 spaces took minutes)
    for body in (b" ", b"\n", b"\r\n"):
        data = b"-----BEGIN PUBLIC KEY-----" + body * 60_000
        start = time.perf_counter()
        _raises(InvalidInputError, "key.malformed", partial(load_public_key, data))
        assert time.perf_counter() - start < 1.0


def test_oversized_pem_refused() -> None:
    _raises(InvalidInputError, "key.malformed", lambda: load_public_key(b"-----BEGIN " + b"A" * 200_000))


def _encrypted(kdf_params: bytes, scheme: bytes | None = None, ciphertext: bytes = bytes(16)) -> bytes:
    kdf = der.sequence(der.oid(encoding.OID_PBKDF2), kdf_params)
    scheme = scheme or der.sequence(der.oid(encoding.OID_AES256_CBC), der.octet_string(bytes(16)))
    alg = der.sequence(der.oid(encoding.OID_PBES2), der.sequence(kdf, scheme))
    return encoding.pem_encode("ENCRYPTED PRIVATE KEY", der.sequence(alg, der.octet_string(ciphertext)))


@pytest.mark.parametrize(
    ("pem", "reason", "message"),
    [
        (_encrypted(der.sequence()), "key.malformed", "PBKDF2 parameters"),
        (_encrypted(der.sequence(der.octet_string(b"salt"))), "key.malformed", "PBKDF2 parameters"),
        (_encrypted(der.sequence(der.octet_string(b"salt"), der.integer(10), der.sequence())), "key.malformed", "PRF"),
        (_encrypted(der.sequence(der.octet_string(b"salt"), der.integer(10**9))), "key.malformed", "iteration"),
        (_encrypted(der.sequence(der.octet_string(b"salt"), der.integer(0))), "key.malformed", "iteration"),
        (
            _encrypted(
                der.sequence(der.octet_string(b"s"), der.integer(10), der.sequence(der.oid("1.2.840.113549.2.5")))
            ),
            "key.unsupported",
            "PRF",
        ),
        (
            _encrypted(
                der.sequence(der.octet_string(b"s"), der.integer(10)),
                der.sequence(der.oid("2.16.840.1.101.3.4.1.2"), der.octet_string(bytes(16))),
            ),
            "key.unsupported",
            "AES-256-CBC",
        ),
        (
            _encrypted(der.sequence(der.octet_string(b"s"), der.integer(10)), ciphertext=bytes(15)),
            "key.malformed",
            "ciphertext",
        ),
    ],
)
def test_hostile_encrypted_pkcs8(pem: bytes, reason: str, message: str) -> None:
    err = _raises(InvalidInputError, reason, lambda: SM2PrivateKey.from_pem(pem, b"pw"))
    assert message in str(err)


def _mutations(base: bytes, rng: random.Random, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        d = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(4)
            pos = rng.randrange(len(d) + 1)
            if op == 0 and pos < len(d):
                d[pos] = rng.randrange(256)
            elif op == 1:
                d.insert(pos, rng.randrange(256))
            elif op == 2 and pos < len(d):
                del d[pos]
            else:
                del d[pos:]
        out.append(bytes(d))
    return out


def test_mutated_key_and_signature_bytes_never_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    # hostile input: any mutation either still parses or raises a CertLedgerError
    monkeypatch.setattr(encoding, "PBKDF2_ITERATIONS", 1000)  # keep decryption attempts cheap
    key = SM2PrivateKey(0x1234567890ABCDEF)
    encrypted = encoding.pem_decode(key.to_pem(b"pw"))[1]
    targets: dict[str, tuple[bytes, Callable[[bytes], object]]] = {
        "spki": (key.public_key.to_der(), SM2PublicKey.from_der),
        "pkcs8": (key.to_der(), SM2PrivateKey.from_der),
        "encrypted": (encrypted, lambda b: SM2PrivateKey.from_der(encoding.decrypt_pkcs8(b, b"pw"))),
        "signature": (key.sign(b"m"), decode_der),
        "pem": (key.public_key.to_pem(), load_public_key),
    }
    rng = random.Random(4)
    crashes: dict[str, str] = {}
    for name, (base, parse) in targets.items():
        for data in _mutations(base, rng, 1500):
            try:
                parse(data)
            except CertLedgerError:
                pass
            except Exception as exc:
                crashes.setdefault(f"{name}: {type(exc).__name__}: {exc}", data.hex())
    assert not crashes, crashes


# -- the memory of passed verifications -------------------------------------------------------


def test_verified_signatures_remember_only_exact_passes() -> None:
    from signing.sm2.memo import VerifiedSignatures

    memo = VerifiedSignatures(size=2)
    key, other = SM2PrivateKey.generate(), SM2PrivateKey.generate()
    msg = b"tbs certificate bytes"
    sig = key.sign(msg)
    memo.verify(key.public_key, sig, msg)
    assert len(memo) == 1
    memo.verify(key.public_key, sig, msg)  # remembered: no second entry
    assert len(memo) == 1
    # every input the answer depends on is part of the key: none of these hits the entry
    with pytest.raises(VerificationError):
        memo.verify(key.public_key, sig, msg + b"!")
    with pytest.raises(VerificationError):
        memo.verify(other.public_key, sig, msg)
    with pytest.raises(VerificationError):
        memo.verify(key.public_key, sig, msg, signer_id=b"another signer")
    with pytest.raises((VerificationError, InvalidInputError)):
        memo.verify(key.public_key, sig[:-1] + bytes([sig[-1] ^ 1]), msg)
    assert len(memo) == 1  # failures are never remembered
    # bounded: least recently used out
    for m in (b"a", b"b"):
        memo.verify(key.public_key, key.sign(m), m)
    assert len(memo) == 2
