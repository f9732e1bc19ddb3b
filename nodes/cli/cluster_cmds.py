"""``certledger cluster up|down|status|submit``: a local 4-department cluster on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from nodes.cli._common import emit, handle_errors, json_option

dir_option = click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("certledger-cluster"),
    show_default=True,
    help="Directory holding the cluster's keys, data, logs and PIDs.",
)


@click.group()
def cluster() -> None:
    """Start, stop and inspect a local cluster: 3 etcd members and 4 department nodes."""


@cluster.command("up")
@dir_option
@click.option("--records", default=20, show_default=True, help="Demo licences to submit once it is up.")
@json_option
@handle_errors
def cluster_up(root: Path, records: int, as_json: bool) -> None:
    """Start the cluster (each process in its own session, PIDs in state.json) and load demo data."""
    from nodes.localcluster import Layout, status, up

    layout = Layout(root)
    up(layout, demo_records=records)
    emit(status(layout), as_json, _human)


@cluster.command("down")
@dir_option
@handle_errors
def cluster_down(root: Path) -> None:
    """Stop exactly the processes `cluster up` started."""
    from nodes.localcluster import Layout, down

    click.echo(f"stopped {down(Layout(root))} process(es)")


@cluster.command("status")
@dir_option
@json_option
@handle_errors
def cluster_status(root: Path, as_json: bool) -> None:
    """Each node's height, lag, the leader and the last final checkpoint; etcd member health."""
    from nodes.localcluster import Layout, status

    emit(status(Layout(root)), as_json, _human)


@cluster.command("submit")
@dir_option
@click.option("--count", default=10, show_default=True)
@click.option("--start", default=1000, show_default=True, help="First demo licence number.")
@json_option
@handle_errors
def cluster_submit(root: Path, count: int, start: int, as_json: bool) -> None:
    """Submit demo licences round-robin to the nodes; each is acknowledged once final."""
    from nodes.localcluster import Layout, submit_demo

    acks = submit_demo(Layout(root), count, start=start)
    emit(
        {
            "acknowledged": len(acks),
            "last_index": acks[-1]["index"] if acks else None,
            "final": all(a["final"] for a in acks),
        },
        as_json,
    )


def _human(d: dict[str, Any]) -> str:
    lines = [
        f"leader: {d['leader']}   last final checkpoint: tree size {d['final_tree_size']}",
        "",
        f"{'node':<8} {'api':<24} {'pid':>7} {'height':>7} {'lag':>5} {'final':>7} {'alarms':>6}",
    ]
    for n in d["nodes"]:
        if "error" in n or not n["running"]:
            lines.append(f"{n['node']:<8} {n['api']:<24} {n['pid'] or '-':>7}  DOWN ({n.get('error', 'not running')})")
        else:
            lines.append(
                f"{n['node']:<8} {n['api']:<24} {n['pid']:>7} {n['height']:>7} {n['lag']:>5} "
                f"{n['final_tree_size']:>7} {n['alarms']:>6}"
            )
    lines.append("")
    for m in d["etcd"]:
        lines.append(
            f"etcd {m['member']:<4} {m['endpoint']:<24} pid {m['pid']}  {'healthy' if m['healthy'] else 'UNHEALTHY'}"
        )
    return "\n".join(lines)
