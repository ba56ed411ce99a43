"""SGLang: KV = mem_fraction_static x memory free after distributed init - weights.

Read from ``python/sglang/srt/model_executor/model_runner.py`` (0.4.x-0.5.x):

* ``init_torch_distributed`` returns ``min_per_gpu_memory = get_available_gpu_memory(...,
  distributed=True)`` -- the smallest free memory over the ranks, taken **after**
  ``init_distributed_environment`` / ``initialize_model_parallel`` (NCCL communicators, custom
  all-reduce buffers) and after the CUDA context exists. This is ``total_gpu_memory`` below.
* ``profile_max_num_token(total_gpu_memory)``: ``available_gpu_memory`` = free memory after
  ``load_model``; ``rest_memory = available_gpu_memory - total_gpu_memory * (1 -
  mem_fraction_static)``; ``max_num_token = int(rest_memory * (1 << 30) // cell_size)`` with
  ``cell_size = kv_heads_per_rank * head_dim * num_layers * 2 * element_size`` (no block
  rounding; the radix cache shares this one token pool). Since ``available = total - W``:
  ``KV = mem_fraction_static x (G - context - dist_init) - W``.
* Start-up context: CUDA context (``memory.NON_TORCH_BYTES_TP1``) plus the communication
  reserve (:func:`optimizer.sizing.memory.comm_reserve_terms`: NCCL + custom all-reduce, 2.01 GiB
  per rank at TP 8 on NVSwitch Hopper, the "Init torch distributed ends. mem usage" line of
  sgl-project/sglang#11716; x 342/392 for NCCL at TP 2).
  CUDA graphs, activations and the chunked-prefill workspace (``chunked_prefill_size``) live in
  the ``1 - mem_fraction_static`` share.

``mem_fraction_static`` default by TP (``server_args.py`` ``__post_init__`` of v0.4.x, estimate:
recalled, not re-read): 0.88 at TP 1, 0.87 at 2, 0.85 at 4, 0.81 at 8, 0.79 at 16.
``EngineSettings.mem_fraction_static`` overrides it.

Checked against vllm-project/vllm#21348 (SGLang, Qwen3-235B-A22B-FP8, 4 x H100, TP=4,
``--mem-fraction-static 0.93``): "KV Cache is allocated. #tokens: 367404" (K + V = 16.47 GiB
per GPU); procure 364,622 (16.34 GiB, -0.8 %), tests/engines/test_profiles.py.
"""

from __future__ import annotations

from optimizer.engines.base import EngineDefaults, EngineProfile, kv_account
from optimizer.schema.engine import EngineSettings
from optimizer.sizing.architecture import ModelArch
from optimizer.sizing.memory import NON_TORCH_BYTES_TP1, MemoryLine, ServingMemory, comm_reserve_line
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
                          non_torch: int | None, ep: int = 1, dp: int = 1) -> ServingMemory:
    """The rule of the module docstring. With DP attention SGLang's ``--tp`` is the whole
    ``tp x dp`` group (``server_args.py``: attention TP = ``tp_size // dp_size``), so the
    communicator memory and the ``mem_fraction_static`` default follow ``tp x dp``."""
    total = int(gpu_memory_gib * GIB)
    comm = comm_reserve_line("sglang", tp * dp, gpu_memory_gib=gpu_memory_gib,
                             engine_version=settings.engine_version, pp=pp)
    if non_torch is not None:  # an explicit start-up figure stands for the reserve too
        comm = MemoryLine(comm.name, 0, "in the non-torch figure given")
    nt = NON_TORCH_BYTES_TP1 + comm.bytes if non_torch is None else non_torch
    frac = settings.mem_fraction_static or default_mem_fraction_static(tp * dp)
    free_init = total - nt
    budget = int(free_init * frac)
    # Both lines are taken before the budget (it is a fraction of what is left), so they hold 0
    # bytes of it; the reserve's bytes and sources are in its note.
    reserved = (MemoryLine("context at start-up", 0,
                           f"{nt / GIB:.2f} GiB (CUDA context + communication reserve) used before the budget "
                           "is taken"),
                MemoryLine(comm.name, 0, f"{comm.bytes / GIB:.2f} GiB before the budget; {comm.note}"))
    return kv_account(arch, precision, engine_label=f"sglang {settings.engine_version}",
                      gpu_memory_gib=gpu_memory_gib, tp=tp, pp=pp, settings=settings,
                      max_model_len=max_model_len, group_size=group_size, quant_format=quant_format,
                      budget_bytes=budget, fraction=frac, reserved=reserved,
                      profile_tokens=CHUNKED_PREFILL_SIZE, activation=0, non_torch=nt, graphs=0,
                      graphs_in_budget=True, tokens_override=lambda n: n, ep=ep, dp=dp,
                      comm_reserve=comm.bytes)


PROFILE = EngineProfile(
    engine="sglang", family="sglang", versions=("0.4.9",),
    memory_rules_source="SGLang 0.4.x: python/sglang/srt/model_executor/model_runner.py "
                        "profile_max_num_token; mem_fraction_static of server_args.py",
    defaults=DEFAULTS, efficiency_engine="sglang", memory_rule=serving_memory_sglang)
