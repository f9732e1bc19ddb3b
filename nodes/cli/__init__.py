"""The ``certledger`` command: a thin layer over the packages.

Each command family lives in its own module and registers itself on the root
group here; the modules hold no logic beyond parsing, calling a package and
printing.
"""

from __future__ import annotations

import click

from nodes.cli import cert_cmds, signing_cmds

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="certledger", prog_name="certledger")
def cli() -> None:
    """certledger: a trust ledger for electronic licences (电子证照).

    SM2/SM3-signed, append-only, hash-chained records of licence issuance,
    amendment, suspension and revocation, with proofs anyone can check.
    """


signing_cmds.register(cli)
cert_cmds.register(cli)


def main() -> None:
    cli(prog_name="certledger")
