"""GB/T 38540-2020 electronic seals (SESeal) and seal signatures (SES_Signature), version 4.

The ASN.1, field by field with its sources, is in docs/formats-seal.md ("Seal
profile"). In short (V4; GM/T 0031-2014 "V1" differs and is refused)::

    SESeal        ::= SEQUENCE { eSealInfo SES_SealInfo, cert OCTET STRING,
                                 signAlgID OBJECT IDENTIFIER, signedValue BIT STRING }
    SES_SealInfo  ::= SEQUENCE { header SES_Header, esID IA5String,
                                 property SES_ESPropertyInfo, picture SES_ESPictrueInfo,
                                 extDatas ExtensionDatas OPTIONAL }
    SES_Header    ::= SEQUENCE { id IA5String ("ES"), version INTEGER (4), vid IA5String }
    SES_ESPropertyInfo ::= SEQUENCE { type INTEGER, name UTF8String, certListType INTEGER,
                                 certList SES_CertList, createDate GeneralizedTime,
                                 validStart GeneralizedTime, validEnd GeneralizedTime }
    SES_CertList  ::= CHOICE { certs CertInfoList, certDigestList CertDigestList }
    CertInfoList  ::= SEQUENCE OF OCTET STRING
    CertDigestList ::= SEQUENCE OF CertDigestObj
    CertDigestObj ::= SEQUENCE { type PrintableString, value OCTET STRING }
    SES_ESPictrueInfo ::= SEQUENCE { type IA5String, data OCTET STRING,
                                 width INTEGER, height INTEGER }     -- millimetres
    ExtensionDatas ::= SEQUENCE OF ExtData
    ExtData       ::= SEQUENCE { extnID OBJECT IDENTIFIER, critical BOOLEAN DEFAULT FALSE,
                                 extnValue OCTET STRING }
    TBS_Sign      ::= SEQUENCE { version INTEGER (4), eseal SESeal, timeInfo GeneralizedTime,
                                 dataHash BIT STRING, propertyInfo IA5String,
                                 extDatas [0] EXPLICIT ExtensionDatas OPTIONAL }
    SES_Signature ::= SEQUENCE { toSign TBS_Sign, cert OCTET STRING,
                                 signatureAlgID OBJECT IDENTIFIER, signature BIT STRING,
                                 timeStamp [0] EXPLICIT BIT STRING OPTIONAL }

Both CHOICE alternatives of ``SES_CertList`` are a SEQUENCE OF, so the choice is
made by ``certListType`` (1 = certificates, 2 = certificate digests), not by tag.

Parsing is hostile-input work. The steps, labelled again below:

1. size: the whole input and the picture are capped (:class:`SesLimits`);
2. strict DER: every TLV is walked (definite minimal lengths, no constructed
   strings, BOOLEAN 00/FF, bounded depth and element count, no trailing bytes)
   *before* asn1crypto, which is lenient about BER, sees the bytes;
3. structure: asn1crypto decodes the fields; whatever it raises becomes
   :class:`InvalidInputError` ``seal.malformed``;
4. profile: header "ES" version 4, GeneralizedTime times, BIT STRINGs without
   unused bits, counts of certificates and extensions within limits.

The bytes handed to signature verification (``SES_SealInfo`` for the maker's
signature, ``TBS_Sign`` for the signer's) are cut from the input itself, never
re-encoded, so what is verified is exactly what was signed.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from asn1crypto import core

from signing.errors import CertLedgerError, InvalidInputError

#: GB/T 33560 / GM/T 0006: SM2 signature with SM3
SM2_WITH_SM3: Final = "1.2.156.10197.1.501"
#: GB/T 33560 / GM/T 0006: SM3
SM3: Final = "1.2.156.10197.1.401"
#: GB/T 38540-2020 data structure version
SES_VERSION: Final = 4
#: SES_Header.id, fixed by the standard
HEADER_ID: Final = "ES"
#: SES_Header.vid written by certledger (the vendor id that tells implementations apart)
VENDOR_ID: Final = "certledger"

REASON_MALFORMED: Final = "seal.malformed"
REASON_UNSUPPORTED: Final = "seal.unsupported"

KIB: Final = 1024
MIB: Final = 1024 * KIB

_TAG_BOOLEAN: Final = 0x01
_TAG_SEQUENCE: Final = 0x30
# X.680 tag numbers of the string/bit types DER requires to be primitive
_PRIMITIVE_ONLY: Final = frozenset({3, 4, 12, 19, 20, 22, 23, 24, 26, 28, 30})
_ASN1_ERRORS: Final = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)
_IA5_RE: Final = re.compile(r"^[\x20-\x7e]*$")
_PRINTABLE_RE: Final = re.compile(r"^[A-Za-z0-9 '()+,\-./:=?]*$")
_OID_RE: Final = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")


@dataclass(frozen=True)
class SesLimits:
    """Bounds on a seal or seal signature from outside (each is something an attacker controls)."""

    #: a whole SES_Signature (SignedValue.dat) or SESeal; the picture dominates
    max_bytes: int = 2 * MIB
    #: the seal picture
    max_picture_bytes: int = 1 * MIB
    #: entries of the seal's signer certificate list
    max_certificates: int = 16
    #: ExtData entries in one ExtensionDatas
    max_extensions: int = 16
    #: one length or string field (names, identifiers, property info)
    max_text_chars: int = 1024
    #: nesting depth of the DER
    max_depth: int = 16
    #: TLVs in the whole structure (certificates and pictures are primitive, so few)
    max_nodes: int = 2048

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_picture_bytes", "max_certificates", "max_extensions",
                     "max_text_chars", "max_depth", "max_nodes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SesLimits.{name} must be positive")


def _malformed(message: str) -> InvalidInputError:
    return InvalidInputError(message, reason=REASON_MALFORMED)


# -- ASN.1 classes (asn1crypto) ------------------------------------------------------------


class SESHeader(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """SES_Header."""

    _fields = [  # noqa: RUF012 - asn1crypto's declaration style
        ("id", core.IA5String),
        ("version", core.Integer),
        ("vid", core.IA5String),
    ]


class CertInfoList(core.SequenceOf):  # type: ignore[misc]  # asn1crypto is untyped
    """CertInfoList: DER certificates of the signers the seal may be used by."""

    _child_spec = core.OctetString


class CertDigestObj(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """CertDigestObj: a signer certificate named by a digest."""

    _fields = [  # noqa: RUF012
        ("type", core.PrintableString),
        ("value", core.OctetString),
    ]


class CertDigestList(core.SequenceOf):  # type: ignore[misc]  # asn1crypto is untyped
    """CertDigestList."""

    _child_spec = CertDigestObj


class SESPropertyInfo(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """SES_ESPropertyInfo (V4: GeneralizedTime, certListType + certList)."""

    _fields = [  # noqa: RUF012
        ("type", core.Integer),
        ("name", core.UTF8String),
        ("cert_list_type", core.Integer),
        # a CHOICE of two SEQUENCE OFs cannot be told apart by tag: decoded by cert_list_type
        ("cert_list", core.Any),
        ("create_date", core.GeneralizedTime),
        ("valid_start", core.GeneralizedTime),
        ("valid_end", core.GeneralizedTime),
    ]


class SESPictureInfo(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """SES_ESPictrueInfo (the standard's spelling); width and height in millimetres."""

    _fields = [  # noqa: RUF012
        ("type", core.IA5String),
        ("data", core.OctetString),
        ("width", core.Integer),
        ("height", core.Integer),
    ]


class ExtData(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """ExtData: one vendor extension."""

    _fields = [  # noqa: RUF012
        ("extn_id", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extn_value", core.OctetString),
    ]


class ExtensionDatas(core.SequenceOf):  # type: ignore[misc]  # asn1crypto is untyped
    """ExtensionDatas."""

    _child_spec = ExtData


class SESSealInfo(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """SES_SealInfo: what the seal maker signs."""

    _fields = [  # noqa: RUF012
        ("header", SESHeader),
        ("es_id", core.IA5String),
        ("property", SESPropertyInfo),
        ("picture", SESPictureInfo),
        ("ext_datas", ExtensionDatas, {"optional": True}),
    ]


class SESeal(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """SESeal (V4): the seal info, the maker's certificate and the maker's signature."""

    _fields = [  # noqa: RUF012
        ("e_seal_info", SESSealInfo),
        ("cert", core.OctetString),
        ("sign_alg_id", core.ObjectIdentifier),
        ("signed_value", core.OctetBitString),
    ]


class TBSSign(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """TBS_Sign (V4): what the signer signs."""

    _fields = [  # noqa: RUF012
        ("version", core.Integer),
        ("eseal", SESeal),
        ("time_info", core.GeneralizedTime),
        ("data_hash", core.OctetBitString),
        ("property_info", core.IA5String),
        ("ext_datas", ExtensionDatas, {"explicit": 0, "optional": True}),
    ]


class SESSignature(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """SES_Signature (V4): the content of ``SignedValue.dat``."""

    _fields = [  # noqa: RUF012
        ("to_sign", TBSSign),
        ("cert", core.OctetString),
        ("signature_alg_id", core.ObjectIdentifier),
        ("signature", core.OctetBitString),
        ("time_stamp", core.OctetBitString, {"explicit": 0, "optional": True}),
    ]


# -- the model ---------------------------------------------------------------------------


class CertListType(enum.IntEnum):
    """SES_ESPropertyInfo.certListType."""

    #: certList holds the signers' DER certificates
    CERTIFICATES = 1
    #: certList holds digests of the signers' certificates
    DIGESTS = 2


def _utc(when: datetime, what: str) -> datetime:
    if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise InvalidInputError(f"{what} must be a timezone-aware datetime", reason="seal.time")
    # GeneralizedTime in DER is UTC with whole seconds here: normalise once so that the
    # model holds exactly what the encoding carries
    return when.astimezone(UTC).replace(microsecond=0)


def _ia5(value: str, what: str, *, allow_empty: bool = False, max_chars: int = 1024) -> str:
    if not isinstance(value, str) or (not value and not allow_empty):
        raise InvalidInputError(f"{what} must be non-empty text", reason="seal.profile")
    if len(value) > max_chars or not _IA5_RE.match(value):
        raise InvalidInputError(f"{what} must be printable ASCII (IA5String) of at most {max_chars} "
                                "characters", reason="seal.profile")
    return value


@dataclass(frozen=True)
class SealPicture:
    """SES_ESPictrueInfo: the seal's image and its printed size in whole millimetres."""

    image_type: str
    data: bytes = field(repr=False)
    width_mm: int
    height_mm: int

    def __post_init__(self) -> None:
        _ia5(self.image_type, "picture type", max_chars=16)
        if not isinstance(self.data, bytes) or not self.data:
            raise InvalidInputError("the seal picture is empty", reason="seal.profile")
        for name in ("width_mm", "height_mm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
                raise InvalidInputError(f"picture {name} must be 1..1000 mm, got {value!r}",
                                        reason="seal.profile")


@dataclass(frozen=True)
class SealExtension:
    """ExtData: a vendor extension (``critical`` ones a verifier does not know fail it)."""

    extn_id: str
    value: bytes = field(repr=False)
    critical: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.extn_id, str) or not _OID_RE.match(self.extn_id):
            raise InvalidInputError(f"extension id {self.extn_id!r} is not a dotted OID",
                                    reason="seal.profile")


@dataclass(frozen=True)
class CertDigest:
    """CertDigestObj: ``hash_type`` is free PrintableString text in the standard (e.g. ``sm3``)."""

    hash_type: str
    value: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.hash_type, str) or not self.hash_type or not _PRINTABLE_RE.match(self.hash_type):
            raise InvalidInputError("a certificate digest type must be PrintableString text",
                                    reason="seal.profile")
        if not isinstance(self.value, bytes) or not self.value:
            raise InvalidInputError("a certificate digest must be non-empty bytes", reason="seal.profile")


@dataclass(frozen=True)
class SealInfo:
    """SES_SealInfo with its header and property info flattened.

    Exactly one of ``signer_certificates`` (certListType 1, DER certificates) and
    ``signer_cert_digests`` (certListType 2) is non-empty. Times are UTC with
    whole seconds.
    """

    es_id: str
    name: str
    seal_type: int
    signer_certificates: tuple[bytes, ...]
    signer_cert_digests: tuple[CertDigest, ...]
    created: datetime
    valid_start: datetime
    valid_end: datetime
    picture: SealPicture
    vid: str = VENDOR_ID
    version: int = SES_VERSION
    extensions: tuple[SealExtension, ...] = ()

    def __post_init__(self) -> None:
        _ia5(self.es_id, "esID")
        _ia5(self.vid, "vid")
        if not isinstance(self.name, str) or not self.name.strip() or len(self.name) > 256:
            raise InvalidInputError("the seal name must be 1..256 characters", reason="seal.profile")
        if isinstance(self.seal_type, bool) or not isinstance(self.seal_type, int) or self.seal_type < 0:
            raise InvalidInputError("the seal type must be a non-negative integer", reason="seal.profile")
        certs = tuple(self.signer_certificates)
        digests = tuple(self.signer_cert_digests)
        if bool(certs) == bool(digests):
            raise InvalidInputError("a seal lists its signers either by certificate or by digest, "
                                    "and at least one", reason="seal.profile")
        object.__setattr__(self, "signer_certificates", certs)
        object.__setattr__(self, "signer_cert_digests", digests)
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for name in ("created", "valid_start", "valid_end"):
            object.__setattr__(self, name, _utc(getattr(self, name), name))
        if self.valid_end < self.valid_start:
            raise InvalidInputError("the seal's validity ends before it starts", reason="seal.profile")
        if not isinstance(self.picture, SealPicture):
            raise InvalidInputError("the seal needs a SealPicture", reason="seal.profile")

    @property
    def cert_list_type(self) -> CertListType:
        """1 when signers are listed by certificate, 2 when by digest."""
        return CertListType.CERTIFICATES if self.signer_certificates else CertListType.DIGESTS

    def valid_at(self, when: datetime) -> bool:
        """Whether ``when`` lies in [valid_start, valid_end] (both inclusive)."""
        return self.valid_start <= _utc(when, "time") <= self.valid_end


@dataclass(frozen=True)
class ElectronicSeal:
    """SESeal (电子印章): the seal info and the seal maker's signature over it.

    ``info_der`` is the exact ``SES_SealInfo`` encoding the maker signed;
    ``der`` is the whole ``SESeal`` (what is embedded in every signature made
    with this seal and what a ``.esl`` file holds).
    """

    info: SealInfo
    info_der: bytes = field(repr=False)
    maker_certificate: bytes = field(repr=False)
    algorithm: str
    signature: bytes = field(repr=False)
    der: bytes = field(repr=False)


@dataclass(frozen=True)
class SealingInfo:
    """TBS_Sign (签章信息): what the signer signs; ``der`` is its exact encoding."""

    version: int
    seal: ElectronicSeal
    signed_at: datetime
    data_hash: bytes
    property_info: str
    extensions: tuple[SealExtension, ...]
    der: bytes = field(repr=False)


@dataclass(frozen=True)
class SealSignature:
    """SES_Signature (电子签章数据), the content of ``SignedValue.dat``."""

    to_sign: SealingInfo
    signer_certificate: bytes = field(repr=False)
    algorithm: str
    signature: bytes = field(repr=False)
    #: the optional timeStamp over the signature, carried but not verified here
    timestamp: bytes | None = field(repr=False)
    der: bytes = field(repr=False)


# -- encoding ----------------------------------------------------------------------------


def _extensions_value(extensions: tuple[SealExtension, ...]) -> ExtensionDatas:
    return ExtensionDatas([
        ExtData({"extn_id": e.extn_id, "critical": e.critical, "extn_value": e.value}) for e in extensions
    ])


def encode_seal_info(info: SealInfo) -> bytes:
    """The DER ``SES_SealInfo`` of ``info`` (what the seal maker signs)."""
    if info.cert_list_type is CertListType.CERTIFICATES:
        cert_list: core.Asn1Value = CertInfoList(list(info.signer_certificates))
    else:
        cert_list = CertDigestList([CertDigestObj({"type": d.hash_type, "value": d.value})
                                    for d in info.signer_cert_digests])
    value: dict[str, Any] = {
        "header": SESHeader({"id": HEADER_ID, "version": info.version, "vid": info.vid}),
        "es_id": info.es_id,
        "property": SESPropertyInfo({
            "type": info.seal_type,
            "name": info.name,
            "cert_list_type": int(info.cert_list_type),
            "cert_list": core.Any.load(cert_list.dump()),
            "create_date": info.created,
            "valid_start": info.valid_start,
            "valid_end": info.valid_end,
        }),
        "picture": SESPictureInfo({
            "type": info.picture.image_type,
            "data": info.picture.data,
            "width": info.picture.width_mm,
            "height": info.picture.height_mm,
        }),
    }
    if info.extensions:
        value["ext_datas"] = _extensions_value(info.extensions)
    return bytes(SESSealInfo(value).dump())


def encode_seal(info_der: bytes, maker_certificate: bytes, signature: bytes,
                algorithm: str = SM2_WITH_SM3) -> bytes:
    """The DER ``SESeal`` from a signed ``SES_SealInfo`` (bytes kept as given)."""
    out = SESeal({
        "e_seal_info": SESSealInfo.load(info_der),
        "cert": maker_certificate,
        "sign_alg_id": algorithm,
        "signed_value": signature,
    }).dump()
    if info_der not in out:  # pragma: no cover - asn1crypto re-emits a loaded value unchanged
        raise AssertionError("SES_SealInfo was re-encoded")
    return bytes(out)


def encode_sealing_info(seal_der: bytes, signed_at: datetime, data_hash: bytes, property_info: str,
                        extensions: tuple[SealExtension, ...] = ()) -> bytes:
    """The DER ``TBS_Sign`` (version 4) over a ``SESeal`` given as its DER."""
    value: dict[str, Any] = {
        "version": SES_VERSION,
        "eseal": SESeal.load(seal_der),
        "time_info": _utc(signed_at, "signing time"),
        "data_hash": data_hash,
        "property_info": _ia5(property_info, "propertyInfo"),
    }
    if extensions:
        value["ext_datas"] = _extensions_value(extensions)
    out = TBSSign(value).dump()
    if seal_der not in out:  # pragma: no cover - asn1crypto re-emits a loaded value unchanged
        raise AssertionError("SESeal was re-encoded")
    return bytes(out)


def encode_seal_signature(tbs_der: bytes, signer_certificate: bytes, signature: bytes,
                          algorithm: str = SM2_WITH_SM3, timestamp: bytes | None = None) -> bytes:
    """The DER ``SES_Signature`` (``SignedValue.dat``) from a signed ``TBS_Sign``."""
    value: dict[str, Any] = {
        "to_sign": TBSSign.load(tbs_der),
        "cert": signer_certificate,
        "signature_alg_id": algorithm,
        "signature": signature,
    }
    if timestamp is not None:
        value["time_stamp"] = timestamp
    out = SESSignature(value).dump()
    if tbs_der not in out:  # pragma: no cover - asn1crypto re-emits a loaded value unchanged
        raise AssertionError("TBS_Sign was re-encoded")
    return bytes(out)


# -- 1./2. size and strict DER ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tlv:
    tag: int
    header: int  # bytes of tag + length
    value: bytes

    @property
    def raw_len(self) -> int:
        return self.header + len(self.value)


def _read_tlv(data: bytes, offset: int, what: str) -> tuple[_Tlv, int]:
    """One DER TLV at ``offset`` (definite, minimal length); returns it and the next offset."""
    if offset + 2 > len(data):
        raise _malformed(f"{what}: truncated (no tag/length at byte {offset})")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise _malformed(f"{what}: multi-byte tags are not used by GB/T 38540")
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise _malformed(f"{what}: indefinite length is BER, not DER")
    else:
        nbytes = first & 0x7F
        if nbytes > 4 or pos + nbytes > len(data):
            raise _malformed(f"{what}: bad length field at byte {offset}")
        raw = data[pos:pos + nbytes]
        length = int.from_bytes(raw, "big")
        if raw[0] == 0 or length < 0x80:
            raise _malformed(f"{what}: non-minimal length at byte {offset}")
        pos += nbytes
    end = pos + length
    if end > len(data):
        raise _malformed(f"{what}: truncated (a value at byte {offset} runs past the end)")
    return _Tlv(tag, pos - offset, data[pos:end]), end


def _check_node(node: _Tlv, what: str) -> None:
    universal = node.tag & 0xC0 == 0
    if universal and node.tag & 0x20 and (node.tag & 0x1F) in _PRIMITIVE_ONLY:
        raise _malformed(f"{what}: constructed string encoding is BER, not DER")
    if node.tag == _TAG_BOOLEAN and node.value not in (b"\x00", b"\xff"):
        raise _malformed(f"{what}: BOOLEAN must be 00 or FF in DER")


def _strict_der(data: bytes, limits: SesLimits, what: str) -> _Tlv:
    """Check ``data`` is one strictly DER-encoded SEQUENCE; return its top TLV."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _malformed(f"{what} must be bytes")
    data = bytes(data)
    if not data:
        raise _malformed(f"{what} is empty")
    if len(data) > limits.max_bytes:
        raise InvalidInputError(f"{what} is {len(data)} bytes (max {limits.max_bytes})",
                                reason="seal.too_large")
    budget = [limits.max_nodes]

    def walk(buf: bytes, depth: int) -> None:
        if depth > limits.max_depth:
            raise _malformed(f"{what} is nested too deeply")
        pos = 0
        while pos < len(buf):
            node, pos = _read_tlv(buf, pos, what)
            budget[0] -= 1
            if budget[0] < 0:
                raise _malformed(f"{what} has too many elements")
            _check_node(node, what)
            if node.tag & 0x20:
                walk(node.value, depth + 1)

    top, end = _read_tlv(data, 0, what)
    if end != len(data):
        raise _malformed(f"{what}: {len(data) - end} trailing bytes")
    if top.tag != _TAG_SEQUENCE:
        raise _malformed(f"{what} is not a DER SEQUENCE")
    walk(top.value, 1)
    return top


def _children(node: _Tlv, what: str) -> list[_Tlv]:
    out: list[_Tlv] = []
    pos = 0
    while pos < len(node.value):
        child, pos = _read_tlv(node.value, pos, what)
        out.append(child)
    return out


def _first_child_raw(node: _Tlv, what: str) -> bytes:
    """The exact encoding of the first element of a SEQUENCE (the signed part)."""
    child, end = _read_tlv(node.value, 0, what)
    if child.tag != _TAG_SEQUENCE:
        raise _malformed(f"{what}: the signed part is not a SEQUENCE")
    return node.value[:end]


# -- 3./4. structure and profile -------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    # asn1crypto appends "while parsing ..." lines; the first says what was wrong
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _text(value: Any, what: str, limits: SesLimits) -> str:
    text = value.native
    if not isinstance(text, str):
        raise _malformed(f"{what} is not text")
    if len(text) > limits.max_text_chars:
        raise _malformed(f"{what} is longer than {limits.max_text_chars} characters")
    return text


def _time(value: Any, what: str) -> datetime:
    if not isinstance(value, core.GeneralizedTime):  # pragma: no cover - the schema fixes the type
        raise _malformed(f"{what} is not a GeneralizedTime")
    when = value.native
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise _malformed(f"{what} is not a UTC GeneralizedTime")
    return when.astimezone(UTC)


def _octets_of_bits(value: Any, what: str) -> bytes:
    contents = value.contents
    if not contents or contents[0] != 0:
        raise _malformed(f"{what}: a BIT STRING with unused bits cannot hold bytes")
    return bytes(contents[1:])


def _integer(value: Any, what: str, low: int, high: int) -> int:
    number = value.native
    if not isinstance(number, int) or not low <= number <= high:
        raise _malformed(f"{what} is out of range ({number!r})")
    return number


def _extensions(value: Any, limits: SesLimits, what: str) -> tuple[SealExtension, ...]:
    if value is None or isinstance(value, core.Void):
        return ()
    items = list(value)
    if len(items) > limits.max_extensions:
        raise _malformed(f"{what} has more than {limits.max_extensions} extensions")
    return tuple(SealExtension(extn_id=item["extn_id"].dotted, value=bytes(item["extn_value"].native),
                               critical=bool(item["critical"].native)) for item in items)


def _seal_info(value: SESSealInfo, limits: SesLimits) -> SealInfo:
    header = value["header"]
    if _text(header["id"], "SES_Header.id", limits) != HEADER_ID:
        raise _malformed("SES_Header.id is not \"ES\"")
    version = header["version"].native
    if version != SES_VERSION:
        raise InvalidInputError(f"seal version {version!r} is not supported (GB/T 38540-2020 V4 only)",
                                reason=REASON_UNSUPPORTED)
    prop = value["property"]
    list_type = _integer(prop["cert_list_type"], "certListType", 1, 2)
    certs: tuple[bytes, ...] = ()
    digests: tuple[CertDigest, ...] = ()
    raw_list = prop["cert_list"].dump()
    if list_type == CertListType.CERTIFICATES:
        cert_items = list(CertInfoList.load(raw_list, strict=True))
        if len(cert_items) > limits.max_certificates:
            raise _malformed(f"the seal lists more than {limits.max_certificates} certificates")
        certs = tuple(bytes(c.native) for c in cert_items)
    else:
        digest_items = list(CertDigestList.load(raw_list, strict=True))
        if len(digest_items) > limits.max_certificates:
            raise _malformed(f"the seal lists more than {limits.max_certificates} certificate digests")
        digests = tuple(CertDigest(_text(d["type"], "CertDigestObj.type", limits), bytes(d["value"].native))
                        for d in digest_items)
    if not certs and not digests:
        raise _malformed("the seal lists no signer certificate")
    picture = value["picture"]
    data = bytes(picture["data"].native)
    if len(data) > limits.max_picture_bytes:
        raise InvalidInputError(f"the seal picture is {len(data)} bytes (max {limits.max_picture_bytes})",
                                reason="seal.too_large")
    return SealInfo(
        es_id=_text(value["es_id"], "esID", limits),
        name=_text(prop["name"], "seal name", limits),
        seal_type=_integer(prop["type"], "seal type", 0, 2**31 - 1),
        signer_certificates=certs,
        signer_cert_digests=digests,
        created=_time(prop["create_date"], "createDate"),
        valid_start=_time(prop["valid_start"], "validStart"),
        valid_end=_time(prop["valid_end"], "validEnd"),
        picture=SealPicture(
            image_type=_text(picture["type"], "picture type", limits),
            data=data,
            width_mm=_integer(picture["width"], "picture width", 1, 1000),
            height_mm=_integer(picture["height"], "picture height", 1, 1000),
        ),
        vid=_text(header["vid"], "vid", limits),
        version=version,
        extensions=_extensions(value["ext_datas"], limits, "SES_SealInfo.extDatas"),
    )


def _seal_from(value: SESeal, raw: bytes, info_der: bytes, limits: SesLimits) -> ElectronicSeal:
    return ElectronicSeal(
        info=_seal_info(value["e_seal_info"], limits),
        info_der=info_der,
        maker_certificate=bytes(value["cert"].native),
        algorithm=value["sign_alg_id"].dotted,
        signature=_octets_of_bits(value["signed_value"], "SESeal.signedValue"),
        der=raw,
    )


def _guard(what: str, parse: Any) -> Any:
    """Run an asn1crypto decoding step; anything it raises becomes ``seal.malformed``."""
    try:
        return parse()
    except InvalidInputError as exc:
        # the model's own checks (a reversed validity, a bad esID) are malformed input here
        if exc.reason in ("seal.profile", "seal.time"):
            raise _malformed(f"{what}: {exc}") from None
        raise
    except CertLedgerError:
        raise
    except _ASN1_ERRORS as exc:
        raise _malformed(f"{what}: {type(exc).__name__}: {_first_line(exc)}") from None


def parse_seal(data: bytes, *, limits: SesLimits | None = None) -> ElectronicSeal:
    """Parse an untrusted DER ``SESeal`` (a ``.esl`` file); raise ``seal.malformed`` if it is not one.

    Only parses: the maker's signature is checked by :mod:`.verify`.
    """
    limits = limits or SesLimits()
    # 1.-2. size and strict DER; the signed SES_SealInfo bytes cut from the input
    top = _strict_der(data, limits, "SESeal")
    raw = bytes(data)
    count = len(_children(top, "SESeal"))
    if count == 2:
        # GM/T 0031-2014: SESeal ::= SEQUENCE { eSealInfo, signInfo }
        raise InvalidInputError("a GM/T 0031-2014 (V1) seal; only GB/T 38540-2020 V4 is supported",
                                reason=REASON_UNSUPPORTED)
    if count != 4:
        raise _malformed("SESeal: expected eSealInfo, cert, signAlgID and signedValue (V4)")
    info_der = _first_child_raw(top, "SESeal")

    # 3.-4. structure and profile
    def parse() -> ElectronicSeal:
        value = SESeal.load(raw, strict=True)
        return _seal_from(value, raw, info_der, limits)

    seal: ElectronicSeal = _guard("SESeal", parse)
    return seal


def parse_seal_signature(data: bytes, *, limits: SesLimits | None = None) -> SealSignature:
    """Parse an untrusted DER ``SES_Signature`` (``SignedValue.dat``), V4 only.

    Raises ``seal.malformed`` for anything that is not one, ``seal.unsupported``
    for a GM/T 0031-2014 (V1) signature, ``seal.too_large`` over ``limits``.
    Only parses: :mod:`.verify` checks the signatures.
    """
    limits = limits or SesLimits()
    # 1.-2. size and strict DER
    top = _strict_der(data, limits, "SES_Signature")
    raw = bytes(data)
    parts = _children(top, "SES_Signature")
    if len(parts) == 2:
        # GM/T 0031-2014: SES_Signature ::= SEQUENCE { toSign, signature }
        raise InvalidInputError("a GM/T 0031-2014 (V1) seal signature; only GB/T 38540-2020 V4 is supported",
                                reason=REASON_UNSUPPORTED)
    if len(parts) not in (4, 5):
        raise _malformed("SES_Signature: expected toSign, cert, signatureAlgID, signature [, timeStamp]")
    tbs_der = _first_child_raw(top, "SES_Signature")
    tbs_top, _end = _read_tlv(tbs_der, 0, "TBS_Sign")
    tbs_parts = _children(tbs_top, "TBS_Sign")
    if len(tbs_parts) < 2:
        raise _malformed("TBS_Sign: too few elements")
    seal_der = tbs_parts[1]
    if seal_der.tag != _TAG_SEQUENCE or len(_children(seal_der, "SESeal")) != 4:
        raise _malformed("TBS_Sign.eseal is not a V4 SESeal")
    seal_raw_start = tbs_parts[0].raw_len
    seal_raw = tbs_top.value[seal_raw_start:seal_raw_start + seal_der.raw_len]
    info_der = _first_child_raw(seal_der, "SESeal")

    # 3.-4. structure and profile
    def parse() -> SealSignature:
        value = SESSignature.load(raw, strict=True)
        tbs = value["to_sign"]
        version = tbs["version"].native
        if version != SES_VERSION:
            raise InvalidInputError(f"TBS_Sign version {version!r} is not supported (V4 only)",
                                    reason=REASON_UNSUPPORTED)
        seal = _seal_from(tbs["eseal"], seal_raw, info_der, limits)
        if seal.info.version != version:
            raise _malformed("TBS_Sign.version differs from the seal's version")
        sealing = SealingInfo(
            version=version,
            seal=seal,
            signed_at=_time(tbs["time_info"], "timeInfo"),
            data_hash=_octets_of_bits(tbs["data_hash"], "TBS_Sign.dataHash"),
            property_info=_text(tbs["property_info"], "propertyInfo", limits),
            extensions=_extensions(tbs["ext_datas"], limits, "TBS_Sign.extDatas"),
            der=tbs_der,
        )
        stamp = value["time_stamp"]
        timestamp = None if isinstance(stamp, core.Void) else _octets_of_bits(stamp, "timeStamp")
        return SealSignature(
            to_sign=sealing,
            signer_certificate=bytes(value["cert"].native),
            algorithm=value["signature_alg_id"].dotted,
            signature=_octets_of_bits(value["signature"], "SES_Signature.signature"),
            timestamp=timestamp,
            der=raw,
        )

    signature: SealSignature = _guard("SES_Signature", parse)
    return signature


__all__ = [
    "HEADER_ID",
    "SES_VERSION",
    "SM2_WITH_SM3",
    "SM3",
    "VENDOR_ID",
    "CertDigest",
    "CertDigestList",
    "CertDigestObj",
    "CertInfoList",
    "CertListType",
    "ElectronicSeal",
    "ExtData",
    "ExtensionDatas",
    "SESHeader",
    "SESPictureInfo",
    "SESPropertyInfo",
    "SESSealInfo",
    "SESSignature",
    "SESeal",
    "SealExtension",
    "SealInfo",
    "SealPicture",
    "SealSignature",
    "SealingInfo",
    "SesLimits",
    "TBSSign",
    "encode_seal",
    "encode_seal_info",
    "encode_seal_signature",
    "encode_sealing_info",
    "parse_seal",
    "parse_seal_signature",
]
