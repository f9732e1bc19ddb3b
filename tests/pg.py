"""A throw-away PostgreSQL server for the test suite (Debian's ``postgresql`` package).

The server is a real ``postgres`` started from Debian's binaries
(``/usr/lib/postgresql/<version>/bin``): ``initdb`` into a fresh temporary
directory, listening on 127.0.0.1 on a free port with its unix socket inside
that directory, trust authentication for the one superuser ``certledger``.
PostgreSQL refuses to run as root, so when the tests run as root the data
directory belongs to a dedicated system user (``certledger-test``, created
with ``useradd`` if missing) and ``initdb``/``pg_ctl`` run through ``runuser``.

Fixtures (import them into a test module or conftest, or list this module in
``pytest_plugins``):

* ``postgres_server`` (session): the running :class:`PostgresServer`; stopped
  with ``pg_ctl stop -m fast`` at the end of the session, also when tests fail.
* ``postgres_url`` (session): SQLAlchemy URL of the session's database
  ``postgresql://certledger@127.0.0.1:<port>/certledger``.
* ``postgres_db_url`` (function): URL of a fresh, empty namespace for one test: its own
  schema in the session database, selected through the URL
  (``?options=-csearch_path%3D<schema>``), dropped after the test. A schema costs
  milliseconds where ``CREATE``/``DROP DATABASE`` cost about a second each on a busy
  2-core machine, and the store never names a schema, so the two are equivalent to it.
  :meth:`PostgresServer.create_database` makes a real database when a test needs one.

Without the binaries the fixtures fail with a message naming the Debian
package, unless ``CERTLEDGER_ALLOW_SKIP=1``, in which case they skip.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

#: the OS user that owns the cluster when the tests run as root
TEST_OS_USER = "certledger-test"
#: the PostgreSQL superuser the tests connect as
DB_SUPERUSER = "certledger"
SESSION_DB = "certledger"
_PG_TOOLS = ("initdb", "pg_ctl", "postgres")
_START_TRIES = 3


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed."""


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    Order: ``$CERTLEDGER_PG_BINDIR``; the newest ``/usr/lib/postgresql/<ver>/bin``
    (Debian keeps the server tools there, off ``PATH``); ``initdb`` found on
    ``PATH`` with its symlinks resolved (on this machine ``/usr/local/bin/initdb``
    and ``pg_ctl`` are links into Debian's directory).
    """
    candidates: list[Path] = []
    env = os.environ.get("CERTLEDGER_PG_BINDIR")
    if env:
        candidates.append(Path(env))

    def version_key(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", p.parent.name))

    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version_key, reverse=True)
    candidates.extend(debian)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for cand in candidates:
        if all(os.access(cand / tool, os.X_OK) for tool in _PG_TOOLS):
            return cand
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install the Debian package "
        "`postgresql` (apt-get install postgresql) or set CERTLEDGER_PG_BINDIR"
    )


def _ensure_os_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    proc = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", name],
        capture_output=True, text=True, check=False,
    )
    # exit 9: created meanwhile by another process (e.g. a parallel pytest worker)
    if proc.returncode not in (0, 9):
        raise RuntimeError(f"useradd {name} failed: {proc.stderr.strip()}")
    return pwd.getpwnam(name)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in a temporary directory; :meth:`start` then :meth:`stop`."""

    bindir: Path
    base: Path
    port: int = 0
    os_user: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    running: bool = False

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "socket"

    @property
    def logfile(self) -> Path:
        return self.base / "postgres.log"

    @classmethod
    def create(cls, settings: dict[str, str] | None = None) -> PostgresServer:
        """Find the binaries, make the directory (owned by the right OS user), run ``initdb``."""
        bindir = find_bindir()
        os_user: str | None = None
        # mkdtemp under /tmp, not pytest's tmp_path: that one sits under a root-only (0700)
        # directory the unprivileged server user could not enter
        base = Path(tempfile.mkdtemp(prefix="certledger-pg-"))
        if os.geteuid() == 0:
            os_user = TEST_OS_USER
            pw = _ensure_os_user(os_user)
            os.chown(base, pw.pw_uid, pw.pw_gid)
        server = cls(bindir=bindir, base=base, os_user=os_user, settings=dict(settings or {}))
        server._as_owner(["mkdir", "-m", "0700", str(server.socket_dir)])
        server._as_owner(
            [str(bindir / "initdb"), "-D", str(server.datadir), "-U", DB_SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--no-locale", "--no-sync"]
        )
        return server

    def _as_owner(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        cmd = list(argv) if self.os_user is None else ["runuser", "-u", self.os_user, "--", *argv]
        # cwd: the server user may not be allowed into the caller's working directory
        proc = subprocess.run(cmd, cwd=self.base, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed ({proc.returncode}): {proc.stderr.strip()}"
                               f"\n{self.log_tail()}")
        return proc

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.logfile.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> None:
        """``pg_ctl start -w`` on a free 127.0.0.1 port (retried if another process took the port)."""
        last = ""
        for _ in range(_START_TRIES):
            self.port = _free_port()
            options = [
                "-c", "listen_addresses=127.0.0.1",
                "-c", f"port={self.port}",
                "-c", f"unix_socket_directories={self.socket_dir}",
                "-c", "max_connections=200",
            ]
            for key, value in self.settings.items():
                options += ["-c", f"{key}={value}"]
            proc = self._as_owner(
                [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile), "-w",
                 "-t", "60", "-o", " ".join(options), "start"],
                check=False,
            )
            if proc.returncode == 0:
                self.running = True
                atexit.register(self.stop)
                self._admin(f'CREATE DATABASE "{SESSION_DB}" TEMPLATE template0')
                return
            last = f"{proc.stderr.strip()}\n{self.log_tail()}"
        raise RuntimeError(f"PostgreSQL did not start:\n{last}")

    def stop(self) -> None:
        """``pg_ctl stop -m fast``; idempotent. The directory is removed afterwards."""
        if self.running:
            self._as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"],
                           check=False)
            self.running = False
        shutil.rmtree(self.base, ignore_errors=True)

    def url(self, dbname: str = SESSION_DB) -> str:
        """SQLAlchemy URL (``postgresql://``; certledger selects the psycopg 3 driver itself)."""
        return f"postgresql://{DB_SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def dsn(self, dbname: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={DB_SUPERUSER} dbname={dbname}"

    def _admin(self, sql: str, dbname: str = "postgres") -> None:
        # CREATE/DROP DATABASE cannot run inside a transaction block: autocommit
        with psycopg.connect(self.dsn(dbname), autocommit=True) as conn:
            conn.execute(sql.encode())

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        name = _plain_name(name)
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def create_schema(self, name: str | None = None) -> tuple[str, str]:
        """A new empty schema in the session database; returns (name, URL that works inside it)."""
        name = _plain_name(name)
        self._admin(f'CREATE SCHEMA "{name}"', SESSION_DB)
        # libpq "options" sets search_path for every connection of the engine: tables, the
        # trigger function and alembic_version are all created in, and read from, this schema
        return name, f"{self.url()}?options=-csearch_path%3D{name}"

    def drop_schema(self, name: str) -> None:
        # a lock timeout: a connection a test leaked must not hang the session (the whole
        # cluster is deleted at the end anyway)
        self._admin(f"SET lock_timeout = '5s'; DROP SCHEMA IF EXISTS \"{name}\" CASCADE", SESSION_DB)


def _plain_name(name: str | None) -> str:
    name = name or f"t_{uuid.uuid4().hex[:16]}"
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


def _unavailable(exc: Exception) -> None:
    if os.environ.get("CERTLEDGER_ALLOW_SKIP") == "1":
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    pytest.fail(f"{exc} (set CERTLEDGER_ALLOW_SKIP=1 to skip PostgreSQL tests instead)", pytrace=False)


@dataclass
class _Shared:
    """One server per process. A test module that imports the fixtures (instead of a conftest
    listing this module in ``pytest_plugins``) gets its own session-scoped fixture definition;
    they all share this server, and the last one torn down stops it."""

    server: PostgresServer | None = None
    users: int = 0


_SHARED = _Shared()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL server for the whole session; always stopped at the end."""
    if _SHARED.server is None:
        try:
            server = PostgresServer.create()
        except PostgresUnavailable as exc:
            _unavailable(exc)
            raise  # unreachable: _unavailable skips or fails
        try:
            server.start()
        except BaseException:
            server.stop()
            raise
        _SHARED.server = server
    _SHARED.users += 1
    try:
        yield _SHARED.server
    finally:
        _SHARED.users -= 1
        if _SHARED.users == 0:
            _SHARED.server.stop()
            _SHARED.server = None


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of the session's database (shared by every test that asks for it)."""
    return postgres_server.url()


@pytest.fixture
def postgres_db_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a fresh, empty ledger database (its own schema), dropped after the test."""
    name, url = postgres_server.create_schema()
    yield url
    with contextlib.suppress(psycopg.Error):
        postgres_server.drop_schema(name)


__all__ = [
    "PostgresServer",
    "PostgresUnavailable",
    "find_bindir",
    "postgres_db_url",
    "postgres_server",
    "postgres_url",
]
