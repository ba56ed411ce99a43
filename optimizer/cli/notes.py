"""Lines `validate`, `solve` and `compare` print about a scenario's inputs (built in
:mod:`optimizer.report.inputs`, which the web app shares)."""

from __future__ import annotations

from optimizer.report.inputs import demand_lines, measured_warnings, unused_measured_warnings

__all__ = ["demand_lines", "measured_warnings", "unused_measured_warnings"]
