"""Tail latency in the perf model: p90/p99 TTFT and TPOT at the operating point, and tail targets.

The replica: Llama-3.1-8B on one H100 SXM at fp8 with the round factors of tests/sizing/test_perf.py,
3000 tokens in, 300 out, a 500,000-token KV cache (B_max = 500,000 // 3,300 = 151 sequences).
The checks recompute each tail from the reported means with independent tools: Little's law for
the batch, scipy.stats for the Poisson quantile, the scalar step model for TPOT and the exact M/D/1
waiting-time distribution (tests/sizing/test_queueing.py) for TTFT.
"""

from __future__ import annotations

import pytest
from scipy import stats

from optimizer.errors import UsageError
from optimizer.sizing.perf import (
    ReplicaPerf,
    TailTargets,
    decode_step_s,
    prefill_s,
    prefill_work_s,
    replica_perf,
    step_model,
)
from tests.sizing.test_perf import EFF, H100, arch
from tests.sizing.test_queueing import md1_wait_quantile_exact

A = arch("Llama-3.1-8B")
SM = step_model(A, H100, tp=1, precision="fp8")
ISL, OSL = 3000, 300


def perf(**kw: object) -> ReplicaPerf:
    args: dict[str, object] = dict(tp=1, precision="fp8", input_tokens=ISL, output_tokens=OSL,
                                   kv_cache_tokens=500_000, efficiency=EFF)
    args.update(kw)
    return replica_perf(A, H100, **args)  # type: ignore[arg-type]


def operating_batch(p: ReplicaPerf) -> float:
    """Little's law at the planned load: B = lambda (O - 1) TPOT(B), TPOT the reported mean."""
    return p.utilization * p.requests_per_s * (OSL - 1) * p.tpot_ms / 1e3


def tpot_at(batch: float) -> float:
    return decode_step_s(SM, EFF, batch, ISL, OSL) * 1e3


def test_tails_at_the_operating_point_by_independent_tools() -> None:
    base = perf(ttft_ms=10_000)
    assert base.limited_by == "kv" and base.batch == 151
    b = operating_batch(base)  # ~0.8 x 151 (the TPOT varies little with B here)
    # TPOT tails: TPOT at the Poisson p-quantile batch, capped at B_max = 151
    for q, got in ((0.9, base.tpot_p90_ms), (0.99, base.tpot_p99_ms)):
        k = min(max(stats.poisson.ppf(q, b), 1), 151)
        assert got == pytest.approx(tpot_at(k), rel=1e-9)
    assert base.tpot_ms < base.tpot_p90_ms < base.tpot_p99_ms
    # TTFT tails: S + W_p + TPOT, W the M/D/1 wait with D = S at rho = lambda x S_busy
    s = prefill_s(SM, EFF, ISL)
    busy = min(s, prefill_work_s(SM, EFF, ISL))
    rho = base.utilization * base.requests_per_s * busy
    assert 0.1 < rho < 0.9
    for q, got in ((0.9, base.ttft_p90_ms), (0.99, base.ttft_p99_ms)):
        exact = (s + md1_wait_quantile_exact(q, rho, s)) * 1e3 + base.tpot_ms
        # the gamma fit vs the exact M/D/1 tail: here rho = 0.39, where the p90 wait ~ D sits on
        # the exact density's kink (+4.9 %: 114.7 vs 109.4 ms; test_queueing's scan: <= +5.1 %)
        assert got == pytest.approx(exact, rel=0.055 if q == 0.9 else 0.015)


def test_tpot_tail_target_caps_the_poisson_batch() -> None:
    base = perf(ttft_ms=10_000)
    # Prefill-heavy (10 prompt tokens per decode step and sequence): TPOT grows fast with B, so at
    # 80 % load the batch is only ~15 (Little: 0.8 x 9.71 req/s x 299 x 6.62 ms = 15.4).
    assert operating_batch(base) == pytest.approx(15.36, abs=0.01)
    # target: the TPOT of batch 20; the largest batch meeting it is k = 20 (TPOT rises with B)
    target = tpot_at(20)
    assert tpot_at(21) > target
    tail = perf(ttft_ms=10_000, tails=TailTargets(tpot_p99_ms=target))
    assert tail.limited_by == "tpot" and tail.requests_per_s < base.requests_per_s
    # the operating batch m is where P(Poisson(m) <= 20) = 0.99 (a hair inside): m = 11.825
    # (the normal approximation m + 2.33 sqrt(m) = 20.5 gives 12.3), by Little's law
    b = operating_batch(tail)
    assert b == pytest.approx(11.825, abs=1e-3)
    assert stats.poisson.cdf(20, b) == pytest.approx(0.99, abs=1e-6)
    assert tail.tpot_p99_ms <= target and tail.tpot_p99_ms == pytest.approx(target, rel=1e-12)
    # unreachable: below the TPOT of a single sequence
    never = perf(tails=TailTargets(tpot_p90_ms=tpot_at(1) * 0.99))
    assert never.requests_per_s == 0 and never.limited_by == "tpot"


def test_ttft_tail_target_lowers_the_rate_until_it_fits() -> None:
    base = perf(ttft_ms=10_000)
    target = (base.ttft_p99_ms + base.prefill_ms + base.tpot_ms) / 2  # binding
    tail = perf(ttft_ms=10_000, tails=TailTargets(ttft_p99_ms=target))
    assert tail.limited_by == "ttft" and tail.requests_per_s < base.requests_per_s
    assert tail.ttft_p99_ms == pytest.approx(target, rel=1e-6)
    assert tail.ttft_p99_ms <= target * (1 + 1e-9)
    # a mean target of the same size binds later: the mean sits below the p99
    mean = perf(ttft_ms=target)
    assert mean.requests_per_s > tail.requests_per_s
    # p90 and p99 together: the tighter of the two decides
    both = perf(ttft_ms=10_000, tails=TailTargets(ttft_p90_ms=target, ttft_p99_ms=target))
    assert both.requests_per_s == tail.requests_per_s
    # never: below prefill + one decode step (no queue at all)
    never = perf(tails=TailTargets(ttft_p90_ms=base.prefill_ms * 0.9))
    assert never.requests_per_s == 0 and never.limited_by == "ttft"
    assert never.ttft_p90_ms == never.ttft_ms  # the best values where the SLO fails


def test_no_targets_change_nothing() -> None:
    kw = dict(ttft_ms=400.0, tpot_ms=30.0)
    assert perf(**kw) == perf(tails=TailTargets(), **kw)
    loose = perf(tails=TailTargets(ttft_p99_ms=1e6, tpot_p99_ms=1e6), **kw)
    assert loose == perf(**kw)


def test_bad_tail_targets_raise_usage_errors() -> None:
    with pytest.raises(UsageError, match="ttft_p90_ms"):
        TailTargets(ttft_p90_ms=-1.0)
    with pytest.raises(UsageError, match="tpot_p99_ms"):
        TailTargets(tpot_p99_ms=float("nan"))
