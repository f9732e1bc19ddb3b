"""Crash safety of the ledger store: kill -9 the appending process at random moments.

The appender (``crash_appender.py``) acknowledges a batch on stdout only after
``Ledger.submit`` returned, i.e. after the batch's transaction committed. The
test starts it, waits a random 20-400 ms after it is ready (every other time: after
its first acknowledgement), SIGKILLs it, and then reopens the store and checks:

1. every record ever acknowledged is present at its acknowledged index, and
   every acknowledged block at its height with its tree size;
2. nothing half-written is visible: the batch that was in flight when the kill
   came (the appender announces each batch before submitting it) is on the
   ledger whole, as the last block, or not at all; the entries are exactly 0..size-1, the tree
   size equals the last block's tree size (no entry outside a block), every
   block has its checkpoint and no checkpoint lacks its block, the stored tree
   nodes are exactly the full nodes of a tree of that size, one nonce per entry;
3. ``ledger.audit.audit(store)`` passes (full replay: signatures, links, roots,
   derived state).

This repeats on the same, growing database (SQLite in WAL mode with
synchronous=FULL: at least 50 kills; PostgreSQL: 10). The RNG seed is printed
and can be fixed with ``CERTLEDGER_CRASH_SEED``; ``CERTLEDGER_CRASH_KILLS``
overrides the SQLite kill count.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from ledger.audit import audit
from ledger.records import RecordType
from ledger.service import Ledger
from ledger.store import schema as t
from ledger.store.sql import SqlStore
from signing.errors import StorageError
from tests.integration.crash_appender import Founders, issue_payload
from tests.pg import postgres_db_url, postgres_server  # noqa: F401

APPENDER = Path(__file__).with_name("crash_appender.py")
REPO = Path(__file__).resolve().parents[2]
SQLITE_KILLS = int(os.environ.get("CERTLEDGER_CRASH_KILLS", "50"))
POSTGRES_KILLS = 10
#: the kill lands this long after the appender said READY
KILL_DELAY = (0.020, 0.400)
LINE_TIMEOUT = 60.0
#: PostgreSQL application_name of the appender's connections (to find its orphaned backends)
APPENDER_APP = "certledger-crash-appender"


def _seed() -> int:
    env = os.environ.get("CERTLEDGER_CRASH_SEED")
    return int(env) if env else random.SystemRandom().randrange(2**32)


class Zygote:
    """``crash_appender.py`` as a subprocess; its stdout lines arrive through a reader thread."""

    def __init__(self, url: str, keydir: Path, log: Path) -> None:
        self.log = log
        self._stderr = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(APPENDER), url, str(keydir), "60"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, cwd=REPO,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode())
        self.lines.put(None)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()

    def next_line(self) -> str:
        try:
            line = self.lines.get(timeout=LINE_TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"appender silent for {LINE_TIMEOUT}s\n{self.stderr()}") from None
        if line is None:
            raise AssertionError(f"appender zygote exited\n{self.stderr()}")
        if not line.endswith("\n"):
            raise AssertionError(f"torn line from the appender: {line!r}")
        if line.startswith("ERR"):
            raise AssertionError(f"appender: {line.strip()}\n{self.stderr()}")
        return line.rstrip("\n")

    def expect(self, word: str) -> list[str]:
        parts = self.next_line().split()
        assert parts[0] == word, f"expected {word}, got {parts}"
        return parts

    def stderr(self) -> str:
        self._stderr.flush()
        return self.log.read_text(errors="replace")[-3000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("QUIT")
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


@dataclass
class Acknowledged:
    """Everything the appenders acknowledged, over all runs."""

    records: dict[int, str] = field(default_factory=dict)
    blocks: dict[int, int] = field(default_factory=dict)  # height -> tree size

    def add(self, parts: list[str]) -> None:
        # ACK <pid> <height> <tree size> <index>:<hash> ...
        height, size = int(parts[2]), int(parts[3])
        self.blocks[height] = size
        for item in parts[4:]:
            index, record_hash = item.split(":")
            self.records[int(index)] = record_hash


@dataclass
class CrashStats:
    kills: int = 0
    acks: int = 0
    #: kills that landed inside Ledger.submit (batch announced, not acknowledged)
    in_flight: int = 0
    #: ... of which the batch had committed before the kill (present but never acknowledged)
    committed_unacked: int = 0
    seconds_check: float = 0.0


def kill_once(zygote: Zygote, rng: random.Random, acked: Acknowledged, *, from_first_ack: bool) -> list[str]:
    """One appender life: start, wait, sleep a random moment, SIGKILL, collect its ACKs.

    The random delay counts from READY (the kill often hits the first batch after a restart)
    or, with ``from_first_ack``, from the life's first ACK (the kill hits an appender in full
    swing, however slow a loaded machine makes start-up). Returns the record hashes of the
    batch in flight at the kill ([] if none was).
    """
    zygote.send(f"RUN {rng.randrange(2**31)}")
    pid = int(zygote.expect("CHILD")[1])
    ready = zygote.expect("READY")
    assert int(ready[1]) == pid
    in_flight: list[str] = []

    def take(parts: list[str]) -> str:
        nonlocal in_flight
        if parts[0] != "DEAD":
            assert parts[0] in ("SUBMIT", "ACK") and int(parts[1]) == pid, parts
        if parts[0] == "SUBMIT":
            in_flight = parts[2:]
        elif parts[0] == "ACK":
            acked.add(parts)
            in_flight = []
        return parts[0]

    delay = rng.uniform(*KILL_DELAY)
    while from_first_ack and take(zygote.next_line().split()) != "ACK":
        pass
    time.sleep(delay)
    with contextlib.suppress(ProcessLookupError):  # it died by itself: its ERR/DEAD lines say why
        os.kill(pid, signal.SIGKILL)
    # every line the child wrote precedes the zygote's DEAD line on the same pipe
    while True:
        parts = zygote.next_line().split()
        if take(parts) == "DEAD":
            assert int(parts[1]) == pid
            status = int(parts[2])
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
                f"the appender was not killed but ended with status {status}"
            )
            return in_flight


def expected_node_count(size: int) -> int:
    """Full nodes of a tree of ``size`` leaves: floor(size / 2**level) at each level."""
    count, level_size = 0, size
    while level_size:
        count += level_size
        level_size >>= 1
    return count


def appender_url(url: str) -> str:
    """The URL the appender uses: on PostgreSQL its connections carry their own application_name."""
    if not url.startswith("postgresql"):
        return url
    return f"{url}{'&' if '?' in url else '?'}application_name={APPENDER_APP}"


def wait_for_orphan_backends(store: SqlStore) -> None:
    """PostgreSQL: wait until the killed client's server backend is gone.

    A backend may still be executing the COMMIT its client sent just before the kill; the
    checks below must all see the state after it, not one before and one after.
    """
    if store.engine.dialect.name != "postgresql":
        return
    deadline = time.monotonic() + 30
    while True:
        with store.engine.connect() as conn:
            others = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app"
            ), {"app": APPENDER_APP}).scalar_one()
        if others == 0:
            return
        assert time.monotonic() < deadline, f"{others} backends of the killed appender are still alive"
        time.sleep(0.02)


def check_store(url: str, acked: Acknowledged, in_flight: list[str]) -> tuple[int, bool]:
    """Reopen the store after a kill; assert the three properties of the module docstring.

    Returns the tree size and whether the in-flight batch had committed.
    """
    store = SqlStore(url)
    try:
        wait_for_orphan_backends(store)
        with store.read() as conn:
            if conn.dialect.name == "sqlite":
                assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            size = store.tree_size(conn)
            # 1. every acknowledged record and block is there, where it was acknowledged
            stored = {int(r[0]): str(r[1]) for r in conn.execute(select(t.entries.c.idx, t.entries.c.record_hash))}
            missing = {i: h for i, h in acked.records.items() if stored.get(i) != h}
            assert not missing, f"{len(missing)} acknowledged records lost or changed, first {min(missing)}"
            for height, block_size in acked.blocks.items():
                block = store.block(conn, height)
                assert block is not None and block.header.tree_size == block_size, f"block {height} lost"
            # 2. nothing half-written
            assert len(stored) == size, "entries are not contiguous from 0"
            latest = store.latest_block(conn)
            assert latest is not None and latest.header.tree_size == size, "entries outside any block"
            where = {h: i for i, h in stored.items() if h in set(in_flight)}
            committed = bool(in_flight) and len(where) == len(in_flight)
            assert committed or not where, f"half a batch: {len(where)} of {len(in_flight)} records"
            if committed:
                # the whole batch, as the last block
                assert sorted(where.values()) == list(range(latest.header.first_index, size))
            block_sizes = [b.header.tree_size for b in store.iter_blocks(conn)]
            assert len(block_sizes) == latest.height + 1
            checkpoint_sizes = [s for s, _ in store.iter_checkpoints(conn)]
            assert checkpoint_sizes == block_sizes, "a block without its checkpoint or the reverse"
            nodes = conn.execute(select(func.count()).select_from(t.tree_nodes)).scalar()
            assert nodes == expected_node_count(size), "tree nodes beyond the committed tree"
            nonces = conn.execute(select(func.count()).select_from(t.st_nonces)).scalar()
            assert nonces == size, "derived state does not match the entries"
        # 3. full replay
        report = audit(store)
        assert report.ok, f"audit failed after a kill: {report.first}"
        assert report.tree_size == size
        return size, committed
    finally:
        store.close()


def new_ledger(url: str, keydir: Path) -> None:
    founders = Founders.generate()
    founders.save(keydir)
    ledger = Ledger.open(url, founders.node.identity())
    try:
        ledger.initialise(founders.genesis())
    finally:
        ledger.close()


def crash_loop(url: str, tmp: Path, kills: int, label: str) -> CrashStats:
    seed = _seed()
    print(f"\n[{label}] crash test seed {seed} (CERTLEDGER_CRASH_SEED={seed} repeats it)")
    rng = random.Random(seed)
    keydir = tmp / "keys"
    new_ledger(url, keydir)
    acked = Acknowledged()
    stats = CrashStats()
    zygote = Zygote(appender_url(url), keydir, tmp / "appender.log")
    started = time.monotonic()
    try:
        for i in range(kills):
            before = len(acked.records)
            try:
                in_flight = kill_once(zygote, rng, acked, from_first_ack=i % 2 == 1)
                t0 = time.monotonic()
                _, committed = check_store(url, acked, in_flight)
                stats.seconds_check += time.monotonic() - t0
            except AssertionError as exc:
                raise AssertionError(f"[{label}] kill {i + 1} (seed {seed}): {exc}") from None
            stats.kills += 1
            stats.acks += len(acked.records) - before
            stats.in_flight += bool(in_flight)
            stats.committed_unacked += committed
    finally:
        zygote.close()
    print(f"[{label}] {stats.kills} kills in {time.monotonic() - started:.1f}s "
          f"({stats.seconds_check:.1f}s checking); {stats.acks} records acknowledged; "
          f"{stats.in_flight} kills landed inside submit(), {stats.committed_unacked} of them after the commit")
    return stats


@pytest.mark.slow
def test_kill9_sqlite_appender(tmp_path: Path) -> None:
    """>= 50 SIGKILLs of a SQLite (WAL, synchronous=FULL) appender lose nothing acknowledged."""
    stats = crash_loop(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path, SQLITE_KILLS, "sqlite")
    assert stats.kills == SQLITE_KILLS >= 1
    # the kills really interrupted appending: batches were acknowledged in between, and
    # kills landed while a batch was being submitted
    assert stats.acks > 0
    assert stats.in_flight > 0


@pytest.mark.slow
@pytest.mark.postgres
def test_kill9_postgres_appender(tmp_path: Path, postgres_db_url: str) -> None:  # noqa: F811
    """The same on PostgreSQL: the server survives, the killed client's transaction must vanish."""
    stats = crash_loop(postgres_db_url, tmp_path, POSTGRES_KILLS, "postgres")
    assert stats.kills == POSTGRES_KILLS
    assert stats.acks > 0
    assert stats.in_flight > 0


def test_sqlite_store_is_wal_with_full_sync(tmp_path: Path) -> None:
    """The durability the crash test relies on is what every store connection really uses."""
    store = SqlStore(str(tmp_path / "l.db"))
    try:
        with store.read() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        with store.write() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2
    finally:
        store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        yield request.getfixturevalue("postgres_db_url")


def test_failed_batch_leaves_nothing(any_url: str, tmp_path: Path) -> None:
    """A batch whose transaction fails at its very last insert leaves no trace (the in-process twin)."""
    new_ledger(any_url, tmp_path / "keys")
    founders = Founders.load(tmp_path / "keys")
    ledger = Ledger.open(any_url, founders.node.identity())
    try:
        size = ledger.tree_size()
        # plant the checkpoint row the next 3-record batch will need: its insert comes last in the
        # transaction, after the entries, tree nodes, derived state and block
        with ledger.store.write() as conn:
            conn.execute(t.checkpoints.insert().values(tree_size=size + 3, note="planted"))
        batch = [founders.licence(RecordType.ISSUE, issue_payload(f"LIC-FAIL-{i}")) for i in range(3)]
        with pytest.raises(StorageError):
            ledger.submit(batch)
        with ledger.store.read() as conn:
            assert ledger.store.tree_size(conn) == size
            assert ledger.store.latest_block(conn).height == 0  # type: ignore[union-attr]
            for table in (t.tree_nodes, t.st_nonces):
                assert conn.execute(select(func.count()).select_from(table)).scalar() == (
                    expected_node_count(size) if table is t.tree_nodes else size
                )
            assert conn.execute(select(func.count()).select_from(t.st_licences)).scalar() == 0
        # the in-memory tree frontier forgot the failed batch: a smaller batch appends cleanly
        result = ledger.submit(batch[:2])
        assert [a.index for a in result.accepted] == [size, size + 1]
        assert ledger.root() == result.block.header.tree_root  # type: ignore[union-attr]
    finally:
        ledger.close()
