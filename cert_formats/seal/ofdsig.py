"""The OFD signature parts (GB/T 33190-2016 §18): ``Signatures.xml`` and ``Signature.xml``.

Writing and reading only; what the parts mean is decided by :mod:`.sign` and
:mod:`.verify`. The layout written (the one ofdrw, ofd.js and easyofd use)::

    OFD.xml                             DocBody/Signatures -> Doc_0/Signs/Signatures.xml
    Doc_0/Signs/Signatures.xml          MaxSignId, one Signature (ID, Type="Seal", BaseLoc) per seal
    Doc_0/Signs/Sign_0/Signature.xml    SignedInfo (Provider, SignatureMethod, SignatureDateTime,
                                        References with an SM3 CheckValue per protected file,
                                        StampAnnot) and SignedValue -> SignedValue.dat
    Doc_0/Signs/Sign_0/SignedValue.dat  DER SES_Signature (GB/T 38540 V4)

Locations are written absolute (``/Doc_0/...``), as ofdrw does, so that a
reader never has to guess what a relative path is relative to. Reading goes
through :func:`cert_formats.ofd.parse_xml` (defusedxml, size/depth/count limits)
and every location through :func:`cert_formats.ofd.resolve_loc`; anything that
does not fit raises :class:`InvalidInputError` ``seal.malformed``.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from cert_formats.ofd import OFD_NAMESPACE, Deadline, XmlLimits, parse_xml, resolve_loc
from cert_formats.ofd.geometry import fmt_number
from signing.errors import InvalidInputError

from .ses import SM2_WITH_SM3, SM3

SIGNS_DIR: Final = "Signs"
SIGNATURES_FILE: Final = "Signatures.xml"
SIGNATURE_FILE: Final = "Signature.xml"
SIGNED_VALUE_FILE: Final = "SignedValue.dat"
#: Signatures.xml Signature/@Type for an electronic seal (the other value, "Sign", is a bare signature)
TYPE_SEAL: Final = "Seal"
#: the names a CheckMethod may give SM3 (the OID is what certledger writes)
SM3_NAMES: Final = frozenset({SM3, "sm3"})

REASON_MALFORMED: Final = "seal.malformed"

_NS: Final = "{" + OFD_NAMESPACE + "}"
_XML_DECL: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_ID_RE: Final = re.compile(r"^\d{1,10}$")
_NUMBER_RE: Final = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)$")
_MAX_COORD: Final = 1_000_000.0


def _malformed(message: str, part: str) -> InvalidInputError:
    return InvalidInputError(message, reason=REASON_MALFORMED, details={"part": part})


def absolute(path: str) -> str:
    """A package path as the absolute ``ST_Loc`` written into the XML (``/Doc_0/...``)."""
    return "/" + path.lstrip("/")


# -- the model --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureListEntry:
    """One ``Signatures.xml`` ``Signature``: its ID, type and the resolved Signature.xml path."""

    sign_id: str
    sign_type: str
    path: str


@dataclass(frozen=True)
class SignatureList:
    """``Signatures.xml``: the highest ID handed out and the signatures, in file order."""

    max_sign_id: int
    entries: tuple[SignatureListEntry, ...]


@dataclass(frozen=True)
class Reference:
    """One protected file: its package path and the digest recorded for it."""

    path: str
    check_value: bytes


@dataclass(frozen=True)
class StampAnnot:
    """A seal's appearance: the page (by its ID) and the box in page millimetres."""

    annot_id: str
    page_ref: str
    boundary: tuple[float, float, float, float]


@dataclass(frozen=True)
class Provider:
    """``Provider``: the signing component that made the signature."""

    name: str
    version: str | None = None
    company: str | None = None


@dataclass(frozen=True)
class SignatureFile:
    """``Signature.xml``: what a signature protects and where its signed value is."""

    provider: Provider
    signature_method: str | None
    signature_date_time: str | None
    check_method: str | None
    references: tuple[Reference, ...]
    stamps: tuple[StampAnnot, ...]
    #: ``Seal/BaseLoc``: a separate copy of the seal (.esl), if the producer wrote one
    seal_path: str | None
    signed_value_path: str


# -- writing -----------------------------------------------------------------------------------


def _q(name: str) -> str:
    return f"ofd:{name}"


def _root(name: str) -> ET.Element:
    root = ET.Element(_q(name))
    root.set("xmlns:ofd", OFD_NAMESPACE)
    return root


def _child(parent: ET.Element, name: str, text: str | None = None,
           attrs: Mapping[str, str] | None = None) -> ET.Element:
    el = ET.SubElement(parent, _q(name))
    for key, value in (attrs or {}).items():
        el.set(key, value)
    if text is not None:
        el.text = text
    return el


def _serialise(root: ET.Element) -> bytes:
    return _XML_DECL + ET.tostring(root, encoding="unicode").encode("utf-8")


def write_signature_list(signatures: SignatureList) -> bytes:
    """``Signatures.xml`` bytes (locations written absolute)."""
    root = _root("Signatures")
    _child(root, "MaxSignId", str(signatures.max_sign_id))
    for entry in signatures.entries:
        _child(root, "Signature", attrs={"ID": entry.sign_id, "Type": entry.sign_type,
                                         "BaseLoc": absolute(entry.path)})
    return _serialise(root)


def write_signature_file(signature: SignatureFile) -> bytes:
    """``Signature.xml`` bytes, elements in the order of the GB/T 33190 schema."""
    root = _root("Signature")
    info = _child(root, "SignedInfo")
    attrs = {"ProviderName": signature.provider.name}
    if signature.provider.version is not None:
        attrs["Version"] = signature.provider.version
    if signature.provider.company is not None:
        attrs["Company"] = signature.provider.company
    _child(info, "Provider", attrs=attrs)
    if signature.signature_method is not None:
        _child(info, "SignatureMethod", signature.signature_method)
    if signature.signature_date_time is not None:
        _child(info, "SignatureDateTime", signature.signature_date_time)
    refs = _child(info, "References",
                  attrs={"CheckMethod": signature.check_method} if signature.check_method else None)
    for ref in signature.references:
        el = _child(refs, "Reference", attrs={"FileRef": absolute(ref.path)})
        _child(el, "CheckValue", base64.b64encode(ref.check_value).decode("ascii"))
    for stamp in signature.stamps:
        _child(info, "StampAnnot", attrs={
            "ID": stamp.annot_id, "PageRef": stamp.page_ref,
            "Boundary": " ".join(fmt_number(v) for v in stamp.boundary),
        })
    if signature.seal_path is not None:
        seal = _child(info, "Seal")
        _child(seal, "BaseLoc", absolute(signature.seal_path))
    _child(root, "SignedValue", absolute(signature.signed_value_path))
    return _serialise(root)


def add_signatures_pointer(ofd_xml: bytes, signatures_path: str, *, limits: XmlLimits | None = None) -> bytes:
    """``OFD.xml`` with ``DocBody/Signatures`` naming ``signatures_path`` (the package has none yet).

    The part is parsed and written again in the writer's form (``ofd:`` prefix);
    nothing signed can depend on its old bytes, since an unsigned package is the
    only one without a signature list.
    """
    root = parse_xml(ofd_xml, part="OFD.xml", limits=limits)
    if root.tag != _NS + "OFD":
        raise _malformed("OFD.xml has no ofd:OFD root", "OFD.xml")
    bodies = root.findall(_NS + "DocBody")
    if len(bodies) != 1:
        raise _malformed("OFD.xml must hold exactly one DocBody", "OFD.xml")
    body = bodies[0]
    if body.find(_NS + "Signatures") is not None:
        raise _malformed("OFD.xml already names a signature list", "OFD.xml")
    pointer = ET.Element(_NS + "Signatures")
    pointer.text = signatures_path
    # schema order: DocInfo, DocRoot, Versions, Signatures
    after = [i for i, el in enumerate(body) if el.tag in (_NS + "DocInfo", _NS + "DocRoot", _NS + "Versions")]
    body.insert(after[-1] + 1 if after else len(body), pointer)
    for el in root.iter():
        if not isinstance(el.tag, str) or not el.tag.startswith(_NS):
            raise _malformed("OFD.xml holds elements outside the OFD namespace", "OFD.xml")
        el.tag = _q(el.tag[len(_NS):])
        if any(key.startswith("{") for key in el.attrib):
            raise _malformed("OFD.xml holds namespaced attributes", "OFD.xml")
    # the namespace declaration first, as the writer puts it
    attributes = dict(root.attrib)
    root.attrib.clear()
    root.set("xmlns:ofd", OFD_NAMESPACE)
    root.attrib.update(attributes)
    return _serialise(root)


# -- reading -----------------------------------------------------------------------------------


def _local(el: ET.Element) -> str:
    return el.tag.rsplit("}", 1)[-1] if isinstance(el.tag, str) else ""


def _parse(data: bytes, part: str, root_name: str, limits: XmlLimits | None,
           deadline: Deadline | None) -> ET.Element:
    try:
        root = parse_xml(data, part=part, limits=limits, deadline=deadline)
    except InvalidInputError as exc:
        if exc.reason == "ofd.timeout":
            raise
        raise InvalidInputError(f"{exc} [{exc.reason}]", reason=REASON_MALFORMED, details={"part": part}) from None
    if root.tag != _NS + root_name:
        raise _malformed(f"{part!r} has root <{_local(root)}>, expected ofd:{root_name} "
                         f"in namespace {OFD_NAMESPACE}", part)
    return root


def _text(el: ET.Element | None) -> str | None:
    if el is None:
        return None
    return (el.text or "").strip()


def _resolve(loc: str | None, base_dir: str, part: str, what: str) -> str:
    if not loc:
        raise _malformed(f"{what} has no location", part)
    try:
        return resolve_loc(loc, base_dir, "", part=part)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{what}: {exc} [{exc.reason}]", reason=REASON_MALFORMED,
                                details={"part": part}) from None


def read_signature_list(data: bytes, part: str, *, max_signatures: int,
                        limits: XmlLimits | None = None, deadline: Deadline | None = None) -> SignatureList:
    """Parse an untrusted ``Signatures.xml``; ``part`` is its package path."""
    root = _parse(data, part, "Signatures", limits, deadline)
    max_text = _text(root.find(_NS + "MaxSignId"))
    max_id = 0
    if max_text:
        if not _ID_RE.match(max_text):
            raise _malformed(f"MaxSignId {max_text[:16]!r} is not a number", part)
        max_id = int(max_text)
    elements = root.findall(_NS + "Signature")
    if len(elements) > max_signatures:
        raise _malformed(f"more than {max_signatures} signatures", part)
    entries: list[SignatureListEntry] = []
    seen_ids: set[str] = set()
    seen_paths: set[str] = set()
    for el in elements:
        sign_id = (el.get("ID") or "").strip()
        if not _ID_RE.match(sign_id) or sign_id in seen_ids:
            raise _malformed(f"a Signature has a missing, malformed or repeated ID {sign_id[:16]!r}", part)
        seen_ids.add(sign_id)
        path = _resolve(el.get("BaseLoc"), posixpath.dirname(part), part, f"Signature {sign_id}")
        if path in seen_paths:
            raise _malformed(f"two signatures share {path!r}", part)
        seen_paths.add(path)
        entries.append(SignatureListEntry(sign_id=sign_id, sign_type=(el.get("Type") or TYPE_SEAL).strip(),
                                          path=path))
    return SignatureList(max_sign_id=max_id, entries=tuple(entries))


def _box(text: str | None, part: str) -> tuple[float, float, float, float]:
    tokens = (text or "").split()
    if len(tokens) != 4 or not all(_NUMBER_RE.match(t) for t in tokens):
        raise _malformed(f"StampAnnot Boundary {str(text)[:40]!r} is not four numbers", part)
    x, y, w, h = (float(t) for t in tokens)
    if w < 0 or h < 0 or any(abs(v) > _MAX_COORD for v in (x, y, w, h)):
        raise _malformed("StampAnnot Boundary is out of range", part)
    return x, y, w, h


def read_signature_file(data: bytes, part: str, *, max_references: int,
                        limits: XmlLimits | None = None, deadline: Deadline | None = None) -> SignatureFile:
    """Parse an untrusted ``Signature.xml``; ``part`` is its package path."""
    root = _parse(data, part, "Signature", limits, deadline)
    base_dir = posixpath.dirname(part)
    info = root.find(_NS + "SignedInfo")
    if info is None:
        raise _malformed("Signature.xml has no SignedInfo", part)
    provider_el = info.find(_NS + "Provider")
    if provider_el is None or not (provider_el.get("ProviderName") or "").strip():
        raise _malformed("SignedInfo has no Provider with a ProviderName", part)
    provider = Provider(name=(provider_el.get("ProviderName") or "").strip(),
                        version=provider_el.get("Version"), company=provider_el.get("Company"))
    refs_el = info.find(_NS + "References")
    if refs_el is None:
        raise _malformed("SignedInfo has no References", part)
    ref_elements = refs_el.findall(_NS + "Reference")
    if not ref_elements:
        raise _malformed("References lists no file", part)
    if len(ref_elements) > max_references:
        raise _malformed(f"more than {max_references} references", part)
    references: list[Reference] = []
    seen: set[str] = set()
    for el in ref_elements:
        if deadline is not None:
            deadline.check()
        path = _resolve(el.get("FileRef"), base_dir, part, "a Reference")
        if path in seen:
            raise _malformed(f"{path!r} is referenced twice", part)
        seen.add(path)
        value_text = _text(el.find(_NS + "CheckValue"))
        if not value_text:
            raise _malformed(f"the Reference to {path!r} has no CheckValue", part)
        try:
            value = base64.b64decode(value_text, validate=True)
        except (binascii.Error, ValueError):
            raise _malformed(f"the CheckValue of {path!r} is not base64", part) from None
        references.append(Reference(path=path, check_value=value))
    stamps: list[StampAnnot] = []
    for el in info.findall(_NS + "StampAnnot"):
        annot_id = (el.get("ID") or "").strip()
        page_ref = (el.get("PageRef") or "").strip()
        if not annot_id or not page_ref:
            raise _malformed("a StampAnnot lacks its ID or PageRef", part)
        stamps.append(StampAnnot(annot_id=annot_id[:64], page_ref=page_ref[:64],
                                 boundary=_box(el.get("Boundary"), part)))
    seal_el = info.find(_NS + "Seal")
    seal_path = None
    if seal_el is not None:
        seal_path = _resolve(_text(seal_el.find(_NS + "BaseLoc")), base_dir, part, "Seal/BaseLoc")
    signed_value = _resolve(_text(root.find(_NS + "SignedValue")), base_dir, part, "SignedValue")
    return SignatureFile(
        provider=provider,
        signature_method=_text(info.find(_NS + "SignatureMethod")),
        signature_date_time=_text(info.find(_NS + "SignatureDateTime")),
        check_method=(refs_el.get("CheckMethod") or "").strip() or None,
        references=tuple(references),
        stamps=tuple(stamps),
        seal_path=seal_path,
        signed_value_path=signed_value,
    )


def is_sm3(check_method: str | None) -> bool:
    """Whether a ``CheckMethod`` names SM3 (OID or name, any case); absent means SM3.

    Treating an absent method as SM3 costs nothing: SM3 is the only digest ever
    computed, so a producer cannot weaken the check by leaving the name out.
    """
    return check_method is None or check_method.strip().lower() in SM3_NAMES


def is_sm2_with_sm3(signature_method: str | None) -> bool:
    """Whether a ``SignatureMethod`` names SM2-with-SM3 (the OID; absent means "see SignedValue")."""
    return signature_method is None or signature_method.strip() == SM2_WITH_SM3


def page_ids(parts: Mapping[str, bytes], doc_root: str, *, limits: XmlLimits | None = None,
             deadline: Deadline | None = None) -> tuple[str, ...]:
    """The ``Page/@ID`` values of ``Document.xml``, in page order."""
    data = parts.get(doc_root)
    if data is None:
        raise _malformed(f"the package has no document root {doc_root!r}", doc_root)
    root = _parse(data, doc_root, "Document", limits, deadline)
    pages = root.find(_NS + "Pages")
    ids: list[str] = []
    for page in pages.findall(_NS + "Page") if pages is not None else []:
        page_id = (page.get("ID") or "").strip()
        if not _ID_RE.match(page_id):
            raise _malformed(f"a Page has a malformed ID {page_id[:16]!r}", doc_root)
        ids.append(page_id)
    return tuple(ids)


def doc_body_locations(ofd_xml: bytes, *, limits: XmlLimits | None = None,
                       deadline: Deadline | None = None) -> tuple[str, str | None]:
    """``(DocRoot, Signatures)`` package paths named by ``OFD.xml`` (Signatures may be absent)."""
    root = _parse(ofd_xml, "OFD.xml", "OFD", limits, deadline)
    bodies = root.findall(_NS + "DocBody")
    if len(bodies) != 1:
        raise _malformed("OFD.xml must hold exactly one DocBody", "OFD.xml")
    body = bodies[0]
    doc_root = _resolve(_text(body.find(_NS + "DocRoot")), "", "OFD.xml", "DocRoot")
    signatures = _text(body.find(_NS + "Signatures"))
    return doc_root, (_resolve(signatures, "", "OFD.xml", "Signatures") if signatures else None)


def sign_dir_for(existing: Sequence[str], signs_dir: str) -> str:
    """The first ``<signs_dir>/Sign_<n>`` folder no existing part lives in."""
    n = 0
    while any(p.startswith(f"{signs_dir}/Sign_{n}/") for p in existing):
        n += 1
    return f"{signs_dir}/Sign_{n}"


__all__ = [
    "SIGNATURES_FILE",
    "SIGNATURE_FILE",
    "SIGNED_VALUE_FILE",
    "SIGNS_DIR",
    "TYPE_SEAL",
    "Provider",
    "Reference",
    "SignatureFile",
    "SignatureList",
    "SignatureListEntry",
    "StampAnnot",
    "absolute",
    "add_signatures_pointer",
    "doc_body_locations",
    "is_sm2_with_sm3",
    "is_sm3",
    "page_ids",
    "read_signature_file",
    "read_signature_list",
    "sign_dir_for",
    "write_signature_file",
    "write_signature_list",
]
