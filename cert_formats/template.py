"""Licence-type templates: one TOML file per licence type, no code per type.

A template names the licence type (证照类型代码, title), the extension fields
(承载信息) the type carries with their validation rules, and the layout of the
face: page size, title, field rows and where their values come from, the seal,
the QR code, colours and border style. Built-in templates live in
``cert_formats/templates/*.toml``; :func:`load_templates` reads any other
directory the same way.

Coordinates are millimetres from the page's top-left corner; y grows downwards
(the renderer converts). Field sources name licence fields:

``holder`` ``holder_code`` ``holder_code_type`` ``number`` ``identifier``
``issuer_name`` ``issuer_code`` ``issue_date`` ``valid_from`` ``valid_until``
``validity`` ``region_code`` ``name`` or ``ext:<key>`` for an extension field.

Templates are trusted configuration, but they are still parsed strictly (unknown
keys, wrong types and out-of-range numbers are errors) so a typo in a template
fails when it is loaded, not halfway through issuing licences.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Final, TypeVar

from cert_formats.credit_code import validate_credit_code
from cert_formats.identifier import LicenceIdentifier
from cert_formats.licence import (
    LONG_TERM_LABEL,
    REASON_BAD_EXTENSION,
    REASON_FIELD_MISSING,
    HolderCodeType,
    Licence,
    format_date_cn,
)
from signing.errors import InvalidInputError

REASON_TEMPLATE_INVALID: Final = "template.invalid"
REASON_TEMPLATE_NOT_FOUND: Final = "template.not_found"
REASON_TYPE_MISMATCH: Final = "template.type_mismatch"
REASON_HOLDER_TYPE: Final = "template.holder_code_type"
REASON_BAD_NUMBER: Final = "licence.bad_number"

BUILTIN_DIR: Final = Path(__file__).with_name("templates")
MAX_TEMPLATE_BYTES: Final = 64 * 1024

#: licence fields a row may print, besides ``ext:<key>``
CORE_SOURCES: Final = frozenset(
    {
        "name", "holder", "holder_code", "holder_code_type", "number", "identifier",
        "issuer_name", "issuer_code", "issue_date", "valid_from", "valid_until",
        "validity", "region_code",
    }
)  # fmt: skip
BORDER_STYLES: Final = frozenset({"double", "ornate"})

_COLOUR_RE: Final = re.compile(r"^#[0-9A-Fa-f]{6}$")
_KEY_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class PageSpec:
    width_mm: float
    height_mm: float


@dataclass(frozen=True)
class Colours:
    """Hex ``#RRGGBB`` colours of the face."""

    title: str = "#B3121B"
    text: str = "#1C1C1C"
    label: str = "#1C1C1C"
    border_outer: str = "#8A6A1F"
    border_inner: str = "#B3121B"
    ornament: str = "#C8A24A"
    background: str = "#FFFDF6"
    pattern: str = "#F1E6C8"
    seal: str = "#D7141E"


@dataclass(frozen=True)
class BorderSpec:
    #: ``double``: two ruled frames; ``ornate``: two frames with a guilloche band
    style: str = "ornate"
    margin_mm: float = 8.0
    band_mm: float = 6.0
    corner_ornaments: bool = True
    #: fine wave pattern behind the text, like security paper
    background_pattern: bool = True


@dataclass(frozen=True)
class TitleSpec:
    text: str
    y_mm: float
    size_pt: float = 40.0
    #: extra space between characters, as a fraction of the font size
    letter_spacing_em: float = 0.5
    subtitle: str = ""
    subtitle_size_pt: float = 12.0
    #: draw a decorative rosette above the title
    rosette: bool = False


@dataclass(frozen=True)
class Column:
    """A block that field rows flow down in, label left, value right."""

    x_mm: float
    y_mm: float
    width_mm: float
    label_width_mm: float
    line_height_mm: float = 7.0
    row_gap_mm: float = 3.0
    size_pt: float = 12.0


@dataclass(frozen=True)
class FieldRow:
    """One printed field: a label and where its value comes from."""

    label: str
    source: str
    #: index of the :class:`Column` it flows in (ignored when x_mm/y_mm place the row)
    column: int | None = 0
    x_mm: float | None = None
    y_mm: float | None = None
    size_pt: float | None = None
    #: at most this many wrapped lines; longer values are refused when rendering
    max_lines: int = 1
    #: spread the label's characters across the label width (名    称)
    justify_label: bool = True
    #: separator printed after a label in placed rows (e.g. "：")
    separator: str = ""
    #: placed rows: print the value on the line below the label
    stacked: bool = False


@dataclass(frozen=True)
class SealSpec:
    x_mm: float  # centre
    y_mm: float
    diameter_mm: float = 42.0
    #: horizontal text under the star, e.g. 证照专用章 (may be empty)
    caption: str = ""


@dataclass(frozen=True)
class QrSpec:
    x_mm: float  # top-left corner
    y_mm: float
    size_mm: float = 26.0
    caption: str = "扫码核验"


@dataclass(frozen=True)
class IssuerBlock:
    """Issuer name and issue date, printed under/over the seal."""

    x_mm: float  # centre line
    y_mm: float  # baseline of the issuer line
    label: str = "发证机关"
    size_pt: float = 12.0
    show_name: bool = True


@dataclass(frozen=True)
class FooterSpec:
    y_mm: float  # baseline of the identifier line
    size_pt: float = 7.5
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExtensionSpec:
    """One 承载信息 field and its validation rules."""

    key: str
    label: str
    required: bool = False
    max_length: int = 200
    #: a regular expression the whole value must match (``re.fullmatch``)
    pattern: str = ""
    #: may the value span several lines
    multiline: bool = False

    def check(self, value: str) -> None:
        """Raise ``InvalidInputError`` (``licence.bad_extension``) if ``value`` breaks a rule."""
        if len(value) > self.max_length:
            raise InvalidInputError(
                f"{self.label} ({self.key}) is longer than {self.max_length} characters",
                reason=REASON_BAD_EXTENSION,
                details={"key": self.key, "rule": "max_length"},
            )
        if "\n" in value and not self.multiline:
            raise InvalidInputError(
                f"{self.label} ({self.key}) must be one line",
                reason=REASON_BAD_EXTENSION,
                details={"key": self.key, "rule": "multiline"},
            )
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise InvalidInputError(
                f"{self.label} ({self.key}) does not match the required format",
                reason=REASON_BAD_EXTENSION,
                details={"key": self.key, "rule": "pattern", "pattern": self.pattern},
            )


@dataclass(frozen=True)
class LicenceTemplate:
    """A licence type: its codes, its extension fields and the layout of its face."""

    key: str
    type_code: str
    name: str
    holder_code_types: tuple[HolderCodeType, ...]
    page: PageSpec
    title: TitleSpec
    columns: tuple[Column, ...]
    rows: tuple[FieldRow, ...]
    seal: SealSpec
    qr: QrSpec
    issuer: IssuerBlock
    footer: FooterSpec
    extensions: tuple[ExtensionSpec, ...] = ()
    colours: Colours = Colours()
    border: BorderSpec = BorderSpec()
    #: a regular expression the 证照编号 must match in full (empty: any)
    number_pattern: str = ""
    #: a demo licence of this type as JSON (see :meth:`sample_licence`); may be empty
    sample_json: str = ""
    #: where the template was read from (for error messages)
    source_path: str = ""

    def extension_spec(self, key: str) -> ExtensionSpec | None:
        for spec in self.extensions:
            if spec.key == key:
                return spec
        return None

    def validate(self, licence: Licence) -> None:
        """Raise ``InvalidInputError`` unless ``licence`` is a valid instance of this type.

        1. the type code is this template's;
        2. the holder code type is one this type allows, the number has its format;
        3. every extension key is declared here, in the declared order;
        4. every required extension is present and non-empty;
        5. every value passes its length / line / pattern rules.
        """
        # 1. type
        if licence.type_code != self.type_code:
            raise InvalidInputError(
                f"licence type {licence.type_code} is not {self.name} ({self.type_code})",
                reason=REASON_TYPE_MISMATCH,
            )
        # 2. holder
        if licence.holder_code_type not in self.holder_code_types:
            raise InvalidInputError(
                f"{self.name} is not issued to holders identified by {licence.holder_code_type.label}",
                reason=REASON_HOLDER_TYPE,
            )
        if self.number_pattern and not re.fullmatch(self.number_pattern, licence.number):
            raise InvalidInputError(
                f"证照编号 {licence.number!r:.40} is not in the {self.name} format",
                reason=REASON_BAD_NUMBER,
                details={"pattern": self.number_pattern},
            )
        # 3. known keys, template order (so one licence has one serialisation)
        order = {spec.key: i for i, spec in enumerate(self.extensions)}
        previous = -1
        for key, _ in licence.extensions:
            if key not in order:
                raise InvalidInputError(
                    f"{self.name} has no extension field {key!r}",
                    reason=REASON_BAD_EXTENSION,
                    details={"key": key, "rule": "unknown"},
                )
            if order[key] < previous:
                raise InvalidInputError(
                    f"extension {key!r} is out of the template's order",
                    reason=REASON_BAD_EXTENSION,
                    details={"key": key, "rule": "order"},
                )
            previous = order[key]
        # 4. and 5. presence and rules
        values = licence.extension_map()
        for spec in self.extensions:
            value = values.get(spec.key)
            if not value:
                if spec.required:
                    raise InvalidInputError(
                        f"{self.name} requires {spec.label} ({spec.key})",
                        reason=REASON_FIELD_MISSING,
                        details={"fields": [f"ext:{spec.key}"]},
                    )
                continue
            spec.check(value)

    def order_extensions(self, values: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        """``values`` as Licence.extensions in this template's order.

        Raises for keys the template does not declare; empty values are dropped.
        """
        unknown = sorted(set(values) - {spec.key for spec in self.extensions})
        if unknown:
            raise InvalidInputError(
                f"{self.name} has no extension field(s) {', '.join(unknown)}",
                reason=REASON_BAD_EXTENSION,
                details={"keys": unknown},
            )
        return tuple((s.key, values[s.key]) for s in self.extensions if values.get(s.key))

    def sample_licence(self) -> Licence:
        """The template's demo licence (``[sample]`` table), validated against the template.

        Every built-in template carries one, so the tests render every licence type
        without code per type; docs/licence-<key>.png are its pictures.
        """
        if not self.sample_json:
            raise InvalidInputError(f"template {self.key} has no sample", reason=REASON_TEMPLATE_NOT_FOUND)
        raw = json.loads(self.sample_json)
        extensions = self.order_extensions(raw.pop("extensions", {}))
        serial = raw.pop("serial")
        identifier = LicenceIdentifier.build(self.type_code, raw["issuer_code"], serial, raw.get("version", 1))
        until = raw.get("valid_until")
        licence = Licence.from_dict(
            {
                "name": self.name,
                "type_code": self.type_code,
                "identifier": str(identifier),
                "version": identifier.version,
                **raw,
                "valid_until": None if until in (None, LONG_TERM_LABEL) else until,
                "extensions": [{"key": k, "value": v} for k, v in extensions],
            }
        )
        self.validate(licence)
        return licence

    def value_of(self, licence: Licence, source: str) -> str:
        """The printed text of one row source for ``licence``."""
        if source.startswith("ext:"):
            return licence.extension(source[4:]) or ""
        if source in ("issue_date", "valid_from"):
            return format_date_cn(getattr(licence, source))
        if source == "valid_until":
            return LONG_TERM_LABEL if licence.valid_until is None else format_date_cn(licence.valid_until)
        if source == "validity":
            return licence.validity_text()
        if source == "holder_code_type":
            return licence.holder_code_type.label
        value = getattr(licence, source)
        return str(value)


# -- loading -------------------------------------------------------------------------


def load_template(path: str | Path) -> LicenceTemplate:
    """Read and check one template file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read template {p}: {exc.strerror}", reason=REASON_TEMPLATE_NOT_FOUND) from None
    if len(raw) > MAX_TEMPLATE_BYTES:
        raise InvalidInputError(f"template {p} is larger than 64 KiB", reason=REASON_TEMPLATE_INVALID)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInputError(f"template {p} does not parse: {exc}", reason=REASON_TEMPLATE_INVALID) from None
    try:
        return _build(data, str(p))
    except InvalidInputError as exc:
        raise InvalidInputError(f"template {p.name}: {exc.message}", reason=REASON_TEMPLATE_INVALID) from None


def load_templates(directory: str | Path) -> dict[str, LicenceTemplate]:
    """Every ``*.toml`` template in ``directory``, by key; keys and type codes are unique."""
    out: dict[str, LicenceTemplate] = {}
    by_type: dict[str, str] = {}
    for path in sorted(Path(directory).glob("*.toml")):
        template = load_template(path)
        if template.key in out:
            raise InvalidInputError(f"two templates use key {template.key}", reason=REASON_TEMPLATE_INVALID)
        if template.type_code in by_type:
            raise InvalidInputError(
                f"templates {by_type[template.type_code]} and {template.key} share a type code",
                reason=REASON_TEMPLATE_INVALID,
            )
        out[template.key] = template
        by_type[template.type_code] = template.key
    return out


def builtin_templates() -> dict[str, LicenceTemplate]:
    """The templates shipped in ``cert_formats/templates``, by key."""
    return dict(_builtin())


def get_template(key: str) -> LicenceTemplate:
    """A built-in template by key (e.g. ``business_licence``)."""
    try:
        return _builtin()[key]
    except KeyError:
        raise InvalidInputError(f"no licence template {key!r}", reason=REASON_TEMPLATE_NOT_FOUND) from None


def template_for_type(type_code: str, templates: Mapping[str, LicenceTemplate] | None = None) -> LicenceTemplate:
    """The template whose type code is ``type_code`` (built-ins unless given a set)."""
    for template in (templates if templates is not None else _builtin()).values():
        if template.type_code == type_code:
            return template
    raise InvalidInputError(f"no licence template for type {type_code!r:.40}", reason=REASON_TEMPLATE_NOT_FOUND)


_BUILTIN: dict[str, LicenceTemplate] = {}


def _builtin() -> Mapping[str, LicenceTemplate]:
    if not _BUILTIN:
        _BUILTIN.update(load_templates(BUILTIN_DIR))
    return _BUILTIN


_T = TypeVar("_T")


def _build(data: Mapping[str, Any], source_path: str) -> LicenceTemplate:
    top_keys = {
        "key", "type_code", "name", "holder_code_types", "page", "title", "columns", "rows",
        "seal", "qr", "issuer", "footer", "extensions", "colours", "border", "number_pattern",
        "sample",
    }  # fmt: skip
    _only(data, top_keys, "template")
    key = _get(data, "key", str, "template")
    if not _KEY_RE.match(key):
        raise InvalidInputError("key must be lower_snake_case", reason=REASON_TEMPLATE_INVALID)
    type_code = _get(data, "type_code", str, "template")
    # the same rule the licence model applies: a credit code plus three digits
    if len(type_code) != 21 or not (type_code[18:].isascii() and type_code[18:].isdigit()):
        raise InvalidInputError("type_code is a credit code plus 3 digits", reason=REASON_TEMPLATE_INVALID)
    validate_credit_code(type_code[:18])
    holder_types_raw = _get(data, "holder_code_types", list, "template")
    try:
        holder_types = tuple(HolderCodeType(str(v)) for v in holder_types_raw)
    except ValueError:
        raise InvalidInputError("unknown holder code type", reason=REASON_TEMPLATE_INVALID) from None
    if not holder_types:
        raise InvalidInputError("holder_code_types is empty", reason=REASON_TEMPLATE_INVALID)

    extensions = tuple(_dc(ExtensionSpec, e, "extensions") for e in _get(data, "extensions", list, "template", []))
    ext_keys = [e.key for e in extensions]
    if len(set(ext_keys)) != len(ext_keys):
        raise InvalidInputError("extension keys repeat", reason=REASON_TEMPLATE_INVALID)
    for ext in extensions:
        if not _KEY_RE.match(ext.key) or ext.max_length < 1:
            raise InvalidInputError(f"bad extension {ext.key!r}", reason=REASON_TEMPLATE_INVALID)
        if ext.pattern:
            try:
                re.compile(ext.pattern)
            except re.error as exc:
                raise InvalidInputError(f"extension {ext.key} pattern: {exc}", reason=REASON_TEMPLATE_INVALID) from None

    number_pattern = _get(data, "number_pattern", str, "template", "")
    if number_pattern:
        try:
            re.compile(number_pattern)
        except re.error as exc:
            raise InvalidInputError(f"number_pattern: {exc}", reason=REASON_TEMPLATE_INVALID) from None

    columns = tuple(_dc(Column, c, "columns") for c in _get(data, "columns", list, "template", []))
    rows = tuple(_dc(FieldRow, r, "rows") for r in _get(data, "rows", list, "template"))
    for row in rows:
        if row.source not in CORE_SOURCES and not (row.source.startswith("ext:") and row.source[4:] in ext_keys):
            raise InvalidInputError(
                f"row {row.label!r} has unknown source {row.source!r}", reason=REASON_TEMPLATE_INVALID
            )
        if (row.x_mm is None) != (row.y_mm is None):
            raise InvalidInputError(f"row {row.label!r} needs both x_mm and y_mm", reason=REASON_TEMPLATE_INVALID)
        placed = row.x_mm is not None
        if not placed and not (row.column is not None and 0 <= row.column < len(columns)):
            raise InvalidInputError(f"row {row.label!r} names a missing column", reason=REASON_TEMPLATE_INVALID)
        if not 1 <= row.max_lines <= 40:
            raise InvalidInputError(f"row {row.label!r} max_lines is 1..40", reason=REASON_TEMPLATE_INVALID)

    template = LicenceTemplate(
        key=key,
        type_code=type_code,
        name=_get(data, "name", str, "template"),
        holder_code_types=holder_types,
        page=_dc(PageSpec, _get(data, "page", dict, "template"), "page"),
        title=_dc(TitleSpec, _get(data, "title", dict, "template"), "title"),
        columns=columns,
        rows=rows,
        seal=_dc(SealSpec, _get(data, "seal", dict, "template"), "seal"),
        qr=_dc(QrSpec, _get(data, "qr", dict, "template"), "qr"),
        issuer=_dc(IssuerBlock, _get(data, "issuer", dict, "template"), "issuer"),
        footer=_dc(FooterSpec, _get(data, "footer", dict, "template"), "footer"),
        extensions=extensions,
        colours=_dc(Colours, _get(data, "colours", dict, "template", {}), "colours"),
        border=_dc(BorderSpec, _get(data, "border", dict, "template", {}), "border"),
        number_pattern=number_pattern,
        sample_json=json.dumps(_get(data, "sample", dict, "template", {}), ensure_ascii=False),
        source_path=source_path,
    )
    _check_geometry(template)
    if template.sample_json != "{}":
        template.sample_licence()  # a template whose own sample is invalid is a broken template
    else:
        template = replace(template, sample_json="")
    return template


def _check_geometry(t: LicenceTemplate) -> None:
    w, h = t.page.width_mm, t.page.height_mm
    if not (50 <= w <= 1200 and 50 <= h <= 1200):
        raise InvalidInputError("page size is 50..1200 mm", reason=REASON_TEMPLATE_INVALID)
    for name in fields(Colours):
        value = getattr(t.colours, name.name)
        if not _COLOUR_RE.match(value):
            raise InvalidInputError(f"colour {name.name} is not #RRGGBB", reason=REASON_TEMPLATE_INVALID)
    if t.border.style not in BORDER_STYLES:
        raise InvalidInputError(f"border style is one of {sorted(BORDER_STYLES)}", reason=REASON_TEMPLATE_INVALID)

    def inside(x: float, y: float, what: str) -> None:
        if not (0 <= x <= w and 0 <= y <= h):
            raise InvalidInputError(f"{what} lies outside the page", reason=REASON_TEMPLATE_INVALID)

    inside(t.seal.x_mm, t.seal.y_mm, "seal")
    inside(t.qr.x_mm + t.qr.size_mm, t.qr.y_mm + t.qr.size_mm, "QR code")
    inside(t.issuer.x_mm, t.issuer.y_mm, "issuer block")
    inside(w / 2, t.title.y_mm, "title")
    for c in t.columns:
        inside(c.x_mm + c.width_mm, c.y_mm, "column")
        if c.label_width_mm >= c.width_mm:
            raise InvalidInputError("a column's label is wider than the column", reason=REASON_TEMPLATE_INVALID)
    for r in t.rows:
        if r.x_mm is not None and r.y_mm is not None:
            inside(r.x_mm, r.y_mm, f"row {r.label!r}")


def _dc(cls: type[_T], raw: Any, what: str) -> _T:
    """Build dataclass ``cls`` from a TOML table, with type checks per field."""
    if not isinstance(raw, Mapping):
        raise InvalidInputError(f"{what} must be a table", reason=REASON_TEMPLATE_INVALID)
    declared = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    _only(raw, set(declared), what)
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        hint = str(declared[name].type)
        kwargs[name] = _coerce(value, hint, f"{what}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise InvalidInputError(f"{what}: {exc}", reason=REASON_TEMPLATE_INVALID) from None


def _coerce(value: Any, hint: str, what: str) -> Any:
    optional = "None" in hint
    if value is None and optional:
        return None
    if hint.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, int | float) or not -1e4 < value < 1e4:
            raise InvalidInputError(f"{what} must be a number", reason=REASON_TEMPLATE_INVALID)
        return float(value)
    if hint.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInputError(f"{what} must be an integer", reason=REASON_TEMPLATE_INVALID)
        return value
    if hint == "bool":
        if not isinstance(value, bool):
            raise InvalidInputError(f"{what} must be true or false", reason=REASON_TEMPLATE_INVALID)
        return value
    if hint == "str":
        if not isinstance(value, str) or len(value) > 2000:
            raise InvalidInputError(f"{what} must be a string", reason=REASON_TEMPLATE_INVALID)
        return value
    if hint.startswith("tuple[str"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidInputError(f"{what} must be a list of strings", reason=REASON_TEMPLATE_INVALID)
        return tuple(value)
    raise InvalidInputError(f"{what}: unsupported field type {hint}", reason=REASON_TEMPLATE_INVALID)


def _get(data: Mapping[str, Any], key: str, kind: type[_T], what: str, default: _T | None = None) -> _T:
    if key not in data:
        if default is not None:
            return default
        raise InvalidInputError(f"{what} needs {key}", reason=REASON_TEMPLATE_INVALID)
    value = data[key]
    if not isinstance(value, kind):
        raise InvalidInputError(f"{what}.{key} must be a {kind.__name__}", reason=REASON_TEMPLATE_INVALID)
    return value


def _only(data: Mapping[str, Any], allowed: set[str] | Sequence[str], what: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise InvalidInputError(f"{what} has unknown keys: {', '.join(unknown)}", reason=REASON_TEMPLATE_INVALID)
