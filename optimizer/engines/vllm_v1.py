"""vLLM V1 engine (every release since 0.8): KV = gpu_memory_utilization x device memory - weights
- activation peak of the profiling run - sampler warm-up - non-torch memory (- CUDA graphs from 0.21).

Read from:

* ``vllm/v1/worker/gpu_worker.py`` ``Worker.determine_available_memory`` (0.8.x source read in
  this session): ``available_kv_cache_memory = total_gpu_memory * gpu_memory_utilization -
  peak_memory``, ``peak_memory`` = torch's allocated peak of ``profile_run`` (weights + forward
  pass over ``max_num_batched_tokens`` + the dummy sampler run) plus non-torch allocations.
  ``compile_or_warm_up_model`` captures CUDA graphs **after** the KV cache (graphs outside the
  budget), until v0.21.0, whose log says "CUDA graph memory profiling is enabled (default since
  v0.21.0)" and subtracts the estimate ("Estimated CUDA graph memory: 0.52 GiB total",
  LMCache/LMCache#3430).
* ``profile_run`` ends with ``_dummy_sampler_run`` over ``min(max_num_seqs,
  max_num_batched_tokens)`` rows of logits (vllm-project/vllm#13594 moved V0's sampler into V1's
  profile; its H100 log shows the KV cache shrink from 2,039,760 to 1,980,832 tokens).
* Scheduler defaults (``EngineArgs._set_default_args_v1``, ``vllm serve`` usage context): on GPUs
  with >= 70 GiB ``max_num_batched_tokens`` 8192 and ``max_num_seqs`` 1024, else 2048 and 256
  (estimate: recalled from 0.8-0.10, not re-read in this session).

* ``vllm/utils`` ``memory_profiling`` (0.9-0.10 source read in this session):
  ``non_kv_cache_memory = weights_memory + torch_peak_increase + non_torch_increase``, where
  ``torch_peak_increase`` is the rise of ``allocated_bytes.all.peak`` over ``profile_run`` and
  ``non_torch_increase`` the rise of ``cuda_memory - memory_reserved`` from the worker's
  ``init_snapshot``; ``available = init_snapshot.total_memory x gpu_memory_utilization -
  non_kv_cache_memory``. In 0.9/0.10 ``init_device`` takes ``init_snapshot`` **before**
  ``init_worker_distributed_environment`` (later releases moved it after: "Initialize the
  distributed environment BEFORE taking memory snapshot"), so NCCL / custom all-reduce memory
  counts as non-torch: :func:`optimizer.sizing.memory.comm_reserve_terms` (NCCL communicators,
  custom all-reduce, from v0.11 the symmetric-memory buffer; its own line "communication
  reserve"), plus :data:`memory.NON_TORCH_BYTES_TP1` for cuBLAS and the rest (estimate; the CUDA
  context itself is in the snapshot). Releases that take the snapshot after distributed init
  keep the reserve in the ``1 - gpu_memory_utilization`` headroom instead; not modelled yet.

Sampler peak (read in this session; closes the former ~2.4 GiB/GPU gap of vllm-project/vllm#21348,
Qwen3-235B-A22B-FP8, 4 x H100, TP 4: 178,880 tokens logged, 233,360 before, 183,520 now, +2.6 %):

* ``profile_run`` (a 0.9-era V1 ``gpu_model_runner.py``, fake0fan/vllm fork, find_string id
  8221455114): ``hidden_states, last_hidden_states = self._dummy_run(self.max_num_tokens,
  is_profile=True)``, then ``self._dummy_sampler_run(last_hidden_states)``, then ``del
  hidden_states, output`` -- the forward's activations are freed before the sampler, the hidden
  states are not, so the torch peak is a max of the two phases, not a sum.
* ``_dummy_sampler_run`` passes top-k = vocab - 1 and top-p 0.9 (``all_greedy=False``), so
  ``apply_top_k_top_p`` (``vllm/v1/sample/ops/topk_topp_sampler.py``, 0.8-0.10) runs
  ``logits.sort(dim=-1)`` over the whole vocabulary on the PyTorch-native path.
* PyTorch ``aten/src/ATen/native/cuda/Sort.cpp`` ``sort_cuda_kernel`` -> ``SortStable.cu``
  ``launch_stable_sort_kernel``: > 2048 columns and >= 128 rows take ``segmented_sort_pairs``,
  which allocates ``numel x 8`` B of ``reverse_indices`` and calls cub
  ``DeviceSegmentedRadixSort::SortPairs``, whose temporary storage holds a third keys and a third
  values buffer (``DispatchSegmentedRadixSort::InvokePasses``, ``is_overwrite_okay`` false; cub
  as vendored in Tencent/TNN). Hence :data:`SAMPLER_BYTES_PER_LOGIT` = 38, not the 18 assumed
  before (which left out the sort's own temporaries).

Not settled: whether a given install used FlashInfer's sampler instead (0.9/0.10 use it when
``flashinfer`` is importable and ``VLLM_USE_FLASHINFER_SAMPLER`` is not 0; it does not sort, so its
peak is far lower). The #21348 log fits only the native path: with a FlashInfer-sized sampler the
account would leave ~12 GiB of KV against the 8.02 GiB logged. Later releases (Triton top-k/top-p
sampler) are not re-read; the rule applies the native figure to every V1 version.
"""

from __future__ import annotations

from optimizer.engines.base import LARGE_GPU_GIB, EngineDefaults, EngineProfile, kv_account
from optimizer.schema.engine import EngineSettings
from optimizer.sizing.architecture import ModelArch
from optimizer.sizing.memory import (
    NON_TORCH_BYTES_TP1,
    MemoryLine,
    ServingMemory,
    activation_peak_bytes,
    comm_reserve_line,
    cuda_graph_bytes,
)
from optimizer.units import GIB

#: Bytes per logit live at the peak of the dummy sampler run, PyTorch-native top-k/top-p path
#: (``apply_top_k_top_p`` sorts the whole vocabulary, the dummy request sets top-k and top-p):
#: the caller's bf16 logits (2) + ``Sampler.forward``'s fp32 copy (4) + ``logits.sort`` outputs,
#: fp32 values (4) and int64 indices (8) + inside the sort, ATen's int64 ``reverse_indices`` (8,
#: ``SortStable.cu`` ``segmented_sort_pairs``, taken for >= 128 rows) + cub's
#: ``DeviceSegmentedRadixSort::SortPairs`` temporary storage, a third key buffer (4) and a third
#: value buffer (8) (``is_overwrite_okay`` false). All through the caching allocator, so all in
#: ``torch_peak_increase``. Sources in the module docstring.
SAMPLER_BYTES_PER_LOGIT = 2 + 4 + 4 + 8 + 8 + 4 + 8
#: Bytes per element of the hidden states the profile run keeps alive while the sampler runs
#: (``profile_run`` deletes ``hidden_states`` only after ``_dummy_sampler_run``; 16-bit model).
HIDDEN_BYTES = 2
#: First release that subtracts the CUDA-graph estimate from the KV budget.
GRAPHS_IN_BUDGET_FROM = (0, 21)

DEFAULTS = EngineDefaults("vllm", max_num_seqs=256, kv_dtype="auto", kv_dtype_fp8_weights="auto",
                          kv_reserve_output_fraction=0.5, kv_memory_fraction=0.9)


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


def default_batched_tokens(gpu_memory_gib: float) -> int:
    """``max_num_batched_tokens`` default of ``vllm serve`` (chunked prefill always on in V1)."""
    return 8192 if gpu_memory_gib >= LARGE_GPU_GIB else 2048


def default_max_num_seqs(gpu_memory_gib: float) -> int:
    return 1024 if gpu_memory_gib >= LARGE_GPU_GIB else 256


def sampler_bytes(arch: ModelArch, rows: int) -> int:
    """Peak of the dummy sampler run: ``rows x vocab x`` :data:`SAMPLER_BYTES_PER_LOGIT`."""
    return rows * arch.vocab_size * SAMPLER_BYTES_PER_LOGIT


def sampler_above_forward(arch: ModelArch, tokens: int, rows: int, forward_peak: int) -> int:
    """What the sampler adds to ``torch_peak_increase`` over the forward pass: the profile's torch
    peak is ``max(forward peak, sampler peak + hidden states still held)``, not their sum (the
    forward's activations are freed before ``_dummy_sampler_run``; ``hidden_states`` of all
    ``tokens`` and the ``rows`` gathered for the logits are not)."""
    held = (tokens + rows) * arch.hidden_size * HIDDEN_BYTES
    return max(0, sampler_bytes(arch, rows) + held - forward_peak)


def serving_memory_v1(arch: ModelArch, precision: str, gpu_memory_gib: float, tp: int, pp: int,
                      settings: EngineSettings, max_model_len: int, group_size: int, quant_format: str,
                      non_torch: int | None, ep: int = 1, dp: int = 1) -> ServingMemory:
    """KV capacity under the V1 rule of the module docstring (worst pipeline stage binds); with
    ``ep``/``dp`` the MoE layout (docs/perf.md "MoE layouts"; the EP group spans ``tp x dp``)."""
    total = int(gpu_memory_gib * GIB)
    budget = int(total * settings.gpu_memory_utilization)
    tokens = settings.max_num_batched_tokens or default_batched_tokens(gpu_memory_gib)
    seqs = default_max_num_seqs(gpu_memory_gib)
    act = activation_peak_bytes(arch, tokens, tp, ep)
    rows = min(seqs, tokens)
    samp = sampler_above_forward(arch, tokens, rows, act)
    comm = comm_reserve_line("vllm", tp * dp, gpu_memory_gib=gpu_memory_gib,
                             engine_version=settings.engine_version, pp=pp)
    if non_torch is not None:  # an explicit non-torch figure stands for the reserve too
        comm = MemoryLine(comm.name, 0, "in the non-torch figure given")
    nt = NON_TORCH_BYTES_TP1 + comm.bytes if non_torch is None else non_torch
    graphs = cuda_graph_bytes(arch, pp) if settings.cuda_graphs else 0
    in_budget = _version(settings.engine_version) >= GRAPHS_IN_BUDGET_FROM
    reserved = [
        MemoryLine("activation peak", act, f"profile pass over {tokens:,} tokens"),
        MemoryLine("sampler warm-up", samp,
                   f"{rows:,} rows x {arch.vocab_size:,} logits x {SAMPLER_BYTES_PER_LOGIT} B at the sort "
                   f"({sampler_bytes(arch, rows) / GIB:.2f} GiB), less the forward peak it follows"),
        MemoryLine("non-torch", nt - comm.bytes, "cuBLAS and other"),
        comm,
    ]
    if in_budget:
        reserved.append(MemoryLine("CUDA graphs", graphs, "estimate; profiled into the budget from v0.21"))
    return kv_account(arch, precision, engine_label=f"vllm {settings.engine_version} (V1)",
                      gpu_memory_gib=gpu_memory_gib, tp=tp, pp=pp, settings=settings,
                      max_model_len=max_model_len, group_size=group_size, quant_format=quant_format,
                      budget_bytes=budget, fraction=settings.gpu_memory_utilization,
                      reserved=tuple(reserved), profile_tokens=tokens, activation=act, non_torch=nt,
                      graphs=graphs, graphs_in_budget=in_budget, ep=ep, dp=dp, comm_reserve=comm.bytes)


PROFILE = EngineProfile(
    engine="vllm", family="v1", versions=("0.10.0", "0.8.5", "0.9.2", "0.11.0", "0.21.0"),
    memory_rules_source="vLLM V1 engine (0.8+): vllm/v1/worker/gpu_worker.py determine_available_memory "
                        "(read at 0.8.x); CUDA graphs in the budget from v0.21.0",
    defaults=DEFAULTS, efficiency_engine="vllm", memory_rule=serving_memory_v1)
