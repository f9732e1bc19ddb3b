"""SM2 through the system OpenSSL libcrypto (>= 1.1.1; 3.x expected), via ctypes.

Why ctypes: no compiler at install time, and ``ctypes.CDLL`` releases the GIL
for the duration of every foreign call, so signing and verifying on several
threads uses several cores.

Each key is decoded once into an ``EVP_PKEY`` (read-only afterwards, so it is
shared between threads, as OpenSSL 3 allows); each thread keeps its own
``EVP_PKEY_CTX``. The GM/T 0009 identity enters through Z_A, computed here
from the explicit signer ID: OpenSSL's own ID handling is never relied upon,
because OpenSSL 3 silently uses an empty ID when none is set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any, Final

from signing.errors import CryptoBackendError
from signing.sm2 import signature
from signing.sm2.encoding import pkcs8_der, spki_der
from signing.sm2.za import z_a
from signing.sm3 import new as sm3_new

_c_void_p = ctypes.c_void_p
_c_char_p = ctypes.c_char_p
_c_size_t = ctypes.c_size_t
_c_int = ctypes.c_int

_LIB_NAMES: Final = ("libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.3.dylib", "libcrypto.so")


def _load_library() -> Any:
    names = list(_LIB_NAMES)
    found = ctypes.util.find_library("crypto")
    if found:
        names.append(found)
    last: OSError | None = None
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            last = exc
    raise CryptoBackendError(f"libcrypto not found ({last})")


def _bind(lib: Any) -> None:
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "EVP_PKEY_CTX_new": (_c_void_p, [_c_void_p, _c_void_p]),
        "EVP_PKEY_CTX_free": (None, [_c_void_p]),
        "EVP_PKEY_sign_init": (_c_int, [_c_void_p]),
        "EVP_PKEY_verify_init": (_c_int, [_c_void_p]),
        "EVP_PKEY_sign": (
            _c_int,
            [_c_void_p, _c_char_p, ctypes.POINTER(_c_size_t), _c_char_p, _c_size_t],
        ),
        "EVP_PKEY_verify": (_c_int, [_c_void_p, _c_char_p, _c_size_t, _c_char_p, _c_size_t]),
        "EVP_PKEY_free": (None, [_c_void_p]),
        "d2i_AutoPrivateKey": (_c_void_p, [_c_void_p, ctypes.POINTER(_c_char_p), ctypes.c_long]),
        "d2i_PUBKEY": (_c_void_p, [_c_void_p, ctypes.POINTER(_c_char_p), ctypes.c_long]),
        "ERR_clear_error": (None, []),
        "ERR_get_error": (ctypes.c_ulong, []),
        "ERR_error_string_n": (None, [ctypes.c_ulong, _c_char_p, _c_size_t]),
        "OpenSSL_version": (_c_char_p, [_c_int]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name, None)
        if fn is None:
            raise CryptoBackendError(f"libcrypto lacks {name}; SM2 needs OpenSSL >= 1.1.1 (3.x)")
        fn.restype = restype
        fn.argtypes = argtypes


class _Lib:
    """The loaded library, bound once per process."""

    _instance: _Lib | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.lib = _load_library()
        _bind(self.lib)
        self.version = self.lib.OpenSSL_version(0).decode()

    @classmethod
    def get(cls) -> _Lib:
        with cls._lock:
            if cls._instance is None:
                cls._instance = _Lib()
            return cls._instance

    def error(self, what: str) -> CryptoBackendError:
        code = self.lib.ERR_get_error()
        buf = ctypes.create_string_buffer(256)
        if code:
            self.lib.ERR_error_string_n(code, buf, 256)
        self.lib.ERR_clear_error()
        return CryptoBackendError(f"libcrypto: {what}: {buf.value.decode(errors='replace')}")


class _EvpKey:
    """Owns one EVP_PKEY and frees it when collected."""

    def __init__(self, lib: _Lib, ptr: int) -> None:
        self._lib = lib
        self.ptr = ptr

    def __del__(self) -> None:
        ptr, self.ptr = self.ptr, 0
        if ptr:
            self._lib.lib.EVP_PKEY_free(ptr)


def _decode(lib: _Lib, fn: Any, der_bytes: bytes, what: str) -> _EvpKey:
    buf = ctypes.c_char_p(der_bytes)
    ptr = fn(None, ctypes.byref(buf), len(der_bytes))
    if not ptr:
        raise lib.error(f"cannot load {what}")
    return _EvpKey(lib, ptr)


class _ThreadCtx:
    """One EVP_PKEY_CTX initialised for sign or verify, owned by one thread."""

    def __init__(self, lib: _Lib, key: _EvpKey, *, sign: bool) -> None:
        self._lib = lib
        self._key = key  # keeps the EVP_PKEY alive as long as the context
        c = lib.lib
        self.ptr = c.EVP_PKEY_CTX_new(key.ptr, None)
        if not self.ptr:
            raise lib.error("out of memory")
        init = c.EVP_PKEY_sign_init if sign else c.EVP_PKEY_verify_init
        if init(self.ptr) <= 0:
            c.EVP_PKEY_CTX_free(self.ptr)
            self.ptr = 0
            raise lib.error("SM2 sign/verify init failed")

    def __del__(self) -> None:
        ptr, self.ptr = self.ptr, 0
        if ptr:
            self._lib.lib.EVP_PKEY_CTX_free(ptr)


class _KeyBase:
    """Shared by both handles: the EVP_PKEY, per-thread contexts and the Z_A cache.

    The digest e = SM3(Z_A || M) is computed here with hashlib (OpenSSL's SM3)
    and handed to ``EVP_PKEY_sign`` / ``EVP_PKEY_verify``, which for SM2 keys
    operate on that digest. Z_A depends only on the signer ID and the public
    key, so it is cached: one SM3 over the message per operation, one foreign
    call per operation, and a context reused by each thread.
    """

    _MAX_IDS = 64

    def __init__(self, lib: _Lib, key: _EvpKey, public_point: tuple[int, int], *, sign: bool) -> None:
        self._lib = lib
        self._key = key
        self._point = public_point
        self._sign = sign
        self._local = threading.local()
        self._z: dict[bytes, bytes] = {}

    def _ctx(self) -> int:
        ctx: _ThreadCtx | None = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = _ThreadCtx(self._lib, self._key, sign=self._sign)
            self._local.ctx = ctx
        return int(ctx.ptr)

    def _digest(self, message: bytes, signer_id: bytes) -> bytes:
        z = self._z.get(signer_id)
        if z is None:
            z = z_a(signer_id, self._point)
            if len(self._z) < self._MAX_IDS:
                self._z[signer_id] = z
        h = sm3_new(z)
        h.update(message)
        return h.digest()


class _LibcryptoPrivate(_KeyBase):
    def __init__(self, lib: _Lib, d: int, public_point: tuple[int, int]) -> None:
        key = _decode(lib, lib.lib.d2i_AutoPrivateKey, pkcs8_der(d, public_point), "SM2 private key")
        super().__init__(lib, key, public_point, sign=True)

    def sign(self, message: bytes, signer_id: bytes) -> tuple[int, int]:
        e = self._digest(message, signer_id)
        out = ctypes.create_string_buffer(80)
        outlen = _c_size_t(80)
        if self._lib.lib.EVP_PKEY_sign(self._ctx(), out, ctypes.byref(outlen), e, 32) <= 0:
            raise self._lib.error("SM2 sign failed")
        return signature.decode_der(out.raw[: outlen.value])


class _LibcryptoPublic(_KeyBase):
    def __init__(self, lib: _Lib, public_point: tuple[int, int]) -> None:
        key = _decode(lib, lib.lib.d2i_PUBKEY, spki_der(public_point), "SM2 public key")
        super().__init__(lib, key, public_point, sign=False)

    def verify(self, message: bytes, signer_id: bytes, r: int, s: int) -> bool:
        sig = signature.encode_der(r, s)
        e = self._digest(message, signer_id)
        rc = self._lib.lib.EVP_PKEY_verify(self._ctx(), sig, len(sig), e, 32)
        if rc != 1:
            # 0 = bad signature, < 0 = error: both mean "not valid"; clear the error queue
            self._lib.lib.ERR_clear_error()
        return bool(rc == 1)


class LibcryptoBackend:
    name = "libcrypto"

    def __init__(self) -> None:
        self._lib = _Lib.get()

    @property
    def version(self) -> str:
        return str(self._lib.version)

    def load_private(self, d: int, public_point: tuple[int, int]) -> _LibcryptoPrivate:
        return _LibcryptoPrivate(self._lib, d, public_point)

    def load_public(self, public_point: tuple[int, int]) -> _LibcryptoPublic:
        return _LibcryptoPublic(self._lib, public_point)
