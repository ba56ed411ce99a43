"""Quantised formats (optimizer/sizing/quant.py) against published checkpoint sizes and loader logs.

Tolerances:
* GGUF: llama.cpp's loader prints ``model size = X GiB (Y BPW)`` = the tensor data only (no
  metadata, no tokenizer), rounded to 0.01 GiB and 0.01 bits: procure must give the same rounded
  figures (+-0.005 GiB, +-0.005 BPW). The file on disk is larger by the metadata (Llama-3's
  128,256-token vocabulary and 280,147 merges: ~7 MB) and alignment padding.
* safetensors: 0.5 % (loader logs round to 0.01 GiB; engines add a few small buffers).
"""

from __future__ import annotations

import pytest

from optimizer.errors import UsageError
from optimizer.loaders import load_catalog, resolve_model
from optimizer.sizing import quant
from optimizer.sizing.architecture import param_counts, parse_config
from optimizer.sizing.memory import (
    GIB,
    KV_BYTES,
    WEIGHT_BYTES,
    kv_bytes_per_token,
    linear_bytes,
    serving_memory,
    stage_weight_bytes,
    weight_bytes,
    weight_bytes_per_gpu,
)

CATALOG = load_catalog()


def _arch(name: str):
    return parse_config(resolve_model(name, CATALOG).config, name)


def _llama_cpp_log(arch_name: str, precision: str, gib: float, bpw: float) -> None:
    a = _arch(arch_name)
    b = weight_bytes(a, precision)
    assert b / GIB == pytest.approx(gib, abs=0.005 + 1e-9)
    assert b * 8 / param_counts(a).total == pytest.approx(bpw, abs=0.005 + 1e-9)


# --- GGUF -------------------------------------------------------------------------------------

def test_ggml_block_layouts() -> None:
    # ggml-common.h: block_q4_0 = 2 + 16 B per 32; q8_0 = 2 + 32; q4_K = 2+2+12+128 per 256;
    # q5_K = 2+2+12+32+128; q6_K = 128+64+16+2.
    assert {k: v for k, v in quant.GGML_BLOCKS.items() if k in ("Q4_0", "Q8_0", "Q4_K", "Q5_K", "Q6_K")} \
        == {"Q4_0": (32, 18), "Q8_0": (32, 34), "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210)}
    assert quant.ggml_tensor_bytes("Q4_K", 4096, 1024) == 16 * 144 * 1024
    with pytest.raises(UsageError):
        quant.ggml_tensor_bytes("Q4_K", 100, 1)


def test_q4_k_m_tensor_types_match_llama_cpp_loader() -> None:
    """Public Ollama 0.5.4 log of Meta-Llama-3.1-8B-Instruct Q4_K_M (292 tensors):
    'type f32: 66 tensors, type q4_K: 193 tensors, type q6_K: 33 tensors'. q6_K = attn_v and
    ffn_down in the 16 use_more_bits layers + output.weight; f32 = 65 norms + rope_freqs (not
    counted here: 64 floats)."""
    a = _arch("Llama-3.1-8B")
    types = [quant.gguf_tensor_type(a, "q4_k_m", name, i, n_per_row)
             for i in range(a.num_layers) for name, n_per_row, _, _ in quant._gguf_layer_tensors(a, False)]
    types += [quant.gguf_tensor_type(a, "q4_k_m", t, 0, a.hidden_size) for t in ("token_embd", "output")]
    assert types.count("Q6_K") == 33
    assert types.count("Q4_K") == 193
    more = [i for i in range(32) if quant._use_more_bits(i, 32)]
    assert more == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]


@pytest.mark.parametrize(("precision", "gib", "bpw"), [
    # llm_load_print_meta 'model size' lines of public llama.cpp / Ollama logs, Llama-3(.1)-8B
    # (same tensor shapes; 8.03 B params):
    ("q4_k_m", 4.58, 4.89),  # Meta Llama 3.1 8B Instruct, ftype 'Q4_K - Medium' (Ollama 0.5.4, RTX 4090)
    ("q4_0", 4.33, 4.64),    # Meta Llama 3.1 8B Instruct, ftype Q4_0 (llama.cpp, Tesla GPU)
    ("q6_k", 6.14, 6.56),    # Meta Llama 3.1 8B Instruct, ftype Q6_K (Metal)
    ("q8_0", 7.95, 8.50),    # Meta-Llama-3-8B-Instruct-imatrix, ftype Q8_0
])
def test_gguf_llama31_8b_matches_llama_cpp_logs(precision: str, gib: float, bpw: float) -> None:
    _llama_cpp_log("Llama-3.1-8B", precision, gib, bpw)


@pytest.mark.parametrize(("model", "gib", "bpw"), [
    ("Llama-2-7B", 4.45, 5.68),    # 'LLaMA v2', 6.74 B, ftype 'Q5_K - Medium'
    ("Llama-2-13B", 8.60, 5.67),   # 'LLaMA v2', 13.02 B
    ("Mistral-7B", 4.78, 5.67),    # mistralai_mistral-7b-instruct-v0.2, 7.24 B (same shapes as v0.1)
])
def test_gguf_q5_k_m_matches_llama_cpp_logs(model: str, gib: float, bpw: float) -> None:
    _llama_cpp_log(model, "q5_k_m", gib, bpw)


def test_gguf_file_size_vs_published_download() -> None:
    """bartowski/Meta-Llama-3.1-8B-Instruct-GGUF lists Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf at
    4.92 GB (https://huggingface.co/bartowski/Meta-Llama-3.1-8B-Instruct-GGUF): tensor data +
    ~7 MB of metadata (tokenizer) -> the file is within 0.3 % above the tensor bytes."""
    b = weight_bytes(_arch("Llama-3.1-8B"), "q4_k_m")
    assert b < 4.92e9 * 1.001
    assert b == pytest.approx(4.92e9, rel=0.003)


def test_gguf_70b_and_8_expert_rules() -> None:
    a70 = _arch("Llama-3.3-70B")
    # LLM_TYPE_70B: attn_v Q4_K -> Q5_K outside the use_more_bits layers
    assert quant.gguf_tensor_type(a70, "q4_k_m", "attn_v", 11, 8192) == "Q5_K"
    assert quant.gguf_tensor_type(a70, "q4_k_m", "attn_v", 4, 8192) == "Q6_K"
    assert quant.gguf_tensor_type(a70, "q4_k_m", "attn_q", 4, 8192) == "Q4_K"
    mix = _arch("Mixtral-8x7B")
    assert quant.gguf_tensor_type(mix, "q4_k_m", "attn_v", 4, 4096) == "Q8_0"
    assert quant.gguf_tensor_type(mix, "q4_k_m", "attn_k", 4, 4096) == "Q8_0"
    assert quant.gguf_tensor_type(mix, "q4_k_m", "attn_output", 4, 4096) == "Q5_K"
    assert quant.gguf_tensor_type(mix, "q8_0", "output", 0, 4096) == "Q8_0"
    # a row not a multiple of 256 falls back (Q4_K -> Q5_0)
    assert quant.gguf_tensor_type(mix, "q4_k_m", "ffn_gate", 4, 4096 + 32) == "Q5_0"


def test_gguf_pipeline_stages_sum_to_file_and_serving_memory_runs() -> None:
    a = _arch("Llama-3.1-8B")
    total = weight_bytes(a, "q4_k_m")
    assert sum(stage_weight_bytes(a, "q4_k_m", 1, 2)) == total
    assert weight_bytes_per_gpu(a, "q4_k_m", 2, 1) < 0.51 * total
    m = serving_memory(a, "q4_k_m", gpu_memory_gib=24, max_model_len=8192)
    assert m.fits and m.weight_bytes == total
    with pytest.raises(UsageError):
        linear_bytes(4096, 4096, "q4_k_m")


# --- FP8 --------------------------------------------------------------------------------------

def test_fp8_scale_layouts() -> None:
    # DeepSeek-V3 q_b_proj 1536 -> 24576: weight_scale_inv fp32 [192, 12]
    assert quant.fp8_linear_bytes(1536, 24576, "block") == 1536 * 24576 + 4 * 192 * 12
    assert quant.fp8_linear_bytes(4096, 1024, "channel") == 4096 * 1024 + 2 * 1024
    assert quant.fp8_linear_bytes(4096, 1024) == 4096 * 1024 + 4
    assert linear_bytes(4096, 1024, "fp8") == 4096 * 1024 + 4  # default unchanged (goldens)
    with pytest.raises(UsageError):
        quant.fp8_linear_bytes(1, 1, "row")


def test_fp8_block_read_from_quantization_config() -> None:
    cfg = resolve_model("DeepSeek-V3", CATALOG).config
    assert quant.fp8_scales_from_config(cfg) == "block"
    assert quant.fp8_scales_from_config({"quantization_config": {"quant_method": "fp8"}}) == "tensor"
    ct = {"quantization_config": {"quant_method": "compressed-tensors", "ignore": ["lm_head"],
                                  "config_groups": {"g0": {"weights": {"type": "float", "num_bits": 8,
                                                                       "strategy": "channel"}}}}}
    assert quant.fp8_scales_from_config(ct) == "channel"
    assert quant.modules_not_converted(ct) == ("lm_head",)
    assert quant.fp8_scales_from_config({}) is None


def test_deepseek_fp8_block_tp8_matches_loader_log() -> None:
    """HabanaAI/vllm-fork#809 (DeepSeek-R1, the DeepSeek-V3 architecture, FP8 128x128 blocks,
    TP=8): 'Pre-loading model weights on hpu:0 took 79.41 GiB of device memory'.
    procure: embeddings, lm_head, norms, routers bf16; MLA down-projections replicated."""
    got = weight_bytes_per_gpu(_arch("DeepSeek-V3"), "fp8", 8, quant_format="block") / GIB
    assert got == pytest.approx(79.41, rel=0.005)


# --- FP4, W8A8, W4A8 ----------------------------------------------------------------------------

def test_mxfp4_matches_gpt_oss_tensor_shapes() -> None:
    """openai/gpt-oss-20b safetensors: model.layers.0.mlp.experts.gate_up_proj_blocks
    U8 [32, 5760, 90, 16] and gate_up_proj_scales U8 [32, 5760, 90] (hidden 2880 = 90 x 32)."""
    assert 32 * quant.mxfp4_linear_bytes(2880, 5760) == 32 * 5760 * 90 * 16 + 32 * 5760 * 90


def test_nvfp4_matches_modelopt_layout() -> None:
    """vLLM ModelOptNvFp4LinearMethod.create_weights: weight U8 [out, in/2], weight_scale
    F8_E4M3 [out, in/16], weight_scale_2 and input_scale F32 scalars (e.g. Llama-3.1-8B q_proj
    4096 x 4096: 8 MiB + 1 MiB + 8 B)."""
    assert quant.nvfp4_linear_bytes(4096, 4096) == 4096 * 2048 + 4096 * 256 + 8
    assert WEIGHT_BYTES["nvfp4"] == 0.5625 and WEIGHT_BYTES["mxfp4"] == 0.53125


def test_w8a8_and_w4a8_layouts() -> None:
    assert quant.w8a8_linear_bytes(4096, 14336) == 4096 * 14336 + 2 * 14336
    assert quant.w4a8_linear_bytes(4096, 14336) == 4096 * 14336 // 2 + 32 * 14336 * 2 + 2 * 4096 + 4


def test_w8a8_llama31_8b_vs_published_int8_checkpoint() -> None:
    """vllm-project/llm-compressor#1215: a Llama-3.1-8B-Instruct checkpoint stored with int8
    weights and bf16 group-128 scales (the W4A8 scheme of llmcompressor 0.4.1, which saved 8-bit
    weights) is 9,190,252,544 bytes (model.safetensors.index.json). W8A8 stores the same int8
    weights with one scale per output row instead of per 128 inputs: procure's W8A8 plus those
    group scales must give the published bytes."""
    a = _arch("Llama-3.1-8B")
    group_scales = sum(s.count * (s.in_features // 128) * s.out_features * 2
                       for s in _linear_shapes(a))
    row_scales = sum(s.count * s.out_features * 2 for s in _linear_shapes(a))
    assert weight_bytes(a, "w8a8") - row_scales + group_scales == pytest.approx(9_190_252_544, rel=0.001)


def _linear_shapes(a):
    from optimizer.sizing.architecture import linear_shapes
    return linear_shapes(a)


def test_fp4_half_of_fp8_plus_scales() -> None:
    a = _arch("Llama-3.3-70B")
    fp8 = weight_bytes(a, "fp8")
    emb = 2 * 2 * a.vocab_size * a.hidden_size  # embedding + lm_head stay bf16
    linear = fp8 - emb
    assert weight_bytes(a, "nvfp4") - emb == pytest.approx(linear * 0.5625, rel=0.001)
    assert weight_bytes(a, "mxfp4") - emb == pytest.approx(linear * 0.53125, rel=0.001)


# --- GPU rules, KV --------------------------------------------------------------------------

def test_gpu_runs_and_compute_rates() -> None:
    g = CATALOG.gpus
    h100, a100 = g["H100-SXM-80GB"], g["A100-SXM-80GB"]
    # FP4 weight-only off Blackwell (Marlin FP4), at the 16-bit rate
    assert h100.runs("nvfp4") and h100.runs("mxfp4") and a100.runs("nvfp4")
    assert h100.compute_tflops("nvfp4") == h100.tflops_dense["bf16"]
    # W8A8 at the int8 rate where int8 is native; W4A8 needs fp8 activations (Hopper)
    assert h100.runs("w8a8") and h100.compute_tflops("w8a8") == h100.tflops_dense["int8"]
    assert h100.runs("w4a8") and h100.compute_tflops("w4a8") == h100.tflops_dense["fp8"]
    assert not a100.runs("w4a8")
    # GGUF: llama.cpp is not a modelled engine
    assert not any(gpu.runs("q4_k_m") for gpu in g.values())
    for gpu in g.values():
        if "nvfp4" in gpu.tflops_dense:
            assert gpu.runs("nvfp4") and gpu.compute_tflops("nvfp4") == gpu.tflops_dense["nvfp4"]


def test_int8_kv_cache() -> None:
    a = _arch("Llama-3.1-8B")
    assert KV_BYTES["int8"] == 1
    assert kv_bytes_per_token(a, "int8") == kv_bytes_per_token(a, "fp8") == kv_bytes_per_token(a) // 2


def test_existing_precisions_unchanged() -> None:
    a = _arch("Llama-2-7B")
    assert weight_bytes(a, "bf16") == 2 * 6_738_415_616
    assert {k: WEIGHT_BYTES[k] for k in ("fp32", "bf16", "fp16", "fp8", "int8", "int4")} == \
        {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}


def test_w4a8_weights_as_published_w4a16_checkpoint() -> None:
    """vllm-project/llm-compressor#1215: meta-llama/Llama-3.1-8B-Instruct W4A16 (compressed-tensors
    pack-quantized, int4, bf16 group-128 scales) is 5,700,595,200 bytes. W4A8 stores the same
    int4 weights and group scales; TensorRT-LLM's W4A8_AWQ adds a 16-bit pre-quant scale per input
    column and an fp32 activation scale per linear (subtracted here). The 3,584 B left are
    compressed-tensors' weight_shape (int64 x 2) of the 224 linears."""
    a = _arch("Llama-3.1-8B")
    shapes = _linear_shapes(a)
    extra = sum(s.count * (2 * s.in_features + 4) for s in shapes)
    n_linears = sum(s.count for s in shapes)
    assert weight_bytes(a, "w4a8") - extra + 16 * n_linears == 5_700_595_200


# --- CLI and scenarios ------------------------------------------------------------------------

def test_procure_size_gguf_file_and_memory() -> None:
    """`procure size MODEL --precision q4_k_m --max-model-len 8192`: weight_bytes is the GGUF
    tensor data; llama_cpp adds the f16 KV for the context. The Ollama 0.5.4 log quoted above
    (Llama-3.1-8B Q4_K_M, --ctx-size 8192) reports memory.required.kv="1.0 GiB"."""
    import json

    from click.testing import CliRunner

    from optimizer.cli import main
    r = CliRunner().invoke(main, ["size", "Llama-3.1-8B", "--precision", "q4_k_m", "--gpu",
                                  "H100-SXM-80GB", "--max-model-len", "8192", "--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["weight_bytes"] == weight_bytes(_arch("Llama-3.1-8B"), "q4_k_m")
    assert d["llama_cpp"]["kv_cache_bytes"] == GIB
    assert d["llama_cpp"]["total_bytes"] == d["weight_bytes"] + GIB
    for p in ("nvfp4", "mxfp4", "w8a8", "w4a8", "q4_0", "q5_k_m", "q6_k", "q8_0"):
        r = CliRunner().invoke(main, ["size", "Qwen2.5-7B", "--precision", p, "--format", "json"])
        assert r.exit_code == 0, (p, r.output)


def test_gguf_in_a_scenario_is_refused(tmp_path) -> None:
    from pathlib import Path

    from optimizer.errors import ScenarioError
    from optimizer.loaders import load_scenario
    src = Path(__file__).resolve().parents[2] / "scenarios" / "bank-rollout.yaml"
    text = src.read_text().replace("precisions: [bf16, fp8]", "precisions: [bf16, q4_k_m]", 1)
    assert "q4_k_m" in text
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=r"llama\.cpp is not one of the modelled"):
        load_scenario(path)


# --- quantization_config exclusions (modules kept in 16 bit) -------------------------------------

def _with_qc(name: str, qc: dict):
    import copy
    cfg = copy.deepcopy(resolve_model(name, CATALOG).config)
    cfg["quantization_config"] = qc
    return parse_config(cfg, name)


def _layer_linears(a, i: int):
    """(in, out) of every matrix of dense layer ``i`` of a Llama/Qwen3 dense model, from shapes."""
    h, d = a.hidden_size, a.head_dim
    q, kv = a.num_attention_heads * d, a.num_kv_heads * d
    inter = a.intermediate_size
    return [(h, q), (h, kv), (h, kv), (q, h), (h, inter), (h, inter), (inter, h)]


def test_exclusion_rules_per_key() -> None:
    ex = quant.is_excluded
    # transformers modules_to_not_convert: substring of the parameter name with digits -> '*'
    assert ex("model.layers.7.self_attn.q_proj", [("modules_to_not_convert", "model.layers.*.self_attn")])
    assert ex("lm_head", [("modules_to_not_convert", "lm_head")])
    assert not ex("model.layers.7.mlp.down_proj", [("modules_to_not_convert", "model.layers.*.self_attn")])
    # compressed-tensors ignore: exact name or re: + re.match
    assert ex("model.layers.3.mlp.gate", [("ignore", "re:.*mlp.gate$")])
    assert not ex("model.layers.3.mlp.gate_proj", [("ignore", "re:.*mlp.gate$")])
    assert not ex("model.layers.3.mlp.gate", [("ignore", "mlp.gate")])
    # ModelOpt exclude_modules: wildcards
    assert ex("model.layers.0.self_attn.o_proj", [("exclude_modules", "model.layers.0.*")])
    assert not ex("model.layers.10.self_attn.o_proj", [("exclude_modules", "model.layers.1.*")])
    a = _with_qc("Qwen3-8B", {"quant_method": "compressed-tensors", "ignore": ["lm_head"],
                              "modules_to_not_convert": None})
    assert a.quant_exclusions == (("ignore", "lm_head"),)
    assert _arch("Qwen3-8B").quant_exclusions == () and _arch("DeepSeek-V3").quant_exclusions == ()


def test_excluding_only_16_bit_modules_changes_nothing() -> None:
    """lm_head, embeddings and routers are 16 bit already, so the usual lists
    (["lm_head", "re:.*mlp.gate$"], Qwen FP8's ["lm_head", "model.embed_tokens"]) keep today's bytes;
    a 16-bit config sized with an explicit precision is unchanged too."""
    for name, qc in (("Qwen3-30B-A3B", {"quant_method": "compressed-tensors",
                                        "ignore": ["lm_head", "re:.*mlp.gate$"]}),
                     ("Qwen3-8B", {"quant_method": "fp8", "weight_block_size": [128, 128],
                                   "modules_to_not_convert": ["lm_head", "model.embed_tokens"]})):
        a, plain = _with_qc(name, qc), _arch(name)
        for p, fmt in (("fp8", "block"), ("nvfp4", "gptq"), ("int4", "gptq")):
            assert weight_bytes(a, p, quant_format=fmt) == weight_bytes(plain, p, quant_format=fmt)
        assert weight_bytes(a, "bf16") == weight_bytes(plain, "bf16")


def test_fp8_block_first_and_last_layer_kept_in_16_bit() -> None:
    """compressed-tensors ignore of the first and last decoder layers (the layers real FP8
    checkpoints often leave in 16 bit): those 2 x 7 matrices at 2 B per weight, no scales; the
    rest at fp8 + fp32 128x128 block scales. Expected bytes from the shapes."""
    a = _with_qc("Qwen3-8B", {"quant_method": "compressed-tensors",
                              "ignore": ["lm_head", r"re:model\.layers\.(0|35)\."]})
    plain = _arch("Qwen3-8B")
    swapped = sum(2 * i * o - quant.fp8_linear_bytes(i, o, "block")
                  for layer in (0, 35) for i, o in _layer_linears(a, layer))
    assert weight_bytes(a, "fp8", quant_format="block") == \
        weight_bytes(plain, "fp8", quant_format="block") + swapped
    # pipeline stages still sum to the whole model; stage 0 holds layer 0
    stages = stage_weight_bytes(a, "fp8", 1, 2, quant_format="block")
    assert sum(stages) == weight_bytes(a, "fp8", quant_format="block")


def test_gpt_oss_style_attention_exclusion_on_moe() -> None:
    """gpt-oss's quantization_config keeps 'model.layers.*.self_attn', routers, embeddings and
    lm_head in bf16 and stores only the experts in MXFP4 (openai/gpt-oss-120b config.json, quoted
    in search-index file 10134691353). Same rule on a catalog MoE (Qwen3-30B-A3B): attention at
    2 B per weight, experts at mxfp4 bytes. Under EP=8 the per-GPU figure still runs."""
    a = _with_qc("Qwen3-30B-A3B", {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]})
    plain = _arch("Qwen3-30B-A3B")
    h, d = a.hidden_size, a.head_dim
    q, kv = a.num_attention_heads * d, a.num_kv_heads * d
    attn = [(h, q), (h, kv), (h, kv), (q, h)]
    swapped = a.num_layers * sum(2 * i * o - quant.mxfp4_linear_bytes(i, o) for i, o in attn)
    assert weight_bytes(a, "mxfp4") == weight_bytes(plain, "mxfp4") + swapped
    assert weight_bytes_per_gpu(a, "mxfp4", 1, 1, ep=8) > weight_bytes_per_gpu(plain, "mxfp4", 1, 1, ep=8)


def test_nvfp4_llama31_8b_vs_published_checkpoint() -> None:
    """nvidia/Llama-3.1-8B-Instruct-FP4 (ModelOpt NVFP4: hf_quant_config.json ``quant_algo NVFP4,
    group_size 16, exclude_modules ["lm_head"], kv_cache_quant_algo FP8``) is 6,027,861,376 B of
    safetensors files (measured file sizes recorded in a public test file, search-index file id
    69457224706; revision not recorded there). The catalog's Llama-3.1-8B config (same shapes as
    -Instruct) with that quantization_config: every decoder linear NVFP4 (E2M1 + E4M3 per 16 +
    2 fp32 scalars), embeddings and lm_head bf16.

    Tolerance 0.01 %: the files also hold each shard's JSON header (~1,000 tensor entries) and the
    fp32 k_scale/v_scale scalars of the FP8 KV cache, which procure does not count (it must be
    below the files, by well under 1 MB)."""
    a = _with_qc("Llama-3.1-8B", {"quant_method": "modelopt", "quant_algo": "NVFP4",
                                  "group_size": 16, "kv_cache_quant_algo": "FP8",
                                  "exclude_modules": ["lm_head"]})
    got = weight_bytes(a, "nvfp4")
    assert got == pytest.approx(6_027_861_376, rel=1e-4)
    assert 0 < 6_027_861_376 - got < 1_000_000
