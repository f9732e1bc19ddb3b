"""The licence model (GB/T 36903 metadata) and the licence-type templates."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from cert_formats.identifier import LicenceIdentifier
from cert_formats.licence import FIELD_LABELS, HolderCodeType, Licence, SealInfo
from cert_formats.template import (
    BUILTIN_DIR,
    builtin_templates,
    get_template,
    load_template,
    load_templates,
    template_for_type,
)
from signing.errors import InvalidInputError

TYPE = "11100000000000001M001"
ISSUER = "11330106000000003H"
HOLDER = "91330106MA2B00001Y"


def _licence(**changes: Any) -> Licence:
    ident = LicenceIdentifier.build(TYPE, ISSUER, "2024031800017")
    fields: dict[str, Any] = {
        "name": "营业执照",
        "type_code": TYPE,
        "number": "330106000202403180017",
        "identifier": str(ident),
        "holder": "杭州云岫数字科技有限公司",
        "holder_code": HOLDER,
        "holder_code_type": HolderCodeType.USCC,
        "issuer_name": "杭州市西湖区市场监督管理局",
        "issuer_code": ISSUER,
        "issue_date": dt.date(2024, 3, 18),
        "valid_from": dt.date(2024, 3, 18),
        "valid_until": None,
        "region_code": "330106",
        "version": 1,
    }
    fields.update(changes)
    return Licence(**fields)


def _reason(exc: pytest.ExceptionInfo[InvalidInputError]) -> str:
    return exc.value.reason


# -- the model -------------------------------------------------------------------------


def test_valid_licence_and_derived_views() -> None:
    lic = _licence(extensions=(("enterprise_type", "有限责任公司"), ("domicile", "杭州")))
    assert lic.serial == "2024031800017"
    assert lic.parsed_identifier.type_code == TYPE
    assert lic.is_long_term
    assert lic.validity_text() == "2024年03月18日 至 长期"
    assert lic.extension("domicile") == "杭州"
    assert lic.extension("missing") is None
    assert list(lic.extension_map()) == ["enterprise_type", "domicile"]


def test_dict_round_trip_with_stable_english_keys() -> None:
    lic = _licence(
        valid_until=dt.date(2029, 3, 17),
        seal=SealInfo(seal_name="杭州市西湖区市场监督管理局电子印章", seal_code="3301060000001"),
        extensions=(("enterprise_type", "有限责任公司"), ("business_scope", "一般项目：\n软件开发")),
    )
    d = lic.to_dict()
    assert list(d) == list(FIELD_LABELS)
    assert d["holder_code_type"] == "001"
    assert d["issue_date"] == "2024-03-18"
    assert d["valid_until"] == "2029-03-17"
    assert d["extensions"][1] == {"key": "business_scope", "value": "一般项目：\n软件开发"}
    assert Licence.from_dict(d) == lic
    # through real JSON text as well
    assert Licence.from_json(lic.to_json()) == lic
    assert Licence.from_json(lic.to_json().encode("utf-8")) == lic


def test_long_term_is_null() -> None:
    d = _licence().to_dict()
    assert d["valid_until"] is None
    assert Licence.from_dict(d).valid_until is None


def test_personal_holder_with_resident_id() -> None:
    lic = _licence(holder="张晓雯", holder_code="11010519491231002X", holder_code_type=HolderCodeType.RESIDENT_ID)
    assert lic.holder_code_type.is_person
    assert lic.holder_code_type.label == "公民身份号码"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"name": ""}, "licence.field_missing"),
        ({"holder": ""}, "licence.field_missing"),
        ({"holder": " 杭州云岫"}, "licence.bad_field"),
        ({"holder": "杭州\u202e云岫"}, "licence.bad_field"),  # bidi override
        ({"holder": "杭州\n云岫"}, "licence.bad_field"),
        ({"holder": "名" * 201}, "licence.bad_field"),
        ({"number": 12345}, "licence.bad_field"),
        ({"holder_code": "91330106MA2B00001Z"}, "licence.bad_credit_code"),
        ({"holder_code": "11010519491231002X"}, "licence.bad_credit_code"),  # an ID number is not a USCC
        ({"holder_code_type": HolderCodeType.RESIDENT_ID}, "licence.bad_id_number"),
        ({"holder_code_type": "001"}, "licence.bad_field"),  # a str, not the enum
        ({"issuer_code": "11330106000000003X"}, "licence.bad_credit_code"),
        ({"issuer_code": "11330106000000004Q"}, "licence.bad_credit_code"),
        ({"type_code": "11100000000000001M00X"}, "licence.bad_field"),
        ({"type_code": "11100000000000001X001"}, "licence.bad_credit_code"),
        ({"region_code": "33010"}, "licence.bad_region_code"),
        ({"region_code": "990106"}, "licence.bad_region_code"),
        ({"identifier": "1.2.156.3005.2.x"}, "licence.bad_identifier"),
        (
            {"identifier": str(LicenceIdentifier.build(TYPE, ISSUER, "2024031800017"))[:-1] + "Q"},
            "licence.bad_identifier_check",
        ),
        (
            {"identifier": str(LicenceIdentifier.build("11100000000000001M002", ISSUER, "1"))},
            "licence.identifier_mismatch",
        ),
        ({"identifier": str(LicenceIdentifier.build(TYPE, "11330100000000002P", "1"))}, "licence.identifier_mismatch"),
        (
            {"version": 2, "identifier": str(LicenceIdentifier.build(TYPE, ISSUER, "1", 1))},
            "licence.identifier_mismatch",
        ),
        ({"version": True}, "licence.bad_field"),
        ({"valid_from": dt.date(2024, 3, 18), "valid_until": dt.date(2024, 3, 17)}, "licence.bad_dates"),
        ({"issue_date": dt.date(2030, 1, 1), "valid_until": dt.date(2029, 1, 1)}, "licence.bad_dates"),
        ({"issue_date": dt.datetime(2024, 3, 18, 8, 0)}, "licence.bad_dates"),
        ({"valid_from": "2024-03-18"}, "licence.bad_dates"),
        ({"extensions": [("a", "b")]}, "licence.bad_extension"),  # list, not tuple
        ({"extensions": (("Bad-Key", "v"),)}, "licence.bad_extension"),
        ({"extensions": (("a", "1"), ("a", "2"))}, "licence.bad_extension"),
        ({"extensions": (("a", "x\x00y"),)}, "licence.bad_extension"),
        ({"extensions": (("a", "x" * 4001),)}, "licence.bad_extension"),
        ({"extensions": tuple((f"k{i}", "v") for i in range(65))}, "licence.bad_extension"),
        ({"seal": {"seal_name": "x"}}, "licence.bad_field"),  # a dict, not SealInfo
    ],
)
def test_model_rejects(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        _licence(**changes)
    assert _reason(info) == reason


def test_seal_info_validates_itself() -> None:
    with pytest.raises(InvalidInputError) as info:
        SealInfo(seal_name="印\x07章")
    assert _reason(info) == "licence.bad_field"


def test_from_dict_requires_every_core_field() -> None:
    d = _licence().to_dict()
    for key in FIELD_LABELS:
        if key in ("seal", "extensions"):
            continue
        broken = {k: v for k, v in d.items() if k != key}
        with pytest.raises(InvalidInputError) as info:
            Licence.from_dict(broken)
        assert _reason(info) == "licence.field_missing"
        assert info.value.details["fields"] == [key]
    # seal and extensions may be left out
    slim = {k: v for k, v in d.items() if k not in ("seal", "extensions")}
    assert Licence.from_dict(slim) == _licence()


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.update(colour="red"), "licence.unknown_field"),
        (lambda d: d.update(holder_code_type="002"), "licence.bad_field"),
        (lambda d: d.update(holder_code_type=1), "licence.bad_field"),
        (lambda d: d.update(version="1"), "licence.bad_field"),
        (lambda d: d.update(issue_date="20240318"), "licence.bad_dates"),
        (lambda d: d.update(issue_date="2024-02-30"), "licence.bad_dates"),
        (lambda d: d.update(valid_until="长期"), "licence.bad_dates"),
        (lambda d: d.update(extensions={"a": "b"}), "licence.bad_extension"),
        (lambda d: d.update(extensions=[{"key": "a"}]), "licence.bad_extension"),
        (lambda d: d.update(extensions=[{"key": "a", "value": 3}]), "licence.bad_extension"),
        (lambda d: d.update(seal={"seal_name": "x", "extra": "y"}), "licence.unknown_field"),
        (lambda d: d.update(seal="x"), "licence.malformed"),
    ],
)
def test_from_dict_rejects(mutate: Any, reason: str) -> None:
    d = _licence().to_dict()
    mutate(d)
    with pytest.raises(InvalidInputError) as info:
        Licence.from_dict(d)
    assert _reason(info) == reason


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b"\xff\xfe",
        b"{" * 100_000,
        b'{"name": "a", "name": "b"}',
        b" " * (256 * 1024 + 1),
    ],
)
def test_from_json_hostile_input(data: bytes) -> None:
    with pytest.raises(InvalidInputError) as info:
        Licence.from_json(data)
    assert _reason(info) == "licence.malformed"


def test_licence_is_frozen() -> None:
    lic = _licence()
    with pytest.raises(dataclasses.FrozenInstanceError):
        lic.holder = "x"  # type: ignore[misc]


# -- templates --------------------------------------------------------------------------


def test_builtin_templates_load_with_samples() -> None:
    templates = builtin_templates()
    assert set(templates) >= {"business_licence", "food_business_permit", "vocational_qualification"}
    codes = [t.type_code for t in templates.values()]
    assert len(set(codes)) == len(codes)
    for key, template in templates.items():
        sample = template.sample_licence()
        template.validate(sample)
        assert sample.name == template.name
        assert template_for_type(template.type_code) is template
        assert get_template(key) is template


def test_personal_template_refuses_an_organisation_holder() -> None:
    t = get_template("vocational_qualification")
    sample = t.sample_licence()
    org = dataclasses.replace(sample, holder_code=HOLDER, holder_code_type=HolderCodeType.USCC)
    with pytest.raises(InvalidInputError) as info:
        t.validate(org)
    assert _reason(info) == "template.holder_code_type"


def test_template_refuses_another_type() -> None:
    business = get_template("business_licence").sample_licence()
    with pytest.raises(InvalidInputError) as info:
        get_template("food_business_permit").validate(business)
    assert _reason(info) == "template.type_mismatch"


def _with_extensions(key: str, values: dict[str, str]) -> Licence:
    t = get_template(key)
    sample = t.sample_licence()
    merged = {**sample.extension_map(), **values}
    return dataclasses.replace(sample, extensions=tuple((k, v) for k, v in merged.items() if v))


@pytest.mark.parametrize(
    ("key", "values", "reason", "rule"),
    [
        ("business_licence", {"legal_representative": ""}, "licence.field_missing", None),
        ("business_licence", {"registered_capital": "很多钱"}, "licence.bad_extension", "pattern"),
        ("business_licence", {"established_date": "2024-03-18"}, "licence.bad_extension", "pattern"),
        ("business_licence", {"domicile": "杭" * 121}, "licence.bad_extension", "max_length"),
        ("business_licence", {"enterprise_type": "有限\n公司"}, "licence.bad_extension", "multiline"),
        ("business_licence", {"shoe_size": "42"}, "licence.bad_extension", "unknown"),
        ("food_business_permit", {"main_business_format": "网吧"}, "licence.bad_extension", "pattern"),
        ("food_business_permit", {"complaint_hotline": "12315-1"}, "licence.bad_extension", "pattern"),
        ("vocational_qualification", {"gender": "F"}, "licence.bad_extension", "pattern"),
        ("vocational_qualification", {"level": "特级"}, "licence.bad_extension", "pattern"),
    ],
)
def test_template_extension_rules(key: str, values: dict[str, str], reason: str, rule: str | None) -> None:
    lic = _with_extensions(key, values)
    with pytest.raises(InvalidInputError) as info:
        get_template(key).validate(lic)
    assert _reason(info) == reason
    if rule:
        assert info.value.details["rule"] == rule


def test_template_extension_order_is_enforced_and_helper_orders() -> None:
    t = get_template("business_licence")
    sample = t.sample_licence()
    shuffled = dataclasses.replace(sample, extensions=tuple(reversed(sample.extensions)))
    with pytest.raises(InvalidInputError) as info:
        t.validate(shuffled)
    assert info.value.details["rule"] == "order"
    reordered = dataclasses.replace(sample, extensions=t.order_extensions(dict(reversed(sample.extensions))))
    t.validate(reordered)
    with pytest.raises(InvalidInputError):
        t.order_extensions({"nope": "x"})


def test_food_permit_number_format() -> None:
    t = get_template("food_business_permit")
    lic = dataclasses.replace(t.sample_licence(), number="SP3301060012345")
    with pytest.raises(InvalidInputError) as info:
        t.validate(lic)
    assert _reason(info) == "licence.bad_number"


def test_a_new_type_is_a_new_file(tmp_path: Path) -> None:
    # copy one template, change its key, type code and title: no code involved
    text = (BUILTIN_DIR / "vocational_qualification.toml").read_text("utf-8")
    text = text.replace('key = "vocational_qualification"', 'key = "skill_certificate"')
    text = text.replace('"11100000000000001M003"', '"11100000000000001M009"')
    text = text.replace('name = "职业资格证书"', 'name = "职业技能等级证书"')
    (tmp_path / "skill_certificate.toml").write_text(text, "utf-8")
    templates = load_templates(tmp_path)
    t = templates["skill_certificate"]
    assert t.name == "职业技能等级证书"
    assert template_for_type("11100000000000001M009", templates) is t
    lic = t.sample_licence()
    assert lic.type_code == "11100000000000001M009"
    assert lic.parsed_identifier.type_code == "11100000000000001M009"


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = (BUILTIN_DIR / "business_licence.toml").read_text("utf-8")
    assert old in text, old
    path = tmp_path / "t.toml"
    path.write_text(text.replace(old, new, 1), "utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('key = "business_licence"', 'key = "Business Licence"'),
        ('type_code = "11100000000000001M001"', 'type_code = "11100000000000001M0A1"'),
        ('type_code = "11100000000000001M001"', 'type_code = "11100000000000001X001"'),
        ('holder_code_types = ["001"]', 'holder_code_types = ["007"]'),
        ('holder_code_types = ["001"]', "holder_code_types = []"),
        ("width_mm = 297.0", "width_mm = 2970.0"),
        ("width_mm = 297.0", 'width_mm = "wide"'),
        ('title = "#B3121B"', 'title = "red"'),
        ('style = "ornate"', 'style = "baroque"'),
        ("size_mm = 28.0", "size_mm = 28.0\nshape = 1"),
        ('source = "ext:enterprise_type"', 'source = "ext:nothing"'),
        ('source = "holder"', 'source = "holder_age"'),
        ("column = 1", "column = 7"),
        ("max_lines = 11", "max_lines = 0"),
        ("x_mm = 246.0", "x_mm = 290.0"),
        ('pattern = "\\\\d{4}年\\\\d{2}月\\\\d{2}日"', 'pattern = "(unclosed"'),
        ('legal_representative = "林知远"', 'legal_representative = "X"'),  # sample breaks its own rule
        ("[seal]", "[seal]\n[seal.extra]"),
        ("key = ", "kee = "),
        ("[page]", "[page"),
    ],
)
def test_broken_templates_fail_at_load(tmp_path: Path, old: str, new: str) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(InvalidInputError) as info:
        load_template(path)
    assert _reason(info) == "template.invalid"


def test_template_lookup_failures(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        get_template("no_such_type")
    assert _reason(info) == "template.not_found"
    with pytest.raises(InvalidInputError) as info:
        template_for_type("11100000000000001M999")
    assert _reason(info) == "template.not_found"
    with pytest.raises(InvalidInputError) as info:
        load_template(tmp_path / "missing.toml")
    assert _reason(info) == "template.not_found"
    big = tmp_path / "big.toml"
    big.write_text("#" * (64 * 1024 + 1))
    with pytest.raises(InvalidInputError) as info:
        load_template(big)
    assert _reason(info) == "template.invalid"


def test_duplicate_type_codes_in_one_directory(tmp_path: Path) -> None:
    shutil.copy(BUILTIN_DIR / "business_licence.toml", tmp_path / "a.toml")
    text = (
        (BUILTIN_DIR / "business_licence.toml").read_text("utf-8").replace('key = "business_licence"', 'key = "copy"')
    )
    (tmp_path / "b.toml").write_text(text, "utf-8")
    with pytest.raises(InvalidInputError) as info:
        load_templates(tmp_path)
    assert "type code" in str(info.value)


def test_sample_json_is_plain_json() -> None:
    # the template keeps its sample as JSON text so the template stays immutable and hashable
    t = get_template("food_business_permit")
    assert json.loads(t.sample_json)["holder_code"] == HOLDER
    hash(dataclasses.replace(t, extensions=()))
