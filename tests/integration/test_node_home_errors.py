"""A node home's configuration and database are checked before they are used.

Only ``certledger init`` creates a ledger. Every other command refuses a database that is
missing, empty, or some other application's, instead of creating or migrating one and then
answering "not found" from it; a bare database path is the home's, wherever the command runs
from. A config file of the wrong shape, an unsupported database URL or a bad log level is a
one-line error with ``config.invalid``, never an internal error.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ORIGIN = "gd.certledger.example/licences"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A node home with a config file (no ledger yet: nothing was initialised)."""
    h = tmp_path / "home"
    h.mkdir()
    (h / "certledger.toml").write_text(f'[ledger]\norigin = "{ORIGIN}"\ndatabase = "ledger.db"\n', "utf-8")
    return h


def _run(run_cli: Callable[..., Any], home: Path, *args: str, **env: str) -> Any:
    return run_cli(*args, env={"CERTLEDGER_HOME": str(home), **env}, cwd=home.parent)


@pytest.mark.parametrize("command", [("checkpoint",), ("status", "LIC-1"), ("history", "LIC-1")])
def test_a_missing_database_is_refused_not_created(
    run_cli: Callable[..., Any], home: Path, command: tuple[str, ...]
) -> None:
    _run(run_cli, home, *command).assert_error("store.missing")
    assert not (home / "ledger.db").exists()
    assert not (home.parent / "ledger.db").exists()  # a bare path is the home's, not the working directory's


def test_an_empty_or_foreign_database_is_refused_not_migrated(run_cli: Callable[..., Any], home: Path) -> None:
    (home / "ledger.db").write_bytes(b"")
    _run(run_cli, home, "checkpoint").assert_error("store.not_a_ledger")
    assert (home / "ledger.db").stat().st_size == 0
    (home / "ledger.db").unlink()
    with sqlite3.connect(home / "ledger.db") as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    _run(run_cli, home, "status", "LIC-1").assert_error("store.not_a_ledger")
    with sqlite3.connect(home / "ledger.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"invoices"}  # nothing of ours was added to it


@pytest.mark.parametrize(
    "config",
    [
        'ledger = "x"\n',
        "ledger = 5\n",
        f'[ledger]\norigin = "{ORIGIN}"\ndatabase = 5\n',
        "[api]\nport = [1]\n",
        "[api]\nport = 70000\n",
        '[api]\nport = "eighty"\n',
        "[node]\nid = true\n",
        # typos: a misspelt key or section fell back to a default without a word
        f'[ledger]\norigin = "{ORIGIN}"\ndatabse = "other.db"\n',
        "[ledgr]\n",
        "[api]\nprot = 9000\n",
        # [federation] registry of the wrong type was an internal error in `serve`
        "[federation]\nregistry = 5\n",
        'federation = "x"\n',
    ],
)
def test_a_config_of_the_wrong_shape_is_one_line(run_cli: Callable[..., Any], home: Path, config: str) -> None:
    (home / "certledger.toml").write_text(config, "utf-8")
    _run(run_cli, home, "checkpoint").assert_error("config.invalid")


@pytest.mark.parametrize("url", ["garbage://", "mysql://user@host/db", "postgresql+nosuchdriver://h/db"])
def test_an_unsupported_database_url_is_one_line(run_cli: Callable[..., Any], home: Path, url: str) -> None:
    _run(run_cli, home, "checkpoint", CERTLEDGER_DATABASE=url).assert_error("config.invalid")


@pytest.mark.parametrize(("args", "env"), [(("--log-level", "BOGUS"), {}), ((), {"CERTLEDGER_LOG_LEVEL": "loud"})])
def test_a_bad_log_level_is_refused(
    run_cli: Callable[..., Any], home: Path, args: tuple[str, ...], env: dict[str, str]
) -> None:
    _run(run_cli, home, *args, "checkpoint", **env).assert_error("config.invalid")


def _ok(result: Any) -> None:
    assert result.rc == 0, result.stderr


def test_init_takes_the_database_from_the_environment_and_resolves_a_bare_path_in_the_home(
    run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    # init reads the database as every later command does: --database, else CERTLEDGER_DATABASE,
    # a bare path relative to the home (it used to ignore the variable and resolve against the cwd)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"CERTLEDGER_PASSPHRASE": "init test 口令"}
    by_env = tmp_path / "by-env"
    in_db = tmp_path / "db" / "from-env.db"
    in_db.parent.mkdir()
    _ok(
        run_cli(
            "init", "--home", by_env, "--origin", ORIGIN, env={**env, "CERTLEDGER_DATABASE": str(in_db)}, cwd=elsewhere
        )
    )
    assert in_db.exists() and not (by_env / "ledger.db").exists()
    _ok(run_cli("checkpoint", "--home", by_env, env={"CERTLEDGER_DATABASE": str(in_db)}, cwd=elsewhere))

    bare = tmp_path / "bare"
    _ok(run_cli("init", "--home", bare, "--origin", ORIGIN, "--database", "rel.db", env=env, cwd=elsewhere))
    assert (bare / "rel.db").exists() and not (elsewhere / "rel.db").exists()
    _ok(run_cli("checkpoint", "--home", bare, cwd=elsewhere))


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("--origin", "bad origin"), "record.malformed"),
        (("--origin", ORIGIN, "--time-window", "-5"), None),
        (("--origin", ORIGIN, "--database", "/nonexistent/dir/x.db"), None),
    ],
)
def test_a_failed_init_leaves_nothing_behind(
    run_cli: Callable[..., Any], tmp_path: Path, args: tuple[str, ...], reason: str | None
) -> None:
    """init is all or nothing: no keys, config or database survive a refusal, so a corrected retry works."""
    fresh = tmp_path / "fresh"
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("the operator's own file", "utf-8")
    for home in (fresh, kept):
        failed = run_cli("init", *args, env={"CERTLEDGER_HOME": str(home), "CERTLEDGER_PASSPHRASE": "pw"}, cwd=tmp_path)
        assert failed.rc != 0 and "Traceback" not in failed.stderr, failed.stderr
        if reason is not None:
            failed.assert_error(reason)
    assert not fresh.exists()
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]
    retry = run_cli("init", "--origin", ORIGIN, env={"CERTLEDGER_HOME": str(kept), "CERTLEDGER_PASSPHRASE": "pw"})
    assert retry.rc == 0, retry.stderr
    assert (kept / "certledger.toml").exists() and (kept / "notes.txt").exists()


def test_a_typo_is_named_with_the_key_it_resembles(run_cli: Callable[..., Any], home: Path) -> None:
    (home / "certledger.toml").write_text(f'[ledger]\norigin = "{ORIGIN}"\ndatabse = "x.db"\n', "utf-8")
    result = _run(run_cli, home, "checkpoint")
    result.assert_error("config.invalid")
    assert "'databse'" in result.stderr and "did you mean 'database'" in result.stderr


def test_overrides_that_contradict_the_node_are_refused(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    """CERTLEDGER_NODE_ID / _ORIGIN naming another node or ledger than the home holds: refused, not reported."""
    home = tmp_path / "node"
    env = {"CERTLEDGER_HOME": str(home), "CERTLEDGER_PASSPHRASE": "pw"}
    _ok(run_cli("init", "--origin", ORIGIN, env=env))
    _ok(run_cli("checkpoint", env=env))
    wrong_id = run_cli("serve", "--port", "1", env={**env, "CERTLEDGER_NODE_ID": "bogus-node"})
    wrong_id.assert_error("config.invalid")
    assert "bogus-node" in wrong_id.stderr
    run_cli("checkpoint", env={**env, "CERTLEDGER_ORIGIN": "wrong/origin"}).assert_error("config.invalid")


def test_serve_checks_a_multi_worker_setup_before_it_starts_workers(run_cli: Callable[..., Any], home: Path) -> None:
    """A missing database used to crash every worker at start-up, respawned for ever, the command never ending."""
    result = _run(run_cli, home, "serve", "--read-only", "--workers", "2", "--port", "18649")
    result.assert_error("store.missing")


@pytest.mark.parametrize("args", [("--port", "0"), ("--host", "")])
def test_serve_refuses_an_empty_host_or_port_zero(
    run_cli: Callable[..., Any], home: Path, args: tuple[str, ...]
) -> None:
    result = _run(run_cli, home, "serve", *args)
    assert result.rc == 2 and "Traceback" not in result.stderr, result.stderr


def test_hostile_arguments_and_files_are_one_line_errors_not_internal(
    run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    """Each ended in `internal error` (exit 70) before: non-UTF-8 bytes, odd URLs, state files of another shape."""
    home = tmp_path / "node"
    env = {"CERTLEDGER_HOME": str(home), "CERTLEDGER_PASSPHRASE": "pw"}
    _ok(run_cli("init", "--origin", ORIGIN, env=env))
    _ok(run_cli("genesis", "--out", tmp_path / "genesis.json", env=env))
    _ok(run_cli("keygen", "--out", tmp_path / "k.pem", "--no-encrypt"))
    (tmp_path / "memory.json").write_text("[]", "utf-8")
    (tmp_path / "cluster").mkdir()
    (tmp_path / "cluster" / "state.json").write_text("not json", "utf-8")
    genesis, memory = str(tmp_path / "genesis.json"), str(tmp_path / "memory.json")
    cases: list[tuple[tuple[str, ...], dict[str, str], str]] = [
        # a byte that is not UTF-8 reaches Python as a lone surrogate
        (("status", "LIC-\udcff"), {}, "input.invalid"),
        (("checkpoint",), {"CERTLEDGER_ORIGIN": "bad\udcff"}, "config.invalid"),  # not the ledger's origin
        (("checkpoint",), {"CERTLEDGER_LOG_FORMAT": "xml"}, "config.invalid"),
        (("remote", "checkpoint", "--url", "http://[::1", "--genesis", genesis), {}, "remote.url"),
        (
            ("remote", "checkpoint", "--url", "http://127.0.0.1:1", "--genesis", genesis, "--state", memory),
            {},
            "client.state",
        ),
        (("cluster", "status", "--dir", str(tmp_path / "cluster")), {}, "cluster.state"),
        (
            (
                "cert",
                "issue",
                "--role",
                "root",
                "--key",
                str(tmp_path / "k.pem"),
                "--org",
                "t",
                "--cn",
                "r",
                "--out",
                str(tmp_path / "r.pem"),
                "--not-before",
                "9999-12-01T00:00:00",
            ),
            {},
            "cert.validity",
        ),
    ]
    for args, extra, reason in cases:
        result = run_cli(*args, env={**env, **extra}, cwd=tmp_path)
        assert result.rc != 70, (args, result.stderr)
        result.assert_error(reason)


def test_agency_add_takes_a_certificate_as_its_help_says(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    home = tmp_path / "node"
    env = {"CERTLEDGER_HOME": str(home), "CERTLEDGER_PASSPHRASE": "pw"}
    _ok(run_cli("init", "--origin", ORIGIN, env=env))
    for args in (
        ("keygen", "--out", "root-key.pem", "--no-encrypt"),
        ("keygen", "--out", "agency.pem", "--no-encrypt"),
        (
            "cert",
            "issue",
            "--role",
            "root",
            "--key",
            "root-key.pem",
            "--org",
            "省数据局",
            "--cn",
            "root",
            "--out",
            "root.pem",
        ),
        (
            "cert",
            "issue",
            "--role",
            "agency",
            "--ca-cert",
            "root.pem",
            "--ca-key",
            "root-key.pem",
            "--key",
            "agency.pub.pem",
            "--org",
            "深圳市市场监督管理局",
            "--credit-code",
            "11440300MB2C54301Y",
            "--cn",
            "深圳市市场监督管理局",
            "--out",
            "agency.crt",
        ),
    ):
        _ok(run_cli(*args, env=env, cwd=tmp_path))
    added = run_cli(
        "agency",
        "add",
        "--id",
        "11440300MB2C54301Y",
        "--name",
        "深圳市市场监督管理局",
        "--regions",
        "4403",
        "--types",
        "1001",
        "--key",
        "agency.crt",
        "--json",
        env=env,
        cwd=tmp_path,
    )
    assert added.rc == 0, added.stderr
    listed = run_cli("agency", "list", "--json", env=env, cwd=tmp_path)
    assert listed.rc == 0 and "11440300MB2C54301Y" in listed.text, listed.stderr


def test_a_relative_sqlite_url_is_the_homes_as_a_bare_path_is(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    """`init --database sqlite:///rel.db` was stored as given: relative to wherever the next command ran."""
    home, elsewhere = tmp_path / "node", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"CERTLEDGER_HOME": str(home), "CERTLEDGER_PASSPHRASE": "pw"}
    _ok(run_cli("init", "--origin", ORIGIN, "--database", "sqlite:///rel.db", env=env, cwd=elsewhere))
    assert (home / "rel.db").exists() and not (elsewhere / "rel.db").exists()
    _ok(run_cli("checkpoint", env=env, cwd=tmp_path))  # from another directory: the same ledger
