"""vLLM V0 engine (v0.6.3/v0.6.4): the rules of :mod:`optimizer.sizing.memory` (unchanged numbers)."""

from __future__ import annotations

from optimizer.engines.base import EngineDefaults, EngineProfile

DEFAULTS = EngineDefaults("vllm", max_num_seqs=256, kv_dtype="auto", kv_dtype_fp8_weights="auto",
                          kv_reserve_output_fraction=0.5, kv_memory_fraction=0.9)

PROFILE = EngineProfile(
    engine="vllm", family="v0", versions=("0.6.3", "0.6.4"),
    memory_rules_source="vLLM v0.6.3/v0.6.4 V0 engine: vllm/worker/worker.py "
                        "determine_num_available_blocks (optimizer/sizing/memory.py)",
    defaults=DEFAULTS, efficiency_engine="vllm", memory_rule=None)
