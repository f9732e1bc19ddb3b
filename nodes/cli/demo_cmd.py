"""``certledger demo``: the whole system on the embedded default, narrated."""

from __future__ import annotations

from pathlib import Path

import click

from nodes.cli._common import handle_errors


@click.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("certledger-demo"),
    show_default=True,
    help="Directory for the demo's keys, certificates, ledger and files.",
)
@handle_errors
def demo(workdir: Path) -> None:
    """Run the demo: province CA and agency certificates, a ledger with a licence lifecycle, proofs, audit."""
    from nodes.demo import run_demo

    run_demo(workdir, click.echo)


def register(group: click.Group) -> None:
    group.add_command(demo)
