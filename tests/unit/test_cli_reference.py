"""docs/cli.md is generated from the commands' ``--help``: it must be what they print now."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_cli_reference_is_current() -> None:
    env = {**os.environ, "COLUMNS": "37"}  # the page must not depend on the terminal
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_cli_reference.py"), "--check"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_the_reference_covers_every_command() -> None:
    text = (ROOT / "docs" / "cli.md").read_text("utf-8")
    for path in ("certledger record new", "certledger node run", "certledger cluster status", "certledger verify-sig"):
        assert f"\n## {path}\n" in text, path
