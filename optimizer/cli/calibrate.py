"""`procure calibrate FILE...`: fit efficiency factors to your measurements; write a calibration file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from optimizer.cli.common import FORMAT_OPTION, FiniteFloat, print_json, stdout
from optimizer.errors import UsageError
from optimizer.loaders import load_catalog, resolve_gpu
from optimizer.report.safe_write import check_target, safe_write
from optimizer.sizing import calibration as cal
from optimizer.sizing.memory import KV_BYTES, WEIGHT_BYTES

MAX_LATENCY_MS = 3.6e6  # one hour, as in a scenario's slo:


@click.command("calibrate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Calibration file to write (name it in a scenario's `calibration:`) [default: calibration.yaml].")
@click.option("--force", is_flag=True, help="Replace an existing file given with -o.")
@click.option("--engine", type=click.Choice(["vllm", "trtllm"]), default="vllm", show_default=True,
              help="Engine the measurements were taken with (its KV and batch rules are used to fit).")
@click.option("--model", help="Model of rows that do not name one (vllm bench JSON: overrides model_id).")
@click.option("--gpu", help="GPU of rows that do not name one (vllm bench JSON never does).")
@click.option("--tp", type=click.IntRange(min=1), help="Tensor parallel size of rows that do not give one.")
@click.option("--pp", type=click.IntRange(min=1), help="Pipeline parallel size of rows that do not give one.")
@click.option("--precision", type=click.Choice(list(WEIGHT_BYTES)), help="Weight precision of rows without one.")
@click.option("--kv-dtype", type=click.Choice(list(KV_BYTES)), help="KV dtype of rows without one [auto].")
@click.option("--capacity", is_flag=True,
              help="Write measured SLO capacities instead: FILES are `vllm bench serve --save-result` JSON (one per "
                   "request rate) and/or genai-perf profile_export_genai_perf.json; per input/output length the "
                   "highest request throughput meeting the targets becomes a measured: entry [-o default: "
                   "measured.yaml, for a scenario's measured_file:]. Needs --gpu, --tp, --precision, --ttft-ms, "
                   "--tpot-ms.")
@click.option("--ttft-ms", type=FiniteFloat(0, MAX_LATENCY_MS, min_open=True), help="--capacity: mean TTFT target, ms.")
@click.option("--tpot-ms", type=FiniteFloat(0, MAX_LATENCY_MS, min_open=True), help="--capacity: mean TPOT target, ms.")
@click.option("--ttft-p90-ms", type=FiniteFloat(0, MAX_LATENCY_MS, min_open=True), help="--capacity: p90 TTFT target.")
@click.option("--ttft-p99-ms", type=FiniteFloat(0, MAX_LATENCY_MS, min_open=True), help="--capacity: p99 TTFT target.")
@click.option("--tpot-p90-ms", type=FiniteFloat(0, MAX_LATENCY_MS, min_open=True), help="--capacity: p90 TPOT target.")
@click.option("--tpot-p99-ms", type=FiniteFloat(0, MAX_LATENCY_MS, min_open=True), help="--capacity: p99 TPOT target.")
@FORMAT_OPTION
def calibrate_command(files: tuple[Path, ...], output: Path | None, force: bool, engine: str, model: str | None,
                      gpu: str | None,
                      tp: int | None, pp: int | None, precision: str | None, kv_dtype: str | None,
                      capacity: bool, fmt: str, **slo: float | None) -> None:
    """Fit the throughput model's efficiency factors to measured results and write a calibration file.

    FILES are CSV or YAML measurements (columns model, gpu, tp, precision, input_tokens,
    output_tokens, output_tokens_per_s; optional pp, kv_dtype, ttft_ms, tpot_ms) and/or JSON
    results of `vllm bench serve --save-result` at --request-rate inf (give --gpu, --tp and
    --precision: the JSON does not record them). One factor set is fitted per GPU family,
    starting from (and, with few points, pulled toward) the shipped factors; every measured
    point is also stored so that plans for that exact (model, GPU, TP, PP, precision) use it.

    With --capacity, FILES are serving-benchmark results at several request rates and the output is
    a measured_file: of SLO capacities that replace the estimate for that exact deployment.
    """
    if capacity:
        from optimizer.cli.calibrate_capacity import write_capacities

        write_capacities(files, output=output, force=force, model=model, gpu=gpu, tp=tp, pp=pp,
                         precision=precision, targets={k: v for k, v in slo.items() if v is not None}, fmt=fmt)
        return
    if any(v is not None for v in slo.values()):
        raise UsageError("--ttft-ms/--tpot-ms targets go with --capacity",
                         hint="add --capacity to write measured capacities from benchmark runs")
    # checked before reading and fitting; the default calibration.yaml is replaced as before
    force = force or output is None
    output = check_target(output or Path("calibration.yaml"), force=force, what="calibration file")
    catalog = load_catalog()
    defaults: dict[str, Any] = {"model": model, "gpu": gpu, "tp": tp, "pp": pp, "precision": precision,
                                "kv_dtype": kv_dtype}
    rows = cal.read_measurements(list(files), catalog=catalog, engine=engine,
                                 defaults={k: v for k, v in defaults.items() if v is not None})
    prior = {}
    for r in rows:
        g = resolve_gpu(r.gpu, catalog)
        if g.architecture not in prior:
            prior[g.architecture] = cal.efficiency_for(g, engine="trtllm")
    fitted = cal.fit_rows(rows, catalog, prior=prior)
    doc = cal.calibration_document(
        engine=engine, families=fitted, measured=rows,
        source=", ".join(str(f) for f in files),
        about=f"Efficiency factors fitted by `procure calibrate` on {len(rows)} measurement(s) "
              f"({engine}); measured points override the model for their exact deployment.",
        assumptions={"engine_rules": f"{engine}: KV reserve {cal.KV_RESERVE.get(engine, 1.0)} x output, "
                                     f"batch cap {cal.MAX_BATCH.get(engine, 256)}",
                     "prior": "shipped catalogs/calibration/trtllm-v1.0.yaml factors of each family"})
    safe_write(output, lambda tmp: cal.write_calibration(tmp, doc), force=force, what="calibration file")
    med, worst = cal.error_summary([r for _, t in fitted.values() for r in t])
    if fmt == "json":
        print_json({
            "output": str(output),
            "engine": engine,
            "rows": len(rows),
            "families": doc["families"],
            "median_abs_pct_error": round(med, 2),
            "worst_abs_pct_error": round(worst, 2),
            "residuals": doc["fit"]["residuals"],
        })
        return
    console = stdout()
    t = Table(title=f"Fitted efficiency factors ({engine}), written to {output}")
    for col in ("family", "compute", "memory_bw", "step ms", "layer us", "rows", "median |err|", "worst |err|"):
        t.add_column(col, justify="left" if col == "family" else "right")
    for fam, (eff, table) in fitted.items():
        fm, fw = cal.error_summary(table)
        t.add_row(fam, f"{eff.compute:.3f}", f"{eff.memory_bw:.3f}", f"{eff.step_overhead_ms:.2f}",
                  f"{eff.layer_overhead_us:.0f}", str(len(table)), f"{fm:.1f}%", f"{fw:.1f}%")
    console.print(t)
    r_t = Table(title="Measured vs fitted model (offline output tokens/s)")
    for col in ("model", "gpu", "TP", "PP", "precision", "ISL/OSL", "measured", "model", "error"):
        r_t.add_column(col, justify="left" if col in ("model", "gpu", "precision") else "right")
    for fam_table in fitted.values():
        for res in fam_table[1]:
            row = res.row
            r_t.add_row(row.model, row.gpu, str(row.tp), str(row.pp), row.precision,
                        f"{row.input_tokens}/{row.output_tokens}", f"{row.output_tokens_per_s:,.0f}",
                        f"{res.predicted:,.0f}", f"{res.error_pct:+.1f}%")
    console.print(r_t)
    console.print(f"{len(rows)} measured point(s) stored: `procure perf ... --calibration {output}` "
                  "and scenarios naming it use them for those exact deployments.")
