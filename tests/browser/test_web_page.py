"""The verification page in a real browser (Debian Chromium driven by Playwright) against ``certledger serve``.

What a person sees is checked against what the ledger and the API computed:
the verdict (words + icon, not colour alone), the licence fields, each check
with its reason code, and the history timeline. Also: the English switch
(no reload, remembered), keyboard-only use, the QR-code address
``/v/<identifier>``, axe-core accessibility checks, and that the page fetches
nothing from anywhere but its own server (see conftest.PageWatch).

Screenshots go to a temp dir; with CERTLEDGER_UPDATE_SCREENSHOTS=1 they
replace docs/screenshots/*.png.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import ApiServer
from browser_page import new_page
from licence_files import HRSS, REVOKE_REASON, SUSPEND_REASON, XIHU, LicenceHome

from cert_formats.identifier import LicenceIdentifier
from cert_formats.licence import Licence

RESULT_READY = (
    "() => { const b = document.getElementById('result-body');"
    " return b.getAttribute('aria-busy') === 'false' && b.querySelector('[data-verdict]') !== null; }"
)


def wait_result(page: Any) -> Any:
    page.wait_for_function(RESULT_READY)
    return page.locator("#result-body [data-verdict]")


def upload(page: Any, path: Path) -> Any:
    page.set_input_files("#licence-file", str(path))
    page.click("#upload-form button[type=submit]")
    return wait_result(page)


def field(page: Any, key: str) -> str:
    text: str = page.locator(f'[data-field="{key}"] dd').inner_text()
    return text.strip()


def zh_date(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def api_verdict(server: ApiServer, path: Path) -> dict[str, Any]:
    """What the API says about a file: the page must show the same."""
    resp = httpx.post(
        server.base_url + "/v1/verify",
        content=path.read_bytes(),
        headers={"content-type": "application/octet-stream"},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    return answer


def shoot(page: Any, directory: Path, name: str) -> None:
    page.screenshot(path=str(directory / name), full_page=True)
    assert (directory / name).stat().st_size > 10_000


def assert_checks_match(page: Any, answer: dict[str, Any]) -> None:
    """Every check of the API answer is on the page with its outcome and reason code."""
    rows = page.locator("[data-check]")
    assert rows.count() == len(answer["checks"])
    for i, check in enumerate(answer["checks"]):
        row = rows.nth(i)
        assert row.get_attribute("data-check") == check["name"]
        assert row.get_attribute("data-ok") == str(check["ok"]).lower()
        if check["reason"]:
            assert row.get_attribute("data-reason") == check["reason"]
            assert check["reason"] in row.inner_text()
        assert ("未通过" if not check["ok"] else "通过") in row.locator(".check-outcome").inner_text()


# -- the page itself -------------------------------------------------------------------------


def test_page_is_chinese_by_default_and_self_contained(page: Any, server: ApiServer) -> None:
    response = page.goto("/")
    assert response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.title() == "电子证照核验"
    assert page.locator("h1").inner_text() == "核验电子证照"
    # every input has a label that names it
    assert page.get_by_label("证照标识或证照编号").count() == 1
    assert page.get_by_label("证照文件（PDF 或 OFD）").count() == 1
    # the footer names the ledger, as /healthz reports it
    health = httpx.get(server.base_url + "/healthz").json()
    page.wait_for_function("() => document.getElementById('ledger-size').textContent !== '—'")
    assert page.locator("#ledger-origin").inner_text() == health["origin"]
    # the result area is a live region
    assert page.locator("#result-body").get_attribute("aria-live") == "polite"
    # stylesheet and script really came from this server (the CSP would block inline or foreign ones)
    assert page.evaluate("getComputedStyle(document.querySelector('.masthead')).backgroundImage") != "none"


# -- files -----------------------------------------------------------------------------------


def test_genuine_licence_file(
    page: Any, server: ApiServer, licence_home: LicenceHome, licence_paths: dict[str, Path], screenshot_dir: Path
) -> None:
    page.goto("/")
    banner = upload(page, licence_paths["genuine.pdf"])
    assert banner.get_attribute("data-verdict") == "valid"
    assert page.locator("#verdict-title").inner_text() == "有效"
    assert banner.locator("svg.verdict-icon").count() == 1  # an icon, not colour alone
    lic: Licence = licence_home.licences["genuine.pdf"]
    assert field(page, "name") == lic.name
    assert field(page, "holder") == lic.holder
    assert field(page, "issuer") == lic.issuer_name
    assert field(page, "issueDate") == zh_date(lic.issue_date)
    assert field(page, "validity").endswith("长期")  # no end date
    assert field(page, "status") == "正常"
    assert field(page, "identifier").replace("\n", "") == lic.identifier
    assert_checks_match(page, api_verdict(server, licence_paths["genuine.pdf"]))
    assert page.locator('[data-check="signature"] .check-name').inner_text() == "电子签名"
    timeline = page.locator(".timeline > li")
    assert timeline.count() == 1
    assert timeline.first.get_attribute("data-type") == "ISSUE"
    assert "颁发" in timeline.first.inner_text() and XIHU.name in timeline.first.inner_text()
    shoot(page, screenshot_dir, "genuine-zh.png")


def test_revoked_licence_file(
    page: Any, server: ApiServer, licence_home: LicenceHome, licence_paths: dict[str, Path], screenshot_dir: Path
) -> None:
    page.goto("/")
    banner = upload(page, licence_paths["revoked.ofd"])
    assert banner.get_attribute("data-verdict") == "revoked"
    assert page.locator("#verdict-title").inner_text() == "已撤销"
    assert REVOKE_REASON in banner.inner_text()
    assert field(page, "status") == "已撤销"
    assert field(page, "holder") == licence_home.licences["revoked.ofd"].holder
    assert_checks_match(page, api_verdict(server, licence_paths["revoked.ofd"]))
    assert page.locator('[data-check="seal"] .check-name').inner_text() == "电子印章"
    timeline = page.locator(".timeline > li")
    assert [timeline.nth(i).get_attribute("data-type") for i in range(timeline.count())] == ["ISSUE", "REVOKE"]
    assert "撤销" in timeline.nth(1).inner_text() and REVOKE_REASON in timeline.nth(1).inner_text()
    shoot(page, screenshot_dir, "revoked-zh.png")


def test_suspended_and_superseded_files(page: Any, licence_paths: dict[str, Path]) -> None:
    page.goto("/")
    banner = upload(page, licence_paths["suspended.pdf"])
    assert banner.get_attribute("data-verdict") == "suspended"
    assert page.locator("#verdict-title").inner_text() == "已暂停"
    assert SUSPEND_REASON in banner.inner_text()
    banner = upload(page, licence_paths["amended-v1.pdf"])
    assert banner.get_attribute("data-verdict") == "superseded"
    assert page.locator("#verdict-title").inner_text() == "已换发"
    types = page.locator(".timeline > li")
    assert [types.nth(i).get_attribute("data-type") for i in range(types.count())] == ["ISSUE", "AMEND"]
    assert HRSS.name in types.nth(1).inner_text()


@pytest.mark.parametrize("name", ["tampered.pdf", "forged.ofd"])
def test_forged_licence_file(
    page: Any, server: ApiServer, licence_paths: dict[str, Path], screenshot_dir: Path, name: str
) -> None:
    answer = api_verdict(server, licence_paths[name])
    assert answer["verdict"] == "forged" and answer["reason"]
    page.goto("/")
    banner = upload(page, licence_paths[name])
    assert banner.get_attribute("data-verdict") == "forged"
    assert page.locator("#verdict-title").inner_text() == "伪造或被篡改"
    # the reason the server found is in the verdict and on the failed check
    assert banner.locator(f'code[data-reason="{answer["reason"]}"]').count() == 1
    assert_checks_match(page, answer)
    failed = page.locator('[data-check][data-ok="false"]')
    assert failed.count() >= 1 and failed.first.locator(".check-summary").inner_text()
    # a forged file's claims are not shown as licence facts
    assert page.locator("[data-field]").count() == 0
    if name == "forged.ofd":
        shoot(page, screenshot_dir, "forged-zh.png")


def test_unsupported_and_empty_uploads(page: Any, tmp_path: Path) -> None:
    page.goto("/")
    page.click("#upload-form button[type=submit]")  # nothing chosen: a field error, no request
    assert page.locator("#file-error").is_visible()
    assert page.locator("#licence-file").get_attribute("aria-invalid") == "true"
    junk = tmp_path / "not-a-licence.pdf"
    junk.write_bytes(os.urandom(4096).replace(b"%PDF-", b"").replace(b"PK", b"pk"))
    banner = upload(page, junk)
    assert banner.get_attribute("data-verdict") == "error"
    assert banner.locator('code[data-reason="file.unsupported"]').count() == 1
    assert "只能核验 PDF 或 OFD" in banner.inner_text()


# -- identifiers -----------------------------------------------------------------------------


def test_lookup_by_identifier_with_keyboard_only(page: Any, licence_home: LicenceHome) -> None:
    page.goto("/")
    order = []
    for _ in range(6):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement.className"))
    # reading order: skip link, language switch, identifier field, its button, file field, its button
    assert order == ["skip-link", "lang-toggle", "licence-id", "btn", "licence-file", "btn"]
    for _ in range(3):
        page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.id") == "licence-id"
    # the focused control is visibly outlined
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")
    identifier = licence_home.licences["genuine.ofd"].identifier
    page.keyboard.type(identifier)
    page.keyboard.press("Enter")
    banner = wait_result(page)
    assert banner.get_attribute("data-verdict") == "valid"
    # a lookup proves the ledger's answer: the record's signature and inclusion are listed
    for name in ("identifier", "ledger", "checkpoint", "record inclusion", "record signature", "version"):
        assert page.locator(f'[data-check="{name}"][data-ok="true"]').count() == 1, name
    assert field(page, "holder") == licence_home.licences["genuine.ofd"].holder


def test_lookup_errors_are_explained(page: Any, licence_home: LicenceHome) -> None:
    page.goto("/")
    page.focus("#licence-id")
    page.keyboard.press("Enter")  # empty
    assert page.locator("#id-error").inner_text() == "请输入证照标识。"
    good = LicenceIdentifier.parse(licence_home.licences["genuine.pdf"].identifier)
    wrong_check = f"{good.lineage}.{good.version_text}.{'0' if good.check != '0' else '1'}"
    page.fill("#licence-id", wrong_check)
    page.keyboard.press("Enter")
    banner = wait_result(page)
    assert banner.locator('code[data-reason="licence.bad_identifier_check"]').count() == 1
    assert "校验位" in banner.inner_text()
    page.fill("#licence-id", good.lineage.replace(good.serial, "0" + good.serial[1:]))
    page.keyboard.press("Enter")
    # predicates are functions, not expression strings: Playwright evals the latter in the page, which the CSP forbids
    page.wait_for_function(
        "() => (document.querySelector('[data-verdict]') || {dataset: {}}).dataset.verdict === 'notFound'"
    )
    assert page.locator("#verdict-title").inner_text() == "未找到"


def test_qr_code_address_opens_the_licence(page: Any, licence_home: LicenceHome) -> None:
    """The QR code on a licence carries https://<host>/v/<identifier>; the page looks it up at once."""
    v1 = licence_home.licences["amended-v1.pdf"].identifier
    page.goto(f"/v/{v1}")
    banner = wait_result(page)
    assert page.locator("#licence-id").input_value() == v1
    assert banner.get_attribute("data-verdict") == "superseded"
    assert page.locator('[data-check="version"]').get_attribute("data-reason") == "licence.superseded"


# -- language --------------------------------------------------------------------------------


def test_english_switch_without_reload_and_remembered(
    chromium: Any, server: ApiServer, licence_home: LicenceHome, screenshot_dir: Path
) -> None:
    context, page, watch = new_page(chromium, server)
    try:
        page.goto("/")
        page.evaluate("window.__samePage = true")
        page.fill("#licence-id", licence_home.licences["genuine.pdf"].identifier)
        page.keyboard.press("Enter")
        wait_result(page)
        assert page.locator("#verdict-title").inner_text() == "有效"
        toggle = page.locator("#lang-toggle")
        assert toggle.inner_text() == "English" and toggle.get_attribute("lang") == "en"
        toggle.click()
        assert page.evaluate("window.__samePage") is True  # no reload
        assert page.evaluate("document.documentElement.lang") == "en"
        assert page.title() == "Electronic licence verification"
        assert page.get_by_label("Licence identifier or number").count() == 1
        assert page.get_by_label("Licence file (PDF or OFD)").count() == 1
        assert page.locator("#lookup-form button").inner_text() == "Look up"
        assert toggle.inner_text() == "中文" and toggle.get_attribute("lang") == "zh-CN"
        # the result already shown is re-rendered in English
        assert page.locator("#verdict-title").inner_text() == "Valid"
        assert page.locator("#fields-heading").inner_text() == "Licence details"
        assert field(page, "status") == "Active"
        assert page.locator(".timeline .tl-type").first.inner_text() == "Issued"
        shoot(page, screenshot_dir, "lookup-en.png")
        # remembered: a new visit opens in English
        page.goto("/")
        assert page.evaluate("document.documentElement.lang") == "en"
        assert page.locator("h1").inner_text() == "Verify an electronic licence"
        page.locator("#lang-toggle").click()
        assert page.evaluate("localStorage.getItem('certledger.lang')") == "zh"
        watch.check()
    finally:
        context.close()


# -- accessibility ---------------------------------------------------------------------------


def _axe(page: Any, axe_source: str) -> list[dict[str, Any]]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=axe_source)
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
    )
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def test_accessibility_axe(
    chromium: Any, server: ApiServer, licence_paths: dict[str, Path], licence_home: LicenceHome, axe_source: str
) -> None:
    # axe is injected as an inline script, which the page's CSP rightly forbids: bypass it for the audit only
    context, page, watch = new_page(chromium, server, bypass_csp=True)
    try:
        page.goto("/")
        states = {"empty page": _axe(page, axe_source)}
        for name in ("genuine.pdf", "revoked.ofd", "forged.ofd"):
            upload(page, licence_paths[name])
            states[name] = _axe(page, axe_source)
        page.locator("#lang-toggle").click()
        page.fill("#licence-id", licence_home.licences["suspended.pdf"].identifier)
        page.keyboard.press("Enter")
        wait_result(page)
        states["English lookup"] = _axe(page, axe_source)
        bad = {
            state: [(v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in found]
            for state, found in states.items()
            if found
        }
        assert not bad, f"serious/critical accessibility violations: {bad}"
        watch.check()
    finally:
        context.close()
