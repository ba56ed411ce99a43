"""Length mixes in the MIP: buckets routed over deployments (worked by hand), and a real scenario.

Hand tables: candidates carry a capacity per bucket (``bucket_perf``); prices are round numbers.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from optimizer.errors import SolverError
from optimizer.model.check import check_plan
from optimizer.model.extract import routed_capacity, routed_loads
from optimizer.model.pipeline import settings_of, solve_scenario
from optimizer.sizing.candidates import InferenceCandidate, build_candidates
from optimizer.sizing.perf import replica_perf
from tests.model.helpers import candidate, counts, scenario, solve, workload

A = "PCIe-8GPU-4U/L20-48GB/1"         # 20k chassis + 5k GPU = 25k
B = "PCIe-8GPU-4U/H200-NVL-141GB/1"   # 20k chassis + 55k GPU = 75k
PRICES = {"PCIe-8GPU-4U": 20_000, "L20-48GB": 5_000, "H200-NVL-141GB": 55_000}
ALLOWED = {"gpus": ["L20-48GB", "H200-NVL-141GB"]}
MIX = [{"input_tokens": 300, "output_tokens": 400, "share": 0.8},
       {"input_tokens": 6000, "output_tokens": 200, "share": 0.2}]


def _perf(rps: float) -> Any:
    return SimpleNamespace(requests_per_s=rps, ttft_ms=100.0, tpot_ms=20.0, slo_batch=8, limited_by="tpot",
                           source="model", output_tokens_per_s=100.0)


def mixed(workload: str, sku: str, per_bucket: tuple[float, ...]) -> InferenceCandidate:
    """A candidate with a capacity per bucket; its mix capacity by time-sharing (1 / sum share / mu)."""
    mix = 0.0 if min(per_bucket) <= 0 else 1 / sum(m["share"] / mu for m, mu in zip(MIX, per_bucket, strict=True))
    memory = SimpleNamespace(weight_bytes=0, kv_cache_tokens=100_000)
    return InferenceCandidate(workload=workload, sku=sku, tp=1, pp=1, precision="bf16", kv_dtype="auto",
                              servers_per_replica=1, memory=memory, perf=_perf(mix),  # type: ignore[arg-type]
                              bucket_perf=tuple(_perf(mu) for mu in per_bucket))  # type: ignore[arg-type]


def test_bimodal_mix_buys_a_different_gpu_than_its_mean() -> None:
    # 10 req/s, 80 % short (300/400 tokens), 20 % long (6000/200), headroom 1.
    # A (25k): 5 req/s on short, cannot meet the TTFT on long (0); B (75k): 6 on short, 2 on long.
    # On the mean shape (1,260/360 tokens) A does 3 req/s and B 4: ceil(10/3) = 4 A = 100k beats
    # ceil(10/4) = 3 B = 225k, so the mean plans 4 x A — which cannot serve a long prompt.
    # On the mix: long 2 req/s needs q[B, long] = 2/2 = 1 B replica; short 8 req/s on A needs
    # 8/5 = 1.6 -> 2 A: 75k + 50k = 125k. Alternatives: 2 B (long 1 replica + short 6) + 1 A for the
    # other 2 short = 175k; 3 B (1 + 8/6 = 2.33 replicas) = 225k. Optimum 125k = 1 B + 2 A.
    rs_mean = scenario([workload("chat", 10)], prices=PRICES, constraints=ALLOWED)
    out, mm = solve(rs_mean, [candidate("chat", A, 3.0), candidate("chat", B, 4.0)])
    assert out.objective == pytest.approx(100_000)
    assert counts(out, mm) == {A: 4}

    w = {**workload("chat", 10), "lengths": MIX, "max_context": 8192}
    del w["input_tokens"], w["output_tokens"]
    rs = scenario([w], prices=PRICES, constraints=ALLOWED)
    assert (rs.scenario.workloads[0].input_tokens, rs.scenario.workloads[0].output_tokens) == (1440, 360)
    out, mm = solve(rs, [mixed("chat", A, (5.0, 0.0)), mixed("chat", B, (6.0, 2.0))])
    assert out.status == "optimal"
    assert out.objective == pytest.approx(125_000)
    assert counts(out, mm) == {A: 2, B: 1}
    chosen = [(i, c, round(out.values[mm.r[i]])) for i, c in enumerate(mm.cands.inference)
              if round(out.values[mm.r[i]]) > 0]
    routes = {mm.cands.inference[i].sku: loads for i, loads in routed_loads(mm, out.values, chosen).items()}
    # the long bucket's 2 req/s all go to B (its one replica's whole time: 2 / 2), the short 8 req/s
    # to A's 2 replicas (8 / 5 = 1.6 of them busy)
    assert routes[B] == pytest.approx([0.0, 2.0])
    assert routes[A] == pytest.approx([8.0, 0.0])
    assert routed_capacity((5.0, 0.0), routes[A]) == pytest.approx(5.0)
    # one replica on a routed mix of 3 short + 1 long req/s (time-sharing): 4 / (3/6 + 1/2) = 4
    assert routed_capacity((6.0, 2.0), [3.0, 1.0]) == pytest.approx(4.0)


def test_no_deployment_serves_a_bucket_is_infeasible() -> None:
    # neither candidate meets the SLO on long prompts: the per-bucket demand row cannot hold
    w = {**workload("chat", 10), "lengths": MIX, "max_context": 8192}
    del w["input_tokens"], w["output_tokens"]
    rs = scenario([w], prices=PRICES, constraints=ALLOWED)
    out, _ = solve(rs, [mixed("chat", A, (5.0, 0.0)), mixed("chat", B, (6.0, 0.0))])
    assert out.status == "infeasible"


def test_one_bucket_mix_is_the_single_length_workload() -> None:
    # lengths with one bucket of share 1 is the same model as input/output tokens: same rows, same plan
    w = {**workload("chat", 10), "lengths": [{"input_tokens": 100, "output_tokens": 100, "share": 1.0}]}
    del w["input_tokens"], w["output_tokens"]
    rs = scenario([w], prices=PRICES, constraints=ALLOWED)
    assert rs.scenario.workloads[0].buckets() == [(100, 100, 1.0)]
    out, mm = solve(rs, [candidate("chat", A, 3.0), candidate("chat", B, 4.0)])
    assert out.objective == pytest.approx(100_000)
    assert not mm.q


def test_real_mix_routes_long_prompts_and_passes_the_checker() -> None:
    # the real sizing path: Qwen2.5-7B on L20 / L40S, a 1 s TTFT. A 6,000-token prompt takes
    # 1,258 ms to prefill on one L20 (procure perf), so an L20 TP1 replica cannot serve that bucket,
    # while it is the cheapest way to serve short chat; the solve routes each bucket to deployments
    # that meet the SLO on it, and the solver-free checker re-sizes every routed bucket.
    w = {"name": "chat", "model": "Qwen2.5-7B", "precisions": ["bf16"], "requests_per_s": 6.0,
         "max_context": 8192, "slo": {"ttft_ms": 1000, "tpot_ms": 50}, "lengths": MIX}
    rs = scenario([w], constraints={"gpus": ["L20-48GB", "L40S-48GB"]}, headroom=0.8)
    result = solve_scenario(rs, settings_of(rs, time_limit_s=30, gap=1e-6))
    plan = result.plan
    assert plan.status == "optimal"
    routed: dict[int, float] = {}
    for d in plan.deployments:
        assert d.buckets, "every deployment of a mixed workload lists its buckets"
        for b in d.buckets:
            routed[b.input_tokens] = routed.get(b.input_tokens, 0.0) + b.planned_rps
            if b.input_tokens == 6000:
                assert not (d.gpu == "L20-48GB" and d.tp == 1)
    assert routed == pytest.approx({300: 4.8, 6000: 1.2})
    assert check_plan(plan, rs)


def test_mix_factor_scales_buckets_and_the_checker_recomputes_it() -> None:
    # Qwen2.5-7B bf16, 70 % prompts of 2,000 tokens and 30 % of 6,000, 100 output tokens, TTFT 1 s,
    # TPOT 50 ms, on L20 / L40S. On one L40S each bucket alone serves 3.306 and 0.5053 req/s
    # (1 / (0.7/3.306 + 0.3/0.5053) = 1.242 by time-sharing); in one shared prefill queue the
    # 6,000-token prompts also wait for the 2,000-token ones' work and the mix serves 1.209
    # (candidates.apply_mix), so kappa = 0.974 scales both bucket capacities.
    mix = [{"input_tokens": 2000, "output_tokens": 100, "share": 0.7},
           {"input_tokens": 6000, "output_tokens": 100, "share": 0.3}]
    w = {"name": "chat", "model": "Qwen2.5-7B", "precisions": ["bf16"], "requests_per_s": 6.0,
         "max_context": 8192, "slo": {"ttft_ms": 1000, "tpot_ms": 50}, "lengths": mix}
    rs = scenario([w], constraints={"gpus": ["L20-48GB", "L40S-48GB"]}, headroom=0.8)
    cands = build_candidates(rs)
    tp1 = next(c for c in cands.inference if c.sku.startswith("PCIe-8GPU-4U/L40S") and c.tp == 1 and c.pp == 1)
    arch = cands.archs["chat"]
    gpu = rs.gpus["L40S-48GB"]
    eff = cands.efficiency["L40S-48GB"]
    alone = [replica_perf(arch, gpu, tp=1, precision="bf16", input_tokens=i, output_tokens=100,
                          kv_cache_tokens=tp1.memory.kv_cache_tokens, ttft_ms=1000, tpot_ms=50,
                          utilization=0.8, efficiency=eff).requests_per_s for i in (2000, 6000)]
    mu_ts = 1 / (0.7 / alone[0] + 0.3 / alone[1])
    kappa = tp1.perf.requests_per_s / mu_ts
    assert 0.9 < kappa < 1.0
    assert tp1.bucket_rps == pytest.approx((kappa * alone[0], kappa * alone[1]), rel=1e-12)
    assert tp1.perf.limited_by == "ttft" and tp1.perf.ttft_ms == pytest.approx(1000.0, abs=1e-3)

    result = solve_scenario(rs, settings_of(rs, time_limit_s=30, gap=1e-6))
    plan = result.plan
    assert plan.status == "optimal"
    assert check_plan(plan, rs)
    scaled = [d for d in plan.deployments if d.gpu == "L40S-48GB" and d.tp == 1 and d.pp == 1]
    assert scaled and scaled[0].buckets[0].capacity_rps == pytest.approx(kappa * alone[0], rel=1e-9)
    # the checker re-derives kappa: the bucket-alone capacity in its place fails the plan
    bad = plan.model_copy(deep=True)
    d = next(x for x in bad.deployments if x.gpu == "L40S-48GB" and x.tp == 1 and x.pp == 1)
    d.buckets[0].capacity_rps = alone[0]
    with pytest.raises(SolverError, match="capacity recomputed"):
        check_plan(bad, rs)
