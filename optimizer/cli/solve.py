"""`procure solve SCENARIO`: the cheapest plan, checked, as tables, JSON or a workbook."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from optimizer.cli.common import FORMAT_OPTION, FiniteFloat, print_json, stdout
from optimizer.cli.notes import demand_lines, measured_warnings
from optimizer.engines import KNOWN, known_combinations
from optimizer.errors import InfeasibleError, UsageError
from optimizer.loaders import load_scenario
from optimizer.model.pipeline import settings_of, solve_scenario, with_overrides
from optimizer.report.payload import infeasible_payload, plan_payload
from optimizer.report.tables import plan_tables
from optimizer.schema.scenario import MAX_MONEY, MAX_SEED, MAX_TIME_LIMIT_S


@click.command("solve")
@click.argument("scenario", type=click.Path(path_type=Path))
@FORMAT_OPTION
@click.option("--budget", type=FiniteFloat(0, MAX_MONEY, min_open=True), help="Override the capex cap (currency).")
@click.option("--objective", type=click.Choice(["capex", "tco", "coverage", "hourly", "npv"]),
              help="Override the objective; hourly: least price per hour of cloud instance types (the "
                   "shipped ones, `procure catalog cloud`, and those the scenario declares under catalog.servers); "
                   "npv: least discounted cash out of a scenario with periods: (docs/periods.md).")
@click.option("--confidence", type=FiniteFloat(0.5, 0.99),
              help="Override the scenario's confidence: the probability each replica reaches the capacity it "
                   "is planned at (0.5 = point estimates; higher buys margin where a GPU family's error band "
                   "is wide).")
@click.option("--engine", type=click.Choice(list(KNOWN)),
              help="Override serving.engine (the engine whose memory rules size every candidate).")
@click.option("--engine-version",
              help=f"Override serving.engine_version [default: the scenario's, or the new engine's default]; "
                   f"known: {known_combinations()}.")
@click.option("--time-limit", type=FiniteFloat(0, MAX_TIME_LIMIT_S, min_open=True),
              help="Wall-clock cap per solver stage, seconds (default 60): a safety net; a plan it cut says so.")
@click.option("--node-limit", type=click.IntRange(1, 10**9),
              help="Branch-and-bound nodes per stage (default 100,000): the deterministic work limit.")
@click.option("--gap", type=FiniteFloat(0, 1), help="Relative MIP gap to stop at (default 1e-4).")
@click.option("--threads", type=click.IntRange(1, 1024), help="Solver threads (default 1: deterministic).")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), help="Solver random seed (default 0).")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Excel workbook to write (default: reports/<scenario file name>.xlsx).")
@click.option("--no-workbook", is_flag=True, help="Do not write the Excel workbook.")
@click.option("--markdown", type=click.Path(path_type=Path), help="Also write a Markdown summary here.")
@click.option("--force", is_flag=True, help="Replace an existing file given with -o/--markdown.")
def solve_command(scenario: Path, fmt: str, budget: float | None, objective: str | None,
                  confidence: float | None, engine: str | None, engine_version: str | None,
                  time_limit: float | None, node_limit: int | None, gap: float | None, threads: int | None,
                  seed: int | None,
                  output: Path | None, no_workbook: bool, markdown: Path | None, force: bool) -> None:
    """Find the cheapest mix of servers and GPUs that serves SCENARIO, verify it, and print it.

    A workload given as business volumes (demand:) is planned on its derived peak rate, printed
    first (stderr with --format json); measured: entries that match no candidate are warned about.

    Exit 0 with a plan, 1 when no plan fits the limits (the message names the binding limit and by
    how much), 2 for bad input.
    """
    rs = load_scenario(scenario)
    workbook, markdown = _output_targets(scenario, output=output, no_workbook=no_workbook, markdown=markdown,
                                         force=force)
    if any(v is not None for v in (budget, objective, confidence, engine, engine_version)):
        rs = with_overrides(rs, budget=budget, objective=objective, confidence=confidence, engine=engine,
                            engine_version=engine_version)
    settings = settings_of(rs, time_limit_s=time_limit, gap=gap, threads=threads, seed=seed, node_limit=node_limit)
    err = Console(stderr=True)
    # derived rates and warnings go beside the plan: stderr when stdout carries the JSON
    say = err if fmt == "json" else stdout()
    for line in demand_lines(rs):
        say.print(f"peak rate {line}", markup=False, highlight=False, soft_wrap=True)
    try:
        with err.status("planning…") as status:
            result = solve_scenario(rs, settings, progress=lambda m: status.update(m))
    except InfeasibleError as exc:
        if fmt == "json":
            print_json(infeasible_payload(exc))
        raise
    plan = result.plan
    for line in measured_warnings(rs, result.candidates):
        say.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)
    written = []
    if workbook is not None:
        from optimizer.report.workbook import write_workbook

        written.append(write_workbook(plan, rs, workbook, force=force or output is None))
    if markdown is not None:
        from optimizer.report.markdown import write_markdown

        written.append(write_markdown(plan, rs, markdown, force=force))
    if fmt == "json":
        print_json(plan_payload(plan))
        return
    con = stdout()
    from optimizer.cli.validate import length_table

    for w in rs.scenario.inference_workloads().values():
        if w.lengths is not None:
            con.print(length_table(w))
    con.print(plan_tables(plan))
    con.print(f"[green]checked[/]: {len(result.checks)} constraints re-verified without the solver")
    for path in written:
        con.print(f"wrote {path}")


def _output_targets(scenario: Path, *, output: Path | None, no_workbook: bool, markdown: Path | None,
                    force: bool) -> tuple[Path | None, Path | None]:
    """The workbook and Markdown paths, checked before any solving: a missing or read-only folder, a
    folder given as the file, a file that exists without --force are UsageErrors (exit 2)."""
    from optimizer.report.safe_write import check_target
    from optimizer.report.workbook import default_workbook_path

    workbook = None
    if not no_workbook:
        workbook = check_target(output or default_workbook_path(scenario), force=force or output is None,
                                what="workbook", suffix=".xlsx")
    if markdown is not None:
        markdown = check_target(markdown, force=force, what="Markdown summary")
        if workbook is not None and markdown.resolve() == workbook.resolve():
            raise UsageError(f"--markdown {markdown} is also the workbook path",
                             hint="give the Markdown summary its own file name, e.g. plan.md")
    return workbook, markdown
