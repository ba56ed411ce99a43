"""The workbook of a length-mix plan: the routed buckets, their replica time as formulas that a
real spreadsheet application (LibreOffice) recalculates to the plan's own figures."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from optimizer.model.pipeline import settings_of, solve_scenario
from optimizer.report.workbook import write_workbook
from tests.model.helpers import scenario
from tests.report.libreoffice import needs_libreoffice, recalculate

MIX = [{"input_tokens": 300, "output_tokens": 400, "share": 0.8},
       {"input_tokens": 6000, "output_tokens": 200, "share": 0.2}]


@needs_libreoffice
def test_routed_buckets_recalculate(tmp_path: Path) -> None:
    w = {"name": "chat", "model": "Qwen2.5-7B", "precisions": ["bf16"], "requests_per_s": 6.0,
         "max_context": 8192, "slo": {"ttft_ms": 1000, "tpot_ms": 50}, "lengths": MIX}
    rs = scenario([w], constraints={"gpus": ["L20-48GB", "L40S-48GB"]}, headroom=0.8)
    plan = solve_scenario(rs, settings_of(rs, time_limit_s=30)).plan
    path = write_workbook(plan, rs, tmp_path / "mix.xlsx", force=True)
    [recalc] = recalculate([path], tmp_path / "recalc")
    ws = openpyxl.load_workbook(recalc, data_only=True)["Capacity"]
    rows = list(ws.iter_rows(values_only=True))
    head = next(i for i, r in enumerate(rows) if r[0] == "Length buckets routed to deployments")
    table = [r for r in rows[head + 2:] if r[0] == "chat"]
    expected = [(d, b) for d in plan.deployments for b in d.buckets]
    assert len(table) == len(expected) >= 2
    busy: dict[int, float] = {}
    for r, (d, b) in zip(table, expected, strict=True):
        assert (r[5], r[6]) == (b.input_tokens, b.output_tokens)
        # replicas busy = planned / (capacity per replica x headroom), recalculated by LibreOffice
        assert r[9] == pytest.approx(b.planned_rps / (b.capacity_rps * 0.8), rel=1e-9)
        busy[id(d)] = busy.get(id(d), 0.0) + r[9]
    for d in plan.deployments:
        assert busy[id(d)] <= d.replicas * (1 + 1e-9)
    assert sum(r[8] for r in table) == pytest.approx(6.0)
