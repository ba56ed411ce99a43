"""Solver: status, objective, bound, gap, limits, what stopped each stage, model size, seed,
procure version: the optimisation detail the Summary leaves out."""

from __future__ import annotations

from datetime import date
from typing import Any

from openpyxl.worksheet.worksheet import Worksheet

from optimizer import __version__
from optimizer.loaders import ResolvedScenario
from optimizer.report.xlsx import BOLD, FMT_1, FMT_2, FMT_DATE, FMT_INT, Sheet
from optimizer.schema.plan import Plan


def write_solver(ws: Worksheet, plan: Plan, rs: ResolvedScenario) -> None:
    sh = Sheet(ws)
    s = plan.solver
    sh.title(1, f"Solver — {plan.scenario}")
    hr = 3
    sh.header(hr, ["Field", "Value", "Meaning"])
    rows: list[tuple[str, Any, str | None, str]] = [
        ("Status", s.status, None, "optimal: proven best within the gap; feasible: a valid plan, not proven best"),
        ("Solver", s.solver, None, "MIP solver used (OR-Tools MathOpt)"),
        ("Objective", s.objective_name, None, "what was optimised: capex, tco or coverage"),
        ("Objective value", s.objective, FMT_2, "value of the objective in the plan"),
        ("Best bound", s.bound, FMT_2, "no plan can do better than this"),
        ("Relative gap", s.gap, "0.0000%", "|objective - bound| / |objective|"),
        ("Solve time (s)", s.solve_time_s, FMT_2, "wall-clock seconds in the solver"),
        ("Time limit (s)", s.time_limit_s, FMT_1, "wall-clock cap per stage: a safety net (machine-dependent)"),
        ("Node limit", s.node_limit, FMT_INT, "branch-and-bound nodes per stage: the deterministic work limit"),
        ("Stage 1 stopped by", s.stopped_by, None, "optimal (within the gap), node_limit or time_limit"),
        ("Stage 2 stopped by", s.tiebreak_stopped_by, None,
         "tie-breaks (coverage: the cheapest plan serving that much): optimal, node_limit, time_limit, none"),
        ("Candidates", s.candidates, FMT_INT, "feasible (workload, server, TP, PP, precision) configurations"),
        ("Variables", s.variables, FMT_INT, "MIP variables"),
        ("Constraints", s.constraints, FMT_INT, "MIP linear constraints"),
        ("Random seed", s.seed, FMT_INT, "solver seed (runs are deterministic with 1 thread)"),
        ("procure version", __version__, None, "the program that wrote this workbook"),
        ("Scenario file", str(rs.path), None, "input of this plan"),
        ("Generated", date.today(), FMT_DATE, "date this workbook was written"),
    ]
    row = hr
    for label, value, fmt, meaning in rows:
        row += 1
        sh.put(row, 1, label, font=BOLD)
        sh.put(row, 2, value, fmt, wrap=isinstance(value, str) and len(value) > 40, align="left")
        sh.put(row, 3, meaning, wrap=True)
    for note in plan.notes:
        row += 1
        sh.put(row, 1, "Note", font=BOLD)
        sh.put(row, 2, note, wrap=True)
    sh.finish(header_row=hr, footer=f"procure — {plan.scenario}")
