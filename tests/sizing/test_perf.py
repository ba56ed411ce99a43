"""Step-time model, batch limits, SLO capacity and the directions issue 4 requires.

Hand-worked numbers cite their inputs: GPU datasheet figures from catalogs/gpus.yaml (H100 SXM:
3,350 GB/s, 989 bf16 / 1,979 fp8 TFLOPS, NVLink 450 GB/s per direction), model shapes from the
catalog config.json files (Llama-3.1-8B: 32 layers, 8 KV heads x 128, hidden 4096, vocab 128256).
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from optimizer.errors import UsageError
from optimizer.loaders import load_catalog, resolve_gpu, resolve_model
from optimizer.schema.catalog import GPU, Interconnect
from optimizer.schema.engine import EngineSettings
from optimizer.sizing.architecture import ModelArch, param_counts, parse_config
from optimizer.sizing.calibration import trtllm_kv_cache_tokens
from optimizer.sizing.memory import serving_memory
from optimizer.sizing.perf import (
    Efficiency,
    MeasuredPoint,
    allreduce_s,
    decode_step_s,
    load_efficiency,
    md1_wait_s,
    replica_perf,
    step_model,
)

CAT = load_catalog()
H100 = resolve_gpu("H100-SXM-80GB", CAT)
H200 = resolve_gpu("H200-SXM-141GB", CAT)
#: Round factors for hand calculations (not the fitted ones).
EFF = Efficiency(compute=0.5, memory_bw=0.8, step_overhead_ms=1.0, layer_overhead_us=0.0)


def arch(name: str) -> ModelArch:
    m = resolve_model(name, CAT)
    return parse_config(m.config, m.name)


def vllm_kv(a: ModelArch, gpu: GPU, precision: str, tp: int = 1, kv_dtype: str = "auto",
            max_len: int = 4096) -> int:
    mem = serving_memory(a, precision, gpu_memory_gib=gpu.memory_gib, tp=tp,
                         settings=EngineSettings(kv_dtype=kv_dtype), max_model_len=max_len)  # type: ignore[arg-type]
    assert mem.fits, mem.reason
    return mem.kv_cache_tokens


# --- building blocks, by hand ------------------------------------------------------------------


def test_md1_wait_pollaczek_khinchine() -> None:
    # rate 5/s, service 0.1 s: rho 0.5, W = 0.5 x 0.1 / (2 x 0.5) = 0.05 s.
    assert md1_wait_s(5.0, 0.1) == pytest.approx(0.05)
    assert md1_wait_s(0.0, 0.1) == 0.0
    assert md1_wait_s(10.0, 0.1) == math.inf
    # Batched prefill: busy time 0.05 s per prompt, rho 0.25, W = 0.25 x 0.1 / 1.5 = 0.016667 s.
    assert md1_wait_s(5.0, 0.1, 0.05) == pytest.approx(0.1 / 6)


def test_allreduce_ring_volume_on_nvlink() -> None:
    # Llama-3.3-70B (80 layers, hidden 8192) at TP2 on H100 SXM, 100 tokens: message 100 x 8192 x
    # 2 B = 1,638,400 B; comm.yaml nvlink4 TP2: alpha 2.75 us, busBW 274.97 GB/s, so one all-reduce
    # = 2.75 us + 2 x 1/2 x 1,638,400 / 274.97e9 = 2.75 + 5.9585 = 8.7085 us; x 2 per layer x 80.
    sm = step_model(arch("Llama-3.3-70B"), H100, tp=2, precision="fp8")
    assert sm.layers == 80 and sm.hidden == 8192
    assert allreduce_s(sm, 100) == pytest.approx(160 * (2.75e-6 + 1_638_400 / 274.97e9), rel=1e-9)
    assert allreduce_s(step_model(arch("Llama-3.3-70B"), H200, tp=1, precision="fp8"), 100) == 0.0


def test_experts_touched_by_a_batch() -> None:
    # Mixtral-8x7B: E = 8, k = 2. One token touches 2 experts; two tokens 8 (1 - (6/8)^2) = 3.5.
    sm = step_model(arch("Mixtral-8x7B"), H200, tp=1, precision="bf16")
    assert sm.experts_touched(1) == pytest.approx(2.0)
    assert sm.experts_touched(2) == pytest.approx(3.5)
    assert sm.experts_touched(1000) == pytest.approx(8.0)


def test_batch_one_decode_streams_the_weights() -> None:
    # Llama-3.1-8B fp8 on H100: every decode step streams all weights but the input embedding
    # (128256 x 4096 x 2 B, a lookup). At batch 1 with a 2-token context the KV and FLOP terms are
    # negligible: TPOT = streamed / (3,350 GB/s x 0.8) + 1 ms overhead.
    a = arch("Llama-3.1-8B")
    sm = step_model(a, H100, tp=1, precision="fp8")
    from optimizer.sizing.memory import weight_bytes

    streamed = weight_bytes(a, "fp8") - 128256 * 4096 * 2
    assert sm.dense_bytes == pytest.approx(streamed)
    t = decode_step_s(sm, EFF, 1, 1, 2)
    assert t == pytest.approx(streamed / (3350e9 * 0.8) + 1e-3, rel=0.01)


def test_linear_flops_use_active_parameters() -> None:
    # 2 FLOPs per active non-embedding parameter per token (Kaplan et al. 2020).
    a = arch("Mixtral-8x7B")
    c = param_counts(a)
    sm = step_model(a, H200, tp=1, precision="bf16")
    assert sm.flops_per_token == pytest.approx(2 * (c.active - c.embedding))
    assert sm.flops_per_token < 0.35 * 2 * c.total  # 12.9B active of 46.7B


# --- batch limits and SLOs --------------------------------------------------------------------


def test_kv_batch_limit_follows_the_reservation_rule() -> None:
    a = arch("Llama-3.1-8B")
    perf = replica_perf(a, H100, tp=1, precision="fp8", input_tokens=1000, output_tokens=1000,
                        kv_cache_tokens=500_000, max_num_seqs=4096, efficiency=EFF)
    assert perf.kv_batch_limit == 500_000 // 2000 == perf.batch and perf.limited_by == "kv"
    vllm_like = replace(EFF, kv_reserve_output_fraction=0.5)
    perf2 = replica_perf(a, H100, tp=1, precision="fp8", input_tokens=1000, output_tokens=1000,
                         kv_cache_tokens=500_000, max_num_seqs=4096, efficiency=vllm_like)
    assert perf2.kv_batch_limit == 500_000 // 1500
    capped = replica_perf(a, H100, tp=1, precision="fp8", input_tokens=1000, output_tokens=1000,
                          kv_cache_tokens=500_000, max_num_seqs=64, efficiency=EFF)
    assert capped.batch == 64 and capped.limited_by == "max_num_seqs"


def test_tpot_target_limits_the_batch() -> None:
    a = arch("Llama-3.1-8B")
    kv = vllm_kv(a, H100, "fp8")
    free = replica_perf(a, H100, tp=1, precision="fp8", input_tokens=500, output_tokens=500,
                        kv_cache_tokens=kv, efficiency=EFF)
    tight = replica_perf(a, H100, tp=1, precision="fp8", input_tokens=500, output_tokens=500,
                         kv_cache_tokens=kv, tpot_ms=free.offline_tpot_ms / 2, efficiency=EFF)
    assert tight.limited_by == "tpot" and tight.slo_batch < free.batch
    assert 0 < tight.requests_per_s < free.requests_per_s
    assert tight.tpot_ms <= free.offline_tpot_ms / 2
    impossible = replica_perf(a, H100, tp=1, precision="fp8", input_tokens=500, output_tokens=500,
                              kv_cache_tokens=kv, tpot_ms=0.5, efficiency=EFF)
    assert impossible.requests_per_s == 0 and impossible.limited_by == "tpot"


def test_ttft_target_with_queueing() -> None:
    a = arch("Llama-3.1-8B")
    kv = vllm_kv(a, H100, "fp8", max_len=9000)
    loose = replica_perf(a, H100, tp=1, precision="fp8", input_tokens=8000, output_tokens=100,
                         kv_cache_tokens=kv, ttft_ms=60_000, efficiency=EFF)
    # The planned load sits on the M/D/1 curve: TTFT = W_q + S + TPOT.
    assert loose.ttft_ms > loose.prefill_ms
    target = (loose.prefill_ms + loose.tpot_ms) * 1.5
    tight = replica_perf(a, H100, tp=1, precision="fp8", input_tokens=8000, output_tokens=100,
                         kv_cache_tokens=kv, ttft_ms=target, efficiency=EFF)
    if loose.ttft_ms > target:
        assert tight.limited_by == "ttft" and tight.requests_per_s < loose.requests_per_s
    assert tight.ttft_ms <= target * (1 + 1e-6)
    never = replica_perf(a, H100, tp=1, precision="fp8", input_tokens=8000, output_tokens=100,
                         kv_cache_tokens=kv, ttft_ms=1.0, efficiency=EFF)
    assert never.requests_per_s == 0 and never.limited_by == "ttft"


def test_measured_point_overrides_its_exact_deployment() -> None:
    a = arch("Llama-3.1-8B")
    point = MeasuredPoint(model="Llama-3.1-8B", gpu="H100-SXM-80GB", tp=1, precision="fp8",
                          input_tokens=1000, output_tokens=1000, output_tokens_per_s=4321.0)
    kw = dict(input_tokens=1000, output_tokens=1000, kv_cache_tokens=400_000, efficiency=EFF)
    hit = replica_perf(a, H100, tp=1, precision="fp8", measured=[point], **kw)  # type: ignore[arg-type]
    assert hit.output_tokens_per_s == 4321.0 and hit.source == "measured"
    model = replica_perf(a, H100, tp=1, precision="fp8", **kw)  # type: ignore[arg-type]
    assert model.source == "model" and model.output_tokens_per_s != pytest.approx(4321.0)
    other = replica_perf(a, H100, tp=1, precision="bf16", measured=[point], **kw)  # type: ignore[arg-type]
    assert other.source == "model"
    # Other lengths of the same deployment are scaled by the same measured/model ratio.
    near = replica_perf(a, H100, tp=1, precision="fp8", measured=[point], input_tokens=1000,
                        output_tokens=900, kv_cache_tokens=400_000, efficiency=EFF)
    assert near.source == "measured" and near.measured_scale == pytest.approx(hit.measured_scale)


def test_bad_inputs_raise_usage_errors() -> None:
    a = arch("Llama-3.1-8B")
    with pytest.raises(UsageError):
        Efficiency(compute=1.5, memory_bw=0.8, step_overhead_ms=1)
    with pytest.raises(UsageError):
        replica_perf(a, H100, tp=1, precision="fp4", input_tokens=1, output_tokens=1,
                     kv_cache_tokens=1000, efficiency=EFF)
    with pytest.raises(UsageError):
        replica_perf(a, H100, tp=1, precision="fp8", input_tokens=0, output_tokens=1,
                     kv_cache_tokens=1000, efficiency=EFF)


# --- directions nobody fitted (issue 4, "Done when") ------------------------------------------


def _trtllm(a: ModelArch, gpu: GPU, isl: int, osl: int) -> float:
    kv = trtllm_kv_cache_tokens(a, gpu, tp=1, pp=1, precision="fp8", kv_dtype="fp8")
    return replica_perf(a, gpu, tp=1, precision="fp8", kv_dtype="fp8", input_tokens=isl,
                        output_tokens=osl, kv_cache_tokens=kv, max_num_seqs=4096,
                        efficiency=load_efficiency(gpu)).output_tokens_per_s


def test_h200_gains_more_on_decode_heavy_than_prefill_heavy() -> None:
    # Same GH100 compute, 4.8 vs 3.35 TB/s and 141 vs 80 GB (catalogs/gpus.yaml).
    a = arch("Llama-3.1-8B")
    decode_gain = _trtllm(a, H200, 128, 4096) / _trtllm(a, H100, 128, 4096)
    prefill_gain = _trtllm(a, H200, 2048, 128) / _trtllm(a, H100, 2048, 128)
    assert decode_gain > prefill_gain + 0.15
    assert prefill_gain < 1.15  # prefill is compute-bound and compute is identical


def test_tp_over_pcie_gains_less_than_over_nvlink() -> None:
    a = arch("Llama-3.1-8B")
    pcie = H100.model_copy(update={"interconnect": Interconnect(
        kind="pcie", bandwidth_gb_s=64, domain_size=8, description="PCIe Gen5 x16, 128 GB/s bidirectional")})
    eff = load_efficiency(H100)

    def speedup(gpu: GPU) -> float:
        one = replica_perf(a, gpu, tp=1, precision="bf16", input_tokens=1000, output_tokens=500,
                           kv_cache_tokens=vllm_kv(a, gpu, "bf16"), efficiency=eff)
        two = replica_perf(a, gpu, tp=2, precision="bf16", input_tokens=1000, output_tokens=500,
                           kv_cache_tokens=vllm_kv(a, gpu, "bf16", tp=2), efficiency=eff)
        return two.output_tokens_per_s / one.output_tokens_per_s

    assert speedup(pcie) < speedup(H100)
    sm_nv = step_model(a, H100, tp=2, precision="bf16")
    sm_pc = step_model(a, pcie, tp=2, precision="bf16")
    big = 4096  # bandwidth-dominated all-reduce: 450 / 64 = 7x slower over PCIe
    assert allreduce_s(sm_pc, big) > 5 * allreduce_s(sm_nv, big)


def test_fp8_kv_raises_the_batch_limit() -> None:
    a = arch("Llama-3.1-8B")
    eff = load_efficiency(H100)
    base = replica_perf(a, H100, tp=1, precision="bf16", input_tokens=2000, output_tokens=2000,
                        kv_cache_tokens=vllm_kv(a, H100, "bf16", max_len=4000), max_num_seqs=4096,
                        efficiency=eff)
    fp8 = replica_perf(a, H100, tp=1, precision="bf16", kv_dtype="fp8", input_tokens=2000,
                       output_tokens=2000, kv_cache_tokens=vllm_kv(a, H100, "bf16", kv_dtype="fp8", max_len=4000),
                       max_num_seqs=4096, efficiency=eff)
    assert fp8.kv_batch_limit > 1.9 * base.kv_batch_limit  # half the bytes per token
    assert fp8.output_tokens_per_s > base.output_tokens_per_s


def test_moe_is_faster_per_total_parameter_than_dense() -> None:
    # Mixtral-8x7B against a dense model of the same shape and total size: one expert 8x wider.
    m = resolve_model("Mixtral-8x7B", CAT)
    moe = parse_config(m.config, m.name)
    cfg = dict(m.config, num_local_experts=1, num_experts_per_tok=1,
               intermediate_size=8 * m.config["intermediate_size"])
    dense = parse_config(cfg, "Mixtral-dense-equivalent")
    pm, pd = param_counts(moe).total, param_counts(dense).total
    assert abs(pm / pd - 1) < 0.01
    eff = load_efficiency(H200)
    kw = dict(tp=1, precision="bf16", input_tokens=1000, output_tokens=1000, kv_cache_tokens=300_000,
              efficiency=eff)
    fast = replica_perf(moe, H200, **kw)  # type: ignore[arg-type]
    slow = replica_perf(dense, H200, **kw)  # type: ignore[arg-type]
    assert fast.output_tokens_per_s / pm > 1.3 * slow.output_tokens_per_s / pd
    # At batch 1 with I = O = 100 a step carries 1 decode token + 100/99 prefill tokens = 2.0101
    # tokens, touching 8 (1 - 0.75^2.0101) = 3.514 of 8 experts: 2.949 GB + 32 x 3.514 x 352.3 MB
    # = 42.56 GB streamed against 2.947 GB + 32 x 2.819 GB = 93.14 GB dense.
    sm_m = step_model(moe, H200, tp=1, precision="bf16")
    sm_d = step_model(dense, H200, tp=1, precision="bf16")
    no_overhead = replace(EFF, step_overhead_ms=0.0)
    ratio = decode_step_s(sm_m, no_overhead, 1, 100, 100) / decode_step_s(sm_d, no_overhead, 1, 100, 100)
    touched = 8 * (1 - 0.75 ** (1 + 100 / 99))
    assert ratio == pytest.approx((2.949e9 + 32 * touched * 352.3e6) / (2.947e9 + 32 * 2818.6e6), rel=0.02)
