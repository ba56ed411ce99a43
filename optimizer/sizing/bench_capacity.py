"""Measured capacities from serving-benchmark results: ``procure calibrate --capacity``.

A run of a serving benchmark at one offered load reports the request throughput it reached and the
latencies it saw. Over runs at rising loads, a replica's SLO capacity is the highest throughput of a
run whose latency figures all meet the targets; this module reads the runs and picks it per
(prompt, answer) length, for :mod:`optimizer.schema.measured` entries.

Formats read (keys as the tools write them):

* ``vllm bench serve --save-result`` JSON (vLLM ``vllm/benchmarks/serve.py``, formerly
  ``benchmarks/benchmark_serving.py``): ``request_throughput`` (completed requests / duration),
  ``completed``, ``failed``, ``total_input_tokens``, ``total_output_tokens``, ``mean_ttft_ms``,
  ``mean_tpot_ms`` (TPOT excludes the first token), ``p{P}_ttft_ms`` / ``p{P}_tpot_ms`` for each
  percentile of ``--metric-percentiles`` (default 99), ``request_rate`` ("inf" or the rate),
  ``max_concurrency``, ``model_id``, ``date``.
* genai-perf ``profile_export_genai_perf.json`` (``genai_perf/export_data/json_exporter.py``:
  the statistics of ``metrics/statistics.py`` plus ``input_config``): ``request_throughput.avg``,
  ``time_to_first_token.{avg,p90,p99}`` and ``inter_token_latency.{avg,p90,p99}`` in ms,
  ``input_sequence_length.avg``, ``output_sequence_length.avg``, ``input_config.model``,
  ``input_config.request_rate`` / ``concurrency``. genai-perf's inter-token latency is
  ``(request latency - TTFT) / (output tokens - 1)`` per request
  (``profile_data_parser/llm_profile_data_parser.py``), which is vLLM's TPOT.

Lengths are the runs' means (total tokens / completed requests), rounded: a scenario's entry
matches workloads with exactly those token counts, so benchmark with fixed lengths (vLLM
``--random-input-len/--random-output-len`` with ``--random-range-ratio 0`` and ``--ignore-eos``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optimizer.errors import UsageError

#: Target keys (as in a workload's slo:) and where each tool reports the figure.
VLLM_KEYS = {"ttft_ms": "mean_ttft_ms", "tpot_ms": "mean_tpot_ms", "ttft_p90_ms": "p90_ttft_ms",
             "ttft_p99_ms": "p99_ttft_ms", "tpot_p90_ms": "p90_tpot_ms", "tpot_p99_ms": "p99_tpot_ms"}
GENAI_PERF_KEYS = {"ttft_ms": ("time_to_first_token", "avg"), "tpot_ms": ("inter_token_latency", "avg"),
                   "ttft_p90_ms": ("time_to_first_token", "p90"), "ttft_p99_ms": ("time_to_first_token", "p99"),
                   "tpot_p90_ms": ("inter_token_latency", "p90"), "tpot_p99_ms": ("inter_token_latency", "p99")}
MAX_NAMED = 8  # files named in an entry's source beside the one picked (the source is at most 2,000 characters)
MAX_BENCH_BYTES = 50_000_000  # a --save-detailed vLLM result holds every request; still a few MB


@dataclass(frozen=True)
class BenchRun:
    """One benchmark run at one offered load."""

    file: str
    tool: str
    load: str  # the offered load as the tool states it, e.g. "request_rate 4" or "concurrency 16"
    model: str | None
    input_tokens: int
    output_tokens: int
    requests_per_s: float  # achieved request throughput
    latency_ms: dict[str, float]  # the figures the run reports, by target key
    failed: int = 0
    date: str | None = None  # vLLM writes one ("20261130-120000"); genai-perf does not


def _finite(value: Any, where: str, key: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0 \
            or (positive and value <= 0):
        raise UsageError(f"{key} is {value!r}, expected a finite {'positive ' if positive else ''}number",
                         file=where, field=key, hint="use the result file the benchmark wrote, unchanged")
    return float(value)


def vllm_run(d: Mapping[str, Any], where: str) -> BenchRun:
    """A ``vllm bench serve --save-result`` result (keys in the module doc)."""
    completed = _finite(d.get("completed"), where, "completed", positive=True)
    totals = [_finite(d.get(k), where, k, positive=True) for k in ("total_input_tokens", "total_output_tokens")]
    latency = {key: _finite(d[src], where, src) for key, src in VLLM_KEYS.items() if d.get(src) is not None}
    rate, conc = d.get("request_rate", "inf"), d.get("max_concurrency")
    load = f"request_rate {rate}" + (f", max_concurrency {conc}" if conc not in (None, "None") else "")
    model = d.get("model_id")
    return BenchRun(file=where, tool="vllm bench serve", load=load, model=str(model) if model else None,
                    input_tokens=max(1, round(totals[0] / completed)),
                    output_tokens=max(1, round(totals[1] / completed)),
                    requests_per_s=_finite(d.get("request_throughput"), where, "request_throughput", positive=True),
                    latency_ms=latency, failed=int(_finite(d.get("failed", 0) or 0, where, "failed")),
                    date=str(d["date"]) if d.get("date") else None)


def _stat(d: Mapping[str, Any], metric: str, stat: str) -> Any:
    block = d.get(metric)
    return block.get(stat) if isinstance(block, dict) else None


def genai_perf_run(d: Mapping[str, Any], where: str) -> BenchRun:
    """A genai-perf ``profile_export_genai_perf.json`` (keys in the module doc)."""
    config = d.get("input_config")
    if not isinstance(config, dict):
        config = {}
    latency = {key: _finite(_stat(d, m, s), where, f"{m}.{s}")
               for key, (m, s) in GENAI_PERF_KEYS.items() if _stat(d, m, s) is not None}
    lengths = [_finite(_stat(d, m, "avg"), where, f"{m}.avg", positive=True)
               for m in ("input_sequence_length", "output_sequence_length")]
    model = config.get("model")
    if isinstance(model, list):
        model = model[0] if model else None
    load = next((f"{k} {config[k]}" for k in ("request_rate", "concurrency") if config.get(k) is not None), "unstated")
    return BenchRun(file=where, tool="genai-perf", load=load, model=str(model) if model else None,
                    input_tokens=max(1, round(lengths[0])), output_tokens=max(1, round(lengths[1])),
                    requests_per_s=_finite(_stat(d, "request_throughput", "avg"), where, "request_throughput.avg",
                                           positive=True),
                    latency_ms=latency)


def read_runs(paths: Iterable[Path]) -> list[BenchRun]:
    """Runs from result files: a vLLM result has ``request_throughput`` as a number, a genai-perf
    export as a ``{avg: ...}`` mapping."""
    out = []
    for path in paths:
        where = str(path)
        if not path.is_file():
            raise UsageError("benchmark result file not found", file=where)
        if path.stat().st_size > MAX_BENCH_BYTES:
            raise UsageError(f"larger than {MAX_BENCH_BYTES // 1_000_000} MB; expected one benchmark result",
                             file=where)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(f"not a JSON benchmark result ({exc})", file=where,
                             hint="give `vllm bench serve --save-result` JSON or genai-perf's "
                                  "profile_export_genai_perf.json") from exc
        except OSError as exc:
            raise UsageError(f"cannot read file: {exc.strerror or exc}", file=where) from exc
        tput = data.get("request_throughput") if isinstance(data, dict) else None
        if isinstance(tput, dict):
            out.append(genai_perf_run(data, where))
        elif tput is not None:
            out.append(vllm_run(data, where))
        else:
            raise UsageError("no request_throughput: not a vllm bench serve or genai-perf result", file=where,
                             hint="give `vllm bench serve --save-result` JSON or genai-perf's "
                                  "profile_export_genai_perf.json")
    if not out:
        raise UsageError("no benchmark results given")
    return out


def misses(run: BenchRun, targets: Mapping[str, float]) -> list[str]:
    """Why ``run`` does not meet ``targets`` (empty when it does). A target the run does not
    report is an error, not a miss: the figure cannot be judged."""
    out = []
    if run.failed:
        out.append(f"{run.failed} failed requests")
    for key, target in targets.items():
        if key not in run.latency_ms:
            hint = ("rerun with --percentile-metrics ttft,tpot --metric-percentiles 90,99"
                    if run.tool.startswith("vllm") else "genai-perf reports p90/p99 of streamed runs (--streaming)")
            raise UsageError(f"the run does not report {key} (target {target:g} ms)", file=run.file, hint=hint)
        if run.latency_ms[key] > target:
            out.append(f"{key} {run.latency_ms[key]:,.1f} > {target:g}")
    return out


@dataclass(frozen=True)
class CapacityPick:
    """The capacity at one (input, output) length: the best passing run, and every run seen."""

    input_tokens: int
    output_tokens: int
    best: BenchRun | None
    runs: tuple[tuple[BenchRun, tuple[str, ...]], ...]  # (run, why it misses; empty = meets)


def pick_capacities(runs: Sequence[BenchRun], targets: Mapping[str, float]) -> list[CapacityPick]:
    """Per (input, output) length, the highest-throughput run meeting every target (ties: the
    first given); lengths in ascending order."""
    groups: dict[tuple[int, int], list[BenchRun]] = {}
    for r in runs:
        groups.setdefault((r.input_tokens, r.output_tokens), []).append(r)
    out = []
    for (i, o), group in sorted(groups.items()):
        judged = tuple((r, tuple(misses(r, targets))) for r in group)
        passing = [r for r, why in judged if not why]
        best = max(passing, key=lambda r: r.requests_per_s, default=None)
        out.append(CapacityPick(i, o, best, judged))
    return out


def measured_document(picks: Sequence[CapacityPick], *, model: str, gpu: str, tp: int, pp: int, precision: str,
                      targets: Mapping[str, float]) -> dict[str, Any]:
    """A ``measured_file:`` document (:class:`optimizer.schema.measured.MeasuredFile`) with one entry
    per length that has a passing run; ``source`` names the run picked and every file judged."""
    entries = []
    for p in picks:
        if p.best is None:
            continue
        rest = [r.file for r, _ in p.runs if r is not p.best]
        others = ", ".join(rest[:MAX_NAMED]) + (f" and {len(rest) - MAX_NAMED} more" if len(rest) > MAX_NAMED else "")
        entries.append({
            "model": model, "gpu": gpu, "tp": tp, "pp": pp, "precision": precision,
            "input_tokens": p.input_tokens, "output_tokens": p.output_tokens,
            "requests_per_s": round(p.best.requests_per_s, 6),
            "slo": dict(targets),
            "source": (f"procure calibrate --capacity: {p.best.tool} {p.best.file} ({p.best.load}"
                       f"{', ' + p.best.date if p.best.date else ''}), the highest "
                       f"request throughput meeting the SLO" + (f" among {others}" if others else "")),
        })
    return {"about": "Measured SLO capacities per replica from `procure calibrate --capacity`; name this file "
                     "in a scenario's measured_file:", "measured": entries}
