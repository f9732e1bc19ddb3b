"""``SqlStore.commit_counter``: the API re-reads tree sizes only when it moves, so it must move on every commit."""

from __future__ import annotations

from pathlib import Path

from ledger.store.sql import SqlStore


def test_counter_moves_on_commits_from_this_and_other_processes_stores(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    reader, writer = SqlStore(url), SqlStore(url)  # two stores: as two processes over one file
    try:
        first = reader.commit_counter()
        assert first is not None
        assert reader.commit_counter() == first  # nothing committed: unchanged
        with writer.write() as conn:
            writer.add_evidence(conn, "test", "2026-01-01T00:00:00+00:00", "{}")
        after_other = reader.commit_counter()
        assert after_other != first
        with reader.write() as conn:  # the reader's own engine commits too (the single-process server)
            reader.add_evidence(conn, "test", "2026-01-01T00:00:01+00:00", "{}")
        assert reader.commit_counter() != after_other
    finally:
        reader.close()
        writer.close()


def test_no_counter_for_in_memory_sqlite() -> None:
    store = SqlStore("sqlite://")
    try:
        assert store.commit_counter() is None
    finally:
        store.close()
