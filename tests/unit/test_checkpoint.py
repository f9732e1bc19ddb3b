"""C2SP tlog-checkpoint text, signed checkpoints, cosigning and the quorum check."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.checkpoint import (
    Checkpoint,
    OpenedCheckpoint,
    cosign_checkpoint,
    open_checkpoint,
    sign_checkpoint,
    verify_quorum,
)
from signing.errors import CertLedgerError, InvalidInputError, VerificationError
from signing.note import (
    CosignatureSigner,
    Ed25519NoteSigner,
    SM2NoteSigner,
    Verifier,
    VerifierSet,
    sign_note,
    verifier_from_key,
)
from signing.sm2 import SM2PrivateKey
from signing.sm2.backends import get_backend
from signing.sm3 import sm3

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "c2sp"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


TEXTS = load("checkpoint-text.json")
SUMDB = load("sumdb-checkpoint.json")
ARCHE = load("arche2025h1-cosigned-checkpoint.json")

ORIGIN = "certledger.gov.cn/beijing"
ROOT = sm3(b"root")


def cp(size: int = 42, **kw: Any) -> Checkpoint:
    return Checkpoint(kw.pop("origin", ORIGIN), size, kw.pop("root_hash", ROOT), **kw)


# -- text form ------------------------------------------------------------------------------


class TestText:
    @pytest.mark.parametrize("case", TEXTS["valid"], ids=lambda c: c["text"][:20])
    def test_published_valid(self, case: dict[str, Any]) -> None:
        root = case["root_utf8"].encode()
        parsed = Checkpoint.parse(case["text"], hash_size=len(root))
        assert parsed == Checkpoint(case["origin"], case["size"], root, tuple(case["extensions"]))
        assert parsed.to_text() == case["text"]

    @pytest.mark.parametrize("case", TEXTS["invalid"], ids=lambda c: c["why"][:30])
    def test_published_invalid(self, case: dict[str, Any]) -> None:
        for hash_size in (7, 37):  # the root lengths the vectors use
            with pytest.raises(InvalidInputError):
                Checkpoint.parse(case["text"], hash_size=hash_size)

    def test_sm3_round_trip(self) -> None:
        c = cp(extensions=("ext one", "ext two"))
        text = c.to_text()
        assert text == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\next one\next two\n"
        assert Checkpoint.parse(text) == c
        assert Checkpoint.parse(text.encode()) == c

    def test_empty_tree(self) -> None:
        assert Checkpoint.parse(cp(0).to_text()).size == 0

    @pytest.mark.parametrize("size", ["007", "00", "-1", "+5", " 5", "5 ", "1e3", "0x10", "٣"])
    def test_non_canonical_size(self, size: str) -> None:
        text = f"{ORIGIN}\n{size}\n{base64.b64encode(ROOT).decode()}\n"
        with pytest.raises(InvalidInputError) as e:
            Checkpoint.parse(text)
        assert e.value.reason == "checkpoint.size_noncanonical"

    def test_size_limits(self) -> None:
        root = base64.b64encode(ROOT).decode()
        assert Checkpoint.parse(f"o\n{2**64 - 1}\n{root}\n").size == 2**64 - 1
        with pytest.raises(InvalidInputError):
            Checkpoint.parse(f"o\n{2**64}\n{root}\n")
        with pytest.raises(InvalidInputError):
            Checkpoint.parse(f"o\n{'9' * 5000}\n{root}\n")
        with pytest.raises(InvalidInputError):
            cp(2**64)
        with pytest.raises(InvalidInputError):
            cp(-1)

    @pytest.mark.parametrize("root", [bytes(31), bytes(33), bytes(48)])
    def test_wrong_root_length(self, root: bytes) -> None:
        text = f"{ORIGIN}\n1\n{base64.b64encode(root).decode()}\n"
        with pytest.raises(InvalidInputError) as e:
            Checkpoint.parse(text)
        assert e.value.reason == "checkpoint.root_length"
        assert Checkpoint.parse(text, hash_size=len(root)).root_hash == root

    def test_non_canonical_root(self) -> None:
        good = base64.b64encode(ROOT).decode()
        last = good[-2]
        # flip pad bits in the last character before '=': same bytes, other spelling
        alt = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        idx = alt.index(last)
        twin = good[:-2] + alt[idx ^ 1] + "="
        assert base64.b64decode(twin) == ROOT
        with pytest.raises(InvalidInputError):
            Checkpoint.parse(f"{ORIGIN}\n1\n{twin}\n")
        for bad in [good.rstrip("="), good + "=", " " + good[1:], good[:-1] + "\u0000"]:
            with pytest.raises(InvalidInputError):
                Checkpoint.parse(f"{ORIGIN}\n1\n{bad}\n")

    @pytest.mark.parametrize(
        "text",
        [
            f"{ORIGIN}\n1\n{base64.b64encode(ROOT).decode()}",  # no final newline
            f"\n1\n{base64.b64encode(ROOT).decode()}\n",  # empty origin
            f"{ORIGIN}\n1\n",  # two lines
            f"{ORIGIN}\n1\n{base64.b64encode(ROOT).decode()}\n\n",  # empty extension
            f"{ORIGIN}\n1\n{base64.b64encode(ROOT).decode()}\next\n\n",
        ],
    )
    def test_malformed(self, text: str) -> None:
        with pytest.raises(InvalidInputError):
            Checkpoint.parse(text)

    def test_bad_utf8_and_size(self) -> None:
        with pytest.raises(InvalidInputError):
            Checkpoint.parse(b"\xff\xfe\n1\n" + base64.b64encode(ROOT) + b"\n")
        with pytest.raises(InvalidInputError):
            Checkpoint.parse("o\n1\n" + base64.b64encode(ROOT).decode() + "\n" + "x" * 70000 + "\n")

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"origin": ""},
            {"origin": "a\nb"},
            {"origin": "a\rb"},
            {"root_hash": b""},
            {"extensions": ("",)},
            {"extensions": ("two\nlines",)},
            {"extensions": ["not a tuple"]},
        ],
    )
    def test_constructor_validates(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(InvalidInputError):
            cp(**kwargs)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=300))
    def test_random_bytes_never_crash(self, data: bytes) -> None:
        with contextlib.suppress(CertLedgerError):
            Checkpoint.parse(data)

    @settings(max_examples=200, deadline=None)
    @given(
        st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40),
        st.integers(min_value=0, max_value=2**64 - 1),
        st.binary(min_size=32, max_size=32),
    )
    def test_round_trip(self, origin: str, size: int, root: bytes) -> None:
        c = Checkpoint(origin, size, root)
        assert Checkpoint.parse(c.to_text()) == c


# -- signed checkpoints -------------------------------------------------------------------


@pytest.fixture(scope="module")
def node_keys() -> SM2PrivateKey:
    return SM2PrivateKey.generate()


class TestSigned:
    def test_sumdb_published_checkpoint(self) -> None:
        opened = open_checkpoint(
            SUMDB["note"], [verifier_from_key(SUMDB["verifier_key"])], origin=SUMDB["origin"]
        )
        assert opened.checkpoint.size == SUMDB["size"]
        assert opened.checkpoint.root_hash == base64.b64decode(SUMDB["root_hash_b64"])
        assert opened.signer_names == {"sum.golang.org"}
        assert opened.to_bytes().decode() == SUMDB["note"]

    def test_origin_mismatch(self) -> None:
        with pytest.raises(VerificationError) as e:
            open_checkpoint(
                SUMDB["note"], [verifier_from_key(SUMDB["verifier_key"])], origin="go.sum other"
            )
        assert e.value.reason == "checkpoint.origin_mismatch"

    def test_signature_checked_before_text(self) -> None:
        # a validly signed note whose text is not a checkpoint
        log = Ed25519NoteSigner.generate(ORIGIN)
        with pytest.raises(InvalidInputError) as e:
            open_checkpoint(sign_note("hat\n", [log]), [log.verifier()], origin=ORIGIN)
        assert e.value.reason == "checkpoint.malformed"
        # and an unsigned-by-known-key checkpoint never reaches parsing
        with pytest.raises(VerificationError) as e2:
            open_checkpoint(sign_checkpoint(cp(), [log]), [], origin=ORIGIN)
        assert e2.value.reason == "note.unverified"

    def test_wrong_root_length_in_signed_note(self) -> None:
        log = Ed25519NoteSigner.generate(ORIGIN)
        note = sign_checkpoint(cp(root_hash=bytes(20)), [log])
        with pytest.raises(InvalidInputError) as e:
            open_checkpoint(note, [log.verifier()], origin=ORIGIN)
        assert e.value.reason == "checkpoint.root_length"
        assert open_checkpoint(note, [log.verifier()], origin=ORIGIN, hash_size=20).checkpoint

    def test_node_sm2_signature_and_ed25519_cosignatures(self, node_keys: SM2PrivateKey) -> None:
        node1 = SM2NoteSigner("node1." + ORIGIN, node_keys, signer_id=b"1234567812345678")
        cosigners = [CosignatureSigner.generate(f"node{i}.{ORIGIN}") for i in (2, 3, 4)]
        verifiers = VerifierSet(
            [node1.verifier(backend=get_backend("reference"))] + [c.verifier() for c in cosigners]
        )
        signed = sign_checkpoint(cp(), [node1])
        opened = open_checkpoint(signed, verifiers, origin=ORIGIN)
        for cosigner in cosigners[:2]:
            opened = open_checkpoint(
                cosign_checkpoint(opened, [cosigner]), verifiers, origin=ORIGIN
            )
        assert opened.signer_names == {"node1." + ORIGIN, "node2." + ORIGIN, "node3." + ORIGIN}
        policy = {f"node{i}.{ORIGIN}" for i in (1, 2, 3, 4)}
        result = verify_quorum(opened, policy, 3)
        assert result.signers == {"node1." + ORIGIN, "node2." + ORIGIN, "node3." + ORIGIN}
        assert result.missing == {"node4." + ORIGIN}
        assert bool(result)
        with pytest.raises(VerificationError) as e:
            verify_quorum(opened, policy, 4)
        assert e.value.reason == "checkpoint.quorum"
        assert e.value.details["missing"] == ["node4." + ORIGIN]


# -- quorum ---------------------------------------------------------------------------------


def arche_opened() -> OpenedCheckpoint:
    verifiers = [verifier_from_key(ARCHE["log_verifier_key"])] + [
        verifier_from_key(k, max_future_skew=None)
        for k in [*ARCHE["witness_verifier_keys"], ARCHE["unrelated_witness_verifier_key"]]
    ]
    return open_checkpoint(ARCHE["note"], verifiers, origin=ARCHE["origin"])


def name_of(vkey: str) -> str:
    return vkey.split("+", 1)[0]


class TestQuorum:
    def test_published_witness_quorum(self) -> None:
        opened = arche_opened()
        assert opened.checkpoint.size == ARCHE["size"]
        witnesses = {name_of(k) for k in ARCHE["witness_verifier_keys"]}
        unrelated = name_of(ARCHE["unrelated_witness_verifier_key"])
        assert verify_quorum(opened, witnesses, 4).signers == witnesses
        result = verify_quorum(opened, witnesses | {unrelated}, 4)
        assert result.missing == {unrelated}
        with pytest.raises(VerificationError):
            verify_quorum(opened, witnesses | {unrelated}, 5)

    def test_names_outside_the_policy_do_not_count(self) -> None:
        opened = arche_opened()
        with pytest.raises(VerificationError):
            verify_quorum(opened, {"a.example", "b.example", ARCHE["origin"]}, 2)

    def test_distinct_names_count_once(self) -> None:
        # one witness with two keys (e.g. mid-rotation) is still one witness
        log = Ed25519NoteSigner.generate(ORIGIN)
        w1a, w1b = CosignatureSigner.generate("w1"), CosignatureSigner.generate("w1")
        w2 = CosignatureSigner.generate("w2")
        verifiers: list[Verifier] = [
            log.verifier(), w1a.verifier(), w1b.verifier(), w2.verifier()
        ]
        opened = open_checkpoint(sign_checkpoint(cp(), [log, w1a, w1b]), verifiers, origin=ORIGIN)
        assert len(opened.note.signatures) == 3
        with pytest.raises(VerificationError):
            verify_quorum(opened, {"w1", "w2"}, 2)
        assert verify_quorum(opened, {"w1", "w2"}, 1).signers == {"w1"}

    def test_unknown_signatures_do_not_count(self) -> None:
        log = Ed25519NoteSigner.generate(ORIGIN)
        stranger = CosignatureSigner.generate("w2")
        opened = open_checkpoint(
            sign_checkpoint(cp(), [log, stranger]), [log.verifier()], origin=ORIGIN
        )
        assert [s.name for s in opened.note.unverified] == ["w2"]
        with pytest.raises(VerificationError):
            verify_quorum(opened, {"w2"}, 1)

    @pytest.mark.parametrize(
        ("names", "threshold"),
        [(set(), 1), ({"a"}, 0), ({"a"}, 2), ({"a"}, -1), ({"a"}, True), ("remora.n621.de", 1)],
    )
    def test_bad_policy(self, names: set[str] | str, threshold: int) -> None:
        with pytest.raises(InvalidInputError) as e:
            verify_quorum(arche_opened(), names, threshold)
        assert e.value.reason == "quorum.config"
