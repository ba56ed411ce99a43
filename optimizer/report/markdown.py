"""A Markdown summary of a plan, for e-mail and tickets (``procure solve --markdown PATH``).

GitHub-flavoured Markdown tables: headline figures, servers to buy, deployments, coverage and the
solver's status. Figures come from the Plan as they are; the workbook is where they can be edited.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from optimizer import __version__
from optimizer.loaders import ResolvedScenario
from optimizer.report.safe_write import safe_write
from optimizer.schema.plan import Plan
from optimizer.sizing.layout import layout_label


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = ()) -> list[str]:
    """A GitHub-flavoured Markdown table; columns in ``right`` are right-aligned."""
    out = ["| " + " | ".join(_cell(h) for h in headers) + " |",
           "|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return out


def _money(value: float, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def render_markdown(plan: Plan, rs: ResolvedScenario) -> str:
    """The summary as Markdown text."""
    cur = plan.currency
    s = plan.solver
    lines = [f"# GPU purchase plan: {plan.scenario}", ""]
    if rs.scenario.description:
        lines += [rs.scenario.description.strip(), ""]
    lines += [f"Scenario file `{rs.path.name}`, written {date.today().isoformat()} by procure {__version__}. "
              "Prices are dated estimates, not quotes.", ""]
    gpus = ", ".join(f"{n} x {g}" for g, n in sorted(plan.gpus_by_type.items())) or "none"
    head = [
        ("Status", f"{plan.status} ({s.solver}, objective {s.objective_name}, gap {plan.gap:.2%})"),
        *([("Hourly", f"{_money(plan.hourly_cost, cur)} per hour (cloud instances rented)")]
          if plan.hourly_cost is not None else []),
        ("Capex", _money(plan.capex, cur)),
        (f"TCO over {plan.horizon_years:g} years", f"{_money(plan.tco, cur)} (energy {_money(plan.energy_cost, cur)}, "
         f"support/opex {_money(plan.opex_cost, cur)})"),
        ("Power", f"{plan.power_kw:,.1f} kW IT, {plan.facility_power_kw:,.1f} kW facility"),
        ("Space", f"{plan.racks_used} racks, {plan.rack_units_used} U"),
        ("GPUs", gpus),
    ]
    lines += [*_table(["", ""], [(f"**{k}**", v) for k, v in head]), ""]

    if plan.hourly_cost is not None:  # objective hourly: rented cloud instances
        lines += ["## Cloud instances to rent", ""]
        lines += _table(
            ["SKU", "Instances", "GPUs each", f"Per hour ({cur})", f"Extended per hour ({cur})"],
            [(x.sku, x.count, x.gpus_per_server, f"{x.hourly_price or 0.0:,.4g}",
              f"{(x.hourly_price or 0.0) * x.count:,.2f}") for x in plan.servers],
            right=(1, 2, 3, 4))
        lines += ["", f"Total: **{_money(plan.hourly_cost, cur)} per hour**.", ""]
    else:
        lines += ["## Servers to buy", ""]
        lines += _table(
            ["SKU", "Servers", "GPUs per server", f"Unit price ({cur})", f"Extended ({cur})", "kW each"],
            [(x.sku, x.count, x.gpus_per_server, f"{x.unit_price:,.2f}", f"{x.unit_price * x.count:,.2f}",
              f"{x.power_w / 1000:,.2f}") for x in plan.servers],
            right=(1, 2, 3, 4, 5))
        lines += ["", f"Total: **{_money(plan.capex, cur)}**.", ""]

    if plan.deployments or plan.finetunes:
        lines += ["## Deployments", ""]
        rows: list[Sequence[object]] = [
            (d.workload, d.model, d.gpu, f"TP{d.tp} PP{d.pp}" + layout_label(d.ep, d.dp), d.precision,
             d.replicas, f"{d.capacity_rps:.2f}",
             f"{d.ttft_ms:,.0f}", f"{d.tpot_ms:.1f}") for d in plan.deployments]
        rows += [(f.workload, f.model, f.gpu, f"{f.gpus} GPUs", f"{f.method} fine-tune", "-", "-",
                  f"{f.hours:.1f} h of {f.deadline_hours:g} h", "-") for f in plan.finetunes]
        lines += _table(["Workload", "Model", "GPU", "Layout", "Precision", "Replicas", "req/s per replica",
                         "TTFT ms", "TPOT ms"], rows, right=(5, 6, 7, 8))
        lines += [""]
    routed = [(d, b) for d in plan.deployments for b in d.buckets]
    if routed:
        lines += ["## Length buckets routed", "",
                  "Replicas time-share the buckets routed to them: each bucket's planned load over its "
                  "capacity per replica (times the headroom) is the replica time it takes.", ""]
        lines += _table(["Workload", "GPU", "Layout", "Bucket in->out tokens", "req/s per replica",
                         "Planned req/s", "TTFT ms", "TPOT ms"],
                        [(d.workload, d.gpu, f"TP{d.tp} PP{d.pp}" + layout_label(d.ep, d.dp),
                          f"{b.input_tokens}->{b.output_tokens}", f"{b.capacity_rps:.2f}", f"{b.planned_rps:.2f}",
                          f"{b.ttft_ms:,.0f}", f"{b.tpot_ms:.1f}") for d, b in routed], right=(4, 5, 6, 7))
        lines += [""]

    inference = [c for c in plan.coverage if c.kind == "inference"]
    if inference:
        lines += ["## Capacity", ""]
        lines += _table(
            ["Workload", "Demand req/s", "Capacity req/s (after headroom)", "Served", "SLO TTFT / TPOT ms"],
            [(c.workload, f"{c.demand_rps:g}" if c.demand_rps is not None else "-",
              f"{c.capacity_rps:.2f}" if c.capacity_rps is not None else "-", f"{c.served_fraction:.0%}",
              f"{c.slo_ttft_ms:g} / {c.slo_tpot_ms:g}" if c.slo_ttft_ms and c.slo_tpot_ms else "-")
             for c in inference], right=(1, 2, 3))
        lines += ["", f"Replicas are planned at no more than {plan.headroom:.0%} of their SLO capacity.", ""]

    lines += ["## Solver", "",
              f"{s.solver}: {s.status}, objective {s.objective:,.2f}, bound {s.bound:,.2f}, gap {s.gap:.4%}, "
              f"{s.solve_time_s:.2f} s, {s.candidates:,} candidates; stage 1 stopped by {s.stopped_by}, "
              f"stage 2 by {s.tiebreak_stopped_by} (limits: {s.node_limit:,} nodes, {s.time_limit_s:g} s per stage).",
              ""]
    for note in plan.notes:
        lines += [f"- {note}"]
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(plan: Plan, rs: ResolvedScenario, path: Path, *, force: bool = False) -> Path:
    """Write the Markdown summary to ``path`` safely (temporary file + rename)."""
    text = render_markdown(plan, rs)
    return safe_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"), force=force,
                      what="Markdown summary")
