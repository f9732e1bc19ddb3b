"""The proof-bundle update of a signed licence PDF, written by hand and byte for byte fixed.

After signing, the only change a licence PDF may carry is certledger's own incremental update
that embeds the proof bundle (ADR 0011). A verifier checks it by rebuilding the update from
the signed revision and the bundle and comparing bytes, so the update must be a pure function
of those two inputs, and cheap. It is four objects and a classic cross-reference section:

    M   0 obj  the EmbeddedFile stream (the bundle, uncompressed: it is canonical JSON)
    M+1 0 obj  its Filespec
    M+2 0 obj  the EmbeddedFiles name tree (one name)
    R   G obj  a new version of the catalog: ``/Names << /EmbeddedFiles M+2 0 R >>`` spliced in
               front of the signed revision's catalog entries, which are copied byte for byte

``M`` is the signed revision's trailer ``/Size``; the trailer keeps ``/Root``, ``/Info`` and
``/ID`` as they were and points ``/Prev`` at the signed revision's cross-reference section.
Only what certledger itself signs is supported: a signed revision whose last section is a
classic ``xref`` table (reportlab and pyHanko write those) and whose catalog has no
``/Names`` yet. Anything else is refused with ``pdf.unsupported_update``; the parsing here
only reads structure the signature check has already accepted, and is bounded by the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from signing.errors import InvalidInputError

BUNDLE_FILE_NAME: Final = b"certledger-proof.json"
REASON: Final = "pdf.unsupported_update"
#: cross-reference sections followed through /Prev before giving up (a loop, or a hostile chain)
_MAX_SECTIONS: Final = 64
#: nesting of arrays and dictionaries read (a catalog nests a few levels; recursion is bounded)
_MAX_DEPTH: Final = 32

_WS: Final = b"\x00\t\n\x0c\r "
_DELIMS: Final = b"()<>[]{}/%"
# numbers have at most 19 digits (int64): a 5000-digit "offset" is refused as malformed, not
# turned into Python's int-conversion error
_STARTXREF_RE: Final = re.compile(rb"startxref\s+(\d{1,19})\s+%%EOF\s*\Z")
_SUBSECTION_RE: Final = re.compile(rb"(\d{1,19})[ ]+(\d{1,19})[ ]*\r?\n")
_ENTRY_RE: Final = re.compile(rb"(\d{10}) (\d{5}) ([nf])(?: \r| \n|\r\n)")
_REF_RE: Final = re.compile(rb"\A(\d{1,19})\s+(\d{1,19})\s+R\Z")
_OBJ_HEAD_RE: Final = re.compile(rb"(\d{1,19})\s+(\d{1,19})\s+obj\s*")
_NAME_ESCAPE_RE: Final = re.compile(rb"#([0-9A-Fa-f]{2})")
_OWN_STREAM_RE: Final = re.compile(
    rb"\n?(\d{1,19}) 0 obj\n<< /Type /EmbeddedFile /Subtype /application#2Fjson /Params << /Size (\d{1,19}) >> "
    rb"/Length (\d{1,19}) >>\nstream\n"
)


def _refuse(message: str) -> InvalidInputError:
    return InvalidInputError(message, reason=REASON)


# -- a small lexer: just enough to find the end of one object and the top-level dict entries --


def _skip_ws(data: bytes, i: int) -> int:
    n = len(data)
    while i < n:
        c = data[i]
        if c in _WS:
            i += 1
        elif c == 0x25:  # % comment to the end of the line
            while i < n and data[i] not in b"\r\n":
                i += 1
        else:
            break
    return i


def _end_of_literal(data: bytes, i: int) -> int:
    """``data[i]`` is '('; the index after its balancing ')'."""
    depth, n = 0, len(data)
    while i < n:
        c = data[i]
        if c == 0x5C:  # backslash: the next byte is escaped
            i += 2
            continue
        if c == 0x28:
            depth += 1
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise _refuse("a string in the PDF structure does not end")


def _end_of_object(data: bytes, i: int, depth: int = 0) -> int:
    """The index after the direct object starting at ``data[i]`` (no indirect reference)."""
    n = len(data)
    if depth > _MAX_DEPTH:
        raise _refuse(f"the PDF structure nests deeper than {_MAX_DEPTH} levels")
    if i >= n:
        raise _refuse("the PDF structure ends inside an object")
    c = data[i]
    if data.startswith(b"<<", i):
        i = _skip_ws(data, i + 2)
        while not data.startswith(b">>", i):
            if i >= n:
                raise _refuse("a dictionary in the PDF structure does not end")
            i = _skip_ws(data, _end_of_value(data, i, depth + 1))
        return i + 2
    if c == 0x5B:  # [
        i = _skip_ws(data, i + 1)
        while i < n and data[i] != 0x5D:
            i = _skip_ws(data, _end_of_value(data, i, depth + 1))
        if i >= n:
            raise _refuse("an array in the PDF structure does not end")
        return i + 1
    if c == 0x28:
        return _end_of_literal(data, i)
    if c == 0x3C:  # <hex>
        j = data.find(b">", i)
        if j < 0:
            raise _refuse("a hex string in the PDF structure does not end")
        return j + 1
    if c == 0x2F:  # /name
        i += 1
    elif c in _DELIMS or c in _WS:
        raise _refuse(f"unexpected byte {bytes([c])!r} in the PDF structure")
    while i < n and data[i] not in _WS and data[i] not in _DELIMS:
        i += 1
    return i


def _end_of_value(data: bytes, i: int, depth: int = 0) -> int:
    """Like :func:`_end_of_object`, taking ``N G R`` as one value."""
    end = _end_of_object(data, i, depth)
    if data[i : i + 1].isdigit():
        j = _skip_ws(data, end)
        k = _end_of_object(data, j) if j < len(data) and data[j : j + 1].isdigit() else j
        m = _skip_ws(data, k)
        if k > j and data[m : m + 1] == b"R" and (m + 1 == len(data) or data[m + 1] in _WS + _DELIMS):
            return m + 1
    return end


def _name(raw: bytes) -> bytes:
    return _NAME_ESCAPE_RE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def _dict_entries(data: bytes, i: int) -> tuple[dict[bytes, bytes], int, int]:
    """Top-level entries of the dictionary at ``data[i]`` ('<<'): name -> raw value bytes,
    and the offsets just after its '<<' and at its closing '>>'."""
    if not data.startswith(b"<<", i):
        raise _refuse("expected a dictionary in the PDF structure")
    inner = i + 2
    entries: dict[bytes, bytes] = {}
    i = _skip_ws(data, inner)
    while not data.startswith(b">>", i):
        if i >= len(data) or data[i] != 0x2F:
            raise _refuse("a dictionary key in the PDF structure is not a name")
        key_end = _end_of_object(data, i)
        key = _name(data[i:key_end])
        start = _skip_ws(data, key_end)
        end = _end_of_value(data, start)
        if key in entries:
            raise _refuse(f"the PDF structure repeats the key {key.decode('latin-1')}")
        entries[key] = data[start:end]
        i = _skip_ws(data, end)
    return entries, inner, i


# -- the signed revision's structure ----------------------------------------------------------


@dataclass(frozen=True)
class _Revision:
    xref_offset: int
    trailer: dict[bytes, bytes]
    #: object number -> (offset, generation) from the newest section that lists it
    offsets: dict[int, tuple[int, int]]


def _read_sections(pdf: bytes) -> _Revision:
    found = _STARTXREF_RE.search(pdf, max(0, len(pdf) - 64))
    if found is None:
        raise _refuse("the signed revision does not end with startxref and %%EOF")
    first = offset = int(found.group(1))
    trailer: dict[bytes, bytes] | None = None
    offsets: dict[int, tuple[int, int]] = {}
    seen: set[int] = set()
    for _ in range(_MAX_SECTIONS):
        if offset in seen or not pdf.startswith(b"xref", offset):
            raise _refuse("the cross-reference data is not a chain of classic xref tables")
        seen.add(offset)
        i = _skip_ws(pdf, offset + 4)
        while (sub := _SUBSECTION_RE.match(pdf, i)) is not None:
            start, count = int(sub.group(1)), int(sub.group(2))
            i = sub.end()
            for number in range(start, start + count):
                entry = _ENTRY_RE.match(pdf, i)
                if entry is None:
                    raise _refuse("a cross-reference entry is malformed")
                i = entry.end()
                if entry.group(3) == b"n":
                    offsets.setdefault(number, (int(entry.group(1)), int(entry.group(2))))
            i = _skip_ws(pdf, i)
        if not pdf.startswith(b"trailer", i):
            raise _refuse("a cross-reference table is not followed by its trailer")
        entries, _, _ = _dict_entries(pdf, _skip_ws(pdf, i + 7))
        trailer = trailer if trailer is not None else entries
        prev = entries.get(b"/Prev")
        if prev is None:
            return _Revision(first, trailer, offsets)
        if not prev.isdigit() or len(prev) > 19:
            raise _refuse("a trailer's /Prev is not an offset")
        offset = int(prev)
    raise _refuse(f"more than {_MAX_SECTIONS} cross-reference sections")


def _reference(raw: bytes | None, what: str) -> tuple[int, int]:
    match = _REF_RE.match(raw or b"")
    if match is None:
        raise _refuse(f"the trailer's {what} is not an indirect reference")
    return int(match.group(1)), int(match.group(2))


# -- writing and reading the update ------------------------------------------------------------


def bundle_update(signed: bytes, bundle: bytes) -> bytes:
    """The incremental update that embeds ``bundle`` in the signed revision ``signed``."""
    rev = _read_sections(signed)
    root, root_gen = _reference(rev.trailer.get(b"/Root"), "/Root")
    size_raw = rev.trailer.get(b"/Size", b"")
    if not size_raw.isdigit() or len(size_raw) > 19 or int(size_raw) <= root:
        raise _refuse("the trailer's /Size is missing or too small")
    size = int(size_raw)
    where = rev.offsets.get(root)
    if where is None or where[1] != root_gen:
        raise _refuse("the catalog is not in the cross-reference table")
    head = _OBJ_HEAD_RE.match(signed, where[0])
    if head is None or (int(head.group(1)), int(head.group(2))) != (root, root_gen):
        raise _refuse("the catalog's offset does not point at the catalog")
    entries, inner, close = _dict_entries(signed, head.end())
    if b"/Names" in entries:
        raise _refuse("the catalog already has a /Names dictionary")
    stream, filespec, tree = size, size + 1, size + 2
    objects = [
        (stream, b"%d 0 obj\n<< /Type /EmbeddedFile /Subtype /application#2Fjson /Params << /Size %d >> "
                 b"/Length %d >>\nstream\n%s\nendstream\nendobj\n" % (stream, len(bundle), len(bundle), bundle)),
        (filespec, b"%d 0 obj\n<< /Type /Filespec /F (%s) /UF (%s) /EF << /F %d 0 R /UF %d 0 R >> >>\nendobj\n"
                   % (filespec, BUNDLE_FILE_NAME, BUNDLE_FILE_NAME, stream, stream)),
        (tree, b"%d 0 obj\n<< /Names [(%s) %d 0 R] >>\nendobj\n" % (tree, BUNDLE_FILE_NAME, filespec)),
        (root, b"%d %d obj\n<< /Names << /EmbeddedFiles %d 0 R >> %s>>\nendobj\n"
               % (root, root_gen, tree, signed[inner:close].strip(_WS) + b" ")),
    ]
    out = bytearray(b"\n" if not signed.endswith(b"\n") else b"")
    at: dict[int, int] = {}
    for number, text in objects:
        at[number] = len(signed) + len(out)
        out += text
    xref_at = len(signed) + len(out)
    out += b"xref\n0 1\n0000000000 65535 f \n%d 1\n%010d %05d n \n%d 3\n" % (root, at[root], root_gen, stream)
    for number in (stream, filespec, tree):
        out += b"%010d 00000 n \n" % at[number]
    trailer = b"/Size %d /Root %d %d R" % (size + 3, root, root_gen)
    for key in (b"/Info", b"/ID"):
        if key in rev.trailer:
            trailer += b" " + key + b" " + rev.trailer[key]
    out += b"trailer\n<< %s /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (trailer, rev.xref_offset, xref_at)
    return bytes(out)


def attach_bundle(signed: bytes, bundle: bytes) -> bytes:
    """``signed`` followed by its bundle update."""
    return signed + bundle_update(signed, bundle)


def read_own_bundle(pdf: bytes, signed_end: int) -> bytes | None:
    """The bundle bytes of a bundle update after ``pdf[:signed_end]``, if the update starts
    like one; None otherwise. A candidate only: the caller rebuilds the update with
    :func:`bundle_update` and compares, which is what proves the update is certledger's."""
    match = _OWN_STREAM_RE.match(pdf, signed_end)
    if match is None or match.group(2) != match.group(3):
        return None
    length = int(match.group(3))
    start = match.end()
    if start + length > len(pdf):
        return None
    return pdf[start : start + length]
