"""The Excel purchase request: a workbook finance can open, audit, change and sign.

One module per sheet (docs/workbook.md describes each sheet and every named input):

* :mod:`.summary` – page 1: what is bought, grand total with contingency and tax against the budget,
  TCO and NPV, power and racks, the approval block; page 2: cost by category and its chart.
* :mod:`.bom` – the quote-grade Bill of Materials (systems, chassis + cards, quote lines).
* :mod:`.schedule` – the financial schedule: payment phasing, depreciation, opex, cash out, NPV.
* :mod:`.racks` – kW and U per rack against the limits; power and space per server type.
* :mod:`.deployment` – every numbered server and what runs on it.
* :mod:`.capacity` – capacity as % of demand (Capacity) and every deployment configuration (Replicas).
* :mod:`.sizing` – the vLLM memory account of every chosen deployment.
* :mod:`.assumptions` – every input, the unit price table, power figures, engine settings, factors.
* :mod:`.solver` – the optimisation detail.

Shared styles and the sheet writer are :mod:`optimizer.report.xlsx`. The report never recomputes
costs: every number it starts from is the :class:`Plan`'s; formulas only re-add them so that an edit
flows through.
"""

from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook

from optimizer import __version__
from optimizer.errors import UsageError
from optimizer.loaders import REPO_ROOT, ResolvedScenario
from optimizer.report.workbook.assumptions import write_assumptions
from optimizer.report.workbook.bom import BOM_HEADER_ROW, BOM_HEADERS, add_bom_sheet, write_bom
from optimizer.report.workbook.capacity import write_capacity, write_replicas
from optimizer.report.workbook.common import (
    ASSUMPTIONS,
    BOM,
    CAPACITY,
    DEPLOYMENT,
    RACKS,
    REPLICAS,
    SCHEDULE,
    SHEETS,
    SIZING,
    SOLVER,
    SUMMARY,
    Refs,
)
from optimizer.report.workbook.deployment import write_deployment
from optimizer.report.workbook.period_bom import write_period_bom
from optimizer.report.workbook.periods import write_period_schedule
from optimizer.report.workbook.racks import write_racks
from optimizer.report.workbook.schedule import write_schedule
from optimizer.report.workbook.sizing import write_sizing
from optimizer.report.workbook.solver import write_solver
from optimizer.report.workbook.summary import write_summary
from optimizer.report.xlsx import save_workbook
from optimizer.schema.plan import Plan

__all__ = ["ASSUMPTIONS", "BOM", "BOM_HEADERS", "BOM_HEADER_ROW", "CAPACITY", "DEPLOYMENT", "RACKS", "REPLICAS",
           "SCHEDULE", "SHEETS", "SIZING", "SOLVER", "SUMMARY", "add_bom_sheet", "build_workbook",
           "default_workbook_path", "write_workbook"]


def build_workbook(plan: Plan, rs: ResolvedScenario) -> Workbook:
    """The workbook in memory (tests and other writers use this)."""
    wb = Workbook()
    default = wb.active
    sheets = {name: wb.create_sheet(name) for name in SHEETS}
    if default is not None:
        wb.remove(default)
    refs = Refs()
    write_assumptions(wb, sheets[ASSUMPTIONS], plan, rs, refs)
    if plan.periods:
        write_period_bom(wb, sheets[BOM], plan, rs, refs)
    else:
        write_bom(wb, sheets[BOM], plan, rs, refs)
    write_racks(wb, sheets[RACKS], plan, rs, refs)
    if plan.periods:
        write_period_schedule(wb, sheets[SCHEDULE], plan)
    else:
        write_schedule(wb, sheets[SCHEDULE], plan, rs)
    write_deployment(sheets[DEPLOYMENT], plan)
    replicas = write_replicas(sheets[REPLICAS], plan)
    write_capacity(sheets[CAPACITY], plan, replicas)
    write_sizing(sheets[SIZING], plan, rs)
    write_solver(sheets[SOLVER], plan, rs)
    write_summary(sheets[SUMMARY], plan, rs, refs)
    wb.active = 0
    wb.calculation.fullCalcOnLoad = True
    wb.properties.title = f"GPU purchase request — {plan.scenario}"
    wb.properties.creator = f"procure {__version__}"
    return wb


def default_workbook_path(scenario_file: Path) -> Path:
    """``reports/<scenario stem>.xlsx``: the repository's reports/ folder in a source checkout,
    else reports/ under the working directory. The folder is created."""
    base = REPO_ROOT if (REPO_ROOT / "pyproject.toml").exists() else Path.cwd()
    folder = base / "reports"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the reports folder {folder}: {exc.strerror or exc}",
                         hint="give the workbook path with -o/--output") from exc
    return folder / f"{Path(scenario_file).stem}.xlsx"


def write_workbook(plan: Plan, rs: ResolvedScenario, path: Path, *, force: bool = False) -> Path:
    """Write the workbook to ``path`` safely (temporary file + rename); UsageError when it cannot."""
    return save_workbook(build_workbook(plan, rs), path, force=force)
