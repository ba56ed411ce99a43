"""`procure validate SCENARIO`: load the catalog and scenario, resolve every name, print a summary."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from optimizer.cli.common import FORMAT_OPTION, print_json, stdout
from optimizer.cli.notes import demand_lines
from optimizer.loaders import ResolvedScenario, load_scenario
from optimizer.report.inputs import scenario_summary, validate_payload
from optimizer.schema.scenario import InferenceWorkload


def length_table(w: InferenceWorkload) -> Table:
    """A workload's length buckets (and where they came from) as printed by validate and solve."""
    t = Table(title=f"{w.name}: length mix" + (f" — {w.lengths_source}" if w.lengths_source else ""))
    for col in ("input tokens", "output tokens", "share", "req/s"):
        t.add_column(col, justify="right")
    for i_tok, o_tok, share in w.buckets():
        t.add_row(f"{i_tok:,}", f"{o_tok:,}", f"{share:.1%}", f"{w.requests_per_s * share:.3g}")
    return t


def summary(rs: ResolvedScenario) -> dict[str, object]:
    """The scenario in brief (``procure validate --format json`` without ``valid`` and ``warnings``)."""
    return scenario_summary(rs)


@click.command("validate")
@click.argument("scenario", type=click.Path(path_type=Path))
@FORMAT_OPTION
def validate_command(scenario: Path, fmt: str) -> None:
    """Check SCENARIO against the schema and catalog; exit 2 with the field and a fix if not.

    Prints the peak rate derived from each workload's demand: and, when the scenario has measured:
    entries, sizes the candidates to warn about entries that match no candidate deployment."""
    rs = load_scenario(scenario)
    payload = validate_payload(rs)
    warnings: list[str] = payload["warnings"]
    if fmt == "json":
        print_json(payload)
        return
    sc = rs.scenario
    con = stdout()
    con.print(f"[bold green]valid[/]: {sc.name} ({rs.path})")
    con.print(f"objective {sc.objective}; budget "
              f"{f'{sc.constraints.budget:,.0f} {sc.currency}' if sc.constraints.budget else 'none'}; "
              f"site {sc.site.power_kw:g} kW at PUE {sc.site.pue:g}, {sc.site.racks} racks x "
              f"{sc.site.rack_power_kw:g} kW")
    con.print(f"GPUs allowed: {', '.join(sorted(rs.gpus))}")
    con.print(f"servers allowed: {', '.join(sorted(rs.servers))}")
    t = Table(title="Workloads")
    for col in ("name", "kind", "model", "load", "SLO / deadline"):
        t.add_column(col)
    for w in sc.workloads:
        if w.kind == "inference":
            shape = (f"{w.input_tokens}->{w.output_tokens} tok" if w.lengths is None else
                     f"mix of {len(w.lengths)} buckets, mean {w.input_tokens}->{w.output_tokens} tok")
            load = f"{w.requests_per_s:g} req/s, {shape}, ctx {w.max_context}"
            slo = w.slo.describe()
        else:
            load = f"{w.method}: {w.dataset_tokens:.3g} tok x {w.epochs:g} epochs"
            slo = f"{w.deadline_hours:g} h"
        t.add_row(w.name, w.kind, rs.models[w.name].name, load, slo)
    con.print(t)
    for line in demand_lines(rs):
        con.print(f"peak rate {line}", markup=False, highlight=False, soft_wrap=True)
    if rs.measured:
        con.print(f"{len(rs.measured)} measured capacit{'y' if len(rs.measured) == 1 else 'ies'} "
                  f"({len(rs.measured) - len(warnings)} matching a candidate deployment)")
    for line in warnings:
        con.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)
    for w in sc.inference_workloads().values():
        if w.lengths is not None:
            con.print(length_table(w))
