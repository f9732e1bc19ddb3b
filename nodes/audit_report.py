"""The audit report as a PDF an auditor can file (reportlab; Chinese text embedded).

Kept out of ``ledger`` on purpose: the ledger package never imports reportlab.
The PDF states what was checked, the numbers, the verdict, the first problem
(if any) and the tree head the audit ended at, so a later audit can prove
consistency with this one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from cert_formats.fonts import find_cjk_font
from ledger.audit import AuditReport

_STEPS = (
    ("条目 Entries", "leaf hash = SM3(0x00‖entry); canonical encoding; indexed columns"),
    ("记录 Records", "SM2 signatures, agency keys and scope, state transitions, nonces, time window"),
    ("区块 Blocks", "hash links, contiguous ranges, proposer SM2 signatures, Merkle roots"),
    ("树节点 Tree nodes", "every stored node equals the recomputed node"),
    ("检查点 Checkpoints", "node signatures (Ed25519 / SM2 notes), roots"),
    ("派生状态 Derived state", "licence status and agency registry equal the replay"),
)


def write_audit_pdf(report: AuditReport, path: Path) -> None:
    font = find_cjk_font().name
    title = ParagraphStyle("title", fontName=font, fontSize=18, leading=24, spaceAfter=6)
    body = ParagraphStyle("body", fontName=font, fontSize=10, leading=14)
    small = ParagraphStyle("small", fontName=font, fontSize=8, leading=11, textColor=colors.grey)
    verdict_color = colors.HexColor("#0a6b2d") if report.ok else colors.HexColor("#a40000")
    verdict = ParagraphStyle("verdict", fontName=font, fontSize=14, leading=20, textColor=verdict_color)

    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title="certledger audit report",
        author="certledger",
        subject=report.origin,
    )
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    story: list[object] = [
        Paragraph("账本审计报告 · Ledger audit report", title),
        Paragraph(f"日志 Origin: {report.origin}", body),
        Paragraph(f"生成时间 Generated: {now}", body),
        Spacer(1, 6 * mm),
        Paragraph(("结论：通过 · PASSED" if report.ok else "结论：未通过 · FAILED"), verdict),
        Spacer(1, 4 * mm),
    ]
    figures = [
        ["条目 Entries", str(report.entries)],
        ["区块 Blocks", str(report.blocks)],
        ["已验证签名 Signatures verified", str(report.signatures)],
        ["检查点 Checkpoints", str(report.checkpoints)],
        ["树大小 Tree size", str(report.tree_size)],
        ["根哈希 Root (SM3)", report.root],
        ["证照 Licences", ", ".join(f"{k} {v}" for k, v in sorted(report.licences.items())) or "—"],
        ["耗时 Duration", f"{report.seconds:.2f} s"],
        ["问题数 Findings", str(report.finding_count)],
    ]
    story.append(_table(figures, font, [55 * mm, 119 * mm]))
    story += [Spacer(1, 6 * mm), Paragraph("检查项 What was checked", body), Spacer(1, 2 * mm)]
    story.append(_table([[a, b] for a, b in _STEPS], font, [45 * mm, 129 * mm]))
    if report.findings:
        story += [Spacer(1, 6 * mm), Paragraph("问题 Findings (first bad place first)", body), Spacer(1, 2 * mm)]
        rows: list[list[object]] = [["位置 Where", "原因码 Reason", "说明 Message"]]
        rows += [[f.where, f.reason, Paragraph(f.message, small)] for f in report.findings[:50]]
        story.append(_table(rows, font, [30 * mm, 40 * mm, 104 * mm], header=True))
    if report.evidence:
        story += [Spacer(1, 6 * mm), Paragraph(f"保存的证据 Evidence held: {len(report.evidence)}", body)]
    story += [
        Spacer(1, 8 * mm),
        Paragraph(
            "A later audit can prove the ledger was not rewritten since this report by a consistency proof "
            f"from tree size {report.tree_size} (root above): certledger proof consistency {report.tree_size}.",
            small,
        ),
    ]
    doc.build(story)


def _table(rows: Sequence[Sequence[object]], font: str, widths: list[float], *, header: bool = False) -> Table:
    table = Table(rows, colWidths=widths)
    style = [
        ("FONTNAME", (0, 0), (-1, -1), font),
        ("FONTSIZE", (0, 0), (-1, -1), 9),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#9aa5b1")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#f0f3f6")),
    ]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde4ea")))
    table.setStyle(TableStyle(style))
    return table
