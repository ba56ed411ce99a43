"""Why no plan exists: name the binding limits and by how much.

Two layers. First, workloads with no candidate at all: every configuration was rejected for memory
(the model with its context does not fit any allowed server), for the SLO (no allowed GPU meets the
latency targets), for precision support (weights, or the KV cache dtype), or because the only
servers that run it fit no rack; the rejection records give the amounts. Second, when every
workload has candidates but the MIP is infeasible, each site/budget limit is dropped in turn and the
resource it caps is minimised without it ("budget short by $1.24M: the cheapest plan meeting all
demand costs $7.24M"). If no single limit explains it, all are dropped together and each one's
requirement is reported.

Every figure is one the sub-solve proved: a minimum is quoted only when the solve ended optimal
within ``PROVEN_GAP``; otherwise the proven lower bound is quoted ("at least $244k"), never the
incumbent. A shortfall is never zero or negative: a limit whose relaxed minimum is within it is
said to bind only together with the others. "Racks short by N" is quoted only when N more racks
were shown to admit a plan; servers that fit no rack at all are named instead of asking for racks.
Sub-solves inherit the deterministic node limit of the main solve, so the same input gives the
same message.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from ortools.math_opt.python import mathopt

from optimizer.loaders import ResolvedScenario
from optimizer.model.build import Limits, MipModel, build_model, limits_of
from optimizer.model.racks import first_fit_racks
from optimizer.model.solve import SolveSettings, run_solver
from optimizer.schema.scenario import InferenceWorkload
from optimizer.sizing.candidates import CandidateSet, ServerSku, fits_rack, rack_misfit
from optimizer.units import CURRENCY_SYMBOLS
from optimizer.units import money_short as money

# A sub-solve's minimum is quoted as a figure only when proven optimal within this relative gap.
PROVEN_GAP = 1e-6

_INFEASIBLE = (mathopt.TerminationReason.INFEASIBLE, mathopt.TerminationReason.INFEASIBLE_OR_UNBOUNDED)


def missing_candidates(rs: ResolvedScenario, cands: CandidateSet) -> list[str]:
    """One sentence per workload that has no feasible configuration at all."""
    reasons = []
    for w in rs.scenario.workloads:
        has = (any(c.workload == w.name for c in cands.inference) if w.kind == "inference"
               else any(f.workload == w.name for f in cands.finetune))
        if has:
            continue
        rej = [r for r in cands.rejections if r.workload == w.name]
        mem = [r for r in rej if r.reason == "memory"]
        slo = [r for r in rej if r.reason == "slo"]
        rack = [r for r in rej if r.reason == "rack"]
        support = [r for r in rej if r.reason in ("precision", "kv_dtype")]
        arch = cands.archs[w.name]
        if rack:
            site = rs.scenario.site
            reasons.append(
                f"{w.name}: the only servers that run it fit no rack of {site.rack_power_kw:g} kW / "
                f"{site.rack_units} U: {'; '.join(sorted({r.detail for r in rack}))} — more racks cannot help; "
                f"raise site.rack_power_kw or site.rack_units, or allow another server")
        elif isinstance(w, InferenceWorkload) and slo:
            best_tpot = min(slo, key=lambda r: r.best_tpot_ms)
            best_ttft = min(slo, key=lambda r: r.best_ttft_ms)
            reasons.append(
                f"{w.name}: no allowed configuration meets the SLO ({w.slo.describe()}); the best "
                f"predicted TPOT is {best_tpot.best_tpot_ms:.1f} ms "
                f"({best_tpot.sku.split('/')[1]} TP{best_tpot.tp} {best_tpot.precision}) and the best TTFT "
                f"{best_ttft.best_ttft_ms:.0f} ms — relax the SLO, allow a faster GPU, or a lower precision")
        elif isinstance(w, InferenceWorkload) and mem:
            need = min(r.need_gib for r in mem if r.need_gib > 0) if any(r.need_gib > 0 for r in mem) else math.nan
            have = max(r.have_gib for r in mem)
            reasons.append(
                f"{w.name}: {arch.name} at {'/'.join(w.precisions)} needs about {need:,.0f} GiB with "
                f"max_context {w.max_context}; no allowed server holds it (largest usable: {have:,.0f} GiB) — "
                f"allow fp8/int4, allow a GPU with more memory (H200, B200, MI300X), shorten max_context, "
                f"or permit PP across servers (constraints.allow_pp_across_servers)")
        elif mem:
            reasons.append(f"{w.name}: fine-tuning {arch.name} does not fit any allowed GPU group "
                           f"({mem[0].detail}) — use lora/qlora or allow larger GPUs")
        elif support:
            fix = ("set kv_dtype auto (or bf16), allow another precision or another GPU"
                   if any(r.reason == "kv_dtype" for r in support) else "allow another precision or another GPU")
            reasons.append(f"{w.name}: no allowed GPU runs it as asked: "
                           f"{'; '.join(sorted({r.detail for r in support}))} — {fix}")
        else:
            detail = rej[0].detail if rej else "no allowed server takes a GPU that runs it"
            reasons.append(f"{w.name}: no candidate configuration ({detail})")
    return reasons


@dataclass(frozen=True)
class Minimum:
    """What a sub-solve established about the least value of a quantity."""

    value: float | None  # the minimum, when proven optimal within PROVEN_GAP
    bound: float         # a proven lower bound (the minimum itself when proven; -inf if none)
    best: float | None   # the best plan found, proven or not (an upper bound)


def _run(model: mathopt.Model, settings: SolveSettings) -> mathopt.SolveResult:
    # the main solve's node limit (deterministic work) where the solver settings carry one
    res, _ = run_solver(model, settings, settings.time_limit_s, node_limit=getattr(settings, "node_limit", None))
    return res


def minimum_of(res: mathopt.SolveResult, *, integral: bool = False) -> Minimum | None:
    """The proven facts of a minimisation result; None when it proved infeasibility."""
    reason = res.termination.reason
    if reason in _INFEASIBLE:
        return None
    best = float(res.objective_value()) if res.has_primal_feasible_solution() else None
    bound = float(res.best_objective_bound())
    if not math.isfinite(bound):
        bound = -math.inf
    elif integral:
        bound = float(math.ceil(bound - 1e-6))
    if (reason == mathopt.TerminationReason.OPTIMAL and best is not None
            and best - bound <= PROVEN_GAP * max(1.0, abs(best)) + 1e-6):
        return Minimum(best, best, best)
    return Minimum(None, bound, best)


def _min_of(rs: ResolvedScenario, cands: CandidateSet, limits: Limits, settings: SolveSettings,
            expr: Callable[[MipModel], mathopt.LinearExpression], integral: bool = False) -> Minimum | None:
    mm = build_model(rs, cands, limits, exact_racks=True)  # every figure quoted is one a layout meets
    mm.model.minimize(expr(mm))
    return minimum_of(_run(mm.model, replace(settings, gap=PROVEN_GAP)), integral=integral)


def _probe(rs: ResolvedScenario, cands: CandidateSet, limits: Limits,
           settings: SolveSettings) -> tuple[bool | None, dict[str, int]]:
    """Whether a plan exists (None: not decided within the limits) and, if found, its server counts.

    The least-power plan is sought, so its servers need few racks."""
    mm = build_model(rs, cands, limits, exact_racks=True)  # every figure quoted is one a layout meets
    assert mm.power_w is not None
    mm.model.minimize(mm.power_w)
    res = _run(mm.model, settings)
    if res.termination.reason in _INFEASIBLE:
        return False, {}
    if res.has_primal_feasible_solution():
        values = res.variable_values()
        return True, {k: round(values[v]) for k, v in mm.n.items() if round(values[v]) > 0}
    return None, {}


def feasible(rs: ResolvedScenario, cands: CandidateSet, limits: Limits, settings: SolveSettings) -> bool | None:
    return _probe(rs, cands, limits, settings)[0]


def unrackable(rs: ResolvedScenario, cands: CandidateSet) -> list[str]:
    """Servers some workload could run on that fit no rack on their own, each with its power/units and
    the rack's, by name: those dropped at candidate time (their ``rack`` rejections) and, in a
    hand-made table, those still in it (``add_racks`` fixes their count to 0)."""
    site = rs.scenario.site
    wanted = ({r.sku for r in cands.rejections if r.reason == "rack"} | {c.sku for c in cands.inference}
              | {f.sku for f in cands.finetune})
    skus: dict[str, ServerSku] = {**cands.unrackable}
    skus.update({k: s for k, s in cands.skus.items() if not fits_rack(s, site.rack_power_kw, site.rack_units)})
    return [rack_misfit(skus[k], site.rack_power_kw, site.rack_units) for k in sorted(skus) if k in wanted]


def binding_limits(rs: ResolvedScenario, cands: CandidateSet, settings: SolveSettings) -> list[str]:
    """Which site/budget limits make the MIP infeasible, with the amount each is short by."""
    base = limits_of(rs, coverage=False)
    quick = replace(settings, time_limit_s=max(5.0, settings.time_limit_s / 4), gap=1e-3)
    relax: dict[str, Limits] = {}
    if base.budget is not None:
        relax["budget"] = replace(base, budget=None)
    relax["site power"] = replace(base, site_power_kw=None)
    relax["racks"] = replace(base, racks=None)
    if base.availability:
        relax["availability"] = replace(base, availability={})
    if base.max_gpu_types is not None:
        relax["max GPU types"] = replace(base, max_gpu_types=None)
    alone = [k for k, lim in relax.items() if feasible(rs, cands, lim, quick) is True]
    everything = Limits(budget=None, site_power_kw=None, racks=None, availability={}, max_gpu_types=None)
    if not alone and feasible(rs, cands, everything, quick) is False:
        out = ["no plan meets all demand even with the budget, site power, rack count, availability and "
               "GPU-type limits all lifted"]
        misfits = unrackable(rs, cands)
        if misfits:
            out.append("servers that fit no rack are never bought: " + "; ".join(misfits))
        return out
    names = alone or list(relax)
    out = [_explain(name, rs, cands, relax[name] if alone else everything, base, quick, together=not alone)
           for name in names]
    if not alone:
        out.insert(0, "no single limit explains it; with all of them lifted the plan needs:")
    misfits = unrackable(rs, cands)
    if misfits and not any("fit no rack" in line for line in out):
        out.append("servers that fit no rack are never bought: " + "; ".join(misfits))
    return out


def _floor_to(x: float, step: float) -> float:
    return math.floor(x / step + 1e-9) * step


def money_floor(x: float, cur: str) -> str:
    """A lower bound in the compact money format, rounded down so that "at least" stays true."""
    step = 1e4 if abs(x) >= 1e6 else 1e3 if abs(x) >= 1e3 else 1.0
    return money(_floor_to(x, step), cur)


def money_gap(x: float, cur: str) -> str:
    """A positive amount that never displays as zero."""
    if x >= 0.5:
        return money(x, cur)
    sym = CURRENCY_SYMBOLS.get(cur.upper())
    return f"{sym}{x:.2f}" if sym else f"{x:.2f} {cur}"


def _kw(x: float, *, floor: bool = False) -> str:
    """kW with one decimal (more when one would show zero); rounded down for lower bounds."""
    digits = 1
    while digits < 4 and 0 < abs(x) < 10 ** -digits:
        digits += 1
    if floor:
        x = _floor_to(x, 10 ** -digits)
    return f"{x:,.{digits}f} kW"


def requirement(label: str, m: Minimum | None, limit: float, *, fmt: Callable[[float], str],
                fmt_floor: Callable[[float], str], fmt_gap: Callable[[float], str], need: str,
                against: str, together: bool) -> str:
    """One limit's sentence from what the sub-solve proved about the least requirement.

    ``need`` reads "the cheapest plan meeting all demand costs"; ``against`` "a budget of $1.00M".
    """
    lifted = " with the other limits lifted" if together else ""
    tol = 1e-9 * max(1.0, abs(limit))
    if m is None:
        return f"{label}: no plan meets all demand even without this limit{lifted}"
    if m.value is not None:
        if m.value > limit + tol:
            return f"{label} short by {fmt_gap(m.value - limit)}: {need} {fmt(m.value)}{lifted} against {against}"
        return (f"{label}: {need} {fmt(m.value)}{lifted}, within {against}, so it binds only together "
                f"with the other limits")
    found = f"; best plan found: {fmt(m.best)}" if m.best is not None else ""
    if m.bound > limit + tol:
        return (f"{label} short by at least {fmt_floor(m.bound - limit)}: {need} at least {fmt_floor(m.bound)}"
                f"{lifted} against {against} (the minimum was not proven within the solver's limits{found})")
    if m.best is not None and m.best <= limit + tol:
        return (f"{label}: a plan within {against} exists{lifted} ({fmt(m.best)}), so it binds only together "
                f"with the other limits")
    low = f"at least {fmt_floor(m.bound)}" if math.isfinite(m.bound) else "none"
    if not together:  # lifting this limit alone gave a plan, so with it there is none: it binds
        return (f"{label} short by an amount not proven within the solver's limits: {need} more than {against} "
                f"(no plan fits it; the solver's bound: {low}{found})")
    return (f"{label}: not shown to bind on its own: {need} {low}{lifted} against {against} "
            f"(the minimum was not proven within the solver's limits{found})")


def _explain(name: str, rs: ResolvedScenario, cands: CandidateSet, lim: Limits, base: Limits,
             settings: SolveSettings, *, together: bool) -> str:
    sc = rs.scenario
    cur = sc.currency
    if name == "budget":
        assert base.budget is not None
        factor = sc.finance.budget_factor  # the budget bounds capex with contingency and tax
        def taxed(mm: MipModel) -> mathopt.LinearExpression:
            assert mm.capex is not None
            return factor * mm.capex

        m = _min_of(rs, cands, lim, settings, taxed)
        return requirement("budget", m, base.budget, fmt=lambda x: money(x, cur),
                           fmt_floor=lambda x: money_floor(x, cur), fmt_gap=lambda x: money_gap(x, cur),
                           need="the cheapest plan meeting all demand costs",
                           against=f"a budget of {money(base.budget, cur)}", together=together)
    if name == "site power":
        m = _min_of(rs, cands, lim, settings, lambda mm: mm.power_w)
        pue = sc.site.pue
        if m is not None:  # IT watts -> facility kW
            m = Minimum(None if m.value is None else m.value / 1000 * pue, m.bound / 1000 * pue,
                        None if m.best is None else m.best / 1000 * pue)
        return requirement("site power", m, sc.site.power_kw, fmt=_kw, fmt_floor=lambda x: _kw(x, floor=True),
                           fmt_gap=_kw, need="the lowest-power plan needs",
                           against=f"the site's {sc.site.power_kw:g} kW (facility power, PUE {pue:g})",
                           together=together)
    if name == "racks":
        return _explain_racks(rs, cands, lim, settings, together=together)
    if name == "availability":
        parts = []
        for g, cap in base.availability.items():
            def gpus_of(mm: MipModel, g: str = g) -> mathopt.LinearExpression:
                return mathopt.fast_sum(s.gpus * mm.n[k] for k, s in mm.cands.skus.items() if s.gpu.name == g)
            m = _min_of(rs, cands, lim, settings, gpus_of, integral=True)
            if m is None:
                continue
            if m.value is not None and m.value > cap + 1e-6:
                parts.append(f"{g}: needs {m.value:.0f}, only {cap} available")
            elif m.value is None and m.bound > cap + 1e-6:
                parts.append(f"{g}: needs at least {m.bound:.0f} (minimum not proven within the solver's "
                             f"limits), only {cap} available")
        return "availability: " + ("; ".join(parts) or "binds only together with the other limits")
    if name == "max GPU types":
        m = _min_of(rs, cands, lim, settings, lambda mm: mathopt.fast_sum(mm.z.values()), integral=True)
        assert base.max_gpu_types is not None
        if m is None:
            return "max GPU types: no plan meets all demand even without this limit"
        if m.value is not None and m.value > base.max_gpu_types + 1e-6:
            return f"max GPU types: the demand needs {m.value:.0f} GPU types, the limit is {base.max_gpu_types}"
        if m.value is None and m.bound > base.max_gpu_types + 1e-6:
            return (f"max GPU types: the demand needs at least {m.bound:.0f} GPU types (minimum not proven "
                    f"within the solver's limits), the limit is {base.max_gpu_types}")
        return "max GPU types: binds only together with the other limits"
    return name


def _explain_racks(rs: ResolvedScenario, cands: CandidateSet, lim: Limits, settings: SolveSettings, *,
                   together: bool) -> str:
    """The fewest racks that admit a plan (with ``lim``'s other limits), found by bisection on the
    rack count: feasibility only grows with racks. Quoted as a shortfall only when proven."""
    site = rs.scenario.site
    misfits = unrackable(rs, cands)
    note = f"; servers that fit no rack are never bought: {'; '.join(misfits)}" if misfits else ""
    shape = f"{site.rack_power_kw:g} kW / {site.rack_units} U"
    lo_proven = not together  # alone: the full model (the site's racks) was proven infeasible
    if together:
        at_site = feasible(rs, cands, replace(lim, racks=site.racks), settings)
        if at_site is True:
            return (f"racks: with the other limits lifted the plan fits the site's {site.racks} racks, so they "
                    f"bind only together with the other limits{note}")
        lo_proven = at_site is False
    unlimited, counts = _probe(rs, cands, replace(lim, racks=None), settings)
    if unlimited is False:
        return f"racks: more racks would not help, no plan exists even with unlimited racks{note}"
    if unlimited is None:
        return f"racks: binding, amount unknown (no plan found within the solver's limits){note}"
    # a found plan racks first-fit into hi racks; more than server_bound racks can never be used
    hi = len({r for racks in first_fit_racks(counts, cands.skus, site.rack_power_kw, site.rack_units).values()
              for r in racks})
    lo = site.racks
    if hi <= lo:  # the plan found fits the site's racks after all (only when their check was undecided)
        return (f"racks: with the other limits lifted a plan fits the site's {site.racks} racks, so they "
                f"bind only together with the other limits{note}")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        ok = feasible(rs, cands, replace(lim, racks=mid), settings)
        if ok is True:
            hi = mid
        else:
            lo_proven = lo_proven and ok is False
            lo = mid
    if lo_proven:
        return (f"racks short by {hi - site.racks}: the plan needs {hi} racks of {shape}, the site has "
                f"{site.racks}{note}")
    return (f"racks short by at most {hi - site.racks}: a plan fits in {hi} racks of {shape} (fewer were not "
            f"ruled out within the solver's limits), the site has {site.racks}{note}")
