"""Reading an untrusted zip container into memory, refusing anything dangerous.

An OFD file is a zip. Before a single byte is inflated this module checks the
whole archive against :class:`ZipLimits` and the rules below; while inflating it
counts what really comes out instead of trusting the sizes the headers declare.
Nothing is ever written to disk: the result is a mapping of entry name to bytes.

Rules, each with the reason code of the :class:`InvalidInputError` it raises:

1. the input is a zip (``ofd.not_zip``), no larger than the limit
   (``ofd.too_large``), with one well-formed end record, no leading or trailing
   bytes and no Zip64 (``ofd.malformed_zip``), and at least one entry
   (``ofd.empty_package``);
2. the central directory is bounded and lists at most ``max_entries`` entries
   (``ofd.too_many_entries``);
3. every name is a plain relative path: no leading ``/`` or drive letter
   (``ofd.absolute_path``), no ``..`` segment (``ofd.path_traversal``), no
   backslash, colon, control character, empty or ``.`` segment, no excessive
   length or depth (``ofd.bad_entry_name``); no two names equal ignoring case
   (``ofd.duplicate_entry``);
4. no symlink (``ofd.symlink``) or other special file (``ofd.special_entry``),
   no encryption (``ofd.encrypted_entry``), only stored or deflated data
   (``ofd.unsupported_compression``);
5. entries do not overlap each other or the central directory — the trick behind
   non-recursive zip bombs (``ofd.zip_bomb``);
6. declared and actual inflated sizes stay under the per-entry and total limits,
   and the inflated/compressed ratio under ``max_ratio`` once an entry passes
   ``ratio_floor_bytes`` (``ofd.zip_bomb``); CRC and stream errors are
   ``ofd.malformed_zip``.
"""

from __future__ import annotations

import io
import re
import stat
import struct
import zipfile
import zlib
from typing import Final

from signing.errors import InvalidInputError

from .limits import Deadline, ZipLimits

_EOCD_SIG: Final = b"PK\x05\x06"
_EOCD_LEN: Final = 22
_ZIP64_LOCATOR_SIG: Final = b"PK\x06\x07"
_LOCAL_SIG: Final = b"PK\x03\x04"
_LOCAL_LEN: Final = 30
_MAX_COMMENT: Final = 0xFFFF
_CHUNK: Final = 64 * 1024

_FLAG_ENCRYPTED: Final = 1 << 0
_FLAG_STRONG_ENCRYPTION: Final = 1 << 6
_FLAG_UTF8: Final = 1 << 11
_FLAG_CD_ENCRYPTED: Final = 1 << 13

_SPECIAL_TYPES: Final = {
    stat.S_IFLNK: "ofd.symlink",
    stat.S_IFIFO: "ofd.special_entry",
    stat.S_IFCHR: "ofd.special_entry",
    stat.S_IFBLK: "ofd.special_entry",
    stat.S_IFSOCK: "ofd.special_entry",
}
_DRIVE_RE: Final = re.compile(r"^[A-Za-z]:")
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")


def _fail(message: str, reason: str, **details: object) -> InvalidInputError:
    return InvalidInputError(message, reason=reason, details=details)


def _end_record(data: bytes, limits: ZipLimits) -> tuple[int, int, int]:
    """(entry count, central directory size, central directory offset) from the end record.

    Read here rather than trusted to ``zipfile`` so that a huge or lying central
    directory is refused before ``zipfile`` builds an object per entry.
    """
    tail_start = max(0, len(data) - _EOCD_LEN - _MAX_COMMENT)
    pos = data.rfind(_EOCD_SIG, tail_start)
    if pos < 0 or len(data) - pos < _EOCD_LEN:
        if data.startswith(_LOCAL_SIG) or data.startswith(_EOCD_SIG):
            raise _fail("the zip archive is truncated: no end of central directory",
                        "ofd.malformed_zip")
        raise _fail("not a zip archive", "ofd.not_zip")
    (_sig, disk, cd_disk, n_disk, n_total, cd_size, cd_offset,
     comment_len) = struct.unpack("<4s4H2LH", data[pos:pos + _EOCD_LEN])
    if pos + _EOCD_LEN + comment_len != len(data):
        raise _fail("bytes after the zip end record", "ofd.malformed_zip")
    if disk != 0 or cd_disk != 0 or n_disk != n_total:
        raise _fail("multi-disk zip archives are not OFD packages", "ofd.malformed_zip")
    if (n_total == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF
            or (pos >= 20 and data[pos - 20:pos - 16] == _ZIP64_LOCATOR_SIG)):
        raise _fail("Zip64 archives are not accepted for OFD packages", "ofd.malformed_zip")
    if n_total > limits.max_entries:
        raise _fail(f"the archive lists {n_total} entries (max {limits.max_entries})",
                    "ofd.too_many_entries", entries=n_total)
    if cd_size > limits.max_central_directory_bytes:
        raise _fail(f"the central directory is {cd_size} bytes "
                    f"(max {limits.max_central_directory_bytes})", "ofd.too_many_entries")
    if cd_offset + cd_size != pos:
        # Leading bytes (a zip appended to another file) or a misplaced directory: a
        # polyglot file is not something a licence holder has a reason to send.
        raise _fail("the central directory is not where the end record says",
                    "ofd.malformed_zip")
    return n_total, cd_size, cd_offset


def _decode_name(info: zipfile.ZipInfo) -> str:
    """The entry name as text; UTF-8 even when a tool forgot to set the UTF-8 flag."""
    name = info.orig_filename  # zipfile cuts ``filename`` at a NUL; the original keeps it
    if info.flag_bits & _FLAG_UTF8:
        return name
    try:
        raw = name.encode("cp437")
    except UnicodeEncodeError:  # pragma: no cover - zipfile decoded it with cp437
        return name
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return name


def check_entry_name(name: str, limits: ZipLimits) -> str:
    """Validate one entry name (rule 3) and return it without a trailing ``/``.

    Exposed so that references inside the package can be held to the same rules.
    """
    if not name:
        raise _fail("an entry has an empty name", "ofd.bad_entry_name")
    if len(name.encode("utf-8")) > limits.max_name_bytes:
        raise _fail("an entry name is too long", "ofd.bad_entry_name", entry=name[:80])
    if name.startswith("/") or _DRIVE_RE.match(name) or name.startswith("\\\\"):
        raise _fail(f"absolute entry name {name!r}", "ofd.absolute_path", entry=name)
    segments_any_sep = re.split(r"[/\\]", name)
    if ".." in segments_any_sep:
        raise _fail(f"entry name {name!r} climbs out of the package", "ofd.path_traversal",
                    entry=name)
    if "\\" in name or ":" in name or _CONTROL_RE.search(name):
        raise _fail(f"entry name {name!r} has a forbidden character", "ofd.bad_entry_name",
                    entry=name)
    body = name[:-1] if name.endswith("/") else name
    segments = body.split("/")
    if any(seg in ("", ".") for seg in segments):
        raise _fail(f"entry name {name!r} has an empty or '.' segment", "ofd.bad_entry_name",
                    entry=name)
    if len(segments) > limits.max_path_depth:
        raise _fail(f"entry name {name!r} is nested too deeply", "ofd.bad_entry_name",
                    entry=name)
    return body


def _check_entry(info: zipfile.ZipInfo, name: str) -> None:
    """Rule 4: type, encryption and compression of one entry."""
    mode = (info.external_attr >> 16) & 0o170000
    if mode in _SPECIAL_TYPES:
        kind = "a symlink" if mode == stat.S_IFLNK else "a special file"
        raise _fail(f"entry {name!r} is {kind}", _SPECIAL_TYPES[mode], entry=name)
    if info.flag_bits & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION | _FLAG_CD_ENCRYPTED):
        raise _fail(f"entry {name!r} is encrypted", "ofd.encrypted_entry", entry=name)
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _fail(f"entry {name!r} uses compression method {info.compress_type}",
                    "ofd.unsupported_compression", entry=name)
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise _fail(f"stored entry {name!r} has inconsistent sizes", "ofd.malformed_zip",
                    entry=name)


def _check_layout(data: bytes, infos: list[zipfile.ZipInfo], cd_offset: int) -> None:
    """Rule 5: local entries lie one after another, inside the data area, never shared."""
    ordered = sorted(infos, key=lambda i: i.header_offset)
    if ordered and ordered[0].header_offset != 0:
        raise _fail("the archive does not start with an entry", "ofd.malformed_zip")
    for index, info in enumerate(ordered):
        start = info.header_offset
        header = data[start:start + _LOCAL_LEN]
        if len(header) != _LOCAL_LEN or header[:4] != _LOCAL_SIG:
            raise _fail(f"entry {info.filename!r} has no local header", "ofd.malformed_zip")
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        end = start + _LOCAL_LEN + name_len + extra_len + info.compress_size
        limit = ordered[index + 1].header_offset if index + 1 < len(ordered) else cd_offset
        if end > limit:
            raise _fail(f"entry {info.filename!r} overlaps the next one", "ofd.zip_bomb",
                        entry=info.filename)


def _inflate(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, limits: ZipLimits,
             budget: int, deadline: Deadline) -> bytes:
    """Rule 6 while streaming: count real output, never trust the declared size."""
    cap = min(limits.max_entry_bytes, budget)
    out = io.BytesIO()
    produced = 0
    ratio_cap = limits.max_ratio * max(info.compress_size, 1)
    try:
        with zf.open(info) as stream:
            while True:
                deadline.check()
                chunk = stream.read(_CHUNK)
                if not chunk:
                    break
                produced += len(chunk)
                if produced > cap:
                    raise _fail(f"entry {name!r} inflates beyond {cap} bytes", "ofd.zip_bomb",
                                entry=name)
                if produced > limits.ratio_floor_bytes and produced > ratio_cap:
                    raise _fail(f"entry {name!r} inflates more than {limits.max_ratio:g}x",
                                "ofd.zip_bomb", entry=name)
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise _fail(f"entry {name!r} is corrupt: {exc}", "ofd.malformed_zip",
                    entry=name) from None
    except RuntimeError as exc:  # zipfile's "password required", should rule 4 miss it
        raise _fail(f"entry {name!r} cannot be read: {exc}", "ofd.encrypted_entry",
                    entry=name) from None
    return out.getvalue()


def read_zip(data: bytes, limits: ZipLimits | None = None,
             deadline: Deadline | None = None) -> dict[str, bytes]:
    """Check and inflate an untrusted zip archive entirely in memory.

    Returns ``{entry name: content}`` for the files in archive order (directory
    entries are checked, then dropped). Raises :class:`InvalidInputError` with a
    reason code from the module docstring; never writes to disk.
    """
    limits = limits or ZipLimits()
    deadline = deadline or Deadline.unbounded()
    # 1. size and end record
    if len(data) > limits.max_archive_bytes:
        raise _fail(f"the archive is {len(data)} bytes (max {limits.max_archive_bytes})",
                    "ofd.too_large")
    n_total, _cd_size, cd_offset = _end_record(data, limits)
    if n_total == 0:
        raise _fail("the archive has no entries", "ofd.empty_package")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, NotImplementedError, ValueError, struct.error) as exc:
        raise _fail(f"malformed zip archive: {exc}", "ofd.malformed_zip") from None
    with zf:
        infos = zf.infolist()
        # 2. the directory zipfile built must agree with the end record we checked
        if len(infos) != n_total:
            raise _fail("the central directory disagrees with the end record",
                        "ofd.malformed_zip")
        # 3. + 4. names and entry kinds, before any inflation
        seen: set[str] = set()
        files: list[tuple[zipfile.ZipInfo, str]] = []
        declared_total = 0
        for info in infos:
            deadline.check()
            raw_name = _decode_name(info)
            name = check_entry_name(raw_name, limits)
            key = name.casefold()
            if key in seen:
                raise _fail(f"entry {name!r} appears twice", "ofd.duplicate_entry", entry=name)
            seen.add(key)
            _check_entry(info, name)
            if raw_name.endswith("/"):
                if info.file_size or info.compress_size:
                    raise _fail(f"directory entry {name!r} has content", "ofd.malformed_zip",
                                entry=name)
                continue
            if info.file_size > limits.max_entry_bytes:
                raise _fail(f"entry {name!r} declares {info.file_size} bytes", "ofd.zip_bomb",
                            entry=name)
            declared_total += info.file_size
            if declared_total > limits.max_total_bytes:
                raise _fail("the archive declares more inflated bytes than allowed",
                            "ofd.zip_bomb")
            files.append((info, name))
        # 5. layout
        _check_layout(data, infos, cd_offset)
        # 6. inflate, counting
        out: dict[str, bytes] = {}
        remaining = limits.max_total_bytes
        for info, name in files:
            content = _inflate(zf, info, name, limits, remaining, deadline)
            remaining -= len(content)
            out[name] = content
    return out
