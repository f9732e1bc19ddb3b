"""A local cluster on loopback: 3 etcd members and 4 department nodes.

``up`` creates keys, a shared GENESIS record (4 nodes, quorum 3), one
node.toml per node, starts every process in its own session and records
its PID in ``state.json``; ``down`` stops exactly those processes; ``status``
asks each node for its view. Everything lives under one directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from ledger.identity import NodeKeys
from ledger.records import Record, RecordType, encode_public_key, new_nonce, now_utc, sign_record
from nodes.local import agency_key_json, write_secret
from signing.errors import ConflictError, InvalidInputError, TransportError
from signing.sm2 import SM2PrivateKey

ORIGIN = "gd.certledger.example/cluster"
ETCD_CLIENT_BASE = 23790
ETCD_PEER_BASE = 23800
API_BASE = 8601
QUORUM = 3
AGENCY_ID = "11440300MB2C54301Y"


@dataclass(frozen=True)
class Layout:
    """Where a local cluster lives: its directory, its ports and the node settings ``up`` writes.

    The ports and settings are recorded in ``state.json`` by ``up``;
    :meth:`recorded` reads them back, so ``status``/``submit`` find a cluster
    started on other ports (tests run one beside the default cluster).
    """

    root: Path
    nodes: int = 4
    etcd_members: int = 3
    etcd_client_base: int = ETCD_CLIENT_BASE
    etcd_peer_base: int = ETCD_PEER_BASE
    api_base: int = API_BASE
    #: records per block at most (node.toml [cluster] max_batch)
    max_batch: int = 500
    #: blocks kept in etcd behind the last final one (node.toml [cluster] window)
    window: int = 2000
    #: processes get SIGTERM when the process that started them dies (tests, benchmarks: a
    #: killed test run leaves no cluster behind); not for `certledger cluster up`, which exits
    bound_to_parent: bool = False

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def etcd_client(self, i: int) -> str:
        return f"http://127.0.0.1:{self.etcd_client_base + i}"

    def etcd_peer(self, i: int) -> str:
        return f"http://127.0.0.1:{self.etcd_peer_base + i}"

    def api(self, i: int) -> str:
        return f"http://127.0.0.1:{self.api_base + i}"

    def to_json(self) -> dict[str, int]:
        return {
            "nodes": self.nodes,
            "etcd_members": self.etcd_members,
            "etcd_client_base": self.etcd_client_base,
            "etcd_peer_base": self.etcd_peer_base,
            "api_base": self.api_base,
            "max_batch": self.max_batch,
            "window": self.window,
        }

    def recorded(self) -> Layout:
        """This layout with the ports and settings ``up`` recorded in state.json (if any)."""
        if not self.state_file.exists():
            return self
        try:
            saved = json.loads(self.state_file.read_text()).get("layout") or {}
            settings: dict[str, Any] = {k: int(v) for k, v in saved.items() if k in self.to_json()}
            return replace(self, **settings)
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise InvalidInputError(f"{self.state_file} is unreadable: {exc}", reason="cluster.state") from None

    def node_dir(self, i: int) -> Path:
        return self.root / f"node-{i + 1}"


def _clean_env() -> dict[str, str]:
    # etcd reads every ETCD_* variable as a flag: never let the caller's environment configure it
    return {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        # a child of this process that died stays a zombie (and answers kill(0)) until reaped
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_running(pid: int) -> bool:
    """Whether ``pid`` is alive (a dead child of this process is reaped and counts as gone)."""
    return _alive(pid)


def _spawn(cmd: list[str], log: Path, env: dict[str, str], *, bound_to_parent: bool = False) -> int:
    setpriv = shutil.which("setpriv")
    if bound_to_parent and setpriv:
        # util-linux setpriv sets PR_SET_PDEATHSIG and execs the command (same PID)
        cmd = [setpriv, "--pdeathsig", "TERM", "--", *cmd]
    with log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv we build ourselves, no shell
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
    return proc.pid


def etcd_command(layout: Layout, i: int) -> list[str]:
    cluster = ",".join(f"e{j}={layout.etcd_peer(j)}" for j in range(layout.etcd_members))
    return [
        shutil.which("etcd") or "etcd",
        "--name",
        f"e{i}",
        "--data-dir",
        str(layout.root / f"etcd-{i}"),
        "--listen-client-urls",
        layout.etcd_client(i),
        "--advertise-client-urls",
        layout.etcd_client(i),
        "--listen-peer-urls",
        layout.etcd_peer(i),
        "--initial-advertise-peer-urls",
        layout.etcd_peer(i),
        "--initial-cluster",
        cluster,
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        "certledger",
        "--quota-backend-bytes",
        str(2 * 1024**3),
        "--max-request-bytes",
        str(int(1.5 * 1024**2)),
        "--heartbeat-interval",
        "100",
        "--election-timeout",
        "1000",
        "--log-level",
        "warn",
    ]


def node_command(layout: Layout, i: int) -> list[str]:
    return [sys.executable, "-m", "nodes.cli", "node", "run", "--config", str(layout.node_dir(i) / "node.toml")]


def prepare(layout: Layout) -> dict[str, Any]:
    """Keys, genesis and configs for a new cluster (nothing started)."""
    if layout.state_file.exists():
        raise ConflictError(
            f"{layout.root} already holds a cluster (run `certledger cluster down` first)", reason="cluster.exists"
        )
    layout.root.mkdir(parents=True, exist_ok=True)
    passphrase = secrets.token_urlsafe(24)
    write_secret(layout.root / "passphrase", passphrase.encode() + b"\n")
    authority = SM2PrivateKey.generate()
    write_secret(layout.root / "authority.pem", authority.to_pem(passphrase.encode()))
    agency = SM2PrivateKey.generate()
    write_secret(layout.root / "agency.pem", agency.to_pem(passphrase.encode()))
    nodes = []
    for i in range(layout.nodes):
        keys = NodeKeys.generate(f"node-{i + 1}")
        keys.save(layout.node_dir(i) / "keys", passphrase.encode())
        nodes.append(keys.node_json(f"department node {i + 1}", layout.api(i)))
    payload = {
        "agencies": [
            {
                "id": AGENCY_ID,
                "name": "深圳市市场监督管理局",
                "regions": ["4403"],
                "types": ["*"],
                "authority": False,
                "keys": [agency_key_json(agency.public_key)],
            }
        ],
        "nodes": nodes,
        "governance": {
            "authorities": [
                {
                    "id": "gd-gov",
                    "name": "广东省政务服务数据管理局",
                    "public_key": encode_public_key(authority.public_key),
                }
            ],
            "threshold": 1,
        },
        "quorum": {"threshold": QUORUM},
        "time_window_seconds": 600,
        "description": "local certledger cluster",
    }
    genesis = sign_record(Record(RecordType.GENESIS, ORIGIN, now_utc(), new_nonce(), "", "", payload), [authority])
    (layout.root / "genesis.json").write_bytes(genesis.entry_bytes() + b"\n")
    etcd = ", ".join(f'"{layout.etcd_client(j)}"' for j in range(layout.etcd_members))
    for i in range(layout.nodes):
        peers = ", ".join(f'"{layout.api(j)}"' for j in range(layout.nodes) if j != i)
        (layout.node_dir(i) / "node.toml").write_text(
            f'[node]\nid = "node-{i + 1}"\nhome = "."\n\n[ledger]\ngenesis = "../genesis.json"\n\n'
            f"[cluster]\netcd = [{etcd}]\npeers = [{peers}]\nmax_batch = {layout.max_batch}\n"
            f"window = {layout.window}\n\n"
            f'[api]\nhost = "127.0.0.1"\nport = {layout.api_base + i}\n'
        )
    return {"passphrase": passphrase}


def start_etcd(layout: Layout, i: int) -> int:
    return _spawn(
        etcd_command(layout, i), layout.root / f"etcd-{i}.log", _clean_env(), bound_to_parent=layout.bound_to_parent
    )


def start_node(layout: Layout, i: int, passphrase: str) -> int:
    env = _clean_env() | {
        "CERTLEDGER_PASSPHRASE": passphrase,
        "CERTLEDGER_LOG_FORMAT": "json",
        "CERTLEDGER_LOG_LEVEL": "INFO",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    # on loopback every client and every peer is 127.0.0.1: a per-address bound would count the
    # whole cluster as one client (the caller may still set one explicitly)
    env.setdefault("CERTLEDGER_API_MAX_CONNECTIONS", "0")
    return _spawn(node_command(layout, i), layout.node_dir(i) / "node.log", env, bound_to_parent=layout.bound_to_parent)


def restart_node(layout: Layout, i: int) -> int:
    """Start node ``i`` again (after a crash or stop) with its existing store; records the new PID."""
    state = load_state(layout)
    old = state["nodes"].get(str(i))
    if old and _alive(int(old)):
        raise ConflictError(f"node-{i + 1} is still running (pid {old})", reason="cluster.running")
    passphrase = (layout.root / "passphrase").read_text().strip()
    state["nodes"][str(i)] = pid = start_node(layout, i, passphrase)
    save_state(layout, state)
    return pid


def restart_etcd(layout: Layout, i: int) -> int:
    """Start etcd member ``i`` again on its existing data directory; records the new PID."""
    state = load_state(layout)
    old = state["etcd"].get(str(i))
    if old and _alive(int(old)):
        raise ConflictError(f"etcd member e{i} is still running (pid {old})", reason="cluster.running")
    state["etcd"][str(i)] = pid = start_etcd(layout, i)
    save_state(layout, state)
    return pid


def save_state(layout: Layout, state: dict[str, Any]) -> None:
    layout.state_file.write_text(json.dumps(state, indent=1))


def load_state(layout: Layout) -> dict[str, Any]:
    if not layout.state_file.exists():
        raise InvalidInputError(f"no cluster in {layout.root}", reason="cluster.missing")
    try:
        state = json.loads(layout.state_file.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{layout.state_file} is unreadable: {exc}", reason="cluster.state") from None
    if not isinstance(state, dict) or not all(isinstance(state.get(group, {}), dict) for group in ("nodes", "etcd")):
        raise InvalidInputError(f"{layout.state_file} is not a cluster's state", reason="cluster.state")
    return state


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise TransportError(f"timed out waiting for {what}", reason="cluster.timeout")


def up(layout: Layout, *, demo_records: int = 20) -> dict[str, Any]:
    secrets_ = prepare(layout)
    state: dict[str, Any] = {
        "etcd": {},
        "nodes": {},
        "passphrase_file": str(layout.root / "passphrase"),
        "layout": layout.to_json(),
    }
    try:
        for i in range(layout.etcd_members):
            state["etcd"][str(i)] = start_etcd(layout, i)
        save_state(layout, state)
        wait_until(
            lambda: all(
                httpx.get(layout.etcd_client(i) + "/health", timeout=1).json().get("health") == "true"
                for i in range(layout.etcd_members)
            ),
            30,
            "etcd to be healthy",
        )
        for i in range(layout.nodes):
            state["nodes"][str(i)] = start_node(layout, i, secrets_["passphrase"])
        save_state(layout, state)
        wait_until(
            lambda: all(node_status(layout, i)["height"] >= 0 for i in range(layout.nodes)),
            60,
            "every node to apply the genesis block",
        )
        if demo_records:
            submit_demo(layout, demo_records)
    except BaseException:
        down(layout)
        raise
    return state


def submit_demo(layout: Layout, count: int, *, start: int = 0) -> list[dict[str, Any]]:
    """Sign ``count`` ISSUE records with the demo agency key and submit them round-robin to the nodes."""
    layout = layout.recorded()
    passphrase = (layout.root / "passphrase").read_bytes().strip()
    agency = SM2PrivateKey.load(layout.root / "agency.pem", passphrase)
    acks = []
    with httpx.Client(timeout=30) as http:
        for n in range(start, start + count):
            payload = {
                "licence_id": f"LIC-CLUSTER-{n:06d}",
                "type_code": "1001",
                "region": "440305",
                "version": 1,
                "files": {"pdf": f"{n:064x}"},
                "metadata": {"holder": f"深圳集群演示企业{n}"},
            }
            rec = sign_record(
                Record(RecordType.ISSUE, ORIGIN, now_utc(), new_nonce(), AGENCY_ID, agency.public_key.key_id, payload),
                [agency],
            )
            resp = None
            for attempt in range(layout.nodes):
                # any node accepts submissions: skip one that is down
                try:
                    resp = http.post(
                        layout.api((n + attempt) % layout.nodes) + "/v1/records", content=rec.entry_bytes()
                    )
                    break
                except httpx.TransportError:
                    continue
            if resp is None:
                raise TransportError("no node accepted the submission", reason="cluster.submit")
            if resp.status_code != 201:
                raise TransportError(
                    f"submission {n} failed: HTTP {resp.status_code} {resp.text[:200]}", reason="cluster.submit"
                )
            acks.append(resp.json())
    return acks


def node_status(layout: Layout, i: int) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(layout.api(i) + "/v1/cluster/status", timeout=2).json()
    return data


def status(layout: Layout) -> dict[str, Any]:
    state = load_state(layout)
    layout = layout.recorded()
    nodes = []
    for i in range(layout.nodes):
        pid = state["nodes"].get(str(i))
        entry: dict[str, Any] = {
            "node": f"node-{i + 1}",
            "api": layout.api(i),
            "pid": pid,
            "running": bool(pid and _alive(pid)),
        }
        try:
            entry |= node_status(layout, i)
        except (httpx.HTTPError, ValueError) as exc:
            entry["error"] = type(exc).__name__
        nodes.append(entry)
    members = []
    for i in range(layout.etcd_members):
        pid = state["etcd"].get(str(i))
        try:
            healthy = httpx.get(layout.etcd_client(i) + "/health", timeout=1).json().get("health") == "true"
        except (httpx.HTTPError, ValueError):
            healthy = False
        members.append(
            {
                "member": f"e{i}",
                "endpoint": layout.etcd_client(i),
                "pid": pid,
                "running": bool(pid and _alive(pid)),
                "healthy": healthy,
            }
        )
    leaders = {str(n["leader"]) for n in nodes if n.get("leader")}
    final = max((n.get("final_tree_size", 0) for n in nodes), default=0)
    return {"nodes": nodes, "etcd": members, "leader": ", ".join(sorted(leaders)) or "none", "final_tree_size": final}


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """Stop the process group started for ``pid`` (TERM, then KILL)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return


def down(layout: Layout) -> int:
    """Stop exactly the recorded processes; returns how many were stopped."""
    if not layout.state_file.exists():
        return 0
    state = load_state(layout)
    stopped = 0
    for group in ("nodes", "etcd"):
        for pid in state.get(group, {}).values():
            if pid and _alive(pid):
                stop_pid(int(pid))
                stopped += 1
    layout.state_file.rename(layout.root / f"state.stopped-{int(time.time())}.json")
    return stopped


__all__ = ["Layout", "down", "process_running", "restart_etcd", "restart_node", "status", "submit_demo", "up"]
