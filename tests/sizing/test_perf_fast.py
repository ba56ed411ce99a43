"""The array-speed sizing path gives the answers of the scalar bisections it replaced.

``reference_replica_perf`` below is a frozen copy of ``optimizer.sizing.perf.replica_perf`` as it
was before issue #16 (bisection for the TPOT batch, a 1e-7 fixed-point bisection for the batch at
a rate, a 1e-9 bisection for the TTFT-limited rate); it stays here, not in the package, as the
reference the fast path must reproduce to 1e-6 relative on every candidate of the generated
benchmark platform and of the shipped scenarios. The step-time equations themselves
(``decode_step_s``, ``prefill_s``, ...) are unchanged and imported.
"""

from __future__ import annotations

import math
import random
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from optimizer.loaders import load_catalog, load_scenario, resolve_gpu, resolve_model, resolve_scenario
from optimizer.schema.engine import EngineSettings
from optimizer.schema.scenario import InferenceWorkload, Scenario
from optimizer.sizing.architecture import ModelArch, kv_tokens_held, parse_config
from optimizer.sizing.candidates import CandidateSet, build_candidates, inference_candidates, server_skus
from optimizer.sizing.memory import _serving_memory_cached, serving_memory
from optimizer.sizing.perf import (
    Efficiency,
    LimitedBy,
    MeasuredPoint,
    PerfQuery,
    ReplicaPerf,
    StepColumns,
    StepModel,
    decode_step_array,
    decode_step_s,
    load_efficiency,
    md1_wait_s,
    prefill_array,
    prefill_s,
    prefill_work_array,
    prefill_work_s,
    replica_perf,
    replica_perf_many,
    step_model,
)
from tests.conftest import REPO

sys.path.insert(0, str(REPO))
from benchmarks.large_instance import generate

CAT = load_catalog()
REL = 1e-6


# --- frozen reference (the scalar algorithm before issue #16) ---------------------------------


def _ref_match(points: tuple[MeasuredPoint, ...], model: str, gpu: str, tp: int, pp: int,
               precision: str, input_tokens: int, output_tokens: int) -> MeasuredPoint | None:
    hits = [p for p in points if p.matches(model, gpu, tp, pp, precision)]
    if not hits:
        return None

    def dist(p: MeasuredPoint) -> float:
        return (abs(math.log(p.input_tokens / input_tokens))
                + abs(math.log(p.output_tokens / output_tokens)))

    return min(hits, key=dist)


def _ref_ctx(sm: StepModel, ctx_scale: float) -> StepModel:
    if ctx_scale >= 1.0:
        return sm
    return replace(sm, kv_bytes_per_token=sm.kv_bytes_per_token * ctx_scale,
                   attn_flops_per_pair=sm.attn_flops_per_pair * ctx_scale)


def reference_replica_perf(arch: ModelArch, gpu: object, *, tp: int, pp: int = 1, precision: str,
                           kv_dtype: str = "auto", input_tokens: int, output_tokens: int,
                           kv_cache_tokens: int, ttft_ms: float | None = None,
                           tpot_ms: float | None = None, max_num_seqs: int = 256,
                           utilization: float = 0.8, efficiency: Efficiency,
                           measured: tuple[MeasuredPoint, ...] | list[MeasuredPoint] | None = None,
                           ) -> ReplicaPerf:
    eff = efficiency
    sm = step_model(arch, gpu, tp=tp, pp=pp, precision=precision, kv_dtype=kv_dtype)  # type: ignore[arg-type]
    isl, osl = input_tokens, output_tokens
    steps = max(osl - 1, 1)
    mean_ctx = isl + osl / 2.0
    ctx_scale = kv_tokens_held(arch, max(1, round(mean_ctx))) / max(1.0, round(mean_ctx))
    scale = 1.0
    source: Literal["model", "measured"] = "model"
    sm_ctx = _ref_ctx(sm, ctx_scale)

    def tpot_s(b: float) -> float:
        return decode_step_s(sm_ctx, eff, b, isl, osl) * scale

    held = isl + eff.kv_reserve_output_fraction * osl
    kv_limit = int(kv_cache_tokens // max(held, 1.0))
    b_max = min(max_num_seqs, kv_limit)
    points = tuple(measured) if measured is not None else eff.measured
    hit = _ref_match(points, arch.name, gpu.name, tp, pp, precision, isl, osl)  # type: ignore[attr-defined]
    if hit is not None:
        held_m = hit.input_tokens + eff.kv_reserve_output_fraction * hit.output_tokens
        b_m = max(1, min(max_num_seqs, int(kv_cache_tokens // max(held_m, 1.0))))
        steps_m = max(hit.output_tokens - 1, 1)
        ctx_m = max(1, round(hit.input_tokens + hit.output_tokens / 2.0))
        sm_m = _ref_ctx(sm, kv_tokens_held(arch, ctx_m) / ctx_m)
        pred = b_m * hit.output_tokens / (steps_m * decode_step_s(sm_m, eff, b_m, hit.input_tokens,
                                                                  hit.output_tokens))
        scale = pred / hit.output_tokens_per_s
        source = "measured"
    s_prefill = prefill_s(sm, eff, isl) * scale
    s_busy = min(s_prefill, prefill_work_s(sm, eff, isl) * scale)
    limited: LimitedBy = "kv" if kv_limit <= max_num_seqs else "max_num_seqs"
    if b_max < 1:
        best_tpot = tpot_s(1)
        return ReplicaPerf(0.0, 0, (s_prefill + best_tpot) * 1e3, best_tpot * 1e3, 0.0, 0, "kv",
                           source, best_tpot * 1e3, s_prefill * 1e3, kv_limit, utilization, 1 / scale)

    def out_rate(b: float) -> float:
        return b * osl / (steps * tpot_s(b))

    offline_tpot = tpot_s(b_max)
    offline = out_rate(b_max)
    if hit is not None and hit.input_tokens == isl and hit.output_tokens == osl:
        offline = hit.output_tokens_per_s
    b_slo = b_max
    if tpot_ms is not None and tpot_s(b_max) * 1e3 > tpot_ms:
        if tpot_s(1) * 1e3 > tpot_ms:
            best = tpot_s(1)
            return ReplicaPerf(offline, b_max, (s_prefill + best) * 1e3, best * 1e3, 0.0, 0, "tpot",
                               source, offline_tpot * 1e3, s_prefill * 1e3, kv_limit, utilization,
                               1 / scale)
        lo, hi = 1, b_max
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if tpot_s(mid) * 1e3 <= tpot_ms:
                lo = mid
            else:
                hi = mid
        b_slo, limited = lo, "tpot"
    mu = b_slo / (steps * tpot_s(b_slo))

    def batch_at(rate: float) -> float:
        lo_b, hi_b = 0.0, float(b_slo)
        while hi_b - lo_b > 1e-7 * max(1.0, hi_b):
            mid = (lo_b + hi_b) / 2
            if mid < rate * steps * tpot_s(max(mid, 1e-9)):
                lo_b = mid
            else:
                hi_b = mid
        return hi_b

    def ttft_at(rate: float) -> tuple[float, float]:
        b = batch_at(rate)
        tp_s = tpot_s(max(b, 1.0))
        return md1_wait_s(rate, s_prefill, s_busy) + s_prefill + tp_s, tp_s

    lam = utilization * mu
    ttft, tp_now = ttft_at(lam)
    if ttft_ms is not None and ttft * 1e3 > ttft_ms:
        floor_ttft = s_prefill + tpot_s(1)
        if floor_ttft * 1e3 > ttft_ms:
            return ReplicaPerf(offline, b_max, floor_ttft * 1e3, tpot_s(1) * 1e3, 0.0, 0, "ttft",
                               source, offline_tpot * 1e3, s_prefill * 1e3, kv_limit, utilization,
                               1 / scale)
        lo_r, hi_r = 0.0, lam
        while hi_r - lo_r > 1e-9 * lam:
            mid_r = (lo_r + hi_r) / 2
            if ttft_at(mid_r)[0] * 1e3 <= ttft_ms:
                lo_r = mid_r
            else:
                hi_r = mid_r
        lam = lo_r
        ttft, tp_now = ttft_at(lam)
        mu = lam / utilization
        b_slo = int(max(1, min(b_slo, math.ceil(mu * steps * tpot_s(b_slo)))))
        limited = "ttft"
    return ReplicaPerf(
        output_tokens_per_s=offline, batch=b_max, ttft_ms=ttft * 1e3, tpot_ms=tp_now * 1e3,
        requests_per_s=mu, slo_batch=b_slo, limited_by=limited, source=source,
        offline_tpot_ms=offline_tpot * 1e3, prefill_ms=s_prefill * 1e3, kv_batch_limit=kv_limit,
        utilization=utilization, measured_scale=1 / scale)


# --- comparison -------------------------------------------------------------------------------

FLOAT_FIELDS = ("output_tokens_per_s", "ttft_ms", "tpot_ms", "requests_per_s", "offline_tpot_ms",
                "prefill_ms", "utilization", "measured_scale")
EXACT_FIELDS = ("batch", "slo_batch", "limited_by", "source", "kv_batch_limit")
#: Newer than the frozen reference (issue #17, tests/sizing/test_perf_tails.py)
TAIL_FIELDS = ("ttft_p90_ms", "ttft_p99_ms", "tpot_p90_ms", "tpot_p99_ms")


def rel_diff(a: float, b: float) -> float:
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


#: Capacity fields the MIP reads: these come out bit for bit (HiGHS may pick another of several
#: exactly tied plans when a coefficient moves in its 9th digit, so golden plans need them equal).
BITWISE_FIELDS = ("requests_per_s", "output_tokens_per_s", "offline_tpot_ms", "prefill_ms")
BITWISE_MISSES: list[tuple[str, float, float]] = []


def max_rel_diff(new: ReplicaPerf, ref: ReplicaPerf) -> float:
    """Largest relative difference over the float fields; exact fields must be equal."""
    for f in EXACT_FIELDS:
        assert getattr(new, f) == getattr(ref, f), (f, new, ref)
    assert {f.name for f in fields(ReplicaPerf)} == set(FLOAT_FIELDS) | set(EXACT_FIELDS) | set(TAIL_FIELDS)
    BITWISE_MISSES.extend((f, getattr(new, f), getattr(ref, f)) for f in BITWISE_FIELDS
                          if getattr(new, f) != getattr(ref, f))
    return max(rel_diff(getattr(new, f), getattr(ref, f)) for f in FLOAT_FIELDS)


def check_candidates(rs: object) -> tuple[int, int, float]:
    """Every evaluated configuration of every workload (candidates before pruning, and the
    SLO rejections) against the reference: (candidates, rejections, max relative difference)."""
    skus = server_skus(rs)  # type: ignore[arg-type]
    out = CandidateSet(skus=skus)
    efficiency: dict[str, Efficiency] = {}
    scen = rs.scenario  # type: ignore[attr-defined]
    worst, n_c, n_r = 0.0, 0, 0
    for w in scen.workloads:
        if not isinstance(w, InferenceWorkload):
            continue
        model = rs.models[w.name]  # type: ignore[attr-defined]
        arch = parse_config(model.config, model.name)
        before_c, before_r = len(out.inference), len(out.rejections)
        inference_candidates(rs, w, arch, skus, out, efficiency, None)  # type: ignore[arg-type]
        kv_dtype = w.kv_dtype if w.kv_dtype != "auto" else scen.serving.kv_dtype
        for c in out.inference[before_c:]:
            if c.ep > 1 or c.dp > 1:  # the frozen copy predates MoE layouts (tests/sizing/test_moe_layouts.py)
                continue
            gpu = skus[c.sku].gpu
            ref = reference_replica_perf(
                arch, gpu, tp=c.tp, pp=c.pp, precision=c.precision, kv_dtype=kv_dtype,
                input_tokens=w.input_tokens, output_tokens=w.output_tokens,
                kv_cache_tokens=c.memory.kv_cache_tokens, ttft_ms=w.slo.ttft_ms,
                tpot_ms=w.slo.tpot_ms, max_num_seqs=scen.serving.max_num_seqs,
                utilization=scen.headroom, efficiency=efficiency[gpu.name])
            worst = max(worst, max_rel_diff(c.perf, ref))
            n_c += 1
        for r in out.rejections[before_r:]:
            if r.reason != "slo" or r.ep > 1 or r.dp > 1:
                continue
            gpu = skus[r.sku].gpu
            settings = scen.serving.model_copy(update={"kv_dtype": kv_dtype})
            mem = serving_memory(arch, r.precision, gpu_memory_gib=gpu.memory_gib, tp=r.tp,
                                 pp=r.pp, settings=settings, max_model_len=w.max_context)
            ref = reference_replica_perf(
                arch, gpu, tp=r.tp, pp=r.pp, precision=r.precision, kv_dtype=kv_dtype,
                input_tokens=w.input_tokens, output_tokens=w.output_tokens,
                kv_cache_tokens=mem.kv_cache_tokens, ttft_ms=w.slo.ttft_ms,
                tpot_ms=w.slo.tpot_ms, max_num_seqs=scen.serving.max_num_seqs,
                utilization=scen.headroom, efficiency=efficiency[gpu.name])
            assert ref.requests_per_s <= 0, r
            assert rel_diff(r.best_ttft_ms, ref.ttft_ms) <= REL and rel_diff(r.best_tpot_ms, ref.tpot_ms) <= REL
            n_r += 1
    return n_c, n_r, worst


def test_generated_platform_matches_the_scalar_reference() -> None:
    rs = resolve_scenario(Scenario.model_validate(generate(8, 0)), REPO / "g.yaml", CAT)
    BITWISE_MISSES.clear()
    n_c, n_r, worst = check_candidates(rs)
    print(f"generate(8, 0): {n_c} candidates, {n_r} SLO rejections, max rel diff {worst:.2e}, "
          f"{len(BITWISE_MISSES)} capacity figures not bit-identical")
    assert n_c > 500 and worst <= REL
    assert not BITWISE_MISSES


@pytest.mark.parametrize("path", sorted((REPO / "scenarios").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_scenarios_match_the_scalar_reference(path: Path) -> None:
    BITWISE_MISSES.clear()
    n_c, n_r, worst = check_candidates(load_scenario(path))
    print(f"{path.stem}: {n_c} candidates, {n_r} SLO rejections, max rel diff {worst:.2e}, "
          f"{len(BITWISE_MISSES)} capacity figures not bit-identical")
    assert n_c > 0 and worst <= REL
    assert not BITWISE_MISSES


def test_random_deployments_match_the_scalar_reference() -> None:
    """Shapes, SLOs, layouts and measured points the scenarios do not reach (PP, MoE, sliding
    windows, no SLO, tight SLOs, a measured override)."""
    rng = random.Random(7)
    models = ["Llama-3.1-8B", "Mixtral-8x7B", "Qwen2-57B-A14B", "DeepSeek-V2-Lite", "Gemma-2-27B",
              "Mistral-7B", "Llama-3.3-70B"]
    gpus = ["H100-SXM-80GB", "H200-SXM-141GB", "L40S-48GB", "A100-SXM-80GB"]
    worst, n = 0.0, 0
    BITWISE_MISSES.clear()
    for _ in range(120):
        name = rng.choice(models)
        m = resolve_model(name, CAT)
        arch = parse_config(m.config, m.name)
        gpu = resolve_gpu(rng.choice(gpus), CAT)
        tp = rng.choice([t for t in (1, 2, 4, 8) if arch.num_attention_heads % t == 0])
        pp = rng.choice([p for p in (1, 2, 4) if arch.num_layers % p == 0])
        precision = rng.choice(["bf16", "fp8", "int4"])
        kv_dtype = rng.choice(["auto", "fp8"])
        eff = load_efficiency(gpu)
        isl, osl = rng.choice([64, 500, 2000, 8000]), rng.choice([2, 50, 300, 1500])
        kw = dict(tp=tp, pp=pp, precision=precision, kv_dtype=kv_dtype, input_tokens=isl,
                  output_tokens=osl, kv_cache_tokens=rng.choice([0, 3000, 200_000, 2_000_000]),
                  ttft_ms=rng.choice([None, 50.0, 500.0, 3000.0]), tpot_ms=rng.choice([None, 8.0, 30.0, 100.0]),
                  max_num_seqs=rng.choice([16, 256, 1024]), utilization=rng.choice([0.5, 0.8, 1.0]))
        measured = None
        if rng.random() < 0.2:
            measured = [MeasuredPoint(arch.name, gpu.name, tp, precision, isl, osl, 1000.0, pp=pp)]
        new = replica_perf(arch, gpu, efficiency=eff, measured=measured, **kw)  # type: ignore[arg-type]
        ref = reference_replica_perf(arch, gpu, efficiency=eff, measured=measured, **kw)  # type: ignore[arg-type]
        worst = max(worst, max_rel_diff(new, ref))
        n += 1
    print(f"random: {n} deployments, max rel diff {worst:.2e}, "
          f"{len(BITWISE_MISSES)} capacity figures not bit-identical")
    assert worst <= REL


def test_array_step_times_equal_the_scalar_ones() -> None:
    """The array equations are the scalar ones term by term (same order of operations)."""
    arch_ = parse_config(resolve_model("Mixtral-8x7B", CAT).config, "Mixtral-8x7B")
    sms, effs = [], []
    for gname in ("H100-SXM-80GB", "L40S-48GB"):
        gpu = resolve_gpu(gname, CAT)
        for tp, pp in ((1, 1), (2, 2), (8, 1), (4, 4)):
            sms.append(step_model(arch_, gpu, tp=tp, pp=pp, precision="fp8"))
            effs.append(load_efficiency(gpu))
    cols = StepColumns.of(sms, effs)
    batch = np.linspace(0.5, 300, len(sms))
    for b in (batch, batch * 0.37, batch * 2.9):
        got = decode_step_array(cols, b, 1000, 200)
        assert got.tolist() == [decode_step_s(s, e, x, 1000, 200)
                                for s, e, x in zip(sms, effs, b.tolist(), strict=True)]
        fast = decode_step_array(cols, b, 1000, 200, exact=False)
        assert fast.tolist() == pytest.approx(got.tolist(), rel=1e-14)
    assert prefill_array(cols, 3000).tolist() == [prefill_s(s, e, 3000) for s, e in zip(sms, effs, strict=True)]
    assert prefill_work_array(cols, 3000).tolist() == [
        prefill_work_s(s, e, 3000) for s, e in zip(sms, effs, strict=True)]


def test_batch_and_single_calls_agree_and_caches_are_pure() -> None:
    arch_ = parse_config(resolve_model("Llama-3.1-8B", CAT).config, "Llama-3.1-8B")
    gpu = resolve_gpu("H100-SXM-80GB", CAT)
    eff = load_efficiency(gpu)
    qs = [PerfQuery(gpu, tp, 1, "bf16", 100_000 * tp, eff) for tp in (1, 2, 4)]
    many = replica_perf_many(arch_, qs, input_tokens=1000, output_tokens=200, ttft_ms=500, tpot_ms=20)
    one = [replica_perf(arch_, gpu, tp=q.tp, precision="bf16", input_tokens=1000, output_tokens=200,
                        kv_cache_tokens=q.kv_cache_tokens, ttft_ms=500, tpot_ms=20, efficiency=eff)
           for q in qs]
    assert many == one
    assert replica_perf_many(arch_, [], input_tokens=1, output_tokens=1) == []
    settings = EngineSettings()
    cached = serving_memory(arch_, "bf16", gpu_memory_gib=80, settings=settings, max_model_len=8192)
    assert serving_memory(arch_, "bf16", gpu_memory_gib=80, settings=settings, max_model_len=8192) is cached
    fresh = _serving_memory_cached(arch_, "bf16", 80, 1, 1, settings, 8192, 128, "gptq", None)
    assert fresh == cached
    assert build_candidates(load_scenario(REPO / "scenarios" / "startup-api.yaml")).inference
