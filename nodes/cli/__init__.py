"""The ``certledger`` command: a thin layer over the packages.

Each command family lives in its own module and registers itself on the root
group here; the modules hold no logic beyond parsing, calling a package and
printing.
"""

from __future__ import annotations

import click

from nodes import logs
from nodes.cli import cert_cmds, demo_cmd, ledger_cmds, remote_cmds, serve_cmd, signing_cmds

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
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
    logs.configure(log_level, log_format)


signing_cmds.register(cli)
ledger_cmds.register(cli)
demo_cmd.register(cli)
serve_cmd.register(cli)
remote_cmds.register(cli)
cert_cmds.register(cli)


def main() -> None:
    cli(prog_name="certledger")
