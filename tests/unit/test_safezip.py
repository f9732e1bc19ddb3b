"""The in-memory zip reader: every rule, every limit, and random damage."""

from __future__ import annotations

import importlib.util
import io
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cert_formats.ofd import Deadline, ZipLimits, read_ofd, read_zip
from cert_formats.ofd.safezip import _inflate, check_entry_name
from signing.errors import InvalidInputError

CORPUS = Path(__file__).resolve().parents[2] / "tests" / "corpus" / "ofd"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ofd_corpus_generate_sz", CORPUS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


GEN = _generator()
Entry, Zip = GEN.Entry, GEN.Zip


def zip_of(files: dict[str, bytes], *, dirs: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for d in dirs:
            zf.writestr(zipfile.ZipInfo(d), b"")
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def reason_of(data: bytes, limits: ZipLimits | None = None,
              deadline: Deadline | None = None) -> str:
    with pytest.raises(InvalidInputError) as exc:
        read_zip(data, limits, deadline)
    return exc.value.reason


def test_reads_files_in_order_and_drops_directories() -> None:
    files = {"OFD.xml": b"<a/>", "Doc_0/Document.xml": b"<b/>" * 100, "Doc_0/Res/x.bin": b"\x00\x01"}
    out = read_zip(zip_of(files, dirs=("Doc_0/", "Doc_0/Res/")))
    assert out == files
    assert list(out) == list(files)


def test_utf8_names_without_the_flag_are_decoded() -> None:
    data = Zip([Entry("Doc_0/证照.txt", b"x", flags=0)]).build()
    assert read_zip(data) == {"Doc_0/证照.txt": b"x"}


@pytest.mark.parametrize(("name", "reason"), [
    ("Doc_0/Pages/Page_0/Content.xml", None),
    ("Doc_0/Res/营业执照.png", None),
    ("Doc_0/", None),
    ("", "ofd.bad_entry_name"),
    ("/etc/passwd", "ofd.absolute_path"),
    ("C:/boot.ini", "ofd.absolute_path"),
    ("c:evil", "ofd.absolute_path"),
    ("\\\\server\\share\\x", "ofd.absolute_path"),
    ("../x", "ofd.path_traversal"),
    ("a/../../x", "ofd.path_traversal"),
    ("a\\..\\..\\x", "ofd.path_traversal"),
    ("a/..", "ofd.path_traversal"),
    ("a\\b", "ofd.bad_entry_name"),
    ("a:b", "ofd.absolute_path"),  # drive-relative on Windows
    ("ab:c", "ofd.bad_entry_name"),  # NTFS alternate data stream
    ("a\x00b", "ofd.bad_entry_name"),
    ("a\nb", "ofd.bad_entry_name"),
    ("a//b", "ofd.bad_entry_name"),
    ("./a", "ofd.bad_entry_name"),
    ("a/./b", "ofd.bad_entry_name"),
    ("x" * 600, "ofd.bad_entry_name"),
    ("/".join(["d"] * 20), "ofd.bad_entry_name"),
])
def test_entry_names(name: str, reason: str | None) -> None:
    if reason is None:
        assert check_entry_name(name, ZipLimits()) == name.rstrip("/")
    else:
        with pytest.raises(InvalidInputError) as exc:
            check_entry_name(name, ZipLimits())
        assert exc.value.reason == reason


def test_size_and_count_limits() -> None:
    files = {f"f{i}": bytes([i]) * 1000 for i in range(10)}
    data = zip_of(files)
    assert reason_of(data, ZipLimits(max_archive_bytes=100)) == "ofd.too_large"
    assert reason_of(data, ZipLimits(max_entries=9)) == "ofd.too_many_entries"
    assert reason_of(data, ZipLimits(max_central_directory_bytes=100)) == "ofd.too_many_entries"
    assert reason_of(data, ZipLimits(max_entry_bytes=999)) == "ofd.zip_bomb"
    assert reason_of(data, ZipLimits(max_total_bytes=9999)) == "ofd.zip_bomb"
    assert len(read_zip(data, ZipLimits(max_entries=10, max_total_bytes=10_000))) == 10


def test_ratio_is_judged_only_past_the_floor() -> None:
    data = zip_of({"zeros": b"\x00" * 200_000})
    assert reason_of(data, ZipLimits(max_ratio=10, ratio_floor_bytes=64 * 1024)) == "ofd.zip_bomb"
    # the same file under the floor is accepted: tiny files compress wildly and harmlessly
    assert read_zip(data, ZipLimits(max_ratio=10, ratio_floor_bytes=300_000))["zeros"] == b"\x00" * 200_000


def test_inflation_is_counted_not_taken_from_headers() -> None:
    """The streaming guard stops at the budget whatever the headers said."""
    data = zip_of({"zeros": b"\x00" * 500_000})
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.infolist()[0]
        info.file_size = 10  # a header that lies after the declared-size check
        with pytest.raises(InvalidInputError) as exc:
            _inflate(zf, info, "zeros", ZipLimits(), 100_000, Deadline(60))
    assert exc.value.reason in ("ofd.zip_bomb", "ofd.malformed_zip")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.infolist()[0]
        with pytest.raises(InvalidInputError) as exc:
            _inflate(zf, info, "zeros", ZipLimits(), 100_000, Deadline(60))
    assert exc.value.reason == "ofd.zip_bomb"


def test_entry_kinds() -> None:
    assert reason_of(Zip([Entry("a", b"x", external_attr=0o120777 << 16)]).build()) == "ofd.symlink"
    assert reason_of(Zip([Entry("a", b"x", external_attr=0o060644 << 16)]).build()) == \
        "ofd.special_entry"
    assert reason_of(Zip([Entry("a", b"x", flags=0x801)]).build()) == "ofd.encrypted_entry"
    assert reason_of(Zip([Entry("a", b"x", flags=0x840)]).build()) == "ofd.encrypted_entry"
    assert reason_of(Zip([Entry("a", b"x", method=14, raw=b"x")]).build()) == \
        "ofd.unsupported_compression"
    assert reason_of(Zip([Entry("a", b"xy", method=0, raw=b"x")]).build()) == "ofd.malformed_zip"
    assert reason_of(Zip([Entry("d/", b"x")]).build()) == "ofd.malformed_zip"
    # a Windows-made entry with plain attributes is an ordinary file
    assert read_zip(Zip([Entry("a", b"x", create_system=0, external_attr=0x20)]).build()) == \
        {"a": b"x"}


def test_end_record_rules() -> None:
    good = Zip([Entry("a", b"x")]).build()
    assert read_zip(good) == {"a": b"x"}
    assert reason_of(b"") == "ofd.not_zip"
    assert reason_of(b"hello world" * 10) == "ofd.not_zip"
    assert reason_of(good[:-1]) == "ofd.malformed_zip"
    assert reason_of(good + b"x") == "ofd.malformed_zip"
    assert reason_of(b"x" + good) == "ofd.malformed_zip"
    assert reason_of(Zip([Entry("a", b"x")], eocd_count=2).build()) == "ofd.malformed_zip"
    assert reason_of(Zip([]).build()) == "ofd.empty_package"
    multi_disk = bytearray(good)
    multi_disk[-18:-16] = b"\x01\x00"
    assert reason_of(bytes(multi_disk)) == "ofd.malformed_zip"


def test_duplicates_and_overlaps() -> None:
    assert reason_of(Zip([Entry("a", b"1"), Entry("a", b"2")]).build()) == "ofd.duplicate_entry"
    assert reason_of(Zip([Entry("A.xml", b"1"), Entry("a.XML", b"2")]).build()) == \
        "ofd.duplicate_entry"
    shared = Zip([Entry("a", b"1" * 100), Entry("b", b"1" * 100, share_data_with=0)]).build()
    assert reason_of(shared) == "ofd.zip_bomb"


def test_deadline_stops_inflation() -> None:
    data = zip_of({"a": b"x" * 100})
    assert reason_of(data, deadline=Deadline(-1)) == "ofd.timeout"


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        ZipLimits(max_entries=0)
    with pytest.raises(ValueError):
        ZipLimits(max_ratio=1)


BASELINE = (CORPUS / "baseline_valid.ofd").read_bytes()


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(BASELINE) - 1), st.integers(0, 255)),
                min_size=1, max_size=8),
       st.integers(0, len(BASELINE)))
@pytest.mark.timeout(120)
def test_damaged_packages_fail_cleanly(flips: list[tuple[int, int]], cut: int) -> None:
    """Random byte damage and truncation: a result or an InvalidInputError, nothing else."""
    data = bytearray(BASELINE)
    for pos, value in flips:
        data[pos] = value
    try:
        read_ofd(bytes(data[:cut] if cut else data))
    except InvalidInputError as exc:
        assert exc.reason.startswith("ofd.")
