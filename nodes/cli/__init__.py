"""The ``certledger`` command: a thin layer over the packages.

Each command family lives in its own module. The root group is lazy: it
knows each command's module and one-line help, and imports the module only
when that command runs, so ``certledger sm3`` does not pay for SQLAlchemy,
reportlab or FastAPI (ADR 0008).
"""

from __future__ import annotations

import importlib
import signal
import sys
import warnings
from typing import Any

import click

from nodes import logs
from signing.errors import CertLedgerError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: command name -> (module, attribute, one-line help shown by ``certledger --help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "keygen": ("nodes.cli.signing_cmds", "keygen", "Generate an SM2 key pair (private key encrypted)."),
    "sm3": ("nodes.cli.signing_cmds", "sm3_cmd", "Print the SM3 digest of files or stdin."),
    "sign": ("nodes.cli.signing_cmds", "sign", "Sign a file with SM2/SM3."),
    "verify-sig": ("nodes.cli.signing_cmds", "verify_sig", "Verify an SM2 signature over a file."),
    "cert": ("nodes.cli.cert_cmds", "cert_group", "Issue, verify and show SM2 X.509 certificates."),
    "init": ("nodes.cli.ledger_cmds", "init", "Create a new single-node ledger (keys, genesis, block 0)."),
    "agency": ("nodes.cli.ledger_cmds", "agency", "Admit, rotate keys of, remove and list agencies."),
    "record": ("nodes.cli.ledger_cmds", "record", "Build and sign records."),
    "submit": ("nodes.cli.ledger_cmds", "submit", "Append signed record files as one block."),
    "status": ("nodes.cli.ledger_cmds", "status", "Current status of a licence, with proof."),
    "history": ("nodes.cli.ledger_cmds", "history", "Every record of a licence, with proofs."),
    "checkpoint": ("nodes.cli.ledger_cmds", "checkpoint", "Print a signed checkpoint (C2SP note)."),
    "proof": ("nodes.cli.ledger_cmds", "proof", "Inclusion and consistency proofs."),
    "genesis": ("nodes.cli.ledger_cmds", "genesis", "Export the GENESIS record (trust anchors)."),
    "audit": ("nodes.cli.ledger_cmds", "audit", "Replay-verify the whole ledger; optional PDF report."),
    "rebuild": ("nodes.cli.ledger_cmds", "rebuild", "Recompute derived state from the entries."),
    "issue": ("nodes.cli.licence_cmds", "issue", "Render, sign, seal and record a licence (PDF + OFD)."),
    "verify": ("nodes.cli.licence_cmds", "verify", "Verify a licence file: valid/suspended/revoked/.../forged."),
    "seal": ("nodes.cli.licence_cmds", "seal", "Make GB/T 38540 electronic seals for agencies."),
    "convert": ("nodes.cli.convert_cmd", "convert", "Convert a licence file between PDF and OFD (an unsealed copy)."),
    "serve": ("nodes.cli.serve_cmd", "serve", "Serve the /v1 verification API."),
    "remote": ("nodes.cli.remote_cmds", "remote", "Query another node and verify its proofs locally."),
    "demo": ("nodes.cli.demo_cmd", "demo", "Run the end-to-end demo on the embedded default."),
    "node": ("nodes.cli.node_cmds", "node", "Run a department node of a cluster (etcd ordering)."),
    "cluster": ("nodes.cli.cluster_cmds", "cluster", "Start, stop and inspect a local 4-node cluster."),
}


class OneLineError(click.ClickException):
    """A click usage/parameter error shown as ``certledger: error: ...`` on one line (exit code kept)."""

    def __init__(self, exc: click.ClickException) -> None:
        message = " ".join(exc.format_message().split())
        ctx = getattr(exc, "ctx", None)
        if isinstance(exc, click.UsageError) and ctx is not None:
            message += f" (see '{ctx.command_path} --help')"
        super().__init__(message)
        # click declares exit_code a ClassVar; this instance keeps the original's (2 for usage errors)
        setattr(self, "exit_code", exc.exit_code)  # noqa: B010

    def show(self, file: Any = None) -> None:
        click.echo(f"certledger: error: {self.message}", err=True, file=file)


class LazyGroup(click.Group):
    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except OneLineError:
            raise
        except click.ClickException as exc:
            raise OneLineError(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        # a subcommand's own parsing (and any click error a command raises) happens in here
        try:
            return super().invoke(ctx)
        except OneLineError:
            raise
        except click.ClickException as exc:
            raise OneLineError(exc) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        command: Any = getattr(module, entry[1])
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # list commands from the table, without importing every module
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="certledger", prog_name="certledger")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING (default) or ERROR; env CERTLEDGER_LOG_LEVEL.")
@click.option(
    "--log-format",
    type=click.Choice(["json", "console"]),
    default=None,
    help="Structured log format on stderr (default: json unless stderr is a terminal).",
)
def cli(log_level: str | None, log_format: str | None) -> None:
    """certledger: a trust ledger for electronic licences (电子证照).

    SM2/SM3-signed, append-only, hash-chained records of licence issuance,
    amendment, suspension and revocation, with proofs anyone can check.
    """
    try:
        logs.configure(log_level, log_format)
    except CertLedgerError as exc:  # a bad --log-level / CERTLEDGER_LOG_LEVEL: one line, as every error
        click.echo(f"certledger: error: {exc} [{exc.reason}]", err=True)
        sys.exit(exc.exit_code)


def main() -> None:
    # pyhanko imports cryptography's DSA names at import time; cryptography >= 45 warns about
    # that on every run. It is not ours and not actionable by a user, and it would break the
    # one-line error contract of the CLI, so library warnings stay out of the CLI's stderr.
    warnings.filterwarnings("ignore", message="DSA is deprecated")
    # SIGTERM / SIGHUP end a command the way Ctrl-C does: as an exception, so that what it holds
    # open is released and what it reserved is removed (a killed `issue` left empty files behind);
    # the servers install their own handlers while they run
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _terminate)
    cli(prog_name="certledger")


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)
