"""Shared-prefix caching in the perf model (replica_perf prefix_tokens / prefix_hit_rate).

Hand figures: Llama-3.1-8B (catalog config: 32 layers, 32 heads x 128, 8 KV heads) on H100 SXM
(catalogs/gpus.yaml: 1,979 fp8 / 989 bf16 TFLOPS, 3,350 GB/s) at fp8 weights, 16-bit KV, with the
round factors of tests/sizing/test_perf.py (compute 0.5, memory_bw 0.8, 1 ms per iteration).
Per GPU (step_model): linear FLOPs per token F = 15.0098e9, attention FLOPs per (query, key)
pair f = 4 x 32 x 32 x 128 = 524,288, KV bytes per token 32 x 8 x 128 x 2 x 2 B = 131,072.
"""

from __future__ import annotations

import pytest

from optimizer.errors import UsageError
from optimizer.sizing.perf import prefix_work, replica_perf, step_model
from tests.sizing.test_perf import EFF, H100, arch

A = arch("Llama-3.1-8B")
SM = step_model(A, H100, tp=1, precision="fp8")
C_W = SM.peak_flops * EFF.compute        # 989.5e12 FLOP/s (fp8 tensor peak x 0.5)
C_16 = SM.peak_flops_16 * EFF.compute    # 494.5e12 FLOP/s (16-bit, attention)
BW = SM.bandwidth * EFF.memory_bw        # 2.68e12 B/s


def perf(**kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = dict(tp=1, precision="fp8", input_tokens=4096, output_tokens=256,
                                   kv_cache_tokens=500_000, efficiency=EFF)
    args.update(kw)
    return replica_perf(A, H100, **args)  # type: ignore[arg-type]


def prefill_by_hand(new: float, span: float) -> float:
    """One chunk (<= 8192 tokens): compute-bound linear part F n / C_w, causal attention
    n (span/2) f / C_16, KV writes n kv / BW, plus the 1 ms iteration overhead (seconds)."""
    linear = max(SM.dense_bytes / BW, SM.flops_per_token * new / C_W)
    return linear + new * (span / 2) * SM.attn_flops_per_pair / C_16 + new * SM.kv_bytes_per_token / BW + 1e-3


def test_prefill_with_and_without_the_prefix() -> None:
    # No prefix, I = 4096: linear 15.0098e9 x 4096 / 989.5e12 = 62.13 ms (weights alone 8.03 GB /
    # 2.68 TB/s = 3.0 ms, so compute-bound), attention 4096 x 2048 x 524,288 / 494.5e12 = 8.894 ms,
    # KV writes 4096 x 131,072 B / 2.68e12 = 0.200 ms, + 1 ms = 72.23 ms.
    plain = perf()
    assert plain.prefill_ms == pytest.approx(72.23, abs=0.01)
    assert plain.prefill_ms == pytest.approx(prefill_by_hand(4096, 4096) * 1e3, rel=1e-12)
    # P = 2048 always hit: 2048 new tokens, each attending (2048 + 4096)/2 = 3072 keys:
    # linear 31.07 ms (half), attention 2048 x 3072 x 524,288 / 494.5e12 = 6.670 ms (3/4 of
    # 8.894: new x context, not new^2), KV 0.100 ms, + 1 ms = 38.84 ms.
    hit = perf(prefix_tokens=2048, prefix_hit_rate=1.0)
    assert hit.prefill_ms == pytest.approx(38.84, abs=0.01)
    assert hit.prefill_ms == pytest.approx(prefill_by_hand(2048, 6144) * 1e3, rel=1e-12)
    # Half the requests hit: on average 1024 cached, 3072 new attending (1024 + 4096)/2 = 2560:
    # linear 46.60, attention 3072 x 2560 x 524,288 / 494.5e12 = 8.338, KV 0.150, + 1 = 56.09 ms.
    half = perf(prefix_tokens=2048, prefix_hit_rate=0.5)
    assert half.prefill_ms == pytest.approx(56.09, abs=0.01)
    assert half.prefill_ms == pytest.approx(prefill_by_hand(3072, 5120) * 1e3, rel=1e-12)
    # fewer prefill tokens per decode step: a TPOT-limited replica carries more requests
    tight = dict(tpot_ms=plain.offline_tpot_ms / 2)
    assert perf(prefix_tokens=2048, prefix_hit_rate=1.0, **tight).requests_per_s > perf(**tight).requests_per_s


def test_kv_batch_limit_keeps_one_copy_of_the_prefix() -> None:
    # r = 1 (TensorRT-LLM reserves I + O): 500,000 // (3000 + 1000) = 125 sequences
    kw = dict(input_tokens=3000, output_tokens=1000, max_num_seqs=4096)
    assert perf(**kw).kv_batch_limit == 125
    # P = 2000 always hit: the cache holds the prefix once, each sequence 1000 + 1000 of its own:
    # (500,000 - 2,000) // 2,000 = 249
    assert perf(prefix_tokens=2000, prefix_hit_rate=1.0, **kw).kv_batch_limit == 249
    # h = 0.5: 3000 - 1000 = 2000 own prompt tokens + 1000: 498,000 // 3,000 = 166
    assert perf(prefix_tokens=2000, prefix_hit_rate=0.5, **kw).kv_batch_limit == 166
    # never hit: nothing shared, nothing reserved, the plain model exactly
    assert perf(prefix_tokens=2000, prefix_hit_rate=0.0, **kw) == perf(**kw)


def test_a_whole_prompt_hit_still_computes_one_token() -> None:
    # vLLM recomputes the last token of a full hit for its logits: 1 new token attending
    # (4096 + 4096)/2 = 4096 keys
    assert prefix_work(4096, 4096, 1.0) == (1.0, 8192.0)
    assert prefix_work(4096, 2048, 0.0) is None


def test_bad_prefix_inputs_raise_usage_errors() -> None:
    with pytest.raises(UsageError, match="prefix tokens"):
        perf(prefix_tokens=5000, prefix_hit_rate=1.0)
    with pytest.raises(UsageError, match="hit rate"):
        perf(prefix_tokens=1000, prefix_hit_rate=1.5)
