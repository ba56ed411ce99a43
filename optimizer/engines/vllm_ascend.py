"""vLLM-Ascend (the vLLM platform plugin for Ascend NPUs, 0.10.2-0.11.x): KV = gpu_memory_utilization x
the NPU memory the runtime reports - weights - activation peak of the profiling run - non-torch memory
(CANN runtime, HCCL buffers); ACL graphs are captured after the KV cache, outside the budget.

Read from ``vllm_ascend/worker/worker_v1.py`` ``NPUWorker.determine_available_memory``
(vllm-project/vllm-ascend @01beff7a, the 0.11.x line: it branches on ``vllm_version_is("0.11.0")``):
``total_npu_memory = mem_get_info()[1]``; ``profile_run()``; ``peak_memory =
memory_stats()["allocated_bytes.all.peak"]`` (weights + the profile pass) plus
``non_torch_allocations = (total - free) - allocated_bytes.all.current`` after ``empty_cache``, i.e.
everything on the device that torch did not allocate (CANN runtime context, HCCL buffers -- the
worker initialises ``hccl`` in ``_init_device`` before the model loads); ``available_kv_cache_memory
= total_npu_memory x gpu_memory_utilization - peak_memory``. ``compile_or_warm_up_model`` calls
``capture_model`` afterwards, so ACL graph memory is outside the budget (the ``1 -
gpu_memory_utilization`` headroom). The same "Available memory: ..., total memory: ..." log line
appears at 0.10.2rc1 (vllm-ascend#3090, ``worker_v1.py:198``) and at 0.11.0rc1 (vllm-ascend#4037).

* **NPU total.** ``mem_get_info`` on a 64 GB Atlas A2 part reports 65,452,113,920 B (60.96 GiB),
  not 64 GiB: the same figure in vllm-ascend#3090, #3843 (910B4), #4037 (910B1) and #4594; npu-smi
  shows ~3,400 of 65,536 MiB in use at idle (#4037). :data:`NPU_RESERVED_BYTES` is the difference;
  for Ascend parts of other sizes the same reserve is assumed (estimate).
* **Block size** 128 (``platform.py`` ``check_and_update_config``: ``block_size = 128`` when unset,
  and forced to 128 with chunked prefill or prefix caching).
* **Scheduler defaults** as upstream vLLM V1 for a device under 70 GiB: ``max_num_batched_tokens``
  2048, ``max_num_seqs`` 256 (vllm-ascend#4594 logs "Chunked prefill is enabled with
  max_num_batched_tokens=2048" for ``vllm serve`` on 910B).
* **Non-torch memory at TP 1**: :data:`NPU_NON_TORCH_TP1_BYTES` = 1.11 GiB, derived from
  vllm-ascend#4037 (Qwen3-1.7B, TP 1, ``gpu_memory_utilization`` 0.8: 0.8 x 65,452,113,920 -
  47,612,861,952 available - 3.2153 GiB weights = 1.21 GiB, less procure's 0.09 GiB activation
  estimate at 2048 tokens). Estimate: one log; whatever the profile pass allocates beyond
  :func:`activation_peak_bytes` (the dummy sampler run, if vllm-ascend's ``profile_run`` does one,
  Qwen3 vocabulary) is inside this constant.
* **HCCL at TP > 1**: :data:`HCCL_COMMUNICATORS` x ``HCCL_BUFFSIZE`` (CANN default 200 MB, the
  environment variable of the CANN HCCL docs; each communicator holds a buffer of that size). Two
  communicators (vLLM's world and TP groups) is an estimate, not a measurement.

Check (tests/engines/test_ascend_profiles.py): vllm-ascend#4594, Qwen3-32B bf16, 8 x 910B (64 GB),
TP 8, ``gpu_memory_utilization`` 0.9, block 128: "GPU KV cache size: 1,497,600 tokens".
"""

from __future__ import annotations

from dataclasses import replace

from optimizer.engines.base import EngineDefaults, EngineProfile, kv_account
from optimizer.schema.engine import EngineSettings
from optimizer.sizing.architecture import ModelArch
from optimizer.sizing.memory import MemoryLine, ServingMemory, activation_peak_bytes, cuda_graph_bytes
from optimizer.units import GIB

MIB = 1 << 20
#: ``torch.npu.mem_get_info()[1]`` of a 64 GB 910B (vllm-ascend#3090/#3843/#4037/#4594 logs).
NPU_TOTAL_64GB_BYTES = 65_452_113_920
#: Memory of a 64 GiB part the NPU runtime does not report as device memory (~3.04 GiB).
NPU_RESERVED_BYTES = 64 * GIB - NPU_TOTAL_64GB_BYTES
#: Non-torch memory of one TP-1 worker (CANN runtime and the rest; estimate, vllm-ascend#4037).
NPU_NON_TORCH_TP1_BYTES = 1_195_763_802
#: CANN ``HCCL_BUFFSIZE`` default (200 MB per communicator).
HCCL_BUFFSIZE_BYTES = 200 * MIB
#: HCCL communicators a TP > 1 worker opens (world and TP group; estimate).
HCCL_COMMUNICATORS = 2
#: vLLM-Ascend's KV block (``platform.py``).
BLOCK_SIZE = 128
#: ``max_num_batched_tokens`` / ``max_num_seqs`` of ``vllm serve`` on a device under 70 GiB.
DEFAULT_BATCHED_TOKENS = 2048
DEFAULT_MAX_NUM_SEQS = 256

DEFAULTS = EngineDefaults("vllm-ascend", max_num_seqs=DEFAULT_MAX_NUM_SEQS, kv_dtype="auto",
                          kv_dtype_fp8_weights="auto", kv_reserve_output_fraction=0.5, kv_memory_fraction=0.9)


def npu_total_bytes(gpu_memory_gib: float) -> int:
    """What the NPU runtime reports as device memory: catalog memory less :data:`NPU_RESERVED_BYTES`."""
    return max(0, int(gpu_memory_gib * GIB) - NPU_RESERVED_BYTES)


def hccl_line(group: int) -> MemoryLine:
    """HCCL buffers of one rank of a ``group``-rank all-reduce group (0 at 1)."""
    if group <= 1:
        return MemoryLine("communication reserve", 0, "none at TP 1")
    return MemoryLine("communication reserve", HCCL_COMMUNICATORS * HCCL_BUFFSIZE_BYTES,
                      f"TP={group}: HCCL {HCCL_COMMUNICATORS} communicators x HCCL_BUFFSIZE 200 MB "
                      "(CANN default; communicator count an estimate)")


def npu_runtime_lines(gpu_memory_gib: float, group: int, non_torch: int | None, *, reserve_note: str,
                      non_torch_note: str) -> tuple[int, MemoryLine, MemoryLine, MemoryLine]:
    """The CANN-runtime part of an Ascend memory account, shared by vLLM-Ascend and MindIE:
    the non-torch bytes (runtime + HCCL buffers of a ``group``-rank communicator; an explicit
    ``non_torch`` stands for both) and the account lines (runtime reserve, non-torch, HCCL)."""
    comm = hccl_line(group)
    if non_torch is not None:  # an explicit non-torch figure stands for the HCCL buffers too
        comm = MemoryLine(comm.name, 0, "in the non-torch figure given")
    nt = NPU_NON_TORCH_TP1_BYTES + comm.bytes if non_torch is None else non_torch
    reserve = MemoryLine("NPU runtime reserve", 0,
                         f"{NPU_RESERVED_BYTES / GIB:.2f} GiB of {gpu_memory_gib:g} GiB {reserve_note}")
    return nt, reserve, MemoryLine("non-torch", nt - comm.bytes, non_torch_note), comm


def serving_memory_vllm_ascend(arch: ModelArch, precision: str, gpu_memory_gib: float, tp: int, pp: int,
                               settings: EngineSettings, max_model_len: int, group_size: int,
                               quant_format: str, non_torch: int | None, ep: int = 1,
                               dp: int = 1) -> ServingMemory:
    """KV capacity under the rule of the module docstring (worst pipeline stage binds)."""
    total = npu_total_bytes(gpu_memory_gib)
    budget = int(total * settings.gpu_memory_utilization)
    tokens = settings.max_num_batched_tokens or DEFAULT_BATCHED_TOKENS
    act = activation_peak_bytes(arch, tokens, tp, ep)
    nt, reserve, other, comm = npu_runtime_lines(
        gpu_memory_gib, tp * dp, non_torch, reserve_note="not reported by mem_get_info (before the budget)",
        non_torch_note="CANN runtime and other (estimate, vllm-ascend#4037)")
    graphs = cuda_graph_bytes(arch, pp) if settings.cuda_graphs else 0
    reserved = (reserve, MemoryLine("activation peak", act, f"profile pass over {tokens:,} tokens"), other, comm)
    mem = kv_account(arch, precision, engine_label=f"vllm-ascend {settings.engine_version}",
                     gpu_memory_gib=total / GIB, tp=tp, pp=pp, settings=settings,
                     max_model_len=max_model_len, group_size=group_size, quant_format=quant_format,
                     budget_bytes=budget, fraction=settings.gpu_memory_utilization, reserved=reserved,
                     profile_tokens=tokens, activation=act, non_torch=nt, graphs=graphs,
                     graphs_in_budget=False, ep=ep, dp=dp, comm_reserve=comm.bytes)
    breakdown = (*mem.breakdown, MemoryLine("ACL graphs (outside budget)", graphs,
                                            "estimate; captured after the KV cache"))
    return replace(mem, breakdown=breakdown)


PROFILE = EngineProfile(
    engine="vllm-ascend", family="vllm-ascend", versions=("0.11.0", "0.10.2"),
    memory_rules_source="vLLM-Ascend 0.10.2-0.11.x: vllm_ascend/worker/worker_v1.py "
                        "determine_available_memory (vllm-ascend @01beff7a); block 128 from platform.py; "
                        "ACL graphs outside the budget",
    defaults=DEFAULTS, efficiency_engine="vllm", memory_rule=serving_memory_vllm_ascend)
