"""Mélange's own problems solved by procure (issue #17, item 6), beside Mélange's ILP.

Mélange (Griggs et al. 2024, "Mélange: Cost Efficient LLM Serving by Exploiting GPU
Heterogeneity", arXiv 2404.14527; code tyler-griggs/melange-release) picks the cheapest mix of
1-GPU cloud instances for a request-size mix. Its input JSON (``melange/config/example.json``,
README "Explanation of Inputs and Outputs") holds, per GPU type, ``cost`` ($/h) and ``tputs`` (max
requests/s at the SLO per input-size row x output-size column bucket), the bucket shares
``workload_distribution``, ``total_request_rate`` (req/s) and ``slice_factor``. Its solver
(``melange/solver.py``) splits each bucket's rate into ``slice_factor`` equal slices, gives each
slice to one GPU type (binary x[slice, type]) and buys integer y[type] GPUs with
Σ_slices x·rate_slice/tput ≤ y (the load 1/tput: ``melange/util.py`` ``tputs_to_loads_2d``),
minimising Σ cost·y, with PuLP's CBC.

This script:

* converts such an input into a procure scenario (:func:`to_scenario`): one workload with one
  length bucket per cell (``lengths:``), ``measured:`` capacities per (GPU type, bucket) = ``tputs``,
  each GPU type a 1-GPU cloud instance declared under ``catalog:`` at its ``cost`` per hour,
  headroom 1.0 (Mélange plans at full measured capacity) and ``objective: hourly``; procure
  routes each bucket's rate continuously over the instances (the LP relaxation of the slice
  assignment), so its cost is at most the ILP's on the same capacities;
* solves Mélange's ILP as their solver states it (:func:`melange_ilp`: OR-Tools' CBC by default,
  as PuLP uses; HiGHS or SCIP on request), under a time limit so it cannot hang;
* generates seeded instances up to 800 slices x 12 GPU types (:func:`generate`).

    python benchmarks/melange.py                        # example + generated 64x4, 256x8, 800x12
    python benchmarks/melange.py INPUT.json --format json   # {"cost", "solve_time_s", "allocation"}
    python benchmarks/melange.py INPUT.json --write-scenario out.yaml

Bucket lengths: Mélange's input has no token counts, only bucket indices; its profiling script
(``melange/profiling/benchmark-launcher.sh``) benchmarks input and output lengths 25, 100, 250,
500, 1000, 2000, so row i / column j default to the i-th / j-th of those (``--input-tokens``,
``--output-tokens`` set others). The model is Llama-2-7B (the paper's 7B model) in fp16.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, ValidationError, model_validator

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from optimizer.errors import ProcureError, UsageError  # noqa: E402
from optimizer.schema.base import Strict  # noqa: E402

#: Mélange's profiled lengths (melange/profiling/benchmark-launcher.sh: input_len and output_len loops)
MELANGE_LENGTHS = (25, 100, 250, 500, 1000, 2000)
MODEL = "Llama-2-7B"
PRECISION = "fp16"
MAX_CONTEXT = 4096  # Llama-2's max_position_embeddings
#: Mélange's SLO is on mean TPOT (the paper's 120 ms and 40 ms settings); its tputs already meet
#: it, so procure only needs a target its capacities are labelled with.
DEFAULT_TPOT_MS = 120.0
DEFAULT_TTFT_MS = 10_000.0
#: Date the converted figures are dated with: Mélange's release (arXiv 2404.14527 v1, April 2024;
#: the day is nominal). A fixed date keeps the same input giving the same scenario.
AS_OF = "2024-04-22"
#: A catalog GPU each Mélange GPU name stands for when the catalog has no such name or alias: the
#: A10G (AWS g5) is the A10's GA102 with 24 GB GDDR6, so its memory is the A10's.
GPU_BASES = {"A10G": "A10-24GB"}

#: Mélange's example input (tyler-griggs/melange-release melange/config/example.json @ebba701);
#: the README at d46ab43 gives its answer: 3 x A10G + 1 x A100-80GB = 6.7 $/h.
EXAMPLE: dict[str, Any] = {
    "gpu_info": {
        "A10G": {"cost": 1.01, "tputs": [[2, 1], [5, 2]]},
        "A100-80GB": {"cost": 3.67, "tputs": [[20, 20], [40, 20]]},
    },
    "workload_distribution": [[0.2, 0.1], [0.5, 0.2]],
    "total_request_rate": 30.0,
    "slice_factor": 1,
}


class GpuInfo(Strict):
    cost: float = Field(gt=0, le=1e6, description="Hourly price of one instance, $/h")
    tputs: list[list[float]] = Field(min_length=1, description="Max requests/s at the SLO per bucket")

    @model_validator(mode="after")
    def _positive(self) -> GpuInfo:
        for row in self.tputs:
            if not row or any(not (0 < t <= 1e7) for t in row):
                raise ValueError("every tput must be > 0 req/s (Mélange divides by it) and at most 1e7")
        return self


class MelangeInput(Strict):
    """Mélange's input JSON (README "Explanation of Inputs and Outputs")."""

    gpu_info: dict[str, GpuInfo] = Field(min_length=1)
    workload_distribution: list[list[float]] = Field(min_length=1)
    total_request_rate: float = Field(gt=0, le=1e7, description="req/s over all buckets")
    slice_factor: int = Field(default=1, ge=1, le=10_000)

    @model_validator(mode="after")
    def _shapes(self) -> MelangeInput:
        rows = len(self.workload_distribution)
        cols = len(self.workload_distribution[0])
        if any(len(r) != cols for r in self.workload_distribution):
            raise ValueError("workload_distribution rows must all have the same length")
        if any(not (0 <= s <= 1) for r in self.workload_distribution for s in r):
            raise ValueError("workload_distribution shares must lie in [0, 1]")
        if not math.isclose(sum(map(sum, self.workload_distribution)), 1.0, abs_tol=1e-6):
            raise ValueError("workload_distribution must sum to 1")
        for name, g in self.gpu_info.items():
            if len(g.tputs) != rows or any(len(r) != cols for r in g.tputs):
                raise ValueError(f"gpu_info.{name}.tputs must be {rows} x {cols} like workload_distribution")
        return self

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.workload_distribution), len(self.workload_distribution[0])

    @property
    def slices(self) -> int:
        rows, cols = self.shape
        return rows * cols * self.slice_factor


def read_input(path: Path) -> MelangeInput:
    """A Mélange input file; bad JSON or fields are a UsageError naming the file and field."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read: {exc.strerror or exc}", file=str(path)) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"not a JSON file: {exc}", file=str(path)) from exc
    try:
        return MelangeInput.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise UsageError(first["msg"].removeprefix("Value error, "), file=str(path), field=loc,
                         hint="see Mélange's README, 'Explanation of Inputs and Outputs'") from exc


# --- Mélange's ILP ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    """A solver's answer: $/h, GPUs per type, wall time, and whether it is proven optimal."""

    cost: float | None
    allocation: dict[str, int]
    solve_time_s: float
    status: str  # optimal | feasible (a limit stopped it) | none (no answer within the limit)


def melange_ilp(inp: MelangeInput, time_limit_s: float = 60.0, solver: str = "CBC") -> Answer:
    """Mélange's formulation (melange/solver.py), solved with OR-Tools' linear solver.

    Slices: each bucket's rate λ·share split into ``slice_factor`` equal parts. x[i,j] ∈ {0,1}
    gives slice i to GPU type j (Σ_j x[i,j] = 1), y[j] ∈ Z+ GPUs of type j, and
    Σ_i x[i,j]·rate_i/tput_{b(i),j} ≤ y[j]; minimise Σ_j cost_j·y[j]."""
    from ortools.linear_solver import pywraplp

    names = sorted(inp.gpu_info)
    rows, cols = inp.shape
    m = pywraplp.Solver.CreateSolver(solver)
    if m is None:
        raise UsageError(f"OR-Tools has no {solver} solver here", hint="use CBC, SCIP or HIGHS")
    m.SetTimeLimit(int(time_limit_s * 1000))
    y = {j: m.IntVar(0, m.infinity(), f"y_{j}") for j in names}
    load: dict[str, list[Any]] = {j: [] for j in names}
    for b_in in range(rows):
        for b_out in range(cols):
            rate = inp.workload_distribution[b_in][b_out] * inp.total_request_rate / inp.slice_factor
            for k in range(inp.slice_factor):
                x = {j: m.BoolVar(f"x_{b_in}_{b_out}_{k}_{j}") for j in names}
                m.Add(sum(x.values()) == 1)
                for j in names:
                    load[j].append(x[j] * (rate / inp.gpu_info[j].tputs[b_in][b_out]))
    for j in names:
        m.Add(sum(load[j]) <= y[j])
    m.Minimize(sum(inp.gpu_info[j].cost * y[j] for j in names))
    start = time.perf_counter()
    status = m.Solve()
    took = time.perf_counter() - start
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        return Answer(None, {}, took, "none")
    alloc = {j: round(y[j].solution_value()) for j in names}
    cost = sum(inp.gpu_info[j].cost * n for j, n in alloc.items())
    return Answer(cost, {j: n for j, n in alloc.items() if n}, took,
                  "optimal" if status == pywraplp.Solver.OPTIMAL else "feasible")


# --- conversion to a procure scenario -----------------------------------------------------------

def instance_name(gpu: str) -> str:
    return f"melange-1x-{gpu}"


def _gpu_entries(inp: MelangeInput) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Catalog GPU name for each Mélange GPU type, and the GPUs to declare: a name the shipped
    catalog knows (name or alias, e.g. A100-80GB) is used as is; another is declared with the
    specs of its base (GPU_BASES, or a name ``<base>~<tag>`` from :func:`generate`)."""
    from optimizer.loaders import load_catalog, resolve_gpu

    cat = load_catalog()
    names: dict[str, str] = {}
    declared: list[dict[str, Any]] = []
    for gpu in sorted(inp.gpu_info):
        try:
            names[gpu] = resolve_gpu(gpu, cat).name
            continue
        except ProcureError:
            pass
        base_name = GPU_BASES.get(gpu) or GPU_BASES.get(gpu.split("~")[0]) or gpu.split("~")[0]
        try:
            base = resolve_gpu(base_name, cat)
        except ProcureError as exc:
            raise UsageError(f"GPU type {gpu!r} is not in procure's catalog and has no known base",
                             hint="name it as in `procure catalog gpus`, or add it to GPU_BASES") from exc
        entry = base.model_dump(mode="json")
        entry.update(name=f"{gpu}-melange", aliases=[],
                     source=f"Mélange GPU type {gpu}: specs of {base.name} (memory decides the fit; "
                            f"capacity is measured) - {base.source}",
                     notes=f"Declared by benchmarks/melange.py for Mélange GPU type {gpu}.")
        names[gpu] = entry["name"]
        declared.append(entry)
    return names, declared


def to_scenario(inp: MelangeInput, name: str = "melange", input_tokens: list[int] | None = None,
                output_tokens: list[int] | None = None, source: str = "Mélange input",
                tpot_ms: float = DEFAULT_TPOT_MS, ttft_ms: float = DEFAULT_TTFT_MS) -> dict[str, Any]:
    """The procure scenario (as YAML data) for a Mélange input: see the module docstring."""
    rows, cols = inp.shape
    ins = list(input_tokens or MELANGE_LENGTHS[:rows])
    outs = list(output_tokens or MELANGE_LENGTHS[:cols])
    if len(ins) != rows or len(outs) != cols:
        raise UsageError(f"the input has {rows} x {cols} buckets; give {rows} input and {cols} output "
                         "lengths (--input-tokens, --output-tokens)",
                         hint=f"Mélange's profiled lengths are {', '.join(map(str, MELANGE_LENGTHS))}")
    gpu_names, gpus = _gpu_entries(inp)
    servers = [{
        "name": instance_name(gpu), "vendor": "cloud (from the Mélange input)",
        "description": f"1-GPU cloud instance with one {gpu}", "gpu_form_factor": "pcie",
        "compatible_gpus": [gpu_names[gpu]], "gpu_slots": 1, "allowed_populations": [1],
        "hourly_usd": info.cost, "source": f"{source}: gpu_info.{gpu}.cost", "as_of": AS_OF,
    } for gpu, info in sorted(inp.gpu_info.items())]
    lengths = []
    measured = []
    for i in range(rows):
        for j in range(cols):
            share = inp.workload_distribution[i][j]
            if share > 0:
                lengths.append({"input_tokens": ins[i], "output_tokens": outs[j], "share": share})
            for gpu, info in sorted(inp.gpu_info.items()):
                measured.append({"model": MODEL, "gpu": gpu_names[gpu], "tp": 1, "precision": PRECISION,
                                 "input_tokens": ins[i], "output_tokens": outs[j],
                                 "requests_per_s": info.tputs[i][j],
                                 "source": f"{source}: gpu_info.{gpu}.tputs[{i}][{j}]"})
    return {
        "name": name,
        "description": f"Converted from {source} by benchmarks/melange.py",
        "site": {"power_kw": 1000, "racks": 1, "rack_power_kw": 1000},
        "objective": "hourly",
        "headroom": 1.0,
        "quote": {"network": False, "storage": False, "support": False, "shipping_installation": False},
        "solver": {"gap": 1e-7, "time_limit_s": 120},
        "constraints": {"gpus": sorted(set(gpu_names.values())),
                        "servers": [instance_name(g) for g in sorted(inp.gpu_info)]},
        "catalog": {"gpus": gpus, "servers": servers},
        "workloads": [{"name": "melange", "model": MODEL, "precisions": [PRECISION],
                       "lengths": lengths, "requests_per_s": inp.total_request_rate,
                       "max_context": MAX_CONTEXT, "slo": {"ttft_ms": ttft_ms, "tpot_ms": tpot_ms}}],
        "measured": measured,
    }


def solve_procure(inp: MelangeInput, **kw: Any) -> Answer:
    """procure's plan for a Mélange input: the whole pipeline (validate, candidates, MIP, placement,
    checker) timed from the scenario data; allocation by Mélange GPU name."""
    from optimizer.loaders import scenario_from_data
    from optimizer.model.pipeline import solve_scenario

    data = to_scenario(inp, **kw)
    by_instance = {instance_name(g): g for g in inp.gpu_info}
    start = time.perf_counter()
    rs = scenario_from_data(data, Path(f"{data['name']}.yaml"))
    plan = solve_scenario(rs).plan
    took = time.perf_counter() - start
    alloc: dict[str, int] = {}
    for s in plan.servers:
        alloc[by_instance[s.chassis]] = alloc.get(by_instance[s.chassis], 0) + s.count
    return Answer(plan.hourly_cost, dict(sorted(alloc.items())), took, plan.status)


# --- generated instances ------------------------------------------------------------------------

#: Two-rate throughput model of the generator, per base type: one instance serves
#: 1 / (I/P + O/D) req/s on a bucket of I input and O output tokens (P: prefill tokens/s, D: decode
#: tokens/s at the SLO's batch). Anchored on the example's two types: the A100-80GB has ~4x the
#: A10G's prefill and ~8x its decode at 3.6x its price, so small requests are cheaper on A10G and
#: large ones on A100, the heterogeneity Mélange exploits. Synthetic, not measured.
BASES = {"A10G": (1.01, 6000.0, 250.0), "A100-80GB": (3.67, 25000.0, 2000.0)}


def generate(buckets: tuple[int, int], slice_factor: int, gpu_types: int, seed: int = 0,
             rate: float = 300.0) -> MelangeInput:
    """A seeded Mélange input: ``buckets`` input x output lengths (Mélange's profiled ones),
    ``gpu_types`` types drawn around the two bases (speed x0.5-2.5 with its price ~ speed^0.9,
    prefill and decode each tilted by a log-normal factor, sd 0.3), Dirichlet shares."""
    rng = np.random.default_rng(seed)
    rows, cols = buckets
    if rows > len(MELANGE_LENGTHS) or cols > len(MELANGE_LENGTHS):
        raise UsageError(f"at most {len(MELANGE_LENGTHS)} x {len(MELANGE_LENGTHS)} buckets")
    gpus: dict[str, dict[str, Any]] = {}
    for k in range(gpu_types):
        base = sorted(BASES)[k % len(BASES)]
        cost, prefill, decode = BASES[base]
        if k < len(BASES):
            speed, tilt_p, tilt_d, noise = 1.0, 1.0, 1.0, 1.0
            name = base
        else:
            speed = float(rng.uniform(0.5, 2.5))
            tilt_p, tilt_d = (float(v) for v in np.exp(rng.normal(0.0, 0.3, 2)))
            noise = float(np.exp(rng.normal(0.0, 0.1)))
            name = f"{base}~g{k:02d}"
        tputs = [[round(1.0 / (MELANGE_LENGTHS[i] / (prefill * speed * tilt_p)
                               + MELANGE_LENGTHS[j] / (decode * speed * tilt_d)), 3)
                  for j in range(cols)] for i in range(rows)]
        gpus[name] = {"cost": round(cost * speed ** 0.9 * noise, 2), "tputs": tputs}
    shares = rng.dirichlet(np.ones(rows * cols)).reshape(rows, cols)
    dist = [[float(v) for v in row] for row in shares]
    dist[-1][-1] += 1.0 - sum(map(sum, dist))  # exact sum 1 after float rounding
    return MelangeInput.model_validate({"gpu_info": gpus, "workload_distribution": dist,
                                        "total_request_rate": rate, "slice_factor": slice_factor})


#: Default run: the example, then slices x GPU types of 64 x 4, 256 x 8 and 800 x 12
#: (4 x 4 buckets x 4 and x 16 slices; 5 x 5 x 32).
DEFAULT_SIZES = (((4, 4), 4, 4), ((4, 4), 16, 8), ((5, 5), 32, 12))


# --- command line -------------------------------------------------------------------------------

def _fmt_alloc(alloc: dict[str, int]) -> str:
    return ", ".join(f"{n} x {g}" for g, n in sorted(alloc.items())) or "-"


def _row(label: str, inp: MelangeInput, args: argparse.Namespace) -> dict[str, Any]:
    mel = melange_ilp(inp, args.melange_time_limit, args.melange_solver)
    pro = solve_procure(inp, source=label)
    return {"instance": label, "slices": inp.slices, "gpu_types": len(inp.gpu_info),
            "melange": mel, "procure": pro}


def _print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'instance':<18} {'slices':>6} {'types':>5}  {'Mélange ILP $/h':>16} {'time s':>8}  "
            f"{'procure $/h':>11} {'time s':>7}  {'saving':>6}  procure allocation")
    print(head)
    print("-" * len(head))
    for r in rows:
        mel: Answer = r["melange"]
        pro: Answer = r["procure"]
        mel_cost = "no answer" if mel.cost is None else f"{mel.cost:.2f}" + ("" if mel.status == "optimal" else "*")
        saving = ("" if mel.cost is None or pro.cost is None
                  else f"{(mel.cost - pro.cost) / mel.cost:.1%}")
        print(f"{r['instance']:<18} {r['slices']:>6} {r['gpu_types']:>5}  {mel_cost:>16} {mel.solve_time_s:>8.2f}  "
              f"{pro.cost if pro.cost is not None else float('nan'):>11.2f} {pro.solve_time_s:>7.2f}  {saving:>6}  "
              f"{_fmt_alloc(pro.allocation)}")
    if any(r["melange"].status == "feasible" for r in rows):
        print("* a time limit stopped Mélange's ILP: its best plan so far, not proven optimal")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", nargs="?", type=Path, help="a Mélange input JSON; omitted: the default run")
    ap.add_argument("--format", choices=["table", "json"], default="table",
                    help="json (with INPUT): {cost, solve_time_s, allocation} of procure's plan")
    ap.add_argument("--input-tokens", type=int, nargs="+", help="input length of each row's bucket")
    ap.add_argument("--output-tokens", type=int, nargs="+", help="output length of each column's bucket")
    ap.add_argument("--write-scenario", type=Path, help="write the converted scenario YAML here and stop")
    ap.add_argument("--melange-time-limit", type=float, default=30.0, help="seconds for Mélange's ILP (30)")
    ap.add_argument("--melange-solver", default="CBC", choices=["CBC", "HIGHS", "SCIP"],
                    help="solver for Mélange's ILP (CBC, as Mélange's PuLP uses)")
    ap.add_argument("--seed", type=int, default=0, help="generator seed (default run)")
    args = ap.parse_args(argv)
    try:
        if args.input is None:
            if args.format == "json":
                raise UsageError("--format json needs an INPUT file")
            rows = [_row("example.json", MelangeInput.model_validate(EXAMPLE), args)]
            for buckets, slice_factor, types in DEFAULT_SIZES:
                inp = generate(buckets, slice_factor, types, seed=args.seed)
                rows.append(_row(f"gen {inp.slices}x{types}", inp, args))
            _print_table(rows)
            return 0
        inp = read_input(args.input)
        kw = {"input_tokens": args.input_tokens, "output_tokens": args.output_tokens, "source": args.input.name}
        if args.write_scenario:
            import yaml
            args.write_scenario.write_text(yaml.safe_dump(to_scenario(inp, **kw), sort_keys=False, allow_unicode=True))
            return 0
        if args.format == "json":
            pro = solve_procure(inp, **kw)
            # exactly the contract's keys (DESIGN.md); a plan a limit stopped says so on stderr
            print(json.dumps({"cost": pro.cost, "solve_time_s": round(pro.solve_time_s, 4),
                              "allocation": pro.allocation}))
            if pro.status != "optimal":
                print(f"note: procure's plan is {pro.status} (a solver limit stopped it)", file=sys.stderr)
        else:
            _print_table([_row(args.input.name, inp, args)])
        return 0
    except ProcureError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
