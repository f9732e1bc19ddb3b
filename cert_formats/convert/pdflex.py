"""Tokens and operations of PDF content streams and CMaps, within a budget.

A regex-driven lexer (one match per token, group numbers rather than names,
strings and inline images scanned by hand) that yields ``(operator, operands)``
pairs; everything it builds counts against a :class:`Budget` (tokens, nesting)
and checks the conversion's deadline. The same lexer reads the CMaps of fonts
(``ToUnicode`` and embedded encoding CMaps), whose entries are bounded too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from .limits import Deadline, PdfLimits, too_large

_WHITESPACE: Final = b"\x00\t\n\x0c\r "
_DELIMS: Final = b"()<>[]{}/%"
_TOKEN_RE: Final = re.compile(
    rb"""(?P<ws>[\x00\t\n\x0c\r ]+|%[^\r\n]*)
    |(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))
    |(?P<name>/[^\x00\t\n\x0c\r ()<>\[\]{}/%]*)
    |(?P<op>[A-Za-z][A-Za-z0-9*]*|['"])
    |(?P<dopen><<)|(?P<dclose>>>)
    |(?P<aopen>\[)|(?P<aclose>\])
    |(?P<str>\()|(?P<hex><)""",
    re.VERBOSE,
)
#: the same tokens with leading whitespace folded in, numbered: 1 comment, 2 number, 3 name,
#: 4 operator/keyword, 5 <<, 6 >>, 7 [, 8 ], 9 simple (string), 10 other (, 11 <hex>, 12 other <
_FAST_TOKEN_RE: Final = re.compile(
    rb"[\x00\t\n\x0c\r ]*(?:(%[^\r\n]*)|([+-]?(?:\d+\.?\d*|\.\d+))|(/[^\x00\t\n\x0c\r ()<>\[\]{}/%]*)"
    rb"|([A-Za-z][A-Za-z0-9*]*|['\"])|(<<)|(>>)|(\[)|(\])|\(([^()\\]*)\)|(\()|<([0-9A-Fa-f\x00\t\n\x0c\r ]*)>|(<))?")
_HEX_RE: Final = re.compile(rb"[0-9A-Fa-f]")
_NAME_ESCAPE_RE: Final = re.compile(rb"#([0-9A-Fa-f]{2})")

# -- content-stream lexer ------------------------------------------------------------


class Budget:
    """Shared counters for the whole document."""

    def __init__(self, limits: PdfLimits, deadline: Deadline) -> None:
        self.limits = limits
        self.deadline = deadline
        self.tokens = 0
        self.operators = 0
        self.forms = 0
        self.images = 0
        self.text_chars = 0
        self.path_points = 0

    def token(self, count: int = 1) -> None:
        self.tokens += count
        if self.tokens > self.limits.max_tokens:
            raise too_large(f"more than {self.limits.max_tokens} content-stream tokens")
        if self.tokens & 0xFFF == 0:
            self.deadline.check()


def _unescape_name(raw: bytes) -> str:
    raw = _NAME_ESCAPE_RE.sub(lambda m: bytes((int(m.group(1), 16),)), raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class Name(str):
    """A PDF name operand (without the slash), distinct from a string operand."""

    __slots__ = ()


class Lexer:
    """Tokens and operations of one content stream (or CMap), within a budget."""

    def __init__(self, data: bytes, budget: Budget) -> None:
        self.data = data
        self.pos = 0
        self.budget = budget

    def operations(self) -> Iterator[tuple[str, list[Any]]]:
        """``(operator, operands)`` in order; inline images come as ``("BI", [dict, data])``."""
        operands: list[Any] = []
        stack: list[list[Any]] = []  # open arrays / dictionaries
        kinds: list[int] = []
        data = self.data
        budget = self.budget
        max_depth = budget.limits.max_tree_depth
        max_tokens = budget.limits.max_tokens
        finditer = _FAST_TOKEN_RE.finditer
        tokens = budget.tokens
        # the hot loop of the converter: one regex step per token, group numbers not names,
        # and a restart of the scan only after complex strings and inline images
        it = finditer(data, self.pos)
        while True:
            m = next(it, None)
            if m is None:
                break
            kind = m.lastindex
            if kind is None or kind == 1:  # whitespace, a stray byte, a comment
                continue
            tokens += 1
            if tokens & 0xFFF == 0:
                budget.tokens = tokens
                if tokens > max_tokens:
                    raise too_large(f"more than {max_tokens} content-stream tokens")
                budget.deadline.check()
            target = stack[-1] if stack else operands
            if kind == 2:
                number = float(m.group(2))
                target.append(number if number - number == 0.0 else math.nan)
            elif kind == 4:
                word = m.group(4).decode("latin-1")
                if word in ("true", "false"):
                    target.append(word == "true")
                    continue
                if word == "null":
                    target.append(None)
                    continue
                if stack:  # an operator inside an array: malformed, drop the array
                    stack.clear()
                    kinds.clear()
                budget.tokens = tokens
                if word == "BI":
                    self.pos = m.end()
                    yield "BI", self._inline_image()
                    it = finditer(data, self.pos)
                else:
                    yield word, operands
                tokens = budget.tokens
                operands = []
            elif kind == 9:
                target.append(m.group(9))
            elif kind == 3:
                target.append(Name(_unescape_name(m.group(3)[1:])))
            elif kind == 10:
                self.pos = m.end()
                target.append(self._literal())
                it = finditer(data, self.pos)
            elif kind == 11:
                digits = b"".join(_HEX_RE.findall(m.group(11)))
                target.append(bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode("ascii")))
            elif kind == 12:
                self.pos = m.end()
                target.append(self._hex())
                it = finditer(data, self.pos)
            elif kind in (5, 7):
                if len(stack) >= max_depth:
                    raise too_large(f"content nests arrays deeper than {max_depth}")
                stack.append([])
                kinds.append(kind)
            else:  # 6, 8: a closing >> or ]
                if not stack:
                    continue
                items = stack.pop()
                opened = kinds.pop()
                value = items if opened == 7 else pairs(items)
                (stack[-1] if stack else operands).append(value)
            if len(operands) > 4096:
                # no operator takes more than a few dozen operands: drop a flood's head
                del operands[:-64]
        budget.tokens = tokens
        if tokens > max_tokens:
            raise too_large(f"more than {max_tokens} content-stream tokens")

    def _literal(self) -> bytes:
        data = self.data
        out = bytearray()
        depth = 1
        i = self.pos
        n = len(data)
        while i < n:
            ch = data[i]
            i += 1
            if ch == 0x5C:  # backslash
                if i >= n:
                    break
                esc = data[i]
                i += 1
                if esc in b"nrtbf":
                    out.append(b"\n\r\t\b\f"[b"nrtbf".index(esc)])
                elif 0x30 <= esc <= 0x37:
                    value = esc - 0x30
                    for _ in range(2):
                        if i < n and 0x30 <= data[i] <= 0x37:
                            value = value * 8 + data[i] - 0x30
                            i += 1
                    out.append(value & 0xFF)
                elif esc == 0x0D:
                    if i < n and data[i] == 0x0A:
                        i += 1
                elif esc != 0x0A:
                    out.append(esc)
            elif ch == 0x28:
                depth += 1
                out.append(ch)
            elif ch == 0x29:
                depth -= 1
                if depth == 0:
                    break
                out.append(ch)
            else:
                out.append(ch)
        self.pos = i
        return bytes(out)

    def _hex(self) -> bytes:
        end = self.data.find(b">", self.pos)
        if end < 0:
            end = len(self.data)
        digits = b"".join(_HEX_RE.findall(self.data, self.pos, end))
        self.pos = end + 1
        if len(digits) % 2:
            digits += b"0"
        return bytes.fromhex(digits.decode("ascii"))

    def _inline_image(self) -> list[Any]:
        """Parse ``BI <dict> ID <data> EI``; the lexer resumes after ``EI``."""
        params: list[Any] = []
        data = self.data
        n = len(data)
        while self.pos < n:
            m = _TOKEN_RE.match(data, self.pos)
            if m is None:
                self.pos += 1
                continue
            self.pos = m.end()
            kind = m.lastgroup
            if kind == "ws":
                continue
            self.budget.token()
            if kind == "op" and m.group() == b"ID":
                break
            if kind == "num":
                value = float(m.group())
                params.append(value if math.isfinite(value) else math.nan)
            elif kind == "name":
                params.append(Name(_unescape_name(m.group()[1:])))
            elif kind == "op":
                params.append(m.group().decode("latin-1"))
            elif kind == "aopen":
                params.append(self._flat_array())
            elif kind == "str":
                params.append(self._literal())
            elif kind == "hex":
                params.append(self._hex())
            if len(params) > 256:
                raise too_large("an inline image dictionary with too many entries")
        info = pairs(params)
        if self.pos < n and data[self.pos] in _WHITESPACE:
            self.pos += 1  # the single whitespace after ID
        start = self.pos
        length = _inline_length(info)
        if length is not None and start + length <= n:
            end = start + length
            after = data.find(b"EI", end)
            self.pos = n if after < 0 else after + 2
            return [info, data[start:end]]
        # search for EI delimited by whitespace on both sides
        search = start
        while True:
            idx = data.find(b"EI", search)
            if idx < 0:
                self.pos = n
                return [info, data[start:]]
            before_ok = idx > start and data[idx - 1] in _WHITESPACE
            after_ok = idx + 2 >= n or data[idx + 2] in _WHITESPACE
            if before_ok and after_ok:
                self.pos = idx + 2
                return [info, data[start:idx - 1]]
            search = idx + 2

    def _flat_array(self) -> list[Any]:
        out: list[Any] = []
        data = self.data
        while self.pos < len(data):
            m = _TOKEN_RE.match(data, self.pos)
            if m is None:
                self.pos += 1
                continue
            self.pos = m.end()
            kind = m.lastgroup
            if kind == "aclose":
                break
            self.budget.token()
            if kind == "num":
                out.append(float(m.group()))
            elif kind == "name":
                out.append(Name(_unescape_name(m.group()[1:])))
            elif kind == "hex":
                out.append(self._hex())
            elif kind == "str":
                out.append(self._literal())
        return out


def pairs(items: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i in range(0, len(items) - 1, 2):
        key = items[i]
        if isinstance(key, Name):
            out[str(key)] = items[i + 1]
    return out


_INLINE_COMPONENTS: Final = {"G": 1, "DeviceGray": 1, "RGB": 3, "DeviceRGB": 3, "CMYK": 4, "DeviceCMYK": 4}


def _inline_length(info: Mapping[str, Any]) -> int | None:
    """Byte length of unfiltered inline image data, when it can be computed."""
    if info.get("L") is not None or info.get("Length") is not None:
        value = info.get("L", info.get("Length"))
        return int(value) if isinstance(value, float) and 0 <= value < 1e8 else None
    if info.get("F") or info.get("Filter"):
        return None
    w, h = info.get("W", info.get("Width")), info.get("H", info.get("Height"))
    bpc = info.get("BPC", info.get("BitsPerComponent", 1))
    mask = info.get("IM", info.get("ImageMask", False))
    space = info.get("CS", info.get("ColorSpace", "G"))
    comps = 1 if mask else _INLINE_COMPONENTS.get(str(space), 1 if isinstance(space, list) else 0)
    if not comps or not all(isinstance(v, float) and 0 < v < 1e5 for v in (w, h, bpc)):
        return None
    row = (int(w) * comps * int(bpc) + 7) // 8
    return row * int(h)


MAX_CMAP_ENTRIES: Final = 200_000



def _code_value(value: Any) -> int | None:
    if isinstance(value, bytes) and 0 < len(value) <= 4:
        return int.from_bytes(value, "big")
    return None


def _utf16(value: bytes) -> str:
    if len(value) == 1:
        return chr(value[0])
    text = value.decode("utf-16-be", errors="surrogatepass")
    return text.encode("utf-16", "surrogatepass").decode("utf-16", errors="replace")


def parse_to_unicode(data: bytes, budget: Budget | None = None) -> dict[int, str]:
    """A ToUnicode CMap's ``bfchar``/``bfrange`` mappings: code -> text (bounded)."""
    budget = budget or Budget(PdfLimits(), Deadline(10.0))
    out: dict[int, str] = {}
    work = 0  # entries written, overlapping ranges included: the work an attacker buys
    for op, operands in Lexer(data, budget).operations():
        work += len(operands)
        if op == "endbfchar":
            for i in range(0, len(operands) - 1, 2):
                code, dest = _code_value(operands[i]), operands[i + 1]
                if code is not None and isinstance(dest, bytes):
                    out[code] = _utf16(dest)
        elif op == "endbfrange":
            for i in range(0, len(operands) - 2, 3):
                lo, hi, dest = _code_value(operands[i]), _code_value(operands[i + 1]), operands[i + 2]
                if lo is None or hi is None or hi < lo:
                    continue
                hi = min(hi, lo + 65535)
                work += hi - lo + 1
                if work > MAX_CMAP_ENTRIES:
                    raise too_large("a ToUnicode CMap maps too many codes")
                if isinstance(dest, list):
                    for k, item in enumerate(dest[:hi - lo + 1]):
                        if isinstance(item, bytes):
                            out[lo + k] = _utf16(item)
                elif isinstance(dest, bytes) and dest:
                    start = int.from_bytes(dest[-2:], "big")
                    prefix = dest[:-2]
                    for k in range(hi - lo + 1):
                        value = start + k
                        if value > 0xFFFF:
                            break
                        out[lo + k] = _utf16(prefix + value.to_bytes(2, "big"))
        if len(out) > MAX_CMAP_ENTRIES:
            raise too_large("a ToUnicode CMap has too many entries")
    return out


def parse_cid_cmap(data: bytes, budget: Budget) -> tuple[tuple[tuple[bytes, bytes], ...], dict[int, int]]:
    codespace: list[tuple[bytes, bytes]] = []
    cids: dict[int, int] = {}
    work = 0
    for op, operands in Lexer(data, budget).operations():
        if op == "endcodespacerange":
            for i in range(0, len(operands) - 1, 2):
                lo, hi = operands[i], operands[i + 1]
                if isinstance(lo, bytes) and isinstance(hi, bytes) and len(lo) == len(hi) and 0 < len(lo) <= 4:
                    codespace.append((lo, hi))
        elif op == "endcidchar":
            for i in range(0, len(operands) - 1, 2):
                code, cid = _code_value(operands[i]), operands[i + 1]
                if code is not None and isinstance(cid, float) and 0 <= cid < 65536:
                    cids[code] = int(cid)
        elif op == "endcidrange":
            for i in range(0, len(operands) - 2, 3):
                lo, hi, cid = _code_value(operands[i]), _code_value(operands[i + 1]), operands[i + 2]
                if lo is None or hi is None or hi < lo or not isinstance(cid, float) or not 0 <= cid < 65536:
                    continue
                work += min(hi - lo, 65535) + 1
                if work > MAX_CMAP_ENTRIES:
                    raise too_large("an encoding CMap maps too many codes")
                for k in range(min(hi - lo, 65535) + 1):
                    cids[lo + k] = int(cid) + k
        if len(cids) > MAX_CMAP_ENTRIES or len(codespace) > 256:
            raise too_large("an encoding CMap has too many entries")
    return tuple(codespace), cids


