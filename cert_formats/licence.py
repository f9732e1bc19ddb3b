"""The licence data model: GB/T 36903-2018 metadata of one electronic licence.

A :class:`Licence` validates itself when it is built, so an instance that exists
is well formed: codes pass their check characters, the GB/T 36904 identifier
agrees with the type code, issuer code and version, dates are in order. Which
extension fields (承载信息) a licence type needs is the business of its template
(:mod:`cert_formats.template`), not of this model.

The model does no I/O. :meth:`Licence.to_dict` / :meth:`Licence.from_dict` map it
to a JSON-safe dict with stable English keys; the Chinese metadata names are in
:data:`FIELD_LABELS` and docs/formats.md.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from cert_formats.credit_code import PROVINCE_PREFIXES, validate_credit_code, validate_id_number
from cert_formats.identifier import LicenceIdentifier
from signing.errors import InvalidInputError

REASON_FIELD_MISSING: Final = "licence.field_missing"
REASON_BAD_FIELD: Final = "licence.bad_field"
REASON_UNKNOWN_FIELD: Final = "licence.unknown_field"
REASON_IDENTIFIER_MISMATCH: Final = "licence.identifier_mismatch"
REASON_BAD_DATES: Final = "licence.bad_dates"
REASON_BAD_REGION: Final = "licence.bad_region_code"
REASON_BAD_EXTENSION: Final = "licence.bad_extension"
REASON_MALFORMED: Final = "licence.malformed"

#: largest JSON document :meth:`Licence.from_json` will parse
MAX_JSON_BYTES: Final = 256 * 1024
MAX_EXTENSIONS: Final = 64
MAX_EXTENSION_VALUE: Final = 4000

#: English key -> GB/T 36903 metadata name, in serialisation order
FIELD_LABELS: Final[Mapping[str, str]] = {
    "name": "证照名称",
    "type_code": "证照类型代码",
    "number": "证照编号",
    "identifier": "证照标识",
    "holder": "持证主体",
    "holder_code": "持证主体代码",
    "holder_code_type": "持证主体代码类型",
    "issuer_name": "证照颁发机构",
    "issuer_code": "证照颁发机构代码",
    "issue_date": "证照颁发日期",
    "valid_from": "证照有效期起始日期",
    "valid_until": "证照有效期截止日期",
    "region_code": "证照所属行政区划代码",
    "version": "版本号",
    "seal": "签章",
    "extensions": "承载信息",
}

#: printed for a licence without an end date
LONG_TERM_LABEL: Final = "长期"

_EXT_KEY_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_REGION_RE: Final = re.compile(r"^\d{6}$")
_OTHER_CODE_RE: Final = re.compile(r"^[0-9A-Za-z()\-]{1,64}$")


class HolderCodeType(StrEnum):
    """持证主体代码类型: which code ``holder_code`` is (values are GB/T 36903 codes)."""

    USCC = "001"  # 统一社会信用代码
    OTHER_ORG = "099"  # 其他法人或其他组织有效证照号码
    RESIDENT_ID = "111"  # 公民身份号码
    OTHER_PERSON = "999"  # 其他自然人有效证件号码

    @property
    def label(self) -> str:
        """The Chinese name printed on a licence face."""
        return _HOLDER_CODE_LABELS[self]

    @property
    def is_person(self) -> bool:
        return self in (HolderCodeType.RESIDENT_ID, HolderCodeType.OTHER_PERSON)


_HOLDER_CODE_LABELS: Final = {
    HolderCodeType.USCC: "统一社会信用代码",
    HolderCodeType.OTHER_ORG: "其他法人或其他组织有效证照号码",
    HolderCodeType.RESIDENT_ID: "公民身份号码",
    HolderCodeType.OTHER_PERSON: "其他自然人有效证件号码",
}


@dataclass(frozen=True)
class SealInfo:
    """签章: who sealed the licence file. Empty until the sealing step fills it.

    Rendering never needs these; the PAdES / GB/T 38540 sealing steps record here
    which seal and key they used so the metadata names them.
    """

    seal_name: str = ""  # 印章名称
    seal_code: str = ""  # 印章编码 (GB/T 38540 ES ID)
    signer_key_id: str = ""  # SM2 key id (hex SM3 of the SPKI)
    signed_at: str = ""  # 签章时间, ISO 8601

    def __post_init__(self) -> None:
        for key in ("seal_name", "seal_code", "signer_key_id", "signed_at"):
            _text(getattr(self, key), f"seal.{key}", max_len=200, required=False)

    def to_dict(self) -> dict[str, str]:
        return {
            "seal_name": self.seal_name,
            "seal_code": self.seal_code,
            "signer_key_id": self.signer_key_id,
            "signed_at": self.signed_at,
        }

    @classmethod
    def from_dict(cls, obj: Any) -> SealInfo:
        data = _mapping(obj, "seal")
        _no_unknown(data, {"seal_name", "seal_code", "signer_key_id", "signed_at"}, "seal")
        return cls(**{k: _str_field(data, k, "seal.", required=False) for k in data})


@dataclass(frozen=True)
class Licence:
    """One electronic licence's GB/T 36903 metadata. Validates itself on construction."""

    name: str
    type_code: str
    number: str
    identifier: str
    holder: str
    holder_code: str
    holder_code_type: HolderCodeType
    issuer_name: str
    issuer_code: str
    issue_date: _dt.date
    valid_from: _dt.date
    #: None means 长期 (no end date)
    valid_until: _dt.date | None
    region_code: str
    version: int = 1
    seal: SealInfo = field(default_factory=SealInfo)
    #: 承载信息: ordered (key, value) pairs; which keys are allowed is the template's call
    extensions: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # 1. plain text fields
        _text(self.name, "name", max_len=64)
        _text(self.number, "number", max_len=64)
        _text(self.holder, "holder", max_len=200)
        _text(self.issuer_name, "issuer_name", max_len=200)
        # 2. codes with check characters
        if not isinstance(self.holder_code_type, HolderCodeType):
            raise InvalidInputError("holder_code_type must be a HolderCodeType", reason=REASON_BAD_FIELD)
        _check_holder_code(self.holder_code, self.holder_code_type)
        validate_credit_code(_text(self.issuer_code, "issuer_code", max_len=18))
        _text(self.type_code, "type_code", max_len=21)
        if len(self.type_code) != 21 or not (self.type_code[18:].isascii() and self.type_code[18:].isdigit()):
            raise InvalidInputError(
                "type_code is the defining agency's credit code plus 3 digits",
                reason=REASON_BAD_FIELD,
            )
        validate_credit_code(self.type_code[:18])
        # 3. region and version
        if not isinstance(self.region_code, str) or not _REGION_RE.match(self.region_code):
            raise InvalidInputError("region_code is a 6-digit GB/T 2260 code", reason=REASON_BAD_REGION)
        if self.region_code[:2] not in PROVINCE_PREFIXES:
            raise InvalidInputError(
                f"region_code {self.region_code} is not in a GB/T 2260 province",
                reason=REASON_BAD_REGION,
            )
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise InvalidInputError("version must be an integer", reason=REASON_BAD_FIELD)
        # 4. the identifier must name this licence: same type, issuer and version
        parsed = LicenceIdentifier.parse(_text(self.identifier, "identifier", max_len=200))
        mismatched = [
            key
            for key, ours, theirs in (
                ("type_code", self.type_code, parsed.type_code),
                ("issuer_code", self.issuer_code, parsed.issuer_code),
                ("version", self.version, parsed.version),
            )
            if ours != theirs
        ]
        if mismatched:
            raise InvalidInputError(
                f"identifier disagrees with the licence's {', '.join(mismatched)}",
                reason=REASON_IDENTIFIER_MISMATCH,
                details={"fields": mismatched},
            )
        # 5. dates
        for key in ("issue_date", "valid_from"):
            value = getattr(self, key)
            if not isinstance(value, _dt.date) or isinstance(value, _dt.datetime):
                raise InvalidInputError(f"{key} must be a date", reason=REASON_BAD_DATES)
        if self.valid_until is not None:
            if not isinstance(self.valid_until, _dt.date) or isinstance(self.valid_until, _dt.datetime):
                raise InvalidInputError("valid_until must be a date or None", reason=REASON_BAD_DATES)
            if self.valid_until < self.valid_from:
                raise InvalidInputError("valid_until is before valid_from", reason=REASON_BAD_DATES)
            if self.valid_until < self.issue_date:
                raise InvalidInputError(
                    "the licence would be expired on the day it is issued",
                    reason=REASON_BAD_DATES,
                )
        # 6. seal and extensions
        if not isinstance(self.seal, SealInfo):
            raise InvalidInputError("seal must be a SealInfo", reason=REASON_BAD_FIELD)
        _check_extensions(self.extensions)

    # -- derived views ---------------------------------------------------------

    @property
    def parsed_identifier(self) -> LicenceIdentifier:
        """The identifier as a :class:`LicenceIdentifier` (already verified)."""
        return LicenceIdentifier.parse(self.identifier)

    @property
    def serial(self) -> str:
        """流水号, taken from the identifier."""
        return self.parsed_identifier.serial

    @property
    def is_long_term(self) -> bool:
        return self.valid_until is None

    def extension(self, key: str) -> str | None:
        """The value of one extension field, or None when the licence does not carry it."""
        for k, v in self.extensions:
            if k == key:
                return v
        return None

    def extension_map(self) -> dict[str, str]:
        """The extension fields as a dict (insertion-ordered)."""
        return dict(self.extensions)

    # -- serialisation ---------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict with the keys of :data:`FIELD_LABELS`, in that order."""
        return {
            "name": self.name,
            "type_code": self.type_code,
            "number": self.number,
            "identifier": self.identifier,
            "holder": self.holder,
            "holder_code": self.holder_code,
            "holder_code_type": self.holder_code_type.value,
            "issuer_name": self.issuer_name,
            "issuer_code": self.issuer_code,
            "issue_date": self.issue_date.isoformat(),
            "valid_from": self.valid_from.isoformat(),
            "valid_until": None if self.valid_until is None else self.valid_until.isoformat(),
            "region_code": self.region_code,
            "version": self.version,
            "seal": self.seal.to_dict(),
            "extensions": [{"key": k, "value": v} for k, v in self.extensions],
        }

    @classmethod
    def from_dict(cls, obj: Any) -> Licence:
        """Build and validate a licence from :meth:`to_dict` output (or hostile JSON).

        Every key must be known; ``seal`` and ``extensions`` may be omitted (empty),
        every other key is required (``valid_until`` may be null for 长期).
        """
        data = _mapping(obj, "licence")
        _no_unknown(data, set(FIELD_LABELS), "licence")
        required = [k for k in FIELD_LABELS if k not in ("seal", "extensions")]
        missing = [k for k in required if k not in data]
        if missing:
            raise InvalidInputError(
                f"licence is missing {', '.join(missing)}",
                reason=REASON_FIELD_MISSING,
                details={"fields": missing},
            )
        code_type_text = _str_field(data, "holder_code_type")
        try:
            code_type = HolderCodeType(code_type_text)
        except ValueError:
            raise InvalidInputError(
                f"unknown holder_code_type {code_type_text!r:.20}", reason=REASON_BAD_FIELD
            ) from None
        version = data["version"]
        if isinstance(version, bool) or not isinstance(version, int):
            raise InvalidInputError("version must be an integer", reason=REASON_BAD_FIELD)
        valid_until_raw = data["valid_until"]
        return cls(
            name=_str_field(data, "name"),
            type_code=_str_field(data, "type_code"),
            number=_str_field(data, "number"),
            identifier=_str_field(data, "identifier"),
            holder=_str_field(data, "holder"),
            holder_code=_str_field(data, "holder_code"),
            holder_code_type=code_type,
            issuer_name=_str_field(data, "issuer_name"),
            issuer_code=_str_field(data, "issuer_code"),
            issue_date=_date_field(data, "issue_date"),
            valid_from=_date_field(data, "valid_from"),
            valid_until=None if valid_until_raw is None else _date_field(data, "valid_until"),
            region_code=_str_field(data, "region_code"),
            version=version,
            seal=SealInfo.from_dict(data["seal"]) if "seal" in data else SealInfo(),
            extensions=_extensions_from(data.get("extensions", [])),
        )

    def to_json(self) -> str:
        """Compact JSON text of :meth:`to_dict` (UTF-8 safe, non-ASCII kept)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: bytes | str) -> Licence:
        """Parse JSON (at most 256 KiB; duplicate keys refused) and validate it."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        if len(raw) > MAX_JSON_BYTES:
            raise InvalidInputError("licence JSON is larger than 256 KiB", reason=REASON_MALFORMED)
        try:
            obj = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise InvalidInputError(f"licence JSON does not parse: {exc}", reason=REASON_MALFORMED) from None
        return cls.from_dict(obj)

    def validity_text(self) -> str:
        """The validity period as printed: ``2024年01月15日 至 长期``."""
        start = format_date_cn(self.valid_from)
        end = LONG_TERM_LABEL if self.valid_until is None else format_date_cn(self.valid_until)
        return f"{start} 至 {end}"


def format_date_cn(value: _dt.date) -> str:
    """A date the way Chinese licences print it: ``2024年01月15日``."""
    return f"{value.year:04d}年{value.month:02d}月{value.day:02d}日"


# -- helpers -----------------------------------------------------------------------


def _text(value: object, key: str, *, max_len: int, required: bool = True) -> str:
    """A single-line printable string without edge whitespace."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{key} must be a string", reason=REASON_BAD_FIELD)
    if not value:
        if required:
            raise InvalidInputError(f"{key} is empty", reason=REASON_FIELD_MISSING, details={"fields": [key]})
        return value
    if len(value) > max_len:
        raise InvalidInputError(f"{key} is longer than {max_len} characters", reason=REASON_BAD_FIELD)
    if value != value.strip():
        raise InvalidInputError(f"{key} has leading or trailing whitespace", reason=REASON_BAD_FIELD)
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") for ch in value):
        # control, format (bidi overrides), surrogates, unassigned: never on a licence
        raise InvalidInputError(f"{key} contains control or unassigned characters", reason=REASON_BAD_FIELD)
    return value


def _check_holder_code(code: object, code_type: HolderCodeType) -> None:
    text = _text(code, "holder_code", max_len=64)
    if code_type is HolderCodeType.USCC:
        validate_credit_code(text)
    elif code_type is HolderCodeType.RESIDENT_ID:
        validate_id_number(text)
    elif not _OTHER_CODE_RE.match(text):
        raise InvalidInputError("holder_code is 1-64 letters, digits, '-' or brackets", reason=REASON_BAD_FIELD)


def _check_extensions(extensions: object) -> None:
    if not isinstance(extensions, tuple):
        raise InvalidInputError("extensions must be a tuple of (key, value)", reason=REASON_BAD_EXTENSION)
    if len(extensions) > MAX_EXTENSIONS:
        raise InvalidInputError(f"more than {MAX_EXTENSIONS} extension fields", reason=REASON_BAD_EXTENSION)
    seen: set[str] = set()
    for item in extensions:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise InvalidInputError("each extension is a (key, value) pair", reason=REASON_BAD_EXTENSION)
        key, value = item
        if not isinstance(key, str) or not _EXT_KEY_RE.match(key):
            raise InvalidInputError(f"extension key {key!r:.40} is not lower_snake_case", reason=REASON_BAD_EXTENSION)
        if key in seen:
            raise InvalidInputError(f"extension {key} appears twice", reason=REASON_BAD_EXTENSION)
        seen.add(key)
        if not isinstance(value, str) or len(value) > MAX_EXTENSION_VALUE:
            raise InvalidInputError(
                f"extension {key} must be a string of at most {MAX_EXTENSION_VALUE} characters",
                reason=REASON_BAD_EXTENSION,
            )
        # values may span lines (经营范围); every other control character is refused
        for line in value.split("\n"):
            if line:
                try:
                    _text(line.strip(), f"extensions.{key}", max_len=MAX_EXTENSION_VALUE)
                except InvalidInputError as exc:
                    raise InvalidInputError(exc.message, reason=REASON_BAD_EXTENSION) from None


def _extensions_from(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list):
        raise InvalidInputError("extensions must be a list", reason=REASON_BAD_EXTENSION)
    pairs: list[tuple[str, str]] = []
    for item in raw:
        entry = _mapping(item, "extension")
        if set(entry) != {"key", "value"}:
            raise InvalidInputError(
                "each extension is an object with exactly key and value", reason=REASON_BAD_EXTENSION
            )
        pairs.append((entry["key"], entry["value"]))
    return tuple(pairs)


def _mapping(obj: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise InvalidInputError(f"{what} must be a JSON object", reason=REASON_MALFORMED)
    return obj


def _no_unknown(data: Mapping[str, Any], known: set[str], what: str) -> None:
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise InvalidInputError(
            f"{what} has unknown fields: {', '.join(unknown)[:200]}",
            reason=REASON_UNKNOWN_FIELD,
            details={"fields": unknown[:20]},
        )


def _str_field(data: Mapping[str, Any], key: str, prefix: str = "", *, required: bool = True) -> str:
    value = data.get(key, "" if not required else None)
    if not isinstance(value, str):
        raise InvalidInputError(f"{prefix}{key} must be a string", reason=REASON_BAD_FIELD)
    return value


def _date_field(data: Mapping[str, Any], key: str) -> _dt.date:
    value = data[key]
    # strict YYYY-MM-DD: fromisoformat alone would also take "20240115"
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise InvalidInputError(f"{key} must be a YYYY-MM-DD date", reason=REASON_BAD_DATES)
    try:
        return _dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"{key} is not a calendar date", reason=REASON_BAD_DATES) from None


def _no_duplicate_keys(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidInputError(f"duplicate JSON key {key!r:.40}", reason=REASON_MALFORMED)
        out[key] = value
    return out
