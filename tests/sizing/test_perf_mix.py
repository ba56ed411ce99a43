"""One replica on a length mix (perf.replica_perf_mix_many) and the mix factor kappa (candidates.apply_mix).

Hand figures use the round factors of tests/sizing/test_perf.py (compute 0.5, memory_bw 0.8,
1 ms per iteration) on Llama-3.1-8B at fp8 weights, 16-bit KV (catalog config).
"""

from __future__ import annotations

import math

import pytest

from optimizer.errors import UsageError
from optimizer.loaders import resolve_gpu
from optimizer.sizing.candidates import apply_mix, servable_mix
from optimizer.sizing.perf import (
    PerfQuery,
    ReplicaPerf,
    TailTargets,
    _length_mix,
    prefill_s,
    prefill_work_s,
    replica_perf,
    replica_perf_many,
    replica_perf_mix_many,
    step_model,
)
from tests.sizing.test_perf import CAT, EFF, H100, arch

A = arch("Llama-3.1-8B")
L40S = resolve_gpu("L40S-48GB", CAT)


def test_one_bucket_mix_is_replica_perf_many_exactly() -> None:
    # the same floats, field by field, on layouts limited by TPOT, TTFT, KV and the tails, with and
    # without a cached prefix; a share other than 1 is normalised
    qs = [PerfQuery(H100, 1, 1, "fp8", 500_000, EFF), PerfQuery(H100, 2, 1, "bf16", 900_000, EFF),
          PerfQuery(H100, 1, 2, "fp8", 40_000, EFF), PerfQuery(L40S, 1, 1, "fp8", 200_000, EFF, 1.3),
          PerfQuery(L40S, 2, 1, "fp8", 3_000, EFF)]
    cases = [dict(ttft_ms=220.0, tpot_ms=50.0), dict(ttft_ms=None, tpot_ms=20.0),
             dict(ttft_ms=400.0, tpot_ms=None, tails=TailTargets(ttft_p99_ms=600.0, tpot_p90_ms=25.0)),
             dict(ttft_ms=300.0, tpot_ms=40.0, prefix_tokens=500, prefix_hit_rate=0.6)]
    seen: set[str] = set()
    for kw in cases:
        for isl, osl in ((4000, 201), (2000, 101), (700, 1)):
            many = replica_perf_many(A, qs, input_tokens=isl, output_tokens=osl, **kw)  # type: ignore[arg-type]
            for share in (1.0, 0.5):
                mix = replica_perf_mix_many(A, qs, buckets=[(isl, osl, share)], **kw)  # type: ignore[arg-type]
                assert mix == many
            seen |= {p.limited_by for p in many if p.requests_per_s > 0}
    assert seen >= {"kv", "tpot", "ttft"}


def test_mixed_decode_shape_by_hand() -> None:
    # buckets (2000 in, 101 out, 70 %) and (6000, 51, 30 %): residence weights phi (O-1) = 70, 15
    mix = _length_mix(A, [(2000, 101, 0.7), (6000, 51, 0.3)], 0, 0.0)
    sh = mix.shape
    assert sh.steps == pytest.approx(85.0)                       # 0.7 x 100 + 0.3 x 50
    assert sh.new == pytest.approx(3200.0)                       # 0.7 x 2000 + 0.3 x 6000
    assert sh.span == pytest.approx((0.7 * 2000 ** 2 + 0.3 * 6000 ** 2) / 3200)  # 4,250
    # mean context a decoding sequence attends: (70 x 2050.5 + 15 x 6025.5) / 85 = 2,751.97
    assert sh.context == pytest.approx((70 * 2050.5 + 15 * 6025.5) / 85)
    assert mix.held_new == pytest.approx((70 * 2000 + 15 * 6000) / 85)   # 2,705.9 prompt tokens held
    assert mix.held_out == pytest.approx((70 * 101 + 15 * 51) / 85)      # 92.2 output tokens
    assert mix.out_mean == pytest.approx(86.0)                           # 0.7 x 101 + 0.3 x 51
    assert mix.ctx_scale == 1.0                                          # no sliding windows
    with pytest.raises(UsageError):
        _length_mix(A, [(2000, 101, 0.0)], 0, 0.0)


def test_splitting_a_bucket_in_two_changes_nothing() -> None:
    q = [PerfQuery(L40S, 1, 1, "fp8", 200_000, EFF)]
    one = replica_perf_mix_many(A, q, buckets=[(3000, 151, 1.0)], ttft_ms=300.0, tpot_ms=50.0)[0]
    two = replica_perf_mix_many(A, q, buckets=[(3000, 151, 0.4), (3000, 151, 0.6)], ttft_ms=300.0, tpot_ms=50.0)[0]
    assert two.requests_per_s == pytest.approx(one.requests_per_s, rel=1e-7)
    assert two.ttft_ms == pytest.approx(one.ttft_ms, rel=1e-7)
    assert two.kv_batch_limit == one.kv_batch_limit


def test_long_and_short_prompts_share_the_prefill_queue() -> None:
    # Llama-3.1-8B fp8 on one L40S, 200k KV tokens, TTFT 220 ms, TPOT 50 ms, headroom 0.8;
    # 50 % prompts of 2,000 tokens, 50 % of 4,000, 201 output tokens each.
    sm = step_model(A, L40S, tp=1, precision="fp8")
    s_s, s_l = prefill_s(sm, EFF, 2000), prefill_s(sm, EFF, 4000)          # 89.08 ms, 188.75 ms alone
    b_s, b_l = prefill_work_s(sm, EFF, 2000), prefill_work_s(sm, EFF, 4000)  # 87.70 ms, 186.99 ms in a batch
    assert (s_s, s_l) == pytest.approx((0.08908, 0.18875), abs=1e-5)
    slo = dict(ttft_ms=220.0, tpot_ms=50.0)
    short, long = (replica_perf(A, L40S, tp=1, precision="fp8", input_tokens=i, output_tokens=201,
                                kv_cache_tokens=200_000, efficiency=EFF, **slo) for i in (2000, 4000))  # type: ignore[arg-type]
    # each bucket alone, its own M/D/1: short is TPOT-bound at 5.569 req/s (rho = 0.8 x 5.569 x
    # 87.70 ms = 0.391, wait 0.391 x 89.08 / (2 x 0.609) = 28.6 ms); long is TTFT-bound at 0.996
    # (rho = 0.8 x 0.996 x 186.99 ms = 0.149, wait 0.149 x 188.75 / (2 x 0.851) = 16.5 ms, and
    # 16.5 + 188.75 + TPOT 14.72 = 220 ms)
    assert short.limited_by == "tpot" and long.limited_by == "ttft"
    assert short.requests_per_s == pytest.approx(5.569, abs=1e-3)
    assert long.requests_per_s == pytest.approx(0.9963, abs=1e-4)
    rho_l = 0.8 * long.requests_per_s * b_l
    w_l = rho_l * s_l / (2 * (1 - rho_l))
    assert (w_l + s_l) * 1e3 + long.tpot_ms == pytest.approx(220.0, abs=1e-6)
    # time-sharing: 1 / (0.5 / 5.569 + 0.5 / 0.9963) = 1.690 req/s of the mix
    mu_ts = 1 / (0.5 / short.requests_per_s + 0.5 / long.requests_per_s)
    assert mu_ts == pytest.approx(1.6903, abs=1e-4)

    mix = [(2000, 201, 0.5), (4000, 201, 0.5)]
    m = replica_perf_mix_many(A, [PerfQuery(L40S, 1, 1, "fp8", 200_000, EFF)], buckets=mix, **slo)[0]  # type: ignore[arg-type]
    # one queue: rho = lambda (0.5 x 87.70 + 0.5 x 186.99) ms, and P-K's residual
    # E[S^2] / E[S] = (89.08^2 + 188.75^2) / (89.08 + 188.75) = 156.79 ms. A 4,000-token prompt now
    # waits behind the 2,000-token ones' work too; its TTFT W + 188.75 + TPOT binds at 220 ms at
    # 1.554 req/s (rho 0.171, W = 0.171 x 156.79 / (2 x 0.829) = 16.1 ms).
    lam = 0.8 * m.requests_per_s
    rho = lam * (0.5 * b_s + 0.5 * b_l)
    resid = (s_s ** 2 + s_l ** 2) / (s_s + s_l)
    assert resid == pytest.approx(0.15679, abs=1e-5)
    w = rho * resid / (2 * (1 - rho))
    assert rho == pytest.approx(0.1708, abs=1e-4) and w == pytest.approx(0.01614, abs=1e-5)
    assert m.limited_by == "ttft"
    assert m.ttft_ms == pytest.approx((w + s_l) * 1e3 + m.tpot_ms, rel=1e-12)
    assert m.ttft_ms == pytest.approx(220.0, abs=1e-6)
    assert m.prefill_ms == pytest.approx(s_l * 1e3)
    # the same load with every prompt the mean E[S] = 138.9 ms (M/D/1) would wait 1.129x less:
    # E[S^2] / E[S]^2 = 1.129 is the service variance the bucket-alone model ignores
    assert resid / ((s_s + s_l) / 2) == pytest.approx(1.1287, abs=1e-4)
    # the KV limit at the mean held tokens: 200,000 // ((2,201 + 4,201) / 2) = 62 sequences
    assert m.kv_batch_limit == 62 == 200_000 // 3201
    assert m.requests_per_s == pytest.approx(1.5541, abs=1e-4)

    # kappa = 1.554 / 1.690 = 0.919: both buckets' capacities scaled, the mix in proportion gives 1.554
    kappa = m.requests_per_s / mu_ts
    assert kappa == pytest.approx(0.9195, abs=1e-4)
    scaled, whole = apply_mix([short, long], [short, long], [False, False], mix, m)
    assert [p.requests_per_s for p in scaled] == pytest.approx([kappa * short.requests_per_s,
                                                                 kappa * long.requests_per_s], rel=1e-12)
    assert whole.requests_per_s == pytest.approx(m.requests_per_s, rel=1e-12)
    assert whole.ttft_ms == m.ttft_ms and whole.tpot_ms == m.tpot_ms


def _p(rps: float) -> ReplicaPerf:
    return ReplicaPerf(output_tokens_per_s=100.0, batch=8, ttft_ms=100.0, tpot_ms=20.0, requests_per_s=rps,
                       slo_batch=8, limited_by="tpot")


def test_apply_mix_by_hand() -> None:
    buckets = [(300, 400, 0.8), (6000, 200, 0.2)]
    model = [_p(6.0), _p(2.0)]
    # time-sharing 1 / (0.8/6 + 0.2/2) = 4.2857; a mix-aware 3.0 gives kappa 0.7: 4.2 and 1.4
    scaled, whole = apply_mix(model, model, [False, False], buckets, _p(3.0))
    assert [p.requests_per_s for p in scaled] == pytest.approx([4.2, 1.4])
    assert whole.requests_per_s == pytest.approx(3.0)  # 1 / (0.8/4.2 + 0.2/1.4)
    # a measured 2.5 on the long bucket stays: 1 / (0.8/4.2 + 0.2/2.5) = 3.697
    scaled, whole = apply_mix(model, [_p(6.0), _p(2.5)], [False, True], buckets, _p(3.0))
    assert [p.requests_per_s for p in scaled] == pytest.approx([4.2, 2.5])
    assert whole.requests_per_s == pytest.approx(1 / (0.8 / 4.2 + 0.2 / 2.5))
    # a mix better than time-sharing is not credited (kappa capped at 1)
    scaled, whole = apply_mix(model, model, [False, False], buckets, _p(5.0))
    assert [p.requests_per_s for p in scaled] == [6.0, 2.0]
    assert whole.requests_per_s == pytest.approx(1 / (0.8 / 6 + 0.2 / 2))
    # the long bucket cannot be served: the servable mix is the short one alone, renormalised
    model = [_p(6.0), _p(0.0)]
    assert servable_mix(model, buckets) == [(300, 400, 1.0)]
    scaled, whole = apply_mix(model, model, [False, False], buckets, _p(4.5))
    assert [p.requests_per_s for p in scaled] == pytest.approx([4.5, 0.0])
    assert whole.requests_per_s == 0.0  # the whole mix cannot be served here
    # nothing servable: the bucket perfs as they are
    scaled, whole = apply_mix([_p(0.0), _p(0.0)], [_p(0.0), _p(0.0)], [False, False], buckets, None)
    assert whole.requests_per_s == 0.0 and not math.isnan(whole.ttft_ms)
