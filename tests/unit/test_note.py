"""Signed notes (c2sp.org/signed-note), Ed25519 keys, cosignature/v1 and SM2 note signatures.

Published vectors live in tests/vectors/c2sp/ (sources in tests/vectors/README.md).
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signing.ed25519 import Ed25519PrivateKey, Ed25519PublicKey, load_public_key
from signing.errors import (
    CertLedgerError,
    ConflictError,
    InvalidInputError,
    VerificationError,
)
from signing.note import (
    MAX_SIGNATURES,
    TYPE_COSIGNATURE_V1,
    CosignatureSigner,
    CosignatureVerifier,
    Ed25519NoteSigner,
    Ed25519NoteVerifier,
    Note,
    NoteSignature,
    SM2NoteSigner,
    SM2NoteVerifier,
    Verifier,
    VerifierSet,
    add_signatures,
    cosignature_message,
    cosignature_timestamp,
    decode_verifier_key,
    encode_verifier_key,
    key_id,
    merge_notes,
    open_note,
    parse_unverified,
    sign_note,
    verifier_from_key,
)
from signing.sm2 import DEFAULT_SIGNER_ID, SM2PrivateKey
from signing.sm2.backends import get_backend

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "c2sp"
EM = "\u2014"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


GO = load("golang-sumdb-note.json")
SPEC = load("signed-note-spec-example.json")
TDEV = load("transparency-dev-keys.json")
ARCHE = load("arche2025h1-cosigned-checkpoint.json")
SUMDB = load("sumdb-checkpoint.json")

PETER_V = GO["peter"]["verifier_key"]
ENOCH_V = GO["enoch"]["verifier_key"]
TEXT = GO["text"]
PETER_SIG = GO["peter_signature_line"]
ENOCH_SIG = GO["enoch_signature_line"]


def peter() -> Ed25519NoteVerifier:
    return Ed25519NoteVerifier.from_verifier_key(PETER_V)


def enoch() -> Ed25519NoteVerifier:
    return Ed25519NoteVerifier.from_verifier_key(ENOCH_V)


def reason_of(exc: pytest.ExceptionInfo[CertLedgerError]) -> str:
    return exc.value.reason


# -- Ed25519 keys --------------------------------------------------------------------------


class TestEd25519Keys:
    def test_sign_verify_and_tamper(self) -> None:
        key = Ed25519PrivateKey.generate()
        sig = key.sign(b"message")
        assert len(sig) == 64
        key.public_key.verify(sig, b"message")
        with pytest.raises(VerificationError) as e:
            key.public_key.verify(sig, b"messagE")
        assert e.value.reason == "sig.invalid"
        bad = bytes([sig[0] ^ 1]) + sig[1:]
        with pytest.raises(VerificationError):
            key.public_key.verify(bad, b"message")
        with pytest.raises(VerificationError) as e:
            key.public_key.verify(sig[:-1], b"message")
        assert e.value.reason == "sig.malformed"

    def test_rfc8032_test_1(self) -> None:
        # RFC 8032 §7.1 TEST 1 (empty message): a published vector for the primitive
        seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
        key = Ed25519PrivateKey(seed)
        assert key.public_key.raw.hex() == (
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        )
        assert key.sign(b"").hex() == (
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
            "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        )

    def test_bad_key_sizes(self) -> None:
        with pytest.raises(InvalidInputError):
            Ed25519PrivateKey(b"\x00" * 31)
        with pytest.raises(InvalidInputError):
            Ed25519PublicKey(b"\x00" * 33)

    def test_small_order_public_key_rejects_everything(self) -> None:
        # the identity point: libsodium refuses small-order keys at verification
        identity = Ed25519PublicKey(b"\x01" + b"\x00" * 31)
        with pytest.raises(VerificationError):
            identity.verify(b"\x01" + b"\x00" * 63, b"")

    def test_encrypted_pem_round_trip(self) -> None:
        key = Ed25519PrivateKey.generate()
        pem = key.to_pem(b"correct horse")
        assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        again = Ed25519PrivateKey.from_pem(pem, b"correct horse")
        assert again.seed() == key.seed()
        with pytest.raises(VerificationError) as e:
            Ed25519PrivateKey.from_pem(pem, b"wrong")
        assert e.value.reason == "key.passphrase"
        with pytest.raises(InvalidInputError) as e2:
            Ed25519PrivateKey.from_pem(pem)
        assert e2.value.reason == "key.passphrase"

    def test_unencrypted_and_public_encodings(self) -> None:
        key = Ed25519PrivateKey.generate()
        assert Ed25519PrivateKey.from_pem(key.to_pem(None)).seed() == key.seed()
        pub = key.public_key
        assert Ed25519PublicKey.from_der(pub.to_der()) == pub
        assert Ed25519PublicKey.from_pem(pub.to_pem()) == pub
        assert load_public_key(pub.to_pem()) == pub
        assert load_public_key(pub.to_der()) == pub
        assert load_public_key(pub.raw) == pub
        assert len(pub.key_id) == 64
        with pytest.raises(InvalidInputError):
            load_public_key(b"\x30\x03\x02\x01\x00")
        with pytest.raises(InvalidInputError):
            Ed25519PrivateKey.from_pem(pub.to_pem())

    def test_sm2_key_is_not_an_ed25519_key(self) -> None:
        sm2 = SM2PrivateKey.generate()
        with pytest.raises(InvalidInputError):
            Ed25519PublicKey.from_der(sm2.public_key.to_der())

    def test_save_load_mode_and_no_overwrite(self, tmp_path: Path) -> None:
        key = Ed25519PrivateKey.generate()
        path = tmp_path / "node.key"
        key.save(path, b"pw")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
        assert Ed25519PrivateKey.load(path, b"pw").seed() == key.seed()
        with pytest.raises(ConflictError):
            key.save(path, b"pw")
        Ed25519PrivateKey.generate().save(path, b"pw", overwrite=True)
        assert Ed25519PrivateKey.load(path, b"pw").seed() != key.seed()
        with pytest.raises(InvalidInputError):
            key.save(tmp_path / "empty.key", b"")

    @pytest.mark.interop
    def test_openssl_reads_encrypted_key_and_we_read_openssl(self, tmp_path: Path) -> None:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("openssl CLI not installed")
        key = Ed25519PrivateKey.generate()
        ours = tmp_path / "ours.pem"
        key.save(ours, b"s3cret")
        out = subprocess.run(
            [openssl, "pkey", "-in", str(ours), "-passin", "pass:s3cret", "-pubout"],
            check=True, capture_output=True,
        ).stdout
        assert Ed25519PublicKey.from_pem(out) == key.public_key
        theirs = tmp_path / "theirs.pem"
        subprocess.run(
            [openssl, "genpkey", "-algorithm", "ed25519", "-aes-256-cbc",
             "-pass", "pass:pw2", "-out", str(theirs)],
            check=True, capture_output=True,
        )
        loaded = Ed25519PrivateKey.load(theirs, b"pw2")
        pub = subprocess.run(
            [openssl, "pkey", "-in", str(theirs), "-passin", "pass:pw2", "-pubout"],
            check=True, capture_output=True,
        ).stdout
        assert Ed25519PublicKey.from_pem(pub) == loaded.public_key


# -- key strings and key IDs ---------------------------------------------------------------


class TestKeyStrings:
    def test_golang_keys(self) -> None:
        v = peter()
        assert (v.name, f"{v.key_hash:08x}") == ("PeterNeumann", GO["peter"]["key_hash"])
        assert v.verifier_key() == PETER_V
        s = Ed25519NoteSigner.from_signer_key(GO["peter"]["signer_key"])
        assert s.key_hash == v.key_hash
        assert s.signer_key() == GO["peter"]["signer_key"]
        assert s.verifier_key() == PETER_V
        assert f"{enoch().key_hash:08x}" == GO["enoch"]["key_hash"]

    def test_spec_example_key(self) -> None:
        v = verifier_from_key(SPEC["verifier_key"])
        assert isinstance(v, Ed25519NoteVerifier)
        assert v.name == SPEC["name"]
        assert f"{v.key_hash:08x}" == SPEC["key_hash"]
        assert v.public_key.raw.hex() == SPEC["public_key_hex"]

    @pytest.mark.parametrize("pair", TDEV["key_pairs"], ids=lambda p: p["name"])
    def test_transparency_dev_pairs(self, pair: dict[str, str]) -> None:
        signer = Ed25519NoteSigner.from_signer_key(pair["signer_key"])
        assert signer.verifier_key() == pair["verifier_key"]
        assert verifier_from_key(pair["verifier_key"]).key_hash == signer.key_hash

    @pytest.mark.parametrize("case", TDEV["verifier_keys"], ids=lambda c: c["name"])
    def test_typed_keys(self, case: dict[str, Any]) -> None:
        v = verifier_from_key(case["key"])
        assert (v.name, f"{v.key_hash:08x}") == (case["name"], case["key_hash"])
        expected = Ed25519NoteVerifier if case["type"] == 1 else CosignatureVerifier
        assert isinstance(v, expected)
        assert v.verifier_key() == case["key"]

    @pytest.mark.parametrize(
        "bad", [*GO["bad_verifier_keys"], *TDEV["bad_verifier_keys"]], ids=lambda b: b["why"]
    )
    def test_bad_verifier_keys(self, bad: dict[str, str]) -> None:
        with pytest.raises(InvalidInputError):
            verifier_from_key(bad["key"])

    def test_wrong_key_hash(self) -> None:
        name, _, rest = PETER_V.partition("+")
        _, _, material = rest.partition("+")
        with pytest.raises(InvalidInputError) as e:
            verifier_from_key(f"{name}+c74f20a4+{material}")
        assert e.value.reason == "note.key_hash"

    def test_every_mangling_of_a_verifier_key_fails(self) -> None:
        # golang note_test.go TestNewVerifier: every proper substring and every
        # single-byte increment must be refused
        b = PETER_V.encode()
        for i in range(len(b) + 1):
            for j in range(i + 1, len(b) + 1):
                if (i, j) != (0, len(b)):
                    with pytest.raises(InvalidInputError):
                        verifier_from_key(b[i:j].decode())
        for i in range(len(b)):
            mangled = b[:i] + bytes([b[i] + 1]) + b[i + 1 :]
            with pytest.raises(InvalidInputError):
                verifier_from_key(mangled.decode())

    def test_every_mangling_of_a_signer_key_fails(self) -> None:
        b = GO["peter"]["signer_key"].encode()
        for i in range(len(b) + 1):
            for j in range(i + 1, len(b) + 1):
                if (i, j) != (0, len(b)):
                    with pytest.raises(InvalidInputError):
                        Ed25519NoteSigner.from_signer_key(b[i:j].decode())
        for i in range(len(b)):
            mangled = b[:i] + bytes([b[i] + 1]) + b[i + 1 :]
            with pytest.raises(InvalidInputError):
                Ed25519NoteSigner.from_signer_key(mangled.decode())

    def test_key_names(self) -> None:
        key = Ed25519PrivateKey.generate()
        for bad in ["", "a+b", "a b", "a\u00a0b", "a\u3000b", "a\nb", "a\tb", "\ud800"]:
            with pytest.raises(InvalidInputError):
                Ed25519NoteSigner(bad, key)
        Ed25519NoteSigner("省级节点/北京", key)  # non-ASCII names are fine

    def test_key_id_formula(self) -> None:
        # SHA-256(name || 0x0A || type || key)[:4], checked against the spec example
        raw = bytes.fromhex(SPEC["public_key_hex"])
        ed25519_type = b"\x01"
        assert f"{key_id(SPEC['name'], ed25519_type + raw):08x}" == SPEC["key_hash"]
        parsed = decode_verifier_key(SPEC["verifier_key"])
        assert encode_verifier_key(parsed.name, parsed.type_and_key) == SPEC["verifier_key"]


# -- signing and opening notes -------------------------------------------------------------


class TestSignAndOpen:
    def test_golang_sign_is_byte_exact(self) -> None:
        signer = Ed25519NoteSigner.from_signer_key(GO["peter"]["signer_key"])
        assert sign_note(TEXT, [signer]).decode() == GO["signed_by_peter"]

    def test_spec_example_opens(self) -> None:
        note = open_note(SPEC["note"], [verifier_from_key(SPEC["verifier_key"])])
        assert note.text == SPEC["text"]
        assert note.signer_names == {SPEC["name"]}

    def test_sumdb_checkpoint_note_opens(self) -> None:
        note = open_note(SUMDB["note"].encode(), [verifier_from_key(SUMDB["verifier_key"])])
        assert note.text.startswith(SUMDB["origin"] + "\n")

    def test_one_verified_one_unverified(self) -> None:
        note = open_note(GO["signed_by_peter_and_enoch"], [peter()])
        assert note.text == TEXT
        assert [s.name for s in note.signatures] == ["PeterNeumann"]
        assert [(s.name, s.key_id) for s in note.unverified] == [("EnochRoot", "af0cfe78")]
        assert note.signatures[0].line() == PETER_SIG
        assert note.unverified[0].line() == ENOCH_SIG
        assert note.to_bytes().decode() == GO["signed_by_peter_and_enoch"]

    def test_both_verified(self) -> None:
        note = open_note(GO["signed_by_peter_and_enoch"], VerifierSet([peter(), enoch()]))
        assert [s.name for s in note.signatures] == ["PeterNeumann", "EnochRoot"]
        assert note.unverified == ()
        assert note.signatures[0].verifier == peter()

    def test_no_known_key_rejects(self) -> None:
        with pytest.raises(VerificationError) as e:
            open_note(GO["signed_by_peter_and_enoch"], [])
        assert e.value.reason == "note.unverified"
        assert e.value.details["unknown_keys"] == ["EnochRoot+af0cfe78", "PeterNeumann+c74f20a3"]

    def test_same_name_or_same_id_is_still_unknown(self) -> None:
        other = Ed25519NoteVerifier("PeterNeumann", Ed25519PrivateKey.generate().public_key)
        with pytest.raises(VerificationError) as e:
            open_note(GO["signed_by_peter"], [other])
        assert e.value.reason == "note.unverified"
        renamed = GO["signed_by_peter"].replace("— PeterNeumann", "— CarmenSandiego")
        note = open_note(renamed + ENOCH_SIG, [peter(), enoch()])
        assert [s.name for s in note.unverified] == ["CarmenSandiego"]

    def test_ambiguous_verifier_set(self) -> None:
        with pytest.raises(InvalidInputError) as e:
            VerifierSet([enoch(), peter(), enoch()])
        assert e.value.reason == "note.verifier_ambiguous"

    def test_too_many_signatures(self) -> None:
        msg = TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1)
        for verifiers in ([peter()], []):
            with pytest.raises(InvalidInputError) as e:
                open_note(msg, verifiers)
            assert e.value.reason == "note.too_many_signatures"

    def test_spec_minimum_of_16_signatures_is_accepted(self) -> None:
        signers = [Ed25519NoteSigner.generate(f"witness{i}.example") for i in range(16)]
        data = sign_note("origin\n", signers)
        note = open_note(data, [s.verifier() for s in signers])
        assert len(note.signatures) == 16

    def test_tampered_signature(self) -> None:
        bad = TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
        with pytest.raises(VerificationError) as e:
            open_note(bad, [peter()])
        assert e.value.reason == "note.signature_invalid"
        assert e.value.details["key"] == "PeterNeumann+c74f20a3"

    def test_tampered_text(self) -> None:
        bad = GO["signed_by_peter"].replace("cryptography", "cryptographi")
        with pytest.raises(VerificationError) as e:
            open_note(bad, [peter()])
        assert e.value.reason == "note.signature_invalid"

    def test_failed_known_signature_rejects_even_with_a_good_one(self) -> None:
        forged = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
        with pytest.raises(VerificationError):
            open_note(GO["signed_by_peter"] + forged, [peter(), enoch()])

    def test_duplicated_signature_line(self) -> None:
        doubled = TEXT + "\n" + PETER_SIG + PETER_SIG
        with pytest.raises(InvalidInputError) as e:
            open_note(doubled, [peter()])
        assert e.value.reason == "note.duplicate_signature"
        with pytest.raises(InvalidInputError):
            open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG + ENOCH_SIG, [peter()])

    def test_known_key_signing_twice(self) -> None:
        # two different lines for one known key: the second would ride along unchecked
        other = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
        with pytest.raises(InvalidInputError) as e:
            open_note(TEXT + "\n" + PETER_SIG + other, [peter()])
        assert e.value.reason == "note.duplicate_signature"

    @pytest.mark.parametrize(
        "msg",
        [
            TEXT,
            TEXT + "\n",
            TEXT + "\n" + PETER_SIG[:-1],
            "\x01" + TEXT + "\n" + PETER_SIG,
            TEXT + "\n" + EM + " Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZ"
            "SNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
            TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
            TEXT + "\n" + PETER_SIG.replace(EM, "-"),
            TEXT + "\n" + PETER_SIG.replace("=\n", "\n"),  # padding dropped
            TEXT + "\n" + PETER_SIG.replace("AM=", "AN="),  # non-canonical pad bits
            TEXT + "\n" + EM + " PeterNeumann AAAA\n",  # signature shorter than 5 bytes
            TEXT + "\r\n" + PETER_SIG,
        ],
        ids=range(11),
    )
    def test_malformed_notes(self, msg: str) -> None:
        with pytest.raises(InvalidInputError) as e:
            open_note(msg, [peter()])
        assert e.value.reason == "note.malformed"

    def test_bad_utf8(self) -> None:
        data = b"\xff" + GO["signed_by_peter"].encode()
        with pytest.raises(InvalidInputError) as e:
            open_note(data, [peter()])
        assert e.value.reason == "note.malformed"
        with pytest.raises(InvalidInputError):
            open_note("\udcff" + GO["signed_by_peter"], [peter()])

    def test_oversize_note(self) -> None:
        big = "x" * 2000 + "\n" + TEXT
        signer = Ed25519NoteSigner.generate("big")
        data = sign_note(big, [signer])
        assert open_note(data, [signer.verifier()]).text == big
        with pytest.raises(InvalidInputError) as e:
            open_note(data, [signer.verifier()], max_bytes=1024)
        assert e.value.reason == "note.too_large"
        with pytest.raises(InvalidInputError) as e2:
            sign_note("y" * (1 << 20) + "\n", [signer])
        assert e2.value.reason == "note.too_large"

    @pytest.mark.parametrize("text", ["abc", "", "a\x00b\n", "tab\there\n", "\ud800\n"])
    def test_sign_rejects_bad_text(self, text: str) -> None:
        with pytest.raises(InvalidInputError):
            sign_note(text, [Ed25519NoteSigner.generate("s")])

    def test_sign_needs_a_signer_and_distinct_keys(self) -> None:
        s = Ed25519NoteSigner.generate("s")
        with pytest.raises(InvalidInputError):
            sign_note("t\n", [])
        with pytest.raises(InvalidInputError) as e:
            sign_note("t\n", [s, s])
        assert e.value.reason == "note.duplicate_signature"

    def test_text_with_blank_lines(self) -> None:
        s = Ed25519NoteSigner.generate("s")
        for text in ["Note\n\n", "a\n\nb\n", "\n", "— x AAAAAAAA\n\n"]:
            assert open_note(sign_note(text, [s]), [s.verifier()]).text == text

    def test_parse_unverified(self) -> None:
        note = parse_unverified(GO["signed_by_peter_and_enoch"])
        assert note.signatures == ()
        assert [s.name for s in note.unverified] == ["PeterNeumann", "EnochRoot"]


class TestCosigning:
    def test_add_signatures_appends_and_replaces(self) -> None:
        signer = Ed25519NoteSigner.from_signer_key(GO["peter"]["signer_key"])
        base = open_note(GO["signed_by_peter_and_enoch"], [peter()])
        # re-signing with the same key replaces the existing line (golang Sign semantics)
        again = add_signatures(base, [signer])
        assert again.decode() == TEXT + "\n" + ENOCH_SIG + PETER_SIG
        witness = CosignatureSigner.generate("witness.example")
        cosigned = add_signatures(base, [witness])
        opened = open_note(cosigned, [peter(), enoch(), witness.verifier()])
        assert [s.name for s in opened.signatures] == ["PeterNeumann", "EnochRoot", "witness.example"]

    def test_refuses_to_cosign_unverified(self) -> None:
        note = parse_unverified(GO["signed_by_peter"])
        with pytest.raises(InvalidInputError):
            add_signatures(note, [Ed25519NoteSigner.generate("w")])
        out = add_signatures(note, [Ed25519NoteSigner.generate("w")], require_verified=False)
        assert out.startswith(GO["signed_by_peter"].encode())

    def test_merge_notes(self) -> None:
        log = Ed25519NoteSigner.generate("log.example")
        w1, w2 = CosignatureSigner.generate("w1"), CosignatureSigner.generate("w2")
        verifiers: list[Verifier] = [log.verifier(), w1.verifier(), w2.verifier()]
        base = open_note(sign_note("origin\n1\n", [log]), verifiers)
        from_w1 = open_note(add_signatures(base, [w1]), verifiers)
        from_w2 = open_note(add_signatures(base, [w2]), verifiers)
        merged = merge_notes(base, from_w1, from_w2)
        assert merged.signer_names == {"log.example", "w1", "w2"}
        assert open_note(merged.to_bytes(), verifiers).signer_names == merged.signer_names
        other = open_note(sign_note("other\n", [log]), verifiers)
        with pytest.raises(InvalidInputError):
            merge_notes(base, other)


# -- cosignature/v1 -------------------------------------------------------------------------


class FixedClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TestCosignature:
    def test_published_cosigned_checkpoint(self) -> None:
        verifiers = [verifier_from_key(ARCHE["log_verifier_key"])] + [
            verifier_from_key(k, max_future_skew=None) for k in ARCHE["witness_verifier_keys"]
        ]
        note = open_note(ARCHE["note"], verifiers)
        assert len(note.signatures) == 5
        # the 0x05 RFC 6962 tree head signature is an unknown type here: ignored
        assert [s.name for s in note.unverified] == [ARCHE["origin"]]
        cosigs = [s for s in note.signatures if isinstance(s.verifier, CosignatureVerifier)]
        assert len(cosigs) == 4
        assert {cosignature_timestamp(s) for s in cosigs} == {ARCHE["cosignature_timestamp"]}

    def test_published_cosignature_tampered(self) -> None:
        remora = verifier_from_key(ARCHE["witness_verifier_keys"][0], max_future_skew=None)
        tampered = ARCHE["note"].replace("1432088532", "1432088533")
        with pytest.raises(VerificationError):
            open_note(tampered, [remora])

    def test_timestamp_in_the_future_is_rejected(self) -> None:
        ts = ARCHE["cosignature_timestamp"]
        key = ARCHE["witness_verifier_keys"][0]
        past = verifier_from_key(key, clock=FixedClock(ts - 601), max_future_skew=600)
        with pytest.raises(VerificationError) as e:
            open_note(ARCHE["note"], [past])
        assert e.value.details["cause"] == "cosignature.future"
        ok = verifier_from_key(key, clock=FixedClock(ts - 600), max_future_skew=600)
        assert open_note(ARCHE["note"], [ok]).signer_names == {"remora.n621.de"}

    @pytest.mark.parametrize("case", TDEV["cosignature_timestamps"], ids=["cosig", "ed25519"])
    def test_timestamp_decoding(self, case: dict[str, Any]) -> None:
        raw = base64.b64decode(case["signature_b64"])[4:]
        if case["timestamp"] is None:
            with pytest.raises(InvalidInputError):
                cosignature_timestamp(raw)
        else:
            assert cosignature_timestamp(raw) == case["timestamp"]

    def test_round_trip_and_signed_message(self) -> None:
        clock = FixedClock(1_700_000_000.7)
        signer = CosignatureSigner.generate("witness.example/w1", clock=clock)
        text = "example.com/log\n5\n" + base64.b64encode(bytes(32)).decode() + "\n"
        data = sign_note(text, [signer])
        note = open_note(data, [signer.verifier()])
        sig = note.signatures[0]
        assert cosignature_timestamp(sig) == 1_700_000_000
        msg = cosignature_message(text.encode(), 1_700_000_000)
        assert msg == b"cosignature/v1\ntime 1700000000\n" + text.encode()
        signer.verifier().public_key.verify(sig.signature[8:], msg)
        # the key ID is computed with type 0x04, not 0x01
        pub = signer.verifier().public_key.raw
        assert sig.key_hash == key_id("witness.example/w1", TYPE_COSIGNATURE_V1 + pub)
        assert signer.verifier().verifier_key().split("+")[2].startswith("B")

    def test_signer_refuses_a_negative_clock(self) -> None:
        with pytest.raises(InvalidInputError):
            CosignatureSigner.generate("w", clock=FixedClock(-1)).sign(b"t\n")

    def test_timestamp_is_signed(self) -> None:
        signer = CosignatureSigner.generate("w", clock=FixedClock(1000))
        sig = signer.sign(b"t\n")
        moved = (1001).to_bytes(8, "big") + sig[8:]
        with pytest.raises(VerificationError):
            signer.verifier().verify(b"t\n", moved)

    def test_timestamp_above_2_63_is_rejected(self) -> None:
        signer = CosignatureSigner.generate("w")
        sig = signer.sign(b"t\n")
        huge = (1 << 63).to_bytes(8, "big") + sig[8:]
        with pytest.raises(VerificationError) as e:
            signer.verifier(max_future_skew=None).verify(b"t\n", huge)
        assert e.value.reason == "cosignature.timestamp"
        with pytest.raises(VerificationError):
            signer.verifier().verify(b"t\n", sig[:-1])

    def test_cosignature_is_not_an_ed25519_note_signature(self) -> None:
        key = Ed25519PrivateKey.generate()
        cosigner = CosignatureSigner("w", key)
        plain = Ed25519NoteVerifier("w", key.public_key)
        assert plain.key_hash != cosigner.key_hash
        with pytest.raises(VerificationError) as e:
            open_note(sign_note("t\n", [cosigner]), [plain])
        assert e.value.reason == "note.unverified"

    def test_cosigner_from_golang_signer_key_and_0x01_vkey(self) -> None:
        cosigner = CosignatureSigner.from_signer_key(GO["peter"]["signer_key"])
        from_plain_vkey = CosignatureVerifier.from_verifier_key(PETER_V)
        assert from_plain_vkey.key_hash == cosigner.key_hash != peter().key_hash
        assert open_note(sign_note(TEXT, [cosigner]), [from_plain_vkey]).signatures


# -- SM2 note signatures --------------------------------------------------------------------


@pytest.fixture(scope="module")
def sm2_key() -> SM2PrivateKey:
    return SM2PrivateKey.generate()


class TestSM2Notes:
    TEXT = "certledger.gov.cn/beijing\n42\n" + base64.b64encode(bytes(range(32))).decode() + "\n"

    def test_round_trip_and_reference_backend(self, sm2_key: SM2PrivateKey) -> None:
        signer = SM2NoteSigner("node1.beijing", sm2_key, signer_id=DEFAULT_SIGNER_ID)
        data = sign_note(self.TEXT, [signer])
        assert len(base64.b64decode(data.decode().rsplit(" ", 1)[1])) == 4 + 64
        default = open_note(data, [signer.verifier()])
        assert default.signer_names == {"node1.beijing"}
        reference = signer.verifier(backend=get_backend("reference"))
        assert open_note(data, [reference]).signer_names == {"node1.beijing"}

    def test_reference_signature_verifies_with_default_backend(
        self, sm2_key: SM2PrivateKey
    ) -> None:
        signer = SM2NoteSigner("n", sm2_key, backend=get_backend("reference"))
        data = sign_note(self.TEXT, [signer])
        assert open_note(data, [SM2NoteVerifier("n", sm2_key.public_key)]).signatures

    def test_verifier_key_round_trip(self, sm2_key: SM2PrivateKey) -> None:
        signer = SM2NoteSigner("node1.beijing", sm2_key, signer_id=b"node1@beijing")
        vkey = signer.verifier_key()
        parsed = decode_verifier_key(vkey)
        assert parsed.type_and_key.startswith(b"\xffcertledger/SM2-SM3/v1\x04")
        assert parsed.type_and_key.endswith(bytes([13]) + b"node1@beijing")
        v = verifier_from_key(vkey, sm2_backend=get_backend("reference"))
        assert isinstance(v, SM2NoteVerifier)
        assert (v.signer_id, v.key_hash) == (b"node1@beijing", signer.key_hash)
        assert open_note(sign_note(self.TEXT, [signer]), [v]).signatures

    def test_signer_id_is_part_of_the_key(self, sm2_key: SM2PrivateKey) -> None:
        a = SM2NoteSigner("n", sm2_key, signer_id=b"1234567812345678")
        b = SM2NoteVerifier("n", sm2_key.public_key, b"another-id")
        assert a.key_hash != b.key_hash
        with pytest.raises(VerificationError):
            b.verify(self.TEXT.encode(), a.sign(self.TEXT.encode()))

    def test_domain_separation_and_name_binding(self, sm2_key: SM2PrivateKey) -> None:
        text = self.TEXT.encode()
        v = SM2NoteVerifier("n", sm2_key.public_key)
        bare = sm2_key.sign_raw(text, signer_id=DEFAULT_SIGNER_ID)
        with pytest.raises(VerificationError):
            v.verify(text, bare)
        other_name = SM2NoteSigner("m", sm2_key).sign(text)
        with pytest.raises(VerificationError):
            v.verify(text, other_name)

    def test_tampered(self, sm2_key: SM2PrivateKey) -> None:
        signer = SM2NoteSigner("n", sm2_key)
        data = sign_note(self.TEXT, [signer]).decode()
        with pytest.raises(VerificationError):
            open_note(data.replace("\n42\n", "\n43\n"), [signer.verifier()])
        sig = signer.sign(self.TEXT.encode())
        with pytest.raises(VerificationError):
            signer.verifier().verify(self.TEXT.encode(), sig[:-1])
        with pytest.raises(VerificationError):
            signer.verifier().verify(self.TEXT.encode(), bytes(64))

    def test_malformed_sm2_verifier_keys(self, sm2_key: SM2PrivateKey) -> None:
        prefix = b"\xffcertledger/SM2-SM3/v1"
        point = sm2_key.public_key.to_bytes()
        off_curve = b"\x04" + bytes(63) + b"\x01"
        for material in [
            prefix + point,  # no signer ID
            prefix + point + b"\x05abc",  # length prefix disagrees
            prefix + point + b"\x00",  # empty signer ID
            prefix + off_curve + b"\x01a",
            prefix + b"\x02" + point[1:33] + b"\x01a",  # compressed points are not the format
            b"\xffcertledger/OTHER/v1" + point + b"\x01a",
        ]:
            with pytest.raises(InvalidInputError):
                verifier_from_key(encode_verifier_key("n", material))

    def test_mixed_signers(self, sm2_key: SM2PrivateKey) -> None:
        node = SM2NoteSigner("node1", sm2_key)
        ed = Ed25519NoteSigner.generate("node1-ed")
        cos = CosignatureSigner.generate("node2")
        data = sign_note(self.TEXT, [node, ed, cos])
        note = open_note(data, [node.verifier(), ed.verifier(), cos.verifier()])
        assert note.signer_names == {"node1", "node1-ed", "node2"}


# -- hostile input ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(CertLedgerError):
        open_note(data, [peter()])


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300).map(lambda s: s + GO["signed_by_peter"]))
def test_prefixed_notes_never_crash(data: str) -> None:
    try:
        note = open_note(data, [peter()])
    except CertLedgerError:
        return
    assert note.signer_names == {"PeterNeumann"}


_SIGNER = Ed25519NoteSigner.from_signer_key(GO["peter"]["signer_key"])


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=200))
def test_sign_open_round_trip(body: str) -> None:
    text = body + "\n"
    data = sign_note(text, [_SIGNER])
    assert open_note(data, [peter()]).text == text


def test_note_signature_line() -> None:
    sig = NoteSignature("n", 0x01020304, b"\xff")
    assert sig.line() == EM + " n AQIDBP8=\n"
    assert Note("t\n", (), (sig,)).to_bytes() == ("t\n\n" + EM + " n AQIDBP8=\n").encode()

