"""Ledger commands: init, agency, record new, submit, status, history, checkpoint, proof, audit, rebuild."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ledger import reasons
from ledger.audit import audit as run_audit
from ledger.merkle.verify import verify_consistency, verify_inclusion
from ledger.records import MAX_ENTRY_BYTES, Record, RecordType, SignedRecord, new_nonce, now_utc, sign_record
from nodes.cli._common import emit, handle_errors, json_option, progress_bar, read_input, read_passphrase, verifying_key
from nodes.config import NodeConfig, load_config, resolve_database, resolve_home
from nodes.local import LocalNode, agency_key_json, init_node, open_node
from signing.errors import InvalidInputError
from signing.sm2 import SM2PrivateKey

home_option = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Node home directory (default: $CERTLEDGER_HOME or ./.certledger).",
)
passphrase_option = click.option(
    "--passphrase-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File holding the key passphrase (default: $CERTLEDGER_PASSPHRASE).",
)


@contextmanager
def _node(home: Path | None, passphrase_file: Path | None = None, *, write: bool) -> Iterator[LocalNode]:
    cfg = load_config(home)
    node = open_node(cfg, read_passphrase(passphrase_file) if write else None, write=write)
    try:
        yield node
    finally:
        node.close()


#: indices and tree sizes as the API bounds them (a database integer is 64-bit signed)
_INDEX = click.IntRange(0, 2**63 - 2)
_TREE_SIZE = click.IntRange(1, 2**63 - 1)


def _no_duplicate_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object hook: a payload naming a field twice is refused (which one was meant?)."""
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise InvalidInputError(f"payload names {name!r} twice", reason="record.malformed")
        seen.add(name)
    return dict(pairs)




# -- init ---------------------------------------------------------------------------------


@click.command()
@home_option
@passphrase_option
@click.option("--origin", required=True, help="Log origin, e.g. gd.certledger.example/licences.")
@click.option("--node-id", default="node-1", show_default=True)
@click.option("--node-name", default="department node", show_default=True)
@click.option("--authority-id", default="governance", show_default=True, help="Governance authority ID.")
@click.option("--authority-name", default="Provincial data authority", show_default=True)
@click.option(
    "--database",
    help="SQLAlchemy URL or SQLite file path, relative to the home (default: $CERTLEDGER_DATABASE, "
    "else ledger.db in the home directory).",
)
@click.option("--time-window", default=300, show_default=True, help="Accepted record clock skew, seconds.")
@click.option(
    "--public-url",
    default="",
    envvar="CERTLEDGER_PUBLIC_URL",
    help="Where this node's API will be reachable, as recorded in the GENESIS (default: $CERTLEDGER_PUBLIC_URL).",
)
@json_option
@handle_errors
def init(
    home: Path | None,
    passphrase_file: Path | None,
    origin: str,
    node_id: str,
    node_name: str,
    authority_id: str,
    authority_name: str,
    database: str | None,
    time_window: int,
    public_url: str,
    as_json: bool,
) -> None:
    """Create a new single-node ledger: keys, config, GENESIS record and block 0."""
    passphrase = read_passphrase(passphrase_file)
    if passphrase is None:
        raise InvalidInputError(
            "a passphrase is required to encrypt the node keys (--passphrase-file or CERTLEDGER_PASSPHRASE)",
            reason="key.passphrase",
        )
    cfg = NodeConfig(home=resolve_home(home), node_id=node_id, public_url=public_url)
    # the same sources and rules as every later command (nodes/config.py load_config): the option,
    # else CERTLEDGER_DATABASE; a bare path is the home's, wherever init runs from
    database = database or os.environ.get("CERTLEDGER_DATABASE") or ""
    cfg.database = resolve_database(database, cfg.home.resolve()) or cfg.default_database()
    node = init_node(
        cfg,
        passphrase,
        origin=origin,
        node_name=node_name,
        authority_id=authority_id,
        authority_name=authority_name,
        time_window=time_window,
    )
    try:
        size, note = node.ledger.latest_checkpoint()
        emit(
            {
                "home": str(cfg.home),
                "origin": origin,
                "database": cfg.database,
                "node_id": node_id,
                "tree_size": size,
                "checkpoint": note,
            },
            as_json,
            lambda d: f"initialised ledger {d['origin']} in {d['home']}\n\n{d['checkpoint']}",
        )
    finally:
        node.close()


# -- agencies -----------------------------------------------------------------------------


@click.group()
def agency() -> None:
    """Admit, rotate keys of, remove and list issuing agencies (governance records)."""


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@agency.command("add")
@home_option
@passphrase_option
@click.option("--id", "agency_id", required=True, help="Agency ID (统一社会信用代码).")
@click.option("--name", required=True, help="Agency name.")
@click.option("--regions", required=True, help="GB/T 2260 region code prefixes, comma-separated (or *).")
@click.option("--types", "types_", required=True, help="Licence type codes it may issue, comma-separated (or *).")
@click.option("--authority", is_flag=True, help="May also amend/suspend/revoke others' licences in its regions.")
@click.option(
    "--key",
    "key_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The agency's SM2 public key (PEM) or certificate.",
)
@json_option
@handle_errors
def agency_add(
    home: Path | None,
    passphrase_file: Path | None,
    agency_id: str,
    name: str,
    regions: str,
    types_: str,
    authority: bool,
    key_path: Path,
    as_json: bool,
) -> None:
    """Admit an agency (AGENCY_ADMIT, signed by the governance authority)."""
    pub = verifying_key(key_path.read_bytes())
    payload = {
        "agency": {
            "id": agency_id,
            "name": name,
            "regions": _csv(regions),
            "types": _csv(types_),
            "authority": authority,
            "keys": [agency_key_json(pub)],
        }
    }
    with _node(home, passphrase_file, write=True) as node:
        result = node.governance(RecordType.AGENCY_ADMIT, payload)
        emit({"agency": agency_id, "key_id": pub.key_id, "index": result.accepted[0].index}, as_json)


@agency.command("rotate")
@home_option
@passphrase_option
@click.option("--id", "agency_id", required=True)
@click.option(
    "--key",
    "key_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The new SM2 public key (PEM) or certificate.",
)
@click.option("--retire", "retire_key_id", default="", help="Key ID to retire from now on.")
@json_option
@handle_errors
def agency_rotate(
    home: Path | None, passphrase_file: Path | None, agency_id: str, key_path: Path, retire_key_id: str, as_json: bool
) -> None:
    """Add a new key to an agency, optionally retiring an old one (AGENCY_ROTATE_KEY)."""
    pub = verifying_key(key_path.read_bytes())
    payload: dict[str, Any] = {"agency_id": agency_id, "new_key": agency_key_json(pub)}
    if retire_key_id:
        payload["retire_key_id"] = retire_key_id
    with _node(home, passphrase_file, write=True) as node:
        result = node.governance(RecordType.AGENCY_ROTATE_KEY, payload)
        emit({"agency": agency_id, "new_key_id": pub.key_id, "index": result.accepted[0].index}, as_json)


@agency.command("remove")
@home_option
@passphrase_option
@click.option("--id", "agency_id", required=True)
@click.option("--reason", default="", help="Why the agency is removed.")
@json_option
@handle_errors
def agency_remove(home: Path | None, passphrase_file: Path | None, agency_id: str, reason: str, as_json: bool) -> None:
    """Remove an agency: its later records are refused (AGENCY_REMOVE)."""
    payload: dict[str, Any] = {"agency_id": agency_id}
    if reason:
        payload["reason_text"] = reason
    with _node(home, passphrase_file, write=True) as node:
        result = node.governance(RecordType.AGENCY_REMOVE, payload)
        emit({"agency": agency_id, "removed": True, "index": result.accepted[0].index}, as_json)


@agency.command("list")
@home_option
@json_option
@handle_errors
def agency_list(home: Path | None, as_json: bool) -> None:
    """List the agency registry as derived from the ledger."""
    with _node(home, write=False) as node, node.ledger.store.read() as conn:
        agencies = node.ledger.store.all_agencies(conn)

    def human(items: list[dict[str, Any]]) -> str:
        lines = []
        for a in items:
            state = "removed" if a.get("removed_at") else "active"
            lines.append(
                f"{a['id']}  {a['name']}  regions={','.join(a['regions'])} "
                f"types={','.join(a['types'])} keys={len(a['keys'])} {state}"
                f"{' authority' if a['authority'] else ''}"
            )
        return "\n".join(lines) or "(no agencies)"

    emit([a.to_json() for a in agencies], as_json, human)


# -- records ------------------------------------------------------------------------------


@click.group()
def record() -> None:
    """Build and sign records."""


@record.command("new")
@click.option(
    "--type", "rtype", type=click.Choice([t.value for t in RecordType if t is not RecordType.GENESIS]), required=True
)
@click.option("--origin", help="Ledger origin (default: the local node's).")
@click.option("--agency", "agency_id", default="", help="Signing agency ID (licence records).")
@click.option(
    "--key",
    "key_paths",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    required=True,
    help="SM2 private key(s) to sign with (one agency key, or authority keys).",
)
@passphrase_option
@click.option("--payload", "payload_path", required=True, help="JSON file with the type-specific payload (- = stdin).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Output file (default: stdout).")
@home_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON: the record's type, hash and signer, --out, and (without --out) the signed record itself.",
)
@handle_errors
def record_new(
    rtype: str,
    origin: str | None,
    agency_id: str,
    key_paths: tuple[Path, ...],
    passphrase_file: Path | None,
    payload_path: str,
    out: Path | None,
    home: Path | None,
    as_json: bool,
) -> None:
    """Build a record from a JSON payload and sign it; prints the signed record (canonical JSON) or writes --out."""
    try:
        payload = json.loads(read_input(payload_path, MAX_ENTRY_BYTES), object_pairs_hook=_no_duplicate_names)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        if isinstance(exc, RecursionError):
            raise InvalidInputError("payload nests too deeply", reason="record.malformed") from None
        raise InvalidInputError(f"payload is not valid JSON: {exc}", reason="record.malformed") from None
    if not isinstance(payload, dict):
        raise InvalidInputError(
            f"payload must be a JSON object, not {type(payload).__name__}", reason="record.malformed"
        )
    if not origin:
        origin = load_config(home).origin
    passphrase = read_passphrase(passphrase_file)
    keys = [SM2PrivateKey.load(p, passphrase) for p in key_paths]
    kind = RecordType(rtype)
    governance = kind not in (
        RecordType.ISSUE,
        RecordType.AMEND,
        RecordType.SUSPEND,
        RecordType.RESUME,
        RecordType.REVOKE,
    )
    key_id = "" if governance else keys[0].public_key.key_id
    rec = Record(kind, origin, now_utc(), new_nonce(), "" if governance else agency_id, key_id, payload)
    signed = sign_record(rec, keys)
    data = signed.entry_bytes()
    who = "the governance authority" if governance else agency_id
    if out is not None:
        out.write_bytes(data + b"\n")
    if as_json:
        summary: dict[str, Any] = {
            "type": kind.value,
            "record_hash": signed.record.record_hash(),
            "signed_by": "governance" if governance else agency_id,
            "key_ids": [k.public_key.key_id for k in keys],
            "out": None if out is None else str(out),
        }
        if out is None:
            summary["record"] = json.loads(data)
        emit(summary, True)
    elif out is None:
        click.echo(data.decode("utf-8"))
    else:
        click.echo(f"wrote {out}: {kind} record signed by {who} (submit it with `certledger submit {out}`)", err=True)


@click.command()
@home_option
@passphrase_option
@click.argument("files", nargs=-1, required=True)
@json_option
@handle_errors
def submit(home: Path | None, passphrase_file: Path | None, files: tuple[str, ...], as_json: bool) -> None:
    """Append signed record FILES as one block; prints their indices and the new checkpoint.

    All-or-nothing per record: a rejected record changes nothing and is reported
    with its reason code; the command then exits non-zero.
    """
    # a record file is one canonical envelope and a final newline at most
    records = [
        SignedRecord.from_bytes(read_input(f, MAX_ENTRY_BYTES + 1, too_large=reasons.RECORD_TOO_LARGE).rstrip(b"\n"))
        for f in files
    ]
    with _node(home, passphrase_file, write=True) as node:
        result = node.ledger.submit(records)
    out = {
        "accepted": [
            {"file": files[a.position], "index": a.index, "record_hash": a.record_hash} for a in result.accepted
        ],
        "rejected": [{"file": files[r.position], "reason": r.reason, "message": r.message} for r in result.rejected],
        "block": result.block.height if result.block else None,
        "checkpoint": result.checkpoint,
    }

    def human(d: dict[str, Any]) -> str:
        lines = [f"accepted {a['file']}: entry {a['index']} ({a['record_hash'][:16]}…)" for a in d["accepted"]]
        if d["checkpoint"]:
            lines.append(f"block {d['block']}, checkpoint:\n{d['checkpoint']}")
        return "\n".join(lines)

    if result.rejected and not as_json:
        if result.accepted:
            click.echo(human(out))
        result.raise_first()
    emit(out, as_json, human)
    if result.rejected:
        raise SystemExit(result.rejected[0].error.exit_code)


# -- queries ------------------------------------------------------------------------------


@click.command()
@home_option
@click.argument("licence_id")
@json_option
@handle_errors
def status(home: Path | None, licence_id: str, as_json: bool) -> None:
    """Current status of a licence, with an inclusion proof of its latest record."""
    with _node(home, write=False) as node:
        lic = node.ledger.licence(licence_id)
        if lic is None:
            raise InvalidInputError(f"licence {licence_id} is not on this ledger", reason="state.unknown_licence")
        size, note = node.ledger.latest_checkpoint()
        proof = node.ledger.inclusion_proof(lic.latest_index, size)
        verify_inclusion(
            node.ledger.hasher, proof.index, size, proof.leaf_hash, list(proof.path), node.ledger.root(size)
        )
    data = {"licence": lic.to_json(), "inclusion_proof": proof.to_json(), "checkpoint": note}
    emit(
        data,
        as_json,
        lambda d: (
            f"{licence_id}: {d['licence']['status']} (version {d['licence']['version']}, issuer "
            f"{d['licence']['issuer']})\nlatest record: entry {proof.index}, included in tree of size {size} (verified)"
        ),
    )


@click.command()
@home_option
@click.argument("licence_id")
@json_option
@handle_errors
def history(home: Path | None, licence_id: str, as_json: bool) -> None:
    """Every record of a licence, each with an inclusion proof checked against the checkpoint root."""
    with _node(home, write=False) as node:
        size, note = node.ledger.latest_checkpoint()
        items = node.ledger.history(licence_id, size)
        if not items:
            raise InvalidInputError(f"licence {licence_id} is not on this ledger", reason="state.unknown_licence")
        root = node.ledger.root(size)
        for it in items:
            verify_inclusion(node.ledger.hasher, it.index, size, it.proof.leaf_hash, list(it.proof.path), root)
    data = {
        "licence_id": licence_id,
        "tree_size": size,
        "root": root.hex(),
        "checkpoint": note,
        "records": [
            {
                "index": it.index,
                "block": it.block_height,
                "record": it.record.to_json(),
                "inclusion_proof": it.proof.to_json(),
            }
            for it in items
        ],
    }

    def human(d: dict[str, Any]) -> str:
        lines = [f"history of {licence_id} (tree size {size}, every proof verified):"]
        for r in d["records"]:
            rec = r["record"]["record"]
            extra = rec["payload"].get("reason_text") or rec["payload"].get("reason_code") or ""
            lines.append(f"  entry {r['index']:>8}  {rec['time']}  {rec['type']:<8} by {rec['agency']}  {extra}")
        return "\n".join(lines)

    emit(data, as_json, human)


@click.command()
@home_option
@click.option("--size", type=_TREE_SIZE, help="Checkpoint at this tree size (default: latest).")
@json_option
@handle_errors
def checkpoint(home: Path | None, size: int | None, as_json: bool) -> None:
    """Print a signed checkpoint (C2SP signed note)."""
    with _node(home, write=False) as node:
        if size is None:
            _, note = node.ledger.latest_checkpoint()
        else:
            found = node.ledger.checkpoint_at(size)
            if found is None:
                raise InvalidInputError(f"no checkpoint at tree size {size}", reason="checkpoint.unknown")
            note = found
    if as_json:
        origin, tree_size, root_b64 = note.split("\n", 3)[:3]
        emit(
            {
                "origin": origin,
                "tree_size": int(tree_size),
                "root": base64.b64decode(root_b64).hex(),
                "note": note,
            },
            True,
        )
        return
    click.echo(note, nl=False)


@click.group()
def proof() -> None:
    """Inclusion and consistency proofs (RFC 9162, SM3)."""


@proof.command("inclusion")
@home_option
@click.argument("index", type=_INDEX)
@click.option("--size", type=_TREE_SIZE, help="Tree size (default: latest).")
@json_option
@handle_errors
def proof_inclusion(home: Path | None, index: int, size: int | None, as_json: bool) -> None:
    """Inclusion proof of entry INDEX."""
    with _node(home, write=False) as node:
        p = node.ledger.inclusion_proof(index, size)
        root = node.ledger.root(p.tree_size)
        verify_inclusion(node.ledger.hasher, p.index, p.tree_size, p.leaf_hash, list(p.path), root)
    data = {**p.to_json(), "root": root.hex()}
    emit(
        data,
        as_json,
        lambda d: "\n".join(
            [
                f"entry {d['index']} in tree of size {d['tree_size']}, root {d['root']} (verified)",
                *[f"  {h}" for h in d["path"]],
            ]
        ),
    )


@proof.command("consistency")
@home_option
@click.argument("old_size", type=_TREE_SIZE)
@click.argument("new_size", type=_TREE_SIZE, required=False)
@json_option
@handle_errors
def proof_consistency(home: Path | None, old_size: int, new_size: int | None, as_json: bool) -> None:
    """Consistency proof from tree OLD_SIZE to NEW_SIZE (default: latest)."""
    with _node(home, write=False) as node:
        new = node.ledger.tree_size() if new_size is None else new_size
        path = node.ledger.consistency_proof(old_size, new)
        old_root, new_root = node.ledger.root(old_size), node.ledger.root(new)
        verify_consistency(node.ledger.hasher, old_size, new, old_root, new_root, path)
    data = {
        "old_size": old_size,
        "new_size": new,
        "old_root": old_root.hex(),
        "new_root": new_root.hex(),
        "path": [h.hex() for h in path],
    }
    emit(
        data,
        as_json,
        lambda d: "\n".join(
            [f"tree {d['old_size']} -> {d['new_size']} consistent (verified)", *[f"  {h}" for h in d["path"]]]
        ),
    )


@click.command()
@home_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the record here (default: stdout).")
@json_option
@handle_errors
def genesis(home: Path | None, out: Path | None, as_json: bool) -> None:
    """Export the GENESIS record: the trust anchors other provinces pin (with its SM3 hash)."""
    from signing.sm3 import sm3

    with _node(home, write=False) as node, node.ledger.store.read() as conn:
        row = node.ledger.store.entry(conn, 0)
    if row is None:
        raise InvalidInputError("the ledger has no genesis record", reason="ledger.uninitialised")
    digest = sm3(row.data).hex()
    if out is not None:
        out.write_bytes(row.data + b"\n")
        emit(
            {"file": str(out), "genesis_sm3": digest}, as_json, lambda d: f"wrote {d['file']} (SM3 {d['genesis_sm3']})"
        )
    else:
        click.echo(row.data.decode("utf-8"))


# -- audit and rebuild --------------------------------------------------------------------


@click.command()
@home_option
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a PDF report an auditor can file.",
)
@json_option
@handle_errors
def audit(home: Path | None, report_path: Path | None, as_json: bool) -> None:
    """Replay the ledger from genesis and re-verify every signature, link, root and checkpoint.

    Exits 0 only if nothing is wrong; otherwise names the first bad entry or block.
    """
    with _node(home, write=False) as node:
        total = node.ledger.tree_size()
        with progress_bar() as bar:
            task = bar.add_task("auditing", total=total)
            report = run_audit(node.ledger.store, progress=lambda n: bar.advance(task, n))
    if report_path is not None:
        from nodes.audit_report import write_audit_pdf

        write_audit_pdf(report, report_path)
    data = report.to_json()

    def human(d: dict[str, Any]) -> str:
        verdict = "PASSED" if d["ok"] else "FAILED"
        lines = [
            f"audit {verdict}: {d['origin']}",
            f"  entries {d['entries']}, blocks {d['blocks']}, checkpoints {d['checkpoints']}, "
            f"signatures verified {d['signatures_verified']} in {d['seconds']}s",
            f"  tree size {d['tree_size']}, root {d['root']}",
            f"  licences: {', '.join(f'{k} {v}' for k, v in sorted(d['licences'].items())) or 'none'}",
        ]
        if not d["ok"]:
            first = d["first_finding"]
            lines.append(f"  first problem: {first['where']}: {first['message']} [{first['reason']}]")
            lines.append(f"  {d['finding_count']} finding(s) in all")
        if d["evidence"]:
            lines.append(f"  evidence held: {len(d['evidence'])} item(s)")
        if report_path is not None:
            lines.append(f"  report written to {report_path}")
        return "\n".join(lines)

    emit(data, as_json, human)
    if not report.ok:
        raise SystemExit(3)


@click.command()
@home_option
@passphrase_option
@json_option
@handle_errors
def rebuild(home: Path | None, passphrase_file: Path | None, as_json: bool) -> None:
    """Recompute licence status and the agency registry from the entries."""
    with _node(home, passphrase_file, write=True) as node:
        total = node.ledger.tree_size()
        with progress_bar() as bar:
            task = bar.add_task("rebuilding", total=total)
            count = node.ledger.rebuild(progress=lambda n: bar.advance(task, n))
    emit({"entries": count, "rebuilt": True}, as_json, lambda d: f"rebuilt derived state from {d['entries']} entries")


def register(group: click.Group) -> None:
    for cmd in (init, agency, record, submit, status, history, checkpoint, proof, genesis, audit, rebuild):
        group.add_command(cmd)
