"""GB/T 36904 identifiers, ISO 7064 MOD 37,36, GB 32100 and GB 11643 check characters."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from cert_formats.credit_code import (
    USCC_ALPHABET,
    id_number_check_character,
    uscc_check_character,
    validate_credit_code,
    validate_id_number,
)
from cert_formats.identifier import (
    MOD37_36_ALPHABET,
    ROOT_OID,
    LicenceIdentifier,
    compute_check_character,
    mod37_36_check_character,
    mod37_36_verify,
    new_serial,
)
from signing.errors import InvalidInputError

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
TYPE = "11100000000000001M001"
ISSUER = "11330106000000003H"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text("utf-8"))
    return data


# -- ISO/IEC 7064 MOD 37,36 --------------------------------------------------------


@pytest.mark.parametrize("vector", _load("licence-identifier/mod37_36.json")["vectors"], ids=lambda v: v["data"][:12])
def test_mod37_36_published_vectors(vector: dict[str, Any]) -> None:
    assert mod37_36_check_character(vector["data"]) == vector["check"]
    mod37_36_verify(vector["data"] + vector["check"])


def test_mod37_36_worked_example() -> None:
    """'TBR' -> '1', by hand (hybrid system, M = 36, M + 1 = 37):

    start P = M = 36
    'T' = 29: S = (36 + 29) mod 36 = 29;  P = 2 * 29 mod 37 = 58 - 37 = 21
    'B' = 11: S = (21 + 11) mod 36 = 32;  P = 2 * 32 mod 37 = 64 - 37 = 27
    'R' = 27: S = (27 + 27) mod 36 = 18;  P = 2 * 18 mod 37 = 36
    check c with (P + c) mod 36 = 1: c = (37 - 36) mod 36 = 1 -> '1'
    """
    assert mod37_36_check_character("TBR") == "1"


def test_mod37_36_zero_sum_is_replaced_by_m() -> None:
    """'0' -> '2': the one step where (P + a) mod M is 0 and the hybrid rule uses M.

    start P = 36; '0' = 0: S = (36 + 0) mod 36 = 0 -> replaced by M = 36
    P = 2 * 36 mod 37 = 72 - 37 = 35; c = (37 - 35) mod 36 = 2 -> '2'
    (without the replacement, S = 0 would give P = 0 and c = 37 mod 36 = 1.)
    """
    assert mod37_36_check_character("0") == "2"


def test_mod37_36_detects_every_single_substitution_and_adjacent_swap() -> None:
    rng = random.Random(36)
    for _ in range(200):
        data = "".join(rng.choice(MOD37_36_ALPHABET) for _ in range(rng.randint(5, 40)))
        full = data + mod37_36_check_character(data)
        i = rng.randrange(len(full))
        wrong = rng.choice([c for c in MOD37_36_ALPHABET if c != full[i]])
        with pytest.raises(InvalidInputError):
            mod37_36_verify(full[:i] + wrong + full[i + 1 :])
        j = rng.randrange(len(full) - 1)
        if full[j] != full[j + 1]:
            with pytest.raises(InvalidInputError):
                mod37_36_verify(full[:j] + full[j + 1] + full[j] + full[j + 2 :])


def test_mod37_36_rejects_characters_outside_the_alphabet() -> None:
    for bad in ("abc", "A-B", "Ａ", ""):
        with pytest.raises(InvalidInputError):
            mod37_36_check_character(bad)


# -- GB/T 36904 identifiers ------------------------------------------------------------


@pytest.mark.parametrize(
    "vector", _load("licence-identifier/identifiers.json")["valid"], ids=lambda v: v["identifier"][-12:]
)
def test_published_identifiers_verify_with_type_issuer_serial_version(vector: dict[str, Any]) -> None:
    text = vector["identifier"]
    parts = text[len(ROOT_OID) + 1 :].split(".")
    # the check is over the four significant parts, concatenated without dots
    assert mod37_36_check_character("".join(parts[:4])) == parts[4]
    if vector.get("strict_parse", True):
        ident = LicenceIdentifier.parse(text)
        assert str(ident) == text
        assert ident.check == parts[4]
    else:
        with pytest.raises(InvalidInputError) as info:
            LicenceIdentifier.parse(text)
        assert info.value.reason == "licence.bad_identifier"


def test_root_and_dots_are_not_part_of_the_check() -> None:
    text = _load("licence-identifier/identifiers.json")["valid"][0]["identifier"]
    head, check = text.rsplit(".", 1)
    significant = "".join(head[len(ROOT_OID) + 1 :].split("."))
    with_root = "".join(head.split("."))
    assert mod37_36_check_character(significant) == check
    assert mod37_36_check_character(with_root) != check


@pytest.mark.parametrize("vector", _load("licence-identifier/identifiers.json")["bad_check"])
def test_published_identifier_with_wrong_check_is_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError) as info:
        LicenceIdentifier.parse(vector["identifier"])
    assert info.value.reason == "licence.bad_identifier_check"
    assert info.value.details["expected"] == vector["expected_check"]


def test_build_parse_round_trip() -> None:
    for version in (1, 2, 17, 999):
        serial = new_serial()
        ident = LicenceIdentifier.build(TYPE, ISSUER, serial, version)
        text = str(ident)
        assert text.startswith(f"{ROOT_OID}.{TYPE}.{ISSUER}.{serial}.{version:03d}.")
        assert LicenceIdentifier.parse(text) == ident
        assert ident.check == compute_check_character(TYPE, ISSUER, serial, version)


def test_versions_share_a_lineage() -> None:
    first = LicenceIdentifier.build(TYPE, ISSUER, "2024031800017")
    second = first.with_version(2)
    assert first.lineage == second.lineage
    assert str(first) != str(second)
    assert second.version_text == "002"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1.2.156.3005.3.11100000000000001M001.11330106000000003H.1.001.0",  # wrong root
        f"{ROOT_OID}.{TYPE}.{ISSUER}.2024.001",  # no check part
        f"{ROOT_OID}.{TYPE}.{ISSUER}.2024.001.X.Y",  # extra part
        f"{ROOT_OID}.{TYPE.lower()}.{ISSUER}.2024.001.0",  # lower case
        f"{ROOT_OID}.11100000000000001M.{ISSUER}.2024.001.0",  # type code without sequence
        f"{ROOT_OID}.{TYPE}.330106.2024.001.0",  # region code as issuer
        f"{ROOT_OID}.{TYPE}.{ISSUER}.20-24.001.0",  # serial with a dash
        f"{ROOT_OID}.{TYPE}.{ISSUER}.{'9' * 41}.001.0",  # serial too long
        f"{ROOT_OID}.{TYPE}.{ISSUER}.2024.1.0",  # version not 3 digits
        f"{ROOT_OID}.{TYPE}.{ISSUER}.2024.000.0",  # version 0
        f"{ROOT_OID}.{TYPE}.{ISSUER}.2024.001.",  # empty check
        f"{ROOT_OID}.{TYPE}.{ISSUER}.2024.001.*",  # check outside the alphabet
        f" {ROOT_OID}.{TYPE}.{ISSUER}.2024.001.0",  # leading space
        "1" * 10_000,  # long garbage
    ],
)
def test_malformed_identifiers_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        LicenceIdentifier.parse(text)
    assert info.value.reason == "licence.bad_identifier"


def test_every_wrong_check_character_is_refused() -> None:
    good = LicenceIdentifier.build(TYPE, ISSUER, "2024031800017")
    head = str(good)[:-1]
    for ch in MOD37_36_ALPHABET:
        if ch == good.check:
            continue
        with pytest.raises(InvalidInputError) as info:
            LicenceIdentifier.parse(head + ch)
        assert info.value.reason == "licence.bad_identifier_check"


def test_build_refuses_bad_parts() -> None:
    for args in [
        (TYPE, ISSUER, "", 1),
        (TYPE, ISSUER, "ABC", 0),
        (TYPE, ISSUER, "ABC", 1000),
        (TYPE, ISSUER, "ABC", True),
        (TYPE[:-1], ISSUER, "ABC", 1),
        (TYPE, ISSUER + "0", "ABC", 1),
    ]:
        with pytest.raises(InvalidInputError):
            LicenceIdentifier.build(*args)


def test_new_serial_is_alphabet_and_random() -> None:
    serials = {new_serial() for _ in range(50)}
    assert len(serials) == 50
    assert all(len(s) == 20 and set(s) <= set(MOD37_36_ALPHABET) for s in serials)
    with pytest.raises(InvalidInputError):
        new_serial(4)


# -- GB 32100 统一社会信用代码 --------------------------------------------------------------


@pytest.mark.parametrize("vector", _load("credit-code/uscc.json")["valid"], ids=lambda v: v["code"])
def test_credit_code_published_valid(vector: dict[str, Any]) -> None:
    assert validate_credit_code(vector["code"]) == vector["code"]


@pytest.mark.parametrize("vector", _load("credit-code/uscc.json")["invalid"], ids=lambda v: v["code"])
def test_credit_code_published_invalid(vector: dict[str, Any]) -> None:
    assert uscc_check_character(vector["code"][:17]) == vector["expected_check"]
    with pytest.raises(InvalidInputError) as info:
        validate_credit_code(vector["code"])
    assert info.value.reason == "licence.bad_credit_code"


def test_credit_code_worked_example_weighted_sum() -> None:
    # GB 32100 example 91350100M000100Y4: sum(Ci * Wi) = 1640, 1640 mod 31 = 28, 31 - 28 = 3
    from cert_formats.credit_code import USCC_WEIGHTS

    body = "91350100M000100Y4"
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(body, USCC_WEIGHTS, strict=True))
    assert USCC_WEIGHTS[:5] == (1, 3, 9, 27, 19)
    assert total == 1640
    assert uscc_check_character(body) == "3"


@pytest.mark.parametrize(
    "code",
    [
        "",
        "91350100M000100Y4",  # 17 characters
        "91350100M000100Y433",  # 19 characters
        "91350100m000100Y43",  # lower case
        "91350100I000100Y43",  # I is not in the alphabet
        "91350100O000100Y43",  # O neither
        "91A50100M000100Y43",  # region part not digits
        "９1350100M000100Y43",  # full-width digit
        "91350100M000100Y44",  # wrong check
    ],
)
def test_credit_code_malformed(code: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        validate_credit_code(code)
    assert info.value.reason == "licence.bad_credit_code"


def test_credit_code_agrees_with_the_x509_implementation() -> None:
    # signing.x509 carries its own GB 32100 code for certificate subjects; the two were
    # written independently, so agreement on random bodies cross-checks both.
    x509_cc = pytest.importorskip("signing.x509.credit_code")
    rng = random.Random(32100)
    for _ in range(500):
        body = "".join(rng.choice(USCC_ALPHABET) for _ in range(2))
        body += "".join(rng.choice("0123456789") for _ in range(6))
        body += "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
        assert uscc_check_character(body) == x509_cc.check_character(body)


# -- GB 11643 公民身份号码 -------------------------------------------------------------------


@pytest.mark.parametrize("vector", _load("credit-code/id_numbers.json")["valid"], ids=lambda v: v["number"])
def test_id_number_published_examples(vector: dict[str, Any]) -> None:
    assert validate_id_number(vector["number"]) == vector["number"]


def test_id_number_worked_example() -> None:
    # 11010519491231002: weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
    # 1*7+1*9+0*10+1*5+0*8+5*4+1*2+9*1+4*6+9*3+1*7+2*9+3*10+1*5+0*8+0*4+2*2 = 167
    # 167 mod 11 = 2 -> check table 1 0 X 9 8 7 6 5 4 3 2 -> 'X'
    assert id_number_check_character("11010519491231002") == "X"


@pytest.mark.parametrize(
    "number",
    [
        "110105194912310021",  # wrong check
        "11010519491231002x",  # lower-case x
        "11010519491231002",  # 17 digits
        "110105491231002",  # 15-digit first generation
        "11010519490231002X",  # 1949-02-31
        "00010519491231002X",  # no province 00
        "1101051949123100２X",  # full-width digit
    ],
)
def test_id_number_malformed(number: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        validate_id_number(number)
    assert info.value.reason == "licence.bad_id_number"
    # the error never echoes the personal number
    assert number not in str(info.value)
