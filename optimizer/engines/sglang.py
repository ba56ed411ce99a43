"""SGLang: KV = mem_fraction_static x memory free at start-up - weights (``ModelRunner.
profile_max_num_token``: ``rest_memory = available_after_load - total_at_init x (1 -
mem_fraction_static)``, tokens = ``rest_memory // cell_size``, no block rounding; the radix cache
shares this one token pool). CUDA graphs, activations and the chunked-prefill workspace
(``chunked_prefill_size``) live in the ``1 - mem_fraction_static`` share.

``mem_fraction_static`` default by TP (``server_args.py`` ``__post_init__`` of v0.4.x, estimate:
recalled, not re-read in this session): 0.88 at TP 1, 0.87 at 2, 0.85 at 4, 0.81 at 8, 0.79 at 16.
``EngineSettings.mem_fraction_static`` overrides it.

Checked against vllm-project/vllm#21348 (SGLang, Qwen3-235B-A22B-FP8, TP=4,
``--mem-fraction-static 0.93``): "KV Cache is allocated. #tokens: 367404".
"""

from __future__ import annotations

from optimizer.engines.base import EngineDefaults, EngineProfile, kv_account
from optimizer.schema.engine import EngineSettings
from optimizer.sizing.architecture import ModelArch
from optimizer.sizing.memory import MemoryLine, ServingMemory, non_torch_bytes
from optimizer.units import GIB

DEFAULTS = EngineDefaults("sglang", max_num_seqs=4096, kv_dtype="auto", kv_dtype_fp8_weights="auto",
                          kv_reserve_output_fraction=0.5, kv_memory_fraction=0.85)
#: ``chunked_prefill_size`` default (8192 on large GPUs; estimate, recalled).
CHUNKED_PREFILL_SIZE = 8192


def default_mem_fraction_static(tp: int) -> float:
    if tp >= 16:
        return 0.79
    if tp >= 8:
        return 0.81
    if tp >= 4:
        return 0.85
    if tp >= 2:
        return 0.87
    return 0.88


def serving_memory_sglang(arch: ModelArch, precision: str, gpu_memory_gib: float, tp: int, pp: int,
                          settings: EngineSettings, max_model_len: int, group_size: int, quant_format: str,
                          non_torch: int | None) -> ServingMemory:
    total = int(gpu_memory_gib * GIB)
    nt = non_torch_bytes(tp) if non_torch is None else non_torch
    frac = settings.mem_fraction_static or default_mem_fraction_static(tp)
    free_init = total - nt
    budget = int(free_init * frac)
    reserved = (MemoryLine("context at start-up", 0,
                           f"{nt / GIB:.2f} GiB used before the budget is taken (outside it)"),)
    return kv_account(arch, precision, engine_label=f"sglang {settings.engine_version}",
                      gpu_memory_gib=gpu_memory_gib, tp=tp, pp=pp, settings=settings,
                      max_model_len=max_model_len, group_size=group_size, quant_format=quant_format,
                      budget_bytes=budget, fraction=frac, reserved=reserved,
                      profile_tokens=CHUNKED_PREFILL_SIZE, activation=0, non_torch=nt, graphs=0,
                      graphs_in_budget=True, tokens_override=lambda n: n)


PROFILE = EngineProfile(
    engine="sglang", family="sglang", versions=("0.4.9",),
    memory_rules_source="SGLang 0.4.x: python/sglang/srt/model_executor/model_runner.py "
                        "profile_max_num_token; mem_fraction_static of server_args.py",
    defaults=DEFAULTS, efficiency_engine="vllm", memory_rule=serving_memory_sglang)
