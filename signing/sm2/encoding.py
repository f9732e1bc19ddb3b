"""SPKI and PKCS#8 encodings of SM2 keys, in the form OpenSSL and GmSSL write.

AlgorithmIdentifier is ``id-ecPublicKey`` with the named curve ``sm2``
(1.2.156.10197.1.301), as `openssl genpkey -algorithm SM2` produces; on input
the curve OID itself as the algorithm is also accepted (some Chinese toolkits
write it). Any other curve is refused with a message naming it.

Private keys at rest are PKCS#8 EncryptedPrivateKeyInfo, PBES2 with
PBKDF2-HMAC-SHA256 and AES-256-CBC: exactly what ``openssl pkcs8 -topk8 -v2
aes-256-cbc`` writes, so ``openssl pkey`` reads it with the passphrase.
"""

from __future__ import annotations

import base64
import re
import secrets
from typing import Final

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from signing import der
from signing.errors import InvalidInputError, VerificationError
from signing.sm2 import curve

OID_EC_PUBLIC_KEY: Final = "1.2.840.10045.2.1"
OID_SM2_CURVE: Final = curve.CURVE_OID
OID_PBES2: Final = "1.2.840.113549.1.5.13"
OID_PBKDF2: Final = "1.2.840.113549.1.5.12"
OID_HMAC_SHA256: Final = "1.2.840.113549.2.9"
OID_HMAC_SHA1: Final = "1.2.840.113549.2.7"
OID_AES256_CBC: Final = "2.16.840.1.101.3.4.1.42"

#: names for curves people hand us by mistake, for a clearer error
_KNOWN_CURVES: Final = {
    "1.2.840.10045.3.1.7": "P-256 (prime256v1)",
    "1.3.132.0.34": "P-384",
    "1.3.132.0.10": "secp256k1",
}
#: PBKDF2 work factor for new keys; bounded on input so a hostile file cannot stall us
PBKDF2_ITERATIONS: Final = 200_000
MAX_PBKDF2_ITERATIONS: Final = 10_000_000

_ALG_ID: Final = der.sequence(der.oid(OID_EC_PUBLIC_KEY), der.oid(OID_SM2_CURVE))


# -- points -------------------------------------------------------------------------------


def encode_point(point: tuple[int, int]) -> bytes:
    return b"\x04" + point[0].to_bytes(32, "big") + point[1].to_bytes(32, "big")


def decode_point(data: bytes) -> tuple[int, int]:
    """Decode an uncompressed (04) or compressed (02/03) SM2 point and validate it.

    Validation: coordinates in [0, p), on the curve, not the point at infinity.
    The cofactor is 1, so a point on the curve is in the prime-order group.
    """
    if len(data) == 65 and data[0] == 4:
        x, y = int.from_bytes(data[1:33], "big"), int.from_bytes(data[33:], "big")
        if not curve.is_on_curve(x, y):
            raise VerificationError("SM2 public key is not on the curve", reason="key.off_curve")
        return (x, y)
    if len(data) == 33 and data[0] in (2, 3):
        pt = curve.decompress(data[0], int.from_bytes(data[1:], "big"))
        if pt is None:
            raise VerificationError("SM2 public key is not on the curve", reason="key.off_curve")
        return pt
    if data[:1] == b"\x00" or not data:
        raise VerificationError("SM2 public key is the point at infinity", reason="key.infinity")
    raise InvalidInputError(
        f"SM2 public key: expected a 65-byte uncompressed point, got {len(data)} bytes",
        reason="key.malformed",
    )


# -- SPKI ---------------------------------------------------------------------------------


def spki_der(point: tuple[int, int]) -> bytes:
    return der.sequence(_ALG_ID, der.bit_string(encode_point(point)))


def _check_algorithm(node: der.TLV, what: str) -> None:
    items = der.children(der.TLV(node.tag, der.expect(node, der.TAG_SEQUENCE, what=what)), what=what)
    if not items:
        raise InvalidInputError(f"{what}: empty AlgorithmIdentifier", reason="key.malformed")
    alg = der.read_oid(items[0], what=what)
    if alg == OID_SM2_CURVE and len(items) == 1:
        return
    if alg != OID_EC_PUBLIC_KEY:
        raise InvalidInputError(
            f"{what}: not an elliptic-curve key (algorithm {alg}); an SM2 key is expected",
            reason="key.not_sm2",
        )
    if len(items) != 2 or items[1].tag != der.TAG_OID:
        raise InvalidInputError(f"{what}: EC key without a named curve", reason="key.not_sm2")
    named = der.read_oid(items[1], what=what)
    if named != OID_SM2_CURVE:
        name = _KNOWN_CURVES.get(named, named)
        raise InvalidInputError(
            f"{what}: key is on curve {name}, not SM2 (1.2.156.10197.1.301)", reason="key.not_sm2"
        )


def parse_spki(data: bytes) -> tuple[int, int]:
    what = "SM2 public key (SPKI)"
    top = der.parse_one(data, what=what)
    der.expect(top, der.TAG_SEQUENCE, what=what)
    items = der.children(top, what=what)
    if len(items) != 2:
        raise InvalidInputError(f"{what}: expected algorithm and key", reason="key.malformed")
    _check_algorithm(items[0], what)
    return decode_point(der.read_bit_string(items[1], what=what))


# -- PKCS#8 -------------------------------------------------------------------------------


def pkcs8_der(d: int, point: tuple[int, int]) -> bytes:
    ec_private = der.sequence(
        der.integer(1),
        der.octet_string(d.to_bytes(32, "big")),
        der.context(1, der.bit_string(encode_point(point))),
    )
    return der.sequence(der.integer(0), _ALG_ID, der.octet_string(ec_private))


def parse_ec_private_key(data: bytes, what: str) -> tuple[int, tuple[int, int] | None]:
    """SEC1 ECPrivateKey: returns d and the embedded public point, if any."""
    top = der.parse_one(data, what=what)
    der.expect(top, der.TAG_SEQUENCE, what=what)
    items = der.children(top, what=what)
    if len(items) < 2 or der.read_integer(items[0], what=what) != 1:
        raise InvalidInputError(f"{what}: not an ECPrivateKey v1", reason="key.malformed")
    raw = der.expect(items[1], der.TAG_OCTET_STRING, what=what)
    if len(raw) != 32:
        raise InvalidInputError(f"{what}: private scalar must be 32 bytes", reason="key.malformed")
    d = int.from_bytes(raw, "big")
    point = None
    for item in items[2:]:
        if item.tag == 0xA0:  # [0] parameters: must name SM2 when present
            named = der.read_oid(der.parse_one(item.value, what=what), what=what)
            if named != OID_SM2_CURVE:
                name = _KNOWN_CURVES.get(named, named)
                raise InvalidInputError(
                    f"{what}: key is on curve {name}, not SM2", reason="key.not_sm2"
                )
        elif item.tag == 0xA1:  # [1] publicKey
            point = decode_point(der.read_bit_string(der.parse_one(item.value, what=what), what=what))
    return d, point


def parse_pkcs8(data: bytes) -> tuple[int, tuple[int, int] | None]:
    what = "SM2 private key (PKCS#8)"
    top = der.parse_one(data, what=what)
    der.expect(top, der.TAG_SEQUENCE, what=what)
    items = der.children(top, what=what)
    if len(items) < 3 or der.read_integer(items[0], what=what) not in (0, 1):
        raise InvalidInputError(f"{what}: not a PrivateKeyInfo", reason="key.malformed")
    _check_algorithm(items[1], what)
    return parse_ec_private_key(der.expect(items[2], der.TAG_OCTET_STRING, what=what), what)


# -- encrypted PKCS#8 (PBES2) ---------------------------------------------------------------


def _derive(passphrase: bytes, salt: bytes, iterations: int, prf: str) -> bytes:
    algo: hashes.HashAlgorithm = hashes.SHA256() if prf == OID_HMAC_SHA256 else hashes.SHA1()  # noqa: S303
    return PBKDF2HMAC(algorithm=algo, length=32, salt=salt, iterations=iterations).derive(passphrase)


def encrypt_pkcs8(plain: bytes, passphrase: bytes) -> bytes:
    if not passphrase:
        raise InvalidInputError("a passphrase is required to encrypt a private key")
    salt = secrets.token_bytes(16)
    iv = secrets.token_bytes(16)
    key = _derive(passphrase, salt, PBKDF2_ITERATIONS, OID_HMAC_SHA256)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = enc.update(padded) + enc.finalize()
    kdf = der.sequence(
        der.oid(OID_PBKDF2),
        der.sequence(
            der.octet_string(salt),
            der.integer(PBKDF2_ITERATIONS),
            der.sequence(der.oid(OID_HMAC_SHA256), der.tlv(der.TAG_NULL, b"")),
        ),
    )
    scheme = der.sequence(der.oid(OID_AES256_CBC), der.octet_string(iv))
    alg = der.sequence(der.oid(OID_PBES2), der.sequence(kdf, scheme))
    return der.sequence(alg, der.octet_string(ciphertext))


def decrypt_pkcs8(data: bytes, passphrase: bytes) -> bytes:
    what = "encrypted private key"
    top = der.parse_one(data, what=what)
    der.expect(top, der.TAG_SEQUENCE, what=what)
    items = der.children(top, what=what)
    if len(items) != 2:
        raise InvalidInputError(f"{what}: malformed EncryptedPrivateKeyInfo", reason="key.malformed")
    alg = der.children(der.TLV(der.TAG_SEQUENCE, der.expect(items[0], der.TAG_SEQUENCE, what=what)))
    if len(alg) != 2 or der.read_oid(alg[0], what=what) != OID_PBES2:
        raise InvalidInputError(f"{what}: only PBES2 encryption is supported", reason="key.unsupported")
    params = der.children(alg[1], what=what)
    kdf = der.children(params[0], what=what) if params else []
    if len(params) != 2 or len(kdf) != 2 or der.read_oid(kdf[0], what=what) != OID_PBKDF2:
        raise InvalidInputError(f"{what}: only PBKDF2 key derivation is supported", reason="key.unsupported")
    kdf_params = der.children(kdf[1], what=what)
    if len(kdf_params) < 2:  # salt and iteration count are mandatory (RFC 8018 A.2)
        raise InvalidInputError(f"{what}: malformed PBKDF2 parameters", reason="key.malformed")
    salt = der.expect(kdf_params[0], der.TAG_OCTET_STRING, what=what)
    iterations = der.read_integer(kdf_params[1], what=what, max_bytes=8)
    if not 1 <= iterations <= MAX_PBKDF2_ITERATIONS:
        raise InvalidInputError(f"{what}: unreasonable PBKDF2 iteration count", reason="key.malformed")
    prf = OID_HMAC_SHA1
    for extra in kdf_params[2:]:
        if extra.tag == der.TAG_SEQUENCE:
            prf_alg = der.children(extra, what=what)
            if not prf_alg:
                raise InvalidInputError(f"{what}: empty PBKDF2 PRF", reason="key.malformed")
            prf = der.read_oid(prf_alg[0], what=what)
        elif extra.tag == der.TAG_INTEGER and der.read_integer(extra, what=what) != 32:
            raise InvalidInputError(f"{what}: unsupported key length", reason="key.unsupported")
    if prf not in (OID_HMAC_SHA256, OID_HMAC_SHA1):
        raise InvalidInputError(f"{what}: unsupported PBKDF2 PRF {prf}", reason="key.unsupported")
    scheme = der.children(params[1], what=what)
    if len(scheme) != 2 or der.read_oid(scheme[0], what=what) != OID_AES256_CBC:
        raise InvalidInputError(f"{what}: only AES-256-CBC is supported", reason="key.unsupported")
    iv = der.expect(scheme[1], der.TAG_OCTET_STRING, what=what)
    ciphertext = der.expect(items[1], der.TAG_OCTET_STRING, what=what)
    if len(iv) != 16 or not ciphertext or len(ciphertext) % 16:
        raise InvalidInputError(f"{what}: malformed ciphertext", reason="key.malformed")
    key = _derive(passphrase, salt, iterations, prf)
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = dec.update(ciphertext) + dec.finalize()
    try:
        unpadder = padding.PKCS7(128).unpadder()
        plain = unpadder.update(padded) + unpadder.finalize()
        der.parse_one(plain, what=what)
    except (ValueError, InvalidInputError):
        raise VerificationError(
            "wrong passphrase for the encrypted private key", reason="key.passphrase"
        ) from None
    return plain


# -- PEM ----------------------------------------------------------------------------------

# One lazy group and no \s* around it: surrounding \s* overlapping the class's \s made the
# match cubic in a run of whitespace (a BEGIN line + 8000 spaces took minutes). The body's
# whitespace is stripped after matching instead.
_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----([A-Za-z0-9+/=\s]*?)-----END \1-----")


def pem_encode(label: str, data: bytes) -> bytes:
    body = base64.encodebytes(data).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"\n".join([f"-----BEGIN {label}-----".encode(), *lines, f"-----END {label}-----".encode(), b""])


def pem_decode(data: bytes) -> tuple[str, bytes]:
    """The first PEM block: its label and DER body."""
    if len(data) > der.MAX_DER_SIZE * 2:
        raise InvalidInputError("PEM input is too large", reason="key.malformed")
    m = _PEM_RE.search(data)
    if m is None:
        raise InvalidInputError("no PEM block found", reason="key.malformed")
    try:
        body = base64.b64decode(b"".join(m.group(2).split()), validate=True)
    except ValueError:
        raise InvalidInputError("PEM body is not valid base64", reason="key.malformed") from None
    return m.group(1).decode(), body
