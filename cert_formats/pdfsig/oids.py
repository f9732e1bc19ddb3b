"""The SM2/SM3 object identifiers of PDF signatures, taught to asn1crypto once.

pyHanko builds and parses CMS through asn1crypto, which knows algorithms by
name. SM3 and SM2 are not in its tables, so :func:`register_sm_oids` adds them
(idempotently) before anything here builds or reads a CMS structure; code that
reads these algorithm identifiers elsewhere should compare ``.dotted``, since
``.native`` becomes the registered name once this module has run. The names
chosen are the ones pyHanko needs: ``sm3`` is what
``cryptography.hazmat.primitives.hashes.SM3`` is looked up by.

Why ``SignerInfo.signatureAlgorithm`` is SM2-with-SM3 (1.2.156.10197.1.501) and
not ``sm2-1`` (1.2.156.10197.1.301.1): GB/T 35275 / GM/T 0010 name the SM2
signature algorithm for ``digestEncryptionAlgorithm``, and implementations
split: GmSSL (the reference implementation of the GM standards) writes and
requires 1.2.156.10197.1.501, as do OpenSSL and Bouncy Castle CMS; ofdrw writes
1.2.156.10197.1.301.1. Signing uses .501 (also the certificates' algorithm);
verification accepts both. docs/formats-pdf-signature.md has the full profile.
"""

from __future__ import annotations

from typing import Any, Final

from asn1crypto import algos

from signing.errors import CryptoBackendError

#: GM/T 0006: SM3 hash (the CMS digestAlgorithm)
SM3: Final = "1.2.156.10197.1.401"
#: GM/T 0006: SM2 signature with SM3; what the signer writes in signatureAlgorithm
SM2_WITH_SM3: Final = "1.2.156.10197.1.501"
#: GM/T 0006 / GB/T 35275 ``sm2-1`` (SM2 digital signature); accepted when verifying
SM2_1: Final = "1.2.156.10197.1.301.1"

#: signature algorithms a verifier accepts for an SM2 SignerInfo
SM2_SIGNATURE_ALGORITHMS: Final = frozenset({SM2_WITH_SM3, SM2_1})

#: asn1crypto names registered for the OIDs above
SM3_NAME: Final = "sm3"
SM2_WITH_SM3_NAME: Final = "sm2_sm3"
SM2_1_NAME: Final = "sm2_1"


def _register(cls: Any, dotted: str, name: str) -> None:
    # asn1crypto keeps a forward map and a lazily built reverse map; both must agree
    existing = cls._map.get(dotted)
    if existing is not None and existing != name:
        raise CryptoBackendError(
            f"asn1crypto already maps {dotted} to {existing!r}, not {name!r}: "
            "two modules disagree on the name of an SM OID",
            reason="crypto.asn1_registry",
        )
    cls._map[dotted] = name
    if cls._reverse_map is not None:
        cls._reverse_map[name] = dotted


def register_sm_oids() -> None:
    """Teach asn1crypto SM3, SM2-with-SM3 and sm2-1 (the SM2 curve OID is not needed).

    Idempotent (each step re-checks and re-writes the same entry), so callers
    simply call it before building or reading a CMS; no lock is needed.
    """
    _register(algos.DigestAlgorithmId, SM3, SM3_NAME)
    _register(algos.SignedDigestAlgorithmId, SM2_WITH_SM3, SM2_WITH_SM3_NAME)
    _register(algos.SignedDigestAlgorithmId, SM2_1, SM2_1_NAME)
