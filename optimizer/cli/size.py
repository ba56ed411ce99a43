"""`procure size MODEL`: parameters, weight and KV-cache bytes, vLLM KV capacity, fine-tuning memory."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from optimizer.cli.common import FORMAT_OPTION, FiniteFloat, print_json, stdout
from optimizer.cli.perf import check_context
from optimizer.engines import KNOWN, check_engine_gpu, profile_for
from optimizer.errors import UsageError
from optimizer.loaders import load_catalog, resolve_gpu, resolve_model
from optimizer.schema.engine import EngineSettings
from optimizer.sizing.architecture import param_counts, parse_config
from optimizer.sizing.finetune import LORA_TARGETS, finetune_memory
from optimizer.sizing.layout import check_layout
from optimizer.sizing.memory import (
    GIB,
    KV_BYTES,
    WEIGHT_BYTES,
    expert_bytes_per_gpu,
    kv_bytes_per_token,
    kv_bytes_per_token_per_gpu,
    serving_memory,
    weight_bytes,
    weight_bytes_per_gpu,
)
from optimizer.sizing.quant import is_gguf, llama_cpp_memory


def _settings(kw: dict[str, Any]) -> EngineSettings:
    """EngineSettings from the options; an unknown engine/version pair exits 2 naming the known ones."""
    from pydantic import ValidationError

    from optimizer.engines import profile_for as _check

    _check(kw["engine"], kw.get("engine_version"))
    try:
        return EngineSettings(**kw)
    except ValidationError as exc:
        raise UsageError(str(exc.errors()[0]["msg"]), field="--engine-version") from exc


def _gib(n: float) -> str:
    return f"{n / GIB:,.2f}"


@click.command("size")
@click.argument("model")
@click.option("--precision", type=click.Choice(list(WEIGHT_BYTES)), default="bf16", show_default=True,
              help="Weight precision (int4/int8: GPTQ/AWQ layout with --group-size; nvfp4/mxfp4; "
              "w8a8/w4a8; GGUF q4_0/q4_k_m/q5_k_m/q6_k/q8_0 give the llama.cpp file size and memory).")
@click.option("--group-size", type=click.IntRange(min=1), default=128, show_default=True,
              help="Quantisation group size for int4/int8.")
@click.option("--kv-dtype", type=click.Choice(list(KV_BYTES)), default="auto", show_default=True,
              help="KV-cache dtype (auto = 16 bit).")
@click.option("--tp", type=click.IntRange(min=1), default=1, show_default=True, help="Tensor parallel size.")
@click.option("--pp", type=click.IntRange(min=1), default=1, show_default=True, help="Pipeline parallel size.")
@click.option("--ep", type=click.IntRange(min=1), default=1, show_default=True,
              help="Expert parallel size (MoE only): 1 (experts TP-sharded) or TP x DP (routed experts whole).")
@click.option("--dp", type=click.IntRange(min=1), default=1, show_default=True,
              help="Attention data-parallel ranks of TP GPUs each (MoE only, with --ep TP x DP).")
@click.option("--gpu", help="Catalog GPU name (see `procure catalog gpus`).")
@click.option("--gpu-memory-gib", type=FiniteFloat(0, 10_000, min_open=True),
              help="GPU memory in GiB, instead of --gpu.")
@click.option("--gpu-memory-utilization", type=FiniteFloat(0, 1, min_open=True),
              help="vLLM gpu_memory_utilization [default: 0.9].")
@click.option("--max-model-len", type=click.IntRange(min=1),
              help="Context length per request [default: the model's max_position_embeddings].")
@click.option("--max-num-batched-tokens", type=click.IntRange(min=16),
              help="Tokens in vLLM's profiling pass [default: vLLM v0.6 rule].")
@click.option("--engine", type=click.Choice(list(KNOWN)), default="vllm", show_default=True,
              help="Serving engine whose memory rules size the KV cache (vllm-ascend, mindie: Ascend GPUs only).")
@click.option("--engine-version", help="Engine release [default: vllm 0.6.3, sglang 0.4.9, trtllm 1.0, "
              "vllm-ascend 0.11.0, mindie 2.0.RC1].")
@click.option("--mem-fraction-static", type=FiniteFloat(0, 1, min_open=True),
              help="SGLang mem_fraction_static [default: SGLang's by TP].")
@click.option("--finetune", type=click.Choice(["full", "lora", "qlora"]),
              help="Also size fine-tuning memory with this method.")
@click.option("--lora-rank", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lora-targets", default=",".join(LORA_TARGETS[:4]), show_default=True,
              help="Comma-separated PEFT target modules.")
@click.option("--zero", "zero_stage", type=click.IntRange(0, 3), default=0, show_default=True,
              help="DeepSpeed ZeRO stage.")
@click.option("--num-gpus", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data-parallel GPUs for fine-tuning.")
@click.option("--micro-batch", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seq-len", type=click.IntRange(min=1), default=2048, show_default=True)
@click.option("--grad-checkpointing/--no-grad-checkpointing", default=False, show_default=True)
@FORMAT_OPTION
def size_command(model: str, precision: str, group_size: int, kv_dtype: str, tp: int, pp: int,
                 ep: int, dp: int, gpu: str | None, gpu_memory_gib: float | None, gpu_memory_utilization: float | None,
                 max_model_len: int | None, max_num_batched_tokens: int | None,
                 engine: str, engine_version: str | None, mem_fraction_static: float | None,
                 finetune: str | None, lora_rank: int, lora_targets: str, zero_stage: int,
                 num_gpus: int, micro_batch: int, seq_len: int, grad_checkpointing: bool,
                 fmt: str) -> None:
    """Size MODEL exactly from its config.json: parameters, weights, KV cache per token, and
    (given --gpu or --gpu-memory-gib) the KV-cache tokens and concurrency vLLM would allocate.

    MODEL is a catalog name, a Hugging Face id in the catalog, or a path to a config.json.
    """
    if gpu and gpu_memory_gib:
        raise UsageError("give --gpu or --gpu-memory-gib, not both", field="--gpu")
    catalog = load_catalog()
    resolved = resolve_model(model, catalog)
    arch = parse_config(resolved.config, resolved.name, file=str(resolved.path))
    counts = param_counts(arch)
    gpu_name = None
    g = resolve_gpu(gpu, catalog) if gpu else None
    check_layout(arch, g, tp=tp, pp=pp, precision=precision if g and not is_gguf(precision) else None,
                 kv_dtype=kv_dtype if g else None, ep=ep, dp=dp)
    if (ep > 1 or dp > 1) and is_gguf(precision):
        raise UsageError("expert parallel / attention data parallel are not modelled for GGUF weights",
                         field="--ep", hint="use --ep 1 --dp 1 with GGUF precisions")
    check_engine_gpu(engine, g)  # vllm-ascend / mindie on a non-Ascend GPU: exit 2
    if g is not None:
        gpu_name, gpu_memory_gib = g.name, g.memory_gib
    if max_model_len is not None:
        check_context(arch, resolved.name, max_model_len, "--max-model-len")
    if finetune:
        check_context(arch, resolved.name, seq_len, "--seq-len")
    mml = max_model_len or arch.max_position_embeddings
    out: dict[str, Any] = {
        "model": resolved.name,
        "family": arch.family,
        "config": str(resolved.path),
        "params_total": counts.total,
        "params_active": counts.active,
        "params_breakdown": {
            "embedding": counts.embedding, "lm_head": counts.lm_head, "attention": counts.attention,
            "mlp_dense": counts.mlp_dense, "experts_routed": counts.experts_routed,
            "experts_shared": counts.experts_shared, "norms": counts.norms, "router": counts.router,
            "mtp_not_loaded": counts.mtp,
        },
        "params_reference": resolved.source.params_reference if resolved.source else None,
        "precision": precision,
        "weight_bytes": weight_bytes(arch, precision, group_size=group_size),
        "weight_bytes_per_gpu": weight_bytes_per_gpu(arch, precision, tp, pp, group_size=group_size, ep=ep),
        "expert_bytes_per_gpu": expert_bytes_per_gpu(arch, precision, tp, pp, ep=ep, group_size=group_size),
        "kv_dtype": kv_dtype,
        "kv_bytes_per_token": kv_bytes_per_token(arch, kv_dtype, tp),
        "kv_bytes_per_token_per_gpu": kv_bytes_per_token_per_gpu(arch, kv_dtype, tp, pp),
        "tp": tp,
        "pp": pp,
        "ep": ep,
        "dp": dp,
        "gpus": tp * pp * dp,
        "max_model_len": mml,
    }
    if is_gguf(precision):  # llama.cpp/Ollama: file size + KV for the context (not vLLM rules)
        out["llama_cpp"] = llama_cpp_memory(arch, precision, mml, KV_BYTES[kv_dtype])
    serving = None
    if gpu_memory_gib:
        kw: dict[str, Any] = {"kv_dtype": kv_dtype, "engine": engine}
        if engine_version is not None:
            kw["engine_version"] = engine_version
        if mem_fraction_static is not None:
            kw["mem_fraction_static"] = mem_fraction_static
        if gpu_memory_utilization is not None:
            kw["gpu_memory_utilization"] = gpu_memory_utilization
        if max_num_batched_tokens is not None:
            kw["max_num_batched_tokens"] = max_num_batched_tokens
        settings = _settings(kw)
        rules = profile_for(settings.engine, settings.engine_version)
        serving = serving_memory(arch, precision, gpu_memory_gib=gpu_memory_gib, tp=tp, pp=pp,
                                 settings=settings, max_model_len=mml, group_size=group_size, ep=ep, dp=dp)
        out.update({
            "gpu": gpu_name,
            "gpu_memory_gib": gpu_memory_gib,
            "engine": settings.engine,
            "engine_version": settings.engine_version,
            "memory_rules_source": rules.memory_rules_source,
            "gpu_memory_utilization": serving.gpu_memory_utilization,
            "budget_bytes": serving.budget_bytes,
            "activation_peak_bytes": serving.activation_peak_bytes,
            "non_torch_bytes": serving.non_torch_bytes,
            "cuda_graph_bytes": serving.cuda_graph_bytes,
            "kv_cache_bytes": serving.kv_cache_bytes,
            "num_gpu_blocks": serving.num_gpu_blocks,
            "kv_cache_tokens": serving.kv_cache_tokens,
            "replica_kv_cache_tokens": serving.replica_kv_tokens,  # dp x one DP rank's
            "max_concurrency": round(serving.max_concurrency, 4),
            "profile_tokens": serving.profile_tokens,
            "fits": serving.fits,
            "reason": serving.reason,
        })
    ft = None
    if finetune:
        targets = tuple(t.strip() for t in lora_targets.split(",") if t.strip())
        ft = finetune_memory(arch, finetune,  # type: ignore[arg-type]
                             num_gpus=num_gpus, zero_stage=zero_stage, micro_batch=micro_batch,
                             seq_len=seq_len, gradient_checkpointing=grad_checkpointing,
                             lora_rank=lora_rank, lora_targets=targets)
        out["finetune"] = {
            "method": ft.method, "zero_stage": ft.zero_stage, "num_gpus": ft.num_gpus,
            "trainable_params": ft.trainable_params, **{
                f"{k.replace(' ', '_')}_bytes": v for k, v in ft.components().items()},
            "peak_bytes_per_gpu": ft.peak_bytes_per_gpu, "dominant": ft.dominant,
        }
    if fmt == "json":
        print_json(out)
        return

    console = stdout()
    t = Table(title=f"{resolved.name} ({arch.family}) from {resolved.path.name}")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_column("note")
    ref = out["params_reference"]
    t.add_row("parameters, total", f"{counts.total:,}",
              f"reference {ref:,.0f} ({(counts.total / ref - 1) * 100:+.2f}%)" if ref else "")
    if arch.is_moe:
        t.add_row("parameters, active per token", f"{counts.active:,}",
                  f"{arch.experts_per_token} of {arch.num_experts} experts")
    for k in ("embedding", "lm_head", "attention", "mlp_dense", "experts_routed", "experts_shared",
              "norms", "router"):
        v = getattr(counts, k)
        if v:
            t.add_row(f"  {k}", f"{v:,}", "")
    t.add_row(f"weights ({precision})", f"{_gib(out['weight_bytes'])} GiB", f"{out['weight_bytes']:,} B")
    if tp * pp * dp > 1 or ep > 1:
        t.add_row("weights per GPU (worst rank)", f"{_gib(out['weight_bytes_per_gpu'])} GiB",
                  f"TP={tp}, PP={pp}" + (f", EP={ep}" if ep > 1 else "") + (f", DP={dp}" if dp > 1 else ""))
    if arch.is_moe and (tp * pp > 1 or ep > 1):
        t.add_row("  routed experts per GPU", f"{_gib(out['expert_bytes_per_gpu'])} GiB",
                  f"{arch.num_experts // ep} whole experts x layers" if ep > 1
                  else f"1/{tp} of each of {arch.num_experts} experts x layers")
    t.add_row(f"KV per token ({kv_dtype})", f"{out['kv_bytes_per_token']:,} B",
              "MLA latent" if arch.is_mla else f"{arch.num_kv_heads} KV heads x {arch.head_dim}")
    if tp > 1 or pp > 1:
        t.add_row("KV per token per GPU", f"{out['kv_bytes_per_token_per_gpu']:,} B", "")
    if "llama_cpp" in out:
        lc = out["llama_cpp"]
        t.add_row("llama.cpp: GGUF tensor data", f"{_gib(lc['weight_bytes'])} GiB",
                  "file size less metadata (tokenizer, a few MB)")
        t.add_row(f"llama.cpp: + KV for {lc['n_ctx']:,} tokens", f"{_gib(lc['total_bytes'])} GiB",
                  "all layers on the GPU; compute buffers not included")
    console.print(t)
    if serving:
        s = Table(title=f"Serving memory per GPU ({serving.engine} rules, max_model_len {mml:,}); "
                        f"rules: {out['memory_rules_source']}")
        s.add_column("component")
        s.add_column("GiB", justify="right")
        s.add_column("note")
        for line in serving.breakdown:
            s.add_row(line.name, _gib(line.bytes), line.note)
        s.add_row("KV cache tokens", f"{serving.kv_cache_tokens:,}", f"{serving.num_gpu_blocks:,} blocks")
        s.add_row("max concurrency", f"{serving.max_concurrency:.2f}x",
                  f"requests of {mml:,} tokens; {serving.reason}")
        console.print(s)
    if ft:
        f = Table(title=f"Fine-tuning memory per GPU ({ft.method}, ZeRO-{ft.zero_stage}, "
                        f"{ft.num_gpus} GPU(s), micro-batch {micro_batch} x {seq_len} tokens)")
        f.add_column("component")
        f.add_column("GiB", justify="right")
        for k, v in ft.components().items():
            f.add_row(k + (" (dominant)" if k == ft.dominant else ""), _gib(v))
        f.add_row("peak per GPU", _gib(ft.peak_bytes_per_gpu))
        console.print(f)
