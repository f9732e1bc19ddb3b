"""node.toml as `certledger node run` reads it: the federation registry setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodes.node_runner import NodeRunConfig
from nodes.server import federation_verifier
from signing.errors import InvalidInputError

BASE = """
[node]
id = "node-1"
home = "."

[ledger]
genesis = "../genesis.json"

[cluster]
etcd = ["http://127.0.0.1:23790"]
"""


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "node-1" / "node.toml"
    path.parent.mkdir(parents=True)
    path.write_text(BASE + extra, "utf-8")
    return path


def test_no_registry_means_no_federation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CERTLEDGER_FEDERATION_REGISTRY", raising=False)
    cfg = NodeRunConfig.load(_config(tmp_path))
    assert cfg.federation_registry is None
    assert federation_verifier(cfg.federation_registry, cfg.config_dir, cfg.home) is None


def test_the_registry_is_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CERTLEDGER_FEDERATION_REGISTRY", raising=False)
    cfg = NodeRunConfig.load(_config(tmp_path, '\n[federation]\nregistry = "../federation.toml"\n'))
    assert cfg.federation_registry == "../federation.toml"
    # it is read, from next to node-1/, and a missing file is the registry's error, not a crash
    with pytest.raises(InvalidInputError) as caught:
        federation_verifier(cfg.federation_registry, cfg.config_dir, cfg.home)
    assert caught.value.reason == "federation.registry"
    assert str(tmp_path / "node-1" / ".." / "federation.toml") in str(caught.value)


def test_the_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty.toml").write_text("", "utf-8")
    monkeypatch.setenv("CERTLEDGER_FEDERATION_REGISTRY", str(tmp_path / "empty.toml"))
    cfg = NodeRunConfig.load(_config(tmp_path, '\n[federation]\nregistry = "missing.toml"\n'))
    verifier = federation_verifier(cfg.federation_registry, cfg.config_dir, cfg.home)
    assert verifier is not None and verifier.registry.provinces == []


def test_a_registry_that_is_not_text_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as caught:
        NodeRunConfig.load(_config(tmp_path, "\n[federation]\nregistry = 5\n"))
    assert caught.value.reason == "config.invalid"
