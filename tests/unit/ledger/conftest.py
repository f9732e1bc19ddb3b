"""Fixtures of the ledger-core tests: keys, a genesis builder, and a fresh ledger per test.

``db_url`` is the one place that names the database backends the ledger tests run
on. Every fixture and test that needs a store goes through it, so adding a backend
adds it everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.records import SignedRecord
from ledger.service import Ledger
from tests.pg import postgres_db_url, postgres_server  # noqa: F401

from .builders import KeyRing, World, build_genesis, open_world

# The backends every ledger test runs on. PostgreSQL is a real server started once per
# session by tests/pg.py (imported here until tests/conftest.py lists it in pytest_plugins).
DB_BACKENDS: list[Any] = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=DB_BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLAlchemy URL of a fresh, empty ledger database for one test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_db_url"))  # a fresh, empty database
    raise AssertionError(f"unknown database backend {request.param!r}")


@pytest.fixture(scope="session")
def keys() -> KeyRing:
    """Named SM2 keys (authorities, agencies, spares) and the node's keys, for the session."""
    return KeyRing()


@pytest.fixture
def genesis_builder(keys: KeyRing) -> Callable[..., SignedRecord]:
    """``genesis_builder(authorities=("auth1",), threshold=1, agencies=(...), signers=None)``."""

    def build(**kw: Any) -> SignedRecord:
        return build_genesis(keys, **kw)

    return build


@pytest.fixture
def make_world(db_url: str, keys: KeyRing) -> Iterator[Callable[..., World]]:
    """``make_world(authorities=("auth1",), threshold=1)``: the test's ledger at ``db_url``."""
    opened: list[World] = []

    def make(**kw: Any) -> World:
        assert not opened, "one ledger per test: db_url is a single database"
        world = open_world(db_url, keys, **kw)
        opened.append(world)
        return world

    yield make
    for world in opened:
        world.ledger.close()


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    """A ledger with the default genesis: one authority, agencies SZ, GZ, PROV, GZAUTH."""
    return make_world()


@pytest.fixture
def ledger(world: World) -> Ledger:
    """The initialised :class:`Ledger` of :func:`world`."""
    return world.ledger
