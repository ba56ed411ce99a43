"""What every engine profile holds, and the shared KV account the non-V0 memory rules build.

A profile (:class:`EngineProfile`) keeps one engine release family's memory rule, its scheduler
defaults (:class:`EngineDefaults`) and the name of the calibration whose efficiency factors its
throughput uses, so defaults of different engines never mix. Pure data and pure functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optimizer.schema.engine import EngineSettings
    from optimizer.sizing.architecture import ModelArch
    from optimizer.sizing.memory import MemoryLine, ServingMemory


#: Device memory from which a GPU is taken as an SXM / NVSwitch-class part (H100/H200/MI300).
LARGE_GPU_GIB = 70
#: Distributed-init / communication memory of a rank is ``memory.comm_reserve_terms`` (NCCL
#: communicators + each engine's all-reduce buffers, by TP size; docs/sizing.md "Communication
#: reserve"); it replaced the flat ``DIST_INIT_BYTES_NVSWITCH`` / ``dist_init_bytes`` of this module.


@dataclass(frozen=True)
class EngineDefaults:
    """What an engine does when not told otherwise; ``procure perf`` and the fit read these.

    * ``max_num_seqs``: cap on running sequences. TensorRT-LLM: trtllm-bench, which produced the
      published perf-overview rows, sets ``max_batch_size = min(kv_cache_max_requests, 4096) / pp``
      (``tensorrt_llm/bench/build/tuning.py``, ``finetune_setting``: "Cap total batch size to avoid
      decoder buffer size becoming too large"), so the KV cache binds first and 4096 is the cap;
      ``trtllm-serve --max_batch_size`` defaults to ``BuildConfig.max_batch_size`` (2048,
      ``tensorrt_llm/commands/serve.py``) -- pass ``--max-num-seqs 2048`` to model a server. vLLM:
      ``max_num_seqs`` 256 (``EngineArgs``).
    * ``kv_dtype_fp8_weights`` / ``kv_dtype``: KV-cache dtype with fp8 weights / otherwise.
      TensorRT-LLM's ModelOpt FP8 checkpoints quantise the KV cache too, which the calibration of
      the published rows assumes (``read_published``; docs/perf.md "KV dtype of the calibration
      rows"); vLLM's ``--kv-cache-dtype auto`` keeps the model's 16-bit dtype.
    * ``kv_reserve_output_fraction``: output share of a running sequence's KV (``perf`` module).
    * ``kv_memory_fraction``: TensorRT-LLM ``kv_cache_free_gpu_mem_fraction`` (0.95 of the memory
      left after weights, the perf-overview setting) / vLLM ``gpu_memory_utilization`` (0.9 of
      the device, the rest as ``memory.serving_memory`` models it).
    """

    engine: str
    max_num_seqs: int
    kv_dtype: str
    kv_dtype_fp8_weights: str
    kv_reserve_output_fraction: float
    kv_memory_fraction: float

    def kv_dtype_for(self, precision: str) -> str:
        return self.kv_dtype_fp8_weights if precision == "fp8" else self.kv_dtype


#: Signature of a profile's memory rule (the arguments of ``memory._serving_memory_cached``, the
#: last two being the MoE layout's ``ep`` and ``dp``).
MemoryRule = Callable[["ModelArch", str, float, int, int, "EngineSettings", int, int, str, "int | None",
                       int, int], "ServingMemory"]


@dataclass(frozen=True)
class EngineProfile:
    """One engine release family: its versions, memory rule, defaults and efficiency pointer."""

    engine: str
    family: str
    versions: tuple[str, ...]
    memory_rules_source: str
    defaults: EngineDefaults
    #: Engine key of the shipped calibration (``calibration.SHIPPED``) its throughput uses.
    efficiency_engine: str
    memory_rule: MemoryRule | None = None

    @property
    def default_version(self) -> str:
        return self.versions[0]


def kv_account(arch: ModelArch, precision: str, *, engine_label: str, gpu_memory_gib: float, tp: int,
               pp: int, settings: EngineSettings, max_model_len: int, group_size: int, quant_format: str,
               budget_bytes: int, fraction: float, reserved: tuple[MemoryLine, ...], profile_tokens: int,
               activation: int, non_torch: int, graphs: int, graphs_in_budget: bool,
               tokens_override: Callable[[int], int] | None = None, ep: int = 1,
               dp: int = 1, comm_reserve: int = 0) -> ServingMemory:
    """The KV account shared by the V1 and SGLang rules: per stage ``budget - weights - reserved``
    (the worst stage binds), in blocks of ``settings.block_size_tokens``; ``tokens_override``
    turns the stage's free bytes into tokens when the engine does not round to blocks. ``ep``,
    ``dp``: the MoE layout (weights with routed experts over ``ep``; the KV of one DP rank).
    ``comm_reserve``: the communication reserve inside ``non_torch``, recorded on the account
    (not subtracted again: the caller's ``reserved`` lines or budget already hold it)."""
    from optimizer.sizing.architecture import kv_tokens_held
    from optimizer.sizing.memory import (
        KV_BYTES,
        MemoryLine,
        ServingMemory,
        _kv_elements_per_token_per_layer,
        layout_note,
        pp_layer_ranges,
        stage_weight_bytes,
    )
    from optimizer.units import GIB

    total = int(gpu_memory_gib * GIB)
    stages = stage_weight_bytes(arch, precision, tp, pp, group_size=group_size, quant_format=quant_format,
                                ep=ep)
    ranges = pp_layer_ranges(arch.num_layers, pp)
    per_layer_kv = _kv_elements_per_token_per_layer(arch, tp) * KV_BYTES[settings.kv_dtype]
    held_back = sum(line.bytes for line in reserved)
    bs = settings.block_size_tokens
    best: tuple[int, int, int] | None = None  # (tokens, stage, kv bytes)
    for s, layers in enumerate(ranges):
        per_tok = per_layer_kv * max(1, len(layers))
        free = max(0, budget_bytes - stages[s] - held_back)
        tokens = tokens_override(free // per_tok) if tokens_override else (free // (bs * per_tok)) * bs
        if best is None or tokens < best[0]:
            best = (tokens, s, tokens * per_tok)
    assert best is not None
    kv_tokens, worst, kv_bytes = best
    per_tok = per_layer_kv * max(1, len(ranges[worst]))
    held = kv_tokens_held(arch, max_model_len)
    reasons = []
    if kv_tokens < held:
        reasons.append(f"KV cache holds {kv_tokens:,} tokens, fewer than one {max_model_len:,}-token "
                       f"sequence ({engine_label} refuses to start)")
    if not graphs_in_budget and budget_bytes + graphs > total:
        reasons.append("CUDA graphs do not fit in the memory left above the engine's budget")
    breakdown = (
        MemoryLine("GPU memory", total, f"{gpu_memory_gib:g} GiB per GPU"),
        MemoryLine("budget", budget_bytes, f"x {fraction:g}"),
        MemoryLine("weights", stages[worst], f"{precision}, TP={tp}, PP={pp}" + layout_note(ep, dp) + ", worst rank"),
        *reserved,
        MemoryLine("KV cache", kv_bytes, f"{kv_tokens:,} tokens x {per_tok:,} B/token ({settings.kv_dtype})"),
        MemoryLine("unallocated in budget", max(0, budget_bytes - stages[worst] - held_back - kv_bytes),
                   "remainder below one block"),
    )
    blocks = kv_tokens // bs
    return ServingMemory(
        engine=engine_label, gpu_memory_bytes=total, gpu_memory_utilization=fraction,
        budget_bytes=budget_bytes, weight_bytes=stages[worst], activation_peak_bytes=activation,
        non_torch_bytes=non_torch, cuda_graph_bytes=graphs, kv_cache_bytes=kv_bytes,
        kv_bytes_per_token_per_gpu=per_tok, block_size_tokens=bs, block_bytes=bs * per_tok,
        num_gpu_blocks=blocks, kv_cache_tokens=kv_tokens, max_model_len=max_model_len,
        max_concurrency=kv_tokens / held if held else 0.0, profile_tokens=profile_tokens,
        fits=not reasons, reason="; ".join(reasons) or "fits", breakdown=breakdown, ep=ep, dp=dp,
        comm_reserve_bytes=comm_reserve,
    )
