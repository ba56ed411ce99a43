"""Plans with a shared prompt prefix and with tail-latency SLOs (issue #17, items 3 and 4).

One workload (Llama-3.1-8B bf16, 4096 tokens in, 256 out, 80 req/s) on H100 SXM only, shipped
TensorRT-LLM factors, headroom 1.0, quote extras off: the plan is whole 8-GPU HGX servers.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from optimizer.errors import ScenarioError
from optimizer.loaders import load_scenario
from optimizer.model.pipeline import solve_scenario

RPS = 80.0


def _scenario(tmp_path: Path, slo: dict[str, float] | None = None, **workload: Any) -> Path:
    w = {"name": "rag", "model": "Llama-3.1-8B", "precisions": ["bf16"], "requests_per_s": RPS,
         "input_tokens": 4096, "output_tokens": 256, "max_context": 8192,
         "slo": slo or {"ttft_ms": 60000, "tpot_ms": 5000}, **workload}
    data = {
        "name": "prefix-tails",
        "site": {"power_kw": 500, "pue": 1.0, "racks": 4, "rack_power_kw": 60, "rack_units": 42},
        "constraints": {"gpus": ["H100-SXM-80GB"]},
        "serving": {"engine": "trtllm"},
        "headroom": 1.0,
        "quote": {"network": False, "storage": False, "support": False, "shipping_installation": False},
        "workloads": [w],
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _tp1(res: Any) -> Any:
    return next(c for c in res.candidates.inference if c.tp == 1 and c.pp == 1)


def test_prefix_cache_halves_the_servers(tmp_path: Path) -> None:
    plain = solve_scenario(load_scenario(_scenario(tmp_path)))
    cached = solve_scenario(load_scenario(_scenario(tmp_path, prefix={"tokens": 3072, "hit_rate": 1.0})))
    # KV batch (TensorRT-LLM reserves I + O per sequence): kv // (4096 + 256) without the cache;
    # with it, the 3072-token prefix once and (4096 - 3072) + 256 = 1280 tokens per sequence
    p, c = _tp1(plain), _tp1(cached)
    kv = p.memory.kv_cache_tokens
    assert p.perf.kv_batch_limit == kv // 4352 == 107
    assert c.perf.kv_batch_limit == (kv - 3072) // 1280 == 363
    assert p.perf.limited_by == "kv" and c.perf.limited_by == "max_num_seqs"  # 363 > the 256 cap
    # Replicas on TP1 (one GPU each): ceil(80 / 5.419) = ceil(14.76) = 15 GPUs -> 2 servers of 8;
    # with the cache ceil(80 / 11.148) = ceil(7.18) = 8 GPUs -> 1 server.
    assert p.capacity_rps == pytest.approx(5.419, abs=1e-3)
    assert c.capacity_rps == pytest.approx(11.148, abs=1e-3)
    assert math.ceil(RPS / p.capacity_rps) == 15 and math.ceil(RPS / c.capacity_rps) == 8
    assert sum(d.replicas * d.gpus_per_replica for d in plain.plan.deployments) == 15
    assert sum(d.replicas * d.gpus_per_replica for d in cached.plan.deployments) == 8
    assert sum(s.count for s in plain.plan.servers) == 2
    assert sum(s.count for s in cached.plan.servers) == 1
    assert cached.plan.capex == pytest.approx(plain.plan.capex / 2)


def test_tail_slo_plans_and_passes_the_checker(tmp_path: Path) -> None:
    mean = solve_scenario(load_scenario(_scenario(tmp_path, slo={"ttft_ms": 400, "tpot_ms": 60})))
    tail = solve_scenario(load_scenario(_scenario(tmp_path, slo={"ttft_p99_ms": 400, "tpot_p99_ms": 60})))
    assert any("rag SLO" in c for c in tail.checks)  # the checker re-derived every target
    # the same numbers as p99 targets are stricter than as means: more servers
    assert tail.plan.capex > mean.plan.capex
    for cand in tail.candidates.inference:
        assert cand.perf.ttft_p99_ms <= 400 * (1 + 1e-9) and cand.perf.tpot_p99_ms <= 60 * (1 + 1e-9)
    cov = tail.plan.coverage[0]
    assert cov.slo_ttft_ms is None and cov.slo_tpot_ms is None  # no mean targets given


@pytest.mark.parametrize(("slo", "message"), [
    ({"ttft_p99_ms": 400}, "workloads[0].slo: no time per output token target"),
    ({"tpot_ms": 50}, "workloads[0].slo: no time to first token target"),
    ({"ttft_p90_ms": 500, "ttft_p99_ms": 400, "tpot_ms": 50}, "ttft_p99_ms 400 is below ttft_p90_ms 500"),
])
def test_slo_needs_a_target_of_each_metric(tmp_path: Path, slo: dict[str, float], message: str) -> None:
    with pytest.raises(ScenarioError, match=re.escape(message)):
        load_scenario(_scenario(tmp_path, slo=slo))


def test_prefix_longer_than_the_prompt_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"prefix\.tokens 5000 exceeds input_tokens 4096"):
        load_scenario(_scenario(tmp_path, prefix={"tokens": 5000, "hit_rate": 0.5}))
    with pytest.raises(ScenarioError, match=r"workloads\[0\]\.prefix\.hit_rate"):
        load_scenario(_scenario(tmp_path, prefix={"tokens": 1000, "hit_rate": 1.5}))
