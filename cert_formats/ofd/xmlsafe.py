"""Parsing one untrusted XML part: defusedxml plus size, depth and count limits.

Everything an OFD part may not contain is refused with a reason code a caller can
act on:

* ``ofd.xml_dtd`` — any document type declaration (OFD parts have none);
* ``ofd.xml_entity`` — an internal entity declaration (billion laughs and friends);
* ``ofd.xml_external`` — an external entity or DTD reference (XXE, SSRF);
* ``ofd.bad_encoding`` — not UTF-8 (GB/T 33190 parts are UTF-8);
* ``ofd.xml_too_large`` / ``ofd.xml_too_deep`` / ``ofd.xml_too_many_elements`` /
  ``ofd.xml_attribute_too_large`` — a limit from :class:`XmlLimits`;
* ``ofd.malformed_xml`` — anything else expat rejects.

Limits are enforced inside the parser's callbacks, so a deep or wide document is
stopped while it is being read, not after it has been built. Nothing is fetched:
expat never resolves external entities here and defusedxml refuses them anyway.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, Final

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from signing.errors import InvalidInputError

from .limits import Deadline, XmlLimits

_BOM: Final = b"\xef\xbb\xbf"
#: how many elements between two deadline checks
_DEADLINE_STRIDE: Final = 256


class _DoctypeSeen(Exception):
    """Internal: a DOCTYPE ended without entity declarations."""

    def __init__(self, external: bool) -> None:
        super().__init__("doctype")
        self.external = external


class _LimitedTreeBuilder(ET.TreeBuilder):
    """A TreeBuilder that counts depth, elements and attribute sizes as it builds."""

    def __init__(self, limits: XmlLimits, deadline: Deadline, part: str) -> None:
        super().__init__()
        self._limits = limits
        self._deadline = deadline
        self._part = part
        self._depth = 0
        self._elements = 0

    def start(self, tag: Any, attrs: Any) -> ET.Element:
        self._depth += 1
        self._elements += 1
        if self._depth > self._limits.max_depth:
            raise _limit_error(self._part, "ofd.xml_too_deep",
                               f"nesting deeper than {self._limits.max_depth}")
        if self._elements > self._limits.max_elements:
            raise _limit_error(self._part, "ofd.xml_too_many_elements",
                               f"more than {self._limits.max_elements} elements")
        if len(attrs) > self._limits.max_attributes:
            raise _limit_error(self._part, "ofd.xml_attribute_too_large",
                               f"more than {self._limits.max_attributes} attributes")
        for value in attrs.values():
            if len(value) > self._limits.max_attribute_chars:
                raise _limit_error(self._part, "ofd.xml_attribute_too_large",
                                   f"an attribute longer than {self._limits.max_attribute_chars}")
        if self._elements % _DEADLINE_STRIDE == 0:
            self._deadline.check()
        return super().start(tag, attrs)

    def end(self, tag: Any) -> ET.Element:
        self._depth -= 1
        return super().end(tag)


def _limit_error(part: str, reason: str, what: str) -> InvalidInputError:
    return InvalidInputError(f"OFD part {part!r} has {what}", reason=reason,
                             details={"part": part})


def parse_xml(data: bytes, *, part: str, limits: XmlLimits | None = None,
              deadline: Deadline | None = None) -> ET.Element:
    """Parse one XML part of an untrusted package into an ElementTree element.

    ``part`` names the part in error messages. Raises :class:`InvalidInputError`
    with one of the reason codes in this module's docstring; never returns a tree
    built from a DTD, an entity or an external reference.
    """
    limits = limits or XmlLimits()
    deadline = deadline or Deadline.unbounded()
    if len(data) > limits.max_bytes:
        raise _limit_error(part, "ofd.xml_too_large", f"{len(data)} bytes (max {limits.max_bytes})")
    body = data[len(_BOM):] if data.startswith(_BOM) else data
    try:
        # Strict UTF-8 first: expat would otherwise honour an encoding="..." declaration
        # and decode GBK or UTF-16, which GB/T 33190 parts never are.
        body.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"OFD part {part!r} is not valid UTF-8 (byte {exc.start})",
            reason="ofd.bad_encoding", details={"part": part},
        ) from None
    target = _LimitedTreeBuilder(limits, deadline, part)
    parser = DefusedXMLParser(target=target, encoding="utf-8", forbid_dtd=False,
                              forbid_entities=True, forbid_external=True)
    expat = parser.parser
    # A DOCTYPE is refused once it is complete, so that entity declarations inside it
    # are reported as what they are (ofd.xml_entity) rather than as a bare DTD.
    doctype: dict[str, bool] = {}

    def start_doctype(name: str, sysid: str | None, pubid: str | None,
                      has_internal_subset: int) -> None:
        doctype["external"] = bool(sysid or pubid)

    def end_doctype() -> None:
        raise _DoctypeSeen(external=doctype.get("external", False))

    expat.StartDoctypeDeclHandler = start_doctype
    expat.EndDoctypeDeclHandler = end_doctype
    try:
        parser.feed(body)
        root = parser.close()
    except InvalidInputError:
        raise
    except _DoctypeSeen as exc:
        if exc.external:
            raise InvalidInputError(f"OFD part {part!r} references an external DTD",
                                    reason="ofd.xml_external", details={"part": part}) from None
        raise InvalidInputError(f"OFD part {part!r} contains a DTD",
                                reason="ofd.xml_dtd", details={"part": part}) from None
    except EntitiesForbidden as exc:
        if exc.sysid or exc.pubid:
            raise InvalidInputError(f"OFD part {part!r} declares an external entity",
                                    reason="ofd.xml_external", details={"part": part}) from None
        raise InvalidInputError(f"OFD part {part!r} declares an XML entity",
                                reason="ofd.xml_entity", details={"part": part}) from None
    except ExternalReferenceForbidden:
        raise InvalidInputError(f"OFD part {part!r} references an external resource",
                                reason="ofd.xml_external", details={"part": part}) from None
    except DTDForbidden:  # pragma: no cover - forbid_dtd is off; kept for defence in depth
        raise InvalidInputError(f"OFD part {part!r} contains a DTD",
                                reason="ofd.xml_dtd", details={"part": part}) from None
    except ET.ParseError as exc:
        raise InvalidInputError(f"OFD part {part!r} is not well-formed XML: {exc}",
                                reason="ofd.malformed_xml", details={"part": part}) from None
    except RecursionError:  # pragma: no cover - the depth limit stops this first
        raise InvalidInputError(f"OFD part {part!r} is nested too deeply",
                                reason="ofd.xml_too_deep", details={"part": part}) from None
    if not isinstance(root, ET.Element):  # pragma: no cover - close() always returns the root
        raise InvalidInputError(f"OFD part {part!r} has no root element",
                                reason="ofd.malformed_xml", details={"part": part})
    return root
