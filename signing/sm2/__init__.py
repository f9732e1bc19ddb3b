"""SM2 digital signatures (GB/T 32918 / GM/T 0003) with explicit GM/T 0009 signer IDs."""

from signing.sm2.keys import SM2PrivateKey, SM2PublicKey, load_public_key
from signing.sm2.signature import decode_der, decode_raw, der_to_raw, encode_der, encode_raw, raw_to_der
from signing.sm2.za import DEFAULT_SIGNER_ID

__all__ = [
    "DEFAULT_SIGNER_ID",
    "SM2PrivateKey",
    "SM2PublicKey",
    "decode_der",
    "decode_raw",
    "der_to_raw",
    "encode_der",
    "encode_raw",
    "load_public_key",
    "raw_to_der",
]
