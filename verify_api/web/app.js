// certledger verification page: look a licence up by identifier or upload its file, show the verdict.
// Vanilla JS, no dependencies, nothing loaded from elsewhere (the CSP forbids it). Every value from the
// server is written with textContent, never as HTML.
"use strict";

const LANG_KEY = "certledger.lang";

const I18N = {
  zh: {
    htmlLang: "zh-CN", docTitle: "电子证照核验", toggle: "English", toggleLang: "en",
    skip: "跳到核验结果", brand: "电子证照核验服务", brandSub: "国密 SM2/SM3 签名 · 可验证账本",
    title: "核验电子证照",
    lead: "输入证照标识，或上传证照文件（PDF 或 OFD），即可查看证照是否真实、是否仍然有效。",
    byIdTitle: "按证照标识查询", idLabel: "证照标识或证照编号",
    idHint: "例如 1.2.156.3005.2.…（GB/T 36904 证照标识）。扫描证照上的二维码会打开本页并自动查询。",
    idSubmit: "查询", idEmpty: "请输入证照标识。",
    byFileTitle: "上传证照文件", fileLabel: "证照文件（PDF 或 OFD）",
    fileHint: "文件只用于本次核验，不会被保存；最大 20 MB。也可以把文件拖到此处。",
    fileChoose: "选择文件", fileNone: "未选择文件",
    fileSubmit: "核验文件", fileEmpty: "请选择要核验的证照文件。", fileTooLarge: "文件超过 20 MB，无法核验。",
    resultHeading: "核验结果", verdictLabel: "核验结论", working: "正在核验，请稍候…",
    footerLedger: "账本", footerEntries: "条目数", apiDocs: "API 文档",
    footerNote: "核验依据：文件的电子签章（PAdES SM2 / GB/T 38540）、证照标识（GB/T 36904）以及账本记录的 SM3 摘要与包含证明。本页不加载任何第三方资源。",
    verdicts: {
      valid: ["有效", "证照真实有效：签章验证通过，且为账本上的现行版本。"],
      suspended: ["已暂停", "证照真实，但颁发机构已暂停其效力，暂停期间不能作为有效证照使用。"],
      revoked: ["已撤销", "证照已被颁发机构撤销，不再有效。"],
      superseded: ["已换发", "这是证照的旧版本，颁发机构已换发新版本；请向持证人索取现行版本。"],
      unknown: ["无法确认", "账本上没有这份证照的记录，也无法从文件中取得可验证的证明。"],
      forged: ["伪造或被篡改", "文件签章验证失败或内容与账本记录不符。请勿采信此文件。"],
      error: ["无法核验", "请求未能完成。"],
      notFound: ["未找到", "本账本上没有这份证照的记录。请核对证照标识，或上传证照文件核验。"],
    },
    // a lookup by identifier has no file: its verdict rests on the ledger's signed record alone
    lookupVerdicts: {
      valid: ["有效", "账本记录表明该证照为现行版本、状态正常；颁发机构的签名与账本证明均验证通过。"],
      unknown: ["无法确认", "账本上没有所查询版本的记录。"],
    },
    fieldsTitle: "证照信息", checksTitle: "核验项目", historyTitle: "证照历程",
    fields: {
      name: "证照名称", number: "证照编号", holder: "持证主体", issuer: "颁发机构", issueDate: "颁发日期",
      validity: "有效期", status: "当前状态", identifier: "证照标识", version: "版本",
    },
    longTerm: "长期", to: " 至 ",
    statuses: { ACTIVE: "正常", SUSPENDED: "暂停", REVOKED: "已撤销" },
    passed: "通过", failed: "未通过", detail: "技术细节", reasonCode: "原因代码",
    why: { revoked: "撤销原因", suspended: "暂停原因", failed: "原因", current: "现行版本", claimed: "文件所称标识" },
    meta: { format: "文件格式", source: "状态来源", digest: "SM3 摘要" },
    sources: { ledger: "本账本（实时）", bundle: "文件内嵌证明（签发时的状态）" },
    types: { ISSUE: "颁发", AMEND: "变更换发", SUSPEND: "暂停", RESUME: "恢复", REVOKE: "撤销" },
    entry: "账本条目", versionN: (n) => `第 ${n} 版`,
    noHistory: "本账本上没有这份证照的记录。",
    checks: {
      signature: ["电子签名", "PDF 电子签名（SM2）验证通过，签名证书链可信。"],
      revisions: ["签名后修改", "签名后只附加了账本证明，没有其他改动。"],
      seal: ["电子印章", "OFD 电子印章（GB/T 38540）验证通过，印章证书链可信。"],
      identifier: ["证照标识", "证照标识（GB/T 36904）格式与校验位正确。"],
      ledger: ["账本状态", "已从账本取得证照的当前状态。"],
      "proof bundle": ["内嵌证明", "文件内嵌的账本证明验证通过。"],
      digest: ["文件摘要", "文件的 SM3 摘要与账本记录一致。"],
      checkpoint: ["签名检查点", "账本检查点已由法定数量的节点签名。"],
      "record inclusion": ["记录包含证明", "证照记录包含在已签名的账本中。"],
      "key admission inclusion": ["密钥准入包含证明", "签名密钥的准入记录包含在账本中。"],
      "key admission": ["签名密钥准入", "颁发机构的签名密钥已由治理机构准入。"],
      "record signature": ["记录签名", "颁发机构对记录的 SM2 签名验证通过。"],
      statement: ["状态声明", "最新记录与所报告的状态一致。"],
      version: ["证照版本", "所查询的版本为现行版本。"],
      proof: ["账本证明", "账本证明验证通过。"],
    },
    reasons: {
      "pdf.modified": "PDF 在签名之后被修改过。",
      "pdf.no_signature": "PDF 没有电子签名。",
      "pdf.signature_invalid": "PDF 电子签名无效。",
      "pdf.digest_mismatch": "签名所覆盖的内容已被改动。",
      "pdf.chain": "签名证书不能追溯到受信任的根证书。",
      "pdf.malformed": "PDF 文件结构损坏。",
      "seal.signature_invalid": "电子印章签名无效。",
      "seal.digest_mismatch": "印章所保护的文件内容已被改动。",
      "seal.chain": "印章证书不能追溯到受信任的根证书。",
      "seal.missing": "OFD 文件没有电子印章。",
      "seal.unprotected_file": "文件中含有印章未保护的内容。",
      "seal.expired": "电子印章已过有效期。",
      "cert.no_trust_anchor": "签名证书不能追溯到受信任的根证书。",
      "file.digest_unknown": "文件的摘要与账本上该证照的任何版本都不符。",
      "state.unknown_licence": "账本上没有这份证照。",
      "bundle.missing": "文件没有附带账本证明。",
      "bundle.pending": "文件附带的账本证明尚未生成。",
      "bundle.unknown_origin": "文件附带的证明来自未知的账本。",
      "licence.bad_identifier": "证照标识格式不正确。",
      "licence.bad_identifier_check": "证照标识的校验位不正确，可能有输入错误。",
      "licence.superseded": "所查询的版本已被新版本取代。",
      "licence.version_unknown": "账本上没有所查询的版本。",
      "file.unsupported": "只能核验 PDF 或 OFD 格式的证照文件。",
      "file.empty": "上传的文件是空的。",
      "file.too_large": "文件超过 20 MB，无法核验。",
      "request.too_large": "文件超过 20 MB，无法核验。",
      "file.malformed": "文件已损坏，无法解析。",
      "file.timeout": "文件核验超时，文件可能已损坏。",
      "request.rate_limited": "请求过于频繁，请稍后再试。",
      "verify.busy": "服务器繁忙，请稍后再试。",
      "ledger.not_final": "记录尚未最终确认，请稍后再试。",
      network: "无法连接核验服务，请检查网络后重试。",
    },
  },
  en: {
    htmlLang: "en", docTitle: "Electronic licence verification", toggle: "中文", toggleLang: "zh-CN",
    skip: "Skip to the result", brand: "Electronic Licence Verification",
    brandSub: "SM2/SM3 signatures · verifiable ledger",
    title: "Verify an electronic licence",
    lead: "Enter a licence identifier or upload the licence file (PDF or OFD) to see whether it is genuine and still valid.",
    byIdTitle: "Look up by identifier", idLabel: "Licence identifier or number",
    idHint: "For example 1.2.156.3005.2.… (GB/T 36904 identifier). Scanning the QR code on a licence opens this page and looks it up.",
    idSubmit: "Look up", idEmpty: "Please enter a licence identifier.",
    byFileTitle: "Upload a licence file", fileLabel: "Licence file (PDF or OFD)",
    fileHint: "The file is only used for this check and is not kept; 20 MB at most. You can also drop the file here.",
    fileChoose: "Choose file", fileNone: "No file chosen",
    fileSubmit: "Verify file", fileEmpty: "Please choose a licence file to verify.",
    fileTooLarge: "The file is larger than 20 MB and cannot be verified.",
    resultHeading: "Verification result", verdictLabel: "Verdict", working: "Verifying, please wait…",
    footerLedger: "Ledger", footerEntries: "entries", apiDocs: "API documentation",
    footerNote: "Checked: the file's electronic signature or seal (PAdES SM2 / GB/T 38540), the licence identifier (GB/T 36904), and the SM3 digests and inclusion proofs of the ledger's records. This page loads nothing from third parties.",
    verdicts: {
      valid: ["Valid", "Genuine and valid: the signature verifies and this is the current version on the ledger."],
      suspended: ["Suspended", "Genuine, but the issuing agency has suspended it; it is not valid while suspended."],
      revoked: ["Revoked", "The issuing agency has revoked this licence; it is no longer valid."],
      superseded: ["Superseded", "This is an earlier version; the agency has issued a newer one. Ask the holder for the current version."],
      unknown: ["Unknown", "This licence is not on the ledger and the file carries no proof that can be verified."],
      forged: ["Forged or altered", "The file's signature fails or its content does not match the ledger. Do not rely on this file."],
      error: ["Cannot verify", "The request could not be completed."],
      notFound: ["Not found", "This licence is not on this ledger. Check the identifier, or upload the licence file."],
    },
    lookupVerdicts: {
      valid: ["Valid", "The ledger shows this is the current version and it is in force; the agency's signature and the ledger's proofs verify."],
      unknown: ["Unknown", "The version asked for is not on the ledger."],
    },
    fieldsTitle: "Licence details", checksTitle: "Checks", historyTitle: "History",
    fields: {
      name: "Licence", number: "Licence number", holder: "Holder", issuer: "Issued by", issueDate: "Date of issue",
      validity: "Valid", status: "Status", identifier: "Identifier", version: "Version",
    },
    longTerm: "no end date", to: " to ",
    statuses: { ACTIVE: "Active", SUSPENDED: "Suspended", REVOKED: "Revoked" },
    passed: "passed", failed: "failed", detail: "Technical detail", reasonCode: "Reason code",
    why: { revoked: "Reason for revocation", suspended: "Reason for suspension", failed: "Reason", current: "Current version", claimed: "Identifier claimed by the file" },
    meta: { format: "Format", source: "Status from", digest: "SM3 digest" },
    sources: { ledger: "this ledger (live)", bundle: "proof embedded in the file (status at issue)" },
    types: { ISSUE: "Issued", AMEND: "Amended (new version)", SUSPEND: "Suspended", RESUME: "Resumed", REVOKE: "Revoked" },
    entry: "Ledger entry", versionN: (n) => `version ${n}`,
    noHistory: "This licence has no records on this ledger.",
    checks: {
      signature: ["Digital signature", "The PDF's SM2 signature verifies and its certificate chain is trusted."],
      revisions: ["Changes after signing", "Only the ledger proof was attached after signing."],
      seal: ["Electronic seal", "The OFD seal (GB/T 38540) verifies and its certificate chain is trusted."],
      identifier: ["Licence identifier", "The GB/T 36904 identifier is well formed and its check character is right."],
      ledger: ["Ledger status", "The licence's current status was read from the ledger."],
      "proof bundle": ["Embedded proof", "The ledger proof embedded in the file verifies."],
      digest: ["File digest", "The file's SM3 digest matches the ledger record."],
      checkpoint: ["Signed checkpoint", "The ledger checkpoint is signed by the required quorum of nodes."],
      "record inclusion": ["Record inclusion proof", "The licence record is included in the signed ledger."],
      "key admission inclusion": ["Key admission inclusion proof", "The record admitting the signing key is in the ledger."],
      "key admission": ["Signing key admission", "The agency's signing key was admitted by the governance authorities."],
      "record signature": ["Record signature", "The agency's SM2 signature on the record verifies."],
      statement: ["Status statement", "The latest record agrees with the reported status."],
      version: ["Licence version", "The version asked for is the current version."],
      proof: ["Ledger proof", "The ledger proof verifies."],
    },
    reasons: {
      "pdf.modified": "The PDF was changed after it was signed.",
      "pdf.no_signature": "The PDF carries no signature.",
      "pdf.signature_invalid": "The PDF signature is invalid.",
      "pdf.digest_mismatch": "The signed content was changed.",
      "pdf.chain": "The signing certificate does not chain to a trusted root.",
      "pdf.malformed": "The PDF is damaged.",
      "seal.signature_invalid": "The seal's signature is invalid.",
      "seal.digest_mismatch": "Content the seal protects was changed.",
      "seal.chain": "The seal's certificate does not chain to a trusted root.",
      "seal.missing": "The OFD carries no seal.",
      "seal.unprotected_file": "The file holds content the seal does not protect.",
      "seal.expired": "The seal has expired.",
      "cert.no_trust_anchor": "The signing certificate does not chain to a trusted root.",
      "file.digest_unknown": "The file's digest matches no version of this licence on the ledger.",
      "state.unknown_licence": "The licence is not on the ledger.",
      "bundle.missing": "The file carries no ledger proof.",
      "bundle.pending": "The file's ledger proof was never filled in.",
      "bundle.unknown_origin": "The embedded proof is from an unknown ledger.",
      "licence.bad_identifier": "This is not a valid licence identifier.",
      "licence.bad_identifier_check": "The identifier's check character is wrong; it may be mistyped.",
      "licence.superseded": "The version asked for has been replaced by a newer one.",
      "licence.version_unknown": "The version asked for is not on the ledger.",
      "file.unsupported": "Only PDF and OFD licence files can be verified.",
      "file.empty": "The uploaded file is empty.",
      "file.too_large": "The file is larger than 20 MB and cannot be verified.",
      "request.too_large": "The file is larger than 20 MB and cannot be verified.",
      "file.malformed": "The file is damaged and cannot be read.",
      "file.timeout": "Verifying the file took too long; it may be damaged.",
      "request.rate_limited": "Too many requests; please try again shortly.",
      "verify.busy": "The service is busy; please try again shortly.",
      "ledger.not_final": "The record is not final yet; please try again shortly.",
      network: "The verification service cannot be reached; check the connection and try again.",
    },
  },
};

// 24x24 outline icons: the verdict is never told by colour alone
const ICONS = {
  valid: ["M7.5 12.5l3 3 6-6.5"],
  suspended: ["M10 9v6", "M14 9v6"],
  superseded: ["M7.8 8.2A6 6 0 1 1 6 12.5", "M7.5 4.8v3.6h3.6"],
  revoked: ["M7.6 7.6l8.8 8.8"],
  forged: ["M12 7.5v5.5", "M12 16.3v.2"],
  unknown: ["M9.7 9.6a2.4 2.4 0 1 1 3.4 2.2c-.7.3-1.1.9-1.1 1.6v.4", "M12 16.6v.2"],
  notFound: ["M9.7 9.6a2.4 2.4 0 1 1 3.4 2.2c-.7.3-1.1.9-1.1 1.6v.4", "M12 16.6v.2"],
  error: ["M12 11v5.5", "M12 7.6v.2"],
  ok: ["M7.5 12.5l3 3 6-6.5"],
  fail: ["M8.5 8.5l7 7", "M15.5 8.5l-7 7"],
};

let lang = "zh";
let shown = null; // what the result area shows, re-rendered on a language switch

const $ = (id) => document.getElementById(id);

function t(key) {
  return I18N[lang][key];
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === "") continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function icon(name, cls) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", cls);
  const outline = name === "forged"
    ? "M12 3.2 21.5 20H2.5z"
    : null;
  if (outline) {
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", outline);
    svg.append(path);
  } else {
    const circle = document.createElementNS(ns, "circle");
    circle.setAttribute("cx", "12"); circle.setAttribute("cy", "12"); circle.setAttribute("r", "9.5");
    svg.append(circle);
  }
  for (const d of ICONS[name] || ICONS.error) {
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

// -- language -------------------------------------------------------------------------------

function setLang(next, remember) {
  lang = next === "en" ? "en" : "zh";
  if (remember) {
    try { localStorage.setItem(LANG_KEY, lang); } catch (_) { /* private mode: not remembered */ }
  }
  document.documentElement.lang = t("htmlLang");
  document.title = t("docTitle");
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  const toggle = $("lang-toggle");
  toggle.textContent = t("toggle");
  toggle.lang = t("toggleLang");
  for (const id of ["id-error", "file-error"]) {
    const err = $(id);
    if (!err.hidden && err.dataset.key) err.textContent = t(err.dataset.key);
  }
  showFileName();
  if (shown) render(shown);
}

// -- formatting -------------------------------------------------------------------------------

function formatDate(iso) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso || "");
  if (!m) return iso || "";
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (lang === "zh") return `${y}年${mo}月${d}日`;
  return new Date(Date.UTC(y, mo - 1, d)).toLocaleDateString("en-GB", { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
}

function formatTime(iso) {
  // local time with its UTC offset spelled out: the same text in both languages, unambiguous
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  const p = (n) => String(n).padStart(2, "0");
  const offset = -when.getTimezoneOffset();
  const zone = `UTC${offset < 0 ? "−" : "+"}${Math.floor(Math.abs(offset) / 60)}${Math.abs(offset) % 60 ? ":" + p(Math.abs(offset) % 60) : ""}`;
  return `${when.getFullYear()}-${p(when.getMonth() + 1)}-${p(when.getDate())} ${p(when.getHours())}:${p(when.getMinutes())} (${zone})`;
}

function reasonText(code) {
  return (code && t("reasons")[code]) || "";
}

// -- rendering --------------------------------------------------------------------------------

// lines: [label, text, code?]; meta: [label, value, monospace?]
function verdictBanner(kind, title, text, lines, meta) {
  const titleId = "verdict-title";
  return el("div", { class: `verdict verdict--${kind}`, "data-verdict": kind, role: "group", "aria-labelledby": titleId },
    icon(kind, "verdict-icon"),
    el("div", { class: "verdict-body" },
      el("p", { class: "verdict-label" }, t("verdictLabel")),
      el("p", { class: "verdict-title", id: titleId }, title),
      el("p", { class: "verdict-text" }, text),
      lines.length ? el("dl", { class: "verdict-lines" }, lines.map(([k, v, code]) =>
        el("div", {}, el("dt", {}, `${k}:`), el("dd", {}, v, code ? el("code", { lang: "en", "data-reason": code }, code) : null)))) : null,
      meta.length ? el("dl", { class: "verdict-meta" }, meta.map(([k, v, mono]) =>
        el("div", {}, el("dt", {}, k), el("dd", mono ? { lang: "en", class: "mono" } : {}, v)))) : null,
    ));
}

function lastOf(history, type) {
  const found = (history || []).filter((h) => h.type === type);
  return found.length ? found[found.length - 1] : null;
}

function fieldsPanel(data) {
  const md = data.metadata || {};
  const f = t("fields");
  const validity = md.valid_from
    ? formatDate(md.valid_from) + t("to") + (md.valid_until ? formatDate(md.valid_until) : t("longTerm"))
    : "";
  const status = data.status
    ? el("span", { class: `status status--${data.status.toLowerCase()}` }, t("statuses")[data.status] || data.status)
    : "";
  const rows = [
    ["name", md.name], ["number", md.number], ["holder", md.holder],
    ["issuer", md.issuer_name || data.issuer], ["issueDate", formatDate(md.issue_date)],
    ["validity", validity], ["status", status],
    ["identifier", data.identifier || md.identifier, true], ["version", data.version ? t("versionN")(data.version) : ""],
  ].filter(([, v]) => v);
  return el("section", { class: "panel", "aria-labelledby": "fields-heading" },
    el("h3", { id: "fields-heading" }, t("fieldsTitle")),
    el("dl", { class: "fields" }, rows.map(([key, value, mono]) =>
      el("div", { class: "field", "data-field": key },
        el("dt", {}, f[key]),
        el("dd", mono ? { class: "mono", lang: "en" } : {}, value)))));
}

function checksPanel(checks) {
  const names = t("checks");
  return el("section", { class: "panel", "aria-labelledby": "checks-heading" },
    el("h3", { id: "checks-heading" }, t("checksTitle")),
    el("ul", { class: "checks" }, checks.map((c) => {
      const [label, okText] = names[c.name] || [c.name, ""];
      const summary = c.ok ? okText : (reasonText(c.reason) || "");
      return el("li", { class: `check ${c.ok ? "check--ok" : "check--fail"}`, "data-check": c.name, "data-ok": String(c.ok), "data-reason": c.reason || null },
        icon(c.ok ? "ok" : "fail", "check-icon"),
        el("div", { class: "check-body" },
          el("p", { class: "check-head" },
            el("span", { class: "check-name" }, label),
            el("span", { class: "check-outcome" }, c.ok ? t("passed") : t("failed"))),
          summary ? el("p", { class: "check-summary" }, summary) : null,
          c.detail ? el("p", { class: "check-detail", lang: "en" }, c.detail) : null,
          c.reason ? el("p", { class: "check-reason" }, `${t("reasonCode")}: `, el("code", { lang: "en" }, c.reason)) : null));
    })));
}

function historyPanel(history) {
  const types = t("types");
  const body = history.length
    ? el("ol", { class: "timeline" }, history.map((h) =>
      el("li", { class: `tl tl--${h.type.toLowerCase()}`, "data-type": h.type },
        el("span", { class: "tl-dot", "aria-hidden": "true" }),
        el("div", { class: "tl-body" },
          el("p", { class: "tl-head" },
            el("span", { class: "tl-type" }, types[h.type] || h.type),
            el("time", { datetime: h.time }, formatTime(h.time))),
          el("p", { class: "tl-agency" }, h.agency_name || h.agency),
          h.reason_text ? el("p", { class: "tl-reason" }, h.reason_text) : null,
          el("p", { class: "tl-meta" }, `${t("entry")} #${h.index}`,
            h.version ? ` · ${t("versionN")(h.version)}` : "",
            h.reason_code ? el("span", {}, " · ", el("code", { lang: "en" }, h.reason_code)) : null)))))
    : el("p", { class: "muted" }, t("noHistory"));
  return el("section", { class: "panel", "aria-labelledby": "history-heading" },
    el("h3", { id: "history-heading" }, t("historyTitle")), body);
}

function renderVerdict(data) {
  const texts = data.format ? t("verdicts") : { ...t("verdicts"), ...t("lookupVerdicts") };
  const [title, text] = texts[data.verdict] || texts.unknown;
  const why = t("why");
  const lines = [];
  if (data.verdict === "revoked") {
    const record = lastOf(data.history, "REVOKE");
    const reason = (record && record.reason_text) || data.revocation_reason;
    if (reason) lines.push([why.revoked, reason]);
  } else if (data.verdict === "suspended") {
    const record = lastOf(data.history, "SUSPEND");
    if (record && record.reason_text) lines.push([why.suspended, record.reason_text]);
  } else if (data.verdict === "superseded" && data.version) {
    lines.push([why.current, t("versionN")(data.version)]);
  }
  const failed = (data.checks || []).find((c) => !c.ok);
  const reason = data.reason || (failed && failed.reason) || "";
  if (reason && data.verdict !== "superseded") lines.push([why.failed, reasonText(reason), reason]);
  const m = t("meta");
  const meta = [];
  if (data.format) meta.push([m.format, data.format.toUpperCase()]);
  if (data.status_source) meta.push([m.source, data.status_source === "ledger" ? t("sources").ledger : t("sources").bundle]);
  if (data.verdict === "forged" && data.identifier) meta.push([why.claimed, data.identifier, true]);
  if (data.digest_sm3) meta.push([m.digest, data.digest_sm3, true]);
  const parts = [verdictBanner(data.verdict, title, text, lines, meta)];
  // a forged file's claims are not shown as facts: only the checks that refuted it
  const trusted = data.verdict !== "forged" && data.status;
  const columns = el("div", { class: "result-grid" });
  const left = el("div", { class: "col" });
  if (trusted) left.append(fieldsPanel(data));
  if (trusted || data.verdict === "unknown") left.append(historyPanel(data.history || []));
  columns.append(left, el("div", { class: "col" }, checksPanel(data.checks || [])));
  if (!left.childElementCount) {
    columns.classList.add("result-grid--single");
    left.remove();
  }
  parts.push(columns);
  return parts;
}

function renderProblem(problem) {
  const notFound = problem.reason === "state.unknown_licence";
  const kind = notFound ? "notFound" : "error";
  const [title, fallback] = t("verdicts")[kind];
  const text = notFound ? fallback : reasonText(problem.reason) || problem.detail || fallback;
  const code = problem.reason === "network" ? "" : problem.reason;
  const lines = code ? [[t("reasonCode"), "", code]] : [];
  return [verdictBanner(kind, title, text, lines, [])];
}

function render(state) {
  const body = $("result-body");
  body.replaceChildren();
  if (state.kind === "working") {
    body.append(el("p", { class: "working" }, el("span", { class: "spinner", "aria-hidden": "true" }), t("working")));
    return;
  }
  body.append(...(state.kind === "verdict" ? renderVerdict(state.data) : renderProblem(state.data)));
}

function show(state) {
  shown = state;
  const body = $("result-body");
  body.setAttribute("aria-busy", state.kind === "working" ? "true" : "false");
  render(state);
  const top = body.getBoundingClientRect().top;
  if (state.kind !== "working" && (top < 0 || top > window.innerHeight - 120)) {
    const still = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    $("result").scrollIntoView({ block: "start", behavior: still ? "auto" : "smooth" });
  }
}

// -- requests ---------------------------------------------------------------------------------

async function call(request) {
  show({ kind: "working" });
  let response;
  try {
    response = await request();
  } catch (_) {
    show({ kind: "problem", data: { reason: "network", detail: "" } });
    return;
  }
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (response.ok && data && data.verdict) show({ kind: "verdict", data });
  else show({ kind: "problem", data: data && data.reason ? data : { reason: `http.${response.status}`, detail: `HTTP ${response.status}` } });
}

function fieldError(id, key) {
  const err = $(id);
  const input = $(id === "id-error" ? "licence-id" : "licence-file");
  if (key) {
    err.dataset.key = key;
    err.textContent = t(key);
    err.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  } else {
    err.hidden = true;
    delete err.dataset.key;
    input.removeAttribute("aria-invalid");
  }
}

function lookup(identifier) {
  return call(() => fetch(`/v1/lookup/${encodeURIComponent(identifier)}`, { headers: { Accept: "application/json" } }));
}

function upload(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  return call(() => fetch("/v1/verify", { method: "POST", body: form, headers: { Accept: "application/json" } }));
}

function showFileName() {
  const file = $("licence-file").files[0];
  const name = $("file-name");
  name.textContent = file ? file.name : t("fileNone");
  name.classList.toggle("has-file", Boolean(file));
}

function submitFile(file) {
  if (!file) return fieldError("file-error", "fileEmpty");
  if (file.size > 20 * 1024 * 1024) return fieldError("file-error", "fileTooLarge");
  fieldError("file-error", null);
  return upload(file);
}

async function showLedger() {
  try {
    const response = await fetch("/healthz");
    if (!response.ok) return;
    const health = await response.json();
    $("ledger-origin").textContent = health.origin;
    $("ledger-size").textContent = String(health.tree_size);
  } catch (_) { /* the footer is informative only */ }
}

function init() {
  let saved = null;
  try { saved = localStorage.getItem(LANG_KEY); } catch (_) { saved = null; }
  setLang(saved || "zh", false);
  $("lang-toggle").addEventListener("click", () => setLang(lang === "zh" ? "en" : "zh", true));

  $("lookup-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("licence-id").value.trim();
    if (!value) return fieldError("id-error", "idEmpty");
    fieldError("id-error", null);
    return lookup(value);
  });
  $("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    return submitFile($("licence-file").files[0]);
  });
  $("licence-file").addEventListener("change", () => {
    fieldError("file-error", null);
    showFileName();
  });

  const zone = $("upload-form");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("card--drop"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("card--drop"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("card--drop");
    const files = event.dataTransfer && event.dataTransfer.files;
    if (files && files.length) {
      $("licence-file").files = files;
      showFileName();
      submitFile(files[0]);
    }
  });

  // /v/<identifier>: the address a licence's QR code carries
  const match = /^\/v\/(.+)$/.exec(location.pathname);
  if (match) {
    let identifier = "";
    try { identifier = decodeURIComponent(match[1]); } catch (_) { identifier = ""; }
    if (identifier) {
      $("licence-id").value = identifier;
      lookup(identifier);
    }
  }
  showLedger();
}

document.addEventListener("DOMContentLoaded", init);
