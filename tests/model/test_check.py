"""The solver-free checker catches tampered placements (review findings: it once passed a replica
put onto GPUs a fine-tuning job holds, and a replica moved onto a server of another SKU)."""

from __future__ import annotations

from functools import cache

import pytest

from optimizer.errors import SolverError
from optimizer.loaders import ResolvedScenario, load_scenario
from optimizer.model.check import check_plan
from optimizer.model.pipeline import solve_scenario
from optimizer.schema.plan import Plan
from tests.conftest import REPO


@cache
def bank() -> tuple[Plan, ResolvedScenario]:
    rs = load_scenario(REPO / "scenarios" / "bank-rollout.yaml")
    return solve_scenario(rs).plan, rs


def _moved(plan: Plan, src: int, dst: int, replica: int = 0) -> Plan:
    """The plan with one replica of server ``src`` moved onto server ``dst`` (same GPU slots)."""
    servers = {s.index: s for s in plan.placement}
    r = servers[src].replicas[replica]
    new_src = servers[src].model_copy(update={"replicas": [x for i, x in enumerate(servers[src].replicas)
                                                           if i != replica],
                                              "free_gpus": servers[src].free_gpus + len(r.gpus)})
    new_dst = servers[dst].model_copy(update={"replicas": [*servers[dst].replicas, r]})
    placement = [new_src if s.index == src else new_dst if s.index == dst else s for s in plan.placement]
    return plan.model_copy(update={"placement": placement})


def test_the_real_plan_passes() -> None:
    plan, rs = bank()
    assert len(check_plan(plan, rs)) > 50


def test_a_replica_on_gpus_a_finetune_job_holds_is_caught() -> None:
    plan, rs = bank()
    ft = next(s for s in plan.placement if s.finetune)
    other = next(s for s in plan.placement if s.sku == ft.sku and s.index != ft.index and s.replicas
                 and len(s.replicas[0].gpus) <= ft.free_gpus + 8)
    with pytest.raises(SolverError, match="GPUs in use"):
        check_plan(_moved(plan, other.index, ft.index), rs)


def test_a_replica_on_a_server_of_another_sku_is_caught() -> None:
    plan, rs = bank()
    src = next(s for s in plan.placement if s.replicas and len(s.replicas[0].gpus) == 2)
    dst = next(s for s in plan.placement if s.sku != src.sku and s.free_gpus >= 0)
    with pytest.raises(SolverError, match="placed"):
        check_plan(_moved(plan, src.index, dst.index), rs)


def test_a_finetune_job_is_re_sized_not_trusted() -> None:
    # review finding: the checker read the plan's own hours and peak memory; halving the hours of
    # the bank's LoRA job must now fail the re-sizing check
    plan, rs = bank()
    f = plan.finetunes[0]
    tampered = plan.model_copy(update={"finetunes": [f.model_copy(update={"hours": f.hours / 2})]})
    with pytest.raises(SolverError, match="re-sized"):
        check_plan(tampered, rs)
