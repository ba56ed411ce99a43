"""The Excel bill of materials, checked in a real spreadsheet application (LibreOffice, headless).

The plans here are written out by hand so every figure can be checked on paper (the lead's solver
builds the same Plan type; a test below also runs it when the pipeline is available). Prices are
catalog estimates converted at 0.9237 EUR/USD, the same product ``price_of`` forms in
optimizer/sizing/candidates.py:

    HGX-H20-8GPU chassis  72,400 USD x 0.9237 = 66,875.88 EUR     H20-96GB 12,000 x 0.9237 = 11,084.40 EUR
    PCIe-8GPU-4U chassis  26,000 USD x 0.9237 = 24,016.20 EUR     L20-48GB scenario override   4,321.19 EUR
    H20 server: 66,875.88 + 8 x 11,084.40 = 155,551.08 EUR, x 3 = 466,653.24
    L20 server: 24,016.20 + 4 x  4,321.19 =  41,300.96 EUR, x 2 =  82,601.92
    capex = 549,255.16 EUR
    power: 3 x (4,600 + 8 x 400) + 2 x (360 + 4 x 275) = 23,400 + 2,920 = 26,320 W
    energy = 26.32 kW x 1.35 x 8,760 h x 3 y x 0.11 EUR/kWh = 102,715.9056 EUR
    opex = 549,255.16 x 0.08 x 3 = 131,821.2384 EUR;  TCO = 783,792.3040 EUR
(chassis/GPU prices and powers: catalogs/servers.yaml, catalogs/gpus.yaml.)
"""

from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import openpyxl
import pytest
import yaml

from optimizer.errors import UsageError
from optimizer.loaders import ResolvedScenario, load_scenario
from optimizer.report.excel import (
    BOM,
    CAPACITY,
    SHEETS,
    SUMMARY,
    build_workbook,
    default_workbook_path,
    write_workbook,
)
from optimizer.report.safe_write import safe_write
from optimizer.schema.plan import (
    Deployment,
    FinetuneAssignment,
    MemoryAccount,
    PlacedReplica,
    PlacedServer,
    Plan,
    ServerLine,
    SolverReport,
    WorkloadCoverage,
)
from tests.report.libreoffice import needs_libreoffice, pdf_page_sizes, pdf_pages, recalculate, to_pdf

RATE = 0.9237
CAPEX_EUR = 549_255.16
POWER_W = 26_320.0
TCO_EUR = 783_792.3040

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
        "constraints": {"budget": 6_000_000, "gpus": ["H20-96GB", "L20-48GB"]},
        "headroom": 0.8, "opex_per_year_fraction": 0.08, "prices": {"L20-48GB": 4321.19},
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
                     price_source="catalog estimate")
    l20 = ServerLine(sku="PCIe-8GPU-4U/L20-48GB/4", chassis="PCIe-8GPU-4U", gpu="L20-48GB", gpus_per_server=4,
                     count=2, chassis_price=26000 * RATE, gpu_unit_price=4321.19,
                     unit_price=26000 * RATE + 4 * 4321.19, power_w=360 + 4 * 275, rack_units=4,
                     price_source="scenario override")
    capex = 3 * h20.unit_price + 2 * l20.unit_price
    power_w = 3 * h20.power_w + 2 * l20.power_w
    energy = power_w / 1000 * 1.35 * 8760 * 3 * 0.11
    opex = capex * 0.08 * 3
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
                capex=capex, tco=capex + energy, energy_cost=energy, opex_cost=0.0, power_kw=power_w / 1000,
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
    files: dict[str, Path]        # as written by procure (and edited copies)
    recalc: dict[str, Path]       # after LibreOffice recalculation
    pdf: dict[str, Path]


def _bom_rows(ws: Any) -> dict[str, int]:
    """Part (column E) -> row, and the label rows of the totals (column C)."""
    out: dict[str, int] = {}
    for row in range(5, ws.max_row + 1):
        part, label = ws.cell(row, 5).value, ws.cell(row, 3).value
        if part:
            out.setdefault(str(part) + ("/gpu" if ws.cell(row, 2).value == "GPU" else ""), row)
        if isinstance(label, str) and label.startswith(("Subtotal", "Contingency", "Tax", "Grand total")):
            out[label.split()[0]] = row
    return out


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
    # A finance user's edits: the H20 GPU unit price on the BOM typed over (+1,000 EUR) ...
    wb = openpyxl.load_workbook(files["small"])
    rows = _bom_rows(wb[BOM])
    wb[BOM].cell(rows["H20-96GB/gpu"], 7).value = 12_084.40
    wb.save(tmp / "edit_bom.xlsx")
    files["edit_bom"] = tmp / "edit_bom.xlsx"
    # ... and the chassis price on the Assumptions sheet, with 5% contingency and 10% tax.
    wb = openpyxl.load_workbook(files["small"])
    ws = wb["Assumptions"]
    price_row = next(r for r in range(1, ws.max_row + 1) if str(ws.cell(r, 1).value).startswith("HGX-H20-8GPU"))
    ws.cell(price_row, 2).value = 70_000.00
    wb[BOM].cell(rows["Contingency"], 7).value = 0.05
    wb[BOM].cell(rows["Tax"], 7).value = 0.10
    wb.save(tmp / "edit_inputs.xlsx")
    files["edit_inputs"] = tmp / "edit_inputs.xlsx"
    if shutil.which("soffice") is None:
        return Rendered(small, big, real, real_error, files, {}, {})
    names = list(files)
    recalc = dict(zip(names, recalculate([files[n] for n in names], tmp / "recalc"), strict=True))
    pdf_names = [n for n in ("small", "big", "real") if n in files]
    pdf = dict(zip(pdf_names, to_pdf([files[n] for n in pdf_names], tmp / "pdf"), strict=True))
    return Rendered(small, big, real, real_error, files, recalc, pdf)


def _values(path: Path) -> openpyxl.Workbook:
    return openpyxl.load_workbook(path, data_only=True)


def _label_value(ws: Any, label: str) -> Any:
    for row in ws.iter_rows(min_col=1, max_col=2):
        if row[0].value == label:
            return row[1].value
    raise AssertionError(f"{label!r} not found on {ws.title}")


# ------------------------------------------------------------------------------------------------
# Structure (openpyxl only)
# ------------------------------------------------------------------------------------------------


def test_sheets_formulas_and_named_inputs(tmp_path: Path) -> None:
    case = small_case(tmp_path)
    wb = build_workbook(case.plan, case.rs)
    assert tuple(wb.sheetnames) == SHEETS
    ws = wb[BOM]
    rows = _bom_rows(ws)
    # one chassis line per SKU and one GPU line per GPU type
    assert {k for k in rows if "/" in k or "-" in k} == {"HGX-H20-8GPU", "PCIe-8GPU-4U", "H20-96GB/gpu",
                                                            "L20-48GB/gpu"}
    r = rows["H20-96GB/gpu"]
    assert ws.cell(r, 8).value == f"=F{r}*G{r}"
    assert ws.cell(r, 6).value == f"=F{rows['HGX-H20-8GPU']}*8"
    assert str(ws.cell(r, 7).value).startswith("='Assumptions'!$B$")
    assert ws.cell(rows["Grand"], 8).value == "=BOM_Subtotal+BOM_Contingency+BOM_Tax"
    names = wb.defined_names
    for name in ("Contingency_Pct", "Tax_Pct", "BOM_Subtotal", "BOM_Grand_Total", "Site_PUE",
                 "Electricity_Price_kWh", "Horizon_Years", "Planning_Headroom", "Opex_Fraction_Per_Year"):
        assert name in names, name
    assert names["Contingency_Pct"].attr_text == f"'Bill of Materials'!$G${rows['Contingency']}"
    assert ws.cell(rows["Contingency"], 7).value == 0
    assert ws.cell(rows["Tax"], 7).value == 0
    # finance formatting
    assert ws.freeze_panes == "A5"
    assert ws.print_title_rows == "$4:$4"
    assert ws.page_setup.orientation == "landscape"
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth == 1
    assert ws.page_setup.fitToHeight == 0
    assert ws.cell(r, 8).number_format == '"€"#,##0.00'
    assert ws.cell(4, 1).font.b
    for name in SHEETS:
        assert wb[name].page_setup.orientation == "landscape"
        assert wb[name].freeze_panes is not None


def _ref(axis: Any) -> str:
    """The range a chart's category axis data refers to (string or number reference)."""
    ref = axis.strRef or axis.numRef
    return str(ref.f)


def test_charts_are_native_and_reference_the_tables(tmp_path: Path) -> None:
    case = small_case(tmp_path)
    path = write_workbook(case.plan, case.rs, tmp_path / "charts.xlsx")
    wb = openpyxl.load_workbook(path)
    summary = wb[SUMMARY]
    (chart,) = summary._charts
    first = next(r for r in range(1, summary.max_row + 1) if summary.cell(r, 1).value == "Server chassis")
    assert summary.cell(first - 1, 1).value == "Category"
    assert [summary.cell(first + i, 1).value for i in range(6)][:4] == ["Server chassis", "GPUs", "Contingency", "Tax"]
    (series,) = chart.series
    assert series.val.numRef.f == f"'Summary'!$B${first}:$B${first + 5}"
    assert _ref(series.cat) == f"'Summary'!$A${first}:$A${first + 5}"
    cap = wb[CAPACITY]
    (chart,) = cap._charts
    demand, capacity = chart.series
    assert cap["B3"].value == "Demand (req/s)"
    assert demand.val.numRef.f == "'Capacity'!$B$4:$B$5"
    assert capacity.val.numRef.f == "'Capacity'!$C$4:$C$5"
    assert _ref(demand.cat) == "'Capacity'!$A$4:$A$5"
    assert [cap["A4"].value, cap["A5"].value] == ["customer-service-assistant", "dev-code-assistant"]
    with zipfile.ZipFile(path) as z:
        charts = sorted(n for n in z.namelist() if n.startswith("xl/charts/chart"))
        assert len(charts) == 2
        trees = [ElementTree.fromstring(z.read(n)) for n in charts]
    refs = set()
    for tree in trees:  # DrawingML chart parts with a bar chart plot and cell-range formulas
        assert tree.tag == f"{{{C_NS}}}chartSpace"
        assert tree.find(f".//{{{C_NS}}}barChart") is not None
        refs |= {f.text for f in tree.iter(f"{{{C_NS}}}f")}
    assert f"'Summary'!$B${first}:$B${first + 5}" in refs
    assert "'Capacity'!$C$4:$C$5" in refs


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
    assert round(ws.cell(rows["Subtotal"], 8).value, 2) == CAPEX_EUR
    assert ws.cell(rows["Subtotal"], 10).value == POWER_W
    assert ws.cell(rows["H20-96GB/gpu"], 6).value == 24
    assert round(ws.cell(rows["H20-96GB/gpu"], 8).value, 2) == 266_025.60  # 24 x 11,084.40
    s = wb[SUMMARY]
    assert round(_label_value(s, "Capex (grand total)"), 2) == CAPEX_EUR
    assert round(_label_value(s, "TCO over 3 years"), 2) == round(TCO_EUR, 2)
    assert round(_label_value(s, "Energy over 3 years"), 2) == 102_715.91
    assert _label_value(s, "IT power at full load") == pytest.approx(26.32)
    assert _label_value(s, "Facility power") == pytest.approx(26.32 * 1.35)
    assert _label_value(s, "GPUs: H20-96GB") == 24 and _label_value(s, "Rack units") == 32
    cap = wb[CAPACITY]
    assert cap["C4"].value == pytest.approx(12.4)   # 5 replicas x 3.1 req/s x 0.8 headroom
    assert cap["E4"].value == pytest.approx(12.4 / 12 - 1)
    assert cap["K4"].value == "yes"
    for name, path in rendered.recalc.items():
        assert _errors(path) == [], name


@needs_libreoffice
def test_many_skus_share_gpu_lines(rendered: Rendered) -> None:
    """49 chassis lines (7 GPU types x 7 populations) and one line per GPU type, quantities summed."""
    plan = rendered.big.plan
    ws = _values(rendered.recalc["big"])[BOM]
    rows = _bom_rows(ws)
    lines = [r for r in range(5, rows["Subtotal"]) if ws.cell(r, 2).value]
    assert len(lines) == 49 + 7
    gpu_qty = {ws.cell(r, 5).value: ws.cell(r, 6).value for r in lines if ws.cell(r, 2).value == "GPU"}
    assert gpu_qty == plan.gpus_by_type
    assert gpu_qty["L4-24GB"] == 49  # 1x1 + 2x2 + 3x4 + 1x8 (PCIe-8GPU-4U) + 2x1 + 3x2 + 1x4 (PCIe-4GPU-4U)
    assert abs(ws.cell(rows["Grand"], 8).value - plan.capex) < 0.005
    assert ws.cell(rows["Subtotal"], 10).value == plan.power_kw * 1000


@needs_libreoffice
def test_real_plan_workbook_recalculates_to_capex(rendered: Rendered) -> None:
    assert rendered.real_error is None, rendered.real_error
    if rendered.real is None:
        pytest.skip("the solve pipeline (optimizer.model.pipeline) is not available in this checkout")
    plan = rendered.real.plan
    wb = _values(rendered.recalc["real"])
    rows = _bom_rows(wb[BOM])
    assert abs(wb[BOM].cell(rows["Grand"], 8).value - plan.capex) < 0.005
    assert abs(_label_value(wb[SUMMARY], "TCO over 3 years") - plan.tco) < 0.005
    assert wb[BOM].cell(rows["Subtotal"], 10).value == pytest.approx(plan.power_kw * 1000)
    # the Sizing sheet's memory account agrees with the candidates the solver chose
    sizing = wb["Sizing"]
    assert sizing.cell(3, 16).value == "KV cache (tokens per replica)"
    for i, d in enumerate(plan.deployments):
        assert sizing.cell(4 + i, 1).value == d.workload
        assert sizing.cell(4 + i, 16).value == d.kv_cache_tokens


@needs_libreoffice
def test_edited_prices_flow_through_formulas(rendered: Rendered) -> None:
    wb = _values(rendered.recalc["edit_bom"])
    ws = wb[BOM]
    rows = _bom_rows(ws)
    r = rows["H20-96GB/gpu"]
    assert ws.cell(r, 8).value == pytest.approx(24 * 12_084.40)
    assert round(ws.cell(rows["Grand"], 8).value, 2) == round(CAPEX_EUR + 24 * 1000, 2)
    assert round(_label_value(wb[SUMMARY], "Capex (grand total)"), 2) == round(CAPEX_EUR + 24_000, 2)

    wb = _values(rendered.recalc["edit_inputs"])
    ws = wb[BOM]
    chassis = rows["HGX-H20-8GPU"]
    assert ws.cell(chassis, 7).value == 70_000.00
    assert ws.cell(chassis, 8).value == pytest.approx(210_000.00)
    subtotal = CAPEX_EUR + 3 * (70_000.00 - 66_875.88)       # 558,627.52
    assert round(ws.cell(rows["Subtotal"], 8).value, 2) == round(subtotal, 2)
    assert round(ws.cell(rows["Contingency"], 8).value, 2) == round(subtotal * 0.05, 2)
    assert round(ws.cell(rows["Grand"], 8).value, 2) == round(subtotal * 1.05 * 1.10, 2)


# ------------------------------------------------------------------------------------------------
# LibreOffice: printing
# ------------------------------------------------------------------------------------------------


def _sheet_pages(pages: list[str], sheet: str) -> list[str]:
    """Pages whose running header (the sheet name, &A) is ``sheet``."""
    return [p for p in pages if p.strip().splitlines()[0].strip() == sheet]


@needs_libreoffice
def test_summary_and_bom_print_cleanly(rendered: Rendered) -> None:
    for name in rendered.pdf:
        pdf = rendered.pdf[name]
        sizes = pdf_page_sizes(pdf)
        assert sizes and all(w > h for w, h in sizes), "every page landscape"
        pages = pdf_pages(pdf)
        assert not any("###" in p for p in pages), "a number overflowed its column"
        summary = _sheet_pages(pages, SUMMARY)
        assert len(summary) >= 1
        text = "\n".join(summary)
        case = {"small": rendered.small, "big": rendered.big, "real": rendered.real}[name]
        assert case is not None
        plan = case.plan
        for label in ("Capex (grand total)", "TCO over 3 years", "IT power at full load", "Racks used",
                      "Plan status", "Cost by category", "How it is computed"):
            assert label in text, (name, label)
        assert f"{plan.capex:,.2f}" in text
        bom = _sheet_pages(pages, BOM)
        assert bom, name
        for page in bom:  # headers repeated, and no column pushed onto a page of its own
            flat = " ".join(page.split())
            for word in ("Line", "Category", "Item", "Vendor", "Part", "Qty", "Unit", "Extended", "Power", "Rack",
                         "basis"):  # single words: a header may wrap over two lines
                assert word in flat, (name, word)
        flat = " ".join(" ".join(bom).split())
        assert "Grand total" in flat and f"{plan.capex:,.2f}" in flat
        for s in plan.servers:
            assert s.chassis in flat
    big_bom = _sheet_pages(pdf_pages(rendered.pdf["big"]), BOM)
    assert len(big_bom) >= 2, "the big plan's BOM should span pages to test repeated headers"
    deployment = _sheet_pages(pdf_pages(rendered.pdf["big"]), "Deployment")
    assert len(deployment) >= 2
    assert all("GPUs in" in p and "Server" in p for p in deployment)


# ------------------------------------------------------------------------------------------------
# Safe writing and the default path
# ------------------------------------------------------------------------------------------------


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
