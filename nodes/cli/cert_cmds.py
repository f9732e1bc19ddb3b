"""``cert issue``, ``cert verify`` and ``cert show``: SM2 X.509 certificates from the command line.

A thin shell over :mod:`signing.x509`: parse options, load files, call the
package, print. Passphrases come from files or the environment, never from
arguments (see ``read_passphrase``).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from nodes.cli._common import emit, handle_errors, json_option, read_passphrase
from signing.errors import InvalidInputError, VerificationError
from signing.sm2 import SM2PrivateKey, SM2PublicKey, load_public_key
from signing.x509 import (
    Certificate,
    ChainVerification,
    DistinguishedName,
    KeyUsage,
    Role,
    Validity,
    issue_certificate,
    load_certificate,
    load_certificates,
    resolve_extended_key_usage,
    verify_chain,
)
from signing.x509 import oids as x509_oids

_EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_TIME_HELP = "ISO 8601 time, e.g. 2030-01-01T08:00:00+08:00 (UTC when no offset is given)."


def _parse_time(value: str, option: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"{option}: {value!r} is not an ISO 8601 time") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _subject_public_key(path: Path, passphrase_file: Path | None) -> SM2PublicKey:
    data = path.read_bytes()
    if b"PRIVATE KEY-----" in data:
        return SM2PrivateKey.from_pem(data, read_passphrase(passphrase_file)).public_key
    return load_public_key(data)


def _write_out(out: str, data: bytes, force: bool) -> None:
    if out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    path = Path(out)
    if path.exists() and not force:
        raise InvalidInputError(f"{path} already exists (use --force to replace it)")
    path.write_bytes(data)


def _eku_label(oid: str) -> str:
    names = {v: k for k, v in x509_oids.EXTENDED_KEY_USAGES.items()}
    return f"{names[oid]} ({oid})" if oid in names else oid


def _describe(data: dict[str, Any]) -> str:
    subject = data["subject"]
    lines = [
        f"subject:            {data['subject_dn']}",
        f"issuer:             {data['issuer_dn']}",
        f"role:               {data['role'] or '(none: not a certledger profile certificate)'}",
    ]
    if "credit_code" in subject:
        lines.append(f"credit code:        {subject['credit_code']}")
    ca = "yes" if data["is_ca"] else "no"
    if data["is_ca"] and data["path_length"] is not None:
        ca += f" (path length {data['path_length']})"
    key_usage = data["key_usage"]
    lines += [
        f"serial:             {data['serial_number']}",
        f"not before:         {data['not_before']}",
        f"not after:          {data['not_after']}",
        f"CA:                 {ca}",
        f"key usage:          {', '.join(key_usage) if key_usage is not None else '(absent)'}",
    ]
    if data["extended_key_usage"]:
        ekus = ", ".join(_eku_label(o) for o in data["extended_key_usage"])
        lines.append(f"extended key usage: {ekus}")
    lines += [
        f"subject key id:     {data['subject_key_id'] or '(absent)'}",
        f"authority key id:   {data['authority_key_id'] or '(absent)'}",
        f"signature:          SM2-with-SM3 ({data['signature_algorithm']})",
        f"key id (SM3 SPKI):  {data['key_id']}",
        f"fingerprint (SM3):  {data['fingerprint_sm3']}",
    ]
    return "\n".join(lines)


@click.group("cert")
def cert_group() -> None:
    """X.509 v3 certificates with SM2 keys, signed SM2-with-SM3."""


@cert_group.command("issue")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    required=True,
    help="root: self-signed province CA; ca: subordinate CA; agency: issuing agency; node: department node.",
)
@click.option("--self-signed", is_flag=True, help="Make a self-signed root (implied by --role root).")
@click.option("--ca-cert", type=_EXISTING_FILE, help="Issuing CA certificate (PEM or DER).")
@click.option("--ca-key", type=_EXISTING_FILE, help="Issuing CA private key (PKCS#8 PEM).")
@click.option(
    "--passphrase-file",
    type=_EXISTING_FILE,
    help="Passphrase of the signing key: --ca-key, or --key for a root (default: $CERTLEDGER_PASSPHRASE).",
)
@click.option(
    "--key",
    "key_path",
    type=_EXISTING_FILE,
    required=True,
    help="The subject's key: public (SPKI PEM/DER) or private (PKCS#8 PEM); private for a root.",
)
@click.option(
    "--key-passphrase-file",
    type=_EXISTING_FILE,
    help="Passphrase of an encrypted private --key when it is not the signing key.",
)
@click.option("--org", required=True, help="Organization name (O), Chinese allowed.")
@click.option("--credit-code", help="统一社会信用代码 (18 characters, GB 32100); required for agency.")
@click.option("--cn", required=True, help="Common name (CN); for a node, the node's name.")
@click.option("--ou", help="Organizational unit (OU).")
@click.option("--country", default="CN", show_default=True, help="Country (C), ISO 3166 code.")
@click.option("--province", help="State or province (ST).")
@click.option("--locality", help="Locality (L).")
@click.option(
    "--days",
    type=click.IntRange(1, 36_500),
    default=365,
    show_default=True,
    help="Validity in days (at most 100 years).",
)
@click.option("--not-before", help=f"Start of validity (default: now - 5 min). {_TIME_HELP}")
@click.option(
    "--path-length",
    type=click.IntRange(min=0),
    help="pathLenConstraint of a root or CA certificate.",
)
@click.option(
    "--eku",
    "ekus",
    multiple=True,
    help="Extended key usage: OID or name (documentSigning, clientAuth, ...). Repeatable.",
)
@click.option("--out", required=True, help="Certificate file to write (PEM), - for stdout.")
@click.option("--der", "as_der", is_flag=True, help="Write DER instead of PEM.")
@click.option("--force", is_flag=True, help="Replace an existing --out file.")
@json_option
@handle_errors
def issue(
    *,
    role: str,
    self_signed: bool,
    ca_cert: Path | None,
    ca_key: Path | None,
    passphrase_file: Path | None,
    key_path: Path,
    key_passphrase_file: Path | None,
    org: str,
    credit_code: str | None,
    cn: str,
    ou: str | None,
    country: str,
    province: str | None,
    locality: str | None,
    days: int,
    not_before: str | None,
    path_length: int | None,
    ekus: tuple[str, ...],
    out: str,
    as_der: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Issue a certificate: a self-signed root, or one signed by --ca-cert/--ca-key."""
    the_role = Role(role)
    subject = DistinguishedName(
        common_name=cn,
        organization=org,
        organizational_unit=ou,
        credit_code=credit_code,
        locality=locality,
        state=province,
        country=country,
    )
    start = None if not_before is None else _parse_time(not_before, "--not-before")
    validity = Validity.for_days(days, start=start)
    if the_role is Role.ROOT or self_signed:
        if the_role is not Role.ROOT:
            raise InvalidInputError("--self-signed is only for --role root")
        if ca_cert or ca_key:
            raise InvalidInputError("a self-signed root takes no --ca-cert/--ca-key")
        signing_key = SM2PrivateKey.load(key_path, read_passphrase(passphrase_file))
        issuer = None
        public_key = signing_key.public_key
    else:
        if ca_cert is None or ca_key is None:
            raise InvalidInputError(f"a {role} certificate needs --ca-cert and --ca-key")
        issuer = load_certificate(ca_cert.read_bytes())
        signing_key = SM2PrivateKey.load(ca_key, read_passphrase(passphrase_file))
        public_key = _subject_public_key(key_path, key_passphrase_file)
    cert = issue_certificate(
        role=the_role,
        subject=subject,
        public_key=public_key,
        validity=validity,
        issuer=issuer,
        issuer_key=signing_key,
        extended_key_usage=ekus,
        path_length=path_length,
    )
    _write_out(out, cert.der if as_der else cert.to_pem(), force)
    if out != "-":
        emit(
            {
                "certificate": out,
                "role": the_role.value,
                "serial_number": f"{cert.serial_number:x}",
                "subject": cert.subject.rfc4514(),
                "not_after": cert.not_after.isoformat(),
                "fingerprint_sm3": cert.fingerprint,
            },
            as_json,
            lambda d: (
                f"wrote {d['role']} certificate {d['certificate']} "
                f"(serial {d['serial_number']}, valid until {d['not_after']})"
            ),
        )


def _load_bundle(paths: tuple[Path, ...]) -> list[Certificate]:
    certs: list[Certificate] = []
    for path in paths:
        certs.extend(load_certificates(path.read_bytes()))
    return certs


def _chain_summary(result: ChainVerification) -> dict[str, Any]:
    return {
        "valid": True,
        "at": result.at.isoformat(),
        "role": None if result.role is None else result.role.value,
        "subject": result.leaf.subject.rfc4514(),
        "chain": [c.subject.rfc4514() for c in result.path],
        "trust_anchor_fingerprint_sm3": result.trust_anchor.fingerprint,
        "checks": list(result.checks),
    }


@cert_group.command("verify")
@click.argument("cert", type=_EXISTING_FILE)
@click.option(
    "--ca",
    "cas",
    type=_EXISTING_FILE,
    multiple=True,
    required=True,
    help="Trusted root certificate(s) (PEM bundle or DER). Repeatable.",
)
@click.option(
    "--untrusted",
    type=_EXISTING_FILE,
    multiple=True,
    help="Intermediate certificate(s) to build the chain with. Repeatable.",
)
@click.option("--at", "at", help=f"Verify as of this time (default: now). {_TIME_HELP}")
@click.option(
    "--usage",
    "usages",
    multiple=True,
    help="Key usage the certificate must allow (digitalSignature, nonRepudiation, "
    "...). Repeatable; default: none required.",
)
@click.option("--role", type=click.Choice([r.value for r in Role]), help="Role the certificate must have.")
@click.option("--eku", help="Extended key usage the certificate must allow (OID or name).")
@json_option
@handle_errors
def verify(
    *,
    cert: Path,
    cas: tuple[Path, ...],
    untrusted: tuple[Path, ...],
    at: str | None,
    usages: tuple[str, ...],
    role: str | None,
    eku: str | None,
    as_json: bool,
) -> None:
    """Verify CERT's chain to a trusted root; exit 0 only if it is valid.

    Further certificates in CERT's file are used as intermediates.
    """
    certs = load_certificates(cert.read_bytes())
    anchors = _load_bundle(cas)
    intermediates = certs[1:] + _load_bundle(untrusted)
    try:
        result = verify_chain(
            certs[0],
            intermediates,
            anchors,
            at=None if at is None else _parse_time(at, "--at"),
            required_usage=KeyUsage.from_names(usages),
            required_role=None if role is None else Role(role),
            required_extended_usage=None if eku is None else resolve_extended_key_usage(eku),
        )
    except VerificationError as exc:
        if not as_json:
            raise
        click.echo(
            json.dumps(
                {"valid": False, "reason": exc.reason, "message": str(exc), **exc.details},
                ensure_ascii=False,
                indent=2,
                sort_keys=True,
            )
        )
        raise SystemExit(exc.exit_code) from None
    emit(
        _chain_summary(result),
        as_json,
        lambda d: f"OK: {d['subject']} ({d['role'] or 'no role'}) chains to {d['chain'][-1]}",
    )


@cert_group.command("show")
@click.argument("cert", type=_EXISTING_FILE)
@json_option
@handle_errors
def show(cert: Path, as_json: bool) -> None:
    """Show a certificate's subject, role, validity, key usage and identifiers."""
    emit(load_certificate(cert.read_bytes()).as_dict(), as_json, _describe)


def register(group: click.Group) -> None:
    group.add_command(cert_group)
