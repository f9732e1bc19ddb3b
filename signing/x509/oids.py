"""Object identifiers of the certificate profile, with the names people know them by."""

from __future__ import annotations

from typing import Final

#: GM/T 0006 / GB/T 33560: the SM2 curve (also the SPKI parameter)
SM2_CURVE: Final = "1.2.156.10197.1.301"
#: GM/T 0006: SM3 hash
SM3: Final = "1.2.156.10197.1.401"
#: GM/T 0006: SM2 signature with SM3 digest, the only certificate signature accepted here
SM2_WITH_SM3: Final = "1.2.156.10197.1.501"

EC_PUBLIC_KEY: Final = "1.2.840.10045.2.1"

# X.520 attribute types
COUNTRY: Final = "2.5.4.6"
STATE: Final = "2.5.4.8"
LOCALITY: Final = "2.5.4.7"
ORGANIZATION: Final = "2.5.4.10"
ORGANIZATIONAL_UNIT: Final = "2.5.4.11"
COMMON_NAME: Final = "2.5.4.3"
#: X.520 organizationIdentifier; carries the 统一社会信用代码 (see ADR 0003)
ORGANIZATION_IDENTIFIER: Final = "2.5.4.97"

# RFC 5280 extensions
BASIC_CONSTRAINTS: Final = "2.5.29.19"
KEY_USAGE: Final = "2.5.29.15"
EXTENDED_KEY_USAGE: Final = "2.5.29.37"
SUBJECT_KEY_IDENTIFIER: Final = "2.5.29.14"
AUTHORITY_KEY_IDENTIFIER: Final = "2.5.29.35"

#: extended key usages a certledger certificate may carry, by their OpenSSL short names
EXTENDED_KEY_USAGES: Final = {
    "serverAuth": "1.3.6.1.5.5.7.3.1",
    "clientAuth": "1.3.6.1.5.5.7.3.2",
    "codeSigning": "1.3.6.1.5.5.7.3.3",
    "emailProtection": "1.3.6.1.5.5.7.3.4",
    "timeStamping": "1.3.6.1.5.5.7.3.8",
    "OCSPSigning": "1.3.6.1.5.5.7.3.9",
    # RFC 9336: signing documents (licence files), the natural EKU for agency seals
    "documentSigning": "1.3.6.1.5.5.7.3.36",
}

#: names for signature algorithms people hand us by mistake, for a clearer error
KNOWN_SIGNATURE_ALGORITHMS: Final = {
    "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
    "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
    "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
    "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
    "1.3.101.112": "Ed25519",
    "1.2.156.10197.1.502": "SM2-with-SHA1",
    "1.2.156.10197.1.503": "SM2-with-SHA256",
}
