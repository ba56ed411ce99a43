"""`procure compare SCENARIO --monte-carlo N`: the risk of the scenario's plan, as tables or JSON."""

from __future__ import annotations

from typing import cast

from rich.console import Console, Group
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from optimizer.cli.common import print_json, stdout
from optimizer.loaders import ResolvedScenario
from optimizer.montecarlo import Executor, MonteCarloResult, PlanRisk, Quantiles, run_monte_carlo
from optimizer.units import money_short as money


def run_monte_carlo_command(rs: ResolvedScenario, n: int, *, fmt: str, seed: int, executor: str,
                            address: str | None, workers: int | None, time_limit: float | None) -> None:
    err = Console(stderr=True)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    # auto_refresh off: no display thread runs while the worker processes are forked
    with Progress(*columns, console=err, transient=True, auto_refresh=False) as bar:
        task = bar.add_task(f"solving the plan and {n} samples on {executor}", total=n)

        def show(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
            bar.refresh()

        result = run_monte_carlo(rs, n, seed=seed, executor=cast(Executor, executor), workers=workers,
                                 address=address, time_limit_s=time_limit, progress=show)
    if fmt == "json":
        print_json(result.model_dump(mode="json"))
    else:
        stdout().print(monte_carlo_tables(result))


def _q(q: Quantiles | None, fmt: str, cur: str = "") -> tuple[str, str, str]:
    if q is None:
        return "-", "-", "-"
    if fmt == "money":
        return money(q.p10, cur), money(q.p50, cur), money(q.p90, cur)
    return f"{q.p10:.1%}", f"{q.p50:.1%}", f"{q.p90:.1%}"


def _gpus(p: PlanRisk) -> str:
    return ", ".join(f"{n} {g}" for g, n in p.gpus_by_type.items()) or "-"


def monte_carlo_tables(r: MonteCarloResult) -> Group:
    """Cost and served demand of the recommended and the robust plan, each sample's optimum; per workload."""
    cur = r.currency
    main = Table(title=f"Monte Carlo — {r.scenario}: {r.samples} samples, seed {r.seed}"
                 + (f", {r.years} years (cost: {r.cost_name.upper()})" if r.years > 1 else ""))
    for name in ("", "capex", "p10", "p50", "p90", "all served", "GPUs"):
        main.add_column(name, justify="left" if name in ("", "GPUs") else "right")
    plans = [("recommended plan: cost", r.recommended)]
    if r.robust_plan is not None:
        plans.append((f"holds in 90% ({r.robust_plan.source}): cost", r.robust_plan))
    elif r.most_robust_plan.source != "recommended":
        plans.append((f"holds most often ({r.most_robust_plan.source}): cost", r.most_robust_plan))
    for label, p in plans:
        main.add_row(label, money(p.capex, cur), *_q(p.cost, "money", cur), f"{p.p_all_served:.0%}", _gpus(p))
        main.add_row("  served (requests)" + (", worst year" if r.years > 1 else ""), "", *_q(p.served, "pct"), "", "")
        if r.years > 1:
            for y, q in enumerate(p.served_by_year, start=1):
                main.add_row(f"    year {y}", "", *_q(q, "pct"), "", "")
    main.add_row("each sample's optimum: cost", "", *_q(r.optimal_cost, "money", cur),
                 f"{r.samples - r.unsolved_samples}/{r.samples} solved", "")
    per = Table(title="Recommended plan: served fraction per workload" + (", worst year" if r.years > 1 else ""))
    for name in ("workload", "p10", "p50", "p90"):
        per.add_column(name, justify="left" if name == "workload" else "right")
    for w, q in r.served_by_workload.items():
        per.add_row(w, *_q(q, "pct"))
    risk = r.risk
    notes = [
        f"samples: demand x lognormal(median {risk.demand_median:g}, log sd {risk.demand_log_sd:g}); GPU prices x "
        f"lognormal(log sd {risk.price_log_sd:g}); capacity x exp(z x band_log_sd) per GPU family"
        + ("" if risk.capacity_error else " (off)")
        + (f"; year y's demand also x m^(y-1), m lognormal(log sd {risk.growth_log_sd:g})" if r.years > 1 else "")
        + f"; cost: {r.cost_name.upper() if r.years > 1 else 'capex'} at sampled prices; "
        "all served: share of samples where every workload is fully served",
        "holds in 90%: " + escape(r.robust_rule) if r.robust_plan is not None
        else f"[bold]no plan holds in 90% of samples[/] (the most: {r.most_robust_plan.p_all_served:.0%}, "
        f"{escape(r.most_robust_plan.source)}; samples a site or supply limit leaves unsolvable count against "
        "every plan) — " + escape(r.robust_rule),
        f"{r.samples} samples in {r.wall_time_s:.1f} s on {r.executor}"]
    return Group(main, per, *notes)
