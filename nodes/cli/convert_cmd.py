"""``certledger convert IN OUT``: PDF <-> OFD, the output an unsealed copy."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from nodes.cli._common import emit, handle_errors, json_option, read_input
from signing.errors import InvalidInputError

_EXTENSIONS = {".pdf": "pdf", ".ofd": "ofd"}


def _target(out: str, source: str, to: str | None) -> str:
    if to is not None:
        return to
    ext = Path(out).suffix.lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    # no telling extension: the other format
    return "ofd" if source == "pdf" else "pdf"


def _write_atomically(path: Path, data: bytes) -> None:
    # a half-written licence file is worse than none: write beside it, then rename
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _human(info: dict[str, Any]) -> str:
    lines = [
        f"wrote {info['output']} ({info['target_format'].upper()}, {info['pages']} page(s), "
        f"{info['texts']} texts, {info['paths']} paths, {info['images']} images)",
        f"this is an UNSEALED COPY of {info['input']} ({info['source_format'].upper()}, "
        f"SM3 {info['source_sm3']}); it is not the sealed original",
    ]
    if info["source_sealed"]:
        lines.append(
            "the source's signatures/seals do not survive conversion; "
            "have the issuing agency re-seal it (certledger issue / seal) if a sealed file is needed"
        )
    lines.append("certledger proof bundle copied: " + ("yes" if info["proof_bundle"] else "no (the source had none)"))
    if info["active_content_dropped"]:
        lines.append("the source's JavaScript/actions were dropped (never run)")
    if info["fallback_fonts"]:
        lines.append(f"{info['fallback_fonts']} font(s) replaced by the system CJK font")
    lines += [f"note: {n}" for n in info["notes"]]
    return "\n".join(lines)


@click.command("convert")
@click.argument("input_path", metavar="IN")
@click.argument("output_path", metavar="OUT")
@click.option(
    "--to",
    "to",
    type=click.Choice(["pdf", "ofd"]),
    default=None,
    help="Output format (default: from OUT's extension, else the other format).",
)
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@json_option
@handle_errors
def convert(input_path: str, output_path: str, to: str | None, force: bool, as_json: bool) -> None:
    """Convert a licence file between PDF and OFD (direction from magic bytes and OUT's extension).

    IN may be '-' for standard input and OUT '-' for standard output. The output
    is an UNSEALED COPY: signatures cannot survive conversion. It carries the SM3
    of the input (certledger.source_sm3) and, if the input had one, its
    certledger proof bundle (certledger-proof.json).
    """
    from cert_formats.convert import convert as run_convert
    from cert_formats.convert import detect_format
    from cert_formats.convert.limits import REASON_TOO_LARGE, PdfLimits
    from cert_formats.ofd.limits import ZipLimits

    # never more than the larger input limit (and one byte) in memory: /dev/zero is refused, not read
    bound = max(PdfLimits().max_file_bytes, ZipLimits().max_archive_bytes)
    data = read_input(input_path, bound, too_large=REASON_TOO_LARGE)
    source = detect_format(data)
    target = _target(output_path, source, to)
    if output_path != "-":
        out = Path(output_path)
        if input_path != "-" and out.exists() and out.resolve() == Path(input_path).resolve():
            raise InvalidInputError(
                "OUT is the input file; the source is never overwritten", reason="convert.same_file"
            )
        if out.exists() and not force:
            raise InvalidInputError(f"{out} exists (use --force to overwrite)", reason="convert.output_exists")
    result = run_convert(data, target)
    info = {"input": input_path, "output": output_path, **result.summary()}
    if output_path == "-":
        sys.stdout.buffer.write(result.data)
        sys.stdout.buffer.flush()
        click.echo(_human(info), err=True)
        return
    _write_atomically(Path(output_path), result.data)
    emit(info, as_json, _human)
