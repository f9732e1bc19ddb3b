"""The one error root of certledger and its families.

Every package raises one of these; only the CLI maps them to exit codes and
one-line messages, and only ``verify_api`` maps them to HTTP status codes.
``signing`` is the lowest package, so the root lives here and the others
import it.

Each error carries a stable, machine-readable ``reason`` (lower-case, dotted,
documented in docs/reason-codes.md) next to the human message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class CertLedgerError(Exception):
    """Root of every error certledger raises on purpose."""

    #: default reason code of the family; instances may carry a narrower one
    reason: str = "error"
    #: process exit code the CLI uses for this family
    exit_code: int = 1

    def __init__(
        self, message: str, *, reason: str | None = None, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.details: dict[str, Any] = dict(details or {})

    def diagnostics(self) -> str:
        """A longer, multi-line explanation for logs and ``--verbose`` output."""
        lines = [f"{type(self).__name__} [{self.reason}]: {self.message}"]
        lines.extend(f"  {k}: {v}" for k, v in sorted(self.details.items()))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.message


class InvalidInputError(CertLedgerError):
    """Malformed, non-canonical, oversized or otherwise unusable input."""

    reason = "input.invalid"
    exit_code = 2


class VerificationError(CertLedgerError):
    """A signature, proof, digest or chain did not verify."""

    reason = "verify.failed"
    exit_code = 3


class AuthorizationError(CertLedgerError):
    """The signer is not allowed to do this (not admitted, wrong scope, revoked key)."""

    reason = "auth.denied"
    exit_code = 4


class ConflictError(CertLedgerError):
    """The request contradicts the current state (double issue, replayed nonce, fork)."""

    reason = "conflict"
    exit_code = 5


class StorageError(CertLedgerError):
    """The store failed or its content is inconsistent."""

    reason = "storage.failed"
    exit_code = 6


class TransportError(CertLedgerError):
    """A peer, a remote province or etcd could not be reached or answered badly."""

    reason = "transport.failed"
    exit_code = 7


class CryptoBackendError(CertLedgerError):
    """A crypto backend is missing, broken or failed its self-test."""

    reason = "crypto.backend"
    exit_code = 8
