"""docs/reason-codes.md is the contract of the reason codes: it must name every code the code raises.

Codes are found the way they are raised: a string literal passed as ``reason=``, or a
module-level string constant whose name is passed as ``reason=`` somewhere. Those give
the code families (``ofd``, ``cert``, ...); every other dotted string literal of a known
family is a code too (passed positionally to a helper, a check's finding, a family's
default), unless it names a file, a host or a module. In the other direction, every
code a table of the page names must still be raised somewhere: a page that documents
codes nobody raises misleads as much as one that misses some.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("signing", "ledger", "cert_formats", "verify_api", "nodes")
DOC = ROOT / "docs" / "reason-codes.md"
CODE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
#: dotted literals of a code family that are not codes: file names, host names, modules
NOT_A_CODE = re.compile(r".*\.(pem|txt|db|log|toml|json|example)|ledger\.audit_verify")


def _sources() -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text("utf-8")) for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def raised_codes() -> dict[str, set[str]]:
    """Each code raised in the packages, with the files that raise it."""
    trees = _sources()
    literals: dict[str, set[str]] = {}
    names_used: set[str] = set()
    constants: dict[str, dict[str, set[str]]] = {}
    for path, tree in trees.items():
        where = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "reason":
                value = node.value
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    literals.setdefault(value.value, set()).add(where)
                elif isinstance(value, ast.Name):
                    names_used.add(value.id)
                elif isinstance(value, ast.Attribute):
                    names_used.add(value.attr)
        for stmt in tree.body:
            # NAME = "a.b" and NAME: Final = "a.b"
            targets = (
                stmt.targets
                if isinstance(stmt, ast.Assign)
                else [stmt.target]
                if isinstance(stmt, ast.AnnAssign)
                else []
            )
            value = getattr(stmt, "value", None)
            if isinstance(value, ast.Constant) and isinstance(value.value, str) and CODE.fullmatch(value.value):
                for target in targets:
                    if isinstance(target, ast.Name):
                        constants.setdefault(target.id, {}).setdefault(value.value, set()).add(where)
    codes = dict(literals)
    for name in names_used & constants.keys():
        for code, files in constants[name].items():
            codes.setdefault(code, set()).update(files)
    families = {code.split(".")[0] for code in codes}
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and CODE.fullmatch(node.value)
                and node.value.split(".")[0] in families
                and not NOT_A_CODE.fullmatch(node.value)
            ):
                codes.setdefault(node.value, set()).add(str(path.relative_to(ROOT)))
    return codes


def documented_codes() -> set[str]:
    """The codes in the first column of the page's tables."""
    found = set()
    for line in DOC.read_text("utf-8").splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            found.update(c for c in re.findall(r"`([^`]+)`", first) if CODE.fullmatch(c))
    return found


def test_the_scan_finds_codes_of_every_kind() -> None:
    # a broken scan would pass the test below with nothing to check
    codes = raised_codes()
    assert len(codes) > 150
    assert "record.malformed" in codes  # a constant of ledger/reasons.py
    assert "etcd.unavailable" in codes  # a literal
    assert "cert.malformed" in codes
    assert "ofd.zip_bomb" in codes  # passed positionally to a helper
    assert "template.invalid" in codes  # a constant declared `X: Final = ...`
    assert "file.digest_unknown" in codes  # a check's finding
    assert not {"ledger.db", "node.toml", "verify.certledger.example"} & codes.keys()


def test_every_raised_code_is_documented() -> None:
    documented = documented_codes()
    missing = {code: sorted(files) for code, files in raised_codes().items() if code not in documented}
    assert not missing, f"reason codes raised but not in docs/reason-codes.md: {missing}"


def test_every_documented_code_is_raised() -> None:
    source = "\n".join(p.read_text("utf-8") for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))
    # raised as a string constant, or printed as ``[code]`` by the CLI itself
    stale = sorted(code for code in documented_codes() if f'"{code}"' not in source and f"[{code}]" not in source)
    assert not stale, f"docs/reason-codes.md names codes no code raises: {stale}"
