"""Lines `validate` and `solve` print about a scenario's inputs: derived peak rates, unused measurements."""

from __future__ import annotations

from optimizer.loaders import ResolvedScenario
from optimizer.schema.scenario import InferenceWorkload
from optimizer.sizing.candidates import CandidateSet
from optimizer.sizing.measured import label


def demand_lines(rs: ResolvedScenario) -> list[str]:
    """One line per workload whose peak rate comes from ``demand:``, e.g. "chat: 40,000 users x ..."."""
    return [f"{w.name}: {w.demand.explain()}" for w in rs.scenario.workloads
            if isinstance(w, InferenceWorkload) and w.demand is not None]


def measured_warnings(rs: ResolvedScenario, cands: CandidateSet) -> list[str]:
    """One line per ``measured:`` entry that matched no candidate deployment (not an error: the
    estimate stands for every deployment)."""
    return [f"measured entry {i + 1} ({e.source}) matches no candidate deployment, so it is not used: {label(e)}; "
            "check the model, GPU, TP/PP, precision and token counts against the workloads, that the SLO it was "
            "measured at is no looser than theirs, and that the layout fits in memory"
            for i, e in enumerate(rs.measured) if i not in cands.measured_used]
