"""Rich tables of a plan for the terminal."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from optimizer.schema.plan import Plan
from optimizer.sizing.layout import layout_label
from optimizer.units import money_short as money


def plan_tables(plan: Plan) -> Group:
    cur = plan.currency
    s = plan.solver
    head = Table.grid(padding=(0, 2))
    head.add_row("[bold]scenario[/]", plan.scenario)
    head.add_row("[bold]status[/]", f"{plan.status} ({s.solver}, gap {plan.gap:.4%}, bound {s.bound:,.2f}, "
                 f"{s.solve_time_s:.2f} s, {s.candidates} candidates)")
    if plan.status != "optimal":
        stop = f"stage 1 stopped by {s.stopped_by}, stage 2 by {s.tiebreak_stopped_by}"
        if "time_limit" in (s.stopped_by, s.tiebreak_stopped_by):
            stop += " — a clock decided: a busy machine may give another plan; raise --time-limit"
        head.add_row("[bold yellow]limit[/]", stop)
    bands = {(d.gpu, d.efficiency_source, d.capacity_band_log_sd) for d in plan.deployments}
    wide = ", ".join(f"{g} ({src}, log-sd {sd:.2f})" for g, src, sd in sorted(bands) if sd > 0)
    head.add_row("[bold]confidence[/]", f"{plan.confidence:.0%}: each replica is planned at the capacity it "
                 + ("reaches on the point estimate" if plan.confidence == 0.5 else
                    f"reaches with {plan.confidence:.0%} probability (the {1 - plan.confidence:.0%} quantile of "
                    "its GPU family's error band)") + (f"; bands: {wide}" if wide else ""))
    if plan.hourly_cost is not None:
        head.add_row("[bold]hourly[/]", f"{plan.hourly_cost:,.2f} {cur} per hour for the cloud instances rented "
                     "(on-demand prices as declared)")
    head.add_row("[bold]capex[/]", f"{plan.capex:,.0f} {cur}  (prices are dated estimates)")
    head.add_row("[bold]TCO[/]", f"{plan.tco:,.0f} {cur} over {plan.horizon_years:g} years "
                 f"(energy {money(plan.energy_cost, cur)}, opex {money(plan.opex_cost, cur)})")
    head.add_row("[bold]power[/]", f"{plan.power_kw:,.1f} kW IT, {plan.facility_power_kw:,.1f} kW facility; "
                 f"{plan.racks_used} racks, {plan.rack_units_used} U")
    head.add_row("[bold]GPUs[/]", ", ".join(f"{n} x {g}" for g, n in sorted(plan.gpus_by_type.items())) or "none")

    if plan.npv is not None and plan.discount_rate is not None:
        head.add_row("[bold]NPV[/]", f"{plan.npv:,.0f} {cur}: cash out discounted at {plan.discount_rate:.1%} a "
                     "year, each year's counted at its start (capex above is nominal, all years)")

    rented = plan.hourly_cost is not None and plan.periods is None
    title = ("Cloud instances to rent" if rented else
             "Fleet in the last year (owned and rented)" if plan.periods is not None else "Servers to buy")
    servers = Table(title=title)
    for col in ("SKU", "count", "GPUs/server", "per hour" if rented else "unit price", "extended", "kW each"):
        servers.add_column(col, justify="left" if col == "SKU" else "right")
    for line in plan.servers:
        unit = line.hourly_price if line.hourly_price is not None else line.unit_price
        servers.add_row(line.sku, str(line.count), str(line.gpus_per_server),
                        f"{unit:,.2f}" if rented else f"{unit:,.0f}",
                        f"{unit * line.count:,.2f}" if rented else f"{unit * line.count:,.0f}",
                        f"{line.power_w / 1000:,.2f}")

    deps = Table(title="Deployments")
    for col in ("workload", "GPU", "TP", "PP", "EP", "DP", "precision", "replicas", "req/s each", "planned req/s",
                "TTFT ms", "TPOT ms", "limit"):
        deps.add_column(col, justify="left" if col in ("workload", "GPU", "precision", "limit") else "right")
    for d in plan.deployments:
        deps.add_row(d.workload, d.gpu, str(d.tp), str(d.pp), str(d.ep), str(d.dp), d.precision, str(d.replicas),
                     f"{d.capacity_rps:.2f}",
                     f"{d.planned_rps:.2f}", f"{d.ttft_ms:,.0f}", f"{d.tpot_ms:.1f}", d.limited_by)
    for f in plan.finetunes:
        deps.add_row(f.workload, f.gpu, "-", "-", "-", "-", f.method, f"{f.gpus} GPUs", "-", "-", "-", "-",
                     f"{f.hours:.1f} h of {f.deadline_hours:g} h")

    routing = Table(title="Length buckets routed (time-shared replicas)")
    for col in ("workload", "GPU", "TP", "precision", "bucket in->out tok", "req/s each", "planned req/s",
                "TTFT ms", "TPOT ms"):
        routing.add_column(col, justify="left" if col in ("workload", "GPU", "precision") else "right")
    for d in plan.deployments:
        for b in d.buckets:
            routing.add_row(d.workload, d.gpu, str(d.tp), d.precision, f"{b.input_tokens}->{b.output_tokens}",
                            f"{b.capacity_rps:.2f}", f"{b.planned_rps:.2f}", f"{b.ttft_ms:,.0f}", f"{b.tpot_ms:.1f}")

    cov = Table(title="Coverage")
    for col in ("workload", "demand req/s", "capacity req/s (after headroom)", "served"):
        cov.add_column(col, justify="left" if col == "workload" else "right")
    for c in plan.coverage:
        cov.add_row(c.workload, f"{c.demand_rps:g}" if c.demand_rps is not None else "-",
                    f"{c.capacity_rps:.2f}" if c.capacity_rps is not None else "-", f"{c.served_fraction:.0%}")
    place = Table(title="Placement")
    for col in ("server", "rack", "SKU", "replicas", "free GPUs"):
        place.add_column(col)
    for p in plan.placement:
        reps = "; ".join(f"{r.workload} TP{r.tp}" + (f"xPP{r.pp}" if r.pp > 1 else "") + layout_label(r.ep, r.dp)
                         for r in p.replicas)
        reps = "; ".join(x for x in [reps, *(f"finetune {j}" for j in p.finetune)] if x)
        place.add_row(str(p.index), str(p.rack), p.sku, reps, str(p.free_gpus))
    parts = [head, *([period_table(plan)] if plan.periods else []), servers, deps,
             *([routing] if routing.row_count else []), cov, place]
    return Group(*parts)


def period_table(plan: Plan) -> Table:
    """One row per year of a plan over periods: what is bought, retired, rented, and the cash."""
    table = Table(title=f"Plan per year ({plan.currency}; deployments above are the last year's)")
    for col in ("year", "buy", "retire", "rent", "capex", "energy", "support", "rent cost", "cash out",
                "discounted", "kW IT"):
        table.add_column(col, justify="left" if col in ("buy", "retire", "rent") else "right")
    for p in plan.periods or []:
        table.add_row(str(p.year), "; ".join(f"{b.count} x {b.sku}" for b in p.buy) or "-",
                      "; ".join(f"{b.count} x {b.sku}" for b in p.retire) or "-",
                      "; ".join(f"{r.count} x {r.instance} ({r.option}, {r.gpu_hours:,.0f} GPU-h)" for r in p.rent)
                      or "-", f"{p.capex:,.0f}", f"{p.energy:,.0f}", f"{p.support:,.0f}", f"{p.rent_cost:,.0f}",
                      f"{p.cash_out:,.0f}", f"{p.discounted:,.0f}", f"{p.power_kw:,.1f}")
    return table
