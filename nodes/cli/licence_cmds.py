"""``certledger issue``, ``verify`` and ``seal make``: licence files and their ledger binding."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from nodes.cli._common import emit, handle_errors, json_option, progress_bar, read_input, read_passphrase
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
@click.option(
    "--days", type=click.IntRange(1, 36_500), default=730, show_default=True, help="Validity in days from now."
)
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


def _file_stem(number: str, identifier: str) -> str:
    """The name of a licence's files: its number, with anything a path could read as structure replaced.

    The number is free text on the licence face (it may hold "/", "\\" or ".."): it names the
    files, it never chooses where they go.
    """
    stem = "".join(ch if ch.isalnum() or ch in "-_()（）" else "_" for ch in number)
    if stem:
        return stem
    from cert_formats.identifier import LicenceIdentifier

    return LicenceIdentifier.parse(identifier).lineage.rsplit(".", 1)[-1]  # its serial


@dataclass
class _Outputs:
    """Where an ``issue`` writes its files, reserved before anything is rendered or appended."""

    #: (PDF path, OFD path) per licence, in input order
    paths: list[tuple[Path, Path]] = field(default_factory=list)
    #: files and directories that did not exist before (removed again if the command fails)
    created: list[Path] = field(default_factory=list)

    def release(self) -> None:
        """Remove what was created for this command, if it is still empty (existing files stay as they were)."""
        for path in reversed(self.created):  # files before the directories they are in
            with contextlib.suppress(OSError):
                if path.is_dir():
                    path.rmdir()  # only if empty
                elif path.stat().st_size == 0:
                    path.unlink()


def _reserve_outputs(out_dir: Path, licences: list[Any]) -> _Outputs:
    """Create (or check writable) every output file now, so a path that cannot be written fails early."""
    out = _Outputs()
    out.created = [p for p in reversed([out_dir, *out_dir.parents]) if not p.exists()]
    seen: dict[str, str] = {}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for licence in licences:
            stem = _file_stem(licence.number, licence.identifier)
            if stem in seen:
                raise InvalidInputError(
                    f"licences {seen[stem]} and {licence.identifier} would both be written as {stem}.pdf/.ofd",
                    reason="issue.output_clash",
                )
            seen[stem] = licence.identifier
            pair = (out_dir / f"{stem}.pdf", out_dir / f"{stem}.ofd")
            out.paths.append(pair)
            for path in pair:
                if path.exists():
                    path.open("r+b").close()  # it can be written (it is replaced once the record is in)
                else:
                    path.open("xb").close()
                    out.created.append(path)
    except BaseException:
        out.release()
        raise
    return out


@click.command()
@click.argument("licence_json", type=_FILE, nargs=-1, required=True)
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
@click.option("--amend", is_flag=True, help="Issue new versions of existing licences (AMEND records).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Processes rendering the files (default: 1 for one licence, the CPU count for several).",
)
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True)
@home_option
@passphrase_option
@json_option
@handle_errors
def issue(
    licence_json: tuple[Path, ...],
    template_key: str | None,
    agency_key: Path,
    agency_cert: Path,
    seal_path: Path,
    chain: tuple[Path, ...],
    ecdsa_key: Path | None,
    ecdsa_cert: Path | None,
    verify_host: str,
    amend: bool,
    workers: int | None,
    out_dir: Path,
    home: Path | None,
    passphrase_file: Path | None,
    as_json: bool,
) -> None:
    """Render licences as PDF and OFD, sign and seal both, append their records, embed the proofs.

    Each LICENCE_JSON holds the GB/T 36903 fields of one licence (see docs/formats.md).
    Each ISSUE (or, with --amend, AMEND) record carries the SM3 digests of both files and
    is signed with the agency key; once it is final, each file gets the proof bundle
    (record, inclusion proof, checkpoint) for offline verification. Several licences are
    rendered in parallel (--workers) and appended as one batch; every input is read and
    checked before anything is rendered, and nothing is written unless every record is
    accepted.
    """
    from cert_formats.issuance import AgencyCredentials, attach_bundles, issue_payload
    from cert_formats.issuing_pool import IssuingPool
    from cert_formats.licence import Licence
    from cert_formats.seal import load_seal
    from cert_formats.template import get_template, template_for_type
    from ledger.records import Record, RecordType, new_nonce, now_utc, sign_record
    from nodes.config import load_config
    from nodes.local import open_node
    from signing.sm2 import SM2PrivateKey
    from signing.x509 import load_certificate, load_certificates

    passphrase = read_passphrase(passphrase_file)
    jobs = []
    for path in licence_json:
        try:
            licence = Licence.from_json(path.read_bytes())
        except CertLedgerError as exc:
            raise type(exc)(f"{path}: {exc.message}", reason=exc.reason) from None
        template = get_template(template_key) if template_key else template_for_type(licence.type_code)
        template.validate(licence)
        jobs.append((licence, template))
    # where the files go is known before anything is rendered or appended: a path that cannot be
    # written fails the command while the ledger is still unchanged
    outputs_at = _reserve_outputs(out_dir, [licence for licence, _ in jobs])
    try:
        key = SM2PrivateKey.load(agency_key, passphrase)
        ecdsa = None
        if ecdsa_key is not None:
            from cert_formats.pdfsig import EcdsaSigningIdentity

            if ecdsa_cert is None:
                raise InvalidInputError("--ecdsa-key needs --ecdsa-cert", reason="issue.ecdsa")
            ecdsa = EcdsaSigningIdentity.from_pem(
                ecdsa_key.read_bytes(), ecdsa_cert.read_bytes(), passphrase=passphrase
            )
        creds = AgencyCredentials(
            key=key,
            certificate=load_certificate(agency_cert.read_bytes()),
            chain=tuple(c for p in chain for c in load_certificates(p.read_bytes())),
            seal=load_seal(seal_path.read_bytes()),
            ecdsa=ecdsa,
        )
        workers = workers or (1 if len(jobs) == 1 else min(len(jobs), os.cpu_count() or 1))
        with IssuingPool(creds, verify_host=verify_host, workers=workers) as pool:
            if len(jobs) > 1 and not as_json:
                with progress_bar() as bar:
                    task = bar.add_task("rendering, signing, sealing", total=len(jobs))
                    issued = list(pool.render(jobs, progress=lambda n: bar.advance(task, n)))
            else:
                issued = list(pool.render(jobs))
        node = open_node(load_config(home), passphrase, write=True)
        try:
            rtype = RecordType.AMEND if amend else RecordType.ISSUE
            records = []
            for files in issued:
                payload = issue_payload(files)
                if amend:
                    if node.ledger.licence(files.licence_id) is None:
                        raise InvalidInputError(
                            f"licence {files.licence_id} is not on the ledger", reason="state.unknown_licence"
                        )
                    payload["reason_text"] = "换发新版本"
                licence = files.licence
                record = Record(rtype, node.origin, now_utc(), new_nonce(), licence.issuer_code, key.public_key.key_id,
                                payload)  # fmt: skip
                records.append(sign_record(record, [key]))
            # one submission: one block, and nothing is appended unless every record is valid
            result = node.ledger.submit(records, all_or_nothing=True)
            result.raise_first()
            statuses = [node.ledger.status_document(files.licence_id) for files in issued]
        finally:
            node.close()
    except BaseException:
        outputs_at.release()  # nothing was appended: what was reserved goes again
        raise
    outputs = []
    for files, status, accepted, (pdf_path, ofd_path) in zip(
        issued, statuses, result.accepted, outputs_at.paths, strict=True
    ):
        pdf, ofd = attach_bundles(files, status)
        pdf_path.write_bytes(pdf)
        ofd_path.write_bytes(ofd)
        outputs.append({
            "licence_id": files.licence_id,
            "identifier": files.licence.identifier,
            "record": str(rtype),
            "index": accepted.index,
            "pdf": str(pdf_path),
            "ofd": str(ofd_path),
            "digests": files.digests,
        })  # fmt: skip

    def human(d: Any) -> str:
        items = d if isinstance(d, list) else [d]
        return "\n".join(
            f"{x['record']} {x['identifier']}\n  entry {x['index']}; files {x['pdf']} and {x['ofd']} "
            "(signed, sealed, proof bundle embedded)"
            for x in items
        )

    emit(outputs[0] if len(outputs) == 1 else outputs, as_json, human)


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
    live_origin: str | None = None
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
        live_origin = anchors[0].origin
    elif (home_path / "certledger.toml").exists():
        from nodes.local import open_node

        node = open_node(load_config(home), None, write=False)
        with node.ledger.store.read() as conn:
            row = node.ledger.store.entry(conn, 0)
        if row is not None:
            anchors.append(TrustAnchors.from_genesis(row.data))
            live_origin = anchors[-1].origin
        if not offline:
            live = lambda licence_id: _local_status(node, licence_id)  # noqa: E731
    from cert_formats.verify_file import MAX_FILE_BYTES

    # at most one byte past the limit is read: /dev/zero or a huge file is refused, not loaded
    content = read_input(str(file), MAX_FILE_BYTES, too_large="file.too_large")
    result = verify_licence_file(content, roots=root_certs, anchors=anchors, live=live, live_origin=live_origin)
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
