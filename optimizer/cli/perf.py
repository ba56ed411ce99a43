"""`procure perf MODEL`: offline throughput and SLO-limited capacity of one replica."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from optimizer.cli.common import FORMAT_OPTION, FiniteFloat, print_json, stdout
from optimizer.engines import DEFAULT_VERSION, KNOWN, PROFILES, check_engine_gpu, profile_for
from optimizer.errors import UsageError
from optimizer.loaders import load_catalog, resolve_gpu, resolve_model
from optimizer.schema.engine import EngineSettings
from optimizer.sizing.architecture import ModelArch, parse_config
from optimizer.sizing.layout import check_layout, layout_label
from optimizer.sizing.memory import KV_BYTES, WEIGHT_BYTES, serving_memory
from optimizer.sizing.perf import ReplicaPerf, TailTargets, load_efficiency, replica_perf
from optimizer.sizing.uncertainty import BAND_QUANTILES, quantile_factor

_TAIL_KEYS = ("ttft_p90_ms", "ttft_p99_ms", "tpot_p90_ms", "tpot_p99_ms")
_EFF_REPORTED = ("compute", "memory_bw", "step_overhead_ms", "layer_overhead_us",
                 "kv_reserve_output_fraction", "prefill_chunk_tokens")
#: Longest prompt or output procure models (a 10M-token context is the longest published).
MAX_TOKENS = 100_000_000
_PER_ENGINE = ", ".join(f"{p.engine} {p.family} {p.defaults.max_num_seqs}" if p.engine == "vllm" else
                        f"{p.engine} {p.defaults.max_num_seqs}" for p in PROFILES)


def check_context(arch: ModelArch, model: str, tokens: int, option: str) -> None:
    """A request or ``max_model_len`` of ``tokens`` must fit the model's positions (vLLM refuses a
    ``max_model_len`` beyond ``max_position_embeddings`` unless ``rope_scaling`` extends it)."""
    if tokens > arch.max_context:
        scaled = (f" (max_position_embeddings {arch.max_position_embeddings:,} with its rope_scaling)"
                  if arch.max_context > arch.max_position_embeddings else " (max_position_embeddings)")
        raise UsageError(f"{tokens:,} tokens exceed the {arch.max_context:,} positions {model} supports{scaled}",
                         field=option, hint=f"keep {option} within {arch.max_context:,}, or use a "
                         "long-context variant of the model (a config.json with rope_scaling)")


@click.command("perf")
@click.argument("model")
@click.option("--gpu", required=True, help="Catalog GPU name or alias (see `procure catalog gpus`).")
@click.option("--tp", type=click.IntRange(min=1), default=1, show_default=True, help="Tensor parallel size.")
@click.option("--pp", type=click.IntRange(min=1), default=1, show_default=True, help="Pipeline parallel size.")
@click.option("--ep", type=click.IntRange(min=1), default=1, show_default=True,
              help="Expert parallel size (MoE only): 1 (experts TP-sharded) or TP x DP (routed experts whole).")
@click.option("--dp", type=click.IntRange(min=1), default=1, show_default=True,
              help="Attention data-parallel ranks of TP GPUs each (MoE only, with --ep TP x DP); GPUs = TP x PP x DP.")
@click.option("--precision", type=click.Choice(list(WEIGHT_BYTES)), default="bf16", show_default=True,
              help="Weight precision.")
@click.option("--kv-dtype", type=click.Choice(list(KV_BYTES)),
              help="KV-cache dtype (auto = 16 bit) [default: the engine's: trtllm fp8 with fp8 weights "
                   "(ModelOpt FP8 checkpoints), else auto].")
@click.option("--input-tokens", type=click.IntRange(1, MAX_TOKENS), required=True, help="Prompt tokens per request.")
@click.option("--output-tokens", type=click.IntRange(1, MAX_TOKENS), required=True, help="Output tokens per request.")
@click.option("--ttft-ms", type=FiniteFloat(0, 1e7, min_open=True), help="TTFT target (mean), ms.")
@click.option("--tpot-ms", type=FiniteFloat(0, 1e7, min_open=True), help="TPOT target (mean), ms.")
@click.option("--ttft-p90-ms", type=FiniteFloat(0, 1e7, min_open=True),
              help="TTFT target, 90th percentile, ms (M/G/1 wait tail; docs/perf.md \"Tail latency\").")
@click.option("--ttft-p99-ms", type=FiniteFloat(0, 1e7, min_open=True), help="TTFT target, 99th percentile, ms.")
@click.option("--tpot-p90-ms", type=FiniteFloat(0, 1e7, min_open=True),
              help="TPOT target, 90th percentile, ms (at the Poisson p90 batch).")
@click.option("--tpot-p99-ms", type=FiniteFloat(0, 1e7, min_open=True), help="TPOT target, 99th percentile, ms.")
@click.option("--prefix-tokens", type=click.IntRange(1, MAX_TOKENS),
              help="Shared prompt prefix kept by the prefix cache, tokens (part of --input-tokens).")
@click.option("--prefix-hit-rate", type=FiniteFloat(0, 1),
              help="Share of requests finding the prefix in the cache [default 1 with --prefix-tokens].")
@click.option("--utilization", type=FiniteFloat(0, 1, min_open=True), default=0.8, show_default=True,
              help="Planned load as a fraction of capacity (TTFT queueing is evaluated there).")
@click.option("--max-num-seqs", type=click.IntRange(1, 1_000_000),
              help=f"Engine cap on running sequences [default per engine: {_PER_ENGINE}].")
@click.option("--max-model-len", type=click.IntRange(min=1),
              help="Context length the engine is started with [default: input + output tokens].")
@click.option("--gpu-memory-utilization", type=FiniteFloat(0, 1, min_open=True),
              help="vLLM gpu_memory_utilization [default 0.9]; with --engine trtllm, TensorRT-LLM's "
                   "kv_cache_free_gpu_mem_fraction [default 0.95]; with --engine sglang, "
                   "mem_fraction_static [default: SGLang's by TP].")
@click.option("--engine", type=click.Choice(list(KNOWN)), default="trtllm", show_default=True,
              help="Engine: its profile's KV-cache rule and defaults, and its shipped efficiency factors.")
@click.option("--engine-version",
              help="Engine release whose profile is used [default: "
                   + ", ".join(f"{e} {v}" for e, v in DEFAULT_VERSION.items()) + "].")
@click.option("--calibration", type=click.Path(dir_okay=False, path_type=Path),
              help="Calibration file from `procure calibrate` (its factors and measured points).")
@FORMAT_OPTION
def perf_command(model: str, gpu: str, tp: int, pp: int, ep: int, dp: int, precision: str, kv_dtype: str | None,
                 input_tokens: int,
                 output_tokens: int, ttft_ms: float | None, tpot_ms: float | None,
                 ttft_p90_ms: float | None, ttft_p99_ms: float | None, tpot_p90_ms: float | None,
                 tpot_p99_ms: float | None, prefix_tokens: int | None, prefix_hit_rate: float | None,
                 utilization: float,
                 max_num_seqs: int | None, max_model_len: int | None, gpu_memory_utilization: float | None,
                 engine: str, engine_version: str | None, calibration: Path | None, fmt: str) -> None:
    """Throughput and latency of MODEL on TP x PP GPUs for one request shape.

    MODEL is a catalog name, a Hugging Face id in the catalog, or a path to a config.json.
    KV capacity follows the engine's memory rule (trtllm: kv_cache_free_gpu_mem_fraction of the
    memory left after weights; vllm: `procure size`); step times use the roofline model and fitted
    efficiency factors of docs/perf.md, or measured points from --calibration. Batch cap and KV
    dtype default to the engine's own: all defaults come from the one profile of --engine and
    --engine-version (optimizer/engines/), so defaults of different engines never mix.

    p90/p99 TTFT and TPOT at the planned load are always reported (JSON: "tail"); --ttft-p90-ms
    and the like make them targets. --prefix-tokens models a shared prompt prefix served from the
    prefix cache (only the uncached tokens are prefilled; one copy of its KV per replica).
    """
    if prefix_hit_rate is not None and prefix_tokens is None:
        raise UsageError("--prefix-hit-rate needs --prefix-tokens", field="--prefix-hit-rate",
                         hint="give the shared prefix's length with --prefix-tokens")
    if prefix_tokens is not None and prefix_tokens > input_tokens:
        raise UsageError(f"--prefix-tokens {prefix_tokens:,} exceeds --input-tokens {input_tokens:,}",
                         field="--prefix-tokens", hint="the shared prefix is part of the prompt")
    hit_rate = 1.0 if prefix_tokens is not None and prefix_hit_rate is None else (prefix_hit_rate or 0.0)
    tails = TailTargets(ttft_p90_ms, ttft_p99_ms, tpot_p90_ms, tpot_p99_ms)
    profile = profile_for(engine, engine_version)  # unknown version: exit 2 naming the known ones
    version = engine_version or DEFAULT_VERSION[engine]
    catalog = load_catalog()
    resolved = resolve_model(model, catalog)
    arch = parse_config(resolved.config, resolved.name, file=str(resolved.path))
    g = resolve_gpu(gpu, catalog)
    check_engine_gpu(engine, g)  # vllm-ascend / mindie on a non-Ascend GPU: exit 2
    defaults = profile.defaults
    kv_dtype = kv_dtype or defaults.kv_dtype_for(precision)
    max_num_seqs = max_num_seqs or defaults.max_num_seqs
    check_layout(arch, g, tp=tp, pp=pp, precision=precision, kv_dtype=kv_dtype, ep=ep, dp=dp)
    n_gpus = tp * pp * dp
    if max_model_len is not None:
        check_context(arch, resolved.name, max_model_len, "--max-model-len")
        if max_model_len < input_tokens + output_tokens:
            raise UsageError(f"--max-model-len {max_model_len:,} is shorter than one request of "
                             f"{input_tokens:,} + {output_tokens:,} tokens", field="--max-model-len",
                             hint="raise --max-model-len or shorten --input-tokens/--output-tokens")
    else:
        check_context(arch, resolved.name, input_tokens + output_tokens, "--input-tokens + --output-tokens")
    mml = max_model_len or input_tokens + output_tokens
    kw: dict[str, Any] = {"engine": engine, "engine_version": version, "kv_dtype": kv_dtype,
                          "max_num_seqs": max_num_seqs}
    if engine == "sglang":  # SGLang's KV fraction is mem_fraction_static (default by TP)
        kw["mem_fraction_static"] = gpu_memory_utilization
    else:  # vLLM gpu_memory_utilization / TensorRT-LLM free_gpu_memory_fraction
        kw["gpu_memory_utilization"] = gpu_memory_utilization or defaults.kv_memory_fraction
    mem = serving_memory(arch, precision, gpu_memory_gib=g.memory_gib, tp=tp, pp=pp,
                         settings=EngineSettings(**kw), max_model_len=mml, ep=ep, dp=dp)
    kv_tokens = mem.kv_cache_tokens
    reason = mem.reason
    fits = mem.fits
    if not fits:
        raise UsageError(f"{resolved.name} at {precision} does not fit on {n_gpus} x {g.name}: {reason}",
                         field="--tp", hint="raise --tp/--pp, lower --precision or --max-model-len")
    eff = load_efficiency(g, engine=profile.efficiency_engine, calibration_path=calibration)
    def run(time_scale: float = 1.0) -> ReplicaPerf:
        return replica_perf(arch, g, tp=tp, pp=pp, precision=precision, kv_dtype=kv_dtype,
                            input_tokens=input_tokens, output_tokens=output_tokens,
                            kv_cache_tokens=kv_tokens, ttft_ms=ttft_ms, tpot_ms=tpot_ms,
                            max_num_seqs=max_num_seqs, utilization=utilization, efficiency=eff,
                            time_scale=time_scale, ep=ep, dp=dp, tails=tails,
                            prefix_tokens=prefix_tokens or 0, prefix_hit_rate=hit_rate)

    perf = run()
    # The band: the same model on a GPU as slow (fast) as this family is with 10% probability;
    # a measured deployment is taken as exact.
    band = 0.0 if perf.source == "measured" else eff.band_log_sd
    slow, fast = (run(1.0 / quantile_factor(q, band)) for q in BAND_QUANTILES) if band else (perf, perf)
    eff_data = asdict(eff)
    out: dict[str, Any] = {
        "model": resolved.name,
        "gpu": g.name,
        "tp": tp,
        "pp": pp,
        "ep": ep,
        "dp": dp,
        "gpus": n_gpus,
        "precision": precision,
        "kv_dtype": kv_dtype,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "output_tokens_per_s": round(perf.output_tokens_per_s, 2),
        "output_tokens_per_s_per_gpu": round(perf.output_tokens_per_s / n_gpus, 2),
        "batch": perf.batch,
        "offline_tpot_ms": round(perf.offline_tpot_ms, 3),
        "prefill_ms": round(perf.prefill_ms, 3),
        "ttft_ms": round(perf.ttft_ms, 3),
        "tpot_ms": round(perf.tpot_ms, 3),
        "requests_per_s": round(perf.requests_per_s, 4),
        "slo_batch": perf.slo_batch,
        "limited_by": perf.limited_by,
        "utilization": utilization,
        "kv_cache_tokens": mem.replica_kv_tokens,  # the replica's: dp x one DP rank's
        "kv_batch_limit": perf.kv_batch_limit,
        "max_num_seqs": max_num_seqs,
        "engine": engine,
        "engine_version": version,
        "source": perf.source,
        "efficiency": {
            "family": eff.family, "engine": eff.engine,
            "source": "measured" if perf.source == "measured" else eff.provenance,
            "transferred_from": eff.transferred_from or None,
            "citation": eff.citation,
            "band_log_sd": band,
            **{k: eff_data[k] for k in _EFF_REPORTED},
        },
    }
    # p10/p90 of each figure: throughputs from the slow/fast GPU, times from the fast/slow one
    for key, digits in (("output_tokens_per_s", 2), ("requests_per_s", 4)):
        out[f"{key}_p10"] = round(getattr(slow, key), digits)
        out[f"{key}_p90"] = round(getattr(fast, key), digits)
    for key in ("ttft_ms", "tpot_ms", "offline_tpot_ms", "prefill_ms"):
        out[f"{key}_p10"] = round(getattr(fast, key), 3)
        out[f"{key}_p90"] = round(getattr(slow, key), 3)
    # tails at the operating point (not the _p10/_p90 confidence band of a figure)
    out["tail"] = {k: round(getattr(perf, k), 3) for k in _TAIL_KEYS}
    if prefix_tokens is not None:
        out["prefix"] = {"tokens": prefix_tokens, "hit_rate": hit_rate}
    targets = {"ttft_ms": ttft_ms, "tpot_ms": tpot_ms, **{k: getattr(tails, k) for k in _TAIL_KEYS}}
    if any(v is not None for v in targets.values()):
        out["slo"] = {
            **targets, "met": perf.requests_per_s > 0,
            "requests_per_s": round(perf.requests_per_s, 4),
            "planned_requests_per_s": round(perf.requests_per_s * utilization, 4),
            "output_tokens_per_s": round(perf.requests_per_s * output_tokens, 2),
            "limited_by": perf.limited_by,
        }
    if fmt == "json":
        print_json(out)
        return

    layout = f"TP{tp} PP{pp}" + layout_label(ep, dp)
    t = Table(title=f"{resolved.name} on {n_gpus} x {g.name} ({layout}, {precision}, KV {kv_dtype}), "
                    f"{input_tokens} in / {output_tokens} out")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_column("note")
    t.add_row("offline output tokens/s", f"{perf.output_tokens_per_s:,.0f}",
              f"batch {perf.batch} ({'measured' if perf.source == 'measured' else 'model'}); "
              f"{perf.output_tokens_per_s / n_gpus:,.0f} per GPU")
    t.add_row("TPOT at offline batch", f"{perf.offline_tpot_ms:,.1f} ms", "")
    t.add_row("prefill of one prompt", f"{perf.prefill_ms:,.1f} ms", "")
    t.add_row("KV cache", f"{mem.replica_kv_tokens:,} tokens",
              f"batch limit {perf.kv_batch_limit:,} sequences (max_num_seqs {max_num_seqs})")
    t.add_row("capacity", f"{perf.requests_per_s:,.3f} req/s",
              f"limited by {perf.limited_by}; batch {perf.slo_batch}")
    t.add_row(f"TTFT at {utilization:.0%} load", f"{perf.ttft_ms:,.1f} ms",
              f"target {ttft_ms:g} ms" if ttft_ms else "M/D/1 queue on prefill")
    t.add_row(f"TPOT at {utilization:.0%} load", f"{perf.tpot_ms:,.1f} ms",
              f"target {tpot_ms:g} ms" if tpot_ms else "")
    for key, label, note in (("ttft_p90_ms", "TTFT p90", "M/G/1 wait, gamma tail"), ("ttft_p99_ms", "TTFT p99", ""),
                             ("tpot_p90_ms", "TPOT p90", "Poisson batch quantile"), ("tpot_p99_ms", "TPOT p99", "")):
        target = getattr(tails, key)
        t.add_row(f"{label} at {utilization:.0%} load", f"{getattr(perf, key):,.1f} ms",
                  f"target {target:g} ms" if target else note)
    if prefix_tokens is not None:
        t.add_row("shared prefix", f"{prefix_tokens:,} tokens",
                  f"hit rate {hit_rate:.0%}: {input_tokens - hit_rate * prefix_tokens:,.0f} new tokens prefilled")
    t.add_row("p10 - p90 band", f"{slow.output_tokens_per_s:,.0f} - {fast.output_tokens_per_s:,.0f} tok/s",
              f"capacity {slow.requests_per_s:,.3f} - {fast.requests_per_s:,.3f} req/s; "
              + ("measured point" if perf.source == "measured" else
                 f"{eff.provenance}{' from ' + eff.transferred_from if eff.transferred_from else ''}, "
                 f"log-sd {band:.2f}"))
    t.add_row("efficiency", f"{eff.family}/{eff.engine}",
              f"compute {eff.compute:.3f}, memory_bw {eff.memory_bw:.3f}, step {eff.step_overhead_ms:.2f} ms, "
              f"layer {eff.layer_overhead_us:.0f} us")
    stdout().print(t)
    if "slo" in out and perf.requests_per_s <= 0:
        stdout().print(f"[bold red]SLO cannot be met[/]: best TTFT {perf.ttft_ms:,.0f} ms, "
                       f"best TPOT {perf.tpot_ms:,.1f} ms")
