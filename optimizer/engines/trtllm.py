"""TensorRT-LLM (trtllm-bench / trtllm-serve 1.0): KV = ``free_gpu_memory_fraction`` of the memory
free after weights, the activation workspace at ``max_num_tokens`` and the CUDA context
(``KvCacheConfig.free_gpu_memory_fraction``; docs "Useful runtime options"); batch cap 4096
(``tensorrt_llm/bench/build/tuning.py``). The memory rule lives in
:func:`optimizer.sizing.calibration.trtllm_kv_cache_tokens` (token count, used by ``perf`` and the
fit); ``procure size --engine trtllm`` is not wired yet.
"""

from __future__ import annotations

from optimizer.engines.base import EngineDefaults, EngineProfile

#: trtllm-bench's KV fraction in the perf overview ("--kv_cache_free_gpu_mem_fraction 0.95").
TRTLLM_KV_FRACTION = 0.95
#: TensorRT-LLM ``max_num_tokens`` default used as the activation workspace of the estimate.
TRTLLM_MAX_NUM_TOKENS = 8192

DEFAULTS = EngineDefaults("trtllm", max_num_seqs=4096, kv_dtype="auto", kv_dtype_fp8_weights="fp8",
                          kv_reserve_output_fraction=1.0, kv_memory_fraction=TRTLLM_KV_FRACTION)

PROFILE = EngineProfile(
    engine="trtllm", family="trtllm", versions=("1.0",),
    memory_rules_source="TensorRT-LLM 1.0: KvCacheConfig.free_gpu_memory_fraction of free memory "
                        "after weights and activations (optimizer/sizing/calibration.py)",
    defaults=DEFAULTS, efficiency_engine="trtllm", memory_rule=None)
