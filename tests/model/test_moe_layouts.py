"""EP / DP-attention + EP candidates through the real candidate builder, MIP and checker."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

import optimizer.sizing.candidates as candidates_module
from optimizer.errors import SolverError
from optimizer.loaders import ResolvedScenario
from optimizer.model.check import check_plan
from optimizer.model.pipeline import solve_scenario
from optimizer.report.payload import plan_payload
from optimizer.schema.plan import Plan
from tests.model.helpers import scenario


def _workloads() -> list[dict[str, Any]]:
    # a large-batch MoE workload (batch sizes in the hundreds per replica) and a dense one
    moe = {"name": "moe-chat", "model": "Qwen3-235B-A22B", "precisions": ["fp8"], "requests_per_s": 40,
           "input_tokens": 1000, "output_tokens": 1000, "max_context": 4096,
           "slo": {"ttft_ms": 3000, "tpot_ms": 60}}
    dense = {"name": "dense-chat", "model": "Llama-3.1-8B", "precisions": ["bf16"], "requests_per_s": 20,
             "input_tokens": 500, "output_tokens": 200, "max_context": 4096,
             "slo": {"ttft_ms": 2000, "tpot_ms": 50}}
    return [moe, dense]


def _rs() -> ResolvedScenario:
    return scenario(_workloads(), constraints={"gpus": ["H200-SXM-141GB"], "servers": ["HGX-H200-8GPU"]},
                    serving={"engine": "vllm", "engine_version": "0.10.0"})


@cache
def solved() -> tuple[Plan, ResolvedScenario]:
    rs = _rs()
    return solve_scenario(rs).plan, rs


def test_ep_dp_candidates_win_for_moe_and_never_touch_dense(monkeypatch: pytest.MonkeyPatch) -> None:
    plan, rs = solved()
    assert plan.status == "optimal"
    moe = [d for d in plan.deployments if d.workload == "moe-chat"]
    dense = [d for d in plan.deployments if d.workload == "dense-chat"]
    assert moe and dense
    # 8 NVLink GPUs, large batches: attention DP with EP8 beats TP8 (KV heads not replicated, a
    # batch per DP rank, experts streamed once for all ranks' tokens)
    layouts = [(d.tp, d.ep, d.dp, d.replicas) for d in moe]
    assert all(d.ep in (1, d.tp * d.dp) for d in moe), layouts
    dp_rps = sum(d.planned_rps for d in moe if d.dp > 1)
    assert dp_rps > 0.5 * sum(d.planned_rps for d in moe), layouts
    assert all(d.gpus_per_replica == d.tp * d.pp * d.dp for d in plan.deployments)
    assert all(d.ep == 1 and d.dp == 1 for d in dense)
    check_plan(plan, rs)
    # without the MoE layouts the same scenario needs more GPUs (the TP-only optimum is worse)
    monkeypatch.setattr(candidates_module, "moe_layouts", lambda *a, **k: [])
    tp_only = solve_scenario(_rs()).plan
    assert all(d.ep == 1 and d.dp == 1 for d in tp_only.deployments)
    gpus = sum(d.replicas * d.gpus_per_replica for d in plan.deployments)
    gpus_tp = sum(d.replicas * d.gpus_per_replica for d in tp_only.deployments)
    assert gpus < gpus_tp and plan.capex < tp_only.capex


def test_plan_json_carries_ep_and_dp() -> None:
    plan, _ = solved()
    payload = json.loads(json.dumps(plan_payload(plan)))
    for d in payload["deployments"]:
        assert {"ep", "dp", "tp", "pp"} <= set(d)
    placed = [r for s in payload["placement"] for r in s["replicas"] if r["workload"] == "moe-chat"]
    assert any(r["dp"] > 1 and r["ep"] == r["tp"] * r["dp"] for r in placed)


def test_a_tampered_ep_plan_is_caught() -> None:
    plan, rs = solved()
    i = next(i for i, d in enumerate(plan.deployments) if d.workload == "moe-chat" and d.dp > 1)
    d = plan.deployments[i]
    # drop EP from a DP-attention deployment: not a layout the engines run, and the placed replicas no
    # longer match the deployment
    forged = d.model_copy(update={"ep": 1})
    deps = [forged if j == i else x for j, x in enumerate(plan.deployments)]
    with pytest.raises(SolverError, match="EP1"):
        check_plan(plan.model_copy(update={"deployments": deps}), rs)
    # an EP size that is not tp x dp, and a dense model given EP, are layout errors
    bad = d.model_copy(update={"ep": d.ep * 2})
    with pytest.raises(SolverError, match="layout"):
        check_plan(plan.model_copy(update={"deployments": [bad if j == i else x
                                                            for j, x in enumerate(plan.deployments)]}), rs)
    k = next(k for k, x in enumerate(plan.deployments) if x.workload == "dense-chat")
    dense = plan.deployments[k].model_copy(update={"ep": 2, "dp": 2})
    with pytest.raises(SolverError, match="dense model"):
        check_plan(plan.model_copy(update={"deployments": [dense if j == k else x
                                                            for j, x in enumerate(plan.deployments)]}), rs)
