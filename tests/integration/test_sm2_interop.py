"""SM2 interoperability with independent implementations, both ways.

* the ``openssl`` CLI (OpenSSL 3): ``pkeyutl -sign|-verify -rawin -digest sm3 -pkeyopt
  distid:ID`` with our PEM keys, and keys made by ``openssl genpkey`` loaded by us;
* the npm package sm-crypto, driven by tests/js/sm_crypto_driver.js.

Each check also makes the other side fail once (other ID, other message), so a tool
that said "valid" to everything would be caught.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from signing.errors import InvalidInputError, VerificationError
from signing.sm2 import DEFAULT_SIGNER_ID, SM2PrivateKey, SM2PublicKey, load_public_key
from signing.sm2.backends import get_backend
from signing.sm2.za import MAX_SIGNER_ID_BYTES
from signing.sm3 import sm3

pytestmark = pytest.mark.interop

BACKENDS = ("libcrypto", "reference")
NON_ASCII_ID = "北京市市场监督管理局".encode()
VERIFIED = b"Signature Verified Successfully"

_rng = random.Random(20160301)
MESSAGES = {
    "empty": b"",
    "short": b"licence 91110000MA01ABCD1X",
    "binary": _rng.randbytes(333),
    "1MiB": _rng.randbytes(1 << 20),
}
#: OpenSSL refuses IDs of 8191 bytes or more (sm2_sign.c: id_len >= UINT16_MAX / 8), one
#: byte short of what the 16-bit ENTL allows and we accept; see test_openssl_id_length_cap
OPENSSL_MAX_ID_BYTES = MAX_SIGNER_ID_BYTES - 1
IDS = {
    "default": DEFAULT_SIGNER_ID,
    "one-byte": b"A",
    "utf8": NON_ASCII_ID,
    "binary-with-nul": b"\x00\xff\x10agency",
    "8190-bytes": bytes(_rng.randrange(256) for _ in range(OPENSSL_MAX_ID_BYTES)),
}


def _distid(signer_id: bytes) -> str:
    # hexdistid carries any bytes (NUL, non-UTF-8) through argv; distid only text
    return f"hexdistid:{signer_id.hex()}"


# -- openssl CLI ----------------------------------------------------------------------------


def _openssl_verify(openssl: Any, pub: Path, msg: Path, sig: Path, signer_id: bytes) -> Any:
    return openssl(
        "pkeyutl",
        "-verify",
        "-rawin",
        "-digest",
        "sm3",
        "-pubin",
        "-inkey",
        pub,
        "-in",
        msg,
        "-sigfile",
        sig,
        "-pkeyopt",
        _distid(signer_id),
    )


def test_openssl_reads_our_encrypted_pkcs8(openssl: Any, sm2_key_files: Any, tmp_path: Path) -> None:
    kf = sm2_key_files
    passin = f"file:{kf.passphrase_file}"
    # the public half, re-encoded by OpenSSL, is byte-for-byte our SPKI
    out = openssl("pkey", "-in", kf.private_pem, "-passin", passin, "-pubout", "-outform", "DER")
    assert out.returncode == 0, out.stderr
    assert out.stdout == kf.key.public_key.to_der()
    # the decrypted private key is ours (PEM output is unencrypted PKCS#8)
    out = openssl("pkey", "-in", kf.private_pem, "-passin", passin)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert SM2PrivateKey.from_pem(out.stdout).private_scalar() == kf.key.private_scalar()
    text = openssl("pkey", "-in", kf.private_pem, "-passin", passin, "-noout", "-text")
    assert b"ASN1 OID: SM2" in text.stdout
    # and the encryption is real: a wrong passphrase gets nothing out of OpenSSL either
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not it\n")
    out = openssl("pkey", "-in", kf.private_pem, "-passin", f"file:{wrong}", "-noout")
    assert out.returncode != 0


def test_openssl_describes_our_encryption(openssl: Any, sm2_key_files: Any) -> None:
    # PBES2 / PBKDF2-HMAC-SHA256 / AES-256-CBC, as ADR 0002 says
    out = openssl("asn1parse", "-in", sm2_key_files.private_pem)
    assert out.returncode == 0, out.stderr
    for name in (b"PBES2", b"PBKDF2", b"hmacWithSHA256", b"aes-256-cbc"):
        assert name in out.stdout, name


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("id_name", list(IDS))
def test_openssl_verifies_our_signatures(
    openssl: Any, sm2_key_files: Any, tmp_path: Path, id_name: str, backend_name: str
) -> None:
    kf, signer_id = sm2_key_files, IDS[id_name]
    backend = get_backend(backend_name)
    for msg_name, message in MESSAGES.items():
        if backend_name == "reference" and msg_name == "1MiB" and id_name != "default":
            continue  # the reference backend hashes with hashlib too; one 1 MiB case suffices
        msg, sig = tmp_path / f"{msg_name}.bin", tmp_path / f"{msg_name}.sig"
        msg.write_bytes(message)
        sig.write_bytes(kf.key.sign(message, signer_id=signer_id, backend=backend))
        ok = _openssl_verify(openssl, kf.public_pem, msg, sig, signer_id)
        assert ok.returncode == 0 and VERIFIED in ok.stdout, (msg_name, ok.stdout, ok.stderr)
        # the same signature under another ID must fail in OpenSSL too
        bad = _openssl_verify(openssl, kf.public_pem, msg, sig, signer_id + b"x")
        assert bad.returncode != 0, msg_name


def test_openssl_rejects_tampered_message(openssl: Any, sm2_key_files: Any, tmp_path: Path) -> None:
    kf = sm2_key_files
    msg, sig = tmp_path / "m", tmp_path / "s"
    sig.write_bytes(kf.key.sign(b"licence v1"))
    msg.write_bytes(b"licence v2")
    out = _openssl_verify(openssl, kf.public_pem, msg, sig, DEFAULT_SIGNER_ID)
    assert out.returncode != 0


@pytest.mark.parametrize("id_name", list(IDS))
def test_we_verify_openssl_signatures(openssl: Any, sm2_key_files: Any, tmp_path: Path, id_name: str) -> None:
    kf, signer_id = sm2_key_files, IDS[id_name]
    for msg_name in ("empty", "short", "1MiB"):
        message = MESSAGES[msg_name]
        msg, sig = tmp_path / "m", tmp_path / "s"
        msg.write_bytes(message)
        out = openssl(
            "pkeyutl",
            "-sign",
            "-rawin",
            "-digest",
            "sm3",
            "-inkey",
            kf.private_pem,
            "-passin",
            f"file:{kf.passphrase_file}",
            "-in",
            msg,
            "-out",
            sig,
            "-pkeyopt",
            _distid(signer_id),
        )
        assert out.returncode == 0, out.stderr
        signature = sig.read_bytes()
        for backend_name in BACKENDS:
            backend = get_backend(backend_name)
            kf.key.public_key.verify(signature, message, signer_id=signer_id, backend=backend)
            with pytest.raises(VerificationError):
                kf.key.public_key.verify(signature, message, signer_id=signer_id + b"x", backend=backend)


def test_openssl_id_length_cap(openssl: Any, sm2_key_files: Any, tmp_path: Path) -> None:
    # GB/T 32918.2: ENTL is the ID's length in bits in two bytes, so 8191 bytes (65528 bits)
    # is legal and we sign and verify it; OpenSSL 3.0 stops at 8190. Pinned here so that a
    # change on either side is noticed.
    kf = sm2_key_files
    longest = b"i" * MAX_SIGNER_ID_BYTES
    msg, sig = tmp_path / "m", tmp_path / "s"
    msg.write_bytes(b"x")
    sig.write_bytes(kf.key.sign(b"x", signer_id=longest))
    kf.key.public_key.verify(sig.read_bytes(), b"x", signer_id=longest, backend=get_backend("reference"))
    out = _openssl_verify(openssl, kf.public_pem, msg, sig, longest)
    assert out.returncode != 0 and b"sm2" in out.stderr.lower()


def test_openssl_text_distid_is_utf8(openssl: Any, sm2_key_files: Any, tmp_path: Path) -> None:
    # `-pkeyopt distid:TEXT` hands over the argument's bytes, i.e. UTF-8 here
    kf = sm2_key_files
    msg, sig = tmp_path / "m", tmp_path / "s"
    msg.write_bytes(b"x")
    out = openssl(
        "pkeyutl",
        "-sign",
        "-rawin",
        "-digest",
        "sm3",
        "-inkey",
        kf.plain_private_pem,
        "-in",
        msg,
        "-out",
        sig,
        "-pkeyopt",
        "distid:" + NON_ASCII_ID.decode(),
    )
    assert out.returncode == 0, out.stderr
    kf.key.public_key.verify(sig.read_bytes(), b"x", signer_id=NON_ASCII_ID)


def test_openssl_without_distid_uses_an_empty_id(openssl: Any, sm2_key_files: Any, tmp_path: Path) -> None:
    # the trap the explicit signer ID exists for: OpenSSL 3 silently signs with an empty ID,
    # so its signature does not verify under GM/T 0009's default (and we refuse empty IDs)
    kf = sm2_key_files
    msg, sig = tmp_path / "m", tmp_path / "s"
    msg.write_bytes(b"licence")
    out = openssl(
        "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", kf.plain_private_pem, "-in", msg, "-out", sig
    )
    assert out.returncode == 0, out.stderr
    with pytest.raises(VerificationError) as err:
        kf.key.public_key.verify(sig.read_bytes(), b"licence")
    assert err.value.reason == "sig.invalid"
    with pytest.raises(InvalidInputError) as err2:
        kf.key.public_key.verify(sig.read_bytes(), b"licence", signer_id=b"")
    assert err2.value.reason == "sig.signer_id"


@pytest.fixture(scope="module")
def openssl_keys(openssl: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Keys made by OpenSSL itself: SM2 plain / AES-256 encrypted / SEC1, and P-256."""
    d = tmp_path_factory.mktemp("openssl-keys")
    (d / "pass.txt").write_text("openssl secret\n")
    passout = f"file:{d / 'pass.txt'}"
    commands = {
        "sm2.pem": ["genpkey", "-algorithm", "SM2", "-out", d / "sm2.pem"],
        "sm2-enc.pem": ["genpkey", "-algorithm", "SM2", "-aes-256-cbc", "-pass", passout, "-out", d / "sm2-enc.pem"],
        "sm2-aes128.pem": [
            "genpkey",
            "-algorithm",
            "SM2",
            "-aes-128-cbc",
            "-pass",
            passout,
            "-out",
            d / "sm2-aes128.pem",
        ],
        "p256.pem": ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", d / "p256.pem"],
    }
    for args in commands.values():
        out = openssl(*args)
        assert out.returncode == 0, out.stderr
    follow_up = [
        ["pkey", "-in", d / "sm2.pem", "-pubout", "-out", d / "sm2.pub.pem"],
        ["pkey", "-in", d / "sm2-enc.pem", "-passin", passout, "-pubout", "-out", d / "sm2-enc.pub.pem"],
        ["ec", "-in", d / "sm2.pem", "-out", d / "sm2-sec1.pem"],
        ["pkey", "-in", d / "p256.pem", "-pubout", "-out", d / "p256.pub.pem"],
    ]
    for args in follow_up:
        out = openssl(*args)
        assert out.returncode == 0, out.stderr
    return {p.name: p for p in d.iterdir()}


def test_we_load_openssl_generated_keys(openssl: Any, openssl_keys: dict[str, Path], tmp_path: Path) -> None:
    plain = SM2PrivateKey.from_pem(openssl_keys["sm2.pem"].read_bytes())
    assert load_public_key(openssl_keys["sm2.pub.pem"].read_bytes()) == plain.public_key
    assert plain.public_key.to_der() == load_public_key(openssl_keys["sm2.pub.pem"].read_bytes()).to_der()
    enc = SM2PrivateKey.from_pem(openssl_keys["sm2-enc.pem"].read_bytes(), b"openssl secret")
    assert load_public_key(openssl_keys["sm2-enc.pub.pem"].read_bytes()) == enc.public_key
    # `openssl ec` writes SEC1 with the label "SM2 PRIVATE KEY"
    assert openssl_keys["sm2-sec1.pem"].read_bytes().startswith(b"-----BEGIN SM2 PRIVATE KEY-----")
    sec1 = SM2PrivateKey.from_pem(openssl_keys["sm2-sec1.pem"].read_bytes())
    assert sec1.private_scalar() == plain.private_scalar()

    # we sign with OpenSSL's key, OpenSSL verifies with its own key file
    msg, sig = tmp_path / "m", tmp_path / "s"
    msg.write_bytes(b"issued by openssl key")
    sig.write_bytes(enc.sign(b"issued by openssl key", signer_id=NON_ASCII_ID))
    out = _openssl_verify(openssl, openssl_keys["sm2-enc.pub.pem"], msg, sig, NON_ASCII_ID)
    assert out.returncode == 0 and VERIFIED in out.stdout, out.stderr


def test_openssl_keys_we_refuse(openssl_keys: dict[str, Path]) -> None:
    # a P-256 key where SM2 is expected: refused by name, private and public alike
    for fn in (
        lambda: SM2PrivateKey.from_pem(openssl_keys["p256.pem"].read_bytes()),
        lambda: load_public_key(openssl_keys["p256.pub.pem"].read_bytes()),
    ):
        with pytest.raises(InvalidInputError) as err:
            fn()
        assert err.value.reason == "key.not_sm2"
        assert "P-256" in str(err.value)
    # encryption other than AES-256-CBC: a clear "unsupported", not a crash or a wrong key
    with pytest.raises(InvalidInputError) as err:
        SM2PrivateKey.from_pem(openssl_keys["sm2-aes128.pem"].read_bytes(), b"openssl secret")
    assert err.value.reason == "key.unsupported"
    # wrong and missing passphrase on an OpenSSL-encrypted key
    with pytest.raises(VerificationError) as err2:
        SM2PrivateKey.from_pem(openssl_keys["sm2-enc.pem"].read_bytes(), b"wrong")
    assert err2.value.reason == "key.passphrase"
    with pytest.raises(InvalidInputError) as err:
        SM2PrivateKey.from_pem(openssl_keys["sm2-enc.pem"].read_bytes())
    assert err.value.reason == "key.passphrase"


# -- sm-crypto (npm) -----------------------------------------------------------------------


def _hex_keys(key: SM2PrivateKey) -> tuple[str, str]:
    return f"{key.private_scalar():064x}", key.public_key.to_bytes().hex()


SM_CRYPTO_IDS: dict[str, str | None] = {
    "omitted (sm-crypto default)": None,
    "default": DEFAULT_SIGNER_ID.decode(),
    "one-byte": "A",
    "utf8": NON_ASCII_ID.decode(),
    "8191-bytes": "i" * MAX_SIGNER_ID_BYTES,
}


def _op(op: str, message: bytes, pub: str, user_id: str | None, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"op": op, "msg_hex": message.hex(), "pub_hex": pub, **extra}
    if user_id is not None:
        d["user_id"] = user_id
    return d


def test_sm_crypto_verifies_the_annex_a_signature(sm_crypto: Any, vectors_dir: Path) -> None:
    import json

    v = json.loads((vectors_dir / "sm2" / "gbt32918_5_annex_a_signature.json").read_text())
    pub = "04" + v["public_key_x_hex"] + v["public_key_y_hex"]
    sig = v["r_hex"] + v["s_hex"]
    msg = v["message_ascii"].encode()
    results = sm_crypto.run(
        [
            _op("verify", msg, pub, v["signer_id_ascii"], sig_hex=sig, der=False),
            _op("verify", msg, pub, "1234567812345679", sig_hex=sig, der=False),
            {"op": "pub_from_priv", "priv_hex": v["private_key_hex"]},
        ]
    )
    assert results[0] == {"valid": True}
    assert results[1] == {"valid": False}
    assert results[2]["pub_hex"].lower() == pub.lower()


def _sm_crypto_cases() -> list[tuple[str, str]]:
    # every ID with the small messages, and the 1 MiB message once
    return [(m, i) for m in ("empty", "short", "binary") for i in SM_CRYPTO_IDS] + [("1MiB", "default")]


def test_sm_crypto_signs_we_verify(sm_crypto: Any) -> None:
    key = SM2PrivateKey.generate()
    priv, pub = _hex_keys(key)
    cases = _sm_crypto_cases()
    ops = [_op("sign", MESSAGES[m], pub, SM_CRYPTO_IDS[i], priv_hex=priv) for m, i in cases]
    # r || s form for a few
    ops += [_op("sign", MESSAGES[m], pub, SM_CRYPTO_IDS[i], priv_hex=priv, der=False) for m, i in cases[:3]]
    results = sm_crypto.run(ops)
    lc, ref = get_backend("libcrypto"), get_backend("reference")
    for n, (msg_name, id_name) in enumerate(cases):
        user_id = SM_CRYPTO_IDS[id_name]
        signer_id = DEFAULT_SIGNER_ID if user_id is None else user_id.encode("utf-8")
        message = MESSAGES[msg_name]
        der_sig = bytes.fromhex(results[n]["sig_hex"])
        # our strict DER reader accepts what sm-crypto writes; both backends agree
        for backend in (lc, ref):
            key.public_key.verify(der_sig, message, signer_id=signer_id, backend=backend)
        with pytest.raises(VerificationError):
            key.public_key.verify(der_sig, message + b"!", signer_id=signer_id)
        if n < 3:
            raw_sig = bytes.fromhex(results[len(cases) + n]["sig_hex"])
            key.public_key.verify_raw(raw_sig, message, signer_id=signer_id)


def test_we_sign_sm_crypto_verifies(sm_crypto: Any) -> None:
    key = SM2PrivateKey.generate()
    _, pub = _hex_keys(key)
    ops: list[dict[str, Any]] = []
    expected: list[bool] = []
    for n, (msg_name, id_name) in enumerate(_sm_crypto_cases()):
        user_id = SM_CRYPTO_IDS[id_name]
        signer_id = DEFAULT_SIGNER_ID if user_id is None else user_id.encode("utf-8")
        message = MESSAGES[msg_name]
        backend = get_backend(BACKENDS[n % 2])  # alternate: both backends' output is checked
        der_sig = key.sign(message, signer_id=signer_id, backend=backend).hex()
        ops.append(_op("verify", message, pub, user_id, sig_hex=der_sig))
        expected.append(True)
        if n < 4:  # sm-crypto must also say no: tampered message, other ID, r || s form
            raw_sig = key.sign_raw(message, signer_id=signer_id, backend=backend).hex()
            ops += [
                _op("verify", message, pub, user_id, sig_hex=raw_sig, der=False),
                _op("verify", message + b"!", pub, user_id, sig_hex=der_sig),
                _op("verify", message, pub, (user_id or "1234567812345678") + "x", sig_hex=der_sig),
            ]
            expected += [True, False, False]
    results = sm_crypto.run(ops)
    assert [r["valid"] for r in results] == expected


def test_sm_crypto_message_and_id_encoding(sm_crypto: Any) -> None:
    # sm-crypto hashes a JS string as its UTF-8 bytes (never as hex), and takes userId as
    # UTF-8 text; an empty userId is used as-is, silently
    key = SM2PrivateKey.generate()
    priv, pub = _hex_keys(key)
    text = "电子证照 licence №1".encode()
    hex_looking = b"616263"
    results = sm_crypto.run(
        [
            _op("sign", text, pub, NON_ASCII_ID.decode(), priv_hex=priv, msg_as="string"),
            _op("sign", hex_looking, pub, None, priv_hex=priv, msg_as="string"),
            _op("sign", b"m", pub, "", priv_hex=priv),
        ]
    )
    key.public_key.verify(bytes.fromhex(results[0]["sig_hex"]), text, signer_id=NON_ASCII_ID)
    hex_sig = bytes.fromhex(results[1]["sig_hex"])
    key.public_key.verify(hex_sig, b"616263")
    with pytest.raises(VerificationError):
        key.public_key.verify(hex_sig, b"abc")
    empty_id_sig = bytes.fromhex(results[2]["sig_hex"])
    with pytest.raises(VerificationError):
        key.public_key.verify(empty_id_sig, b"m")  # not the default ID
    with pytest.raises(InvalidInputError):
        key.public_key.verify(empty_id_sig, b"m", signer_id=b"")  # we never use an empty ID


def test_sm_crypto_rejects_what_we_reject(sm_crypto: Any) -> None:
    # a point off the curve, and r = 0: both sides say no
    key = SM2PrivateKey.generate()
    _, pub = _hex_keys(key)
    sig = key.sign(b"m").hex()
    off = key.public_key.to_bytes()
    off_hex = (off[:-1] + bytes([off[-1] ^ 1])).hex()
    results = sm_crypto.run(
        [
            _op("verify", b"m", off_hex, None, sig_hex=sig),
            _op("verify", b"m", pub, None, sig_hex="00" * 32 + sig[-64:], der=False),
        ]
    )
    assert [r["valid"] for r in results] == [False, False]
    with pytest.raises(VerificationError):
        SM2PublicKey.from_bytes(bytes.fromhex(off_hex))


def test_sm3_matches_sm_crypto(sm_crypto: Any) -> None:
    rng = random.Random(32905)
    inputs = [b"", b"abc", b"abcd" * 16, *(rng.randbytes(n) for n in (1, 55, 56, 63, 64, 65, 119, 120, 1000, 4097))]
    results = sm_crypto.run([{"op": "sm3", "msg_hex": m.hex()} for m in inputs])
    assert [r["digest_hex"] for r in results] == [sm3(m).hex() for m in inputs]
    assert sm_crypto.version.startswith("0.3.")
