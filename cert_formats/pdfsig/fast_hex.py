"""pyHanko's hex-string reader, with the same result at C speed for plain hex strings.

pyHanko reads a ``<hex>`` string one byte at a time through a generator (about a
microsecond per byte). A signature's ``/Contents`` is several thousand hex digits, so that
loop alone was ~2.5 ms of every PDF verification — more than the SM2 check. This reader
finds the closing ``>`` with ``bytes.find``, drops PDF whitespace with ``bytes.translate``
and decodes with ``binascii``: for a string that holds only hex digits and whitespace it
returns exactly what pyHanko's does (same object type, same bytes, stream left after
``>``). Anything else — a ``%`` (pyHanko skips a comment there), a non-hex byte, a string
that does not end — is handed to pyHanko's own reader from the same position, so every
error and every corner case stays pyHanko's.

Installed by :func:`install` (idempotent) in place of
``pyhanko.pdf_utils.generic.read_hex_string_from_stream``, which ``read_object`` looks up
as a module global.
"""

from __future__ import annotations

import binascii
import re
import threading
from typing import IO, Any, Final

from pyhanko.pdf_utils import generic

_ORIGINAL: Final = generic.read_hex_string_from_stream
_WHITESPACE: Final = b" \n\r\t\f\x00"  # pyhanko.pdf_utils.misc.PDF_WHITESPACE
_PLAIN: Final = re.compile(rb"[0-9A-Fa-f \n\r\t\f\x00]*")
#: hex strings longer than this go to pyHanko's reader (no valid signature needs more)
_MAX_SCAN: Final = 1 << 20
_CHUNK: Final = 16384
_lock = threading.Lock()


def read_hex_string(stream: IO[bytes]) -> Any:
    """Drop-in for ``generic.read_hex_string_from_stream`` (``stream`` is at the ``<``)."""
    start = stream.tell()
    stream.read(1)
    body = bytearray()
    while True:
        chunk = stream.read(_CHUNK)
        end = chunk.find(b">")
        if end >= 0:
            body += chunk[:end]
            break
        body += chunk
        if not chunk or len(body) > _MAX_SCAN:
            stream.seek(start)
            return _ORIGINAL(stream)
    if not _PLAIN.fullmatch(body):
        stream.seek(start)
        return _ORIGINAL(stream)
    stream.seek(start + 1 + len(body) + 1)
    digits = bytes(body).translate(None, _WHITESPACE)
    if len(digits) % 2:
        digits += b"0"
    return generic.pdf_string(binascii.unhexlify(digits))


def install() -> None:
    with _lock:
        generic.read_hex_string_from_stream = read_hex_string
