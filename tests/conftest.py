"""Fixtures shared by the whole test suite.

External tools (the ``openssl`` CLI, node with the npm package sm-crypto) are
required, not optional: a missing tool FAILS the test with a message saying what to
install, so that CI can never go green by skipping the interop checks. Set
``CERTLEDGER_ALLOW_SKIP=1`` to turn those failures into skips on a machine where
you knowingly lack a tool.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import pytest

from signing.sm2 import SM2PrivateKey

# the session PostgreSQL server (tests/pg.py) is shared by every module that asks for it
pytest_plugins = ["tests.pg"]

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
VECTORS_DIR = TESTS_DIR / "vectors"
JS_DIR = TESTS_DIR / "js"

#: a passphrase with a space and non-ASCII text, to catch quoting and encoding slips
TEST_PASSPHRASE = "correct horse 电池 staple".encode()


def missing_tool(what: str, how: str) -> NoReturn:
    """Fail (or, with CERTLEDGER_ALLOW_SKIP=1, skip) because an external tool is absent."""
    message = f"{what} is required for this test but is not available: {how}"
    if os.environ.get("CERTLEDGER_ALLOW_SKIP") == "1":
        pytest.skip(message)
    pytest.fail(message + " (set CERTLEDGER_ALLOW_SKIP=1 to skip instead)", pytrace=False)


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    """tests/vectors/ (test modules that parametrize over vectors read it at import time)."""
    return VECTORS_DIR


# -- the certledger console script -----------------------------------------------------------


class CliResult(NamedTuple):
    """Outcome of one ``certledger`` run; unpacks as ``rc, stdout, stderr``."""

    rc: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8")

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    def assert_error(self, reason: str | None = None, rc: int | None = None) -> None:
        """The CLI error contract: non-zero exit, one stderr line ending in [reason], no traceback."""
        assert self.rc != 0, f"expected failure, got rc=0 (stdout={self.stdout[:200]!r})"
        if rc is not None:
            assert self.rc == rc, f"exit code {self.rc} != {rc}: {self.stderr!r}"
        lines = self.stderr.splitlines()
        assert len(lines) == 1, f"expected one stderr line, got {len(lines)}: {self.stderr!r}"
        assert "Traceback" not in self.stderr
        assert lines[0].startswith("certledger: error: "), lines[0]
        if reason is not None:
            assert lines[0].endswith(f"[{reason}]"), f"reason {reason!r} not in {lines[0]!r}"


RunCli = Callable[..., CliResult]


def _console_script() -> str:
    # the script next to the interpreter running the tests is the one installed from
    # this checkout; PATH may hold another
    beside = Path(sys.executable).with_name("certledger")
    if beside.exists():
        return str(beside)
    found = shutil.which("certledger")
    if found is None:
        pytest.fail("the certledger console script is not installed (pip install -e .)", pytrace=False)
    return found


def _clean_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CERTLEDGER_PASSPHRASE", "CERTLEDGER_DEBUG", "CERTLEDGER_SM2_BACKEND")
    }
    env.update(extra or {})
    return env


@pytest.fixture(scope="session")
def run_cli() -> RunCli:
    """Run the installed ``certledger`` console script in a subprocess.

    ``run_cli(*args, input=b"...", env={...}, cwd=path)`` returns a :class:`CliResult`.
    The environment is the test's minus any CERTLEDGER_PASSPHRASE / _DEBUG /
    _SM2_BACKEND, plus ``env``.
    """
    script = _console_script()

    def run(
        *args: str | os.PathLike[str],
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 60,
    ) -> CliResult:
        proc = subprocess.run(
            [script, *map(str, args)],
            input=input if input is not None else b"",
            capture_output=True,
            env=_clean_env(env),
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))

    return run


# -- key files ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyFiles:
    """An SM2 key and its files: encrypted PKCS#8, plain PKCS#8, SPKI and passphrase."""

    key: SM2PrivateKey
    passphrase: bytes
    private_pem: Path
    plain_private_pem: Path
    public_pem: Path
    passphrase_file: Path


def write_key_files(directory: Path, key: SM2PrivateKey, passphrase: bytes = TEST_PASSPHRASE) -> KeyFiles:
    """Write ``key`` as the files of :class:`KeyFiles` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = KeyFiles(
        key=key,
        passphrase=passphrase,
        private_pem=directory / "key.pem",
        plain_private_pem=directory / "key.plain.pem",
        public_pem=directory / "key.pub.pem",
        passphrase_file=directory / "passphrase.txt",
    )
    files.private_pem.write_bytes(key.to_pem(passphrase))
    files.plain_private_pem.write_bytes(key.to_pem(None))
    files.public_pem.write_bytes(key.public_key.to_pem())
    files.passphrase_file.write_bytes(passphrase + b"\n")
    return files


@pytest.fixture(scope="session")
def make_key_files() -> Callable[..., KeyFiles]:
    """``make_key_files(directory, key, passphrase=TEST_PASSPHRASE)`` writes a key's files."""
    return write_key_files


@pytest.fixture(scope="session")
def sm2_key_files(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    """One SM2 key for the session (PBKDF2 at 200k iterations is too slow to repeat)."""
    return write_key_files(tmp_path_factory.mktemp("sm2key"), SM2PrivateKey.generate())


# -- openssl CLI --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def openssl_bin() -> str:
    """Path of an ``openssl`` CLI >= 3.0 (pkeyutl -digest and distid need 3.0)."""
    path = shutil.which("openssl")
    if path is None:
        missing_tool("the openssl CLI (>= 3.0)", "apt-get install openssl")
    out = subprocess.run([path, "version"], capture_output=True, text=True, check=False).stdout
    m = re.match(r"OpenSSL (\d+)\.(\d+)", out)
    if m is None or (int(m.group(1)), int(m.group(2))) < (3, 0):
        missing_tool("the openssl CLI (>= 3.0)", f"found {out.strip()!r}")
    return path


RunOpenssl = Callable[..., "subprocess.CompletedProcess[bytes]"]


@pytest.fixture(scope="session")
def openssl(openssl_bin: str) -> RunOpenssl:
    """``openssl(*args, input=b"")`` runs the openssl CLI; the caller checks ``returncode``."""

    def run(*args: str | os.PathLike[str], input: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([openssl_bin, *map(str, args)], input=input, capture_output=True, timeout=60, check=False)

    return run


# -- sm-crypto (node) ---------------------------------------------------------------------


class SmCrypto:
    """The npm package sm-crypto, driven through tests/js/sm_crypto_driver.js.

    ``run(ops)`` sends a batch of operations to one node process (starting node
    costs more than the operations) and returns the results in order.
    """

    def __init__(self, node: str) -> None:
        self.node = node
        self.driver = JS_DIR / "sm_crypto_driver.js"
        self.version = ""

    def run(self, ops: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        proc = subprocess.run(
            [self.node, str(self.driver)],
            input=json.dumps({"ops": list(ops)}).encode(),
            capture_output=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(f"sm-crypto driver failed: {proc.stderr.decode(errors='replace')}")
        answer = json.loads(proc.stdout)
        self.version = answer["version"]
        results: list[dict[str, Any]] = answer["results"]
        assert len(results) == len(ops)
        return results


@pytest.fixture(scope="session")
def sm_crypto() -> SmCrypto:
    """The sm-crypto driver; node and tests/js/node_modules/sm-crypto must be installed."""
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        missing_tool("node (for the npm package sm-crypto)", "apt-get install nodejs npm")
    if not (JS_DIR / "node_modules" / "sm-crypto" / "package.json").exists():
        missing_tool("the npm package sm-crypto", f"cd {JS_DIR} && npm install")
    driver = SmCrypto(node)
    driver.run([{"op": "sm3", "msg_hex": ""}])  # fail here, clearly, if node cannot run it
    return driver
