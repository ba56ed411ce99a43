"""Throughput and latency of one serving replica: a roofline step-time model with fitted efficiencies.

Units: seconds inside the model (``_s``), milliseconds at the API (``_ms``), bytes, FLOPs.

The model (details and derivations in ``docs/perf.md``)
=======================================================

A replica is ``tp x pp`` GPUs serving one model with continuous ("in-flight") batching (``tp x pp x
dp`` for a MoE model with attention data parallel; expert parallel and DP: docs/perf.md "MoE layouts"). Every
engine iteration runs ``b`` decode tokens (one per running sequence) and ``p`` prefill tokens of
newly admitted prompts in one forward pass, as vLLM's chunked prefill and TensorRT-LLM's in-flight
batching do (Agrawal et al., "Sarathi-Serve", OSDI 2024; TensorRT-LLM docs "In-flight batching").

**Per pipeline stage and GPU** (roofline per kernel class, Williams et al., CACM 2009; applied to
LLM layers as in Yuan et al., "LLM Inference Unveiled: Survey and Roofline Model Insights" /
LLM-Viewer, arXiv:2402.16363)::

    T_linear = max( W_read(m) / (BW * e_bw),  F_lin * m / (C_w * e_c) )          m = b + p
    T_attn   = max( b * Lc * kv_tok / (BW * e_bw),  b * Lc * f_att / (C_16 * e_c) )
             + p * (I / 2) * f_att / (C_16 * e_c)                       causal prefill attention
    T_comm   = 2 * layers * ( alpha_t + 2 (t-1)/t * m * h * 2 B / busBW_t )        if t > 1
    T_stage  = T_linear + T_attn + T_comm + layers * t_layer

* ``W_read(m)``: weight bytes one GPU streams per iteration = its share of every matrix except
  the input-embedding table (a row lookup). For MoE the routed experts count only as far as the
  ``m`` tokens touch them: expected distinct experts per layer ``E (1 - (1 - k/E)^m)`` (each token
  picks k of E; independent uniform routing assumed).
* ``F_lin = 2 x (active params - embedding) / (tp x pp)``: two FLOPs per multiply-add
  (Kaplan et al. 2020, arXiv:2001.08361 §2.1), at ``C_w`` = the tensor-core peak of the weight
  precision (``GPU.compute_tflops``).
* ``kv_tok``: KV bytes per token and GPU of the stage (``memory.kv_bytes_per_token_per_gpu``);
  ``Lc`` = mean context a decode token attends to (sliding windows capped,
  ``architecture.kv_tokens_held``); ``f_att = 4 x layers x heads x head_dim / tp`` FLOPs per
  (query, key) pair (QK^T and PV, 2 FLOPs per MAC each), at the 16-bit peak ``C_16``.
* ``T_comm``: Megatron-style TP needs two all-reduces per layer of the ``m x h`` activations
  (Shoeybi et al., arXiv:1909.08053 §3). Each is timed as it is measured on the GPU's
  interconnect (:mod:`optimizer.sizing.comm`, ``catalogs/calibration/comm.yaml``): latency
  ``alpha_t`` plus the ``2 (t-1)/t`` ring volume at the measured bus bandwidth ``busBW_t``
  (nccl-tests PERFORMANCE.md), both fitted per interconnect and TP size to NVIDIA AIConfigurator's
  NCCL / TensorRT-LLM all-reduce tables. Measured, PCIe is far below its link rate: L40S TP4
  reaches ~5 GB/s busBW on a 32 GB/s link, H100 NVLink ~275-320 GB/s of 450.

**Iteration and pipeline**: with ``pp`` stages the running batch is split into ``pp``
micro-batches that chase each other through the stages (vLLM/TRT-LLM virtual engines). Stage
``s`` cannot start micro-batch ``j``'s next step before ``j`` has left the last stage and been
sampled, so one decode step of every sequence takes::

    TPOT = pp * T_stage(B/pp, P/pp) + (pp - 1) * T_p2p + overhead

the ``(pp-1) T_p2p + overhead`` part being the pipeline bubble that no micro-batch fills
(GPipe's bubble, Huang et al. 2019, in its continuous-batching form; ``T_p2p`` the measured
point-to-point time of ``comm.p2p_s``). ``overhead`` is the fixed
per-iteration runtime cost (scheduling, sampling, launches) and ``t_layer`` a fixed cost per layer
and iteration (the non-GEMM kernels of a layer: norms, RoPE, activation quantisation, KV-cache
writes, and the gaps between kernels), both fitted. Without ``t_layer`` the fit over-predicts
Llama-3.3-70B (80 layers) and under-predicts Llama-3.1-8B (32 layers) on the same GPUs by 15-23%.

**Steady state**: with ``B`` sequences decoding and outputs of ``O`` tokens (the first from the
prefill, TensorRT-LLM and vLLM both count it), ``B / (O - 1)`` requests finish per step, so
``P = B x I / (O - 1)`` prompt tokens are prefilled per step. Throughput ``= B O / ((O-1) TPOT)``
output tokens/s and ``lambda = B / ((O-1) TPOT)`` requests/s (Little's law: ``B = lambda (O-1) TPOT``).

**Batch limits**: ``B <= max_num_seqs``; KV capacity
``B <= kv_cache_tokens / (I + r O)``: TensorRT-LLM's default ``GUARANTEED_NO_EVICT`` capacity
scheduler admits a request only when the blocks for its whole ``I + O`` are free (``r = 1``;
trtllm-bench sizes ``max_batch_size`` the same way, ``tensorrt_llm/bench/build/tuning.py``
``calc_engine_setting``: ``cache_memory / (bytes_per_token x (isl + osl))``); vLLM allocates
blocks on demand and preempts when they run out (Kwon et al., SOSP 2023), so on average a running
sequence holds ``I + O/2`` tokens (``r = 0.5``). ``r`` is an engine constant in :class:`Efficiency`.
TPOT target: the largest ``B`` whose TPOT meets it (TPOT grows with B).

**TTFT**: prompts join a FIFO queue served by the prefill work of the iterations; all prompts of
a workload have the same length, so service is deterministic: an **M/D/1** queue
(Poisson arrivals). With ``S`` = time to prefill one prompt alone, ``rho = lambda S_busy`` where
``S_busy`` is the prompt's marginal GPU time in a batch (its FLOPs and all-reduces; weights are
streamed for the batch anyway, :func:`prefill_work_s`), the Pollaczek-Khinchine mean wait is
``W_q = rho S / (2 (1 - rho))``, and
``TTFT = W_q + S + TPOT(B)`` (the iteration that carries the prompt also carries the batch's decode
tokens). It is evaluated at the planned load ``lambda = utilization x capacity``; when it misses
the target, capacity is lowered until it meets it.

**Tails** (docs/perf.md "Tail latency", :mod:`optimizer.sizing.queueing`): p90/p99 TTFT is
``S + W_p + TPOT(B)`` with ``P(W > 0) = rho`` and ``W | W > 0`` a gamma fitted to the M/G/1 wait's
first two moments (Pollaczek-Khinchine, Takacs); p90/p99 TPOT is the step time at the p-quantile
of the decoding batch, Poisson with mean ``B(lambda)`` (M/G/inf occupancy) capped at the batch
limit. Tail targets lower the rate like the mean ones. **Shared prefixes** (:func:`prefix_work`):
a cached prefix of ``P`` tokens hit with probability ``h`` leaves ``I - h P`` tokens to prefill
and is held once in the KV cache. **Length mixes** (:func:`replica_perf_mix_many`): one decode
batch at the residence-weighted mean context and one M/G/1 prefill queue with the mix's service
times, every bucket meeting the targets (docs/perf.md "Length mixes").

**Efficiency factors** (``e_c``, ``e_bw``, ``overhead``, ``t_layer``) are fitted per GPU family and engine on
published benchmarks (:mod:`optimizer.sizing.calibration`, ``catalogs/calibration/``); the
communication terms are not efficiencies but measured collective times
(:mod:`~optimizer.sizing.comm`). Measured points for an exact (model, GPU, TP, precision)
rescale the model's time for that deployment (``source="measured"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from operator import attrgetter
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from optimizer.errors import UsageError
from optimizer.schema.catalog import GPU
from optimizer.sizing import comm as _comm
from optimizer.sizing import queueing as _queueing
from optimizer.sizing.architecture import ModelArch, ceil_div, kv_tokens_held, param_counts
from optimizer.sizing.memory import (
    KV_BYTES,
    WEIGHT_BYTES,
    kv_bytes_per_token_per_gpu,
    pp_layer_ranges,
    stage_weight_bytes,
)

#: Activation bytes moved by TP all-reduces and PP sends (16-bit activations in every engine here).
ACT_BYTES = 2
#: Default chunked-prefill token budget per iteration (vLLM ``max_num_batched_tokens`` with
#: chunked prefill; TensorRT-LLM ``max_num_tokens`` default 8192, ``llm_args.py``).
DEFAULT_PREFILL_CHUNK_TOKENS = 8192

LimitedBy = Literal["kv", "tpot", "ttft", "max_num_seqs"]


@dataclass(frozen=True)
class MeasuredPoint:
    """One measured result for an exact deployment (from ``procure calibrate``).

    ``output_tokens_per_s`` is for the whole replica (all its GPUs). ``ttft_ms``/``tpot_ms`` are
    kept for reference when the source gave them.
    """

    model: str
    gpu: str
    tp: int
    precision: str
    input_tokens: int
    output_tokens: int
    output_tokens_per_s: float
    pp: int = 1
    kv_dtype: str = "auto"
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    source: str = ""

    def matches(self, model: str, gpu: str, tp: int, pp: int, precision: str) -> bool:
        return (self.model.lower() == model.lower() and self.gpu.lower() == gpu.lower()
                and self.tp == tp and self.pp == pp and self.precision == precision)


@dataclass(frozen=True)
class Efficiency:
    """Fractions of datasheet peaks an engine reaches on one GPU family (one small set per
    family and engine; fitted in ``catalogs/calibration/<engine>-v<version>.yaml``).

    * ``compute``: achieved / peak tensor FLOPs for large matrix products and attention (an MFU);
    * ``memory_bw``: achieved / peak HBM bandwidth while streaming weights and KV in decode;
    * ``step_overhead_ms``: fixed cost of one engine iteration (scheduling, sampling, launches);
    * ``layer_overhead_us``: fixed cost per layer and iteration (non-GEMM kernels, launch gaps);
    * communication is not a factor here: all-reduce and p2p times are measured per
      interconnect (:mod:`optimizer.sizing.comm`); calibration files that still carry the old
      ``comm_efficiency`` / ``allreduce_latency_us`` keys load, the keys are ignored;
    * ``kv_reserve_output_fraction`` ``r``: KV tokens a running sequence holds are ``I + r O``
      (1.0 TensorRT-LLM GUARANTEED_NO_EVICT, 0.5 vLLM on-demand paging; see the module doc);
    * ``prefill_chunk_tokens``: prompt tokens per iteration (chunked prefill budget).

    Provenance of the factors (reported as ``efficiency.source`` by ``procure perf``):

    * ``provenance``: ``"fitted"`` when this family and engine have calibration rows, else
      ``"transferred"`` (borrowed from ``transferred_from``, e.g. ``"Hopper/trtllm"``); a replica
      whose exact deployment has a measured point reports ``measured`` (:class:`ReplicaPerf`);
    * ``citation``: where the factors come from (file, rows, source documents);
    * ``band_log_sd``: standard deviation of ``log(measured / predicted)`` capacity for this
      family and engine, from leave-one-source-out validation (wider for transferred factors);
      the p10/p90 band is ``point x exp(-/+ 1.2816 band_log_sd)`` and a plan at confidence ``c``
      uses ``point x exp(-z_c band_log_sd)`` (:func:`optimizer.sizing.uncertainty.quantile_factor`).
    """

    compute: float
    memory_bw: float
    step_overhead_ms: float
    layer_overhead_us: float = 0.0
    kv_reserve_output_fraction: float = 1.0
    prefill_chunk_tokens: int = DEFAULT_PREFILL_CHUNK_TOKENS
    family: str = "Hopper"
    engine: str = "trtllm"
    citation: str = "estimate (docs/perf.md)"
    provenance: Literal["fitted", "transferred"] = "fitted"
    transferred_from: str = ""
    band_log_sd: float = 0.0
    measured: tuple[MeasuredPoint, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        for name in ("compute", "memory_bw"):
            v = getattr(self, name)
            if not 0 < v <= 1:
                raise UsageError(f"efficiency {name} must be in (0, 1], got {v}", field=name)
        if self.step_overhead_ms < 0 or self.layer_overhead_us < 0:
            raise UsageError("efficiency overheads must be >= 0", field="step_overhead_ms")
        if not 0 <= self.band_log_sd <= 3 or not math.isfinite(self.band_log_sd):
            raise UsageError(f"efficiency band_log_sd must be in [0, 3], got {self.band_log_sd}",
                             field="band_log_sd")
        if not 0 <= self.kv_reserve_output_fraction <= 1:
            raise UsageError("kv_reserve_output_fraction must be in [0, 1]",
                             field="kv_reserve_output_fraction")


@dataclass(frozen=True)
class ReplicaPerf:
    """Performance of one replica for one workload shape.

    ``output_tokens_per_s``: offline maximum (largest batch the KV cache and ``max_num_seqs``
    allow, no latency target). ``requests_per_s``: capacity under the SLO (0 when it cannot be
    met); the replica is planned at ``utilization x requests_per_s``, where ``ttft_ms`` and
    ``tpot_ms`` are evaluated (the best achievable values when the SLO cannot be met).
    """

    output_tokens_per_s: float
    batch: int
    ttft_ms: float
    tpot_ms: float
    requests_per_s: float
    slo_batch: int
    limited_by: LimitedBy
    source: Literal["model", "measured"] = "model"
    offline_tpot_ms: float = 0.0
    prefill_ms: float = 0.0
    kv_batch_limit: int = 0
    utilization: float = 0.8
    measured_scale: float = 1.0
    #: Tails at the operating point (docs/perf.md "Tail latency"): TTFT p-quantile
    #: ``S + W_p + TPOT(B)`` (M/G/1 wait, gamma fit), TPOT at the Poisson p-quantile batch.
    ttft_p90_ms: float = 0.0
    ttft_p99_ms: float = 0.0
    tpot_p90_ms: float = 0.0
    tpot_p99_ms: float = 0.0


@dataclass(frozen=True)
class TailTargets:
    """p90/p99 latency targets of a workload, ms (None: no target of that kind)."""

    ttft_p90_ms: float | None = None
    ttft_p99_ms: float | None = None
    tpot_p90_ms: float | None = None
    tpot_p99_ms: float | None = None

    def __post_init__(self) -> None:
        for name in ("ttft_p90_ms", "ttft_p99_ms", "tpot_p90_ms", "tpot_p99_ms"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise UsageError(f"{name} must be a positive number of ms, got {v}", field=name)

    def ttft(self) -> list[tuple[float, float]]:
        """(quantile, target ms) of the TTFT tail targets, p90 first."""
        return [(p, v) for p, v in ((0.9, self.ttft_p90_ms), (0.99, self.ttft_p99_ms)) if v is not None]

    def tpot(self) -> list[tuple[float, float]]:
        """(quantile, target ms) of the TPOT tail targets, p90 first."""
        return [(p, v) for p, v in ((0.9, self.tpot_p90_ms), (0.99, self.tpot_p99_ms)) if v is not None]


# ------------------------------------------------------------------------------------------
# Per-deployment constants
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepModel:
    """Per-GPU quantities of the worst pipeline stage of one deployment (see the module doc)."""

    tp: int
    pp: int
    layers: int                  # layers in the stage
    dense_bytes: float           # weights streamed every iteration (all but routed experts)
    expert_bytes: float          # bytes of ONE routed expert in ONE layer, per GPU
    moe_layers: int              # MoE layers in the stage
    num_experts: int
    experts_per_token: int
    flops_per_token: float       # linear FLOPs per token per GPU (stage)
    kv_bytes_per_token: float    # KV bytes per context token per GPU (stage)
    attn_flops_per_pair: float   # attention FLOPs per (query, key) pair per GPU (stage)
    hidden: int
    peak_flops: float            # weight-precision tensor peak, FLOP/s
    peak_flops_16: float         # 16-bit tensor peak (attention), FLOP/s
    bandwidth: float             # HBM bytes/s
    link_bandwidth: float        # GPU-to-GPU bytes/s (unidirectional)
    # MoE layouts (docs/perf.md "MoE layouts"); the defaults are the TP-only layout.
    ep: int = 1                  # expert-parallel size: 1, or tp x dp (routed experts whole, E/ep per GPU)
    dp: int = 1                  # attention data-parallel ranks (tp GPUs each)
    expert_flops_per_token: float = 0.0  # routed-expert FLOPs per token of the replica, per GPU (ep > 1)
    a2a_layers: int = 0          # MoE layers whose expert all-reduce is an all-to-all dispatch + combine
    a2a_latency_s: float = 0.0   # all-to-all alpha over ep ranks (comm.coefficients of the GPU's profile)
    a2a_bus_bw: float = 1.0      # all-to-all busBW over ep ranks, bytes/s
    # Measured TP all-reduce over tp ranks and stage-to-stage send (comm.comm_profile of the GPU)
    ar_latency_s: float = 0.0    # all-reduce alpha_t
    ar_bus_bw: float = 1.0       # all-reduce busBW_t, bytes/s
    p2p_latency_s: float = 0.0   # p2p alpha
    p2p_bw: float = 1.0          # p2p bandwidth, bytes/s

    def experts_touched(self, tokens: float) -> float:
        """Expected distinct routed experts per MoE layer, among the ``E / ep`` this GPU holds,
        hit by ``tokens`` tokens: ``(E / ep) (1 - (1 - k/E)^tokens)`` (each token routes to k of E
        experts, uniformly, so a given expert is missed with probability ``1 - k/E``)."""
        if not self.num_experts:
            return 0.0
        e, k = self.num_experts, self.experts_per_token
        return (e / self.ep) * (1.0 - (1.0 - k / e) ** max(tokens, 0.0))


def step_model(arch: ModelArch, gpu: GPU, *, tp: int, pp: int = 1, precision: str,
               kv_dtype: str = "auto", ep: int = 1, dp: int = 1) -> StepModel:
    """Build the :class:`StepModel` of ``arch`` on ``tp x pp`` ``gpu``s at ``precision``.

    Streamed bytes = ``memory.stage_weight_bytes`` of the heaviest stage minus the input
    embedding on the first stage (a lookup of ``m`` rows, not a stream; a tied lm_head is read
    as the head); routed experts are split off so :meth:`StepModel.experts_touched` can scale
    them. FLOPs use ``param_counts(arch).active`` less the embedding (lm_head included).

    Cached: the result depends only on ``arch`` (a frozen, hashable dataclass), ``tp``, ``pp``,
    ``precision``, ``kv_dtype`` and the four GPU figures it reads (tensor peak at ``precision``
    and at bf16, HBM and link bandwidth), which form the key (a table per architecture,
    :func:`_step_table`, so a batch hashes the architecture once); a :class:`StepModel` is
    frozen, so sharing one between callers is safe. A planning run asks for the same (model,
    GPU, layout) once per workload of that model.

    ``ep``/``dp`` (MoE layouts, docs/perf.md "MoE layouts"): with ``ep = tp x dp`` each GPU holds
    ``E / ep`` whole routed experts (their FLOPs split ``ep`` ways, the rest of the layer's
    over the ``tp`` GPUs of its DP rank, for that rank's tokens), and the MoE layers exchange
    tokens by all-to-all (``comm.coefficients`` of the GPU's measured all-to-all over ``ep``
    ranks, :func:`moe_comm_s`).
    """
    _check_step_args(tp, pp, precision, kv_dtype, ep, dp)
    return _cached_step_model(_step_table(arch), arch, gpu, tp, pp, precision, kv_dtype, ep, dp)


def _check_step_args(tp: int, pp: int, precision: str, kv_dtype: str, ep: int = 1, dp: int = 1) -> None:
    if tp < 1 or pp < 1:
        raise UsageError("tp and pp must be >= 1", field="tp")
    if dp < 1 or (dp > 1 and ep != tp * dp) or ep not in (1, tp * dp):
        raise UsageError(f"ep must be 1 or tp x dp (= {tp * dp}), and dp > 1 needs ep = tp x dp; got "
                         f"ep {ep}, dp {dp}", field="ep")
    if precision not in WEIGHT_BYTES:
        raise UsageError(f"unknown precision {precision!r}", field="precision",
                         hint=f"use one of {', '.join(WEIGHT_BYTES)}")
    if kv_dtype not in KV_BYTES:
        raise UsageError(f"unknown KV dtype {kv_dtype!r}", field="kv_dtype",
                         hint=f"use one of {', '.join(KV_BYTES)}")


StepKey = tuple[int, int, str, str, float, float, float, float, int, int, float, float,
                float, float, float, float]


@lru_cache(maxsize=256)
def _step_table(arch: ModelArch) -> dict[StepKey, StepModel]:
    """The :func:`step_model` cache of one architecture (keyed by :data:`StepKey`: layout,
    precision, KV dtype and the GPU figures read)."""
    return {}


def _cached_step_model(table: dict[StepKey, StepModel], arch: ModelArch, gpu: GPU, tp: int, pp: int,
                       precision: str, kv_dtype: str, ep: int = 1, dp: int = 1) -> StepModel:
    # measured all-reduce over tp ranks, all-to-all over ep ranks and p2p of the GPU's
    # interconnect (sizing.comm); the coefficients are in the key, so two GPUs of one profile
    # share entries
    prof = _comm.comm_profile(gpu)
    ar_alpha, ar_bus = _comm.coefficients(prof.allreduce, tp) if tp > 1 else (0.0, 1.0)
    a2a_alpha, a2a_bus = _comm.coefficients(prof.alltoall, ep) if ep > 1 else (0.0, 1.0)
    key = (tp, pp, precision, kv_dtype, gpu.compute_tflops(precision), gpu.compute_tflops("bf16"),
           gpu.memory_bandwidth_gb_s, gpu.interconnect.bandwidth_gb_s, ep, dp, a2a_alpha, a2a_bus,
           ar_alpha, ar_bus, prof.p2p.latency_s, prof.p2p.bus_bw)
    sm = table.get(key)
    if sm is None:
        sm = table[key] = _step_model_cached(arch, *key)
    return sm


#: ``param_counts`` per model, memoised (a pure function of the frozen ``ModelArch``).
_param_counts = lru_cache(maxsize=1024)(param_counts)


def _step_model_cached(arch: ModelArch, tp: int, pp: int, precision: str, kv_dtype: str,
                       tflops: float, tflops_16: float, bandwidth_gb_s: float,
                       link_gb_s: float, ep: int = 1, dp: int = 1, a2a_alpha: float = 0.0,
                       a2a_bus: float = 1.0, ar_alpha: float = 0.0, ar_bus: float = 1.0,
                       p2p_alpha: float = 0.0, p2p_bw: float = 1.0) -> StepModel:
    """:func:`step_model` on the GPU figures it reads (uncached)."""
    counts = _param_counts(arch)
    stages = stage_weight_bytes(arch, precision, tp, pp, ep=ep)
    worst = max(range(pp), key=lambda s: stages[s])
    ranges = pp_layer_ranges(arch.num_layers, pp)
    layers = max(1, len(ranges[worst]))
    moe_set = set(arch.moe_layer_indices)
    moe_layers = sum(1 for i in ranges[worst] if i in moe_set)
    emb_b = 4 if precision == "fp32" else 2
    embed = ceil_div(arch.vocab_size, tp) * arch.hidden_size * emb_b
    streamed = float(stages[worst])
    if worst == 0 and not (arch.tie_word_embeddings and pp == 1):
        streamed -= embed
    expert_bytes = 0.0
    per_expert = 3 * arch.hidden_size * arch.moe_intermediate_size  # gate, up, down
    if arch.is_moe and arch.num_moe_layers:
        # one routed expert of one layer on one GPU: a 1/tp shard (TP), or whole (EP)
        expert_bytes = per_expert * WEIGHT_BYTES[precision] / (tp if ep == 1 else 1)
        streamed -= moe_layers * (arch.num_experts // ep) * expert_bytes
    stage_share = layers / arch.num_layers
    linear_active = counts.active - counts.embedding - (counts.lm_head or 0)
    head = counts.lm_head or (counts.embedding if arch.tie_word_embeddings else 0)
    flops_tok = 2.0 * (linear_active * stage_share + head / pp) / tp
    expert_flops = 0.0
    if ep > 1:
        # routed experts: k experts per token and MoE layer of the stage, spread over ep GPUs; the
        # rest (attention, dense MLPs, shared experts, head) per DP rank's tokens over its tp GPUs
        routed = arch.experts_per_token * per_expert * moe_layers
        expert_flops = 2.0 * routed / ep
        flops_tok = 2.0 * (linear_active * stage_share - routed + head / pp) / tp
    # Per head and context token: QK^T over the key width + PV over the value width (2 FLOPs/MAC
    # applied below). MLA in absorbed decode form: keys are the latent + rope part, values the
    # latent (DeepSeek-V2, arXiv:2405.04434 §2.1.3).
    per_head = (2 * arch.kv_lora_rank + arch.qk_rope_head_dim) if arch.is_mla else 2 * arch.head_dim
    attn = 2.0 * layers * arch.num_attention_heads * per_head / tp
    return StepModel(
        tp=tp, pp=pp, layers=layers, dense_bytes=max(streamed, 0.0), expert_bytes=expert_bytes,
        moe_layers=moe_layers, num_experts=arch.num_experts, experts_per_token=arch.experts_per_token,
        flops_per_token=flops_tok,
        kv_bytes_per_token=float(kv_bytes_per_token_per_gpu(arch, kv_dtype, tp, pp)),
        attn_flops_per_pair=attn, hidden=arch.hidden_size,
        peak_flops=tflops * 1e12,
        peak_flops_16=tflops_16 * 1e12,
        bandwidth=bandwidth_gb_s * 1e9,
        link_bandwidth=link_gb_s * 1e9,
        ep=ep, dp=dp, expert_flops_per_token=expert_flops,
        a2a_layers=moe_layers if ep > 1 else 0, a2a_latency_s=a2a_alpha, a2a_bus_bw=a2a_bus,
        ar_latency_s=ar_alpha, ar_bus_bw=ar_bus, p2p_latency_s=p2p_alpha, p2p_bw=p2p_bw,
    )


def moe_comm_s(sm: StepModel, tokens_per_rank: float) -> float:
    """Expert-parallel token exchange of one stage for one iteration: per MoE layer one dispatch
    and one combine all-to-all over the ``ep`` GPUs, each GPU sending its
    ``tokens_per_rank / tp`` tokens' ``k`` routed copies of ``h`` activations
    (:func:`moe_alltoall_bytes`), timed by ``comm.alltoall_s``'s alpha-beta form on the GPU's
    measured all-to-all (DeepSeek-V3, arXiv:2412.19437 §3.2.2 / §3.4: dispatch and combine
    all-to-all; 0 without EP)."""
    if sm.ep == 1 or not sm.a2a_layers:
        return 0.0
    nbytes = moe_alltoall_bytes(tokens_per_rank / sm.tp, sm.experts_per_token, sm.hidden)
    return 2.0 * sm.a2a_layers * _comm.alltoall_form_s(sm.a2a_latency_s, sm.a2a_bus_bw, nbytes, sm.ep)


def moe_alltoall_bytes(tokens: float, experts_per_token: int, hidden: int) -> float:
    """Bytes one GPU sends in one dispatch (or combine) all-to-all: ``tokens x k x h x 2 B``
    (each token goes once to each of its ``k`` experts, 16-bit activations)."""
    return tokens * experts_per_token * hidden * ACT_BYTES


def _allreduce_share(sm: StepModel) -> float:
    """Share of the TP layout's ``2 x layers`` all-reduces left with EP: a MoE layer keeps one
    (the attention output's reduce-scatter before dispatch plus the all-gather after combine
    move as much as one all-reduce), its expert all-reduce becoming the all-to-all pair. 1.0
    exactly without EP."""
    return (2 * sm.layers - sm.a2a_layers) / (2 * sm.layers)


def allreduce_s(sm: StepModel, tokens: float) -> float:
    """TP communication of one stage for one iteration of ``tokens`` tokens:
    ``2 x layers x (alpha_t + 2 (t-1)/t x tokens x h x 2 B / busBW_t)``, 0 when t = 1
    (Megatron-LM: two all-reduces per layer), timed by :func:`optimizer.sizing.comm.ring_allreduce_s`
    on the GPU's measured all-reduce over ``t`` ranks (measured, so no efficiency factor)."""
    if sm.tp == 1:
        return 0.0
    one = _comm.ring_allreduce_s(sm.ar_latency_s, sm.ar_bus_bw, tokens * sm.hidden * ACT_BYTES, sm.tp)
    return 2.0 * sm.layers * one


def stage_time_s(sm: StepModel, eff: Efficiency, *, decode: float, prefill: float,
                 context: float, prompt: float, spread: float | None = None) -> float:
    """One stage's time for an iteration with ``decode`` decode tokens at mean ``context`` and
    ``prefill`` prompt tokens of prompts ``prompt`` long (see the module doc for the equation).

    ``decode``/``prefill`` are the replica's tokens; with attention DP they are spread evenly
    over ``spread`` DP ranks (default ``sm.dp``; 1 = all on one rank, a prompt prefilled alone):
    attention, dense weights' FLOPs and the TP all-reduces see a rank's share, the routed
    experts every token of the replica."""
    ranks = float(sm.dp) if spread is None else spread
    bw = sm.bandwidth * eff.memory_bw
    c_w = sm.peak_flops * eff.compute
    c_16 = sm.peak_flops_16 * eff.compute
    m = decode + prefill
    m_rank = m / ranks
    weights = sm.dense_bytes + sm.moe_layers * sm.experts_touched(m) * sm.expert_bytes
    t_linear = max(weights / bw, (sm.flops_per_token * m_rank + sm.expert_flops_per_token * m) / c_w)
    decode, prefill = decode / ranks, prefill / ranks
    pairs = decode * context
    t_attn = max((pairs + prefill) * sm.kv_bytes_per_token / bw, pairs * sm.attn_flops_per_pair / c_16)
    t_attn += prefill * (prompt / 2.0) * sm.attn_flops_per_pair / c_16
    comm = allreduce_s(sm, m_rank) * _allreduce_share(sm) + moe_comm_s(sm, m_rank)
    return t_linear + t_attn + comm + sm.layers * eff.layer_overhead_us * 1e-6


def p2p_s(sm: StepModel, tokens: float) -> float:
    """Send of ``tokens x h x 2 B`` activations between pipeline stages: the GPU's measured
    point-to-point ``alpha + S / BW`` (:func:`optimizer.sizing.comm.send_s`)."""
    if sm.pp == 1:
        return 0.0
    return _comm.send_s(sm.p2p_latency_s, sm.p2p_bw, tokens * sm.hidden * ACT_BYTES)


def decode_step_s(sm: StepModel, eff: Efficiency, batch: float, input_tokens: int,
                  output_tokens: int) -> float:
    """TPOT at steady state with ``batch`` sequences decoding (prefill of newcomers interleaved):
    ``pp T_stage(B/pp, P/pp) + (pp-1) T_p2p + overhead`` with ``P = B I / (O - 1)`` and mean
    context ``I + O/2`` (sliding windows applied by the caller through ``context``)."""
    steps = max(output_tokens - 1, 1)
    prefill = batch * input_tokens / steps
    mb_decode, mb_prefill = batch / sm.pp, prefill / sm.pp
    context = input_tokens + output_tokens / 2.0
    t = sm.pp * stage_time_s(sm, eff, decode=mb_decode, prefill=mb_prefill, context=context,
                             prompt=input_tokens)
    t += (sm.pp - 1) * p2p_s(sm, mb_decode + mb_prefill)
    return t + eff.step_overhead_ms * 1e-3


def prefill_s(sm: StepModel, eff: Efficiency, input_tokens: int) -> float:
    """Time to prefill one prompt alone: ``n = ceil(I / chunk)`` iterations of ``I/n`` tokens,
    each ``pp T_stage(0, I/n) + (pp-1) T_p2p + overhead`` (causal attention over the prompt)."""
    n = max(1, ceil_div(input_tokens, eff.prefill_chunk_tokens))
    chunk = input_tokens / n
    one = sm.pp * stage_time_s(sm, eff, decode=0.0, prefill=chunk, context=0.0, prompt=input_tokens,
                               spread=1.0)
    one += (sm.pp - 1) * p2p_s(sm, chunk) + eff.step_overhead_ms * 1e-3
    return n * one


def prefill_work_s(sm: StepModel, eff: Efficiency, input_tokens: int) -> float:
    """GPU time one prompt's prefill takes inside batched iterations (per stage): its FLOPs
    ``F_lin I / (C_w e_c) + I (I/2) f_att / (C_16 e_c)`` plus its all-reduces; the weights are
    streamed for the whole batch anyway, so they are not charged to the prompt. This is the
    prompt's share of the server's busy time (the ``rho`` of the TTFT queue). With attention DP
    the prompts are shared by ``dp`` ranks, so a prompt's attention-side work counts ``1/dp``
    (each rank's queue sees ``1/dp`` of the arrivals); the routed experts serve every rank."""
    c_w = sm.peak_flops * eff.compute
    c_16 = sm.peak_flops_16 * eff.compute
    tokens = input_tokens / sm.dp
    flops = (sm.flops_per_token * tokens + sm.expert_flops_per_token * input_tokens) / c_w
    attn = tokens * (input_tokens / 2.0) * sm.attn_flops_per_pair / c_16
    return flops + attn + allreduce_s(sm, tokens) * _allreduce_share(sm) + moe_comm_s(sm, tokens)


def md1_wait_s(rate: float, service_s: float, busy_s: float | None = None) -> float:
    """Mean wait in an M/D/1 queue (Pollaczek-Khinchine, deterministic service):
    ``W_q = rho S / (2 (1 - rho))`` with ``rho = rate x busy`` (``busy`` = ``S`` in the textbook
    queue; with batching, the prompt's marginal GPU time :func:`prefill_work_s`, since a prompt
    alone also streams weights that a batch shares); infinite when ``rho >= 1``."""
    rho = rate * (service_s if busy_s is None else busy_s)
    if rho >= 1.0:
        return math.inf
    return rho * service_s / (2.0 * (1.0 - rho))


# ------------------------------------------------------------------------------------------
# Efficiency loading
# ------------------------------------------------------------------------------------------


def load_efficiency(gpu: GPU, engine: str = "trtllm", calibration_path: Path | None = None) -> Efficiency:
    """Efficiency factors for ``gpu``'s family (``GPU.architecture``) and ``engine``.

    Reads ``calibration_path`` (a file from ``procure calibrate``) when given, falling back for
    families it lacks to the shipped ``catalogs/calibration/<engine>-v*.yaml``; a family with no
    fit takes the file's ``default_family`` factors (stated in ``source``). See
    :func:`optimizer.sizing.calibration.load_calibration`.
    """
    from optimizer.sizing.calibration import efficiency_for

    return efficiency_for(gpu, engine=engine, calibration_path=calibration_path)


# ------------------------------------------------------------------------------------------
# Replica performance
# ------------------------------------------------------------------------------------------


def _match_measured(points: tuple[MeasuredPoint, ...], model: str, gpu: str, tp: int, pp: int,
                    precision: str, input_tokens: int, output_tokens: int) -> MeasuredPoint | None:
    """The measured point of this exact deployment closest in (log I, log O), if any."""
    hits = [p for p in points if p.matches(model, gpu, tp, pp, precision)]
    if not hits:
        return None

    def dist(p: MeasuredPoint) -> float:
        return (abs(math.log(p.input_tokens / input_tokens))
                + abs(math.log(p.output_tokens / output_tokens)))

    return min(hits, key=dist)


class PerfQuery(NamedTuple):
    """One deployment of a :func:`replica_perf_many` batch: the GPU, its layout and precision,
    the replica's KV-cache tokens (``memory.serving_memory``) and the engine's efficiency.

    ``time_scale`` multiplies every modelled time (1 = the point estimate; a plan at confidence
    ``c`` passes ``1 / uncertainty.confidence_factor(c, band)``, so SLO limits are re-evaluated on
    the slower GPU rather than the capacity merely scaled). A measured point replaces it."""

    gpu: GPU
    tp: int
    pp: int
    precision: str
    kv_cache_tokens: int
    efficiency: Efficiency
    time_scale: float = 1.0
    #: MoE layout (docs/perf.md "MoE layouts"): with ``dp > 1``, ``kv_cache_tokens`` is ONE DP
    #: rank's cache (``memory.ServingMemory.kv_cache_tokens``) and ``max_num_seqs`` caps each
    #: rank (every DP rank runs its own scheduler: vLLM "Data Parallel Deployment", one engine
    #: core per DP rank), so the replica's batch limit is ``dp`` times a rank's.
    ep: int = 1
    dp: int = 1


class PrefixWork(NamedTuple):
    """A request's prefill with a cached shared prefix (:func:`prefix_work`): ``new_tokens``
    computed, each attending ``attn_prompt / 2`` keys on average."""

    new_tokens: float
    attn_prompt: float


def prefix_work(input_tokens: int, prefix_tokens: int, hit_rate: float) -> PrefixWork | None:
    """Prefill work of a request whose first ``prefix_tokens`` are a shared prefix found in the
    cache with probability ``hit_rate`` (None without a cache hit: the plain model).

    Prefix caching (vLLM automatic prefix caching, docs.vllm.ai "Automatic Prefix Caching";
    SGLang RadixAttention, Zheng et al., "SGLang", arXiv:2312.07104) reuses the prefix's KV
    blocks, so on average ``c = h P`` tokens are skipped and ``I - c`` computed (at least one:
    the engines recompute the last token of a full hit to get its logits). Token ``j`` of the
    prompt attends ``j`` keys, the cached ones included, so the new tokens ``c+1..I`` attend
    ``(c + I) / 2`` keys each: ``attn_prompt = I + c`` in the ``prompt / 2`` of the step model.
    The mean is used (a hit/miss mix is not split into two service times)."""
    cached = hit_rate * prefix_tokens
    if cached <= 0.0:
        return None
    return PrefixWork(max(input_tokens - cached, 1.0), input_tokens + cached)


def _check_prefix(input_tokens: int, prefix_tokens: int, hit_rate: float) -> None:
    if not 0 <= prefix_tokens <= input_tokens:
        raise UsageError(f"prefix tokens must be in [0, input tokens {input_tokens}], got {prefix_tokens}",
                         field="prefix_tokens", hint="the shared prefix is part of the prompt")
    if not (math.isfinite(hit_rate) and 0.0 <= hit_rate <= 1.0):
        raise UsageError(f"prefix hit rate must be in [0, 1], got {hit_rate}", field="prefix_hit_rate")


class DecodeShape(NamedTuple):
    """What a steady-state decode step depends on besides the batch (per request of the workload):
    ``steps`` = decode steps a request spends in the batch (``O - 1``, at least 1), ``new`` =
    prompt tokens prefilled per request, ``span`` = the mean prompt those tokens' causal attention
    spans (``span / 2`` keys each), ``context`` = the mean context a decoding sequence attends."""

    steps: float
    new: float
    span: float
    context: float


def decode_shape(input_tokens: int, output_tokens: int, prefix: PrefixWork | None = None) -> DecodeShape:
    """The :class:`DecodeShape` of one length (``I + O/2`` mean context; a cached prefix leaves
    its new tokens to prefill, :func:`prefix_work`)."""
    new, span = (input_tokens, input_tokens) if prefix is None else prefix
    return DecodeShape(max(output_tokens - 1, 1), new, span, input_tokens + output_tokens / 2.0)


@dataclass(frozen=True)
class _Mix:
    """A length mix as :func:`replica_perf_mix_many` evaluates it (one bucket: the plain model)."""

    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    shares: NDArray[np.float64]           # normalised, one per bucket
    prefixes: tuple[PrefixWork | None, ...]
    shape: DecodeShape                    # the mixed decode step
    held_new: float                       # residence-weighted prompt tokens a sequence holds
    held_out: float                       # residence-weighted output tokens (times r in the KV limit)
    out_mean: float                       # output tokens per request
    ctx_scale: float                      # sliding windows: held share of the context
    match_lengths: tuple[int, int]        # (I, O) at which efficiency measured points are matched

    @property
    def cached(self) -> bool:
        return self.prefixes[0] is not None


def _window_scale(arch: ModelArch, context: float) -> tuple[float, float]:
    """(tokens the layers hold on average, the rounded context) at mean ``context``."""
    ctx = max(1, round(context))
    return float(kv_tokens_held(arch, ctx)), max(1.0, float(ctx))


def _length_mix(arch: ModelArch, buckets: Sequence[tuple[int, int, float]], prefix_tokens: int,
                hit_rate: float) -> _Mix:
    """The mixed :class:`DecodeShape` and batch figures of ``buckets`` (see
    :func:`replica_perf_mix_many`); one bucket gives the one-length figures exactly."""
    if not buckets:
        raise UsageError("a length mix needs at least one bucket", field="lengths")
    for i_b, _, share in buckets:
        if not (math.isfinite(share) and share > 0):
            raise UsageError(f"length bucket shares must be > 0, got {share}", field="share")
        _check_prefix(i_b, prefix_tokens, hit_rate)
    inputs = tuple(b[0] for b in buckets)
    outputs = tuple(b[1] for b in buckets)
    prefixes = tuple(prefix_work(i_b, prefix_tokens, hit_rate) for i_b in inputs)
    if len(buckets) == 1:
        (isl,), (osl,), (pw,) = inputs, outputs, prefixes
        held, ctx = _window_scale(arch, isl + osl / 2.0)
        return _Mix(inputs, outputs, np.ones(1), prefixes, decode_shape(isl, osl, pw),
                    isl if pw is None else pw.new_tokens, osl, osl, held / ctx, (isl, osl))
    total = math.fsum(b[2] for b in buckets)
    phi = [b[2] / total for b in buckets]
    shapes = [decode_shape(i_b, o_b, pw) for i_b, o_b, pw in zip(inputs, outputs, prefixes, strict=True)]
    res = [f * s.steps for f, s in zip(phi, shapes, strict=True)]  # residence weights
    steps, new = math.fsum(res), math.fsum(f * s.new for f, s in zip(phi, shapes, strict=True))
    span = math.fsum(f * s.new * s.span for f, s in zip(phi, shapes, strict=True)) / new
    context = math.fsum(w * s.context for w, s in zip(res, shapes, strict=True)) / steps
    windows = [_window_scale(arch, s.context) for s in shapes]
    ctx_scale = (math.fsum(w * h for w, (h, _) in zip(res, windows, strict=True))
                 / math.fsum(w * c for w, (_, c) in zip(res, windows, strict=True)))
    held_new = math.fsum(w * s.new for w, s in zip(res, shapes, strict=True)) / steps
    held_out = math.fsum(w * o for w, o in zip(res, outputs, strict=True)) / steps
    out_mean = math.fsum(f * o for f, o in zip(phi, outputs, strict=True))
    in_mean = math.fsum(f * i for f, i in zip(phi, inputs, strict=True))
    return _Mix(inputs, outputs, np.array(phi), prefixes, DecodeShape(steps, new, span, context),
                held_new, held_out, out_mean, ctx_scale, (max(1, round(in_mean)), max(1, round(out_mean))))


def _check_perf_inputs(input_tokens: int, output_tokens: int, kv_cache_tokens: int,
                       utilization: float, max_num_seqs: int) -> None:
    if input_tokens < 1 or output_tokens < 1:
        raise UsageError("input and output tokens must be >= 1", field="input_tokens")
    if kv_cache_tokens < 0:
        raise UsageError("kv_cache_tokens must be >= 0", field="kv_cache_tokens")
    if not 0 < utilization <= 1:
        raise UsageError("utilization must be in (0, 1]", field="utilization")
    if max_num_seqs < 1:
        raise UsageError("max_num_seqs must be >= 1", field="max_num_seqs")


def replica_perf(arch: ModelArch, gpu: GPU, *, tp: int, pp: int = 1, precision: str,
                 kv_dtype: str = "auto", input_tokens: int, output_tokens: int, kv_cache_tokens: int,
                 ttft_ms: float | None = None, tpot_ms: float | None = None, max_num_seqs: int = 256,
                 utilization: float = 0.8, efficiency: Efficiency | None = None,
                 measured: tuple[MeasuredPoint, ...] | list[MeasuredPoint] | None = None,
                 time_scale: float = 1.0, ep: int = 1, dp: int = 1, tails: TailTargets | None = None,
                 prefix_tokens: int = 0, prefix_hit_rate: float = 0.0) -> ReplicaPerf:
    """Offline throughput and SLO-limited capacity of one replica (see the module docstring).

    1. ``B_max = min(max_num_seqs, floor(kv_cache_tokens / (I + r O)))``; offline throughput
       ``B_max O / ((O - 1) TPOT(B_max))``.
    2. With ``tpot_ms``: the largest ``B <= B_max`` with ``TPOT(B) <= tpot_ms`` (bisection over
       the integers; TPOT is non-decreasing in B). Capacity ``mu = B / ((O - 1) TPOT(B))`` requests/s.
    3. With ``ttft_ms``: ``TTFT(lambda) = W_q^{M/D/1}(lambda, S) + S + TPOT(B(lambda))`` at
       ``lambda = utilization x mu``, ``B(lambda)`` the fixed point of ``B = lambda (O-1) TPOT(B)``;
       if over target, ``mu`` is lowered until it fits.
    4. Measured points for this exact (model, GPU, TP, PP, precision) (``measured`` or
       ``efficiency.measured``): every time is scaled by ``predicted / measured`` throughput at the
       nearest measured (I, O), so the measured throughput is reproduced there; ``source="measured"``.
    5. ``tails``: p90/p99 TTFT and TPOT targets lower the rate further; the tails at the
       operating point are reported either way (``ReplicaPerf.ttft_p90_ms`` ...).
    6. ``prefix_tokens``/``prefix_hit_rate``: a shared prefix in the prefix cache
       (:func:`prefix_work`; see :func:`replica_perf_many`).

    The work is :func:`replica_perf_many` on a batch of one, so one call and a planning run give
    the same numbers; see there for how the roots of 2. and 3. are found.
    """
    _check_perf_inputs(input_tokens, output_tokens, kv_cache_tokens, utilization, max_num_seqs)
    eff = efficiency or load_efficiency(gpu)
    query = PerfQuery(gpu, tp, pp, precision, kv_cache_tokens, eff, time_scale, ep, dp)
    return replica_perf_many(arch, (query,), kv_dtype=kv_dtype, input_tokens=input_tokens,
                             output_tokens=output_tokens, ttft_ms=ttft_ms, tpot_ms=tpot_ms,
                             max_num_seqs=max_num_seqs, utilization=utilization,
                             measured=measured, tails=tails, prefix_tokens=prefix_tokens,
                             prefix_hit_rate=prefix_hit_rate)[0]


def replica_perf_many(arch: ModelArch, queries: Sequence[PerfQuery], *, kv_dtype: str = "auto",
                      input_tokens: int, output_tokens: int, ttft_ms: float | None = None,
                      tpot_ms: float | None = None, max_num_seqs: int = 256,
                      utilization: float = 0.8,
                      measured: tuple[MeasuredPoint, ...] | list[MeasuredPoint] | None = None,
                      tails: TailTargets | None = None, prefix_tokens: int = 0,
                      prefix_hit_rate: float = 0.0,
                      ) -> list[ReplicaPerf]:
    """:func:`replica_perf` of one workload shape on many deployments of ``arch`` at once.

    Every step of :func:`replica_perf` runs on numpy columns of the deployments
    (:class:`StepColumns`, :func:`decode_step_array`, the same equations in the same order as
    :func:`decode_step_s`), and the roots are found as follows:

    * TPOT target: bisection over the integers ``1..B_max`` (at most ``log2 B_max`` steps, all
      deployments together); the answer is exact.
    * ``B(lambda)``, the fixed point of ``h(B) = B - lambda (O-1) TPOT(B) = 0`` on ``[0, B_slo]``:
      safeguarded Newton (analytic slope :func:`decode_slope_array`, bisection whenever a step leaves
      the bracket). ``h`` has one root there: ``h(0) < 0``; ``h(B_slo) >= (1 - utilization) B_slo
      > 0`` at every rate used; TPOT is convex piecewise linear in B for dense models (``h``
      concave) and, for MoE, concave while weight streaming dominates then linear, so ``h``
      crosses zero once. Newton converges in a few steps (exactly on each linear piece).
    * The TTFT-limited rate, the root of ``TTFT(lambda) = ttft_ms`` on ``[0, utilization mu]``
      (TTFT increases with lambda): safeguarded Newton with the implicit slope
      ``dB/dlambda = (O-1) TPOT / (1 - lambda (O-1) TPOT')``.
    * Tail targets (``tails``, docs/perf.md "Tail latency"): a TPOT p-target gives the largest
      integer batch ``k`` meeting it (the same integer bisection); the operating batch
      ``B(lambda)``, Poisson-distributed (M/G/inf occupancy), must have its p-quantile ``<= k``:
      ``B <= m_p`` with ``P(Poisson(m_p) <= k) = p`` (``queueing.poisson_mean_for_quantile``),
      so ``lambda <= m_p / ((O-1) TPOT(m_p))`` in closed form. A TTFT p-target,
      ``S + W_p(lambda) + TPOT(B(lambda)) <= target`` (``queueing.wait_quantile``, increasing in
      lambda), lowers the rate by bisection on ``[0, lambda]`` to ``1e-9 lambda`` (all
      deployments together, a fixed number of halvings, so deterministic). Mean targets are
      applied first, then p90, then p99; each only lowers the rate, so all hold at the end.

    ``prefix_tokens``/``prefix_hit_rate``: a shared prompt prefix found in the prefix cache
    (:func:`prefix_work`): prefill computes ``I - h P`` new tokens; the replica's KV cache holds
    one copy of the prefix (``P`` tokens, per DP rank) and each sequence ``I - h P + r O`` of its
    own; decode still reads the whole context ``I + O/2`` per sequence (paged attention reads the
    shared blocks once per sequence: conservative).

    The scalar bisections this replaces stopped at ``1e-7 max(1, B)`` above the fixed point and
    ``1e-9 utilization mu`` below the TTFT root; those stopping rules are kept (replayed on the
    exact roots, which costs no step-time evaluation), so answers agree with them to far below
    1e-6 relative (``tests/sizing/test_perf_fast.py`` compares with a frozen copy).

    Nothing is cached here beyond :func:`step_model`; a caller that sees the same query twice
    (e.g. :func:`optimizer.sizing.candidates.build_candidates`) keeps its own table.

    This is :func:`replica_perf_mix_many` on the one-bucket mix ``((I, O, 1),)``.
    """
    return replica_perf_mix_many(arch, queries, buckets=((input_tokens, output_tokens, 1.0),),
                                 kv_dtype=kv_dtype, ttft_ms=ttft_ms, tpot_ms=tpot_ms,
                                 max_num_seqs=max_num_seqs, utilization=utilization, measured=measured,
                                 tails=tails, prefix_tokens=prefix_tokens, prefix_hit_rate=prefix_hit_rate)


def replica_perf_mix_many(arch: ModelArch, queries: Sequence[PerfQuery], *,
                          buckets: Sequence[tuple[int, int, float]], kv_dtype: str = "auto",
                          ttft_ms: float | None = None, tpot_ms: float | None = None,
                          max_num_seqs: int = 256, utilization: float = 0.8,
                          measured: tuple[MeasuredPoint, ...] | list[MeasuredPoint] | None = None,
                          tails: TailTargets | None = None, prefix_tokens: int = 0,
                          prefix_hit_rate: float = 0.0) -> list[ReplicaPerf]:
    """One replica serving a length mix, on many deployments at once: ``buckets`` are
    (input tokens ``I_b``, output tokens ``O_b``, share ``phi_b``) of the requests (shares > 0,
    normalised to sum 1; a one-bucket mix is exactly :func:`replica_perf_many`). The requests of
    all buckets share one decode batch and one prefill queue (docs/perf.md "Length mixes"):

    * **Decode batch.** By Little's law per bucket, ``B_b = lambda phi_b (O_b - 1) TPOT``
      sequences of bucket b decode (each is in the batch for ``O_b - 1`` steps), so
      ``B(lambda) = lambda TPOT(B) sum_b phi_b (O_b - 1)``: the one-length fixed point with
      ``O - 1`` replaced by ``steps = sum_b phi_b (O_b - 1)``. A sequence's context grows from
      ``I_b`` to ``I_b + O_b`` while it decodes, mean ``I_b + O_b / 2`` (the one-length model's);
      the step's attention is linear in the (sequence, context token) pairs, so the batch reads as
      ``B`` sequences at the residence-weighted mean context
      ``sum_b phi_b (O_b - 1) (I_b + O_b/2) / steps``, exactly in the model. Likewise the prompt
      tokens prefilled per step are ``B x sum_b phi_b new_b / steps`` and their causal attention
      spans the ``phi_b new_b``-weighted mean prompt (``new_b = I_b``, less a cached prefix).
      Sliding-window layers: the held share of the context, residence-weighted.
    * **Batch limits.** The KV limit uses the residence-weighted mean of the tokens a sequence
      holds, ``new_b + r O_b`` (the mean occupancy, not a worst case); ``max_num_seqs`` as ever.
      The TPOT target applies to the mixed batch.
    * **Prefill queue, M/G/1.** A prompt of bucket b (probability ``phi_b``) takes ``S_b`` to
      prefill alone (:func:`prefill_array`) and ``S_busy,b`` of the server's time in a batch;
      ``rho = lambda sum_b phi_b S_busy,b``, and Pollaczek-Khinchine's mean wait with the mix's
      moments is ``W = rho (E[S^2] / E[S]) / (2 (1 - rho))`` (for one length
      ``rho S / (2 (1 - rho))``, the M/D/1 of :func:`md1_wait_s`); the wait's p-quantile ``W_p``
      is the gamma fit to the mix's first three moments (:mod:`optimizer.sizing.queueing`). FCFS
      makes a request's wait independent of its own prompt, so bucket b's mean TTFT is
      ``W + S_b + TPOT(B)`` and its p-quantile ``W_p + S_b + TPOT(B)``.
    * **Targets hold on every bucket** (as the checker tests them): the binding bucket is the
      longest prompt, so ``ttft_ms`` is ``W + max_b S_b + TPOT(B)`` and the tails
      ``W_p + max_b S_b + TPOT(B)`` (``prefill_ms`` is ``max_b S_b``). The whole mix's mean
      ``W + E[S] + TPOT`` or its pooled quantile
      (:func:`~optimizer.sizing.queueing.sojourn_quantile`) would let the long prompts miss the
      target while the short ones carry the average; judged on those, a shared queue is almost
      never worse than time-sharing, so they would hide the effect this models: short prompts
      wait behind long ones (``E[S^2] / E[S]`` grows) and long prompts behind the short ones'
      work (``rho`` grows).
    * The largest rate meeting every target at ``utilization`` is found as in
      :func:`replica_perf_many` (the same root finders on the mixed shape); ``output_tokens_per_s``
      is requests/s x ``sum_b phi_b O_b``. Efficiency measured points (``measured``) are matched
      at the mix's mean (I, O), rounded. A shared prefix applies to every bucket.
    """
    mix = _length_mix(arch, buckets, prefix_tokens, prefix_hit_rate)
    for i_b, o_b in zip(mix.inputs, mix.outputs, strict=True):
        _check_perf_inputs(i_b, o_b, min((q.kv_cache_tokens for q in queries), default=0),
                           utilization, max_num_seqs)
    tails = tails or TailTargets()
    n = len(queries)
    if n == 0:
        return []
    isl, osl = mix.match_lengths  # for measured points (one bucket: its lengths)
    sh = mix.shape
    steps = sh.steps
    ctx_scale = mix.ctx_scale  # sliding-window layers: the share of the context they hold
    table = _step_table(arch)  # step_model's cache, the architecture hashed once for the batch
    for q in queries:
        _check_step_args(q.tp, q.pp, q.precision, kv_dtype, q.ep, q.dp)
    sms = [_cached_step_model(table, arch, q.gpu, q.tp, q.pp, q.precision, kv_dtype, q.ep, q.dp)
           for q in queries]
    effs = [q.efficiency for q in queries]

    scales = [q.time_scale for q in queries]
    sources: list[Literal["model", "measured"]] = ["model"] * n
    offline_override: dict[int, float] = {}
    for i, (q, sm) in enumerate(zip(queries, sms, strict=True)):
        points = tuple(measured) if measured is not None else q.efficiency.measured
        if not points:
            continue
        hit = _match_measured(points, arch.name, q.gpu.name, q.tp, q.pp, q.precision, isl, osl)
        if hit is None or q.ep > 1 or q.dp > 1:  # measured points are TP/PP layouts
            continue
        eff = q.efficiency
        held_m = hit.input_tokens + eff.kv_reserve_output_fraction * hit.output_tokens
        b_m = max(1, min(max_num_seqs, int(q.kv_cache_tokens // max(held_m, 1.0))))
        steps_m = max(hit.output_tokens - 1, 1)
        ctx_m = max(1, round(hit.input_tokens + hit.output_tokens / 2.0))
        sm_m = _ctx(sm, kv_tokens_held(arch, ctx_m) / ctx_m)
        pred = b_m * hit.output_tokens / (steps_m * decode_step_s(sm_m, eff, b_m, hit.input_tokens,
                                                                  hit.output_tokens))
        scales[i] = pred / hit.output_tokens_per_s
        sources[i] = "measured"
        if len(mix.inputs) == 1 and hit.input_tokens == isl and hit.output_tokens == osl:
            offline_override[i] = hit.output_tokens_per_s

    cols = StepColumns.of(sms, effs)
    ctx_cols = cols.with_context_scale(ctx_scale)
    scale = np.array(scales)
    held_new, held_out = mix.held_new, mix.held_out  # residence-weighted means over the batch
    if not mix.cached:
        kv_limit = [q.dp * int(q.kv_cache_tokens // max(held_new + e.kv_reserve_output_fraction * held_out, 1.0))
                    for q, e in zip(queries, effs, strict=True)]
    else:  # one copy of the prefix per DP rank's cache, then each sequence's own tokens
        kv_limit = [q.dp * int(max(q.kv_cache_tokens - prefix_tokens, 0)
                               // max(held_new + e.kv_reserve_output_fraction * held_out, 1.0))
                    for q, e in zip(queries, effs, strict=True)]
    seq_cap = [max_num_seqs * q.dp for q in queries]
    b_max = np.array([min(cap, k) for cap, k in zip(seq_cap, kv_limit, strict=True)], dtype=np.int64)

    def tpot_s(c: StepColumns, b: NDArray[np.float64], sc: NDArray[np.float64],
               exact: bool = True) -> NDArray[np.float64]:
        return _decode_step(c, b, sh, exact) * sc

    # the prefill queue's service: S_b (a prompt of bucket b alone) with probability share_b
    sp_all = np.stack([prefill_array(cols, i_b, pw_b) * scale
                       for i_b, pw_b in zip(mix.inputs, mix.prefixes, strict=True)], axis=-1)
    sb_all = np.minimum(sp_all, np.stack([prefill_work_array(cols, i_b, pw_b) * scale for i_b, pw_b
                                          in zip(mix.inputs, mix.prefixes, strict=True)], axis=-1))
    moments = _queueing.service_moments(sp_all, mix.shares)  # one bucket: exactly S, S^2, S^3
    if sp_all.shape[1] == 1:  # deterministic: E[S^2] / E[S] = S
        s_prefill = s_resid = sp_all[:, 0]
        s_busy = sb_all[:, 0]
    else:  # every bucket must meet the targets: the longest prompt's TTFT is the binding one
        s_prefill, s_resid = sp_all.max(axis=-1), moments[1] / moments[0]
        s_busy = np.sum(mix.shares * sb_all, axis=-1)
    ones = np.ones(n)
    t_one = tpot_s(ctx_cols, ones, scale)
    t_bmax = tpot_s(ctx_cols, np.maximum(b_max, 1).astype(np.float64), scale)
    offline = b_max * mix.out_mean / (steps * t_bmax)

    # status: 0 carries on, 1 no batch fits the KV cache, 2 TPOT target unreachable,
    # 3 TTFT target unreachable
    status = np.where(b_max < 1, 1, 0)
    limited = np.where(np.array(kv_limit) <= np.array(seq_cap), "kv", "max_num_seqs").astype(object)
    b_slo = b_max.copy()

    def largest_batch(target_ms: float) -> tuple[NDArray[np.intp], NDArray[np.int64]]:
        """Rows (still live) whose TPOT at ``B_max`` misses ``target_ms``, and for each the
        largest integer batch meeting it; rows missing it at batch 1 get status 2."""
        over = (status == 0) & (t_bmax * 1e3 > target_ms)
        status[over & (t_one * 1e3 > target_ms)] = 2
        idx = np.flatnonzero(over & (status == 0))
        lo = np.ones(idx.size, dtype=np.int64)
        if idx.size:
            sub, sc = ctx_cols.take(idx), scale[idx]
            hi = b_max[idx].copy()
            act = hi - lo > 1
            while act.any():
                mid = (lo + hi) // 2
                meets = tpot_s(sub, mid.astype(np.float64), sc, exact=False) * 1e3 <= target_ms
                lo = np.where(act & meets, mid, lo)
                hi = np.where(act & ~meets, mid, hi)
                act = hi - lo > 1
        return idx, lo

    # --- TPOT target -----------------------------------------------------------------------
    if tpot_ms is not None:
        idx, lo = largest_batch(tpot_ms)
        if idx.size:
            b_slo[idx] = lo
            limited[idx] = "tpot"
    # TPOT tail targets: the largest batch k meeting each (B_max where it never binds)
    tail_k: list[tuple[float, NDArray[np.int64]]] = []
    for p, target in tails.tpot():
        idx, lo = largest_batch(target)
        k = b_max.copy()
        k[idx] = lo
        tail_k.append((p, k))

    ttft = np.zeros(n)
    tp_now = np.zeros(n)
    mu = np.zeros(n)
    # tails at the operating point; the best values (batch 1, no queue) where the SLO fails
    ttft_p90, ttft_p99 = (s_prefill + t_one).copy(), (s_prefill + t_one).copy()
    tpot_p90, tpot_p99 = t_one.copy(), t_one.copy()
    bs_cap = np.maximum(b_max, 1).astype(np.float64)  # the engine's batch limit caps the Poisson batch
    live = np.flatnonzero(status == 0)
    if live.size:
        sub, sc = ctx_cols.take(live), scale[live]
        bs = b_slo[live].astype(np.float64)
        t_bslo = tpot_s(sub, bs, sc)
        mu_l = bs / (steps * t_bslo)
        for p, k_all in tail_k:  # the operating batch's p-quantile must not exceed k
            j = np.flatnonzero((k_all[live] < b_max[live]) & (status[live] == 0))
            if j.size:
                # Poisson mean with p-quantile k, a hair inside so the quantile rounds to k
                m = np.minimum(_queueing.poisson_mean_for_quantile(p, k_all[live[j]]) * (1 - 1e-9), bs[j])
                m = np.maximum(m, 1e-9)
                mu_t = m / (steps * tpot_s(sub.take(j), m, sc[j], exact=False)) / utilization
                low = mu_t < mu_l[j]
                jj = j[low]
                mu_l[jj] = mu_t[low]
                b_slo[live[jj]] = np.maximum(1, np.minimum(bs[jj], np.ceil(mu_l[jj] * steps * t_bslo[jj])))
                limited[live[jj]] = "tpot"
        lam = utilization * mu_l
        sp, sb, sr = s_prefill[live], s_busy[live], s_resid[live]
        sp3 = tuple(m[live] for m in moments)  # the queue's service moments (one length: S, S^2, S^3)

        def ttft_at(rate: NDArray[np.float64], b_star: NDArray[np.float64]
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
            b = _replay_fixed_point_bisection(b_star, bs)
            t = tpot_s(sub, np.maximum(b, 1.0), sc)
            return _md1_wait_array(rate, sr, sb) + sp + t, t

        b_lam = _fixed_batch(sub, sc, lam, bs, sh)
        ttft_l, tp_l = ttft_at(lam, b_lam)
        b_now = b_lam.copy()  # the batch at the operating point (the exact root, for the tails)
        if ttft_ms is not None:
            over = ttft_l * 1e3 > ttft_ms
            floor_ttft = sp + t_one[live]
            never = over & (floor_ttft * 1e3 > ttft_ms)
            status[live[never]] = 3
            j = np.flatnonzero(over & ~never)
            if j.size:
                sub_j, sc_j = sub.take(j), sc[j]
                r_star, b_root, db_root, window = _ttft_rate_root(
                    sub_j, sc_j, lam[j], bs[j], b_lam[j], sp[j], sb[j], sh, ttft_ms, sr[j])
                bs_j, sp_j, sb_j, sr_j = bs[j], sp[j], sb[j], sr[j]

                def meets_at(mid: NDArray[np.float64], k: NDArray[np.intp]) -> NDArray[np.bool_]:
                    """The scalar test ``TTFT(mid) <= ttft_ms`` with its own fixed-point bisection."""
                    c_k, sc_k = sub_j.take(k), sc_j[k]
                    x = np.clip(b_root[k] + db_root[k] * (mid - r_star[k]), 0.0, bs_j[k])
                    rate_steps = mid * steps
                    for _ in range(2):  # Newton from the tangent: converged to rounding
                        xb = np.maximum(x, 1e-9)
                        h = x - rate_steps * (_decode_step(c_k, xb, sh, False) * sc_k)
                        dh = 1.0 - rate_steps * (_decode_slope(c_k, xb, sh) * sc_k)
                        x = np.clip(x - h / dh, 0.0, bs_j[k])
                    b = _replay_fixed_point_bisection(x, bs_j[k])
                    t = tpot_s(c_k, np.maximum(b, 1.0), sc_k)
                    ttft_k = _md1_wait_array(mid, sr_j[k], sb_j[k]) + sp_j[k] + t
                    return ttft_k * 1e3 <= ttft_ms

                lam_j = _replay_rate_bisection(r_star, lam[j], window, meets_at)
                b_exact = _fixed_batch(sub_j, sc_j, lam_j, bs[j], sh)
                b_j = _replay_fixed_point_bisection(b_exact, bs[j])
                tp_j = tpot_s(sub_j, np.maximum(b_j, 1.0), sc_j)
                ttft_l[j] = _md1_wait_array(lam_j, sr[j], sb[j]) + sp[j] + tp_j
                tp_l[j] = tp_j
                mu_j = lam_j / utilization
                mu_l[j] = mu_j
                b_slo[live[j]] = np.maximum(1, np.minimum(bs[j], np.ceil(mu_j * steps * t_bslo[j])))
                limited[live[j]] = "ttft"
                b_now[j] = b_exact
        for p, target in tails.ttft():
            rate = utilization * mu_l
            ttft_p = sp + _queueing.wait_quantile(p, rate * sb, *sp3) + tp_l
            over = (status[live] == 0) & (ttft_p * 1e3 > target)
            never = over & ((sp + t_one[live]) * 1e3 > target)
            status[live[never]] = 3
            j = np.flatnonzero(over & ~never)
            if j.size:
                lam_j, b_j, tp_j = _ttft_tail_rate(sub.take(j), sc[j], rate[j], bs[j], sp[j],
                                                   tuple(m[j] for m in sp3), sb[j], p, target, sh)
                ttft_l[j] = _md1_wait_array(lam_j, sr[j], sb[j]) + sp[j] + tp_j
                tp_l[j], b_now[j], mu_l[j] = tp_j, b_j, lam_j / utilization
                b_slo[live[j]] = np.maximum(1, np.minimum(bs[j], np.ceil(mu_l[j] * steps * t_bslo[j])))
                limited[live[j]] = "ttft"
        ttft[live], tp_now[live], mu[live] = ttft_l, tp_l, mu_l
        # the tails at the operating point (docs/perf.md "Tail latency")
        ok = np.flatnonzero(status[live] == 0)  # a tail target may have failed some rows
        rho_now = utilization * mu_l[ok] * sb[ok]
        sub_ok = sub.take(ok)
        for p, tt_q, tp_q in ((0.9, ttft_p90, tpot_p90), (0.99, ttft_p99, tpot_p99)):
            tt_q[live[ok]] = sp[ok] + _queueing.wait_quantile(p, rho_now, *(m[ok] for m in sp3)) + tp_l[ok]
            k_q = np.minimum(np.maximum(_queueing.poisson_quantile(p, b_now[ok]), 1.0), bs_cap[live[ok]])
            tp_q[live[ok]] = tpot_s(sub_ok, k_q, sc[ok], exact=False)  # MoE power: numpy's

    out: list[ReplicaPerf] = []
    rows = zip(status.tolist(), offline.tolist(), b_max.tolist(), ttft.tolist(), tp_now.tolist(),
               mu.tolist(), b_slo.tolist(), limited.tolist(), t_one.tolist(), t_bmax.tolist(),
               s_prefill.tolist(), scales, sources, kv_limit, ttft_p90.tolist(), ttft_p99.tolist(),
               tpot_p90.tolist(), tpot_p99.tolist(), strict=True)
    for i, (st, off, bm, tt, tpn, m, bsl, lim, one, tbm, spf, sc1, src, kvl, t90, t99, p90, p99
            ) in enumerate(rows):
        off = offline_override.get(i, off)
        tail = {"ttft_p90_ms": t90 * 1e3, "ttft_p99_ms": t99 * 1e3, "tpot_p90_ms": p90 * 1e3,
                "tpot_p99_ms": p99 * 1e3}
        if st == 1:
            out.append(ReplicaPerf(0.0, 0, (spf + one) * 1e3, one * 1e3, 0.0, 0, "kv", src,
                                   one * 1e3, spf * 1e3, kvl, utilization, 1 / sc1, **tail))
        elif st == 2:
            out.append(ReplicaPerf(off, bm, (spf + one) * 1e3, one * 1e3, 0.0, 0, "tpot", src,
                                   tbm * 1e3, spf * 1e3, kvl, utilization, 1 / sc1, **tail))
        elif st == 3:
            out.append(ReplicaPerf(off, bm, (spf + one) * 1e3, one * 1e3, 0.0, 0, "ttft", src,
                                   tbm * 1e3, spf * 1e3, kvl, utilization, 1 / sc1, **tail))
        else:
            out.append(ReplicaPerf(
                output_tokens_per_s=off, batch=bm, ttft_ms=tt * 1e3, tpot_ms=tpn * 1e3,
                requests_per_s=m, slo_batch=int(bsl), limited_by=lim, source=src,
                offline_tpot_ms=tbm * 1e3, prefill_ms=spf * 1e3, kv_batch_limit=kvl,
                utilization=utilization, measured_scale=1 / sc1, **tail))
    return out


# ------------------------------------------------------------------------------------------
# Array versions of the step model (one element per deployment)
# ------------------------------------------------------------------------------------------

_SM_FIELDS = ("tp", "pp", "layers", "dense_bytes", "expert_bytes", "moe_layers", "num_experts",
              "experts_per_token", "flops_per_token", "kv_bytes_per_token", "attn_flops_per_pair",
              "hidden", "peak_flops", "peak_flops_16", "bandwidth", "link_bandwidth", "ep", "dp",
              "expert_flops_per_token", "a2a_layers", "a2a_latency_s", "a2a_bus_bw",
              "ar_latency_s", "ar_bus_bw", "p2p_latency_s", "p2p_bw")
_EFF_FIELDS = ("compute", "memory_bw", "step_overhead_ms", "layer_overhead_us", "prefill_chunk_tokens")
_sm_row = attrgetter(*_SM_FIELDS)
_eff_row = attrgetter(*_EFF_FIELDS)


class StepColumns:
    """:class:`StepModel` and :class:`Efficiency` fields of N deployments as float64 columns
    (attribute names as in those classes), for :func:`stage_time_array` and friends."""

    tp: NDArray[np.float64]
    pp: NDArray[np.float64]
    layers: NDArray[np.float64]
    dense_bytes: NDArray[np.float64]
    expert_bytes: NDArray[np.float64]
    moe_layers: NDArray[np.float64]
    num_experts: NDArray[np.float64]
    experts_per_token: NDArray[np.float64]
    flops_per_token: NDArray[np.float64]
    kv_bytes_per_token: NDArray[np.float64]
    attn_flops_per_pair: NDArray[np.float64]
    hidden: NDArray[np.float64]
    peak_flops: NDArray[np.float64]
    peak_flops_16: NDArray[np.float64]
    bandwidth: NDArray[np.float64]
    link_bandwidth: NDArray[np.float64]
    ep: NDArray[np.float64]
    dp: NDArray[np.float64]
    expert_flops_per_token: NDArray[np.float64]
    a2a_layers: NDArray[np.float64]
    a2a_latency_s: NDArray[np.float64]
    a2a_bus_bw: NDArray[np.float64]
    ar_latency_s: NDArray[np.float64]
    ar_bus_bw: NDArray[np.float64]
    p2p_latency_s: NDArray[np.float64]
    p2p_bw: NDArray[np.float64]
    compute: NDArray[np.float64]
    memory_bw: NDArray[np.float64]
    step_overhead_ms: NDArray[np.float64]
    layer_overhead_us: NDArray[np.float64]
    prefill_chunk_tokens: NDArray[np.float64]

    def __init__(self, columns: dict[str, NDArray[np.float64]]) -> None:
        self.__dict__.update(columns)

    @classmethod
    def of(cls, sms: Sequence[StepModel], effs: Sequence[Efficiency]) -> StepColumns:
        a = np.array([_sm_row(s) for s in sms], dtype=np.float64).reshape(len(sms), len(_SM_FIELDS))
        b = np.array([_eff_row(e) for e in effs], dtype=np.float64).reshape(len(effs), len(_EFF_FIELDS))
        cols = {k: a[:, i].copy() for i, k in enumerate(_SM_FIELDS)}
        cols.update({k: b[:, i].copy() for i, k in enumerate(_EFF_FIELDS)})
        return cls(cols)

    def take(self, idx: NDArray[np.intp]) -> StepColumns:
        return StepColumns({k: v[idx] for k, v in self.__dict__.items()})

    def with_context_scale(self, ctx_scale: float) -> StepColumns:
        """As :func:`_ctx`: KV bytes and attention FLOPs per context token scaled for sliding
        windows (unchanged when ``ctx_scale >= 1``)."""
        if ctx_scale >= 1.0:
            return self
        cols = dict(self.__dict__)
        cols["kv_bytes_per_token"] = self.kv_bytes_per_token * ctx_scale
        cols["attn_flops_per_pair"] = self.attn_flops_per_pair * ctx_scale
        return StepColumns(cols)


def _experts_touched_array(c: StepColumns, tokens: NDArray[np.float64],
                           exact: bool = True) -> NDArray[np.float64]:
    """:meth:`StepModel.experts_touched` per element (0 for dense models). ``exact``: the power
    by Python's float ``**`` (C ``pow``), bit for bit the scalar value; numpy's vectorised power
    can differ from it in the last bit, which root finders may ignore but reported figures not."""
    moe = c.num_experts > 0
    e = np.where(moe, c.num_experts, 1.0)
    if exact and moe.any():
        idx = np.flatnonzero(moe)
        out = np.zeros_like(tokens)
        out[idx] = [(ei / epi) * (1.0 - (1.0 - ki / ei) ** max(ti, 0.0)) for ei, epi, ki, ti in
                    zip(e[idx].tolist(), c.ep[idx].tolist(), c.experts_per_token[idx].tolist(),
                        tokens[idx].tolist(), strict=True)]
        return out
    touched = (e / c.ep) * (1.0 - (1.0 - c.experts_per_token / e) ** np.maximum(tokens, 0.0))
    return np.where(moe, touched, 0.0)


def allreduce_array(c: StepColumns, tokens: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`allreduce_s` per element."""
    t = c.tp
    with np.errstate(divide="ignore", invalid="ignore"):  # t = 1 rows are masked below
        one = c.ar_latency_s + 2.0 * (t - 1) / t * (tokens * c.hidden * ACT_BYTES) / c.ar_bus_bw
    return np.where(t == 1, 0.0, 2.0 * c.layers * one)


def moe_comm_array(c: StepColumns, tokens_per_rank: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`moe_comm_s` per element."""
    nbytes = tokens_per_rank / c.tp * c.experts_per_token * c.hidden * ACT_BYTES
    one = c.a2a_latency_s + (c.ep - 1) / c.ep * nbytes / c.a2a_bus_bw
    return np.where((c.ep == 1) | (c.a2a_layers == 0), 0.0, 2.0 * c.a2a_layers * one)


def _allreduce_share_array(c: StepColumns) -> NDArray[np.float64]:
    """:func:`_allreduce_share` per element."""
    return (2 * c.layers - c.a2a_layers) / (2 * c.layers)


def p2p_array(c: StepColumns, tokens: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`p2p_s` per element."""
    t = c.p2p_latency_s + (tokens * c.hidden * ACT_BYTES) / c.p2p_bw
    return np.where(c.pp == 1, 0.0, t)


def stage_time_array(c: StepColumns, *, decode: NDArray[np.float64], prefill: NDArray[np.float64],
                     context: float, prompt: float, exact: bool = True,
                     spread: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """:func:`stage_time_s` per element (the same equation, term by term, so the same floats;
    ``exact=False`` lets the MoE power differ in the last bit, see :func:`_experts_touched_array`)."""
    ranks = c.dp if spread is None else spread
    bw = c.bandwidth * c.memory_bw
    c_w = c.peak_flops * c.compute
    c_16 = c.peak_flops_16 * c.compute
    m = decode + prefill
    m_rank = m / ranks
    weights = c.dense_bytes + c.moe_layers * _experts_touched_array(c, m, exact) * c.expert_bytes
    t_linear = np.maximum(weights / bw, (c.flops_per_token * m_rank + c.expert_flops_per_token * m) / c_w)
    decode, prefill = decode / ranks, prefill / ranks
    pairs = decode * context
    t_attn = np.maximum((pairs + prefill) * c.kv_bytes_per_token / bw,
                        pairs * c.attn_flops_per_pair / c_16)
    t_attn = t_attn + prefill * (prompt / 2.0) * c.attn_flops_per_pair / c_16
    comm = allreduce_array(c, m_rank) * _allreduce_share_array(c) + moe_comm_array(c, m_rank)
    return t_linear + t_attn + comm + c.layers * c.layer_overhead_us * 1e-6


def decode_step_array(c: StepColumns, batch: NDArray[np.float64], input_tokens: int,
                      output_tokens: int, exact: bool = True,
                      prefix: PrefixWork | None = None) -> NDArray[np.float64]:
    """:func:`decode_step_s` per element: ``pp T_stage(B/pp, P/pp) + (pp-1) T_p2p + overhead``.
    With a cached prefix (:class:`PrefixWork`) a newcomer prefills only its new tokens, whose
    attention spans ``attn_prompt / 2`` keys each; decode still reads the whole context."""
    return _decode_step(c, batch, decode_shape(input_tokens, output_tokens, prefix), exact)


def _decode_step(c: StepColumns, batch: NDArray[np.float64], sh: DecodeShape,
                 exact: bool = True) -> NDArray[np.float64]:
    """:func:`decode_step_array` on a :class:`DecodeShape` (one length or a mix)."""
    prefill = batch * sh.new / sh.steps
    mb_decode, mb_prefill = batch / c.pp, prefill / c.pp
    t = c.pp * stage_time_array(c, decode=mb_decode, prefill=mb_prefill, context=sh.context,
                                prompt=sh.span, exact=exact)
    t = t + (c.pp - 1) * p2p_array(c, mb_decode + mb_prefill)
    return t + c.step_overhead_ms * 1e-3


def decode_slope_array(c: StepColumns, batch: NDArray[np.float64], input_tokens: int,
                       output_tokens: int, prefix: PrefixWork | None = None) -> NDArray[np.float64]:
    """``d TPOT / d B`` of :func:`decode_step_array` (the slope of the branch each ``max``
    takes; for MoE ``d/dm E (1 - q^m) = -E q^m ln q``, ``q = 1 - k/E``). Used by the root
    finders only, never reported."""
    return _decode_slope(c, batch, decode_shape(input_tokens, output_tokens, prefix))


def _decode_slope(c: StepColumns, batch: NDArray[np.float64], sh: DecodeShape) -> NDArray[np.float64]:
    """:func:`decode_slope_array` on a :class:`DecodeShape`."""
    pp = c.pp
    span, context = sh.span, sh.context
    per_b = sh.new / sh.steps                          # prefill tokens per decoding sequence
    dm = (1.0 + per_b) / pp                            # d m / d B, m = B/pp + B I/(O-1)/pp
    m = batch * dm
    bw = c.bandwidth * c.memory_bw
    c_w = c.peak_flops * c.compute
    c_16 = c.peak_flops_16 * c.compute
    weights = c.dense_bytes + c.moe_layers * _experts_touched_array(c, m, False) * c.expert_bytes
    e = np.where(c.num_experts > 0, c.num_experts, 1.0)
    q = 1.0 - c.experts_per_token / e
    dp = c.dp                                          # attention-side terms see m / dp
    with np.errstate(divide="ignore", invalid="ignore"):
        d_touched = np.where((c.num_experts > 0) & (q > 0),
                             -(e / c.ep) * q ** np.maximum(m, 0.0) * np.log(q), 0.0)
    weight_bound = weights / bw >= (c.flops_per_token * m / dp + c.expert_flops_per_token * m) / c_w
    d_linear = np.where(weight_bound, c.moe_layers * d_touched * c.expert_bytes / bw,
                        (c.flops_per_token / dp + c.expert_flops_per_token) / c_w) * dm
    pairs = batch / pp * context / dp
    prefill = batch * per_b / pp / dp
    kv_bound = (pairs + prefill) * c.kv_bytes_per_token / bw >= pairs * c.attn_flops_per_pair / c_16
    d_attn = np.where(kv_bound, (context + per_b) / pp * c.kv_bytes_per_token / bw,
                      context / pp * c.attn_flops_per_pair / c_16) / dp
    d_attn = d_attn + per_b / pp / dp * (span / 2.0) * c.attn_flops_per_pair / c_16
    t = c.tp
    d_ar = np.where(t == 1, 0.0, 2.0 * c.layers * (2.0 * (t - 1) / t * c.hidden * ACT_BYTES
                                                   / c.ar_bus_bw)) * dm
    d_p2p = np.where(pp == 1, 0.0, c.hidden * ACT_BYTES / c.p2p_bw) * dm
    # MoE layouts: the all-reduces left (a rank's m / dp tokens) and the all-to-all pair
    d_ar = d_ar * _allreduce_share_array(c) / dp
    d_a2a = np.where(c.ep == 1, 0.0, 2.0 * c.a2a_layers * (c.ep - 1) / c.ep * c.experts_per_token * c.hidden
                     * ACT_BYTES / (c.tp * dp * c.a2a_bus_bw)) * dm
    return pp * (d_linear + d_attn + d_ar + d_a2a) + (pp - 1) * d_p2p


def prefill_array(c: StepColumns, input_tokens: int,
                  prefix: PrefixWork | None = None) -> NDArray[np.float64]:
    """:func:`prefill_s` per element; with a cached prefix the chunks cover the new tokens only."""
    chunk_tokens = c.prefill_chunk_tokens.astype(np.int64)
    if prefix is None:
        n = np.maximum(1, -(-input_tokens // chunk_tokens)).astype(np.float64)
        chunk = input_tokens / n
        span: float = input_tokens
    else:
        n = np.maximum(1.0, np.ceil(prefix.new_tokens / chunk_tokens))
        chunk = prefix.new_tokens / n
        span = prefix.attn_prompt
    zero = np.zeros_like(chunk)
    one = c.pp * stage_time_array(c, decode=zero, prefill=chunk, context=0.0, prompt=span,
                                  spread=np.ones_like(chunk))
    one = one + ((c.pp - 1) * p2p_array(c, chunk) + c.step_overhead_ms * 1e-3)
    return n * one


def prefill_work_array(c: StepColumns, input_tokens: int,
                       prefix: PrefixWork | None = None) -> NDArray[np.float64]:
    """:func:`prefill_work_s` per element; with a cached prefix, of the new tokens only (their
    attention spanning ``attn_prompt / 2`` keys each)."""
    c_w = c.peak_flops * c.compute
    c_16 = c.peak_flops_16 * c.compute
    new, span = (input_tokens, input_tokens) if prefix is None else prefix
    tokens = new / c.dp
    flops = (c.flops_per_token * tokens + c.expert_flops_per_token * new) / c_w
    attn = tokens * (span / 2.0) * c.attn_flops_per_pair / c_16
    return (flops + attn + allreduce_array(c, tokens) * _allreduce_share_array(c)
            + moe_comm_array(c, tokens))


def _md1_wait_array(rate: NDArray[np.float64], service_s: NDArray[np.float64],
                    busy_s: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`md1_wait_s` per element (infinite where ``rho >= 1``)."""
    rho = rate * busy_s
    with np.errstate(divide="ignore", invalid="ignore"):
        w = rho * service_s / (2.0 * (1.0 - rho))
    return np.where(rho >= 1.0, np.inf, w)


def _fixed_batch(c: StepColumns, scale: NDArray[np.float64], rate: NDArray[np.float64],
                 b_hi: NDArray[np.float64], sh: DecodeShape,
                 start: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """Root of ``h(B) = B - rate (O-1) TPOT(max(B, 1e-9))`` in ``[0, b_hi]`` (sequences decoding at
    arrival rate ``rate``; ``O - 1`` is the shape's ``steps``), by safeguarded Newton to ~1e-14
    relative; see :func:`replica_perf_many` for why the root is unique. ``start`` is an initial
    guess (a nearby rate's root)."""
    k = rate * sh.steps
    lo = np.zeros_like(b_hi)
    hi = b_hi.copy()
    x = np.zeros_like(b_hi) if start is None else np.clip(start, 0.0, b_hi)
    for _ in range(100):
        xb = np.maximum(x, 1e-9)
        h = x - k * (_decode_step(c, xb, sh, False) * scale)
        dh = 1.0 - k * (_decode_slope(c, xb, sh) * scale)
        lo = np.where(h < 0, x, lo)
        hi = np.where(h > 0, x, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            xn = x - h / dh
        ok = np.isfinite(xn) & (xn > lo) & (xn < hi)
        xn = np.where(h == 0, x, np.where(ok, xn, 0.5 * (lo + hi)))
        done = (np.abs(xn - x) <= 1e-14 * np.maximum(xn, 1e-300)) | (hi - lo <= 1e-15 * hi)
        x = xn
        if done.all():
            break
    return x


def _replay_fixed_point_bisection(b_star: NDArray[np.float64],
                                  b_hi: NDArray[np.float64]) -> NDArray[np.float64]:
    """What the scalar bisection ``lo, hi = 0, b_hi; while hi - lo > 1e-7 max(1, hi): ...`` on
    ``mid < rate (O-1) TPOT(mid)`` returned (its upper end), replayed on the exact root: that
    test is ``mid < b_star`` (one root, ``h < 0`` left of it)."""
    lo = np.zeros_like(b_hi)
    hi = b_hi.copy()
    act = hi - lo > 1e-7 * np.maximum(1.0, hi)
    while act.any():
        mid = (lo + hi) / 2
        left = mid < b_star
        lo = np.where(act & left, mid, lo)
        hi = np.where(act & ~left, mid, hi)
        act = hi - lo > 1e-7 * np.maximum(1.0, hi)
    return hi


def _replay_rate_bisection(r_star: NDArray[np.float64], lam: NDArray[np.float64],
                           window: NDArray[np.float64],
                           meets_at: Callable[[NDArray[np.float64], NDArray[np.intp]], NDArray[np.bool_]],
                           ) -> NDArray[np.float64]:
    """The lower end of the scalar bisection on ``[0, lam]`` to ``1e-9 lam`` for the largest rate
    meeting the TTFT target, replayed on the exact root ``r_star`` (TTFT increases with rate).

    The scalar test at ``mid`` used a batch from a 1e-7 bisection, a hair above the exact one,
    so its TTFT is a hair higher than the exact curve's; within ``window`` of ``r_star`` (where
    that hair could change the answer) the test is made as the scalar code made it
    (``meets_at``), so the rate comes out bit for bit the same."""
    lo = np.zeros_like(lam)
    hi = lam.copy()
    tol = 1e-9 * lam
    act = hi - lo > tol
    while act.any():
        mid = (lo + hi) / 2
        meets = mid <= r_star
        near = np.flatnonzero(act & (np.abs(mid - r_star) <= window))
        if near.size:
            meets[near] = meets_at(mid[near], near)
        lo = np.where(act & meets, mid, lo)
        hi = np.where(act & ~meets, mid, hi)
        act = hi - lo > tol
    return lo


def _ttft_rate_root(c: StepColumns, scale: NDArray[np.float64], lam: NDArray[np.float64],
                    b_hi: NDArray[np.float64], b_lam: NDArray[np.float64],
                    s_prefill: NDArray[np.float64], s_busy: NDArray[np.float64], sh: DecodeShape,
                    ttft_ms: float, s_resid: NDArray[np.float64] | None = None,
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64],
                               NDArray[np.float64]]:
    """Rate in ``[0, lam]`` where ``W_q(rate) + S + TPOT(max(B(rate), 1)) = ttft_ms``
    (safeguarded Newton to 1e-13 lam; ``TTFT(0) <= ttft_ms < TTFT(lam)`` is known). ``s_prefill``
    is the prompt's own prefill ``S`` (the longest bucket's for a mix), ``s_resid`` the
    ``E[S^2] / E[S]`` of the P-K wait (default
    ``s_prefill``: deterministic service).

    Returns the rate, the batch there and ``dB/drate``, and the half-width around the rate
    where a 1e-7 fixed-point bisection's TTFT may test differently from the exact one: 8x (its
    TTFT excess, at most ``1e3 TPOT' 1e-7 max(1, B)``) / ``dTTFT/drate``, at least 1e-6 rate."""
    steps = sh.steps
    resid = s_prefill if s_resid is None else s_resid
    lo = np.zeros_like(lam)
    hi = lam.copy()
    x = lam.copy()
    b = b_lam.copy()
    for _ in range(100):
        b = _fixed_batch(c, scale, x, b_hi, sh, start=b)
        bc = np.maximum(b, 1.0)
        t = _decode_step(c, bc, sh, False) * scale
        f = (_md1_wait_array(x, resid, s_busy) + s_prefill + t) * 1e3 - ttft_ms
        slope = _decode_slope(c, bc, sh) * scale
        rho = x * s_busy
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            d_wait = s_busy * resid / (2.0 * (1.0 - rho) ** 2)
            db = steps * t / (1.0 - x * steps * slope)
            df = 1e3 * (d_wait + np.where(b > 1.0, slope * db, 0.0))
            xn = x - f / df
        lo = np.where(f <= 0, x, lo)
        hi = np.where(f > 0, x, hi)
        ok = np.isfinite(xn) & (xn > lo) & (xn < hi)
        xn = np.where(f == 0, x, np.where(ok, xn, 0.5 * (lo + hi)))
        done = (np.abs(xn - x) <= 1e-13 * lam) | (hi - lo <= 1e-13 * lam)
        x = xn
        if done.all():
            break
    b = _fixed_batch(c, scale, x, b_hi, sh, start=b)
    bc = np.maximum(b, 1.0)
    t = _decode_step(c, bc, sh, False) * scale
    slope = _decode_slope(c, bc, sh) * scale
    rho = x * s_busy
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        db = steps * t / (1.0 - x * steps * slope)
        d_wait = s_busy * resid / (2.0 * (1.0 - rho) ** 2)
        df = 1e3 * (d_wait + np.where(b > 1.0, slope * db, 0.0))
        excess = 1e3 * slope * 1e-7 * np.maximum(1.0, b)
        window = np.maximum(8.0 * excess / df, 1e-6 * x)
    window = np.where(np.isfinite(window), window, lam)
    return x, b, np.where(np.isfinite(db), db, 0.0), window


def _ttft_tail_rate(c: StepColumns, scale: NDArray[np.float64], lam: NDArray[np.float64],
                    b_hi: NDArray[np.float64], s_prefill: NDArray[np.float64],
                    moments: tuple[NDArray[np.float64], ...], s_busy: NDArray[np.float64], p: float,
                    target_ms: float, sh: DecodeShape,
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Largest rate in ``[0, lam]`` with ``S + W_p(rate) + TPOT(max(B(rate), 1)) <= target_ms``
    (the TTFT p-quantile, increasing in the rate; it meets the target at rate 0 and misses it at
    ``lam``), by bisection to ``1e-9 lam``; returns the rate, the batch there and its TPOT.
    ``moments``: the first three raw moments of the queue's service time (of ``S`` for one
    length; of the mix's ``S_b`` with ``s_prefill`` the longest, for a length mix)."""
    lo = np.zeros_like(lam)
    hi = lam.copy()
    b = np.zeros_like(lam)
    tol = 1e-9 * lam
    act = hi - lo > tol
    while act.any():
        mid = 0.5 * (lo + hi)
        b = _fixed_batch(c, scale, mid, b_hi, sh, start=b)
        t = _decode_step(c, np.maximum(b, 1.0), sh, True) * scale
        q = s_prefill + _queueing.wait_quantile(p, mid * s_busy, *moments) + t
        meets = q * 1e3 <= target_ms
        lo = np.where(act & meets, mid, lo)
        hi = np.where(act & ~meets, mid, hi)
        act = hi - lo > tol
    b = _fixed_batch(c, scale, lo, b_hi, sh, start=b)
    t = _decode_step(c, np.maximum(b, 1.0), sh, True) * scale
    return lo, b, t


def _ctx(sm: StepModel, ctx_scale: float) -> StepModel:
    """``sm`` with KV bytes and attention FLOPs per context token scaled for sliding windows."""
    if ctx_scale >= 1.0:
        return sm
    return replace(sm, kv_bytes_per_token=sm.kv_bytes_per_token * ctx_scale,
                   attn_flops_per_pair=sm.attn_flops_per_pair * ctx_scale)


__all__ = [
    "DecodeShape",
    "Efficiency",
    "MeasuredPoint",
    "PerfQuery",
    "PrefixWork",
    "ReplicaPerf",
    "StepColumns",
    "StepModel",
    "TailTargets",
    "allreduce_array",
    "allreduce_s",
    "decode_shape",
    "decode_slope_array",
    "decode_step_array",
    "decode_step_s",
    "load_efficiency",
    "md1_wait_s",
    "moe_alltoall_bytes",
    "moe_comm_array",
    "moe_comm_s",
    "p2p_array",
    "prefill_array",
    "prefill_s",
    "prefill_work_array",
    "prefill_work_s",
    "prefix_work",
    "replica_perf",
    "replica_perf_many",
    "replica_perf_mix_many",
    "stage_time_array",
    "stage_time_s",
    "step_model",
]
