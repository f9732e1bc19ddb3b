"""``certledger issue``, ``verify`` and ``seal make``: licence files and their ledger binding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from nodes.cli._common import emit, handle_errors, json_option, read_passphrase
from signing.errors import CertLedgerError, InvalidInputError

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
home_option = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Node home directory (default: $CERTLEDGER_HOME or ./.certledger).",
)
passphrase_option = click.option(
    "--passphrase-file", type=_FILE, help="File holding the key passphrase (default: $CERTLEDGER_PASSPHRASE)."
)


# -- seals --------------------------------------------------------------------------------


@click.group()
def seal() -> None:
    """Electronic seals (GB/T 38540 SESeal) for agencies."""


@seal.command("make")
@click.option("--maker-key", type=_FILE, required=True, help="The seal maker's SM2 private key.")
@click.option("--maker-cert", type=_FILE, required=True, help="The seal maker's certificate.")
@click.option("--agency-cert", type=_FILE, required=True, help="The certificate the seal is made for.")
@click.option("--name", required=True, help="Seal name, e.g. 深圳市市场监督管理局证照专用章.")
@click.option("--caption", default="证照专用章", show_default=True, help="Text under the star.")
@click.option("--days", default=730, show_default=True, help="Validity in days from now.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Seal file (.esl).")
@passphrase_option
@json_option
@handle_errors
def seal_make(
    maker_key: Path,
    maker_cert: Path,
    agency_cert: Path,
    name: str,
    caption: str,
    days: int,
    out: Path,
    passphrase_file: Path | None,
    as_json: bool,
) -> None:
    """Make a seal for an agency certificate, signed by the seal maker."""
    from cert_formats.seal import make_seal, render_seal_picture
    from signing.sm2 import SM2PrivateKey
    from signing.x509 import load_certificate

    agency = load_certificate(agency_cert.read_bytes())
    now = datetime.now(UTC).replace(microsecond=0)
    made = make_seal(
        name=name, signers=[agency],
        maker_key=SM2PrivateKey.load(maker_key, read_passphrase(passphrase_file)),
        maker_cert=load_certificate(maker_cert.read_bytes()),
        valid_start=now - timedelta(minutes=5), valid_end=now + timedelta(days=days),
        picture=render_seal_picture(agency.subject.organization or name, caption=caption),
    )  # fmt: skip
    out.write_bytes(made.der)
    emit({"seal": str(out), "name": name, "valid_until": made.info.valid_end.isoformat()}, as_json)


# -- issue --------------------------------------------------------------------------------


@click.command()
@click.argument("licence_json", type=_FILE)
@click.option("--template", "template_key", help="Template key (default: by the licence's type code).")
@click.option("--agency-key", type=_FILE, required=True, help="The agency's SM2 private key.")
@click.option("--agency-cert", type=_FILE, required=True, help="The agency's certificate.")
@click.option("--seal", "seal_path", type=_FILE, required=True, help="The agency's seal (.esl).")
@click.option("--chain", type=_FILE, multiple=True, help="CA certificates to embed (root last).")
@click.option("--ecdsa-key", type=_FILE, help="Optional ECDSA P-256 key for readers without SM2.")
@click.option("--ecdsa-cert", type=_FILE, help="Its certificate chain (PEM).")
@click.option(
    "--verify-host",
    default="verify.certledger.example",
    show_default=True,
    help="Host of the verification page the QR code points to.",
)
@click.option("--amend", is_flag=True, help="Issue a new version of an existing licence (AMEND record).")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True)
@home_option
@passphrase_option
@json_option
@handle_errors
def issue(
    licence_json: Path,
    template_key: str | None,
    agency_key: Path,
    agency_cert: Path,
    seal_path: Path,
    chain: tuple[Path, ...],
    ecdsa_key: Path | None,
    ecdsa_cert: Path | None,
    verify_host: str,
    amend: bool,
    out_dir: Path,
    home: Path | None,
    passphrase_file: Path | None,
    as_json: bool,
) -> None:
    """Render a licence as PDF and OFD, sign and seal both, append its record, embed the proof.

    LICENCE_JSON holds the GB/T 36903 fields (see docs/formats.md). The ISSUE
    (or, with --amend, AMEND) record carries the SM3 digests of both files and
    is signed with the agency key; once it is final, each file gets the proof
    bundle (record, inclusion proof, checkpoint) for offline verification.
    """
    from cert_formats.issuance import AgencyCredentials, attach_bundles, issue_payload, render_and_sign
    from cert_formats.licence import Licence
    from cert_formats.seal import load_seal
    from cert_formats.template import get_template, template_for_type
    from ledger.records import Record, RecordType, new_nonce, now_utc, sign_record
    from nodes.config import load_config
    from nodes.local import open_node
    from signing.sm2 import SM2PrivateKey
    from signing.x509 import load_certificate, load_certificates

    passphrase = read_passphrase(passphrase_file)
    licence = Licence.from_json(licence_json.read_bytes())
    template = get_template(template_key) if template_key else template_for_type(licence.type_code)
    key = SM2PrivateKey.load(agency_key, passphrase)
    ecdsa = None
    if ecdsa_key is not None:
        from cert_formats.pdfsig import EcdsaSigningIdentity

        if ecdsa_cert is None:
            raise InvalidInputError("--ecdsa-key needs --ecdsa-cert", reason="issue.ecdsa")
        ecdsa = EcdsaSigningIdentity.from_pem(ecdsa_key.read_bytes(), ecdsa_cert.read_bytes(), passphrase=passphrase)
    creds = AgencyCredentials(
        key=key,
        certificate=load_certificate(agency_cert.read_bytes()),
        chain=tuple(c for p in chain for c in load_certificates(p.read_bytes())),
        seal=load_seal(seal_path.read_bytes()),
        ecdsa=ecdsa,
    )
    files = render_and_sign(licence, template, creds, verify_host=verify_host)
    payload = issue_payload(files)
    node = open_node(load_config(home), passphrase, write=True)
    try:
        current = node.ledger.licence(files.licence_id)
        if amend:
            if current is None:
                raise InvalidInputError(
                    f"licence {files.licence_id} is not on the ledger", reason="state.unknown_licence"
                )
            payload["reason_text"] = "换发新版本"
        rtype = RecordType.AMEND if amend else RecordType.ISSUE
        record = Record(rtype, node.origin, now_utc(), new_nonce(), licence.issuer_code, key.public_key.key_id, payload)
        result = node.ledger.submit([sign_record(record, [key])])
        result.raise_first()
        status = node.ledger.status_document(files.licence_id)
    finally:
        node.close()
    pdf, ofd = attach_bundles(files, status)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = licence.number or files.licence_id.rsplit(".", 1)[-1]
    pdf_path, ofd_path = out_dir / f"{stem}.pdf", out_dir / f"{stem}.ofd"
    pdf_path.write_bytes(pdf)
    ofd_path.write_bytes(ofd)
    emit(
        {
            "licence_id": files.licence_id,
            "identifier": licence.identifier,
            "record": str(rtype),
            "index": result.accepted[0].index,
            "pdf": str(pdf_path),
            "ofd": str(ofd_path),
            "digests": files.digests,
        },
        as_json,
        lambda d: (
            f"{d['record']} {d['identifier']}\n  entry {d['index']}; files {d['pdf']} and {d['ofd']} "
            "(signed, sealed, proof bundle embedded)"
        ),
    )


# -- verify -------------------------------------------------------------------------------


@click.command()
@click.argument("file", type=_FILE)
@click.option(
    "--roots",
    type=_FILE,
    multiple=True,
    help="Province root certificates the signers must chain to (default: <home>/trust/*.pem).",
)
@click.option("--remote", help="Ask this node (verifying its proofs) instead of the local ledger.")
@click.option("--genesis", type=_FILE, help="The remote ledger's GENESIS record (trust anchors).")
@click.option("--offline", is_flag=True, help="Use only the proof bundle embedded in the file.")
@home_option
@json_option
@handle_errors
def verify(
    file: Path,
    roots: tuple[Path, ...],
    remote: str | None,
    genesis: Path | None,
    offline: bool,
    home: Path | None,
    as_json: bool,
) -> None:
    """Verify a licence file (OFD or PDF): valid / suspended / revoked / superseded / unknown / forged.

    Exit status 0 only for "valid".
    """
    from cert_formats.verify_file import verify_licence_file
    from ledger.anchors import TrustAnchors
    from nodes.config import load_config, resolve_home
    from signing.x509 import load_certificates

    home_path = resolve_home(home)
    root_files = list(roots) or sorted((home_path / "trust").glob("*.pem"))
    if not root_files:
        raise InvalidInputError(
            "no trust roots: pass --roots or put the province roots in <home>/trust/", reason="verify.no_roots"
        )
    root_certs = [c for p in root_files for c in load_certificates(p.read_bytes())]
    anchors: list[TrustAnchors] = []
    live: Any = None
    if genesis is not None:
        anchors.append(TrustAnchors.from_genesis(genesis.read_bytes()))
    if remote and not offline:
        if not anchors:
            raise InvalidInputError(
                "--remote needs --genesis (the remote ledger's trust anchors)", reason="verify.no_anchors"
            )
        from verify_api.client import LedgerClient

        client = LedgerClient(remote, anchors[0])
        live = lambda licence_id: _remote_status(client, licence_id)  # noqa: E731
    elif (home_path / "certledger.toml").exists():
        from nodes.local import open_node

        node = open_node(load_config(home), None, write=False)
        with node.ledger.store.read() as conn:
            row = node.ledger.store.entry(conn, 0)
        if row is not None:
            anchors.append(TrustAnchors.from_genesis(row.data))
        if not offline:
            live = lambda licence_id: _local_status(node, licence_id)  # noqa: E731
    result = verify_licence_file(file.read_bytes(), roots=root_certs, anchors=anchors, live=live)
    data = result.to_json()

    def human(d: dict[str, Any]) -> str:
        lines = [f"{file.name}: {d['verdict'].upper()}  ({d['format']}, licence {d['licence_id'] or '?'})"]
        for c in d["checks"]:
            mark = "✓" if c["ok"] else "✗"
            lines.append(f"  {mark} {c['name']}: {c['detail']}" + (f" [{c['reason']}]" if c["reason"] else ""))
        return "\n".join(lines)

    emit(data, as_json, human)
    if result.verdict != "valid":
        raise SystemExit(1)


def _local_status(node: Any, licence_id: str) -> dict[str, Any] | None:
    try:
        status: dict[str, Any] = node.ledger.status_document(licence_id)
    except CertLedgerError as exc:
        if exc.reason == "state.unknown_licence":
            return None
        raise
    return status


def _remote_status(client: Any, licence_id: str) -> dict[str, Any] | None:
    try:
        verified = client.licence_status(licence_id)
    except CertLedgerError as exc:
        if exc.reason in ("state.unknown_licence", "remote.not_found"):
            return None
        raise
    data: dict[str, Any] = verified.to_json()
    return data
