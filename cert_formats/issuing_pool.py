"""Issuing many licences at once: render, sign and seal them in worker processes.

Rendering a licence (reportlab, the OFD writer, the seal) is Python-bound, so threads would
queue on the GIL; worker processes use every core. Only the pure part runs in the workers —
layout, both files, their signature and seal, their digests (``render_and_sign``); the
records are built, signed and appended by the caller, in one submission, so the ledger sees
one ordered batch exactly as it would from a single process.

The workers receive the agency's credentials once, at start, as DER over their own pipe
(the key never touches disk); a pool with ``workers=1`` renders in the calling process.
Results come back in input order.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # imported lazily at run time: a spawned worker imports this module first, and pyHanko
    # (behind cert_formats.issuance) must not load before _start has set the warning filter
    from cert_formats.issuance import AgencyCredentials, IssuedFiles
    from cert_formats.licence import Licence
    from cert_formats.template import LicenceTemplate


@dataclass(frozen=True)
class _PortableCredentials:
    """AgencyCredentials as bytes, for another process."""

    key_der: bytes
    certificate_der: bytes
    chain_der: tuple[bytes, ...]
    seal_der: bytes
    ecdsa: tuple[bytes, bytes, tuple[bytes, ...]] | None  # key PKCS#8 DER, cert DER, chain DER

    @classmethod
    def of(cls, creds: AgencyCredentials) -> _PortableCredentials:
        ecdsa = None
        if creds.ecdsa is not None:
            from cryptography.hazmat.primitives import serialization

            e = creds.ecdsa
            ecdsa = (
                e.key.private_bytes(
                    serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                ),
                e.certificate.public_bytes(serialization.Encoding.DER),
                tuple(c.public_bytes(serialization.Encoding.DER) for c in e.chain),
            )
        return cls(
            creds.key.to_der(),
            creds.certificate.der,
            tuple(c.der for c in creds.chain),
            creds.seal.der,
            ecdsa,
        )

    def load(self) -> AgencyCredentials:
        from cert_formats.issuance import AgencyCredentials
        from cert_formats.seal import load_seal
        from signing.sm2 import SM2PrivateKey
        from signing.x509 import load_certificate

        ecdsa = None
        if self.ecdsa is not None:
            from cryptography import x509
            from cryptography.hazmat.primitives import serialization

            from cert_formats.pdfsig import EcdsaSigningIdentity

            key = serialization.load_der_private_key(self.ecdsa[0], password=None)
            ecdsa = EcdsaSigningIdentity(
                key,  # type: ignore[arg-type]
                x509.load_der_x509_certificate(self.ecdsa[1]),
                tuple(x509.load_der_x509_certificate(c) for c in self.ecdsa[2]),
            )
        return AgencyCredentials(
            key=SM2PrivateKey.from_der(self.key_der),
            certificate=load_certificate(self.certificate_der),
            chain=tuple(load_certificate(c) for c in self.chain_der),
            seal=load_seal(self.seal_der),
            ecdsa=ecdsa,
        )


# the worker's state, set once by _start
_WORKER: dict[str, Any] = {}


def _start(portable: _PortableCredentials, verify_host: str) -> None:
    # the same filter as the CLI's: a worker's stderr is the CLI's stderr, and the error
    # contract is one line
    warnings.filterwarnings("ignore", message="DSA is deprecated")
    _WORKER["creds"], _WORKER["host"] = portable.load(), verify_host


def _render(job: tuple[Licence, LicenceTemplate]) -> IssuedFiles:
    from cert_formats.issuance import render_and_sign

    return render_and_sign(job[0], job[1], _WORKER["creds"], verify_host=_WORKER["host"])


def _warm(_: int) -> int:
    # imports and font loading happen here, once per worker, not inside the first licence
    return os.getpid()


@contextlib.contextmanager
def _workers_ignore_sigint() -> Iterator[None]:
    """Processes started inside inherit SIGINT ignored (kept across exec; see IssuingPool.warm_up)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal dispositions belong to the main thread: left as they are
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class IssuingPool:
    """``render(jobs)``: :func:`render_and_sign` for each (licence, template), in order."""

    def __init__(self, creds: AgencyCredentials, *, verify_host: str, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("an issuing pool needs at least one worker")
        self.creds = creds
        self.verify_host = verify_host
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        if workers > 1:
            # spawn: a clean interpreter, never a fork of a process holding ledger connections
            # and threads
            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start,
                initargs=(_PortableCredentials.of(creds), verify_host),
            )

    def warm_up(self) -> None:
        """Start every worker now (otherwise the first licences pay for it).

        The workers are started with SIGINT ignored, which they keep across exec: a Ctrl-C at
        the terminal reaches the whole process group, and a worker still importing would die
        with a traceback of its own. The parent alone handles it, and stops the pool.
        """
        if self._pool is None:
            return
        with _workers_ignore_sigint():
            started = self._pool.map(_warm, range(self.workers))
        list(started)

    def render(
        self, jobs: Iterable[tuple[Licence, LicenceTemplate]], *, progress: Callable[[int], None] | None = None
    ) -> Iterator[IssuedFiles]:
        if self._pool is None:
            from cert_formats.issuance import render_and_sign

            for licence, template in jobs:
                files = render_and_sign(licence, template, self.creds, verify_host=self.verify_host)
                if progress is not None:
                    progress(1)
                yield files
            return
        with _workers_ignore_sigint():  # map submits every job now: the workers are started here
            results = self._pool.map(_render, jobs, chunksize=1)
        for files in results:
            if progress is not None:
                progress(1)
            yield files

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> IssuingPool:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
