"""Finding an embeddable CJK TrueType font for licence faces.

A licence face must carry its Chinese text in an embedded font, or a reader on a
machine without that font shows boxes. reportlab (and the OFD writer) can only
embed fonts with TrueType (``glyf``) outlines; the CFF-flavoured Noto/Source Han
``.otf``/``.ttc`` files cannot be subset by them, so they are skipped.

Search order:

1. ``CERTLEDGER_CJK_FONT`` (``/path/font.ttc`` or ``/path/font.ttc:index``) — the
   deployment's explicit choice; an unusable value is an error, never a fallback;
2. the Debian packages this project documents: ``fonts-arphic-uming`` (a Ming /
   Song face, the style of printed licences) then ``fonts-wqy-zenhei``;
3. any other TrueType font under the usual font directories that covers the
   characters licences print.

Output bytes depend on the font file, so deployments that compare digests across
machines pin the font with the environment variable.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont, TTFontFile

from signing.errors import InvalidInputError

ENV_VAR: Final = "CERTLEDGER_CJK_FONT"
REASON_FONT: Final = "pdf.font_unavailable"

#: (path, subfont index) in order of preference; index 0 of uming.ttc is "AR PL UMing CN"
KNOWN_FONTS: Final[Sequence[tuple[str, int]]] = (
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/arphic/ukai.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
)
SEARCH_DIRS: Final[Sequence[str]] = ("/usr/share/fonts", "/usr/local/share/fonts")

#: characters every face prints; a font missing any of them is useless here
PROBE_TEXT: Final = "营业执照食品经营许可证职业资格证书统一社会信用代码颁发机关年月日长期至"

_ENV_RE: Final = re.compile(r"^(?P<path>.+?)(?::(?P<index>\d{1,2}))?$")


@dataclass(frozen=True)
class CjkFont:
    """One embeddable font face, registered with reportlab under :attr:`name`."""

    path: Path
    subfont_index: int
    #: the font's PostScript name from its ``name`` table (e.g. ``UMingCN``)
    postscript_name: str

    @property
    def name(self) -> str:
        """The reportlab font name this face is registered under."""
        return f"CL-{self.postscript_name}-{self.subfont_index}"


def find_cjk_font() -> CjkFont:
    """The CJK font to embed, registered with reportlab; raises if there is none.

    The result is cached for the process: the font does not change under a running
    service, and re-reading a 20 MB font file for every licence would be waste.
    """
    return _find_cached(os.environ.get(ENV_VAR, ""))


def load_font(path: str | Path, subfont_index: int = 0) -> CjkFont:
    """Load and register one specific font file (e.g. pinned by configuration).

    Raises ``InvalidInputError`` (reason ``pdf.font_unavailable``) when the file
    is missing, is not TrueType, or lacks the Chinese characters licences print.
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"font file {p} does not exist", reason=REASON_FONT)
    try:
        face = TTFontFile(str(p), subfontIndex=subfont_index)
    except (TTFError, OSError, ValueError, IndexError, KeyError) as exc:
        # TTFError covers CFF outlines ("postscript outlines are not supported")
        raise InvalidInputError(f"font {p}:{subfont_index} is not embeddable: {exc}", reason=REASON_FONT) from None
    missing = [ch for ch in PROBE_TEXT if ord(ch) not in face.charToGlyph]
    if missing:
        raise InvalidInputError(f"font {p}:{subfont_index} lacks {''.join(missing[:8])}…", reason=REASON_FONT)
    font = CjkFont(p, subfont_index, face.name.decode("ascii", "replace"))
    _register(font)
    return font


@functools.lru_cache(maxsize=4)
def _find_cached(env_value: str) -> CjkFont:
    # 1. explicit configuration wins and must work
    if env_value:
        m = _ENV_RE.match(env_value)
        if m is None:
            raise InvalidInputError(f"{ENV_VAR} is not /path/font.ttc[:index]", reason=REASON_FONT)
        return load_font(m.group("path"), int(m.group("index") or 0))
    # 2. the documented Debian packages
    for path, index in KNOWN_FONTS:
        if Path(path).is_file():
            try:
                return load_font(path, index)
            except InvalidInputError:
                continue
    # 3. anything else installed that works
    for candidate in _scan(SEARCH_DIRS):
        try:
            return load_font(candidate, 0)
        except InvalidInputError:
            continue
    raise InvalidInputError(
        "no embeddable CJK TrueType font found: install fonts-arphic-uming or "
        f"fonts-wqy-zenhei, or set {ENV_VAR}=/path/font.ttc[:index]",
        reason=REASON_FONT,
    )


def _scan(dirs: Sequence[str]) -> Iterator[Path]:
    for root in dirs:
        base = Path(root)
        if not base.is_dir():
            continue
        # sorted so the choice is the same on every run
        for path in sorted(base.rglob("*")):
            if path.suffix.lower() in (".ttf", ".ttc") and path.is_file():
                yield path


def _register(font: CjkFont) -> None:
    if font.name in pdfmetrics.getRegisteredFontNames():
        return
    # reportlab always embeds TTFonts as subsets (256 glyphs per subset font)
    pdfmetrics.registerFont(TTFont(font.name, str(font.path), subfontIndex=font.subfont_index))
