"""Model architecture from a Hugging Face ``config.json``, and exact parameter counts.

Every config dialect of the catalog's families is normalised into one :class:`ModelArch`:

=============  ==========================================================================
family         config keys that differ from the Llama dialect (module names as in the
               ``transformers`` / ``vllm`` modelling files of the family)
=============  ==========================================================================
llama          ``num_key_value_heads`` (GQA, default = heads), ``head_dim`` (optional),
               ``attention_bias`` (q/k/v/o bias), ``mlp_bias``
mistral        as llama, plus ``sliding_window`` on every layer (Mistral-7B-v0.1)
mixtral        ``num_local_experts``, ``num_experts_per_tok``; expert width is ``intermediate_size``
qwen2          q/k/v biases always present (``Qwen2Attention``: ``q_proj`` etc. ``bias=True``,
               ``o_proj`` ``bias=False``); ``use_sliding_window`` + ``max_window_layers``
qwen2_moe      ``num_experts``, ``moe_intermediate_size``, ``shared_expert_intermediate_size``,
               ``shared_expert_gate`` (Linear hidden->1), ``decoder_sparse_step``, ``mlp_only_layers``
qwen3          explicit ``head_dim``, per-head ``q_norm``/``k_norm`` RMSNorm, ``attention_bias``
qwen3_moe      qwen3 attention + qwen2_moe routing without shared experts
deepseek_v2/3  MLA (``q_lora_rank`` (null = plain q_proj), ``kv_lora_rank``, ``qk_rope_head_dim``,
               ``qk_nope_head_dim``, ``v_head_dim``), ``n_routed_experts``, ``n_shared_experts``,
               ``first_k_dense_replace``, ``moe_layer_freq``; V3 ``topk_method: noaux_tc`` adds the
               router's ``e_score_correction_bias``; ``num_nextn_predict_layers`` (MTP, see below)
gemma / gemma2 explicit ``head_dim``; Gemma-2 has four RMSNorms per layer (input, post-attention,
               pre- and post-feed-forward) and sliding-window attention on even layers
               (``Gemma2Attention``: ``sliding_window if not bool(layer_idx % 2)``), tied embeddings
chatglm        ChatGLM2/3 and GLM-4 (remote code ``modeling_chatglm.py``): ``num_layers``,
               ``kv_channels`` (= head_dim), ``multi_query_group_num`` (KV heads),
               ``ffn_hidden_size``, ``padded_vocab_size``, ``add_qkv_bias``, ``add_bias_linear``,
               ``seq_length``; separate ``output_layer``
glm / glm4     transformers ``GlmForCausalLM`` / ``Glm4ForCausalLM``: Llama names, fused
               ``gate_up_proj``, ``attention_bias``; glm4 adds post-attention and post-MLP norms
=============  ==========================================================================

DeepSeek-V3's checkpoint also stores one multi-token-prediction (MTP) layer
(``num_nextn_predict_layers``; 14B of the 685B tensors, DeepSeek-V3 model card). Serving engines
do not load it unless speculative decoding uses it, so it is reported as ``ParamCounts.mtp`` and
kept out of ``total``; the DeepSeek-V3 technical report (arXiv:2412.19437, §4.2) likewise gives
671B total and 37B activated for the main model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from optimizer.errors import CatalogError

SUPPORTED_FAMILIES = (
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe",
    "deepseek_v2", "deepseek_v3", "gemma", "gemma2", "chatglm", "glm", "glm4", "phi3",
)

# Model types that are Llama in all that matters for counting (same module layout).
_LLAMA_LIKE = {"llama": "llama", "mistral": "mistral", "yi": "llama", "phi3": "phi3"}

#: Sane upper bounds on config sizes. The largest published models are far inside them
#: (Llama-3.1-405B: 126 layers, hidden 16384; DeepSeek-V3: 256 experts; Gemma: 256k vocab;
#: Llama 4 Scout: 10M positions); a value beyond one is a typo or a corrupted file, and would
#: otherwise give a silently absurd size.
MAX_LAYERS = 1_000
MAX_HIDDEN = 1_000_000          # hidden_size, head_dim, LoRA ranks, KV channels
MAX_HEADS = 100_000             # attention and KV heads
MAX_INTERMEDIATE = 10_000_000   # MLP / expert widths
MAX_VOCAB = 10_000_000
MAX_EXPERTS = 100_000
MAX_POSITIONS = 1_000_000_000   # max_position_embeddings (and RoPE-scaled context)

#: RoPE scaling types whose ``max_position_embeddings`` already is the extended length (vLLM
#: ``config.py`` ``_get_and_verify_max_len``: "su", "longrope", "llama3" are not multiplied).
_ROPE_ALREADY_EXTENDED = ("su", "longrope", "llama3")


@dataclass(frozen=True)
class ModelArch:
    """A decoder-only transformer's shape, parsed from ``config.json``, all dialects normalised.

    Fields after ``torch_dtype`` carry the details exact counting needs (biases, extra norms,
    the MoE layer pattern); they default to the Llama layout.
    """

    name: str
    family: str
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    intermediate_size: int
    tie_word_embeddings: bool
    max_position_embeddings: int
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0
    first_k_dense: int = 0
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    sliding_window: int | None = None
    sliding_window_layers: int = 0
    torch_dtype: str = "bfloat16"
    # --- details for exact counting -------------------------------------------------------
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    norms_per_layer: int = 2
    num_moe_layers: int = 0
    num_shared_experts: int = 0
    shared_expert_gate: bool = False
    router_bias: bool = False
    mtp_layers: int = 0
    moe_layer_indices: tuple[int, ...] = field(default=(), repr=False)
    #: Longest context the engine accepts (vLLM's rule, :func:`rope_context_limit`); 0 = positions.
    context_limit: int = 0
    #: Modules the checkpoint's ``quantization_config`` keeps in 16 bit, as ``(key, pattern)``
    #: pairs (:func:`quant_exclusions`); empty without a quantization_config. Applied by
    #: ``memory.py`` through ``quant.is_excluded``.
    quant_exclusions: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def max_context(self) -> int:
        """Longest request (prompt + output tokens) the model supports: ``max_position_embeddings``,
        or what a declared ``rope_scaling`` extends it to."""
        return self.context_limit or self.max_position_embeddings

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def num_dense_layers(self) -> int:
        return self.num_layers - self.num_moe_layers


def _bad(message: str, name: str, key: str, hint: str | None = None) -> CatalogError:
    return CatalogError(message, file=name, field=key,
                        hint=hint or "use the model's Hugging Face config.json unchanged")


def _get(config: Mapping[str, Any], name: str, *keys: str, default: Any = ...) -> Any:
    """First present, non-null key among ``keys``; CatalogError naming them when required."""
    for key in keys:
        value = config.get(key)
        if value is not None:
            return value
    if default is ...:
        raise _bad(f"config.json has no {' / '.join(repr(k) for k in keys)}", name, keys[0])
    return default


def _present_key(config: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    return next((k for k in keys if config.get(k) is not None), keys[0])


def _int(config: Mapping[str, Any], name: str, *keys: str, default: Any = ...,
         lo: int | None = None, hi: int | None = None) -> int:
    """An integer field in ``[lo, hi]``. ``true``/``false``, fractions, NaN/Infinity and strings are
    rejected with a CatalogError naming the key (``True`` is an ``int`` in Python)."""
    value = _get(config, name, *keys, default=default)
    key = _present_key(config, keys)
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            isinstance(value, float) and (not math.isfinite(value) or not value.is_integer())):
        raise _bad(f"must be an integer, got {value!r}", name, key)
    number = int(value)
    if lo is not None and number < lo:
        raise _bad(f"must be >= {lo:,}, got {number:,}", name, key)
    if hi is not None and number > hi:
        raise _bad(f"{number:,} is beyond the sane limit of {hi:,} for this field", name, key,
                   "the file looks corrupted or mistyped; use the model's Hugging Face config.json unchanged")
    return number


def _check_finite(value: Any, name: str, path: str) -> None:
    """Reject NaN and +-Infinity anywhere in the config (``json`` accepts them; nothing real has them)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad(f"non-finite number {value!r}", name, path or "(top level)")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_finite(v, name, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, name, f"{path}[{i}]")


def rope_context_limit(config: Mapping[str, Any], positions: int, name: str = "model") -> int:
    """Longest context the engine accepts for this config (vLLM ``_get_and_verify_max_len``): the
    positions, or with a ``rope_scaling`` that has a ``factor`` (types other than su/longrope/llama3,
    whose ``max_position_embeddings`` is already extended) the positions x factor, yarn's from its
    ``original_max_position_embeddings``. Never below ``positions``."""
    rope = config.get("rope_scaling")
    if not isinstance(rope, Mapping) or rope.get("factor") is None:
        return positions
    kind = str(rope.get("rope_type") or rope.get("type") or "").lower()
    if kind in _ROPE_ALREADY_EXTENDED or "mrope_section" in rope:
        return positions
    factor = rope.get("factor")
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 < factor <= 1e4:
        raise _bad(f"must be a number in (0, 10000], got {factor!r}", name, "rope_scaling.factor")
    base = positions
    if kind == "yarn" and rope.get("original_max_position_embeddings") is not None:
        base = _int(rope, name, "original_max_position_embeddings", lo=1, hi=MAX_POSITIONS)
    return max(positions, min(MAX_POSITIONS, int(base * factor)))


def _text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """Multimodal wrappers keep the language model under ``text_config``."""
    text = config.get("text_config")
    if isinstance(text, Mapping) and "hidden_size" in text:
        merged = dict(text)
        merged.setdefault("model_type", config.get("model_type"))
        return merged
    return config


def parse_config(config: Mapping[str, Any], name: str = "model", file: str | None = None) -> ModelArch:
    """Normalise a Hugging Face ``config.json`` dict into a :class:`ModelArch`.

    Raises :class:`optimizer.errors.CatalogError` naming the file (``file``, else ``name``), the
    field and what is wrong: a missing or unsupported field, a non-integer, zero, negative or
    absurd size (limits ``MAX_*`` of this module), heads that do not divide ``hidden_size`` (when
    no ``head_dim`` is given) or KV heads that do not divide the attention heads, NaN/Infinity.
    """
    if not isinstance(config, Mapping):
        raise CatalogError("config.json must be a JSON object", file=file or name)
    arch = _parse(config, file or name)
    return arch if arch.name == name else _renamed(arch, name)


#: ``quantization_config`` keys that list modules kept unquantised: ``modules_to_not_convert``
#: (transformers ``FineGrainedFP8Config``, Qwen3-*-FP8, gpt-oss ``Mxfp4Config``), ``ignored_layers``
#: (vLLM ``Fp8Config``), ``ignore`` (compressed-tensors), ``exclude_modules`` (NVIDIA ModelOpt).
QUANT_EXCLUSION_KEYS = ("modules_to_not_convert", "ignored_layers", "ignore", "exclude_modules")


def quant_exclusions(config: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """``(key, pattern)`` for every entry of the exclusion lists of ``config["quantization_config"]``
    (:data:`QUANT_EXCLUSION_KEYS`; ``null`` lists are skipped). Empty when there is no
    quantization_config. How each key's patterns match a module is ``quant.is_excluded``."""
    qc = config.get("quantization_config")
    if not isinstance(qc, Mapping):
        return ()
    out: list[tuple[str, str]] = []
    for key in QUANT_EXCLUSION_KEYS:
        value = qc.get(key)
        if isinstance(value, list):
            out += [(key, str(v)) for v in value]
    return tuple(out)


def _renamed(arch: ModelArch, name: str) -> ModelArch:
    return ModelArch(**{**arch.__dict__, "name": name})


def _parse(config: Mapping[str, Any], name: str) -> ModelArch:
    _check_finite(config, name, "")
    exclusions = quant_exclusions(config)  # top level, also for multimodal wrappers
    arch = _parse_text(_text_config(config), name)
    return replace(arch, quant_exclusions=exclusions) if exclusions else arch


def _parse_text(config: Mapping[str, Any], name: str) -> ModelArch:
    model_type = str(config.get("model_type") or "").lower()
    if not model_type:
        raise CatalogError("config.json has no 'model_type'", file=name, field="model_type",
                           hint="use the model's Hugging Face config.json unchanged")
    if model_type in ("chatglm",):
        return _parse_chatglm(config, name)
    if model_type in ("deepseek_v2", "deepseek_v3"):
        return _parse_deepseek(config, name, model_type)
    if model_type in _LLAMA_LIKE or model_type in (
            "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "glm", "glm4"):
        return _parse_llama_like(config, name, model_type)
    raise CatalogError(
        f"model_type {model_type!r} is not supported",
        file=name, field="model_type",
        hint=f"supported families: {', '.join(SUPPORTED_FAMILIES)}")


def _common(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    hidden = _int(config, name, "hidden_size", lo=1, hi=MAX_HIDDEN)
    heads = _int(config, name, "num_attention_heads", lo=1, hi=MAX_HEADS)
    positions = _int(config, name, "max_position_embeddings", "seq_length", "max_sequence_length",
                     lo=1, hi=MAX_POSITIONS)
    return {
        "name": name,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "vocab_size": _int(config, name, "vocab_size", "padded_vocab_size", lo=1, hi=MAX_VOCAB),
        "max_position_embeddings": positions,
        "context_limit": rope_context_limit(config, positions, name),
        "torch_dtype": str(config.get("torch_dtype") or config.get("dtype") or "bfloat16"),
    }


def _layers(config: Mapping[str, Any], name: str, *keys: str) -> int:
    return _int(config, name, *(keys or ("num_hidden_layers",)), lo=1, hi=MAX_LAYERS)


def _head_dim(config: Mapping[str, Any], name: str, key: str, hidden: int, heads: int) -> int:
    """Explicit ``key`` (Qwen3, Gemma: heads x head_dim may differ from hidden_size), else
    hidden_size / heads, which must then divide evenly."""
    if config.get(key) is not None:
        return _int(config, name, key, lo=1, hi=MAX_HIDDEN)
    if hidden % heads:
        raise _bad(f"num_attention_heads {heads} does not divide hidden_size {hidden} and no "
                   f"{key!r} is given", name, "num_attention_heads",
                   f"fix num_attention_heads or hidden_size, or give {key} explicitly")
    return hidden // heads


def _kv_heads(config: Mapping[str, Any], name: str, key: str, heads: int) -> int:
    kv = _int(config, name, key, default=heads, lo=1, hi=MAX_HEADS)
    if heads % kv:
        raise _bad(f"{kv} KV heads do not divide the {heads} attention heads (grouped-query "
                   "attention shares each KV head by a whole group of query heads)", name, key,
                   f"use a divisor of num_attention_heads {heads}")
    return kv


def _experts(config: Mapping[str, Any], name: str, key: str, *, default: Any = ...,
             lo: int = 1) -> tuple[int, int]:
    """(routed experts, experts per token) with 1 <= k <= E when E > 0."""
    experts = _int(config, name, key, default=default, lo=lo, hi=MAX_EXPERTS)
    if not experts:
        return 0, _int(config, name, "num_experts_per_tok", default=0, lo=0, hi=MAX_EXPERTS)
    k = _int(config, name, "num_experts_per_tok", lo=1, hi=experts)
    return experts, k


def _parse_llama_like(config: Mapping[str, Any], name: str, model_type: str) -> ModelArch:
    common = _common(config, name)
    hidden, heads = common["hidden_size"], common["num_attention_heads"]
    layers = _layers(config, name)
    kv_heads = _kv_heads(config, name, "num_key_value_heads", heads)
    head_dim = _head_dim(config, name, "head_dim", hidden, heads)
    family = _LLAMA_LIKE.get(model_type, model_type)
    attention_bias = bool(config.get("attention_bias", False))
    qkv_bias = attention_bias
    o_bias = attention_bias
    if family in ("qwen2", "qwen2_moe"):
        # Qwen2Attention / Qwen2MoeAttention: q/k/v_proj bias=True, o_proj bias=False (hard-coded).
        qkv_bias, o_bias = True, False
    if family == "glm":
        # GlmAttention: q/k/v bias = config.attention_bias, o_proj bias=False.
        o_bias = False
    if family == "glm4":
        o_bias = False
    norms_per_layer = {"gemma2": 4, "glm4": 4}.get(family, 2)
    tie_default = family in ("gemma", "gemma2")
    tie = bool(config.get("tie_word_embeddings", tie_default))

    sliding_window: int | None = None
    sliding_layers = 0
    window = config.get("sliding_window")
    layer_types = config.get("layer_types")
    if isinstance(layer_types, list) and window:
        sliding_layers = sum(1 for t in layer_types if t == "sliding_attention")
    elif family == "gemma2" and window:
        sliding_layers = (layers + 1) // 2  # even layer indices 0, 2, 4, ...
    elif family in ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe"):
        if config.get("use_sliding_window") and window:
            # Qwen2Attention: layers with index >= max_window_layers use the window.
            max_window_layers = _int(config, name, "max_window_layers", default=layers, lo=0)
            sliding_layers = max(0, layers - max_window_layers)
    elif family == "mistral" and window:
        sliding_layers = layers
    if sliding_layers and window:
        sliding_window = _int(config, name, "sliding_window", lo=1, hi=MAX_POSITIONS)

    arch: dict[str, Any] = {
        **common,
        "family": family,
        "num_layers": layers,
        "num_kv_heads": kv_heads,
        "head_dim": head_dim,
        "intermediate_size": _int(config, name, "intermediate_size", lo=1, hi=MAX_INTERMEDIATE),
        "tie_word_embeddings": tie,
        "sliding_window": sliding_window,
        "sliding_window_layers": sliding_layers,
        "qkv_bias": qkv_bias,
        "o_bias": o_bias,
        "mlp_bias": bool(config.get("mlp_bias", False)),
        "qk_norm": family in ("qwen3", "qwen3_moe"),
        "norms_per_layer": norms_per_layer,
    }
    if family == "mixtral":
        experts, k = _experts(config, name, "num_local_experts")
        arch.update(num_experts=experts, experts_per_token=k,
                    moe_intermediate_size=arch["intermediate_size"], num_moe_layers=layers,
                    moe_layer_indices=tuple(range(layers)))
    elif family in ("qwen2_moe", "qwen3_moe"):
        experts, k = _experts(config, name, "num_experts")
        step = _int(config, name, "decoder_sparse_step", default=1, lo=1, hi=MAX_LAYERS)
        mlp_only = _layer_list(config, name, "mlp_only_layers")
        moe_layers = tuple(i for i in range(layers)
                           if i not in mlp_only and experts > 0 and (i + 1) % step == 0)
        shared = _int(config, name, "shared_expert_intermediate_size", default=0, lo=0, hi=MAX_INTERMEDIATE)
        arch.update(num_experts=experts, experts_per_token=k,
                    moe_intermediate_size=_int(config, name, "moe_intermediate_size", lo=1,
                                               hi=MAX_INTERMEDIATE),
                    shared_expert_intermediate_size=shared, num_shared_experts=1 if shared else 0,
                    shared_expert_gate=bool(shared), num_moe_layers=len(moe_layers),
                    moe_layer_indices=moe_layers)
    return ModelArch(**arch)


def _layer_list(config: Mapping[str, Any], name: str, key: str) -> set[int]:
    value = config.get(key) or []
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise _bad(f"must be a list of layer indices, got {value!r}", name, key)
    return set(value)


def _parse_deepseek(config: Mapping[str, Any], name: str, model_type: str) -> ModelArch:
    common = _common(config, name)
    heads = common["num_attention_heads"]
    layers = _layers(config, name)
    experts, k = _experts(config, name, "n_routed_experts", default=0, lo=0)
    first_k = _int(config, name, "first_k_dense_replace", default=0, lo=0, hi=MAX_LAYERS)
    freq = _int(config, name, "moe_layer_freq", default=1, lo=1, hi=MAX_LAYERS)
    moe_layers = tuple(i for i in range(layers) if experts and i >= first_k and i % freq == 0)
    moe_inter = _int(config, name, "moe_intermediate_size", default=0,
                     lo=1 if experts else 0, hi=MAX_INTERMEDIATE)
    n_shared = _int(config, name, "n_shared_experts", default=0, lo=0, hi=MAX_EXPERTS)
    kv_lora = _int(config, name, "kv_lora_rank", lo=1, hi=MAX_HIDDEN)
    rope = _int(config, name, "qk_rope_head_dim", lo=1, hi=MAX_HIDDEN)
    nope = _int(config, name, "qk_nope_head_dim", lo=0, hi=MAX_HIDDEN)
    v_dim = _int(config, name, "v_head_dim", lo=1, hi=MAX_HIDDEN)
    attention_bias = bool(config.get("attention_bias", False))
    return ModelArch(
        **common,
        family=model_type,
        num_layers=layers,
        num_kv_heads=_kv_heads(config, name, "num_key_value_heads", heads),
        head_dim=nope + rope,
        intermediate_size=_int(config, name, "intermediate_size", lo=1, hi=MAX_INTERMEDIATE),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        num_experts=experts,
        experts_per_token=k,
        moe_intermediate_size=moe_inter,
        shared_expert_intermediate_size=n_shared * moe_inter,
        num_shared_experts=n_shared,
        first_k_dense=first_k if experts else 0,
        kv_lora_rank=kv_lora,
        q_lora_rank=_int(config, name, "q_lora_rank", default=0, lo=0, hi=MAX_HIDDEN),
        qk_rope_head_dim=rope,
        qk_nope_head_dim=nope,
        v_head_dim=v_dim,
        qkv_bias=attention_bias,
        o_bias=attention_bias,
        router_bias=config.get("topk_method") == "noaux_tc",
        num_moe_layers=len(moe_layers),
        moe_layer_indices=moe_layers,
        mtp_layers=_int(config, name, "num_nextn_predict_layers", default=0, lo=0, hi=MAX_LAYERS),
    )


def _parse_chatglm(config: Mapping[str, Any], name: str) -> ModelArch:
    common = _common(config, name)
    heads = common["num_attention_heads"]
    hidden = common["hidden_size"]
    multi_query = bool(config.get("multi_query_attention", False))
    kv_heads = _kv_heads(config, name, "multi_query_group_num", heads) if multi_query else heads
    return ModelArch(
        **common,
        family="chatglm",
        num_layers=_layers(config, name, "num_layers", "num_hidden_layers"),
        num_kv_heads=kv_heads,
        head_dim=_head_dim(config, name, "kv_channels", hidden, heads),
        intermediate_size=_int(config, name, "ffn_hidden_size", "intermediate_size", lo=1,
                               hi=MAX_INTERMEDIATE),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        qkv_bias=bool(config.get("add_qkv_bias", False) or config.get("add_bias_linear", False)),
        o_bias=bool(config.get("add_bias_linear", False)),
        mlp_bias=bool(config.get("add_bias_linear", False)),
    )


# --------------------------------------------------------------------------------------------
# Parameter counts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts by component (elements, not bytes).

    ``total`` is the sum of every component; ``active`` replaces the routed experts with the
    ``experts_per_token`` of them each token uses. ``mtp`` (DeepSeek-V3 multi-token-prediction
    layers) is kept out of ``total`` because serving engines do not load it by default.
    """

    total: int
    active: int
    embedding: int
    lm_head: int
    attention: int
    mlp_dense: int
    experts_routed: int
    experts_shared: int
    norms: int
    router: int
    mtp: int = 0

    @property
    def active_non_embedding(self) -> int:
        """Active parameters without the input embedding table (a lookup, not a matmul): the
        convention of DeepSeek's "activated" figures (DeepSeek-V3 README_WEIGHTS.md: 36.7B)."""
        return self.active - self.embedding


@dataclass(frozen=True)
class LinearShape:
    """One weight matrix, ``in_features`` x ``out_features``, repeated ``count`` times."""

    component: str  # "attention", "mlp_dense", "experts_routed", "experts_shared", "router"
    in_features: int
    out_features: int
    count: int
    bias: bool = False
    # How tensor parallelism splits it (vLLM ``linear.py``): "column" (ColumnParallelLinear,
    # output split), "row" (RowParallelLinear, input split), "kv" (QKVParallelLinear's K/V part:
    # output split, replicated once TP exceeds the KV heads), "replicated" (ReplicatedLinear).
    parallel: str = "column"

    @property
    def params(self) -> int:
        return self.count * (self.in_features * self.out_features + (self.out_features if self.bias else 0))


def attention_linears(arch: ModelArch, layers: int) -> list[LinearShape]:
    """Weight matrices of the attention blocks of ``layers`` layers.

    GQA/MHA (``LlamaAttention``): q ``h x n_q d``, k and v ``h x n_kv d``, o ``n_q d x h``.
    MLA (``DeepseekV2Attention``): q_a ``h x r_q`` then q_b ``r_q x n (d_nope + d_rope)`` (or one
    q_proj when ``q_lora_rank`` is null), kv_a_proj_with_mqa ``h x (r_kv + d_rope)``,
    kv_b ``r_kv x n (d_nope + d_v)``, o ``n d_v x h``.
    """
    h, n, L = arch.hidden_size, arch.num_attention_heads, layers
    if arch.is_mla:
        q_dim = n * (arch.qk_nope_head_dim + arch.qk_rope_head_dim)
        out: list[LinearShape] = []
        if arch.q_lora_rank:
            out += [LinearShape("attention", h, arch.q_lora_rank, L, arch.qkv_bias, "replicated"),
                    LinearShape("attention", arch.q_lora_rank, q_dim, L)]
        else:
            out.append(LinearShape("attention", h, q_dim, L, arch.qkv_bias))
        out += [
            LinearShape("attention", h, arch.kv_lora_rank + arch.qk_rope_head_dim, L,
                        arch.qkv_bias, "replicated"),
            LinearShape("attention", arch.kv_lora_rank,
                        n * (arch.qk_nope_head_dim + arch.v_head_dim), L),
            LinearShape("attention", n * arch.v_head_dim, h, L, arch.o_bias, "row"),
        ]
        return out
    d = arch.head_dim
    return [
        LinearShape("attention", h, n * d, L, arch.qkv_bias),
        LinearShape("attention", h, arch.num_kv_heads * d, L, arch.qkv_bias, "kv"),
        LinearShape("attention", h, arch.num_kv_heads * d, L, arch.qkv_bias, "kv"),
        LinearShape("attention", n * d, h, L, arch.o_bias, "row"),
    ]


def gated_mlp(component: str, h: int, inter: int, count: int, bias: bool) -> list[LinearShape]:
    """SwiGLU/GeGLU MLP: gate and up ``h x i``, down ``i x h`` (``LlamaMLP``)."""
    return [LinearShape(component, h, inter, 2 * count, bias),
            LinearShape(component, inter, h, count, bias, "row")]


def linear_shapes(arch: ModelArch) -> list[LinearShape]:
    """Every weight matrix of the decoder layers (embeddings, lm_head and norms excluded).

    This is the list weight-only quantisation (GPTQ/AWQ) applies to; see ``memory.weight_bytes``.
    """
    h = arch.hidden_size
    out = attention_linears(arch, arch.num_layers)
    dense_layers = arch.num_dense_layers
    if dense_layers:
        out += gated_mlp("mlp_dense", h, arch.intermediate_size, dense_layers, arch.mlp_bias)
    m = arch.num_moe_layers
    if m:
        out += gated_mlp("experts_routed", h, arch.moe_intermediate_size,
                          m * arch.num_experts, arch.mlp_bias)
        if arch.shared_expert_intermediate_size:
            out += gated_mlp("experts_shared", h, arch.shared_expert_intermediate_size, m,
                              arch.mlp_bias)
        out.append(LinearShape("router", h, arch.num_experts, m, False, "replicated"))
        if arch.shared_expert_gate:
            out.append(LinearShape("router", h, 1, m, False, "replicated"))
    return out


def norm_params(arch: ModelArch) -> int:
    """RMSNorm/LayerNorm weights: per-layer norms, the final norm, Qwen3's per-head q/k norms,
    and MLA's ``q_a_layernorm`` / ``kv_a_layernorm``."""
    per_layer = arch.norms_per_layer * arch.hidden_size
    if arch.qk_norm:
        per_layer += 2 * arch.head_dim
    if arch.is_mla:
        per_layer += arch.kv_lora_rank + arch.q_lora_rank
    return arch.num_layers * per_layer + arch.hidden_size


def param_counts(arch: ModelArch) -> ParamCounts:
    """Exact parameter counts from the architecture.

    total = V h (embedding) + [V h if untied] (lm_head) + Σ_layers (attention + MLP or MoE + norms)
    + final norm, with the per-module shapes of :func:`linear_shapes`; the MoE router is
    ``h x E`` per MoE layer (+ ``E`` score-correction biases for DeepSeek-V3, + ``h`` for
    Qwen2-MoE's ``shared_expert_gate``).

    active = total - experts_routed + experts_routed x k / E (k = ``num_experts_per_tok``):
    every token runs the dense parts, the shared experts and k of the E routed experts
    (Mixtral paper arXiv:2401.04088 §2.1: 47B total / 13B active counts embeddings the same way).
    """
    shapes = linear_shapes(arch)
    by_component: dict[str, int] = {}
    for s in shapes:
        by_component[s.component] = by_component.get(s.component, 0) + s.params
    router = by_component.get("router", 0)
    if arch.router_bias:
        router += arch.num_moe_layers * arch.num_experts
    embedding = arch.vocab_size * arch.hidden_size
    lm_head = 0 if arch.tie_word_embeddings else arch.vocab_size * arch.hidden_size
    norms = norm_params(arch)
    routed = by_component.get("experts_routed", 0)
    parts = dict(
        embedding=embedding,
        lm_head=lm_head,
        attention=by_component.get("attention", 0),
        mlp_dense=by_component.get("mlp_dense", 0),
        experts_routed=routed,
        experts_shared=by_component.get("experts_shared", 0),
        norms=norms,
        router=router,
    )
    total = sum(parts.values())
    active = total
    if arch.is_moe and arch.num_experts:
        active = total - routed + routed * arch.experts_per_token // arch.num_experts
    return ParamCounts(total=total, active=active, mtp=_mtp_params(arch), **parts)


def _mtp_params(arch: ModelArch) -> int:
    """DeepSeek-V3 MTP module (``model.layers.61`` in the checkpoint): one MoE decoder layer plus
    ``enorm``, ``hnorm`` (h each), ``eh_proj`` (2h x h) and ``shared_head.norm`` (h). Its embedding
    and output head are shared with the main model at run time but stored again in the checkpoint
    (``model.layers.61.embed_tokens``, ``model.layers.61.shared_head.head``; DeepSeek-V3
    README_WEIGHTS.md), so they are counted here: 671.0B + 13.5B = the 684.5B checkpoint."""
    if not arch.mtp_layers:
        return 0
    one = ModelArch(**{**arch.__dict__, "num_layers": 1, "num_moe_layers": 1 if arch.is_moe else 0,
                       "moe_layer_indices": (0,) if arch.is_moe else (), "mtp_layers": 0})
    layer = sum(s.params for s in linear_shapes(one)) + (norm_params(one) - one.hidden_size)
    if one.router_bias:
        layer += one.num_experts
    embed_and_head = 2 * arch.vocab_size * arch.hidden_size
    return arch.mtp_layers * (layer + 3 * arch.hidden_size + 2 * arch.hidden_size * arch.hidden_size
                              + embed_and_head)


def sliding_layers_fraction(arch: ModelArch) -> float:
    """Share of layers whose KV is bounded by the sliding window (0 when none)."""
    if not arch.sliding_window or not arch.num_layers:
        return 0.0
    return arch.sliding_window_layers / arch.num_layers


def kv_tokens_held(arch: ModelArch, seq_len: int) -> float:
    """Average tokens of KV each layer holds for one sequence of ``seq_len`` tokens: full layers
    hold ``seq_len``, sliding layers ``min(seq_len, window)``."""
    frac = sliding_layers_fraction(arch)
    window = arch.sliding_window or seq_len
    return (1 - frac) * seq_len + frac * min(seq_len, window)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


__all__ = [
    "QUANT_EXCLUSION_KEYS",
    "SUPPORTED_FAMILIES",
    "LinearShape",
    "ModelArch",
    "ParamCounts",
    "attention_linears",
    "ceil_div",
    "gated_mlp",
    "kv_tokens_held",
    "linear_shapes",
    "norm_params",
    "param_counts",
    "parse_config",
    "quant_exclusions",
    "rope_context_limit",
    "sliding_layers_fraction",
]
