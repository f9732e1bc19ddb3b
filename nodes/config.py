"""Node configuration: a TOML file in the node's home, overridden by environment.

Precedence (highest first): command-line options, ``CERTLEDGER_*`` environment
variables, ``<home>/certledger.toml``, built-in defaults. The home directory
is ``--home``, else ``$CERTLEDGER_HOME``, else ``./.certledger``.

    [ledger]
    database = "sqlite:////abs/path/ledger.db"   # or postgresql://user@host/db
    origin   = "gd.certledger.example/log"

    [node]
    id   = "node-1"
    keys = "keys"                                 # relative to home

    [api]
    host = "127.0.0.1"
    port = 8600
    public_url = "http://127.0.0.1:8600"

    [federation]
    registry = "federation.toml"                  # other provinces; relative to home
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from signing.errors import InvalidInputError

CONFIG_FILE = "certledger.toml"
DEFAULT_HOME = ".certledger"

#: environment variable -> (section, key)
ENV_OVERRIDES = {
    "CERTLEDGER_DATABASE": ("ledger", "database"),
    "CERTLEDGER_ORIGIN": ("ledger", "origin"),
    "CERTLEDGER_NODE_ID": ("node", "id"),
    "CERTLEDGER_API_HOST": ("api", "host"),
    "CERTLEDGER_API_PORT": ("api", "port"),
    "CERTLEDGER_PUBLIC_URL": ("api", "public_url"),
}


@dataclass
class NodeConfig:
    home: Path
    database: str = ""
    origin: str = ""
    node_id: str = "node-1"
    keys_dir: str = "keys"
    api_host: str = "127.0.0.1"
    api_port: int = 8600
    public_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def keys_path(self) -> Path:
        return self.home / self.keys_dir

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILE

    def default_database(self) -> str:
        return f"sqlite:///{(self.home / 'ledger.db').resolve()}"

    def to_toml(self) -> dict[str, Any]:
        return self.extra | {
            "ledger": {"database": self.database or self.default_database(), "origin": self.origin},
            "node": {"id": self.node_id, "keys": self.keys_dir},
            "api": {
                "host": self.api_host,
                "port": self.api_port,
                "public_url": self.public_url or f"http://{self.api_host}:{self.api_port}",
            },
        }

    def save(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_path.write_bytes(tomli_w.dumps(self.to_toml()).encode())


def resolve_home(home: str | Path | None) -> Path:
    return Path(home or os.environ.get("CERTLEDGER_HOME") or DEFAULT_HOME)


#: the sections and keys of certledger.toml: anything else is a typo (``databse``) that would
#: otherwise fall back to a default without a word
KNOWN_KEYS: dict[str, frozenset[str]] = {
    "ledger": frozenset({"database", "origin"}),
    "node": frozenset({"id", "keys"}),
    "api": frozenset({"host", "port", "public_url"}),
    "federation": frozenset({"registry"}),
}


def _check_known(cfg_file: Path, data: dict[str, Any]) -> None:
    def unknown(what: str, name: str, known: Iterable[str]) -> InvalidInputError:
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(known))})"
        return InvalidInputError(f"{cfg_file}: unknown {what} {name!r}{hint}", reason="config.invalid")

    for section, values in data.items():
        if section not in KNOWN_KEYS:
            raise unknown("section", section, KNOWN_KEYS)
        if not isinstance(values, dict):
            raise InvalidInputError(f"{cfg_file}: [{section}] must be a table", reason="config.invalid")
        for key, value in values.items():
            if key not in KNOWN_KEYS[section]:
                raise unknown(f"key in [{section}]:", key, KNOWN_KEYS[section])
            if section == "federation" and not isinstance(value, str):
                raise InvalidInputError(f"{cfg_file}: federation.{key} must be a string", reason="config.invalid")


def sqlite_file(database: str) -> Path | None:
    """The SQLite file ``database`` names (a bare path or a ``sqlite://`` URL), or None for other stores."""
    if not database:
        return None
    if "://" not in database:
        return Path(database)
    try:
        url = make_url(database)
    except ArgumentError:
        return None  # refused with its own reason where it is opened
    name = url.database
    if url.get_backend_name() == "sqlite" and name and name != ":memory:":
        return Path(name)
    return None


def resolve_database(database: str, home: Path) -> str:
    """``database`` with a relative SQLite path made the home's, wherever the command runs from.

    A bare path (``ledger.db``) and a relative SQLite URL (``sqlite:///ledger.db``) both name
    a file in the home; absolute paths and other URLs are left as they are.
    """
    file = sqlite_file(database)
    if file is None or file.is_absolute():
        return database
    if "://" not in database:
        return str(home / file)
    return make_url(database).set(database=str(home / file)).render_as_string(hide_password=False)


def load_config(home: str | Path | None, *, must_exist: bool = True) -> NodeConfig:
    """The configuration of the node at ``home``, with environment overrides applied."""
    path = resolve_home(home)
    data: dict[str, Any] = {}
    cfg_file = path / CONFIG_FILE
    if cfg_file.exists():
        try:
            data = tomllib.loads(cfg_file.read_text("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{cfg_file}: not valid TOML ({exc})", reason="config.invalid") from None
    elif must_exist:
        raise InvalidInputError(
            f"no certledger node at {path} (run `certledger init` or set --home / CERTLEDGER_HOME)",
            reason="config.missing",
        )
    _check_known(cfg_file, data)
    for section in ("ledger", "node", "api"):
        if not isinstance(data.setdefault(section, {}), dict):
            raise InvalidInputError(f"{cfg_file}: [{section}] must be a table", reason="config.invalid")
    for env, (section, key) in ENV_OVERRIDES.items():
        if env in os.environ:
            data[section][key] = os.environ[env]
    ledger, node, api = data["ledger"], data["node"], data["api"]
    for section, values, keys in (
        ("ledger", ledger, ("database", "origin")),
        ("node", node, ("id", "keys")),
        ("api", api, ("host", "public_url")),
    ):
        for key in keys:
            if key in values and not isinstance(values[key], str):
                raise InvalidInputError(f"{section}.{key} must be a string", reason="config.invalid")
    port_value = api.get("port", 8600)
    try:
        if isinstance(port_value, bool) or not isinstance(port_value, (int, str)):
            raise ValueError
        port = int(port_value)
    except ValueError:
        raise InvalidInputError(f"api.port must be an integer, not {port_value!r}", reason="config.invalid") from None
    if not 0 < port < 65536:
        raise InvalidInputError(f"api.port must be a port number (1-65535), not {port}", reason="config.invalid")
    database = resolve_database(str(ledger.get("database", "")), path)
    cfg = NodeConfig(
        home=path,
        database=database,
        origin=str(ledger.get("origin", "")),
        node_id=str(node.get("id", "node-1")),
        keys_dir=str(node.get("keys", "keys")),
        api_host=str(api.get("host", "127.0.0.1")),
        api_port=port,
        public_url=str(api.get("public_url", "")),
        extra={k: v for k, v in data.items() if k not in ("ledger", "node", "api")},
    )
    if not cfg.database:
        cfg.database = cfg.default_database()
    return cfg
