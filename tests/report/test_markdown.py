"""The Markdown summary: the hand-made plan of tests/report/test_excel.py (figures worked out there)."""

from __future__ import annotations

from pathlib import Path

import pytest

from optimizer.errors import UsageError
from optimizer.report.markdown import render_markdown, write_markdown
from tests.report.test_excel import small_case


def test_summary_has_the_headline_and_every_server(tmp_path: Path) -> None:
    case = small_case(tmp_path)
    text = render_markdown(case.plan, case.rs)
    assert text.startswith("# GPU purchase plan: Bank rollout (hand-made plan)\n")
    # servers 549,255.16 + quote lines (switch 39,719.10, shipping 4,618.50) = 593,592.76
    assert "| **Capex** | 593,592.76 EUR |" in text
    assert "| **TCO over 3 years** | 828,129.90 EUR (energy 102,715.91 EUR, support/opex 131,821.24 EUR) |" in text
    assert "| **Power** | 26.3 kW IT, 35.5 kW facility |" in text
    assert "| **GPUs** | 24 x H20-96GB, 8 x L20-48GB |" in text
    # 3 x 155,551.08 and 2 x 41,300.96 (unit prices worked out in test_excel.py)
    assert "| HGX-H20-8GPU/H20-96GB/8 | 3 | 8 | 155,551.08 | 466,653.24 | 7.80 |" in text
    assert "| PCIe-8GPU-4U/L20-48GB/4 | 2 | 4 | 41,300.96 | 82,601.92 | 1.46 |" in text
    assert "| customer-service-assistant | 12 | 12.40 | 100% | 2000 / 60 |" in text
    assert "credit-memo-finetune" in text and "31.2 h of 48 h" in text
    # every table row has as many cells as its header
    for block in text.split("\n\n"):
        rows = [r for r in block.splitlines() if r.startswith("|")]
        if rows:
            assert len({r.count(" | ") for r in rows if not r.startswith("|--")}) == 1, block


def test_write_is_safe(tmp_path: Path) -> None:
    case = small_case(tmp_path)
    target = tmp_path / "plan.md"
    assert write_markdown(case.plan, case.rs, target) == target
    assert target.read_text(encoding="utf-8") == render_markdown(case.plan, case.rs)
    with pytest.raises(UsageError, match="already exists") as exc:
        write_markdown(case.plan, case.rs, target)
    assert "--force" in (exc.value.hint or "")
    write_markdown(case.plan, case.rs, target, force=True)
    with pytest.raises(UsageError, match="does not exist"):
        write_markdown(case.plan, case.rs, tmp_path / "missing" / "plan.md")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank-hand.yaml", "plan.md"]
