"""Making an electronic seal (SESeal, GB/T 38540-2020 V4) and its picture.

The seal maker (制章者) is the body allowed to make seals: its SM2 key signs the
DER ``SES_SealInfo`` — the seal's name, identifier, validity, picture and the
certificates of the signers (签章者) who may use it. An agency then seals
documents with its own key; :mod:`.sign` embeds the seal in every signature.

    picture = render_seal_picture("某某市市场监督管理局", caption="证照专用章")
    seal = make_seal(name="某某市市场监督管理局证照专用章", signers=[agency_cert],
                     maker_key=maker_key, maker_cert=maker_cert,
                     valid_start=start, valid_end=end, picture=picture)
    Path("agency.esl").write_bytes(seal.der)          # load_seal() reads it back

The steps of :func:`make_seal`, labelled again in the code:

1. the maker: its key belongs to its certificate, which allows
   digitalSignature and is valid when the seal is made;
2. the signers: listed by DER certificate (certListType 1) or by SM3 digest (2);
3. the seal info, encoded as DER ``SES_SealInfo``;
4. the maker's SM2 signature (GM/T 0009 default signer ID) over exactly those
   bytes, assembled into ``SESeal``;
5. the result parsed back and its signature verified: a faulty signer or
   encoder never hands out a seal that does not verify.
"""

from __future__ import annotations

import io
import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from signing import sm3
from signing.errors import CertLedgerError, InvalidInputError
from signing.sm2 import DEFAULT_SIGNER_ID, SM2PrivateKey
from signing.x509 import Certificate, KeyUsage

from .ses import (
    SM2_WITH_SM3,
    VENDOR_ID,
    CertDigest,
    CertListType,
    ElectronicSeal,
    SealExtension,
    SealInfo,
    SealPicture,
    SesLimits,
    encode_seal,
    encode_seal_info,
    parse_seal,
)

#: SES_ESPropertyInfo.type is application-defined (GB/T 38540); certledger writes 1, an
#: organisation's seal (单位印章), for every agency seal
ORGANIZATION_SEAL: Final = 1
#: CertDigestObj.type written when signers are listed by digest
DIGEST_TYPE_SM3: Final = "sm3"
#: the red of Chinese official seals, opaque; the background stays transparent
SEAL_RED: Final = (220, 24, 24, 255)
MAX_SIGNERS: Final = 16

REASON_MAKER: Final = "seal.maker"


def _maker_error(message: str) -> InvalidInputError:
    return InvalidInputError(message, reason=REASON_MAKER)


def new_es_id() -> str:
    """A fresh seal identifier (esID): 32 hex digits, unique without coordination."""
    return uuid.uuid4().hex


def load_seal(data: bytes, *, limits: SesLimits | None = None) -> ElectronicSeal:
    """Read a seal (``.esl``, DER ``SESeal``) from untrusted bytes; only parses, see :mod:`.verify`."""
    return parse_seal(data, limits=limits)


def make_seal(
    *,
    name: str,
    signers: Sequence[Certificate],
    maker_key: SM2PrivateKey,
    maker_cert: Certificate,
    valid_start: datetime,
    valid_end: datetime,
    picture: SealPicture,
    es_id: str | None = None,
    seal_type: int = ORGANIZATION_SEAL,
    created: datetime | None = None,
    list_signers_by: CertListType = CertListType.CERTIFICATES,
    extensions: Sequence[SealExtension] = (),
    vid: str = VENDOR_ID,
) -> ElectronicSeal:
    """Make a V4 seal named ``name`` for ``signers``, signed by the seal maker.

    ``created`` defaults to now. Raises :class:`InvalidInputError` with reason
    ``seal.maker`` (the maker's key or certificate cannot make seals then),
    ``seal.profile`` (a field the format cannot carry) or ``seal.time``.
    """
    when = datetime.now(UTC).replace(microsecond=0) if created is None else created
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidInputError("created must be a timezone-aware datetime", reason="seal.time")

    # 1. the maker
    if maker_key.public_key != maker_cert.public_key:
        raise _maker_error("the seal maker's key does not belong to its certificate")
    if maker_cert.key_usage is None or KeyUsage.DIGITAL_SIGNATURE not in maker_cert.key_usage:
        raise _maker_error(f"the seal maker's certificate {maker_cert.subject.rfc4514()} "
                           "does not allow digitalSignature")
    if not maker_cert.validity.contains(when):
        raise _maker_error(f"the seal maker's certificate is not valid at {when.isoformat()}")

    # 2. the signers
    signer_list = list(signers)
    if not signer_list or len(signer_list) > MAX_SIGNERS:
        raise InvalidInputError(f"a seal names 1..{MAX_SIGNERS} signer certificates", reason="seal.profile")
    certs: tuple[bytes, ...] = ()
    digests: tuple[CertDigest, ...] = ()
    if CertListType(list_signers_by) is CertListType.CERTIFICATES:
        certs = tuple(c.der for c in signer_list)
    else:
        digests = tuple(CertDigest(DIGEST_TYPE_SM3, sm3.sm3(c.der)) for c in signer_list)

    # 3. the seal info
    info = SealInfo(
        es_id=new_es_id() if es_id is None else es_id,
        name=name,
        seal_type=seal_type,
        signer_certificates=certs,
        signer_cert_digests=digests,
        created=when,
        valid_start=valid_start,
        valid_end=valid_end,
        picture=picture,
        vid=vid,
        extensions=tuple(extensions),
    )
    info_der = encode_seal_info(info)

    # 4. the maker's signature, over exactly those bytes
    signature = maker_key.sign(info_der, signer_id=DEFAULT_SIGNER_ID)
    seal_der = encode_seal(info_der, maker_cert.der, signature, SM2_WITH_SM3)

    # 5. parse back and verify
    seal = parse_seal(seal_der)
    try:
        maker_cert.public_key.verify(seal.signature, seal.info_der, signer_id=DEFAULT_SIGNER_ID)
    except CertLedgerError as exc:  # pragma: no cover - only a broken backend gets here
        raise _maker_error(f"the seal just made does not verify: {exc}") from None
    if seal.info != info:  # pragma: no cover - only a broken encoder gets here
        raise _maker_error("the seal just made does not decode to what was given")
    return seal


# -- the picture ------------------------------------------------------------------------------


def _font_file(font_path: str | Path | None, font_index: int) -> tuple[str, int]:
    if font_path is not None:
        return str(font_path), font_index
    # the same CJK face the licence face embeds (configured by CERTLEDGER_CJK_FONT)
    from cert_formats.fonts import find_cjk_font

    found = find_cjk_font()
    return str(found.path), found.subfont_index


def render_seal_picture(
    agency_name: str,
    *,
    caption: str = "",
    diameter_mm: int = 40,
    dpi: int = 300,
    font_path: str | Path | None = None,
    font_index: int = 0,
) -> SealPicture:
    """A round red seal as a transparent PNG: ring, five-pointed star, name along the upper arc.

    The same drawing as the licence face's vector seal (cert_formats.pdf_face):
    the agency name runs clockwise along the upper arc with the tops of the
    characters outward, its span growing with the name; ``caption`` (e.g.
    ``证照专用章``) sits under the star. ``font_path`` defaults to the CJK font
    the licence face uses.
    """
    from PIL import Image, ImageDraw, ImageFont

    if not isinstance(agency_name, str) or not agency_name.strip():
        raise InvalidInputError("the seal needs the agency's name", reason="seal.profile")
    if not 10 <= diameter_mm <= 100 or not 72 <= dpi <= 1200:
        raise InvalidInputError("diameter must be 10..100 mm and dpi 72..1200", reason="seal.profile")
    path, index = _font_file(font_path, font_index)
    # draw at twice the size and scale down: Pillow does not anti-alias shapes itself
    scale = 2
    side = round(diameter_mm / 25.4 * dpi) * scale
    px_per_mm = side / diameter_mm
    img = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    c = side / 2
    ring = diameter_mm * 0.032 * px_per_mm
    draw.ellipse((ring / 2, ring / 2, side - ring / 2, side - ring / 2), outline=SEAL_RED, width=round(ring))

    # the star, point up
    r_out, r_in = side * 0.17, side * 0.17 * 0.382
    points = []
    for k in range(10):
        r = r_out if k % 2 == 0 else r_in
        theta = math.radians(90 + 36 * k)
        points.append((c + r * math.cos(theta), c - r * math.sin(theta)))
    draw.polygon(points, fill=SEAL_RED)

    # the name along the upper arc (pdf_face's layout: span, size and radius settle together)
    name = agency_name.strip()
    n = len(name)
    inner = side / 2 - ring
    span = min(250.0, 90.0 + 12.0 * n) if n > 1 else 0.0
    size = side * 0.16
    r_text = inner - side * 0.035 - 0.45 * size
    for _ in range(3):
        r_text = inner - side * 0.035 - 0.45 * size
        pitch = r_text * math.radians(span / (n - 1)) if n > 1 else size
        size = min(0.86 * pitch, side * 0.16)
    try:
        font = ImageFont.truetype(path, max(1, round(size)), index=index)
    except OSError as exc:
        raise InvalidInputError(f"cannot load the seal font {path}: {exc}", reason="seal.font") from None
    tile = round(size * 1.6)
    for k, ch in enumerate(name):
        theta = 90.0 + span / 2 - (span * k / (n - 1) if n > 1 else 0.0)
        glyph = Image.new("RGBA", (tile, tile), (0, 0, 0, 0))
        # a stroke of a few percent of the em makes the thin Ming strokes read as carved
        ImageDraw.Draw(glyph).text((tile / 2, tile / 2), ch, font=font, fill=SEAL_RED, anchor="mm",
                                   stroke_width=max(1, round(size * 0.035)), stroke_fill=SEAL_RED)
        # tops outward: a character at angle theta is turned by theta - 90 counter-clockwise
        turned = glyph.rotate(theta - 90.0, resample=Image.Resampling.BICUBIC)
        gx = c + r_text * math.cos(math.radians(theta)) - tile / 2
        gy = c - r_text * math.sin(math.radians(theta)) - tile / 2
        img.alpha_composite(turned, (round(gx), round(gy)))

    if caption:
        csize = side * 0.085
        try:
            cfont = ImageFont.truetype(path, max(1, round(csize)), index=index)
        except OSError as exc:  # pragma: no cover - the same file loaded above
            raise InvalidInputError(f"cannot load the seal font {path}: {exc}", reason="seal.font") from None
        draw.text((c, c + side * 0.30), caption, font=cfont, fill=SEAL_RED, anchor="mm",
                  stroke_width=max(1, round(csize * 0.03)), stroke_fill=SEAL_RED)

    out = io.BytesIO()
    small = img.resize((side // scale, side // scale), Image.Resampling.LANCZOS)
    # one ink in shades of transparency: a 32-entry palette keeps the edges smooth at a
    # fifth of the RGBA size, and the picture travels inside every signature
    small.quantize(colors=32, method=Image.Quantize.FASTOCTREE).save(out, "PNG", optimize=True)
    return SealPicture(image_type="PNG", data=out.getvalue(), width_mm=diameter_mm, height_mm=diameter_mm)


__all__ = [
    "DIGEST_TYPE_SM3",
    "ORGANIZATION_SEAL",
    "load_seal",
    "make_seal",
    "new_es_id",
    "render_seal_picture",
]
