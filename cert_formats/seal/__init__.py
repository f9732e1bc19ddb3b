"""Electronic seals on OFD files: GB/T 38540-2020 (V4 SESeal / SES_Signature) on GB/T 33190 §18.

Built on the format layer (:mod:`cert_formats.ofd`), which knows nothing about
signatures. Three steps, three modules:

* :mod:`.maker` — a seal maker makes a seal (``SESeal``) for agency certificates;
* :mod:`.sign` — an agency seals an OFD document with its key and that seal;
* :mod:`.verify` — anyone verifies every seal of an OFD file against trust anchors.

Typical use::

    from cert_formats.seal import (make_seal, render_seal_picture, seal_document,
                                   StampPlacement, inspect_ofd_seals, verify_ofd_seals)

    seal = make_seal(name="某某市市场监督管理局证照专用章", signers=[agency_cert],
                     maker_key=maker_key, maker_cert=maker_cert,
                     valid_start=start, valid_end=end,
                     picture=render_seal_picture("某某市市场监督管理局", caption="证照专用章"))
    sealed = seal_document(document, seal=seal, signer_key=agency_key, signer_cert=agency_cert,
                           stamps=[StampPlacement(page=0, x=140, y=215)])
    result = inspect_ofd_seals(sealed, [province_root])   # frozen result, one line per check
    verify_ofd_seals(sealed, [province_root])             # or: raise unless all pass
"""

from .maker import ORGANIZATION_SEAL, load_seal, make_seal, new_es_id, render_seal_picture
from .result import (
    REASON_CHAIN,
    REASON_DIGEST,
    REASON_EXPIRED,
    REASON_MALFORMED,
    REASON_MISSING,
    REASON_SIGNATURE,
    REASON_SIGNER,
    REASON_UNPROTECTED,
    REASON_UNSUPPORTED,
    CheckName,
    OFDSealVerification,
    SealCheck,
    SealSignatureResult,
    StampAppearance,
)
from .ses import (
    CertDigest,
    CertListType,
    ElectronicSeal,
    SealExtension,
    SealInfo,
    SealingInfo,
    SealPicture,
    SealSignature,
    SesLimits,
    parse_seal,
    parse_seal_signature,
)
from .sign import StampPlacement, seal_document, seal_ofd
from .verify import SealVerifyLimits, inspect_ofd_package, inspect_ofd_seals, verify_ofd_seals

__all__ = [
    "ORGANIZATION_SEAL",
    "REASON_CHAIN",
    "REASON_DIGEST",
    "REASON_EXPIRED",
    "REASON_MALFORMED",
    "REASON_MISSING",
    "REASON_SIGNATURE",
    "REASON_SIGNER",
    "REASON_UNPROTECTED",
    "REASON_UNSUPPORTED",
    "CertDigest",
    "CertListType",
    "CheckName",
    "ElectronicSeal",
    "OFDSealVerification",
    "SealCheck",
    "SealExtension",
    "SealInfo",
    "SealPicture",
    "SealSignature",
    "SealSignatureResult",
    "SealVerifyLimits",
    "SealingInfo",
    "SesLimits",
    "StampAppearance",
    "StampPlacement",
    "inspect_ofd_package",
    "inspect_ofd_seals",
    "load_seal",
    "make_seal",
    "new_es_id",
    "parse_seal",
    "parse_seal_signature",
    "render_seal_picture",
    "seal_document",
    "seal_ofd",
    "verify_ofd_seals",
]
