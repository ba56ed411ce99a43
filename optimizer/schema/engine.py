"""Serving-engine settings that decide how much GPU memory becomes KV cache.

Defaults follow vLLM v0.6.3 (EngineArgs): gpu_memory_utilization 0.9, block_size 16, and a profiling
pass at max_num_batched_tokens. Every field can be overridden per scenario under ``serving:``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from optimizer.schema.base import Strict

KVDtype = Literal["auto", "fp8", "bf16", "fp16", "fp32"]
#: Engines with a profile in ``optimizer/engines/``.
Engine = Literal["vllm", "sglang", "trtllm", "vllm-ascend", "mindie"]
#: A release string; which releases each engine has a profile for is checked against
#: ``optimizer.engines.KNOWN`` (vLLM 0.6.3/0.6.4 and 0.8.5 ... 0.21.0, SGLang 0.4.9, TensorRT-LLM 1.0,
#: vLLM-Ascend 0.10.2/0.11.0, MindIE 2.0.RC1),
#: so an unknown one is named with that engine's own releases.
EngineVersion = Annotated[str, StringConstraints(pattern=r"^[0-9][0-9A-Za-z.+-]{0,19}$")]


class EngineSettings(Strict):
    engine: Engine = Field(default="vllm", description="Engine whose memory rules are modelled")
    engine_version: EngineVersion = Field(
        default="0.6.3", description="Release the rules and defaults are taken from; omit for the engine's "
        "default (vllm 0.6.3, sglang 0.4.9, trtllm 1.0, vllm-ascend 0.11.0, mindie 2.0.RC1)")
    mem_fraction_static: float | None = Field(
        default=None, gt=0, le=1, description="SGLang --mem-fraction-static; omit for its default by TP")
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

    @model_validator(mode="before")
    @classmethod
    def _default_version(cls, data: Any) -> Any:
        """An omitted ``engine_version`` is the engine's default release. The Ascend engines also
        default ``block_size_tokens`` to 128 (vLLM-Ascend ``platform.py``, MindIE ``cacheBlockSize``)
        and MindIE's ``gpu_memory_utilization`` to its ``NPU_MEMORY_FRACTION`` default, 0.8."""
        if isinstance(data, dict) and "engine_version" not in data and data.get("engine") not in (None, "vllm"):
            from optimizer.engines import DEFAULT_VERSION

            if data["engine"] in DEFAULT_VERSION:
                data = {**data, "engine_version": DEFAULT_VERSION[data["engine"]]}
        if isinstance(data, dict) and data.get("engine") in ("vllm-ascend", "mindie"):
            extra: dict[str, Any] = {}
            if "block_size_tokens" not in data:
                extra["block_size_tokens"] = 128
            if data["engine"] == "mindie" and "gpu_memory_utilization" not in data:
                extra["gpu_memory_utilization"] = 0.8
            data = {**data, **extra}
        return data

    @model_validator(mode="after")
    def _known_combination(self) -> EngineSettings:
        from optimizer.engines import KNOWN, known_combinations

        if self.engine_version not in KNOWN[self.engine]:
            raise ValueError(f"{self.engine} has no profile for version {self.engine_version!r}; "
                             f"known engine versions: {known_combinations()}")
        return self
