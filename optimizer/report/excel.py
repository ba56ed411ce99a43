"""The plan workbook's entry points, kept where callers import them; the sheets live in
:mod:`optimizer.report.workbook` (one module per sheet)."""

from __future__ import annotations

from optimizer.report.workbook import (
    ASSUMPTIONS,
    BOM,
    BOM_HEADER_ROW,
    BOM_HEADERS,
    CAPACITY,
    DEPLOYMENT,
    RACKS,
    REPLICAS,
    SCHEDULE,
    SHEETS,
    SIZING,
    SOLVER,
    SUMMARY,
    add_bom_sheet,
    build_workbook,
    default_workbook_path,
    write_workbook,
)

__all__ = ["ASSUMPTIONS", "BOM", "BOM_HEADERS", "BOM_HEADER_ROW", "CAPACITY", "DEPLOYMENT", "RACKS", "REPLICAS",
           "SCHEDULE", "SHEETS", "SIZING", "SOLVER", "SUMMARY", "add_bom_sheet", "build_workbook",
           "default_workbook_path", "write_workbook"]
