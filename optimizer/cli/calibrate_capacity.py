"""`procure calibrate --capacity FILES...`: measured SLO capacities from benchmark runs, as a measured_file."""

from __future__ import annotations

from pathlib import Path

import yaml
from rich.table import Table

from optimizer.cli.common import print_json, stdout
from optimizer.errors import CatalogError, UsageError
from optimizer.loaders import load_catalog, resolve_gpu, resolve_model
from optimizer.report.safe_write import check_target, safe_write
from optimizer.schema.measured import MeasuredFile
from optimizer.sizing import bench_capacity as bc


def write_capacities(files: tuple[Path, ...], *, output: Path | None, force: bool, model: str | None,
                     gpu: str | None, tp: int | None, pp: int | None, precision: str | None,
                     targets: dict[str, float], fmt: str) -> None:
    """Read the runs, pick the capacity per length, write ``measured:`` YAML, print what was picked."""
    missing = [opt for opt, v in (("--gpu", gpu), ("--tp", tp), ("--precision", precision)) if v is None]
    missing += [opt for opt, key in (("--ttft-ms", "ttft_ms"), ("--tpot-ms", "tpot_ms")) if key not in targets]
    if missing:
        raise UsageError(f"--capacity needs {', '.join(missing)}",
                         hint="benchmark results do not record the GPU, layout or precision; the targets are the "
                              "SLO the capacity must meet (mean TTFT and TPOT, plus any p90/p99)")
    assert gpu is not None and tp is not None and precision is not None
    force = force or output is None
    output = check_target(output or Path("measured.yaml"), force=force, what="measured file")
    runs = bc.read_runs(files)
    names = sorted({r.model for r in runs if r.model})
    if model is None and len(names) != 1:
        raise UsageError(f"the runs name {'no model' if not names else 'models ' + ', '.join(names)}",
                         field="--model", hint="give the model with --model")
    catalog = load_catalog()
    try:
        model_name = resolve_model(model or names[0], catalog).name
        gpu_name = resolve_gpu(gpu, catalog).name
    except CatalogError as exc:
        raise UsageError(exc.message, field="--model" if "model" in exc.message else "--gpu", hint=exc.hint) from exc
    picks = bc.pick_capacities(runs, targets)
    if all(p.best is None for p in picks):
        worst = "; ".join(f"{r.file}: {', '.join(why)}" for p in picks for r, why in p.runs[:3])
        raise UsageError(f"no run meets the SLO ({_slo_text(targets)}): {worst}",
                         hint="add runs at lower request rates, or check the targets")
    doc = bc.measured_document(picks, model=model_name, gpu=gpu_name, tp=tp, pp=pp or 1, precision=precision,
                               targets=targets)
    MeasuredFile.model_validate(doc)  # what a scenario will read back: refuse to write anything else
    text = "# written by `procure calibrate --capacity`\n" + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    safe_write(output, lambda tmp: tmp.write_text(text, encoding="utf-8"), force=force, what="measured file")
    if fmt == "json":
        print_json({"output": str(output), "measured": doc["measured"],
                    "runs": [{"file": r.file, "tool": r.tool, "load": r.load, "input_tokens": r.input_tokens,
                              "output_tokens": r.output_tokens, "requests_per_s": r.requests_per_s,
                              "meets_slo": not why, "misses": list(why), "picked": r is p.best}
                             for p in picks for r, why in p.runs]})
        return
    t = Table(title=f"Benchmark runs against {_slo_text(targets)} ({model_name}, {gpu_name} TP{tp} PP{pp or 1} "
                    f"{precision})")
    for col in ("file", "ISL/OSL", "offered load", "req/s", "meets SLO"):
        t.add_column(col, justify="right" if col == "req/s" else "left")
    for p in picks:
        for r, why in p.runs:
            verdict = ("[bold green]picked[/]" if r is p.best else "yes") if not why else "no: " + "; ".join(why)
            t.add_row(r.file, f"{r.input_tokens}/{r.output_tokens}", r.load, f"{r.requests_per_s:,.3f}", verdict)
    con = stdout()
    con.print(t)
    con.print(f"wrote {output}: {len(doc['measured'])} measured capacit{'y' if len(doc['measured']) == 1 else 'ies'}; "
              "name it in a scenario's measured_file: to plan on them")


def _slo_text(targets: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in targets.items())
