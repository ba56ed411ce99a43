"""Huawei MindIE Service (MindIE-LLM, 2.0 line): with ``npuMemSize`` -1 (the shipped default), KV =
``NPU_MEMORY_FRACTION`` x NPU memory - what the device holds after a warm-up at ``maxPrefillTokens``.

Read from ``mindie_llm/text_generator/generator.py`` ``Generator.warm_up`` (MindIE-LLM; the copy
read here is the one Ascend/MindIE-LLM holds at c2ad7169): ``npuMemSize != -1`` reserves exactly
that many GiB for the KV cache and skips profiling ("This does not respect the
'NPU_MEMORY_FRACTION' environment variable"); with -1 it runs a warm-up prefill up to
``max_prefill_tokens`` (and one decode step), then ``free_mem, total_mem, _ =
acl.rt.get_mem_info(1)``, ``requested_memory = total_mem * ENV.memory_fraction``, ``npu_mem =
requested_memory - (total_mem - free_mem)``; ``_validate_warmup_memory`` turns it into
``floor(npu_mem / block_mem)`` blocks of ``cacheBlockSize`` tokens. ``ENV.memory_fraction`` is
``NPU_MEMORY_FRACTION``, default 0.8 (``mindie_llm/utils/env.py``, verylucky01/MindIE-LLM mirror
@047ce273); MindIE's troubleshooting guide tunes it to 0.96.

So ``KV = f x T - W - A(maxPrefillTokens) - N``: ``T`` the runtime's device memory (as for
vLLM-Ascend, :func:`optimizer.engines.vllm_ascend.npu_total_bytes`: ``acl.rt.get_mem_info`` and
``torch.npu.mem_get_info`` read the same ACL figure -- an assumption, no MindIE log of the total was
found), ``A`` the warm-up's activation peak (:func:`activation_peak_bytes`; estimate, ATB's
workspace is not torch's), ``N`` the CANN runtime and HCCL buffers (the vLLM-Ascend estimates,
same runtime). No graph capture on the ATB backend.

Scheduler defaults of the mindie-service ``conf/config.json`` shipped in the docs: ``cacheBlockSize``
128, ``maxPrefillTokens`` 8192, ``maxPrefillBatchSize`` 50, ``maxBatchSize`` 200, ``maxIterTimes``
512, ``npuMemSize`` -1, ``cpuMemSize`` 5 (MindIE Service docs, ``ScheduleConfig`` /
``ModelConfig``; ``hiascend.com`` mindie-service "配置参数说明"). ``serving.gpu_memory_utilization``
stands for ``NPU_MEMORY_FRACTION`` (default 0.8 for this engine); ``max_num_batched_tokens`` for
``maxPrefillTokens``.

No public MindIE log with a KV-block count for a model procure can reproduce was found: the one in
MindIE's troubleshooting guide (1,747 blocks) is DeepSeek on two nodes with unstated settings.
"""

from __future__ import annotations

from optimizer.engines.base import EngineDefaults, EngineProfile, kv_account
from optimizer.engines.vllm_ascend import (
    npu_runtime_lines,
    npu_total_bytes,
)
from optimizer.schema.engine import EngineSettings
from optimizer.sizing.architecture import ModelArch
from optimizer.sizing.memory import MemoryLine, ServingMemory, activation_peak_bytes
from optimizer.units import GIB

#: ``NPU_MEMORY_FRACTION`` default (``mindie_llm/utils/env.py``).
NPU_MEMORY_FRACTION = 0.8
#: ``maxPrefillTokens`` / ``maxBatchSize`` / ``cacheBlockSize`` of the shipped config.json.
MAX_PREFILL_TOKENS = 8192
MAX_BATCH_SIZE = 200
BLOCK_SIZE = 128

DEFAULTS = EngineDefaults("mindie", max_num_seqs=MAX_BATCH_SIZE, kv_dtype="auto", kv_dtype_fp8_weights="auto",
                          kv_reserve_output_fraction=0.5, kv_memory_fraction=NPU_MEMORY_FRACTION)


def serving_memory_mindie(arch: ModelArch, precision: str, gpu_memory_gib: float, tp: int, pp: int,
                          settings: EngineSettings, max_model_len: int, group_size: int, quant_format: str,
                          non_torch: int | None, ep: int = 1, dp: int = 1) -> ServingMemory:
    """KV capacity under the ``npuMemSize = -1`` rule of the module docstring."""
    total = npu_total_bytes(gpu_memory_gib)
    frac = settings.gpu_memory_utilization
    budget = int(total * frac)
    tokens = settings.max_num_batched_tokens or MAX_PREFILL_TOKENS
    act = activation_peak_bytes(arch, tokens, tp, ep)
    nt, reserve, other, comm = npu_runtime_lines(
        gpu_memory_gib, tp * dp, non_torch,
        reserve_note="not reported by acl.rt.get_mem_info (assumed as for vLLM-Ascend)",
        non_torch_note="CANN runtime and other (vLLM-Ascend estimate)")
    reserved = (reserve, MemoryLine("warm-up activation peak", act,
                                    f"warm-up prefill of maxPrefillTokens {tokens:,} (estimate)"), other, comm)
    return kv_account(arch, precision, engine_label=f"mindie {settings.engine_version}",
                      gpu_memory_gib=total / GIB, tp=tp, pp=pp, settings=settings,
                      max_model_len=max_model_len, group_size=group_size, quant_format=quant_format,
                      budget_bytes=budget, fraction=frac, reserved=reserved, profile_tokens=tokens,
                      activation=act, non_torch=nt, graphs=0, graphs_in_budget=True, ep=ep, dp=dp,
                      comm_reserve=comm.bytes)


PROFILE = EngineProfile(
    engine="mindie", family="mindie", versions=("2.0.RC1",),
    memory_rules_source="MindIE-LLM 2.0: mindie_llm/text_generator/generator.py warm_up (npuMemSize -1: "
                        "NPU_MEMORY_FRACTION x total - used after warm-up); config.json defaults of the "
                        "mindie-service docs",
    defaults=DEFAULTS, efficiency_engine="mindie", memory_rule=serving_memory_mindie)
