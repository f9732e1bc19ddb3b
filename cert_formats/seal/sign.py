"""Sealing an OFD package with an electronic seal (GB/T 38540-2020 V4 on GB/T 33190 §18).

    seal = load_seal(Path("agency.esl").read_bytes())
    sealed = seal_document(document, seal=seal, signer_key=agency_key, signer_cert=agency_cert,
                           stamps=[StampPlacement(page=0, x=140, y=220)])
    # or, for a package that exists already (a converted file, a second seal):
    sealed = seal_ofd(ofd_bytes, seal=seal, signer_key=..., signer_cert=..., stamps=[...])

The steps, labelled again in the code:

1. checks before signing: the signer's key belongs to its certificate, which
   the seal lists (by certificate or SM3 digest); the seal's own signature
   verifies with the maker's certificate; the signing time lies in the seal's
   validity and the signer certificate's;
2. the package: its parts (a whole, readable OFD), the ``DocBody/Signatures``
   pointer in ``OFD.xml`` (added when absent), the existing signature list
   (refused if an earlier signature protects it: nothing may be added then);
3. IDs: the new signature takes ``MaxSignId + 1``, each stamp the next ones;
   the files go to the first free ``Signs/Sign_<n>/``;
4. ``Signatures.xml`` with the new entry;
5. ``Signature.xml``: an SM3 ``Reference`` for every part of the package
   except ``Signatures.xml`` (so that a later seal can still be added; each
   later signature protects the earlier ones' files), the ``StampAnnot``
   appearances, ``SignedValue`` -> ``SignedValue.dat``;
6. ``TBS_Sign`` {4, the seal, the signing time, SM3(Signature.xml), the
   absolute path of Signature.xml, no extensions}, signed with SM2 (GM/T 0009
   default signer ID) and wrapped in ``SES_Signature`` with the signer's
   certificate; the signature is verified before it is written;
7. the package zipped again (:func:`cert_formats.ofd.pack_parts`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from cert_formats.ofd import OFDDocument, ReadLimits, build_parts, pack_parts, read_ofd
from cert_formats.ofd.writer import DOC_DIR, DOCUMENT_XML
from signing import sm3
from signing.errors import CertLedgerError, InvalidInputError
from signing.sm2 import DEFAULT_SIGNER_ID, SM2PrivateKey
from signing.x509 import Certificate, KeyUsage, load_certificate

from . import ofdsig
from .ses import (
    SM2_WITH_SM3,
    SM3,
    ElectronicSeal,
    encode_seal_signature,
    encode_sealing_info,
    parse_seal_signature,
)

#: ``Provider/@ProviderName`` and ``@Company`` written into every Signature.xml
PROVIDER_NAME: Final = "certledger"
PROVIDER_VERSION: Final = "1.0"
#: references in one signature; a licence package has a few dozen parts
MAX_REFERENCES: Final = 4096
#: signatures in one package
MAX_SIGNATURES: Final = 16

REASON_SIGNER: Final = "seal.signer_mismatch"
REASON_EXPIRED: Final = "seal.expired"
REASON_LOCKED: Final = "seal.locked"


@dataclass(frozen=True)
class StampPlacement:
    """Where the seal picture is shown: a page (0-based) and a box in page millimetres.

    ``(x, y)`` is the box's top-left corner (OFD axes: origin top-left, y down);
    width and height default to the picture's printed size.
    """

    page: int
    x: float
    y: float
    width: float | None = None
    height: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.page, bool) or not isinstance(self.page, int) or self.page < 0:
            raise InvalidInputError("a stamp's page is a 0-based page index", reason="seal.profile")
        for name in ("x", "y", "width", "height"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not -1e4 <= value <= 1e4:
                raise InvalidInputError(f"stamp {name} {value!r} is not a page coordinate", reason="seal.profile")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InvalidInputError(f"stamp {name} must be positive", reason="seal.profile")

    @classmethod
    def centred(cls, page: int, cx: float, cy: float, width: float, height: float | None = None) -> StampPlacement:
        """A box of ``width`` x ``height`` (default: square) centred on ``(cx, cy)``.

        Licence templates give the seal's centre and diameter (``[seal] x_mm, y_mm,
        diameter_mm``); this turns them into the box a ``StampAnnot`` needs.
        """
        h = width if height is None else height
        return cls(page=page, x=cx - width / 2, y=cy - h / 2, width=width, height=h)


def signing_time_text(when: datetime) -> str:
    """``SignatureDateTime`` text: the same instant as ``TBS_Sign.timeInfo``, as UTC GeneralizedTime."""
    return when.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


def seal_document(
    document: OFDDocument,
    *,
    seal: ElectronicSeal,
    signer_key: SM2PrivateKey,
    signer_cert: Certificate,
    stamps: Sequence[StampPlacement] = (),
    signed_at: datetime | None = None,
    unprotected: Callable[[str, bytes], bool] | None = None,
) -> bytes:
    """Render ``document`` (:func:`cert_formats.ofd.build_parts`) and seal it; returns the OFD file.

    ``unprotected(path, data)`` names files the seal must leave out of its
    References: only for content that is filled in after sealing and
    authenticates itself (certledger's proof-bundle attachment, which carries
    its own signatures and Merkle proofs). Verifiers exempt such files by name.

    ``signed_at`` defaults to now. Raises :class:`InvalidInputError` with reason
    ``seal.signer_mismatch`` (key/certificate/seal do not belong together),
    ``seal.expired`` (the seal or certificate is not valid at ``signed_at``),
    ``seal.signature_invalid`` (the seal's own signature is broken) or a
    ``seal.profile`` / ``ofd.*`` reason for bad input.
    """
    signatures_path = f"{DOC_DIR}/{ofdsig.SIGNS_DIR}/{ofdsig.SIGNATURES_FILE}"
    parts = build_parts(document, signatures_loc=signatures_path)
    left_out = frozenset(p for p, data in parts.items() if unprotected is not None and unprotected(p, data))
    return _seal_parts(parts, DOCUMENT_XML, signatures_path, ofdsig.SignatureList(0, ()),
                       seal, signer_key, signer_cert, stamps, signed_at, left_out)


def seal_ofd(
    data: bytes,
    *,
    seal: ElectronicSeal,
    signer_key: SM2PrivateKey,
    signer_cert: Certificate,
    stamps: Sequence[StampPlacement] = (),
    signed_at: datetime | None = None,
    limits: ReadLimits | None = None,
) -> bytes:
    """Seal an existing OFD package (read in full first); returns the sealed file.

    Earlier seals stay valid: their files are left untouched and protected by
    the new signature. Raises as :func:`seal_document`, plus ``seal.locked``
    when an earlier signature protects the signature list, and the ``ofd.*``
    reasons of :func:`cert_formats.ofd.read_ofd` for a package that is not a
    readable OFD.
    """
    # 2. the package, read in full: only a well-formed document is worth a seal
    result = read_ofd(data, limits=limits)
    xml_limits = (limits or ReadLimits()).xml
    parts = dict(result.parts)
    existing = ofdsig.SignatureList(0, ())
    if result.signatures_loc is None:
        signs_dir = posixpath.join(posixpath.dirname(result.doc_root), ofdsig.SIGNS_DIR)
        signatures_path = f"{signs_dir}/{ofdsig.SIGNATURES_FILE}"
        parts["OFD.xml"] = ofdsig.add_signatures_pointer(parts["OFD.xml"], signatures_path, limits=xml_limits)
    else:
        signatures_path = result.signatures_loc
        listed = parts.get(signatures_path)
        if listed is not None:
            existing = ofdsig.read_signature_list(listed, signatures_path, max_signatures=MAX_SIGNATURES,
                                                  limits=xml_limits)
        for entry in existing.entries:
            signature_xml = parts.get(entry.path)
            if signature_xml is None:
                raise InvalidInputError(f"signature {entry.sign_id} names a missing {entry.path!r}",
                                        reason="seal.malformed")
            earlier = ofdsig.read_signature_file(signature_xml, entry.path, max_references=MAX_REFERENCES,
                                                 limits=xml_limits)
            if any(ref.path == signatures_path for ref in earlier.references):
                raise InvalidInputError(
                    f"signature {entry.sign_id} protects the signature list: no seal can be added",
                    reason=REASON_LOCKED)
    return _seal_parts(parts, result.doc_root, signatures_path, existing, seal, signer_key, signer_cert,
                       stamps, signed_at)


def _check_signer(seal: ElectronicSeal, signer_key: SM2PrivateKey, signer_cert: Certificate,
                  when: datetime) -> None:
    """Step 1: refuse to make a signature the verifier would reject for a known reason."""
    if signer_key.public_key != signer_cert.public_key:
        raise InvalidInputError("the signer's key does not belong to its certificate", reason=REASON_SIGNER)
    if signer_cert.key_usage is None or KeyUsage.DIGITAL_SIGNATURE not in signer_cert.key_usage:
        raise InvalidInputError("the signer's certificate does not allow digitalSignature", reason=REASON_SIGNER)
    info = seal.info
    listed = (signer_cert.der in info.signer_certificates
              or any(d.value == sm3.sm3(signer_cert.der) for d in info.signer_cert_digests))
    if not listed:
        raise InvalidInputError(f"the seal {info.name!r} does not list the certificate of "
                                f"{signer_cert.subject.rfc4514()}", reason=REASON_SIGNER)
    if seal.algorithm != SM2_WITH_SM3:
        raise InvalidInputError(f"the seal is signed with {seal.algorithm}, not SM2-with-SM3",
                                reason="seal.unsupported")
    try:
        maker = load_certificate(seal.maker_certificate)
        maker.public_key.verify(seal.signature, seal.info_der, signer_id=DEFAULT_SIGNER_ID)
    except CertLedgerError as exc:
        raise InvalidInputError(f"the seal's own signature does not verify: {exc}",
                                reason="seal.signature_invalid") from None
    if not info.valid_at(when):
        raise InvalidInputError(f"the seal is valid {info.valid_start.isoformat()} .. "
                                f"{info.valid_end.isoformat()}, not at {when.isoformat()}", reason=REASON_EXPIRED)
    if not signer_cert.validity.contains(when):
        raise InvalidInputError(f"the signer's certificate is not valid at {when.isoformat()}",
                                reason=REASON_EXPIRED)


def _seal_parts(
    parts: dict[str, bytes],
    doc_root: str,
    signatures_path: str,
    existing: ofdsig.SignatureList,
    seal: ElectronicSeal,
    signer_key: SM2PrivateKey,
    signer_cert: Certificate,
    stamps: Sequence[StampPlacement],
    signed_at: datetime | None,
    left_out: frozenset[str] = frozenset(),
) -> bytes:
    if signed_at is not None and (signed_at.tzinfo is None or signed_at.utcoffset() is None):
        raise InvalidInputError("signed_at must be timezone-aware", reason="seal.time")
    when = (datetime.now(UTC) if signed_at is None else signed_at.astimezone(UTC)).replace(microsecond=0)

    # 1. checks before signing
    _check_signer(seal, signer_key, signer_cert, when)
    if len(existing.entries) >= MAX_SIGNATURES:
        raise InvalidInputError(f"the package already carries {MAX_SIGNATURES} signatures", reason="seal.profile")

    # 3. IDs and the folder
    pages = ofdsig.page_ids(parts, doc_root)
    next_id = max([existing.max_sign_id, *(int(e.sign_id) for e in existing.entries)]) + 1
    sign_id = str(next_id)
    annots: list[ofdsig.StampAnnot] = []
    picture = seal.info.picture
    for stamp in stamps:
        if stamp.page >= len(pages):
            raise InvalidInputError(f"stamp on page {stamp.page}, the document has {len(pages)} page(s)",
                                    reason="seal.profile")
        next_id += 1
        box = (float(stamp.x), float(stamp.y),
               float(stamp.width if stamp.width is not None else picture.width_mm),
               float(stamp.height if stamp.height is not None else picture.height_mm))
        annots.append(ofdsig.StampAnnot(annot_id=str(next_id), page_ref=pages[stamp.page], boundary=box))
    signs_dir = posixpath.dirname(signatures_path)
    sign_dir = ofdsig.sign_dir_for(list(parts), signs_dir)
    signature_path = f"{sign_dir}/{ofdsig.SIGNATURE_FILE}"
    signed_value_path = f"{sign_dir}/{ofdsig.SIGNED_VALUE_FILE}"

    # 4. Signatures.xml
    entries = (*existing.entries, ofdsig.SignatureListEntry(sign_id, ofdsig.TYPE_SEAL, signature_path))
    signature_list = ofdsig.write_signature_list(ofdsig.SignatureList(max_sign_id=next_id, entries=entries))

    # 5. Signature.xml over every part but the signature list
    protected = sorted(p for p in parts if p != signatures_path and p not in left_out)
    if len(protected) > MAX_REFERENCES:
        raise InvalidInputError(f"more than {MAX_REFERENCES} files to protect", reason="seal.profile")
    references = tuple(ofdsig.Reference(path=p, check_value=sm3.sm3(parts[p])) for p in protected)
    signature_xml = ofdsig.write_signature_file(ofdsig.SignatureFile(
        provider=ofdsig.Provider(name=PROVIDER_NAME, version=PROVIDER_VERSION, company=PROVIDER_NAME),
        signature_method=SM2_WITH_SM3,
        signature_date_time=signing_time_text(when),
        check_method=SM3,
        references=references,
        stamps=tuple(annots),
        seal_path=None,
        signed_value_path=signed_value_path,
    ))

    # 6. TBS_Sign, the SM2 signature, SES_Signature; verified before it is written
    tbs = encode_sealing_info(seal.der, when, sm3.sm3(signature_xml), ofdsig.absolute(signature_path))
    signature = signer_key.sign(tbs, signer_id=DEFAULT_SIGNER_ID)
    signed_value = encode_seal_signature(tbs, signer_cert.der, signature, SM2_WITH_SM3)
    check = parse_seal_signature(signed_value)
    try:
        signer_cert.public_key.verify(check.signature, check.to_sign.der, signer_id=DEFAULT_SIGNER_ID)
    except CertLedgerError as exc:  # pragma: no cover - only a broken backend gets here
        raise InvalidInputError(f"the seal signature just made does not verify: {exc}",
                                reason="seal.signature_invalid") from None

    # 7. the package
    parts[signatures_path] = signature_list
    parts[signature_path] = signature_xml
    parts[signed_value_path] = signed_value
    return pack_parts(parts)


__all__ = [
    "MAX_REFERENCES",
    "MAX_SIGNATURES",
    "PROVIDER_NAME",
    "StampPlacement",
    "seal_document",
    "seal_ofd",
    "signing_time_text",
]
