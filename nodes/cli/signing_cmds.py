"""``keygen``, ``sm3``, ``sign`` and ``verify-sig``: SM2/SM3 from the command line."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import click

from nodes.cli._common import emit, handle_errors, json_option, read_input, read_passphrase, verifying_key
from signing import sm3 as sm3_mod
from signing.errors import InvalidInputError
from signing.sm2 import DEFAULT_SIGNER_ID, SM2PrivateKey, der_to_raw, raw_to_der
from signing.sm2.backends import get_backend

_PASSPHRASE_FILE_HELP = "File holding the key passphrase (default: $CERTLEDGER_PASSPHRASE)."  # noqa: S105 - help text


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # create-only (O_EXCL): an existing file, a private key above all, is never replaced; a
    # private key is created 0600 from the start, never for a moment world-readable
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


@click.command()
@click.option(
    "--out", "out", type=click.Path(path_type=Path), required=True, help="Private key file to create (PKCS#8 PEM)."
)
@click.option(
    "--pub",
    "pub",
    type=click.Path(path_type=Path),
    help="Public key file to write (SPKI PEM); default: OUT with .pub.pem.",
)
@click.option(
    "--passphrase-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help=_PASSPHRASE_FILE_HELP
)
@click.option("--no-encrypt", is_flag=True, help="Store the private key unencrypted (tests only).")
@json_option
@handle_errors
def keygen(out: Path, pub: Path | None, passphrase_file: Path | None, no_encrypt: bool, as_json: bool) -> None:
    """Generate an SM2 key pair; the private key is encrypted with a passphrase."""
    passphrase = read_passphrase(passphrase_file)
    if passphrase is None and not no_encrypt:
        raise InvalidInputError(
            "a passphrase is required (--passphrase-file or CERTLEDGER_PASSPHRASE); "
            "use --no-encrypt only for throwaway keys"
        )
    pub_path = pub or out.with_name(out.name.removesuffix(".pem") + ".pub.pem")
    if out.resolve() == pub_path.resolve():
        raise InvalidInputError("--out and --pub name the same file")
    for path in (out, pub_path):
        if path.exists() or path.is_symlink():
            raise InvalidInputError(f"{path} already exists; refusing to overwrite a key")
    key = SM2PrivateKey.generate()
    # the public half first: if it cannot be written, no private key is left behind without it
    _write_new(pub_path, key.public_key.to_pem(), 0o644)
    try:
        _write_new(out, key.to_pem(None if no_encrypt else passphrase), 0o600)
    except BaseException:
        pub_path.unlink(missing_ok=True)
        raise
    emit(
        {
            "private_key": str(out),
            "public_key": str(pub_path),
            "key_id": key.public_key.key_id,
            "encrypted": not no_encrypt,
        },
        as_json,
    )


@click.command("sm3")
@click.argument("files", nargs=-1)
@json_option
@handle_errors
def sm3_cmd(files: tuple[str, ...], as_json: bool) -> None:
    """Print the SM3 digest of each FILE (or of standard input)."""
    results = {}
    for name in files or ("-",):
        h = sm3_mod.new()
        if name == "-":
            h.update(read_input("-"))
        else:
            with Path(name).open("rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        results[name] = h.hexdigest()
    if as_json:
        emit(results, True)
    else:
        for name, digest in results.items():
            click.echo(f"{digest}  {name}")


def _signer_id(value: str) -> bytes:
    # the argument's own bytes: UTF-8 text as typed, and bytes that are not UTF-8 (which
    # Python holds as surrogate escapes, and str.encode would crash on) passed through as-is
    return os.fsencode(value)


@click.command()
@click.option(
    "--key",
    "key_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="SM2 private key (PKCS#8 PEM).",
)
@click.option(
    "--passphrase-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help=_PASSPHRASE_FILE_HELP
)
@click.option("--id", "signer_id", default=DEFAULT_SIGNER_ID.decode(), show_default=True, help="GM/T 0009 signer ID.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["der", "raw", "base64"]),
    default="der",
    show_default=True,
    help="Signature encoding (base64 is of the DER form).",
)
@click.option("--out", type=click.Path(path_type=Path), help="Signature file (default: stdout).")
@click.option("--backend", type=click.Choice(["libcrypto", "reference"]), help="SM2 backend.")
@click.argument("file")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON (key ID, signer ID, the signature as base64 of its DER form, --out) instead of the signature.",
)
@handle_errors
def sign(
    key_path: Path,
    passphrase_file: Path | None,
    signer_id: str,
    fmt: str,
    out: Path | None,
    backend: str | None,
    file: str,
    as_json: bool,
) -> None:
    """Sign FILE (or - for stdin) with SM2/SM3; writes the signature to --out or stdout."""
    key = SM2PrivateKey.load(key_path, read_passphrase(passphrase_file))
    sid = _signer_id(signer_id)
    sig = key.sign(read_input(file), signer_id=sid, backend=get_backend(backend))
    data = {"der": sig, "raw": der_to_raw(sig), "base64": base64.b64encode(sig) + b"\n"}[fmt]
    if out is not None:
        out.write_bytes(data)
    if as_json:
        # binary signatures and JSON cannot share stdout: the JSON carries the signature itself
        emit(
            {
                "key_id": key.public_key.key_id,
                "signer_id": sid.decode("utf-8", "backslashreplace"),
                "signature_der_base64": base64.b64encode(sig).decode("ascii"),
                "format": fmt,
                "out": None if out is None else str(out),
            },
            True,
        )
    elif out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


@click.command("verify-sig")
@click.option(
    "--pub",
    "pub_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="SM2 public key (SPKI PEM/DER) or a PEM certificate (its chain is not checked).",
)
@click.option(
    "--sig",
    "sig_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Signature file.",
)
@click.option("--id", "signer_id", default=DEFAULT_SIGNER_ID.decode(), show_default=True, help="GM/T 0009 signer ID.")
@click.option("--format", "fmt", type=click.Choice(["der", "raw", "base64"]), default="der", show_default=True)
@click.option("--backend", type=click.Choice(["libcrypto", "reference"]), help="SM2 backend.")
@click.argument("file")
@json_option
@handle_errors
def verify_sig(
    pub_path: Path, sig_path: Path, signer_id: str, fmt: str, backend: str | None, file: str, as_json: bool
) -> None:
    """Verify an SM2 signature over FILE; exit 0 only if it is valid."""
    pub = verifying_key(pub_path.read_bytes())
    raw = sig_path.read_bytes()
    if fmt == "raw":
        sig = raw_to_der(raw)
    elif fmt == "base64":
        try:
            sig = base64.b64decode(raw.strip(), validate=True)
        except ValueError:
            raise InvalidInputError("signature file is not valid base64") from None
    else:
        sig = raw
    pub.verify(sig, read_input(file), signer_id=_signer_id(signer_id), backend=get_backend(backend))
    emit({"valid": True, "key_id": pub.key_id}, as_json, lambda d: f"signature valid (key {d['key_id'][:16]}…)")


def register(group: click.Group) -> None:
    for cmd in (keygen, sm3_cmd, sign, verify_sig):
        group.add_command(cmd)
