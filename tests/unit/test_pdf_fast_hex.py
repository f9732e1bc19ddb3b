"""The fast hex-string reader gives exactly pyHanko's result, or defers to pyHanko."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyhanko.pdf_utils import generic

from cert_formats.pdfsig import fast_hex


def _outcome(reader: object, data: bytes) -> tuple[object, ...]:
    stream = io.BytesIO(data)
    try:
        value = reader(stream)  # type: ignore[operator]
    except Exception as exc:  # the exception type itself is compared
        return ("error", type(exc), str(exc))
    return ("ok", type(value), bytes(value.original_bytes), stream.tell())


_PIECES = st.sampled_from([b"0", b"9", b"a", b"F", b"f", b" ", b"\n", b"\r", b"\t", b"\x00", b"\x0c",
                           b"%", b"%c\n", b"g", b"<", b"(", b"\xff", b"FEFF", b"feff00"])


@settings(max_examples=500, deadline=None)
@given(st.lists(_PIECES, max_size=40), st.booleans(), st.binary(max_size=8))
def test_same_result_as_pyhanko(pieces: list[bytes], closed: bool, after: bytes) -> None:
    data = b"<" + b"".join(pieces) + (b">" if closed else b"") + after
    assert _outcome(fast_hex.read_hex_string, data) == _outcome(fast_hex._ORIGINAL, data)


@pytest.mark.parametrize("size", [1, 2, 3, 16383, 16384, 16385, 40000])
def test_long_strings_across_chunks(size: int) -> None:
    body = (b"0123456789abcdef" * (size // 16 + 1))[:size]
    data = b"<" + body + b"> rest"
    assert _outcome(fast_hex.read_hex_string, data) == _outcome(fast_hex._ORIGINAL, data)


def test_installed_reader_is_used_by_pyhanko() -> None:
    fast_hex.install()
    value = generic.read_object(io.BytesIO(b"<48 65 6c6C6f>"), None)  # type: ignore[arg-type]
    assert bytes(value.original_bytes) == b"Hello"
