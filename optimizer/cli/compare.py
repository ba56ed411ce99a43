"""`procure compare SCENARIO`: what-if variants (budgets, prices, GPUs, demand) solved side by side."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console, Group
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from optimizer.cli.common import FORMAT_OPTION, FiniteFloat, print_json, stdout
from optimizer.cli.notes import demand_lines
from optimizer.compare import (
    Comparison,
    ProgressEvent,
    VariantResult,
    build_variants,
    default_jobs,
    parse_amount,
    parse_budget_range,
    parse_gpu_list,
    parse_price,
    run_comparison,
)
from optimizer.errors import InfeasibleError, UsageError
from optimizer.loaders import load_scenario
from optimizer.model.diagnose import money
from optimizer.model.pipeline import with_overrides
from optimizer.montecarlo import MAX_SAMPLES
from optimizer.report.payload import comparison_payload
from optimizer.schema.scenario import MAX_DEMAND_SCALE, MAX_TIME_LIMIT_S


@click.command("compare")
@click.argument("scenario", type=click.Path(path_type=Path))
@FORMAT_OPTION
@click.option("--budget", "budgets", multiple=True, metavar="AMOUNT",
              help="A capex budget to compare (repeatable): 2e6, 2000000, 2.5M, 800k.")
@click.option("--budget-range", "budget_ranges", multiple=True, metavar="START:STOP:COUNT",
              help="COUNT budgets evenly spaced from START to STOP inclusive (repeatable), e.g. 1e6:8e6:8.")
@click.option("--price", "prices", multiple=True, metavar="NAME=PRICE",
              help="Unit price of a GPU or server chassis in the scenario currency (repeatable).")
@click.option("--allow-gpus", metavar="GPU,GPU", help="Only these GPUs may be bought (comma-separated).")
@click.option("--demand-scale", metavar="FACTOR", help="Multiply every inference request rate, e.g. 1.5.")
@click.option("--no-whatif", is_flag=True, help="Ignore the scenario's whatif: section.")
@click.option("--time-limit", type=FiniteFloat(0, MAX_TIME_LIMIT_S, min_open=True),
              help="Solver time limit per variant and stage, seconds (default: the scenario's).")
@click.option("--jobs", type=click.IntRange(min=1), help="Variants solved in parallel (default: the machine's cores).")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Excel workbook to write (default: reports/<scenario file name>-compare.xlsx).")
@click.option("--no-workbook", is_flag=True, help="Do not write the Excel workbook.")
@click.option("--force", is_flag=True, help="Replace an existing file given with -o.")
@click.option("--monte-carlo", "monte_carlo", type=click.IntRange(1, MAX_SAMPLES), metavar="N",
              help="Risk instead of variants: N samples of demand, GPU prices and capacity error bands "
              "(the scenario's risk: block); the recommended plan is evaluated on each and each is solved.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="Monte-Carlo seed: the same seed gives the same samples and results on any executor.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Monte-Carlo samples on local worker processes, or on Ray (pip install 'procure[ray]').")
@click.option("--address", metavar="ADDR",
              help="Ray cluster address (host:port or ray://...); omitted: Ray starts on this machine.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Monte-Carlo samples solved at once (default: local cores; Ray: the cluster decides).")
def compare_command(scenario: Path, fmt: str, budgets: tuple[str, ...], budget_ranges: tuple[str, ...],
                    prices: tuple[str, ...], allow_gpus: str | None, demand_scale: str | None, no_whatif: bool,
                    time_limit: float | None, jobs: int | None, output: Path | None, no_workbook: bool,
                    force: bool, monte_carlo: int | None, seed: int, executor: str, address: str | None,
                    workers: int | None) -> None:
    """Compare what-if variants of SCENARIO: budgets, prices, GPU choices and demand, side by side.

    Variants come from the options (one per budget, each with the --price/--allow-gpus/--demand-scale
    overrides; without budgets, the scenario as written plus one variant with the overrides) and from
    the scenario's whatif: section. A budget too small for all demand buys the most priority-weighted
    demand it can, then the cheapest such plan. As solve does, the peak rate derived from each
    workload's demand: is printed first and measured: entries no variant uses are warned about
    (stderr with --format json); --demand-scale scales demand: volumes with the rate and keeps a
    length mix's shares. Exit 0 when some variant has a plan, 1 when none has,
    2 for bad input.

    With --monte-carlo N: the risk of the scenario's plan instead (docs/compare.md, "Monte Carlo"):
    cost and served demand p10/p50/p90 over N samples, the probability it serves all demand, the
    distribution of each sample's optimal cost and the plan that holds in 90% of samples. --price,
    --allow-gpus and --demand-scale apply to the scenario first; no workbook is written. With periods:
    each sample also draws a demand growth m (year y x m^(y-1), risk: growth_log_sd), cost is the
    plan's NPV (or TCO) at sampled prices and served demand is per year (the worst year reported).
    Exit 1 when the scenario itself has no feasible plan.
    """
    rs = load_scenario(scenario)
    if monte_carlo is not None:
        from optimizer.cli.montecarlo import run_monte_carlo_command

        if budgets or budget_ranges:
            raise UsageError("--monte-carlo samples the scenario's own plan; it takes no --budget or "
                             "--budget-range", field="--monte-carlo",
                             hint="set constraints.budget in the scenario, or run the budget sweep separately")
        price_over = dict(parse_price(text, rs) for text in prices)
        gpu_list = parse_gpu_list(allow_gpus, rs) if allow_gpus is not None else None
        scale_over = (parse_amount(demand_scale, "--demand-scale", MAX_DEMAND_SCALE)
                      if demand_scale is not None else 1.0)
        if price_over or gpu_list is not None or scale_over != 1.0:
            rs = with_overrides(rs, prices=price_over or None, gpus=gpu_list, demand_scale=scale_over)
        run_monte_carlo_command(rs, monte_carlo, fmt=fmt, seed=seed, executor=executor, address=address,
                                workers=workers, time_limit=time_limit)
        return
    if executor != "local" or address is not None or workers is not None:
        raise UsageError("--executor, --address and --workers apply to --monte-carlo runs",
                         field="--executor", hint="add --monte-carlo N, or use --jobs for variants")
    amounts = [parse_amount(b, "--budget") for b in budgets]
    for text in budget_ranges:
        amounts += parse_budget_range(text)
    price_map: dict[str, float] = {}
    for text in prices:
        name, value = parse_price(text, rs)
        price_map[name] = value
    gpus = parse_gpu_list(allow_gpus, rs) if allow_gpus is not None else None
    scale = parse_amount(demand_scale, "--demand-scale", MAX_DEMAND_SCALE) if demand_scale is not None else 1.0
    variants = build_variants(rs, budgets=amounts, prices=price_map, gpus=gpus, demand_scale=scale,
                              use_whatif=not no_whatif)

    target = None
    if not no_workbook:
        from optimizer.report.compare_excel import default_compare_path
        from optimizer.report.safe_write import check_target

        target = check_target(output or default_compare_path(scenario), force=force or output is None,
                              what="workbook", suffix=".xlsx")  # fail before solving

    err = Console(stderr=True)
    # derived rates and warnings go beside the tables: stderr when stdout carries the JSON (as solve)
    say = err if fmt == "json" else stdout()
    for line in demand_lines(rs):
        say.print(f"peak rate {line}", markup=False, highlight=False, soft_wrap=True)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    # auto_refresh off: no display thread runs while the solver worker processes are forked.
    with Progress(*columns, console=err, transient=True, auto_refresh=False) as bar:
        task = bar.add_task(f"comparing {len(variants)} variants", total=None)

        def show(e: ProgressEvent) -> None:
            bar.update(task, completed=e.done, total=e.total, description=e.message)
            bar.refresh()

        result = run_comparison(rs, variants, time_limit_s=time_limit, jobs=jobs or default_jobs(), progress=show)
    for line in result.warnings:
        say.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)

    written = None
    if target is not None:
        from optimizer.report.compare_excel import write_compare_workbook

        written = write_compare_workbook(result, rs, target, force=force or output is None)
    if fmt == "json":
        print_json(comparison_payload(result))
    else:
        con = stdout()
        con.print(comparison_tables(result))
        if written is not None:
            con.print(f"wrote {written}")
    if all(v.plan is None for v in result.variants):
        raise InfeasibleError("no variant has a feasible plan:\n  " + "\n  ".join(
            f"{v.name}: {v.reason}" for v in result.variants))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _budget(v: VariantResult, cur: str) -> str:
    if v.budget is None:
        return "no cap"
    return money(v.budget, cur) + (" (scenario)" if v.budget_from == "scenario" else "")


def comparison_tables(result: Comparison) -> Group:
    """Variants as rows, in the comparison's order (by budget): cost, served demand, marginal value on
    capex spent, hardware, the recommended variant marked; then served demand per workload."""
    cur = result.currency
    main = Table(title=f"What-if comparison — {result.scenario}")
    for name in ("", "variant", "budget", "plan", "capex", f"TCO {result.horizon_years:g}y", "served", "req/s",
                 "pts/1M", f"{cur}/pt", "GPUs", "IT kW"):
        main.add_column(name, justify="left" if name in ("", "variant", "plan", "GPUs") else "right",
                        no_wrap=name in ("", "variant", "GPUs", "budget", "capex", "plan"))
    for v in result.variants:
        plan = v.status if v.objective is None else (
            v.objective if v.status == "optimal" else f"{v.objective}, {v.status}")
        main.add_row(
            "▶" if v.recommended else "", v.name, _budget(v, cur), plan,
            money(v.capex, cur) if v.capex is not None else "-", money(v.tco, cur) if v.tco is not None else "-",
            _pct(v.served_fraction), _pct(v.served_requests_fraction),
            f"{v.marginal_points_per_million:,.2f}" if v.marginal_points_per_million is not None else "-",
            money(v.marginal_cost_per_point, cur) if v.marginal_cost_per_point is not None else "-",
            ", ".join(f"{n} {g.split('-')[0]}" for g, n in v.gpus_by_type.items()) or "-",
            f"{v.power_kw:,.1f}" if v.power_kw is not None else "-")
    per = Table(title="Served demand per workload")
    per.add_column("variant")
    for w in result.workloads:
        per.add_column(f"{w} (p{result.priorities.get(w, 1.0):g})", justify="right")
    for v in result.variants:
        per.add_row(v.name, *(_pct(v.served_by_workload.get(w)) if v.plan is not None else "-"
                              for w in result.workloads))
    notes = [f"[bold]Recommended (▶): {escape(result.recommended or 'none')}[/] — "
             + (result.recommendation.split("; rule: ", 1)[-1] if result.recommendation else ""),
             f"plan: the objective, capex/tco (all demand served) or coverage (the budget cannot buy all "
             f"demand, so the plan serves the most "
             f"priority-weighted demand it can, then costs the least); served: priority-weighted share of demand; "
             f"req/s: share of requests served; pts/1M and {cur}/pt: marginal value on capex actually spent, "
             f"served-demand percentage points per extra 1M {cur} of capex, and capex per point, up to the next "
             f"budget point of the same prices/GPUs/demand; capex: servers + quote lines; budget (scenario): the "
             f"scenario's cap, the variant sets none; {len(result.variants)} variants in {result.wall_time_s:.1f} s "
             f"on {result.jobs} processes"]
    for v in result.variants:
        for line in [v.reason, *v.notes]:
            if line:
                notes.append(f"[bold]{v.name}[/]: {line}")
    return Group(main, per, *notes)
