"""The hand-written proof-bundle update: readers, determinism, and hostile signed revisions."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader
from reportlab.pdfgen import canvas

from cert_formats.pdf_update import attach_bundle, bundle_update, read_own_bundle
from signing.errors import InvalidInputError

BUNDLE = b'{"kind":"certledger.proof/v1","pending":true}'


def _plain_pdf() -> bytes:
    """A one-page PDF with a classic xref table, as reportlab writes it (no signature needed)."""
    out = io.BytesIO()
    c = canvas.Canvas(out)
    c.setSubject("1.2.156.3005.2.test")
    c.drawString(100, 700, "licence")
    c.showPage()
    c.save()
    return out.getvalue()


PLAIN = _plain_pdf()


def test_update_is_a_valid_incremental_update() -> None:
    pdf = attach_bundle(PLAIN, BUNDLE)
    assert pdf.startswith(PLAIN)
    reader = PdfReader(io.BytesIO(pdf), strict=True)
    assert reader.attachments == {"certledger-proof.json": [BUNDLE]}
    assert reader.metadata is not None and reader.metadata["/Subject"] == "1.2.156.3005.2.test"
    assert len(reader.pages) == 1
    assert read_own_bundle(pdf, len(PLAIN)) == BUNDLE
    assert attach_bundle(PLAIN, BUNDLE) == pdf  # a pure function of its inputs


def test_bundle_bytes_are_kept_exactly() -> None:
    odd = bytes(range(256)) + b"endstream\nendobj\n"
    pdf = attach_bundle(PLAIN, odd)
    assert read_own_bundle(pdf, len(PLAIN)) == odd
    assert PdfReader(io.BytesIO(pdf)).attachments["certledger-proof.json"] == [odd]


def test_second_update_is_refused() -> None:
    """Once the catalog has /Names, certledger's update cannot be applied again."""
    once = attach_bundle(PLAIN, BUNDLE)
    with pytest.raises(InvalidInputError) as info:
        bundle_update(once, BUNDLE)
    assert info.value.reason == "pdf.unsupported_update"


def test_names_key_spelled_with_an_escape_is_found() -> None:
    catalog_at = PLAIN.index(b"/Type /Catalog")
    escaped = PLAIN[:catalog_at] + b"/N#61mes 1 0 R " + PLAIN[catalog_at + 15 :]
    # keep the byte count equal so the xref offsets stay right
    assert len(escaped) == len(PLAIN)
    with pytest.raises(InvalidInputError, match="/Names"):
        bundle_update(escaped, BUNDLE)


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d[: d.rindex(b"startxref")],  # no startxref
        lambda d: d.replace(b"\nxref\n", b"\nxREF\n"),  # not a classic table
        lambda d: d.replace(b"/Root", b"/Ruut"),  # no catalog reference
        lambda d: d[: d.rindex(b"startxref")] + b"startxref\n99999999\n%%EOF\n",  # offset off the end
    ],
    ids=["no-startxref", "xref-stream-like", "no-root", "bad-offset"],
)
def test_unsupported_structure_is_refused(edit: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        bundle_update(edit(PLAIN), BUNDLE)  # type: ignore[operator]
    assert info.value.reason == "pdf.unsupported_update"


def test_prev_loop_and_deep_nesting_are_bounded() -> None:
    start = int(PLAIN[PLAIN.rindex(b"startxref") + 9 :].split()[0])
    looped = PLAIN.replace(b"trailer\n<<", b"trailer\n<< /Prev %d" % start, 1)
    with pytest.raises(InvalidInputError):
        bundle_update(looped, BUNDLE)
    catalog_at = PLAIN.index(b"/Type /Catalog")
    deep = PLAIN[:catalog_at] + b"/Deep " + b"[" * 5000 + b"]" * 5000 + b" " + PLAIN[catalog_at:]
    with pytest.raises(InvalidInputError):
        bundle_update(deep, BUNDLE)


def test_read_own_bundle_refuses_other_updates() -> None:
    pdf = attach_bundle(PLAIN, BUNDLE)
    assert read_own_bundle(pdf, len(PLAIN) + 1) is None
    assert read_own_bundle(pdf[: len(PLAIN) + 120], len(PLAIN)) is None  # stream cut short
    assert read_own_bundle(PLAIN, len(PLAIN)) is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=len(PLAIN) - 1), st.binary(min_size=1, max_size=4))
def test_any_damaged_revision_gives_bytes_or_a_clear_refusal(at: int, junk: bytes) -> None:
    damaged = PLAIN[:at] + junk + PLAIN[at + len(junk) :]
    try:
        out = bundle_update(damaged, BUNDLE)
    except InvalidInputError as exc:
        assert exc.reason == "pdf.unsupported_update" and str(exc)
    else:
        assert out.endswith(b"%%EOF\n")


def test_numbers_of_thousands_of_digits_are_malformed_not_int_errors() -> None:
    """Python refuses int() of more than 4300 digits with ValueError: such numbers are refused as malformed first."""
    from cert_formats.binding import pdf_digest

    plain = _plain_pdf()
    huge = b"9" * 5000
    # a trailer whose /Prev is 5000 digits: the update cannot be built, with a clear reason
    head, sep, tail = plain.rpartition(b"trailer")
    prev = head + sep + tail.replace(b"<<", b"<< /Prev " + huge, 1)
    with pytest.raises(InvalidInputError) as err:
        bundle_update(prev, b"{}")
    assert err.value.reason != "" and "/Prev" in err.value.message
    # a /ByteRange of 5000-digit numbers is no byte range: the digest is of the whole file
    faked = plain + b"% /ByteRange [0 " + huge + b" " + huge + b" 1]\n"
    from signing.sm3 import sm3

    assert pdf_digest(faked) == sm3(faked).hex()  # raised ValueError before
