"""The Excel purchase request, checked in a real spreadsheet application (LibreOffice, headless).

The plans here are written out by hand so every figure can be checked on paper (the solver builds
the same Plan type; a test below also runs it). Prices are catalog estimates converted at 0.9237
EUR/USD, the same product ``price_of`` forms in optimizer/sizing/candidates.py:

    HGX-H20-8GPU system: 72,400 USD + 8 x 12,000 USD = 168,400 x 0.9237 = 155,551.08 EUR, x 3 = 466,653.24
    PCIe-8GPU-4U chassis 26,000 x 0.9237 = 24,016.20 EUR + 4 x L20-48GB 4,321.19 (scenario override)
        = 41,300.96 EUR, x 2 = 82,601.92                                 hardware = 549,255.16 EUR
    quote lines: leaf switch 43,000 x 0.9237 = 39,719.10 (dated 2024-08-22: stale), shipping 5 x 923.70
    capex = 549,255.16 + 39,719.10 + 4,618.50 = 593,592.76 EUR
    power: 3 x (4,600 + 8 x 400) + 2 x (360 + 4 x 275) = 23,400 + 2,920 = 26,320 W
    energy = 26.32 kW x 1.35 x 8,760 h x 0.11 EUR/kWh = 34,238.6352 EUR a year, x 3 = 102,715.9056
    support (yearly opex: quote.support off) = 549,255.16 x 0.08 = 43,940.4128 a year, x 3 = 131,821.2384
    TCO = 593,592.76 + 102,715.9056 + 131,821.2384 = 828,129.9040 EUR
    schedule (30% on order in year 1, the rest on delivery in year 2, life 4 years from year 2):
        year 1: 0.3 x capex + energy + support, year 2: 0.7 x capex + energy + support, year 3: energy +
        support, years 4-5: depreciation only

The edited copy ("edit") raises the PCIe-8GPU-4U quantity from 2 to 12, contingency to 10% and the
horizon to 4 years:
    servers 15, L20 GPUs 48 (12 x 4), H20 GPUs 24; power 26,320 + 10 x 1,460 = 40,920 W; 72 U
    racks = max(2 placed, ceil(40.92 kW / 17.3 kW) = 3, ceil(72 U / 42 U) = 2) = 3
    hardware 549,255.16 + 10 x 41,300.96 = 962,264.76; subtotal 1,006,602.36; grand total x 1.10
    = 1,107,262.596 EUR > budget 1,100,000 (within it at 0% contingency): over budget
(chassis/GPU prices and powers: catalogs/servers.yaml, catalogs/gpus.yaml.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import openpyxl
import pytest
import yaml

from optimizer.errors import UsageError
from optimizer.loaders import ResolvedScenario, load_scenario
from optimizer.report.safe_write import safe_write
from optimizer.report.workbook import (
    BOM,
    CAPACITY,
    RACKS,
    SCHEDULE,
    SHEETS,
    SUMMARY,
    build_workbook,
    default_workbook_path,
    write_workbook,
)
from optimizer.report.workbook.summary import OVER_BUDGET
from optimizer.schema.plan import (
    Deployment,
    FinetuneAssignment,
    MemoryAccount,
    PlacedReplica,
    PlacedServer,
    Plan,
    QuoteLine,
    ServerLine,
    SolverReport,
    WorkloadCoverage,
)
from tests.report.libreoffice import (
    PDFTOTEXT,
    needs_libreoffice,
    pdf_page_sizes,
    pdf_pages,
    recalculate,
    to_pdf,
)

RATE = 0.9237
HARDWARE_EUR = 549_255.16
SWITCH_EUR = 39_719.10
SHIP_EUR = 923.70
CAPEX_EUR = 593_592.76
POWER_W = 26_320.0
ENERGY_YEAR = 26.32 * 1.35 * 8760 * 0.11
SUPPORT_YEAR = HARDWARE_EUR * 0.08
TCO_EUR = 828_129.9040
BUDGET_EUR = 1_100_000.0
# the edited copy
EDIT_QTY = 12
EDIT_HARDWARE = HARDWARE_EUR + 10 * 41_300.96
EDIT_SUBTOTAL = EDIT_HARDWARE + SWITCH_EUR + 5 * SHIP_EUR
EDIT_GRAND = EDIT_SUBTOTAL * 1.10
EDIT_POWER_W = POWER_W + 10 * 1460

#: pdftotext -bbox word height per point of font size (Carlito, LibreOffice's Calibri): an 8 pt word
#: is 10.39 pt tall (measured: 8, 10, 11, 14 pt give 10.39, 13.01, 14.30, 18.20).
BBOX_PER_PT = 1.2988
MIN_FONT_PT = 8.0

C_NS = "http://schemas.openxmlformats.org/drawingml/2006/chart"
ERRORS = ("#REF!", "#VALUE!", "#NAME?", "#DIV/0!", "#N/A", "#NUM!", "#NULL!", "Err:", "#ERR")


@dataclass
class Case:
    plan: Plan
    rs: ResolvedScenario


def _scenario(tmp: Path, data: dict[str, Any], name: str) -> ResolvedScenario:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_scenario(path)


def _solver(candidates: int = 120) -> SolverReport:
    return SolverReport(solver="highs", status="optimal", objective_name="capex", objective=CAPEX_EUR,
                        bound=CAPEX_EUR, gap=0.0, solve_time_s=0.42, objective_time_s=0.3, candidates=candidates,
                        variables=300,
                        constraints=210, time_limit_s=60.0, node_limit=100_000, seed=0,
                        stopped_by="optimal", tiebreak_stopped_by="optimal", tiebreak_gap=0.0)


def small_case(tmp: Path) -> Case:
    """A bank-like plan: 3 HGX H20 servers and 2 PCIe L20 servers (figures in the module docstring)."""
    data = {
        "name": "Bank rollout (hand-made plan)", "currency": "EUR", "usd_to_currency": RATE,
        "description": "Customer-service chat on Qwen2.5-72B, a coding assistant and a LoRA fine-tune.",
        "horizon_years": 3,
        "site": {"power_kw": 160, "pue": 1.35, "racks": 8, "rack_power_kw": 17.3, "rack_units": 42,
                 "electricity_per_kwh": 0.11},
        "constraints": {"budget": BUDGET_EUR, "gpus": ["H20-96GB", "L20-48GB"]},
        "headroom": 0.8, "opex_per_year_fraction": 0.08, "prices": {"L20-48GB": 4321.19},
        "finance": {"payment_on_order_pct": 0.3, "delivery_lag_years": 1, "useful_life_years": 4,
                    "discount_rate": 0.08,
                    "approval": {"requester": "A. Analyst", "cost_centre": "CC-4711", "approver": "B. Controller",
                                 "date": "2026-12-01"}},
        "quote": {"support": False},
        "workloads": [
            {"kind": "inference", "name": "customer-service-assistant", "model": "Qwen/Qwen2.5-72B-Instruct",
             "precisions": ["fp8"], "requests_per_s": 12, "input_tokens": 1500, "output_tokens": 300,
             "max_context": 8192, "slo": {"ttft_ms": 2000, "tpot_ms": 60}, "min_replicas": 2},
            {"kind": "inference", "name": "dev-code-assistant", "model": "Qwen/Qwen2.5-7B-Instruct",
             "precisions": ["bf16"], "requests_per_s": 6, "input_tokens": 2000, "output_tokens": 250,
             "max_context": 8192, "slo": {"ttft_ms": 1000, "tpot_ms": 40}},
            {"kind": "finetune", "name": "credit-memo-finetune", "model": "Qwen/Qwen2-7B", "method": "lora",
             "dataset_tokens": 2.0e9, "epochs": 2, "deadline_hours": 48},
        ],
    }
    rs = _scenario(tmp, data, "bank-hand")
    h20 = ServerLine(sku="HGX-H20-8GPU/H20-96GB/8", chassis="HGX-H20-8GPU", gpu="H20-96GB", gpus_per_server=8,
                     count=3, chassis_price=72400 * RATE, gpu_unit_price=12000 * RATE,
                     unit_price=72400 * RATE + 8 * 12000 * RATE, power_w=4600 + 8 * 400, rack_units=8,
                     price_source="catalog estimate", integrated=True)
    l20 = ServerLine(sku="PCIe-8GPU-4U/L20-48GB/4", chassis="PCIe-8GPU-4U", gpu="L20-48GB", gpus_per_server=4,
                     count=2, chassis_price=26000 * RATE, gpu_unit_price=4321.19,
                     unit_price=26000 * RATE + 4 * 4321.19, power_w=360 + 4 * 275, rack_units=4,
                     price_source="scenario override")
    hardware = 3 * h20.unit_price + 2 * l20.unit_price
    quotes = [
        QuoteLine(item="leaf-switch-400g-64p", category="network", vendor="NVIDIA (Mellanox)",
                  description="Quantum-2 QM9700 64-port NDR 400 Gb/s InfiniBand switch", part_number="MQM9700-NS2F",
                  quantity=1, unit="switch", unit_price=SWITCH_EUR, extended_price=SWITCH_EUR,
                  price_date=date(2024, 8, 22), source="public price list (hand-made test line)", confidence="low",
                  stale=True, basis="ceil(16 ports / 32 per switch)"),
        QuoteLine(item="shipping-hand", category="shipping", vendor="forwarder",
                  description="Freight and rack-and-stack",
                  part_number=None, quantity=5, unit="server", unit_price=SHIP_EUR, extended_price=5 * SHIP_EUR,
                  price_date=date.today() - timedelta(days=30), source="forwarder quote (hand-made test line)",
                  confidence="high", stale=False, basis="5 servers"),
    ]
    capex = hardware + SWITCH_EUR + 5 * SHIP_EUR
    power_w = 3 * h20.power_w + 2 * l20.power_w
    energy = power_w / 1000 * 1.35 * 8760 * 3 * 0.11
    opex = hardware * 0.08 * 3
    cs = Deployment(workload="customer-service-assistant", model="Qwen2.5-72B", sku=h20.sku, gpu="H20-96GB", tp=4,
                    pp=1, precision="fp8", kv_dtype="auto", replicas=5, gpus_per_replica=4, capacity_rps=3.1,
                    planned_rps=12.0, ttft_ms=850.0, tpot_ms=41.5, batch=48, limited_by="tpot",
                    weights_gib_per_gpu=17.9, kv_cache_tokens=600_000, perf_source="model",
                    memory=MemoryAccount(gpu_memory_gib=95.58, budget_gib=86.02, activation_peak_gib=1.2,
                                         non_torch_gib=0.55, kv_cache_gib=64.0, cuda_graph_gib=1.05,
                                         max_model_len=8192, max_concurrency=73.2))
    dev = Deployment(workload="dev-code-assistant", model="Qwen2.5-7B", sku=l20.sku, gpu="L20-48GB", tp=1, pp=1,
                     precision="bf16", kv_dtype="auto", replicas=6, gpus_per_replica=1, capacity_rps=1.4,
                     planned_rps=6.0, ttft_ms=420.0, tpot_ms=27.0, batch=20, limited_by="ttft",
                     weights_gib_per_gpu=14.2, kv_cache_tokens=300_000, perf_source="model",
                     memory=MemoryAccount(gpu_memory_gib=44.99, budget_gib=40.49, activation_peak_gib=0.9,
                                          non_torch_gib=0.35, kv_cache_gib=24.8, cuda_graph_gib=0.4,
                                          max_model_len=8192, max_concurrency=36.6))
    ft = FinetuneAssignment(workload="credit-memo-finetune", model="Qwen2-7B", sku=h20.sku, gpu="H20-96GB",
                            gpus=4, method="lora", hours=31.2, deadline_hours=48, peak_gib_per_gpu=22.5)

    def rep(w: str, tp: int, gpus: list[int]) -> PlacedReplica:
        return PlacedReplica(workload=w, tp=tp, pp=1, gpus=gpus)

    cs_w, dev_w = cs.workload, dev.workload
    placement = [
        PlacedServer(index=1, sku=h20.sku, rack=1, replicas=[rep(cs_w, 4, [0, 1, 2, 3]), rep(cs_w, 4, [4, 5, 6, 7])],
                     free_gpus=0),
        PlacedServer(index=2, sku=h20.sku, rack=1, replicas=[rep(cs_w, 4, [0, 1, 2, 3]), rep(cs_w, 4, [4, 5, 6, 7])],
                     free_gpus=0),
        PlacedServer(index=3, sku=h20.sku, rack=2, replicas=[rep(cs_w, 4, [0, 1, 2, 3])],
                     finetune=["credit-memo-finetune"], free_gpus=0),
        PlacedServer(index=4, sku=l20.sku, rack=2, replicas=[rep(dev_w, 1, [i]) for i in range(4)], free_gpus=0),
        PlacedServer(index=5, sku=l20.sku, rack=2, replicas=[rep(dev_w, 1, [0]), rep(dev_w, 1, [1])], free_gpus=2),
    ]
    coverage = [
        WorkloadCoverage(workload=cs_w, kind="inference", demand_rps=12, capacity_rps=5 * 3.1 * 0.8,
                         served_fraction=1.0, slo_ttft_ms=2000, slo_tpot_ms=60),
        WorkloadCoverage(workload=dev_w, kind="inference", demand_rps=6, capacity_rps=6 * 1.4 * 0.8,
                         served_fraction=1.0, slo_ttft_ms=1000, slo_tpot_ms=40),
        WorkloadCoverage(workload=ft.workload, kind="finetune", demand_rps=None, capacity_rps=None,
                         served_fraction=1.0),
    ]
    plan = Plan(scenario=rs.scenario.name, currency="EUR", status="optimal", objective=capex, gap=0.0, capex=capex,
                hardware_capex=hardware, quote_lines=quotes, total_with_tax=capex,
                tco=capex + energy + opex, energy_cost=energy, opex_cost=opex, power_kw=power_w / 1000,
                facility_power_kw=power_w / 1000 * 1.35, racks_used=2, rack_units_used=3 * 8 + 2 * 4,
                gpus_by_type={"H20-96GB": 24, "L20-48GB": 8}, servers=[h20, l20], deployments=[cs, dev],
                finetunes=[ft], coverage=coverage, placement=placement, solver=_solver(), headroom=0.8,
                horizon_years=3, notes=["procure 0.1.0; prices are dated estimates"])
    return Case(plan, rs)


PCIE_GPUS = ("L40S-48GB", "L20-48GB", "L4-24GB", "A10-24GB", "RTX-4090-24GB", "H100-PCIe-80GB", "H100-NVL-94GB")


def big_case(tmp: Path) -> Case:
    """Every PCIe SKU of the catalog bought 1-3 times (49 chassis lines, 7 GPU lines, 98 servers):
    long enough that the Bill of Materials and Deployment sheets print on several pages."""
    data = {
        "name": "Every PCIe SKU (print test)", "currency": "USD",
        "site": {"power_kw": 2000, "pue": 1.4, "racks": 60, "rack_power_kw": 20, "electricity_per_kwh": 0.1},
        "constraints": {"gpus": list(PCIE_GPUS), "servers": ["PCIe-8GPU-4U", "PCIe-4GPU-4U"]},
        "quote": {"support": False},
        "workloads": [{"kind": "inference", "name": "chat", "model": "Qwen/Qwen2.5-7B-Instruct",
                       "requests_per_s": 1, "input_tokens": 100, "output_tokens": 100, "max_context": 4096,
                       "slo": {"ttft_ms": 2000, "tpot_ms": 60}}],
    }
    rs = _scenario(tmp, data, "every-pcie-sku")
    servers: list[ServerLine] = []
    placement: list[PlacedServer] = []
    for chassis_name in ("PCIe-8GPU-4U", "PCIe-4GPU-4U"):
        chassis = rs.catalog.servers[chassis_name]
        for gname in PCIE_GPUS:
            gpu = rs.catalog.gpus[gname]
            for k in chassis.allowed_populations:
                count = len(servers) % 3 + 1
                servers.append(ServerLine(
                    sku=f"{chassis_name}/{gname}/{k}", chassis=chassis_name, gpu=gname, gpus_per_server=k, count=count,
                    chassis_price=chassis.base_price.usd, gpu_unit_price=gpu.price.usd,
                    unit_price=chassis.base_price.usd + k * gpu.price.usd, power_w=chassis.base_power_w + k * gpu.tdp_w,
                    rack_units=chassis.rack_units, price_source="catalog estimate"))
                for _ in range(count):
                    placement.append(PlacedServer(index=len(placement) + 1, sku=servers[-1].sku,
                                                  rack=len(placement) // 8 + 1, replicas=[], free_gpus=k))
    servers.sort(key=lambda s: s.sku)
    capex = sum(s.unit_price * s.count for s in servers)
    power_w = sum(s.power_w * s.count for s in servers)
    gpus: dict[str, int] = {}
    for s in servers:
        gpus[s.gpu] = gpus.get(s.gpu, 0) + s.count * s.gpus_per_server
    energy = power_w / 1000 * 1.4 * 8760 * 3 * 0.1
    plan = Plan(scenario=rs.scenario.name, currency="USD", status="feasible", objective=capex, gap=0.0123,
                capex=capex, hardware_capex=capex, total_with_tax=capex,
                tco=capex + energy, energy_cost=energy, opex_cost=0.0, power_kw=power_w / 1000,
                facility_power_kw=power_w / 1000 * 1.4, racks_used=placement[-1].rack,
                rack_units_used=sum(s.rack_units * s.count for s in servers), gpus_by_type=gpus, servers=servers,
                deployments=[], finetunes=[], coverage=[], placement=placement, solver=_solver(2000),
                headroom=0.8, horizon_years=3)
    return Case(plan, rs)


def real_case(tmp: Path) -> Case | None:
    """A plan from the real pipeline (solve_scenario) on a small scenario; None when this checkout has
    no pipeline yet. Other failures propagate (the fixture hands them to the test that needs the plan)."""
    try:
        from optimizer.model.pipeline import settings_of, solve_scenario
    except ImportError:
        return None
    data = {
        "name": "Small real plan", "currency": "USD",
        "site": {"power_kw": 100, "pue": 1.3, "racks": 4, "rack_power_kw": 20, "electricity_per_kwh": 0.12},
        "constraints": {"gpus": ["H20-96GB", "L20-48GB"]}, "opex_per_year_fraction": 0.05,
        "workloads": [{"kind": "inference", "name": "chat", "model": "Qwen/Qwen2-7B-Instruct",
                       "precisions": ["bf16"], "requests_per_s": 2, "input_tokens": 1000, "output_tokens": 200,
                       "max_context": 4096, "slo": {"ttft_ms": 2000, "tpot_ms": 60}}],
    }
    rs = _scenario(tmp, data, "small-real")
    try:
        result = solve_scenario(rs, settings_of(rs, time_limit_s=10.0))
    except ImportError:  # a sizing module the pipeline needs is not in this checkout yet
        return None
    return Case(result.plan, rs)


# ------------------------------------------------------------------------------------------------
# One LibreOffice run per format for the whole module
# ------------------------------------------------------------------------------------------------


@dataclass
class Rendered:
    small: Case
    big: Case
    real: Case | None
    real_error: str | None
    files: dict[str, Path]        # as written by procure (and the edited copy)
    recalc: dict[str, Path]       # after LibreOffice recalculation
    pdf: dict[str, Path]


def _bom_rows(ws: Any) -> dict[str, int]:
    """Description's first word (column C) -> row of the first such line, and the total rows."""
    out: dict[str, int] = {}
    for row in range(5, ws.max_row + 1):
        label = ws.cell(row, 3).value
        if not isinstance(label, str):
            continue
        if label.startswith(("Servers (", "Subtotal", "Contingency", "Tax", "Grand total")):
            out[label.split()[0]] = row
        elif ws.cell(row, 2).value:
            out.setdefault(label.split()[0], row)
    return out


def _input_row(ws: Any, label: str) -> int:
    return next(r for r in range(1, ws.max_row + 1) if ws.cell(r, 1).value == label)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    tmp = tmp_path_factory.mktemp("excel")
    small, big = small_case(tmp), big_case(tmp)
    real, real_error = None, None
    try:
        real = real_case(tmp)
    except Exception as exc:  # reported by test_real_plan_workbook_recalculates_to_capex
        real_error = f"{type(exc).__name__}: {exc}"
    files = {"small": write_workbook(small.plan, small.rs, tmp / "small.xlsx"),
             "big": write_workbook(big.plan, big.rs, tmp / "big.xlsx")}
    if real is not None:
        files["real"] = write_workbook(real.plan, real.rs, tmp / "real.xlsx")
    # A finance user's edits: 10 more PCIe servers, 10% contingency, a 4-year horizon.
    wb = openpyxl.load_workbook(files["small"])
    rows = _bom_rows(wb[BOM])
    wb[BOM].cell(rows["PCIe-8GPU-4U"], 6).value = EDIT_QTY
    ws = wb["Assumptions"]
    ws.cell(_input_row(ws, "Contingency"), 2).value = 0.10
    ws.cell(_input_row(ws, "TCO horizon"), 2).value = 4
    wb.save(tmp / "edit.xlsx")
    files["edit"] = tmp / "edit.xlsx"
    if shutil.which("soffice") is None:
        return Rendered(small, big, real, real_error, files, {}, {})
    names = list(files)
    recalc = dict(zip(names, recalculate([files[n] for n in names], tmp / "recalc"), strict=True))
    pdf_names = [n for n in ("small", "big", "real") if n in files]
    pdf = dict(zip(pdf_names, to_pdf([files[n] for n in pdf_names], tmp / "pdf"), strict=True))
    return Rendered(small, big, real, real_error, files, recalc, pdf)


def _values(path: Path) -> openpyxl.Workbook:
    return openpyxl.load_workbook(path, data_only=True)


def _label_value(ws: Any, label: str, col: int = 4) -> Any:
    """The Summary's value (column D) on the row labelled ``label`` (column A)."""
    for row in ws.iter_rows(min_col=1, max_col=col):
        if row[0].value == label:
            return row[col - 1].value
    raise AssertionError(f"{label!r} not found on {ws.title}")


def _schedule(ws: Any) -> list[dict[str, Any]]:
    """Year rows of the Schedule sheet by header word."""
    keys = {1: "year", 2: "share", 3: "order", 4: "delivery", 5: "depreciation", 6: "energy", 7: "support",
            8: "other", 9: "cash", 10: "factor", 11: "discounted"}
    out = []
    for r in range(5, ws.max_row + 1):
        if not isinstance(ws.cell(r, 1).value, int | float):
            break
        out.append({k: ws.cell(r, c).value for c, k in keys.items()})
    return out


def _schedule_total(ws: Any, col: int) -> float:
    r = next(r for r in range(5, ws.max_row + 1) if ws.cell(r, 1).value == "Total")
    return float(ws.cell(r, col).value)


# ------------------------------------------------------------------------------------------------
# Structure (openpyxl only)
# ------------------------------------------------------------------------------------------------


def test_sheets_formulas_and_named_inputs(tmp_path: Path) -> None:
    case = small_case(tmp_path)
    wb = build_workbook(case.plan, case.rs)
    assert tuple(wb.sheetnames) == SHEETS
    ws = wb[BOM]
    rows = _bom_rows(ws)
    # the HGX board is one system line with its GPU count; the PCIe server is chassis + cards
    system = rows["HGX-H20-8GPU"]
    assert ws.cell(system, 2).value == "Server system"
    assert ws.cell(system, 3).value.startswith("HGX-H20-8GPU system with 8 x H20-96GB")
    assert not any(str(ws.cell(r, 3).value).startswith("H20-96GB") for r in range(5, ws.max_row + 1))
    card = rows["L20-48GB"]
    assert ws.cell(card, 2).value == "GPU"
    assert ws.cell(card, 6).value == f"=F{rows['PCIe-8GPU-4U']}*4"
    assert ws.cell(card, 8).value == f"=F{card}*G{card}"
    for r in (system, card, rows["Quantum-2"], rows["Freight"]):
        assert str(ws.cell(r, 7).value).startswith("='Assumptions'!$B$"), r
    assert ws.cell(rows["Quantum-2"], 5).value == "MQM9700-NS2F"
    assert ws.cell(rows["Quantum-2"], 9).value == date(2024, 8, 22)
    assert ws.cell(rows["Quantum-2"], 11).value == "low"
    assert ws.cell(rows["Grand"], 8).value == "=BOM_Subtotal+BOM_Contingency+BOM_Tax"
    rules = [(str(cf.sqref), rule.formula[0]) for cf in ws.conditional_formatting for rule in cf.rules]
    assert (f"I5:I{rows['Servers'] - 1}", "AND(ISNUMBER($I5),$I5<Quote_Date-365)") in rules
    names = wb.defined_names
    for name in ("Contingency_Pct", "Tax_Pct", "Budget", "Payment_On_Order_Pct", "Delivery_Lag_Years",
                 "Useful_Life_Years", "Discount_Rate", "Horizon_Years", "Opex_Fraction_Per_Year",
                 "Other_Opex_Per_Year", "Quote_Date", "Site_PUE", "Electricity_Price_kWh", "Rack_Power_kW",
                 "Rack_Units_Per_Rack", "Planning_Headroom", "BOM_Hardware", "BOM_Subtotal", "BOM_Grand_Total",
                 "BOM_Power_W", "BOM_Rack_Units", "Servers_Total", "Racks_Needed", "Schedule_Cash_Out",
                 "Schedule_NPV"):
        assert name in names, name
    assert names["Contingency_Pct"].attr_text.startswith("'Assumptions'!$B$")
    # Summary: every derived figure a formula, labels built from the inputs
    s = wb[SUMMARY]
    by_label = {str(s.cell(r, 1).value): s.cell(r, 4).value for r in range(1, s.max_row + 1)}
    assert by_label["Servers"] == "=Servers_Total"
    assert by_label['="Racks (of "&Racks_Available&" available)"'] == "=Racks_Needed"
    assert by_label['="TCO over "&Horizon_Years&" years (total cash out)"'] == "=Schedule_Cash_Out"
    assert by_label["Grand total (with contingency and tax)"] == "=BOM_Grand_Total"
    assert by_label["GPUs: L20-48GB"] == f"='Bill of Materials'!$F${card}"
    assert by_label["GPUs: H20-96GB"] == f"='Bill of Materials'!$F${system}*8"
    cf = [(str(c.sqref), r.formula[0]) for c in s.conditional_formatting for r in c.rules]
    grand = next(r for r in range(1, s.max_row + 1) if s.cell(r, 1).value == "Grand total (with contingency and tax)")
    assert any(f == OVER_BUDGET and f"A{grand}:D{grand}" in sq for sq, f in cf), cf
    assert OVER_BUDGET == "AND(ISNUMBER(Budget),BOM_Grand_Total>Budget)"
    assert not any("gap" in str(s.cell(r, 1).value).lower() for r in range(1, s.max_row + 1))
    # power per unit is a formula over the Assumptions power table
    racks = wb[RACKS]
    w_cells = [racks.cell(r, 3).value for r in range(1, racks.max_row + 1)
               if racks.cell(r, 1).value == "HGX-H20-8GPU/H20-96GB/8"]
    assert w_cells and re.fullmatch(r"='Assumptions'!\$B\$\d+\+8\*'Assumptions'!\$B\$\d+", w_cells[0])
    # finance formatting: header rows repeat on every printed page, nothing scaled below 75%
    for name in SHEETS:
        sheet = wb[name]
        assert sheet.print_title_rows, name
        if not sheet.sheet_properties.pageSetUpPr.fitToPage:
            assert sheet.page_setup.scale >= 75 and sheet.print_title_cols, name
    assert wb[SUMMARY].page_setup.orientation == "portrait"
    assert ws.print_title_rows == "$4:$4"


def _ref(axis: Any) -> str:
    ref = axis.strRef or axis.numRef
    return str(ref.f)


def test_charts_are_native_and_reference_the_tables(tmp_path: Path) -> None:
    case = small_case(tmp_path)
    path = write_workbook(case.plan, case.rs, tmp_path / "charts.xlsx")
    wb = openpyxl.load_workbook(path)
    summary = wb[SUMMARY]
    (chart,) = summary._charts
    first = next(r for r in range(1, summary.max_row + 1) if summary.cell(r, 1).value == "Category") + 1
    last = next(r for r in range(first, summary.max_row + 1) if summary.cell(r, 1).value is None) - 1
    assert summary.cell(first, 1).value.startswith("Servers")
    (series,) = chart.series
    assert series.val.numRef.f == f"'Summary'!$D${first}:$D${last}"
    assert _ref(series.cat) == f"'Summary'!$A${first}:$A${last}"
    cap = wb[CAPACITY]
    (chart,) = cap._charts
    (share,) = chart.series
    assert cap["D3"].value == "Capacity (% of demand)"
    assert share.val.numRef.f == "'Capacity'!$D$4:$D$5"
    assert [cap["A4"].value, cap["A5"].value] == ["customer-service-assistant", "dev-code-assistant"]
    with zipfile.ZipFile(path) as z:
        charts = sorted(n for n in z.namelist() if n.startswith("xl/charts/chart"))
        assert len(charts) == 2
        trees = [ElementTree.fromstring(z.read(n)) for n in charts]
    for tree in trees:
        assert tree.find(f".//{{{C_NS}}}barChart") is not None


# ------------------------------------------------------------------------------------------------
# LibreOffice: recalculation
# ------------------------------------------------------------------------------------------------


def _errors(path: Path) -> list[str]:
    wb = _values(path)
    bad = []
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if isinstance(c.value, str) and c.value.startswith(ERRORS):
                    bad.append(f"{ws.title}!{c.coordinate}={c.value}")
    return bad


@needs_libreoffice
def test_grand_total_equals_capex_to_the_cent(rendered: Rendered) -> None:
    plan = rendered.small.plan
    assert abs(plan.capex - CAPEX_EUR) < 0.005 and plan.power_kw * 1000 == POWER_W
    assert abs(plan.tco - TCO_EUR) < 0.005
    wb = _values(rendered.recalc["small"])
    ws = wb[BOM]
    rows = _bom_rows(ws)
    assert round(ws.cell(rows["Grand"], 8).value, 2) == CAPEX_EUR
    assert round(ws.cell(rows["Servers"], 8).value, 2) == HARDWARE_EUR
    assert ws.cell(rows["L20-48GB"], 6).value == 8
    assert round(ws.cell(rows["HGX-H20-8GPU"], 8).value, 2) == 466_653.24
    s = wb[SUMMARY]
    assert round(_label_value(s, "Grand total (with contingency and tax)"), 2) == CAPEX_EUR
    assert round(_label_value(s, "TCO over 3 years (total cash out)"), 2) == round(TCO_EUR, 2)
    assert _label_value(s, "IT power at full load") == pytest.approx(26.32)
    assert _label_value(s, "Racks (of 8 available)") == 2
    assert _label_value(s, "Servers") == 5
    assert _label_value(s, "GPUs: H20-96GB") == 24 and _label_value(s, "Rack units") == 32
    assert _label_value(s, "Budget check") == "within budget"
    sched = _schedule(wb[SCHEDULE])
    assert [r["year"] for r in sched] == [1, 2, 3, 4, 5]  # horizon 3, delivery year 2, life 4 -> year 5
    assert sched[0]["order"] == pytest.approx(0.3 * CAPEX_EUR) and sched[1]["delivery"] == pytest.approx(
        0.7 * CAPEX_EUR)
    assert [r["depreciation"] for r in sched] == pytest.approx([0] + [CAPEX_EUR / 4] * 4)
    assert [r["energy"] for r in sched] == pytest.approx([ENERGY_YEAR] * 3 + [0, 0])
    assert [r["support"] for r in sched] == pytest.approx([SUPPORT_YEAR] * 3 + [0, 0])
    cap = wb[CAPACITY]
    assert cap["C4"].value == pytest.approx(12.4)   # 5 replicas x 3.1 req/s x 0.8 headroom
    assert cap["D4"].value == pytest.approx(12.4 / 12)
    assert cap["J4"].value == "yes"
    for name, path in rendered.recalc.items():
        assert _errors(path) == [], name
    big = _values(rendered.recalc["big"])[BOM]
    rows = _bom_rows(big)
    assert abs(big.cell(rows["Grand"], 8).value - rendered.big.plan.capex) < 0.005


@needs_libreoffice
def test_stale_prices_are_flagged(rendered: Rendered) -> None:
    wb = _values(rendered.recalc["small"])
    ws = wb[BOM]
    rows = _bom_rows(ws)
    a = wb["Assumptions"]
    quote_date = a.cell(_input_row(a, "Quote date"), 2).value
    assert isinstance(quote_date, datetime) and quote_date.date() == date.today()
    stale = ws.cell(rows["Quantum-2"], 9).value
    fresh = ws.cell(rows["Freight"], 9).value
    assert stale < quote_date - timedelta(days=365) < fresh  # what the shading rule compares


@needs_libreoffice
def test_edit_flows_to_summary_and_schedule(rendered: Rendered) -> None:
    """10 more PCIe servers, 10% contingency, horizon 4: figures as the module docstring works out."""
    wb = _values(rendered.recalc["edit"])
    s = wb[SUMMARY]
    assert _label_value(s, "Servers") == 15
    assert _label_value(s, "GPUs: L20-48GB") == 48 and _label_value(s, "GPUs: H20-96GB") == 24
    assert _label_value(s, "GPUs in all") == 72
    assert _label_value(s, "IT power at full load") == pytest.approx(40.92)
    assert _label_value(s, "Rack units") == 72
    assert _label_value(s, "Racks (of 8 available)") == 3
    assert round(_label_value(s, "Subtotal"), 2) == round(EDIT_SUBTOTAL, 2)
    assert round(_label_value(s, "Contingency (10.0% of the subtotal)"), 2) == round(EDIT_SUBTOTAL * 0.1, 2)
    assert round(_label_value(s, "Grand total (with contingency and tax)"), 2) == round(EDIT_GRAND, 2)
    # contingency pushes the plan over budget: the cell the red rule reads
    assert EDIT_SUBTOTAL < BUDGET_EUR < EDIT_GRAND
    assert _label_value(s, "Budget check") == "OVER BUDGET"
    assert _label_value(s, "Budget left (negative: over budget)") == pytest.approx(BUDGET_EUR - EDIT_GRAND)
    rules = [r.formula[0] for c in openpyxl.load_workbook(rendered.recalc["edit"])[SUMMARY].conditional_formatting
             for r in c.rules]
    assert any("BOM_Grand_Total>Budget" in f for f in rules), rules  # the rule survives LibreOffice
    # the schedule follows: 4 years of energy and support on the new power and hardware
    energy = EDIT_POWER_W / 1000 * 1.35 * 8760 * 0.11
    support = EDIT_HARDWARE * 0.08
    sched = _schedule(wb[SCHEDULE])
    expected = [0.3 * EDIT_GRAND + energy + support, 0.7 * EDIT_GRAND + energy + support, energy + support,
                energy + support, 0.0]
    assert [r["cash"] for r in sched] == pytest.approx(expected, rel=1e-12, abs=1e-6)
    tco = sum(expected)
    assert _schedule_total(wb[SCHEDULE], 9) == pytest.approx(tco, rel=1e-12)
    assert _label_value(s, "TCO over 4 years (total cash out)") == pytest.approx(tco, rel=1e-12)
    # NPV: the schedule's own rows discounted at the end of each year, by hand
    rate = wb["Assumptions"].cell(_input_row(wb["Assumptions"], "Discount rate"), 2).value
    assert rate == 0.08
    npv = sum(r["cash"] / (1 + rate) ** r["year"] for r in sched)
    assert _schedule_total(wb[SCHEDULE], 11) == pytest.approx(npv, rel=1e-12)
    assert _label_value(s, "NPV of the cash out at 8.0% a year") == pytest.approx(npv, rel=1e-12)
    assert [r["depreciation"] for r in sched] == pytest.approx([0] + [EDIT_GRAND / 4] * 4)
    # the per-rack sheet says which servers no rack holds yet
    racks = wb[RACKS]
    unheld = next(r for r in range(1, racks.max_row + 1) if str(racks.cell(r, 3).value).startswith("Servers on"))
    assert racks.cell(unheld, 4).value == 10


@needs_libreoffice
def test_real_plan_workbook_recalculates_to_capex(rendered: Rendered) -> None:
    assert rendered.real_error is None, rendered.real_error
    if rendered.real is None:
        pytest.skip("the solve pipeline (optimizer.model.pipeline) is not available in this checkout")
    plan = rendered.real.plan
    wb = _values(rendered.recalc["real"])
    rows = _bom_rows(wb[BOM])
    assert abs(wb[BOM].cell(rows["Grand"], 8).value - plan.capex) < 0.005
    s = wb[SUMMARY]
    assert abs(_label_value(s, "TCO over 3 years (total cash out)") - plan.tco) < 0.005
    assert _label_value(s, "IT power at full load") == pytest.approx(plan.power_kw)
    assert _label_value(s, "Racks (of 4 available)") == plan.racks_used
    sizing = wb["Sizing"]
    assert sizing.cell(3, 16).value == "KV cache (tokens per replica)"
    for i, d in enumerate(plan.deployments):
        assert sizing.cell(4 + i, 1).value == d.workload
        assert sizing.cell(4 + i, 16).value == d.kv_cache_tokens


# ------------------------------------------------------------------------------------------------
# LibreOffice: printing
# ------------------------------------------------------------------------------------------------


def _sheet_pages(pages: list[str], sheet: str) -> list[str]:
    """Pages whose running header (the sheet name, &A) is ``sheet``."""
    return [p for p in pages if p.strip().splitlines()[0].strip() == sheet]


def _word_heights(pdf: Path) -> list[list[tuple[float, str]]]:
    """(height, word) of every word on every page (``pdftotext -bbox``)."""
    assert PDFTOTEXT is not None
    html = subprocess.run([PDFTOTEXT, "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    pages = html.split("<page ")[1:]
    pat = re.compile(r'yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)">([^<]*)</word>')
    return [[(float(b) - float(a), w) for a, b, w in pat.findall(p)] for p in pages]


@needs_libreoffice
def test_every_page_prints_at_8pt_or_more_with_its_headers(rendered: Rendered) -> None:
    for name, pdf in rendered.pdf.items():
        pages = pdf_pages(pdf)
        heights = _word_heights(pdf)
        assert len(pages) == len(heights)
        for i, words in enumerate(heights):
            small = [(round(h / BBOX_PER_PT, 2), w) for h, w in words if h / BBOX_PER_PT < MIN_FONT_PT - 0.01]
            assert not small, (name, i + 1, pages[i].split()[0], small[:5])
        assert not any("###" in p for p in pages), "a number overflowed its column"
        wb = openpyxl.load_workbook(rendered.files[name])
        for sheet in SHEETS:
            ws = wb[sheet]
            first, _, _ = ws.print_title_rows.replace("$", "").partition(":")
            header = [str(c.value) for c in ws[int(first)] if c.value is not None]
            words = {w for label in header for w in label.split() if w.isalpha() and len(w) > 2}
            got = _sheet_pages(pages, sheet)
            assert got, (name, sheet)
            for page in got:
                flat = set(" ".join(page.split()).split())
                assert header[0].split()[0] in flat, (name, sheet, header[0])
                assert len(words & flat) >= min(3, len(words)), (name, sheet, words - flat)
    big_bom = _sheet_pages(pdf_pages(rendered.pdf["big"]), BOM)
    assert len(big_bom) >= 2, "the big plan's BOM should span pages to test repeated headers"
    for page in big_bom:
        flat = " ".join(page.split())
        for word in ("Category", "Description", "Vendor", "Part", "Qty", "Unit", "Extended", "Price", "Source",
                     "Confidence"):
            assert word in flat, word


@needs_libreoffice
def test_page_one_is_the_purchase_request(rendered: Rendered) -> None:
    pages = pdf_pages(rendered.pdf["small"])
    sizes = pdf_page_sizes(rendered.pdf["small"])
    assert sizes[0][0] < sizes[0][1], "the Summary prints portrait"
    assert all(w > h for (w, h), p in zip(sizes, pages, strict=True) if not p.strip().startswith(SUMMARY))
    page1 = " ".join(pages[0].split())
    assert pages[0].strip().startswith(SUMMARY)
    for text in ("GPU purchase request", "What is bought", "HGX-H20-8GPU system with 8 x H20-96GB",
                 "PCIe-8GPU-4U server with 4 x L20-48GB cards", "€155,551.08", "€466,653.24", "Network",
                 "Contingency (0.0% of the subtotal)", "Grand total", f"€{CAPEX_EUR:,.2f}", "within budget",
                 "TCO over 3 years", "NPV of the cash out at 8.0%", "IT power at full load", "Racks (of 8 available)",
                 "Requester", "A. Analyst", "Cost centre", "CC-4711", "Approver", "B. Controller", "Signature"):
        assert text in page1, text
    assert "gap" not in page1.lower()
    assert "Cost by category" in " ".join(pages[1].split())


def test_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    case = small_case(tmp_path)
    target = tmp_path / "nope" / "plan.xlsx"
    with pytest.raises(UsageError, match=re.escape(str(target))) as exc:
        write_workbook(case.plan, case.rs, target)
    assert exc.value.exit_code == 2 and "mkdir" in (exc.value.hint or "")


def test_existing_file_needs_force_and_leaves_no_temp_file(tmp_path: Path) -> None:
    case = small_case(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    target = out / "plan.xlsx"
    target.write_bytes(b"old")
    with pytest.raises(UsageError, match="already exists") as exc:
        write_workbook(case.plan, case.rs, target)
    assert "--force" in (exc.value.hint or "")
    assert target.read_bytes() == b"old"
    assert write_workbook(case.plan, case.rs, target, force=True) == target
    assert openpyxl.load_workbook(target).sheetnames == list(SHEETS)
    assert sorted(p.name for p in out.iterdir()) == ["plan.xlsx"]


def test_unwritable_paths_are_usage_errors(tmp_path: Path) -> None:
    case = small_case(tmp_path)
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        write_workbook(case.plan, case.rs, not_a_folder / "plan.xlsx")
    folder = tmp_path / "dir.xlsx"
    folder.mkdir()
    with pytest.raises(UsageError, match="is a directory"):
        write_workbook(case.plan, case.rs, folder)
    with pytest.raises(UsageError, match=r"\.xlsx"):
        write_workbook(case.plan, case.rs, tmp_path / "plan.csv")


def test_failed_write_keeps_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    target.write_text("old")

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(UsageError, match="No space left"):
        safe_write(target, broken, force=True)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_default_path_is_reports_folder() -> None:
    path = default_workbook_path(Path("scenarios/bank-rollout.yaml"))
    assert path.name == "bank-rollout.xlsx"
    assert path.parent.name == "reports" and path.parent.is_dir()
