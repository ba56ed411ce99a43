"""What a scenario's inputs turn into before any solve, as text and data: the peak rate derived
from each ``demand:``, each length mix's buckets, and the ``measured:`` entries no candidate uses.

`procure validate`, `solve` and `compare` print these lines; ``POST /api/validate`` answers
:func:`validate_payload` (what ``procure validate --format json`` prints), which the web page shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from optimizer.loaders import ResolvedScenario
from optimizer.schema.scenario import InferenceWorkload
from optimizer.sizing.candidates import CandidateSet
from optimizer.sizing.measured import label


def demand_lines(rs: ResolvedScenario) -> list[str]:
    """One line per workload whose peak rate comes from ``demand:``, e.g. "chat: 40,000 users x ..."."""
    return [f"{w.name}: {w.demand.explain()}" for w in rs.scenario.workloads
            if isinstance(w, InferenceWorkload) and w.demand is not None]


def unused_measured_warnings(rs: ResolvedScenario, used: Iterable[int]) -> list[str]:
    """One line per ``measured:`` entry (index into ``rs.measured``) not in ``used`` (not an error:
    the estimate stands for every deployment)."""
    hit = set(used)
    return [f"measured entry {i + 1} ({e.source}) matches no candidate deployment, so it is not used: {label(e)}; "
            "check the model, GPU, TP/PP, precision and token counts against the workloads, that the SLO it was "
            "measured at is no looser than theirs, and that the layout fits in memory"
            for i, e in enumerate(rs.measured) if i not in hit]


def measured_warnings(rs: ResolvedScenario, cands: CandidateSet) -> list[str]:
    """The ``measured:`` entries that matched no candidate deployment of ``cands``."""
    return unused_measured_warnings(rs, cands.measured_used)


def scenario_summary(rs: ResolvedScenario) -> dict[str, object]:
    """The resolved scenario in brief: names, limits, and each workload's derived inputs (the peak
    rate from demand:, with ``peak_rate`` its explanation line; the length buckets with their req/s)."""
    sc = rs.scenario
    return {
        "scenario": sc.name,
        "file": str(rs.path),
        "currency": sc.currency,
        "objective": sc.objective,
        "budget": sc.constraints.budget,
        "gpus": sorted(rs.gpus),
        "servers": sorted(rs.servers),
        "workloads": [_workload(rs, w) for w in sc.workloads],
        "measured": len(rs.measured),
    }


def _workload(rs: ResolvedScenario, w: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": w.name, "kind": w.kind, "model": rs.models[w.name].name,
                           "config": str(rs.models[w.name].path)}
    if not isinstance(w, InferenceWorkload):
        return out
    if w.lengths is not None:
        out["lengths"] = [{"input_tokens": i, "output_tokens": o, "share": f, "requests_per_s": w.requests_per_s * f}
                          for i, o, f in w.buckets()]
        out["lengths_source"] = w.lengths_source
    if w.demand is not None:
        out.update(requests_per_s=w.requests_per_s, demand=w.demand.explain(),
                   peak_rate=f"peak rate {w.name}: {w.demand.explain()}")
    return out


def validate_payload(rs: ResolvedScenario) -> dict[str, Any]:
    """``procure validate --format json``: the summary and the unmatched-measured ``warnings``
    (the candidates are sized only when the scenario has measured: entries to match)."""
    warnings: list[str] = []
    if rs.measured:
        from optimizer.sizing.candidates import build_candidates

        warnings = measured_warnings(rs, build_candidates(rs))
    return {"valid": True, **scenario_summary(rs), "warnings": warnings}
