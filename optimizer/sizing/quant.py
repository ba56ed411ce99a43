"""Bytes of quantised weights as checkpoints store them: one pure function per format, cited.

Units: bytes (``int``). ``n = in_features x out_features`` elements of one linear weight.

* **FP8** (E4M3, 1 B per weight) with per-tensor, per-channel or block scales:
  vLLM ``model_executor/layers/quantization/fp8.py`` ``Fp8LinearMethod.create_weights``
  (per-tensor ``weight_scale`` fp32; with ``weight_block_size`` ``[128, 128]`` a
  ``weight_scale_inv`` fp32 of ``ceil(out/128) x ceil(in/128)``, the DeepSeek-V3 / Qwen3-FP8
  layout) and compressed-tensors ``CompressedTensorsW8A8Fp8`` (``strategy: channel``: one scale
  per output row, in the model's 16-bit dtype).
* **NVFP4**: vLLM ``quantization/modelopt.py`` ``ModelOptNvFp4LinearMethod.create_weights``:
  ``weight`` uint8 ``out x in/2`` (two E2M1 per byte), ``weight_scale`` float8_e4m3fn
  ``out x in/16`` (one per 16-element block), ``weight_scale_2`` and ``input_scale`` fp32 scalars.
* **MXFP4** (OCP Microscaling v1.0, gpt-oss checkpoints): ``*_blocks`` uint8 ``in/32 x 16`` per
  row (32 E2M1 in 16 bytes) and ``*_scales`` uint8 E8M0 ``in/32`` per row (vLLM
  ``quantization/mxfp4.py`` ``Mxfp4MoEMethod.create_weights``).
* **W8A8 int8** (SmoothQuant-style, compressed-tensors ``CompressedTensorsW8A8Int8``,
  ``strategy: channel``, dynamic per-token activations): int8 ``out x in`` + one 16-bit scale per
  output row (the smoothing factors are folded into the previous norm, so nothing else is stored).
* **W4A8** (TensorRT-LLM ``W4A8_AWQ``; vLLM compressed-tensors ``W4A8Fp8``): int4 packed
  ``n/2``, one 16-bit scale per 128 input elements per row (symmetric, no zeros), a 16-bit
  pre-quant (AWQ smoothing) scale per input column and one fp32 activation scale.
* **GGUF** (llama.cpp): block layouts from ggml ``ggml-common.h`` (``block_q4_0`` ...) and the
  per-tensor type choice of ``src/llama-quant.cpp`` ``llama_tensor_get_type`` (read at
  ggml-org/llama.cpp commit 059325d9b4bf046fc38278c4157d8791333129b1); see :func:`gguf_tensor_type`.

What stays in 16 bit is decided in ``memory.py`` (embeddings, norms, routers; lm_head for
every safetensors format here), plus the decoder linears a config's ``quantization_config``
lists as not converted (:func:`is_excluded`); GGUF decides per tensor (:func:`gguf_tensor_type`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any

from optimizer.errors import UsageError
from optimizer.sizing.architecture import ModelArch, ceil_div, norm_params, quant_exclusions

#: Nominal bytes per weight of the bulk linears (what ``memory.WEIGHT_BYTES`` lists for the new
#: formats; exact per-tensor bytes come from the functions below).
NOMINAL_BYTES = {
    "nvfp4": 0.5 + 1 / 16,          # E2M1 + one E4M3 scale per 16
    "mxfp4": 0.5 + 1 / 32,          # E2M1 + one E8M0 scale per 32
    "w8a8": 1.0,
    "w4a8": 0.5 + 2 / 128,
    "q4_0": 18 / 32,
    "q4_k_m": 144 / 256,
    "q5_k_m": 176 / 256,
    "q6_k": 210 / 256,
    "q8_0": 34 / 32,
}

#: Safetensors formats sized per linear by :func:`linear_bytes`.
BLOCK_FORMATS = ("nvfp4", "mxfp4", "w8a8", "w4a8")
#: GGUF file types (llama.cpp ``llama_ftype``) and the default tensor type of each
#: (``llama_model_quantize_impl``: ``LLAMA_FTYPE_MOSTLY_Q4_K_M -> GGML_TYPE_Q4_K`` ...).
GGUF_FTYPES = {"q4_0": "Q4_0", "q4_k_m": "Q4_K", "q5_k_m": "Q5_K", "q6_k": "Q6_K", "q8_0": "Q8_0"}

#: ggml block layouts: (elements per block, bytes per block), ``ggml-common.h``:
#: ``block_q4_0`` {ggml_half d; uint8 qs[16]} = 18 B / 32; ``block_q5_0`` {d; qh[4]; qs[16]}
#: = 22 / 32; ``block_q5_1`` {d, m; qh[4]; qs[16]} = 24 / 32; ``block_q8_0`` {d; int8 qs[32]}
#: = 34 / 32; ``block_q4_K`` {d, dmin; scales[12]; qs[128]} = 144 / 256; ``block_q5_K``
#: {d, dmin; scales[12]; qh[32]; qs[128]} = 176 / 256; ``block_q6_K`` {ql[128]; qh[64];
#: int8 scales[16]; d} = 210 / 256.
GGML_BLOCKS = {
    "F32": (1, 4), "F16": (1, 2), "BF16": (1, 2),
    "Q4_0": (32, 18), "Q5_0": (32, 22), "Q5_1": (32, 24), "Q8_0": (32, 34),
    "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210),
}
#: ``llama_tensor_get_type``'s fallback when a row length is not a multiple of the block.
_GGUF_FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}


def is_gguf(precision: str) -> bool:
    return precision in GGUF_FTYPES


def fp8_linear_bytes(in_features: int, out_features: int, scales: str = "tensor",
                     block: tuple[int, int] = (128, 128)) -> int:
    """FP8 E4M3 weight ``in x out`` B plus its scales: ``tensor`` one fp32; ``channel`` one
    16-bit per output row; ``block`` one fp32 per ``block[0] x block[1]`` tile (out x in),
    ``ceil(out/128) x ceil(in/128) x 4`` for DeepSeek-V3 (vLLM ``Fp8LinearMethod``)."""
    n = in_features * out_features
    if scales == "tensor":
        return n + 4
    if scales == "channel":
        return n + 2 * out_features
    if scales == "block":
        return n + 4 * ceil_div(out_features, block[0]) * ceil_div(in_features, block[1])
    raise UsageError(f"unknown fp8 scale layout {scales!r}", field="quant_format",
                     hint="use tensor, channel or block")


def nvfp4_linear_bytes(in_features: int, out_features: int) -> int:
    """NVFP4 (ModelOpt): ``out x ceil(in/2)`` packed E2M1 + ``out x ceil(in/16)`` E4M3 block
    scales + fp32 ``weight_scale_2`` and ``input_scale`` (4.5 bits + 8 B per tensor)."""
    return out_features * (ceil_div(in_features, 2) + ceil_div(in_features, 16)) + 8


def mxfp4_linear_bytes(in_features: int, out_features: int) -> int:
    """MXFP4 (OCP MX): per row ``ceil(in/32)`` blocks of 16 B + one E8M0 byte (4.25 bits)."""
    return out_features * ceil_div(in_features, 32) * 17


def w8a8_linear_bytes(in_features: int, out_features: int) -> int:
    """W8A8 int8, per-channel weight scales, dynamic per-token activation scales:
    ``in x out`` int8 + 2 B per output row."""
    return in_features * out_features + 2 * out_features


def w4a8_linear_bytes(in_features: int, out_features: int, group_size: int = 128) -> int:
    """W4A8 (TensorRT-LLM ``W4A8_AWQ``): ``n/2`` + 16-bit group scales ``ceil(in/g) x out x 2``
    + 16-bit pre-quant scale per input column + fp32 activation scale."""
    g = group_size if group_size > 0 else in_features
    return (in_features * out_features + 1) // 2 + ceil_div(in_features, g) * out_features * 2 \
        + 2 * in_features + 4


def linear_bytes(in_features: int, out_features: int, precision: str, group_size: int = 128) -> int:
    """Bytes of one linear weight in a :data:`BLOCK_FORMATS` format (no bias)."""
    if precision == "nvfp4":
        return nvfp4_linear_bytes(in_features, out_features)
    if precision == "mxfp4":
        return mxfp4_linear_bytes(in_features, out_features)
    if precision == "w8a8":
        return w8a8_linear_bytes(in_features, out_features)
    if precision == "w4a8":
        return w4a8_linear_bytes(in_features, out_features, group_size)
    raise UsageError(f"{precision!r} is not a block-scaled safetensors format", field="precision")


# ------------------------------------------------------------------------------------------
# GGUF
# ------------------------------------------------------------------------------------------


def ggml_tensor_bytes(ggml_type: str, n_per_row: int, rows: int) -> int:
    """``ggml_row_size(type, n_per_row) x rows``: ``n_per_row / block x bytes per block``."""
    per, size = GGML_BLOCKS[ggml_type]
    if n_per_row % per:
        raise UsageError(f"{ggml_type} needs rows of a multiple of {per}, got {n_per_row}")
    return n_per_row // per * size * rows


def _use_more_bits(i_layer: int, n_layers: int) -> bool:
    """``llama_tensor_get_type``'s ``use_more_bits``: the first and last eighth of the layers and
    every third one between them."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def _is_70b(arch: ModelArch) -> bool:
    """llama.cpp ``LLM_TYPE_70B`` for the Llama architecture is set from ``n_layer == 80``
    (``llama-model.cpp`` ``load_hparams``, case LLM_ARCH_LLAMA)."""
    return arch.family in ("llama",) and arch.num_layers == 80


def gguf_tensor_type(arch: ModelArch, precision: str, tensor: str, i_layer: int, n_cols: int) -> str:
    """ggml type of one tensor under a GGUF file type, after llama.cpp ``src/llama-quant.cpp``
    ``llama_tensor_get_type`` (only the branches of q4_0/q4_k_m/q5_k_m/q6_k/q8_0, non-Falcon):

    * ``output`` (lm_head; ``token_embd`` when tied): Q8_0 if the file type is Q8_0, else Q6_K.
    * ``token_embd``: the file type's default (Q4_K for Q4_K_M, ...).
    * ``attn_v``: Q6_K for Q4_K_M/Q5_K_M where ``use_more_bits``; 70B Llama bumps Q4_K to Q5_K;
      8-expert models (Mixtral) use Q8_0. ``attn_k``: Q8_0 with 8 experts.
    * ``ffn_down`` (dense and experts): Q6_K where ``use_more_bits`` for Q4_K_M and Q5_K_M.
    * ``attn_output``: Q5_K for Q4_K_M with 8 experts.
    * a row length not a multiple of the block falls back (Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0).
    ``tensor`` is the GGUF name stem: ``output``, ``token_embd``, ``attn_q``, ``attn_k``,
    ``attn_v``, ``attn_output``, ``ffn_gate``, ``ffn_up``, ``ffn_down`` (``_exps`` alike).
    """
    ftype = precision
    t = GGUF_FTYPES[ftype]
    n = arch.num_layers
    experts8 = arch.num_experts == 8
    if tensor == "output" or (tensor == "token_embd" and arch.tie_word_embeddings):
        if n_cols % GGML_BLOCKS[t][0]:
            return "Q8_0"
        return t if t == "Q8_0" else "Q6_K"
    if tensor == "attn_v":
        if ftype in ("q4_k_m", "q5_k_m") and _use_more_bits(i_layer, n):
            t = "Q6_K"
        if _is_70b(arch) and t == "Q4_K":
            t = "Q5_K"
        if experts8:
            t = "Q8_0"
    elif tensor == "attn_k":
        if experts8:
            t = "Q8_0"
    elif tensor.startswith("ffn_down"):
        if ftype in ("q4_k_m", "q5_k_m") and _use_more_bits(i_layer, n):
            t = "Q6_K"
    elif tensor == "attn_output" and experts8 and ftype == "q4_k_m":
        t = "Q5_K"
    per = GGML_BLOCKS[t][0]
    if n_cols % per:
        t = _GGUF_FALLBACK.get(t, "F16")
        if n_cols % GGML_BLOCKS[t][0]:
            t = "F16"
    return t


def _gguf_layer_tensors(arch: ModelArch, moe_layer: bool) -> list[tuple[str, int, int, int]]:
    """(name, n_per_row = in_features, rows = out_features, count) of one layer's 2-D weights
    as ``convert_hf_to_gguf.py`` writes them (Llama/Qwen/Mixtral naming). MLA models are written
    with their own names (``attn_q_a``, ``attn_kv_b`` ...) which no Q4_K_M rule touches."""
    h = arch.hidden_size
    out: list[tuple[str, int, int, int]] = []
    if arch.is_mla:
        q_dim = arch.num_attention_heads * (arch.qk_nope_head_dim + arch.qk_rope_head_dim)
        if arch.q_lora_rank:
            out += [("attn_q_a", h, arch.q_lora_rank, 1), ("attn_q_b", arch.q_lora_rank, q_dim, 1)]
        else:
            out.append(("attn_q", h, q_dim, 1))
        out += [("attn_kv_a_mqa", h, arch.kv_lora_rank + arch.qk_rope_head_dim, 1),
                ("attn_kv_b", arch.kv_lora_rank,
                 arch.num_attention_heads * (arch.qk_nope_head_dim + arch.v_head_dim), 1),
                ("attn_output", arch.num_attention_heads * arch.v_head_dim, h, 1)]
    else:
        d = arch.head_dim
        out += [("attn_q", h, arch.num_attention_heads * d, 1),
                ("attn_k", h, arch.num_kv_heads * d, 1),
                ("attn_v", h, arch.num_kv_heads * d, 1),
                ("attn_output", arch.num_attention_heads * d, h, 1)]
    if moe_layer:
        i, e = arch.moe_intermediate_size, arch.num_experts
        out += [("ffn_gate_exps", h, i, e), ("ffn_up_exps", h, i, e), ("ffn_down_exps", i, h, e)]
        if arch.shared_expert_intermediate_size:
            s = arch.shared_expert_intermediate_size
            out += [("ffn_gate_shexp", h, s, 1), ("ffn_up_shexp", h, s, 1), ("ffn_down_shexp", s, h, 1)]
    else:
        i = arch.intermediate_size
        out += [("ffn_gate", h, i, 1), ("ffn_up", h, i, 1), ("ffn_down", i, h, 1)]
    return out


def _gguf_biases_bytes(arch: ModelArch) -> int:
    """Per-layer F32 vectors besides norms: q/k/v biases (Qwen2), o bias, MLP biases."""
    d, h = arch.head_dim, arch.hidden_size
    n = 0
    if arch.qkv_bias:
        n += (arch.num_attention_heads + 2 * arch.num_kv_heads) * d
    if arch.o_bias:
        n += h
    return 4 * n


def gguf_layer_bytes(arch: ModelArch, precision: str, i_layer: int) -> int:
    """Bytes of decoder layer ``i_layer`` in a GGUF file: 2-D weights at
    :func:`gguf_tensor_type`, norms and biases F32 (1-D tensors are never quantised:
    ``llama_model_quantize_impl`` ``quantize &= ggml_n_dims(tensor) >= 2``), the MoE router
    ``ffn_gate_inp`` F32 (excluded from quantisation by name and written F32 by the converter)."""
    moe = i_layer in set(arch.moe_layer_indices)
    total = 0
    for name, n_per_row, rows, count in _gguf_layer_tensors(arch, moe):
        t = gguf_tensor_type(arch, precision, name, i_layer, n_per_row)
        total += count * ggml_tensor_bytes(t, n_per_row, rows)
    if moe:
        total += 4 * arch.hidden_size * arch.num_experts
        if arch.shared_expert_gate:
            total += 4 * arch.hidden_size
        if arch.router_bias:
            total += 4 * arch.num_experts
    per_layer_norms = (norm_params(arch) - arch.hidden_size) // max(1, arch.num_layers)
    return total + 4 * per_layer_norms + _gguf_biases_bytes(arch)


def gguf_embed_bytes(arch: ModelArch, precision: str) -> tuple[int, int]:
    """(token_embd, output) bytes; ``output`` is 0 when tied (llama.cpp then reuses token_embd,
    quantised like the output); the final norm (F32) is counted with ``output``."""
    h, v = arch.hidden_size, arch.vocab_size
    emb = ggml_tensor_bytes(gguf_tensor_type(arch, precision, "token_embd", 0, h), h, v)
    head = 0 if arch.tie_word_embeddings else \
        ggml_tensor_bytes(gguf_tensor_type(arch, precision, "output", 0, h), h, v)
    return emb, head + 4 * h


def gguf_stage_bytes(arch: ModelArch, precision: str, tp: int, ranges: list[range]) -> tuple[int, ...]:
    """GGUF bytes per pipeline stage (llama.cpp ``--split-mode layer`` puts whole layers on each
    GPU, token_embd on the host-side first stage, output on the last). With ``tp > 1``
    (``--split-mode row``) each GPU holds ``1/tp`` of every layer's matrices (rounded up); an
    estimate, since llama.cpp splits by rows in proportion to ``--tensor-split``."""
    emb, head = gguf_embed_bytes(arch, precision)
    out = []
    for s, layers in enumerate(ranges):
        total = sum(ceil_div(gguf_layer_bytes(arch, precision, i), tp) for i in layers)
        if s == 0:
            total += ceil_div(emb, tp)
        if s == len(ranges) - 1:
            total += ceil_div(head, tp) + (ceil_div(emb, tp) if arch.tie_word_embeddings and s else 0)
        out.append(total)
    return tuple(out)


def gguf_file_bytes(arch: ModelArch, precision: str) -> int:
    """Tensor data of a GGUF file of ``arch`` at ``precision`` (the whole model; metadata,
    tokenizer and alignment padding, a few MB, excluded)."""
    return sum(gguf_stage_bytes(arch, precision, 1, [range(arch.num_layers)]))


def llama_cpp_memory(arch: ModelArch, precision: str, n_ctx: int, kv_bytes: int = 2) -> dict[str, int]:
    """Memory llama.cpp/Ollama needs to run a GGUF at context ``n_ctx`` with all layers on the
    GPU: the tensor data (:func:`gguf_file_bytes`) plus the KV cache llama.cpp allocates up front
    for ``n_ctx`` tokens (``llama_kv_cache``: K and V per layer, ``n_embd_k_gqa = kv_heads x
    head_dim`` each, f16 by default, ``-ctk q8_0`` ~1 B). Compute buffers (Ollama logs
    ``memory.graph.full`` of a few hundred MiB) are not included."""
    if arch.is_mla:
        per_token = arch.num_layers * arch.num_attention_heads * (
            arch.qk_nope_head_dim + arch.qk_rope_head_dim + arch.v_head_dim)
    else:
        per_token = 2 * arch.num_layers * arch.num_kv_heads * arch.head_dim
    weights = gguf_file_bytes(arch, precision)
    kv = per_token * kv_bytes * n_ctx
    return {"weight_bytes": weights, "kv_cache_bytes": kv, "total_bytes": weights + kv, "n_ctx": n_ctx}


# ------------------------------------------------------------------------------------------
# quantization_config of a checkpoint
# ------------------------------------------------------------------------------------------


def fp8_scales_from_config(config: Mapping[str, Any]) -> str | None:
    """The fp8 scale layout a config.json's ``quantization_config`` declares: ``block`` when
    ``quant_method: fp8`` has ``weight_block_size`` (DeepSeek-V3, Qwen3-*-FP8), ``tensor`` for
    plain ``fp8``, ``channel`` for compressed-tensors ``strategy: channel``; None otherwise."""
    qc = config.get("quantization_config")
    if not isinstance(qc, Mapping):
        return None
    method = qc.get("quant_method")
    if method == "fp8":
        return "block" if qc.get("weight_block_size") else "tensor"
    if method == "compressed-tensors":
        for group in (qc.get("config_groups") or {}).values():
            w = group.get("weights") or {}
            if w.get("type") == "float" and w.get("num_bits") == 8:
                return {"channel": "channel", "block": "block"}.get(str(w.get("strategy")), "tensor")
    return None


def modules_not_converted(config: Mapping[str, Any]) -> tuple[str, ...]:
    """Module names/patterns a checkpoint keeps unquantised, from ``quantization_config``:
    ``modules_to_not_convert`` (transformers / Qwen FP8 / gpt-oss), ``ignored_layers`` (vLLM fp8),
    ``ignore`` (compressed-tensors), ``exclude_modules`` (ModelOpt); see :func:`is_excluded`."""
    return tuple(pattern for _, pattern in quant_exclusions(config))


def _excluded_by(key: str, pattern: str, module: str) -> bool:
    r"""One exclusion entry against one module name (``model.layers.3.self_attn.q_proj``):

    * ``modules_to_not_convert``: transformers' rule, ``integrations/finegrained_fp8.py``
      ``_replace_with_fp8_linear`` (huggingface/transformers @ 0095b97653938e60bedf484ded6499f486611582):
      ``key in re.sub(r"\d+", "*", parameter_name)``, a substring test on the parameter name with
      every digit run written ``*`` (so gpt-oss's ``model.layers.*.self_attn`` hits every layer's
      attention, and ``lm_head`` hits ``lm_head.weight``).
    * ``ignore`` (compressed-tensors) and ``ignored_layers`` (vLLM fp8): ``re:`` entries are
      ``re.match(pattern, name)``, anything else must equal the module name
      (neuralmagic/compressed-tensors ``src/compressed_tensors/utils/match.py`` ``_match_name``
      @ 01e75b27bb2132b0f57766b3959fb0c3c538293a). Class-name targets (``Linear``) are not modelled.
    * ``exclude_modules`` (ModelOpt ``hf_quant_config.json``): shell-style wildcards
      (``model.layers.0.*``, ``*mlp.gate``), matched with ``fnmatch`` on the module name (the
      wildcard form ModelOpt writes; an exact name matches itself)."""
    if key == "modules_to_not_convert":
        return pattern in re.sub(r"\d+", "*", module + ".weight")
    if key == "exclude_modules":
        return fnmatch.fnmatchcase(module, pattern)
    if pattern.startswith("re:"):
        return re.match(pattern[3:], module) is not None
    return pattern == module


def is_excluded(module: str, exclusions: Iterable[tuple[str, str]]) -> bool:
    """Whether the checkpoint keeps ``module`` (its Hugging Face dotted name) in 16 bit, under
    the ``(key, pattern)`` exclusions of its ``quantization_config``
    (``architecture.quant_exclusions``); the rule per key is :func:`_excluded_by`. A pure
    function of its arguments."""
    return any(_excluded_by(key, pattern, module) for key, pattern in exclusions)


__all__ = [
    "BLOCK_FORMATS",
    "GGML_BLOCKS",
    "GGUF_FTYPES",
    "NOMINAL_BYTES",
    "fp8_linear_bytes",
    "fp8_scales_from_config",
    "ggml_tensor_bytes",
    "gguf_embed_bytes",
    "gguf_file_bytes",
    "gguf_layer_bytes",
    "gguf_stage_bytes",
    "gguf_tensor_type",
    "is_excluded",
    "is_gguf",
    "linear_bytes",
    "llama_cpp_memory",
    "modules_not_converted",
    "mxfp4_linear_bytes",
    "nvfp4_linear_bytes",
    "w4a8_linear_bytes",
    "w8a8_linear_bytes",
]
