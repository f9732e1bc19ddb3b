"""SM3: hashlib (OpenSSL) and the pure-Python fallback against published vectors and each other."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signing import sm3 as sm3_mod
from signing._sm3_pure import SM3Pure

_SM3_VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "sm3"
VECTORS = [
    pytest.param(bytes.fromhex(v["message_hex"]), v["digest_hex"].lower(), id=v["name"])
    for f in ("gbt32905_2016_annex_a.json", "openssl_evpmd_sm3.json")
    for v in json.loads((_SM3_VECTORS / f).read_text(encoding="utf-8"))["vectors"]
]


def _hashlib_sm3(data: bytes) -> str:
    return hashlib.new("sm3", data).hexdigest()


def test_hashlib_has_sm3() -> None:
    # the design relies on OpenSSL's SM3; the fallback is for other platforms only
    assert sm3_mod.NATIVE, "this Python's OpenSSL lacks SM3: install a Python linked to OpenSSL 3"


@pytest.mark.parametrize(("message", "digest"), VECTORS)
def test_published_vectors(message: bytes, digest: str) -> None:
    assert sm3_mod.sm3(message).hex() == digest
    assert sm3_mod.sm3_hex(message) == digest
    assert sm3_mod.new(message).hexdigest() == digest
    assert SM3Pure(message).hexdigest() == digest
    assert _hashlib_sm3(message) == digest


@pytest.mark.parametrize(("message", "digest"), VECTORS)
def test_incremental_updates_match(message: bytes, digest: str) -> None:
    rng = random.Random(len(message))
    for factory in (SM3Pure, sm3_mod.new):
        h = factory()
        pos = 0
        while pos < len(message):
            step = rng.randint(0, 70)
            h.update(message[pos : pos + step])
            pos += step
        assert h.hexdigest() == digest, factory


def test_copy_forks_the_state() -> None:
    for h in (SM3Pure(b"ab"), sm3_mod.new(b"ab")):
        fork = h.copy()
        fork.update(b"c")
        assert fork.hexdigest() == sm3_mod.sm3(b"abc").hex()
        assert h.hexdigest() == sm3_mod.sm3(b"ab").hex()  # original untouched
        assert h.digest() == h.digest()  # digest() does not consume the state


def test_interface() -> None:
    assert sm3_mod.DIGEST_SIZE == 32
    assert sm3_mod.new().digest_size == 32
    assert SM3Pure().digest_size == 32
    assert SM3Pure.block_size == 64
    assert len(sm3_mod.sm3(b"")) == 32
    # the empty message: both implementations, padding-only block
    assert SM3Pure(b"").hexdigest() == _hashlib_sm3(b"")


@pytest.mark.parametrize("length", [*range(0, 130), 183, 184, 191, 192, 1000, 4096 + 55])
def test_pure_matches_hashlib_at_padding_boundaries(length: int) -> None:
    # lengths around 55/56/64 bytes decide whether the length field spills into a new block
    data = bytes((i * 151 + length) & 0xFF for i in range(length))
    assert SM3Pure(data).hexdigest() == _hashlib_sm3(data)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=700))
def test_pure_matches_hashlib_on_random_input(data: bytes) -> None:
    assert SM3Pure(data).digest() == hashlib.new("sm3", data).digest()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=150), max_size=8))
def test_pure_streaming_matches_hashlib(chunks: list[bytes]) -> None:
    pure, native = SM3Pure(), hashlib.new("sm3")
    for c in chunks:
        pure.update(c)
        native.update(c)
    assert pure.digest() == native.digest()


def test_fallback_path_is_used_without_native(monkeypatch: pytest.MonkeyPatch) -> None:
    # what a platform without OpenSSL SM3 runs: sm3()/new() must route to SM3Pure
    monkeypatch.setattr(sm3_mod, "NATIVE", False)
    h = sm3_mod.new(b"a")
    assert isinstance(h, SM3Pure)
    h.update(b"bc")
    assert h.hexdigest() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    data = random.Random(7).randbytes(3000)
    assert sm3_mod.sm3(data) == hashlib.new("sm3", data).digest()


def test_one_megabyte() -> None:
    data = random.Random(1).randbytes(1 << 20)
    assert sm3_mod.sm3(data) == hashlib.new("sm3", data).digest()
