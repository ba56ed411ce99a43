"""MoE layouts (docs/perf.md "MoE layouts"): per-GPU expert memory, KV per DP rank, the all-to-all
volume and time, scalar and batched step times, and the layouts the candidate builder adds."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.errors import UsageError
from optimizer.loaders import load_catalog, resolve_gpu, resolve_model
from optimizer.schema.engine import EngineSettings
from optimizer.sizing.architecture import ModelArch, parse_config
from optimizer.sizing.comm import alltoall_s, comm_profile
from optimizer.sizing.layout import moe_layout_problems, moe_layouts
from optimizer.sizing.memory import (
    expert_bytes_per_gpu,
    kv_bytes_per_token_per_gpu,
    serving_memory,
    weight_bytes_per_gpu,
)
from optimizer.sizing.perf import (
    StepColumns,
    load_efficiency,
    moe_alltoall_bytes,
    moe_comm_s,
    prefill_array,
    prefill_s,
    prefill_work_array,
    prefill_work_s,
    replica_perf,
    stage_time_array,
    stage_time_s,
    step_model,
)

CAT = load_catalog()


def arch_of(name: str) -> ModelArch:
    m = resolve_model(name, CAT)
    return parse_config(m.config, m.name)


QWEN = arch_of("Qwen3-235B-A22B")   # 94 layers, all MoE; 128 experts, k 8; hidden 4096, expert inter 1536
H200 = resolve_gpu("H200-SXM-141GB", CAT)

#: One routed expert of Qwen3-235B-A22B in bf16: gate + up (4096 x 1536) and down (1536 x 4096), 2 B.
QWEN_EXPERT_BF16 = 3 * 4096 * 1536 * 2  # 37,748,736 B


def test_qwen3_expert_memory_per_gpu_by_hand() -> None:
    # EP8: 128 / 8 = 16 whole experts per GPU in each of 94 layers
    assert QWEN_EXPERT_BF16 == 37_748_736
    ep8 = 94 * 16 * QWEN_EXPERT_BF16
    assert ep8 == 56_774_098_944
    assert expert_bytes_per_gpu(QWEN, "bf16", tp=1, ep=8) == ep8
    # TP8 without EP: a 1/8 shard (intermediate 1536 / 8 = 192) of all 128 experts: the same bytes
    assert expert_bytes_per_gpu(QWEN, "bf16", tp=8) == 94 * 128 * 3 * 4096 * 192 * 2 == ep8
    # DP2 x TP4 with EP8: attention and the rest are TP4 shards, the experts EP8's; against TP4
    # alone (experts 1/4 each) the GPU holds exactly half the routed-expert bytes of TP4
    tp4 = weight_bytes_per_gpu(QWEN, "bf16", 4)
    dp2_ep8 = weight_bytes_per_gpu(QWEN, "bf16", 4, ep=8)
    assert tp4 - dp2_ep8 == 2 * ep8 - ep8 == 56_774_098_944


def test_ep_must_divide_the_experts_and_is_moe_only() -> None:
    with pytest.raises(UsageError, match="divides"):
        weight_bytes_per_gpu(QWEN, "bf16", 1, ep=3)
    dense = arch_of("Llama-3.1-8B")
    assert moe_layout_problems(dense, H200, tp=2, ep=2, dp=1)[0].message.endswith("for MoE models")
    assert moe_layouts(dense, 8, H200) == []
    # ep must be 1 or tp x dp; dp > 1 needs EP
    assert "must be 1 or TP x DP" in moe_layout_problems(QWEN, H200, tp=4, ep=4, dp=2)[0].message
    assert "expert parallel only" in moe_layout_problems(QWEN, H200, tp=4, ep=1, dp=2)[0].message
    # the tp x dp group stays in the NVLink domain (8 on HGX H200)
    assert "domain" in moe_layout_problems(QWEN, H200, tp=8, ep=16, dp=2)[0].message
    with pytest.raises(UsageError):
        serving_memory(QWEN, "bf16", gpu_memory_gib=141, tp=4, ep=4, dp=2, max_model_len=4096)


def test_candidate_layouts_per_footprint() -> None:
    # Qwen3-235B: 64 heads, 4 KV heads; footprint 8 -> TP8 EP8, TP4xDP2, TP2xDP4, TP1xDP8 (all EP8)
    assert moe_layouts(QWEN, 8, H200) == [(8, 8, 1), (4, 8, 2), (2, 8, 4), (1, 8, 8)]
    assert moe_layouts(QWEN, 1, H200) == []
    # Mixtral: 8 experts, so EP16 is not a layout, and footprint 16 exceeds the domain anyway
    assert moe_layouts(arch_of("Mixtral-8x7B"), 16, H200) == []


def test_kv_is_per_dp_rank_and_mla_is_not_replicated_across_ranks() -> None:
    lite = arch_of("DeepSeek-V2-Lite")   # MLA: 27 layers x (512 + 64) latent per token
    settings = EngineSettings(engine="vllm", engine_version="0.10.0")
    per_tok = kv_bytes_per_token_per_gpu(lite, "auto", 1)
    assert per_tok == 27 * (512 + 64) * 2 == 31_104
    dp2 = serving_memory(lite, "bf16", gpu_memory_gib=80, tp=1, ep=2, dp=2, max_model_len=4096,
                         settings=settings)
    # every GPU of a DP rank holds that rank's cache at the TP-1 token size; the replica twice it
    assert dp2.kv_bytes_per_token_per_gpu == per_tok
    assert dp2.replica_kv_tokens == 2 * dp2.kv_cache_tokens
    tp2 = serving_memory(lite, "bf16", gpu_memory_gib=80, tp=2, max_model_len=4096, settings=settings)
    # TP2 keeps a full latent copy on both GPUs: the replica caches about half the tokens DP2 does
    assert tp2.kv_bytes_per_token_per_gpu == per_tok
    assert dp2.replica_kv_tokens > 1.8 * tp2.kv_cache_tokens


def test_alltoall_volume_and_time_by_hand() -> None:
    # 128 tokens x k 8 x hidden 4096 x 2 B
    assert moe_alltoall_bytes(128, 8, 4096) == 128 * 8 * 4096 * 2 == 8_388_608
    sm = step_model(QWEN, H200, tp=4, precision="bf16", ep=8, dp=2)
    assert sm.a2a_layers == 94 and sm.ep == 8 and sm.dp == 2
    # 1,024 tokens on a DP rank -> 256 per GPU of its TP4 group; dispatch + combine in 94 layers
    per_gpu = moe_alltoall_bytes(1024 / 4, 8, 4096)
    assert per_gpu == 16_777_216
    expected = 2 * 94 * alltoall_s(comm_profile(H200), per_gpu, 8)
    assert moe_comm_s(sm, 1024) == pytest.approx(expected, rel=1e-12)
    assert moe_comm_s(step_model(QWEN, H200, tp=8, precision="bf16"), 1024) == 0.0


def test_ep_streams_only_local_experts_and_splits_their_flops() -> None:
    tp8 = step_model(QWEN, H200, tp=8, precision="bf16")
    ep8 = step_model(QWEN, H200, tp=8, precision="bf16", ep=8)
    # one token touches k = 8 experts: TP8 streams a 1/8 shard of each, EP8 whole experts among
    # its 16 (expected 16 x 8/128 = 1 expert): the same bytes at one token
    assert ep8.experts_touched(1) == pytest.approx(16 * 8 / 128)
    assert ep8.expert_bytes == QWEN_EXPERT_BF16 and tp8.expert_bytes == QWEN_EXPERT_BF16 / 8
    # FLOPs per token and GPU add up to the TP8 total
    assert ep8.flops_per_token + ep8.expert_flops_per_token == pytest.approx(tp8.flops_per_token, rel=1e-12)


@pytest.mark.parametrize("tp,ep,dp", [(8, 1, 1), (8, 8, 1), (4, 8, 2), (1, 8, 8)])
def test_scalar_and_batched_step_times_agree(tp: int, ep: int, dp: int) -> None:
    eff = load_efficiency(H200)
    sm = step_model(QWEN, H200, tp=tp, precision="fp8", ep=ep, dp=dp)
    cols = StepColumns.of([sm], [eff])
    for decode, prefill in ((1.0, 0.0), (64.0, 300.0), (900.0, 4000.0)):
        s = stage_time_s(sm, eff, decode=decode, prefill=prefill, context=1500.0, prompt=2000)
        a = stage_time_array(cols, decode=np.array([decode]), prefill=np.array([prefill]), context=1500.0,
                             prompt=2000)
        assert a[0] == s
    assert prefill_array(cols, 3000)[0] == prefill_s(sm, eff, 3000)
    assert prefill_work_array(cols, 3000)[0] == pytest.approx(prefill_work_s(sm, eff, 3000), rel=1e-15)


def test_dp_multiplies_the_batch_limits() -> None:
    eff = load_efficiency(H200)
    kw = dict(precision="fp8", input_tokens=1000, output_tokens=500, max_num_seqs=64, efficiency=eff)
    one = replica_perf(QWEN, H200, tp=4, kv_cache_tokens=10_000_000, ep=4, dp=1, **kw)  # type: ignore[arg-type]
    two = replica_perf(QWEN, H200, tp=4, kv_cache_tokens=10_000_000, ep=8, dp=2, **kw)  # type: ignore[arg-type]
    assert one.batch == 64 and two.batch == 128 and two.limited_by == "max_num_seqs"
    # KV: each rank's cache bounds its own sequences (floor per rank, then dp of them)
    kv = replica_perf(QWEN, H200, tp=4, kv_cache_tokens=2_999, ep=8, dp=2, **kw)  # type: ignore[arg-type]
    assert kv.kv_batch_limit == 2 * int(2_999 // (1000 + eff.kv_reserve_output_fraction * 500)) == 2
