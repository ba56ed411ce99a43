"""TensorRT-LLM (trtllm-bench / trtllm-serve 1.0): KV = ``free_gpu_memory_fraction`` of the memory
free after weights, the activation workspace at ``max_num_tokens`` and the CUDA context
(``KvCacheConfig.free_gpu_memory_fraction``; docs "Useful runtime options"); batch cap 4096
(``tensorrt_llm/bench/build/tuning.py``).

:func:`kv_cache_tokens` is the one memory rule: ``procure perf``, the calibration fit
(:func:`optimizer.sizing.calibration.trtllm_kv_cache_tokens`) and ``procure size`` / the planner
(:func:`serving_memory_trtllm`, the profile's memory rule) all call it. The fraction is the
caller's: ``perf`` and the fit default to trtllm-bench's 0.95 (:data:`TRTLLM_KV_FRACTION`, the
perf-overview setting); ``size`` and scenarios take ``serving.gpu_memory_utilization`` (default
0.9, which is also ``KvCacheConfig.free_gpu_memory_fraction``'s own default in trtllm-serve).
"""

from __future__ import annotations

from optimizer.engines.base import EngineDefaults, EngineProfile
from optimizer.schema.engine import EngineSettings
from optimizer.sizing.architecture import ModelArch, kv_tokens_held
from optimizer.sizing.memory import (
    NON_TORCH_BYTES_TP1,
    MemoryLine,
    ServingMemory,
    activation_peak_bytes,
    comm_reserve_bytes,
    comm_reserve_line,
    kv_bytes_per_token_per_gpu,
    stage_weight_bytes,
)
from optimizer.units import GIB

#: trtllm-bench's KV fraction in the perf overview ("--kv_cache_free_gpu_mem_fraction 0.95").
TRTLLM_KV_FRACTION = 0.95
#: TensorRT-LLM ``max_num_tokens`` default used as the activation workspace of the estimate.
TRTLLM_MAX_NUM_TOKENS = 8192

DEFAULTS = EngineDefaults("trtllm", max_num_seqs=4096, kv_dtype="auto", kv_dtype_fp8_weights="fp8",
                          kv_reserve_output_fraction=1.0, kv_memory_fraction=TRTLLM_KV_FRACTION)


def free_after_load(arch: ModelArch, precision: str, gpu_memory_gib: float, tp: int, pp: int, *,
                    group_size: int = 128, quant_format: str = "gptq",
                    non_torch: int | None = None, ep: int = 1, dp: int = 1) -> tuple[float, int, int, int]:
    """``(free, weights, activations, non_torch)`` bytes of the worst rank: G - W - A - N
    (``ep``/``dp``: the MoE layout, ``moe_expert_parallel_size`` / ``enable_attention_dp``)."""
    weights = max(stage_weight_bytes(arch, precision, tp, pp, group_size=group_size, quant_format=quant_format,
                                     ep=ep))
    act = activation_peak_bytes(arch, TRTLLM_MAX_NUM_TOKENS, tp, ep)
    nt = (NON_TORCH_BYTES_TP1 + comm_reserve_bytes("trtllm", tp * dp, gpu_memory_gib=gpu_memory_gib, pp=pp)
          if non_torch is None else non_torch)
    return gpu_memory_gib * GIB - weights - act - nt, weights, act, nt


def kv_cache_tokens(arch: ModelArch, precision: str, gpu_memory_gib: float, tp: int, pp: int, *,
                    kv_dtype: str, fraction: float, group_size: int = 128, quant_format: str = "gptq",
                    non_torch: int | None = None, ep: int = 1, dp: int = 1) -> int:
    """KV tokens TensorRT-LLM allocates: ``fraction x (G - W - A - N) / kv_bytes_per_token``
    per GPU (worst stage), with G the device memory, W the rank's weights, A the activation
    workspace at ``max_num_tokens`` (8192) and N the CUDA context (``memory.NON_TORCH_BYTES_TP1``)
    plus, at TP > 1, the communication reserve (``memory.comm_reserve_terms``: NCCL and the
    all-reduce workspace, both allocated before the KV cache is sized).
    TensorRT-LLM sizes the cache from free memory after loading and a warm-up forward
    (``KvCacheConfig.free_gpu_memory_fraction``, docs "Useful runtime options")."""
    free = free_after_load(arch, precision, gpu_memory_gib, tp, pp, group_size=group_size,
                           quant_format=quant_format, non_torch=non_torch, ep=ep, dp=dp)[0]
    per_tok = kv_bytes_per_token_per_gpu(arch, kv_dtype, tp, pp)
    return max(0, int(fraction * free // per_tok))


def serving_memory_trtllm(arch: ModelArch, precision: str, gpu_memory_gib: float, tp: int, pp: int,
                          settings: EngineSettings, max_model_len: int, group_size: int, quant_format: str,
                          non_torch: int | None, ep: int = 1, dp: int = 1) -> ServingMemory:
    """The profile's memory rule: :func:`kv_cache_tokens` with ``fraction =
    settings.gpu_memory_utilization`` (no block rounding, as in ``perf``), as a memory account."""
    frac = settings.gpu_memory_utilization
    total = int(gpu_memory_gib * GIB)
    free, weights, act, nt = free_after_load(arch, precision, gpu_memory_gib, tp, pp, group_size=group_size,
                                             quant_format=quant_format, non_torch=non_torch, ep=ep, dp=dp)
    tokens = kv_cache_tokens(arch, precision, gpu_memory_gib, tp, pp, kv_dtype=settings.kv_dtype,
                             fraction=frac, group_size=group_size, quant_format=quant_format,
                             non_torch=non_torch, ep=ep, dp=dp)
    per_tok = kv_bytes_per_token_per_gpu(arch, settings.kv_dtype, tp, pp)
    kv_bytes = tokens * per_tok
    held = kv_tokens_held(arch, max_model_len)
    fits = tokens >= held
    reason = ("fits" if fits else f"KV cache holds {tokens:,} tokens, fewer than one {max_model_len:,}-token "
              f"sequence (TensorRT-LLM cannot schedule it)")
    budget = max(0, int(frac * max(0, free)))
    comm = comm_reserve_line("trtllm", tp * dp, gpu_memory_gib=gpu_memory_gib, pp=pp)
    if non_torch is not None:  # an explicit non-torch figure stands for the reserve too
        comm = MemoryLine(comm.name, 0, "in the non-torch figure given")
    bs = settings.block_size_tokens
    breakdown = (
        MemoryLine("GPU memory", total, f"{gpu_memory_gib:g} GiB per GPU"),
        MemoryLine("weights", weights, f"{precision}, TP={tp}, PP={pp}, worst rank"),
        MemoryLine("activation workspace", act, f"max_num_tokens {TRTLLM_MAX_NUM_TOKENS:,}"),
        MemoryLine("non-torch", nt - comm.bytes, "CUDA context, cuBLAS"),
        comm,
        MemoryLine("free after load", max(0, int(free)), "G - weights - activations - context"),
        MemoryLine("KV cache", kv_bytes, f"{tokens:,} tokens x {per_tok:,} B/token ({settings.kv_dtype}), "
                   f"free_gpu_memory_fraction {frac:g} of the free memory"),
    )
    return ServingMemory(
        engine=f"trtllm {settings.engine_version}", gpu_memory_bytes=total, gpu_memory_utilization=frac,
        budget_bytes=budget, weight_bytes=weights, activation_peak_bytes=act, non_torch_bytes=nt,
        cuda_graph_bytes=0, kv_cache_bytes=kv_bytes, kv_bytes_per_token_per_gpu=per_tok,
        block_size_tokens=bs, block_bytes=bs * per_tok, num_gpu_blocks=tokens // bs, kv_cache_tokens=tokens,
        max_model_len=max_model_len, max_concurrency=tokens / held if held else 0.0,
        profile_tokens=TRTLLM_MAX_NUM_TOKENS, fits=fits, reason=reason, breakdown=breakdown, ep=ep, dp=dp,
        comm_reserve_bytes=comm.bytes,
    )


PROFILE = EngineProfile(
    engine="trtllm", family="trtllm", versions=("1.0",),
    memory_rules_source="TensorRT-LLM 1.0: KvCacheConfig.free_gpu_memory_fraction of free memory "
                        "after weights and activations (optimizer/engines/trtllm.py kv_cache_tokens)",
    defaults=DEFAULTS, efficiency_engine="trtllm", memory_rule=serving_memory_trtllm)
