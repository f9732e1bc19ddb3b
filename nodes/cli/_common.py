"""What every command shares: error mapping, ``--json`` output, passphrases.

The CLI is the only place that turns a :class:`CertLedgerError` into an exit
code and a one-line message; an unexpected exception also becomes one line
(set ``CERTLEDGER_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from signing.errors import CertLedgerError, InvalidInputError
from signing.sm2 import SM2PublicKey, load_public_key

P = ParamSpec("P")
R = TypeVar("R")

#: exit code for a bug (an exception that is not a CertLedgerError), as sysexits EX_SOFTWARE
EXIT_INTERNAL = 70


def fail(message: str, code: int = 1) -> None:
    click.echo(f"certledger: error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so errors end as one line on stderr and a family exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except CertLedgerError as exc:
            if os.environ.get("CERTLEDGER_DEBUG"):
                raise
            message = " ".join(str(exc).split())
            click.echo(f"certledger: error: {message} [{exc.reason}]", err=True)
            sys.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except OSError as exc:
            if os.environ.get("CERTLEDGER_DEBUG"):
                raise
            name = f": {exc.filename}" if getattr(exc, "filename", None) else ""
            click.echo(f"certledger: error: {exc.strerror or exc}{name} [io]", err=True)
            sys.exit(2)
        except UnicodeEncodeError as exc:
            # bytes that are not UTF-8 (in an argument, a variable, a file name) reach Python as lone
            # surrogates; they are fine as paths and as `sign --id`, and fail where text is needed
            if os.environ.get("CERTLEDGER_DEBUG") or "surrogates not allowed" not in str(exc):
                raise
            click.echo("certledger: error: an argument or variable is not valid UTF-8 text [input.invalid]", err=True)
            sys.exit(2)
        except RecursionError:
            # only input nests this deep (JSON, XML): the parsers recurse; say so, in one line
            if os.environ.get("CERTLEDGER_DEBUG"):
                raise
            click.echo("certledger: error: input nests too deeply to read [input.too_deep]", err=True)
            sys.exit(2)
        except Exception as exc:
            if os.environ.get("CERTLEDGER_DEBUG"):
                raise
            click.echo(
                f"certledger: internal error: {type(exc).__name__}: {exc} (set CERTLEDGER_DEBUG=1 for details)",
                err=True,
            )
            sys.exit(EXIT_INTERNAL)

    return wrapper


def json_option(fn: Callable[P, R]) -> Callable[P, R]:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(fn)


def emit(data: Any, as_json: bool, human: Callable[[Any], str] | None = None) -> None:
    """Print ``data`` as JSON (for scripts) or through ``human`` (for people)."""
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))
    elif human is not None:
        click.echo(human(data))
    else:
        for k, v in data.items():
            click.echo(f"{k}: {v}")


def read_passphrase(passphrase_file: Path | None, env_var: str = "CERTLEDGER_PASSPHRASE") -> bytes | None:
    """A key passphrase from a file, else from the environment, else None.

    Passphrases are never taken as command-line arguments: those end up in
    shell history and in ``ps`` output.
    """
    if passphrase_file is not None:
        data = passphrase_file.read_bytes().rstrip(b"\r\n")
        if not data:
            raise InvalidInputError(f"passphrase file {passphrase_file} is empty")
        return data
    value = os.environ.get(env_var)
    return value.encode() if value else None


def read_input(path: str, max_bytes: int | None = None, *, too_large: str = "input.too_large") -> bytes:
    """Bytes of ``path``, or of standard input when it is ``-``; at most ``max_bytes``.

    With a bound, no more than one byte past it is ever read: ``/dev/zero`` or a huge file is
    refused with a clear error instead of filling the memory first.
    """
    with contextlib.nullcontext(sys.stdin.buffer) if path == "-" else Path(path).open("rb") as f:
        data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        name = "standard input" if path == "-" else path
        raise InvalidInputError(f"{name} is larger than {max_bytes} bytes", reason=too_large)
    return data


def verifying_key(data: bytes) -> SM2PublicKey:
    """An SM2 public key (SPKI PEM/DER), or the key of a PEM certificate (its chain is not checked here)."""
    # the options that take a key promise "or a certificate"; `certledger cert verify` checks chains
    if data.lstrip().startswith(b"-----BEGIN CERTIFICATE-----"):
        from signing.x509 import load_certificate  # only this path needs asn1crypto

        return load_certificate(data).public_key
    return load_public_key(data)


def progress_bar() -> Any:
    """A progress bar for long work, drawn on stderr: stdout carries only the data (``--json``).

    On a terminal it shows and then clears itself; when stderr is not one (a pipe, a log
    file) nothing is drawn.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=console,
        # off a terminal rich still writes a newline when the bar stops: an error after it would
        # no longer be the one stderr line the CLI promises
        disable=not console.is_terminal,
    )

