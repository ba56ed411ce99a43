"""Serving-engine settings that decide how much GPU memory becomes KV cache.

Defaults follow vLLM v0.6.3 (EngineArgs): gpu_memory_utilization 0.9, block_size 16, and a profiling
pass at max_num_batched_tokens. Every field can be overridden per scenario under ``serving:``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from optimizer.schema.base import Strict

KVDtype = Literal["auto", "fp8", "bf16", "fp16", "fp32"]


class EngineSettings(Strict):
    engine: Literal["vllm"] = Field(default="vllm", description="Engine whose memory rules are modelled")
    engine_version: Literal["0.6.3"] = Field(default="0.6.3", description="Release the defaults are taken from")
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0, le=1, description="Fraction of device memory the engine may use")
    block_size_tokens: int = Field(default=16, ge=1, le=1024, description="Tokens per KV block (paged attention)")
    max_num_batched_tokens: int | None = Field(
        default=None, ge=16, le=100_000_000,
        description="Tokens in the profiling forward pass (chunked-prefill budget); omit for the engine's "
        "default, which depends on max_model_len (optimizer.sizing.memory.default_profile_tokens)")
    max_num_seqs: int = Field(default=256, ge=1, le=100_000, description="Cap on concurrently running sequences")
    kv_dtype: KVDtype = Field(default="auto", description="KV cache dtype; auto = the activation dtype (16 bit)")
    cuda_graphs: bool = Field(default=True, description="Capture CUDA graphs (costs memory outside the budget's KV)")
