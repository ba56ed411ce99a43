"""Weight bytes, KV-cache bytes and vLLM serving memory, from a :class:`ModelArch`.

Units: bytes (``int``) unless a name says otherwise; ``GiB`` = 2**30 bytes.

Serving memory follows the rules of **vLLM v0.6.3/v0.6.4 (V0 engine)**, the release named in
``EngineSettings.engine_version``:

* ``vllm/worker/worker.py`` ``Worker.determine_num_available_blocks``: after a profiling forward
  pass (``ModelRunner.profile_run``) over ``max_num_batched_tokens`` tokens,
  ``available_kv = total_gpu_memory * gpu_memory_utilization - peak_torch_memory - non_torch``
  where ``peak_torch_memory`` = weights + activation peak, and
  ``num_gpu_blocks = available_kv // cache_block_size`` (``CacheEngine.get_cache_block_size``:
  ``block_size * num_layers * 2 * num_kv_heads * head_size * dtype_size`` per rank).
* ``vllm/executor/distributed_gpu_executor.py``: the engine takes the **minimum** block count over
  all workers, and logs ``Maximum concurrency for {max_model_len} tokens per request:
  num_gpu_blocks * block_size / max_model_len``.
* ``vllm/config.py`` ``SchedulerConfig``: without chunked prefill ``max_num_batched_tokens``
  defaults to ``max(max_model_len, 2048)``; v0.6.x turns chunked prefill on by default for
  ``max_model_len > 32768`` with a 512-token budget (observed in vllm-project/vllm#10517: at 35k
  the activation peak falls to 0.06 GiB).
* ``ModelRunner.capture_model`` captures CUDA graphs **after** the KV cache is allocated, so graph
  memory is not taken from the KV budget; it must fit in the ``1 - gpu_memory_utilization``
  headroom (reported separately here).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

from optimizer.errors import UsageError
from optimizer.schema.engine import EngineSettings
from optimizer.sizing import quant
from optimizer.sizing.architecture import (
    LinearShape,
    ModelArch,
    attention_linears,
    ceil_div,
    gated_mlp,
    kv_tokens_held,
    norm_params,
)
from optimizer.units import GIB

#: Bytes per weight element of a dense (unquantised or fp8) tensor.
#: FP4, W8A8/W4A8 and GGUF formats: nominal bytes of their bulk linears (``quant.NOMINAL_BYTES``);
#: exact bytes per tensor come from ``optimizer/sizing/quant.py``.
WEIGHT_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5,
                **quant.NOMINAL_BYTES}
#: Bytes per KV element; ``auto`` = the model's 16-bit activation dtype (vLLM ``CacheConfig``);
#: ``fp8`` = E4M3 (vLLM ``--kv-cache-dtype fp8``); ``int8`` (TensorRT-LLM ``kv_cache_quant_algo
#: INT8``, LMDeploy ``quant_policy=8``, llama.cpp ``-ctk q8_0`` ~1.06 B): which engines run it is
#: the engine profile's rule.
KV_BYTES = {"auto": 2, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "fp32": 4}
#: Activation bytes in serving: vLLM runs bf16/fp16 activations for all weight formats here.
ACT_BYTES = 2

#: Non-torch memory of one rank (CUDA context, cuBLAS workspace): ``non_torch_memory=0.35GiB``
#: in the v0.6.4 profiling log of vllm-project/vllm#10517 (Llama-3.1-8B, RTX 3090, TP=1).
NON_TORCH_BYTES_TP1 = int(0.35 * GIB)
#: Extra non-torch memory per rank when TP > 1 (NCCL communicators, custom all-reduce buffers):
#: ``non_torch_memory takes 0.20GiB`` per TP worker in the V0 log quoted in
#: vllm-project/vllm#14447 (estimate: one log, 4 x 24 GiB GPUs).
NCCL_BYTES_TP = int(0.20 * GIB)
#: CUDA-graph memory (estimate): ``Graph capturing finished in 14 secs, took 0.21 GiB`` for
#: Llama-3.2-1B (16 layers, TP=1) in vllm-project/vllm#11349; scaled by layers per rank because
#: each captured graph holds one set of kernel nodes per layer.
CUDA_GRAPH_BYTES_PER_LAYER = int(0.21 * GIB / 16)
#: v0.6.x chunked-prefill token budget for long contexts, and the context length that turns it on.
V0_CHUNKED_PREFILL_TOKENS = 512
V0_CHUNKED_PREFILL_ABOVE = 32768


def _check_precision(precision: str) -> None:
    if precision not in WEIGHT_BYTES:
        raise UsageError(f"unknown precision {precision!r}", field="precision",
                         hint=f"use one of {', '.join(WEIGHT_BYTES)}")


def _check_kv(kv_dtype: str) -> None:
    if kv_dtype not in KV_BYTES:
        raise UsageError(f"unknown KV dtype {kv_dtype!r}", field="kv_dtype",
                         hint=f"use one of {', '.join(KV_BYTES)}")


def linear_bytes(in_features: int, out_features: int, precision: str, *, group_size: int = 128,
                 quant_format: str = "gptq", bias: bool = False) -> int:
    """Bytes of one ``in x out`` weight matrix stored at ``precision``.

    * fp32 / bf16 / fp16: ``in * out * b``.
    * fp8 (vLLM ``Fp8LinearMethod`` checkpoints, e.g. llm-compressor FP8): ``in * out`` bytes plus
      one fp32 ``weight_scale`` per tensor.
    * int4 / int8 weight-only (AutoGPTQ ``QuantLinear`` layout; AWQ ``WQLinear_GEMM`` the same
      without ``g_idx``): ``qweight`` ``in * out * bits / 8``; ``scales`` fp16
      ``ceil(in / g) * out * 2``; ``qzeros`` ``ceil(in / g) * out * bits / 8``; GPTQ also stores
      ``g_idx`` int32 ``in * 4``. For int4, g = 128: 0.5 + 2/128 + 0.5/128 = 0.5195 B/weight.
    * bias: kept in 16 bit (fp32 for fp32 models).
    """
    _check_precision(precision)
    n = in_features * out_features
    bias_bytes = out_features * (4 if precision == "fp32" else 2) if bias else 0
    if precision in ("fp32", "bf16", "fp16"):
        return int(n * WEIGHT_BYTES[precision]) + bias_bytes
    if precision == "fp8":
        if quant_format in ("block", "channel"):  # DeepSeek-V3 / Qwen3-FP8; compressed-tensors
            return quant.fp8_linear_bytes(in_features, out_features, quant_format) + bias_bytes
        return n + 4 + bias_bytes
    if precision in quant.BLOCK_FORMATS:
        return quant.linear_bytes(in_features, out_features, precision, group_size) + bias_bytes
    if quant.is_gguf(precision):
        raise UsageError(f"{precision} (GGUF) is sized per tensor, not per linear",
                         field="precision", hint="use weight_bytes / stage_weight_bytes")
    bits = 4 if precision == "int4" else 8
    groups = ceil_div(in_features, group_size) if group_size > 0 else 1
    qweight = n * bits // 8
    scales = groups * out_features * 2
    qzeros = groups * out_features * bits // 8
    g_idx = 4 * in_features if quant_format == "gptq" else 0
    return qweight + scales + qzeros + g_idx + bias_bytes


def _unquantised(shape: LinearShape, precision: str) -> bool:
    """MoE routers stay 16 bit in GPTQ/AWQ/FP8 checkpoints (vLLM builds ``gate`` as an
    unquantised ``ReplicatedLinear``, ``quant_config=None``)."""
    return shape.component == "router" and precision not in ("fp32",)


def _shape_bytes(shape: LinearShape, precision: str, group_size: int, quant_format: str,
                 tp: int = 1, kv_heads: int = 0, head_dim: int = 0) -> int:
    """Bytes of ``shape.count`` matrices on one TP rank (vLLM ``linear.py`` sharding)."""
    prec = "bf16" if _unquantised(shape, precision) else precision
    fin, fout = shape.in_features, shape.out_features
    if tp > 1:
        if shape.parallel == "column":
            fout = ceil_div(fout, tp)
        elif shape.parallel == "row":
            fin = ceil_div(fin, tp)
        elif shape.parallel == "kv":
            # QKVParallelLinear: each rank holds max(1, kv_heads // tp) KV heads; replicated
            # when tp > kv_heads (num_kv_head_replicas = tp // kv_heads).
            fout = max(1, kv_heads // tp) * head_dim
    one = linear_bytes(fin, fout, prec, group_size=group_size, quant_format=quant_format,
                       bias=shape.bias)
    return shape.count * one


def _layer_shapes(arch: ModelArch, moe_layer: bool) -> list[LinearShape]:
    """Weight matrices of one decoder layer (dense or MoE)."""
    h = arch.hidden_size
    shapes = attention_linears(arch, 1)
    if moe_layer:
        shapes += gated_mlp("experts_routed", h, arch.moe_intermediate_size, arch.num_experts,
                            arch.mlp_bias)
        if arch.shared_expert_intermediate_size:
            shapes += gated_mlp("experts_shared", h, arch.shared_expert_intermediate_size, 1,
                                arch.mlp_bias)
        shapes.append(LinearShape("router", h, arch.num_experts, 1, False, "replicated"))
        if arch.shared_expert_gate:
            shapes.append(LinearShape("router", h, 1, 1, False, "replicated"))
    else:
        shapes += gated_mlp("mlp_dense", h, arch.intermediate_size, 1, arch.mlp_bias)
    return shapes


def _applies_exclusions(arch: ModelArch, precision: str) -> bool:
    """A config's ``quantization_config`` exclusions change the bytes only for a quantised
    safetensors precision (16/32-bit has nothing to keep back; GGUF types are llama.cpp's)."""
    return bool(arch.quant_exclusions) and precision not in ("fp32", "bf16", "fp16") \
        and not quant.is_gguf(precision)


def _layer_module_names(arch: ModelArch, moe_layer: bool, i: int) -> list[list[str]]:
    """Hugging Face module names of the matrices of decoder layer ``i``, one list per
    :func:`_layer_shapes` entry (same order, ``len == count``): ``model.layers.{i}.self_attn.q_proj``
    ... (``LlamaAttention``; MLA ``q_a_proj``/``q_b_proj``/``kv_a_proj_with_mqa``/``kv_b_proj``),
    ``mlp.{gate,up,down}_proj``, routed experts ``mlp.experts.{e}.*`` (Mixtral
    ``block_sparse_moe.experts.{e}.w1/w3/w2``), shared experts ``mlp.shared_expert.*`` (Qwen2-MoE)
    / ``mlp.shared_experts.*`` (DeepSeek), routers ``mlp.gate`` and ``mlp.shared_expert_gate``."""
    p = f"model.layers.{i}."
    if arch.is_mla:
        attn = (["q_a_proj", "q_b_proj"] if arch.q_lora_rank else ["q_proj"]) + \
            ["kv_a_proj_with_mqa", "kv_b_proj", "o_proj"]
    else:
        attn = ["q_proj", "k_proj", "v_proj", "o_proj"]
    out = [[f"{p}self_attn.{n}"] for n in attn]
    fused = arch.family in ("glm", "glm4")  # one gate_up_proj

    def gated(base: str, names: tuple[str, str, str], experts: int | None) -> None:
        ids = [f".{e}." for e in range(experts)] if experts is not None else ["."]
        g, u, d = names
        out.append([f"{base}{x}{g}" for x in ids] + [f"{base}{x}{u}" for x in ids])
        out.append([f"{base}{x}{d}" for x in ids])

    if moe_layer:
        mixtral = arch.family == "mixtral"
        mlp = f"{p}block_sparse_moe" if mixtral else f"{p}mlp"
        gated(f"{mlp}.experts", ("w1", "w3", "w2") if mixtral else ("gate_proj", "up_proj", "down_proj"),
              arch.num_experts)
        if arch.shared_expert_intermediate_size:
            shared = "shared_experts" if arch.family.startswith("deepseek") else "shared_expert"
            out += [[f"{mlp}.{shared}.gate_proj", f"{mlp}.{shared}.up_proj"], [f"{mlp}.{shared}.down_proj"]]
        out.append([f"{mlp}.gate"])
        if arch.shared_expert_gate:
            out.append([f"{mlp}.shared_expert_gate"])
    elif fused:
        out += [[f"{p}mlp.gate_up_proj"] * 2, [f"{p}mlp.down_proj"]]
    else:
        gated(f"{p}mlp", ("gate_proj", "up_proj", "down_proj"), None)
    return out


def _excluded_count(arch: ModelArch, moe_layer: bool, i: int) -> list[int]:
    """How many matrices of each :func:`_layer_shapes` entry of layer ``i`` the config's
    ``quantization_config`` keeps in 16 bit (``quant.is_excluded``)."""
    return [sum(quant.is_excluded(n, arch.quant_exclusions) for n in names)
            for names in _layer_module_names(arch, moe_layer, i)]


@lru_cache(maxsize=1 << 14)
def _layer_bytes(arch: ModelArch, moe_layer: bool, precision: str, tp: int, group_size: int,
                 quant_format: str, ep: int = 1, layer: int = -1) -> int:
    """Bytes of one decoder layer on one TP rank: linears (sharded) + norms (replicated, 16 bit
    or fp32) + the router's score-correction bias (DeepSeek-V3).

    ``ep > 1`` (expert parallel): the routed experts are not TP-sharded but distributed whole,
    ``num_experts / ep`` of them per GPU (vLLM ``FusedMoE`` with ``--enable-expert-parallel``:
    ``local_num_experts = global_num_experts // ep_size``, each with the full intermediate size;
    TensorRT-LLM docs "Expert Parallelism": "each GPU holds part of the experts' full weight");
    attention, dense MLPs, shared experts and routers stay as TP shards of the ``tp`` ranks.

    Cached: a pure function of hashable arguments (``ModelArch`` is frozen) returning an int;
    every PP split and every GPU of a (model, precision, TP) reuses it.

    ``layer >= 0`` with a config whose ``quantization_config`` lists modules not converted
    (:func:`_applies_exclusions`): the matrices of layer ``layer`` it names are sized at 16 bit
    (``bf16`` bytes; fp32 scales dropped), the rest at ``precision``. Under EP an excluded share
    of the routed experts is spread evenly, ``ceil(excluded / ep)`` per GPU (an estimate: which
    experts a rank holds is not modelled)."""
    shapes = _layer_shapes(arch, moe_layer)
    excluded = _excluded_count(arch, moe_layer, layer) \
        if layer >= 0 and _applies_exclusions(arch, precision) else [0] * len(shapes)
    total = 0
    for s, x in zip(shapes, excluded, strict=True):
        if ep > 1 and s.component == "experts_routed":
            s, x = replace(s, count=s.count // ep), min(s.count // ep, ceil_div(x, ep))
            kw: dict[str, int] = {}
        else:
            kw = {"tp": tp, "kv_heads": arch.num_kv_heads, "head_dim": arch.head_dim}
        if x:
            total += _shape_bytes(replace(s, count=x), "bf16", group_size, quant_format, **kw)
        if s.count - x:
            total += _shape_bytes(replace(s, count=s.count - x), precision, group_size, quant_format, **kw)
    norm_b = 4 if precision == "fp32" else 2
    per_layer_norms = (norm_params(arch) - arch.hidden_size) // max(1, arch.num_layers)
    total += per_layer_norms * norm_b
    if moe_layer and arch.router_bias:
        total += arch.num_experts * 4  # e_score_correction_bias is fp32 in the checkpoint
    return total


def _embed_bytes(arch: ModelArch, precision: str, tp: int) -> tuple[int, int]:
    """(embedding, lm_head) bytes per rank: VocabParallelEmbedding / ParallelLMHead split the
    vocabulary over TP ranks; both stay 16 bit in GPTQ/AWQ/FP8 checkpoints."""
    b = 4 if precision == "fp32" else 2
    rows = ceil_div(arch.vocab_size, tp)
    embed = rows * arch.hidden_size * b
    head = 0 if arch.tie_word_embeddings else embed
    return embed, head


def weight_bytes(arch: ModelArch, precision: str, *, group_size: int = 128,
                 quant_format: str = "gptq") -> int:
    """Bytes of the whole model's weights at ``precision``.

    ``sum_layers(linears at precision + norms at 16 bit) + embedding + lm_head (16 bit, untied
    only) + final norm``; see :func:`linear_bytes` for each format's layout. For bf16 this is
    ``2 x param_counts(arch).total`` (Llama-2-7B: 13,476,831,232 B against the 13,476,839,424 B of
    its published safetensors, the difference being the files' headers).
    """
    return weight_bytes_per_gpu(arch, precision, 1, 1, group_size=group_size,
                                quant_format=quant_format)


def pp_layer_ranges(num_layers: int, pp: int) -> list[range]:
    """Layers per pipeline stage, as vLLM ``distributed/utils.py`` ``get_pp_indices``: an even
    split, the remainder given to the stages before the last one (from the second-to-last down)."""
    if pp < 1:
        raise UsageError("pipeline parallel size must be >= 1", field="pp")
    per = num_layers // pp
    sizes = [per] * pp
    for i in range(2, num_layers % pp + 2):
        sizes[-i] += 1
    out, start = [], 0
    for size in sizes:
        out.append(range(start, start + size))
        start += size
    return out


def stage_weight_bytes(arch: ModelArch, precision: str, tp: int, pp: int, *,
                       group_size: int = 128, quant_format: str = "gptq", ep: int = 1) -> list[int]:
    """Weight bytes of one TP rank in each pipeline stage (first stage holds the embedding, the
    last the final norm and lm_head; a tied lm_head is stored again on the last stage when
    pp > 1, as vLLM does). ``ep``: expert-parallel size (routed experts whole, ``E / ep`` per
    GPU; :func:`_layer_bytes`); ``ep`` must divide the expert count.

    Cached (:func:`_stage_weight_bytes_cached`, a pure function of hashable arguments); each
    call gets its own list."""
    _check_precision(precision)
    if tp < 1:
        raise UsageError("tensor parallel size must be >= 1", field="tp")
    if ep > 1 and (not arch.is_moe or arch.num_experts % ep):
        raise UsageError(f"expert parallel size {ep} needs a MoE model whose expert count it divides "
                         f"({arch.name}: {arch.num_experts} experts)", field="ep")
    if ep > 1 and quant.is_gguf(precision):
        raise UsageError("expert parallel is not modelled for GGUF weights", field="ep")
    return list(_stage_weight_bytes_cached(arch, precision, tp, pp, group_size, quant_format, ep))


@lru_cache(maxsize=1 << 14)
def _stage_weight_bytes_cached(arch: ModelArch, precision: str, tp: int, pp: int, group_size: int,
                               quant_format: str, ep: int = 1) -> tuple[int, ...]:
    """:func:`stage_weight_bytes` as a tuple (every argument is part of the cache key)."""
    if quant.is_gguf(precision):  # per-tensor types vary by layer (llama.cpp rules)
        return quant.gguf_stage_bytes(arch, precision, tp, pp_layer_ranges(arch.num_layers, pp))
    moe_set = set(arch.moe_layer_indices)
    if _applies_exclusions(arch, precision):  # the config names modules per layer: size each one
        per_layer = [_layer_bytes(arch, i in moe_set, precision, tp, group_size, quant_format,
                                  ep if i in moe_set else 1, i) for i in range(arch.num_layers)]
    else:
        dense_b = _layer_bytes(arch, False, precision, tp, group_size, quant_format) \
            if arch.num_dense_layers else 0
        moe_b = _layer_bytes(arch, True, precision, tp, group_size, quant_format, ep) \
            if arch.num_moe_layers else 0
        per_layer = [moe_b if i in moe_set else dense_b for i in range(arch.num_layers)]
    embed, head = _embed_bytes(arch, precision, tp)
    norm_b = (4 if precision == "fp32" else 2) * arch.hidden_size
    ranges = pp_layer_ranges(arch.num_layers, pp)
    out = []
    for s, layers in enumerate(ranges):
        total = sum(per_layer[i] for i in layers)
        if s == 0:
            total += embed
        if s == len(ranges) - 1:
            total += norm_b + (head if head or pp == 1 else embed)
        out.append(total)
    return tuple(out)


def weight_bytes_per_gpu(arch: ModelArch, precision: str, tp: int = 1, pp: int = 1, *,
                         group_size: int = 128, quant_format: str = "gptq", ep: int = 1) -> int:
    """Weight bytes on the most loaded GPU (worst rank) under TP x PP.

    Per rank: column-parallel outputs and row-parallel inputs are split ``1/tp``; K/V projections
    hold ``max(1, kv_heads // tp)`` heads (replicated once tp > kv heads); MLA's ``q_a_proj`` and
    ``kv_a_proj_with_mqa``, MoE routers and norms are replicated; vocabulary rows are split;
    layers are split over stages by :func:`pp_layer_ranges`. (vLLM ``linear.py``,
    ``vocab_parallel_embedding.py``, ``distributed/utils.py``.)
    """
    return max(stage_weight_bytes(arch, precision, tp, pp, group_size=group_size,
                                  quant_format=quant_format, ep=ep))


# ------------------------------------------------------------------------------------------
# KV cache
# ------------------------------------------------------------------------------------------


def kv_heads_per_gpu(arch: ModelArch, tp: int) -> int:
    """KV heads each rank stores: ``max(1, kv_heads // tp)`` (vLLM ``ModelConfig.get_num_kv_heads``);
    MLA stores one latent per rank (``use_mla``: 1)."""
    if arch.is_mla:
        return 1
    return max(1, arch.num_kv_heads // tp)


def _kv_elements_per_token_per_layer(arch: ModelArch, tp: int) -> int:
    if arch.is_mla:
        # MLA caches the compressed latent c_kv (kv_lora_rank) and the shared rope key
        # (qk_rope_head_dim) once per token and layer (DeepSeek-V2 paper, arXiv:2405.04434 §2.1;
        # vLLM ``MLACommonImpl``: head_size = kv_lora_rank + qk_rope_head_dim, 1 head), and every
        # TP rank keeps a full copy.
        return arch.kv_lora_rank + arch.qk_rope_head_dim
    return 2 * kv_heads_per_gpu(arch, tp) * arch.head_dim


def kv_bytes_per_token_per_gpu(arch: ModelArch, kv_dtype: str = "auto", tp: int = 1,
                               pp: int = 1) -> int:
    """KV bytes one token occupies on one GPU (the stage with the most layers).

    GQA/MHA: ``2 (K and V) x layers_per_stage x max(1, kv_heads // tp) x head_dim x bytes``;
    MLA: ``layers_per_stage x (kv_lora_rank + qk_rope_head_dim) x bytes`` on every rank.
    Sliding-window layers are counted in full here: vLLM v0.6 allocates the same block tensors
    for every layer (see :func:`kv_tokens_held` for the per-sequence saving).
    """
    _check_kv(kv_dtype)
    layers = max(len(r) for r in pp_layer_ranges(arch.num_layers, pp))
    return layers * _kv_elements_per_token_per_layer(arch, tp) * KV_BYTES[kv_dtype]


def kv_bytes_per_token(arch: ModelArch, kv_dtype: str = "auto", tp: int = 1) -> int:
    """KV bytes per token for a whole replica: the sum over its ``tp`` ranks, all layers.

    Per GPU it is exactly ``kv_bytes_per_token(...) / tp`` (see
    :func:`kv_bytes_per_token_per_gpu`), because every rank holds the same amount. When
    ``tp <= kv_heads`` (GQA/MHA) this equals the model's logical KV,
    ``2 x layers x kv_heads x head_dim x bytes``; when ``tp > kv_heads`` KV heads are replicated
    and the replica total grows to ``tp x 2 x layers x head_dim x bytes``; for MLA every rank
    keeps a full latent copy, so the replica total is ``tp x`` the logical MLA size.
    """
    return tp * kv_bytes_per_token_per_gpu(arch, kv_dtype, tp, 1)


# ------------------------------------------------------------------------------------------
# Serving memory (vLLM)
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryLine:
    name: str
    bytes: int
    note: str


@dataclass(frozen=True)
class ServingMemory:
    """Per-GPU memory account of one replica, as vLLM's start-up profiling would do it."""

    engine: str
    gpu_memory_bytes: int
    gpu_memory_utilization: float
    budget_bytes: int
    weight_bytes: int
    activation_peak_bytes: int
    non_torch_bytes: int
    cuda_graph_bytes: int
    kv_cache_bytes: int
    kv_bytes_per_token_per_gpu: int
    block_size_tokens: int
    block_bytes: int
    num_gpu_blocks: int
    kv_cache_tokens: int
    max_model_len: int
    max_concurrency: float
    profile_tokens: int
    fits: bool
    reason: str
    breakdown: tuple[MemoryLine, ...] = field(default_factory=tuple)
    #: Expert-parallel size and attention data-parallel ranks of the layout (``docs/perf.md``
    #: "MoE layouts"). Every figure above is per GPU; the KV figures are those of ONE DP rank
    #: (each rank caches only its own sequences, with the KV heads split over its ``tp`` GPUs),
    #: so the replica holds ``dp x kv_cache_tokens`` (:attr:`replica_kv_tokens`).
    ep: int = 1
    dp: int = 1
    #: Communication reserve of one rank (:func:`comm_reserve_terms`), part of ``non_torch_bytes``.
    comm_reserve_bytes: int = 0

    @property
    def replica_kv_tokens(self) -> int:
        """KV tokens of the whole replica: ``dp x`` one DP rank's cache."""
        return self.dp * self.kv_cache_tokens


def default_profile_tokens(settings: EngineSettings, max_model_len: int) -> int:
    """Tokens of the profiling pass: ``settings.max_num_batched_tokens`` when given, else vLLM
    v0.6.x's default (``SchedulerConfig``): 512 with chunked prefill (on by default above 32768
    tokens of context), otherwise ``max(max_model_len, 2048)``. An omitted value is ``None``, so
    writing a default and leaving it out give the same answer."""
    if settings.max_num_batched_tokens is not None:
        return settings.max_num_batched_tokens
    if max_model_len > V0_CHUNKED_PREFILL_ABOVE:
        return V0_CHUNKED_PREFILL_TOKENS
    return max(max_model_len, 2048)


def activation_peak_bytes(arch: ModelArch, tokens: int, tp: int = 1, ep: int = 1) -> int:
    """Peak transient memory of one forward pass over ``tokens`` tokens on one rank.

    The peak sits in the feed-forward block, where vLLM keeps live at once (``LlamaMLP.forward``
    and ``LlamaDecoderLayer.forward``): the residual and the normed input (``2h``), the
    ``gate_up`` output (``2i/tp``), the activation output (``i/tp``) and the ``down_proj`` output
    (``h``): ``T x (3h + 3i/tp) x 2 B``. For MoE layers (``fused_moe.fused_experts``): ``3h`` plus
    per routed copy ``k x (max(2N, h) + N)`` with ``N = moe_intermediate/tp`` (intermediate
    caches 1/3 share one buffer, cache 2 separate). Attention (``q, k, v`` and output,
    ``(n_q + 2 n_kv) d/tp + n_q d/tp + 2h``) is taken when larger. Checked against the v0.6.4
    log of vllm-project/vllm#10517 (Llama-3.1-8B: 2.06 GiB predicted, 2.07 GiB logged at
    20,000 tokens). With expert parallel (``ep > 1``) each GPU runs whole experts, so ``N`` is
    the full ``moe_intermediate_size``; the caches are still sized for every routed copy
    (``fused_experts`` allocates ``intermediate_cache1`` as ``(M, top_k, N)`` whatever the
    ``expert_map``).
    """
    h = arch.hidden_size
    dense = 3 * h + 3 * ceil_div(arch.intermediate_size, tp) if arch.num_dense_layers else 0
    moe = 0
    if arch.num_moe_layers:
        n = arch.moe_intermediate_size if ep > 1 else ceil_div(arch.moe_intermediate_size, tp)
        moe = 3 * h + arch.experts_per_token * (max(2 * n, h) + n)
        if arch.shared_expert_intermediate_size:
            moe = max(moe, 3 * h + 3 * ceil_div(arch.shared_expert_intermediate_size, tp))
    if arch.is_mla:
        q = arch.num_attention_heads * (arch.qk_nope_head_dim + arch.qk_rope_head_dim)
        attn = 2 * h + ceil_div(2 * q + arch.num_attention_heads * arch.v_head_dim, tp)
    else:
        d = arch.head_dim
        qkv = (arch.num_attention_heads + 2 * arch.num_kv_heads) * d
        attn = 2 * h + ceil_div(qkv + arch.num_attention_heads * d, tp)
    return tokens * max(dense, moe, attn) * ACT_BYTES



def cuda_graph_bytes(arch: ModelArch, pp: int = 1) -> int:
    """Estimated CUDA-graph pool per rank: :data:`CUDA_GRAPH_BYTES_PER_LAYER` x layers per stage."""
    layers = max(len(r) for r in pp_layer_ranges(arch.num_layers, pp))
    return CUDA_GRAPH_BYTES_PER_LAYER * layers


# ------------------------------------------------------------------------------------------
# Communication reserve (tensor parallel): NCCL communicators + the engine's all-reduce buffers
# ------------------------------------------------------------------------------------------

MIB = 1 << 20
#: Device memory from which a GPU is taken as an NVLink / NVSwitch-class part, where the engines'
#: IPC all-reduce buffers are allocated (same threshold as ``engines.base.LARGE_GPU_GIB``).
NVLINK_GPU_GIB = 70
#: One NCCL connection's protocol buffers (NVIDIA/nccl ``src/init.cc``: ``DEFAULT_LL_BUFFSIZE`` =
#: 8 lines x 512 threads x 8 steps x 16 B, ``DEFAULT_LL128_BUFFSIZE`` = 120 x 640 x 8 x 8 B,
#: ``DEFAULT_BUFFSIZE`` = ``NCCL_BUFFSIZE`` 4 MiB; constants of ``src/include/device.h`` at
#: 0524aef7): 9.19 MiB. Documentation of the scale only: communicator memory is channels x
#: connected peers x this, which NCCL decides at run time, so the figures below are measured.
NCCL_CONNECTION_BYTES = 8 * 512 * 8 * 16 + 120 * 640 * 8 * 8 + 4 * MIB
#: Measured NCCL memory of one rank, by TP group size: AIConfigurator 0.12
#: ``systems/h100_sxm.yaml`` ``misc.nccl_mem`` (342 MiB at 2, 392 MiB at 4 and 8; NCCL 2.27.3,
#: marked "nonofficial correction based on observations"; the same table for every system), the
#: figure AIConfigurator adds to each TensorRT-LLM / vLLM / SGLang worker.
AIC_NCCL_MEM_BYTES = {2: 358_612_992, 4: 411_041_792, 8: 411_041_792}
#: Distributed initialisation of one rank on an NVSwitch Hopper node: sgl-project/sglang#11716
#: (H200, TP 8) logs "Init torch distributed ends. mem usage=2.01 GB" (SGLang's GB = 2**30 B,
#: measured from free memory after ``set_device``, so without the CUDA context). It holds the
#: torch / PyNccl communicators of the world and TP groups and SGLang's custom all-reduce buffers.
DIST_INIT_BYTES_NVSWITCH = int(2.01 * GIB)
#: Custom all-reduce buffers of one rank in vLLM and SGLang: ``max_size`` 8 MiB (``8192 * 1024``),
#: allocated as ``meta_ptrs`` (``meta_size() + max_size``; the few-KiB signal block is left out),
#: ``buffer_ptrs`` (``max_size``) and ``rank_data`` (8 MiB; SGLang: ``max_size``).
#: vllm-project/vllm ``vllm/distributed/device_communicators/custom_all_reduce.py`` at 00d618aa;
#: sgl-project/sglang ``python/sglang/srt/distributed/device_communicators/custom_all_reduce.py``
#: at 004e6561. Enabled for TP 2, 4, 6, 8 on NVLink, and for TP 2 over PCIe.
CUSTOM_AR_MAX_BYTES = 8 * MIB
CUSTOM_AR_RANK_DATA_BYTES = 8 * MIB
CUSTOM_AR_WORLD_SIZES = (2, 4, 6, 8)
#: NCCL share of :data:`DIST_INIT_BYTES_NVSWITCH`: the log less SGLang's custom all-reduce buffers.
NCCL_NVSWITCH_TP8_BYTES = DIST_INIT_BYTES_NVSWITCH - (2 * CUSTOM_AR_MAX_BYTES + CUSTOM_AR_MAX_BYTES)
#: vLLM torch symmetric-memory all-reduce (``VLLM_ALLREDUCE_USE_SYMM_MEM``; on by default for the TP
#: group from vllm-project/vllm#25070, 2025-09-17, so from v0.11.0; #26925 turned it off again
#: in Oct 2025 and main at 00d618aa reads "1"): one buffer of ``SYMM_MEM_ALL_REDUCE_MAX_SIZES["9.0"]``
#: per rank and, with it, custom all-reduce capped at ``CUSTOM_ALL_REDUCE_MAX_SIZES["9.0"]``
#: (``all_reduce_utils.py`` at 00d618aa, Hopper; needs NVSwitch multicast).
VLLM_SYMM_MEM_FROM = (0, 11)
VLLM_SYMM_MEM_BYTES = {2: 64 * MIB, 4: 32 * MIB, 6: 64 * MIB, 8: 64 * MIB}
VLLM_CUSTOM_AR_CAP_WITH_SYMM = {2: 64 * MIB, 4: 32 * MIB, 6: MIB // 2, 8: MIB // 4}
#: TensorRT-LLM (PyTorch flow) all-reduce workspace: ``_torch/distributed/ops.py``
#: ``get_allreduce_workspace`` calls ``CustomAllReduceHelper.allocate_allreduce_fusion_workspace``
#: (``tensorrt_llm/plugin/plugin.py``) with ``max_workspace_size_auto(tp)`` = 16,000,000 B at
#: TP <= 2, else 8,000,000 B: IPC buffers ``size x tp``, Lamport buffers ``3 x size x tp`` and
#: barriers ``256 x tp`` bytes per rank (ops.py at 9e776418).
TRTLLM_AR_WORKSPACE_BYTES = {True: 16_000_000, False: 8_000_000}


def _vllm_version(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split(".")[:2])


def comm_reserve_terms(engine: str, tp: int, *, gpu_memory_gib: float, engine_version: str = "",
                       pp: int = 1) -> tuple[MemoryLine, ...]:
    """Memory one rank holds for tensor-parallel communication, term by term (empty at ``tp`` 1).

    ``tp`` is the size of the all-reduce group (``tp x dp`` under attention data parallel).

    * **NCCL communicators.** vLLM and SGLang on NVLink-class GPUs (>= :data:`NVLINK_GPU_GIB`):
      :data:`NCCL_NVSWITCH_TP8_BYTES` (the sglang#11716 TP-8 log less custom all-reduce), scaled
      to smaller groups by AIConfigurator's TP shape (x 342/392 at TP 2; estimate: the log is at
      TP 8 only). Checked at TP 2 against vllm-project/vllm#10511 (H100, Llama-3-8B): non-torch
      memory 1.79 GiB at TP 1, 3.58 GiB at TP 2, a 1.79 GiB rise; this rule gives 1.76 GiB
      with the custom all-reduce buffers. On smaller (PCIe) GPUs :data:`NCCL_BYTES_TP` (0.20 GiB,
      the 4 x 24 GiB V0 log of vllm#14447, custom all-reduce off there). TensorRT-LLM:
      :data:`AIC_NCCL_MEM_BYTES`, AIConfigurator's figure for one communicator (TensorRT-LLM
      keeps one NCCL communicator per group, without torch.distributed's world group).
    * **Engine all-reduce buffers**: :data:`CUSTOM_AR_MAX_BYTES` etc. (vLLM, SGLang), vLLM's
      symmetric-memory buffer from :data:`VLLM_SYMM_MEM_FROM` on NVLink GPUs,
      :data:`TRTLLM_AR_WORKSPACE_BYTES` (TensorRT-LLM, NVLink GPUs: its IPC buffers need P2P).

    ``pp``: pipeline send/recv buffers are not counted (NCCL connects P2P peers lazily and no
    measured figure was found); the argument is kept so callers need not change when it is.
    """
    del pp
    if tp <= 1:
        return ()
    nvlink = gpu_memory_gib >= NVLINK_GPU_GIB
    shape = AIC_NCCL_MEM_BYTES[2 if tp <= 2 else 8] / AIC_NCCL_MEM_BYTES[8]
    terms: list[MemoryLine] = []
    if engine == "trtllm":
        nccl = AIC_NCCL_MEM_BYTES[2 if tp <= 2 else 8]
        terms.append(MemoryLine("NCCL", nccl, "AIConfigurator 0.12 systems/*.yaml misc.nccl_mem (NCCL 2.27, "
                                "nonofficial)"))
        if nvlink:
            size = TRTLLM_AR_WORKSPACE_BYTES[tp <= 2]
            terms.append(MemoryLine("all-reduce workspace", 4 * size * tp + 256 * tp,
                                    f"TensorRT-LLM allocate_allreduce_fusion_workspace: 4 x {size:,} B x TP"))
        return tuple(terms)
    if nvlink:
        nccl = int(NCCL_NVSWITCH_TP8_BYTES * shape)
        terms.append(MemoryLine("NCCL", nccl, "sglang#11716 TP-8 dist-init log less custom all-reduce"
                                + (", x 342/392 (AIConfigurator TP shape, estimate)" if tp <= 2 else "")))
    else:
        terms.append(MemoryLine("NCCL", NCCL_BYTES_TP, "vllm#14447 V0 log, 4 x 24 GiB PCIe (estimate)"))
    if tp in CUSTOM_AR_WORLD_SIZES and (nvlink or tp == 2):
        symm = (engine == "vllm" and nvlink and engine_version
                and _vllm_version(engine_version) >= VLLM_SYMM_MEM_FROM)
        cap = min(CUSTOM_AR_MAX_BYTES, VLLM_CUSTOM_AR_CAP_WITH_SYMM[tp]) if symm else CUSTOM_AR_MAX_BYTES
        rank_data = CUSTOM_AR_RANK_DATA_BYTES if engine == "vllm" else CUSTOM_AR_MAX_BYTES
        terms.append(MemoryLine("custom all-reduce", 2 * cap + rank_data,
                                f"{engine} custom_all_reduce.py: 2 x {cap / MIB:g} MiB IPC + rank_data"))
        if symm:
            terms.append(MemoryLine("symmetric-memory all-reduce", VLLM_SYMM_MEM_BYTES[tp],
                                    "vLLM SYMM_MEM_ALL_REDUCE_MAX_SIZES (Hopper), default from v0.11"))
    return tuple(terms)


def comm_reserve_bytes(engine: str, tp: int, *, gpu_memory_gib: float, engine_version: str = "",
                       pp: int = 1) -> int:
    """Total of :func:`comm_reserve_terms` (bytes per rank; 0 at TP 1)."""
    return sum(t.bytes for t in comm_reserve_terms(engine, tp, gpu_memory_gib=gpu_memory_gib,
                                                   engine_version=engine_version, pp=pp))


def comm_reserve_line(engine: str, tp: int, *, gpu_memory_gib: float, engine_version: str = "",
                      pp: int = 1) -> MemoryLine:
    """The memory-account line of the reserve: its total, each term and source in the note."""
    terms = comm_reserve_terms(engine, tp, gpu_memory_gib=gpu_memory_gib, engine_version=engine_version, pp=pp)
    note = "; ".join(f"{t.name} {t.bytes / MIB:,.0f} MiB ({t.note})" for t in terms) or "none at TP 1"
    return MemoryLine("communication reserve", sum(t.bytes for t in terms), f"TP={tp}: {note}")


def serving_memory(arch: ModelArch, precision: str, *, gpu_memory_gib: float, tp: int = 1,
                   pp: int = 1, settings: EngineSettings | None = None, max_model_len: int,
                   group_size: int = 128, quant_format: str = "gptq",
                   non_torch: int | None = None, ep: int = 1, dp: int = 1) -> ServingMemory:
    """KV-cache capacity of one replica under vLLM v0.6.x rules (see the module docstring).

    Per rank r (stage s): ``available_r = G x u - W_s - A - N`` with G the device memory, u
    ``gpu_memory_utilization``, W the rank's weights, A the activation peak of the profiling pass
    (:func:`activation_peak_bytes` at :func:`default_profile_tokens`), N the non-torch memory;
    ``blocks = min_r floor(available_r / (block_size x kv_bytes_per_token_r))``;
    ``kv_cache_tokens = blocks x block_size``; ``max_concurrency = kv_cache_tokens /
    tokens held per sequence at max_model_len`` (= ``/ max_model_len`` without sliding windows,
    the formula vLLM logs). ``fits`` when one full-length sequence fits in the cache (vLLM raises
    otherwise) and ``G x u + CUDA graphs <= G``.

    MoE layouts (``docs/perf.md`` "MoE layouts"): ``ep`` = expert-parallel size (1, or
    ``tp x dp``: routed experts whole, ``E / ep`` per GPU), ``dp`` = attention data-parallel
    ranks of ``tp`` GPUs each. ``W`` is then attention / dense / shared-expert weights over
    ``tp`` plus routed experts over ``ep``; the account is that of one GPU of one DP rank (KV
    heads split over ``tp`` only, each rank caching its own sequences), the communicator
    memory that of the ``tp x dp``-GPU group.

    Cached: the account is a pure function of its arguments, all hashable (``ModelArch`` is a
    frozen dataclass, ``EngineSettings`` a frozen pydantic model, the rest numbers and strings),
    which form the key (a table per architecture, :func:`_memory_table`, so the architecture is
    hashed once per table lookup), and the result is frozen, so one object can serve every
    caller. A planning run asks for the same (model, GPU memory, layout, precision, settings,
    max_model_len) once per workload of that model.
    """
    last = _last_memory_table
    table = last[1] if last[0] is arch else _remember_memory_table(arch)
    if dp > 1 and ep != tp * dp:
        raise UsageError(f"attention data parallel (dp {dp}) is modelled with expert parallel only: "
                         f"ep must be tp x dp = {tp * dp}", field="ep")
    if ep not in (1, tp * dp):
        raise UsageError(f"expert parallel size must be 1 or tp x dp = {tp * dp}, got {ep}", field="ep")
    key = (precision, gpu_memory_gib, tp, pp, settings or EngineSettings(), max_model_len, group_size,
           quant_format, non_torch, ep, dp)
    mem = table.get(key)
    if mem is None:
        mem = table[key] = _serving_memory_cached(arch, *key)
    return mem


#: Key of the :func:`serving_memory` cache (its arguments after the architecture).
MemoryKey = tuple[str, float, int, int, EngineSettings, int, int, str, "int | None", int, int]


@lru_cache(maxsize=256)
def _memory_table(arch: ModelArch) -> dict[MemoryKey, ServingMemory]:
    """The :func:`serving_memory` cache of one architecture."""
    return {}


_last_memory_table: tuple[ModelArch | None, dict[MemoryKey, ServingMemory]] = (None, {})


def _remember_memory_table(arch: ModelArch) -> dict[MemoryKey, ServingMemory]:
    """:func:`_memory_table` of ``arch``, remembered for the next call (a run of calls for one
    model then skips hashing the architecture: the identity test comes first)."""
    global _last_memory_table
    table = _memory_table(arch)
    _last_memory_table = (arch, table)
    return table


def _serving_memory_cached(arch: ModelArch, precision: str, gpu_memory_gib: float, tp: int, pp: int,
                           settings: EngineSettings, max_model_len: int, group_size: int,
                           quant_format: str, non_torch: int | None, ep: int = 1,
                           dp: int = 1) -> ServingMemory:
    """:func:`serving_memory`, uncached (every argument is part of its cache key). Engines other
    than vLLM V0 take their profile's rule (``optimizer/engines/``)."""
    if settings.engine != "vllm" or settings.engine_version not in ("0.6.3", "0.6.4"):
        from optimizer.engines import profile_for

        rule = profile_for(settings.engine, settings.engine_version).memory_rule
        if rule is None:
            raise UsageError(f"no serving-memory rule for {settings.engine} {settings.engine_version} yet",
                             field="engine", hint="use --engine vllm, sglang or trtllm")
        return replace(rule(arch, precision, gpu_memory_gib, tp, pp, settings, max_model_len, group_size,
                            quant_format, non_torch, ep, dp), ep=ep, dp=dp)
    if gpu_memory_gib <= 0:
        raise UsageError("GPU memory must be positive", field="gpu_memory_gib")
    if max_model_len < 1:
        raise UsageError("max_model_len must be >= 1", field="max_model_len")
    kv_dtype = settings.kv_dtype
    total = int(gpu_memory_gib * GIB)
    util = settings.gpu_memory_utilization
    budget = int(total * util)
    stages = stage_weight_bytes(arch, precision, tp, pp, group_size=group_size,
                                quant_format=quant_format, ep=ep)
    tokens = default_profile_tokens(settings, max_model_len)
    act = activation_peak_bytes(arch, tokens, tp, ep)
    comm = comm_reserve_line("vllm", tp * dp, gpu_memory_gib=gpu_memory_gib,
                             engine_version=settings.engine_version, pp=pp)
    if non_torch is not None:  # an explicit non-torch figure stands for the reserve too
        comm = replace(comm, bytes=0, note="in the non-torch figure given")
    nt = NON_TORCH_BYTES_TP1 + comm.bytes if non_torch is None else non_torch
    graphs = cuda_graph_bytes(arch, pp) if settings.cuda_graphs else 0
    ranges = pp_layer_ranges(arch.num_layers, pp)
    per_layer_kv = _kv_elements_per_token_per_layer(arch, tp) * KV_BYTES[kv_dtype]
    blocks = None
    worst = 0
    for s, layers in enumerate(ranges):
        block_b = settings.block_size_tokens * per_layer_kv * max(1, len(layers))
        avail = budget - stages[s] - act - nt
        n = max(0, avail // block_b)
        if blocks is None or n < blocks:
            blocks, worst = n, s
    assert blocks is not None
    block_bytes = settings.block_size_tokens * per_layer_kv * max(1, len(ranges[worst]))
    kv_tokens = blocks * settings.block_size_tokens
    held = kv_tokens_held(arch, max_model_len)
    concurrency = kv_tokens / held if held else 0.0
    weights = stages[worst]
    kv_cache = blocks * block_bytes
    reasons = []
    if kv_tokens < held:
        reasons.append(
            f"KV cache holds {kv_tokens:,} tokens, fewer than one {max_model_len:,}-token sequence "
            "(vLLM refuses to start)")
    if budget + graphs > total:
        reasons.append("CUDA graphs do not fit in the memory left above gpu_memory_utilization")
    kvpt = block_bytes // settings.block_size_tokens
    breakdown = (
        MemoryLine("GPU memory", total, f"{gpu_memory_gib:g} GiB per GPU"),
        MemoryLine("budget", budget, f"x gpu_memory_utilization {util:g}"),
        MemoryLine("weights", weights, f"{precision}, TP={tp}, PP={pp}" + layout_note(ep, dp) + ", worst rank"),
        MemoryLine("activation peak", act, f"profile pass over {tokens:,} tokens"),
        MemoryLine("non-torch", nt - comm.bytes, "CUDA context, cuBLAS"),
        comm,
        MemoryLine("KV cache", kv_cache,
                   f"{blocks:,} blocks x {settings.block_size_tokens} tokens x "
                   f"{kvpt:,} B/token ({kv_dtype})"),
        MemoryLine("unallocated in budget", max(0, budget - weights - act - nt - kv_cache),
                   "remainder below one block"),
        MemoryLine("CUDA graphs (outside budget)", graphs, "estimate; captured after the KV cache"),
    )
    return ServingMemory(
        engine=f"{settings.engine} {settings.engine_version}",
        gpu_memory_bytes=total, gpu_memory_utilization=util, budget_bytes=budget,
        weight_bytes=weights, activation_peak_bytes=act, non_torch_bytes=nt,
        cuda_graph_bytes=graphs, kv_cache_bytes=kv_cache, kv_bytes_per_token_per_gpu=kvpt,
        block_size_tokens=settings.block_size_tokens, block_bytes=block_bytes,
        num_gpu_blocks=blocks, kv_cache_tokens=kv_tokens, max_model_len=max_model_len,
        max_concurrency=concurrency, profile_tokens=tokens, fits=not reasons,
        reason="; ".join(reasons) or "fits", breakdown=breakdown, ep=ep, dp=dp, comm_reserve_bytes=comm.bytes,
    )


def layout_note(ep: int, dp: int) -> str:
    """``", EP=8, DP=2"`` for a MoE layout's memory lines (empty for ep = dp = 1)."""
    return (f", EP={ep}" if ep > 1 else "") + (f", DP={dp} (per DP rank)" if dp > 1 else "")


def expert_bytes_per_gpu(arch: ModelArch, precision: str, tp: int = 1, pp: int = 1, *, ep: int = 1,
                         group_size: int = 128, quant_format: str = "gptq") -> int:
    """Routed-expert bytes on the most loaded GPU: its stage's MoE layers x the routed experts
    it holds (``E / ep`` whole experts when ``ep > 1``, else a ``1/tp`` shard of all ``E``)."""
    if not arch.num_moe_layers:
        return 0
    moe_set = set(arch.moe_layer_indices)
    layers = max(sum(1 for i in r if i in moe_set) for r in pp_layer_ranges(arch.num_layers, pp))
    shapes = [s for s in _layer_shapes(arch, True) if s.component == "experts_routed"]
    if ep > 1:
        one = sum(_shape_bytes(replace(s, count=s.count // ep), precision, group_size, quant_format)
                  for s in shapes)
    else:
        one = sum(_shape_bytes(s, precision, group_size, quant_format, tp) for s in shapes)
    return layers * one


def gib(n_bytes: float) -> float:
    """Bytes to GiB."""
    return n_bytes / GIB


__all__ = [
    "GIB",
    "KV_BYTES",
    "WEIGHT_BYTES",
    "MemoryLine",
    "ServingMemory",
    "activation_peak_bytes",
    "comm_reserve_bytes",
    "comm_reserve_line",
    "comm_reserve_terms",
    "cuda_graph_bytes",
    "default_profile_tokens",
    "expert_bytes_per_gpu",
    "gib",
    "kv_bytes_per_token",
    "kv_bytes_per_token_per_gpu",
    "kv_heads_per_gpu",
    "layout_note",
    "linear_bytes",
    "pp_layer_ranges",
    "serving_memory",
    "stage_weight_bytes",
    "weight_bytes",
    "weight_bytes_per_gpu",
]
