"""One MIP column per layout across a GPU type's populations (optimizer/model/populations.py).

Prices as in test_hand_solved: 4-slot chassis 15k, 8-slot 20k, L20 5k, so the L20 servers cost
1 GPU 20k/25k, 2 GPUs 25k/30k, 4 GPUs 35k/40k (4-slot/8-slot), 8 GPUs 60k.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer.errors import PlacementError
from optimizer.loaders import ResolvedScenario
from optimizer.model.build import MipModel, build_model
from optimizer.model.placement import Item, place
from optimizer.model.populations import merge_populations, split_replicas
from optimizer.model.solve import SolveOutcome, solve_model
from optimizer.sizing.candidates import CandidateSet, FinetuneCandidate, server_skus
from tests.model.helpers import SETTINGS, candidate, counts, scenario, workload
from tests.model.test_hand_solved import PRICES

L20_ONLY = {"gpus": ["L20-48GB"]}
BOX1, BOX2, BOX4 = "PCIe-4GPU-4U/L20-48GB/1", "PCIe-4GPU-4U/L20-48GB/2", "PCIe-4GPU-4U/L20-48GB/4"
BOX8 = "PCIe-8GPU-4U/L20-48GB/8"


def _table(rs: ResolvedScenario, capacity: dict[int, float], workloads: tuple[str, ...] = ("chat",)) -> CandidateSet:
    """Every L20 SKU that holds the footprint gets the layout, at one capacity per TP."""
    skus = server_skus(rs)
    return CandidateSet(skus=skus, inference=[
        candidate(w, k, cap, tp=tp) for w in workloads for k, sku in skus.items()
        for tp, cap in capacity.items() if tp <= sku.gpus])


def _both(rs: ResolvedScenario, cands: CandidateSet) -> list[tuple[SolveOutcome, MipModel]]:
    """(outcome, model) merged and per-SKU."""
    out = []
    for merge in (True, False):
        mm = build_model(rs, cands, objective="capex", merge=merge)
        out.append((solve_model(mm, SETTINGS, "capex"), mm))
    return out


def test_one_group_across_chassis_and_populations() -> None:
    rs = scenario([workload("chat", 3)], prices=PRICES, constraints=L20_ONLY)
    cands = _table(rs, {1: 1.0, 2: 1.8, 4: 3.0})
    merge = merge_populations(cands)
    assert list(merge.groups) == [BOX8]
    assert merge.groups[BOX8][0] == BOX8 and len(merge.groups[BOX8]) == 7
    # TP1 on 7 SKUs, TP2 on 5 (those with >= 2 GPUs), TP4 on 3: 15 candidates, 3 columns
    assert len(cands.inference) == 15
    assert [(c.tp, c.sku) for c in merge.cands.inference] == [(1, BOX8), (2, BOX8), (4, BOX8)]
    assert sorted(merge.twins[0]) == sorted(server_skus(rs))


def test_no_group_where_merging_would_change_the_optimum() -> None:
    rs = scenario([workload("chat", 3)], prices=PRICES, constraints=L20_ONLY)
    cands = _table(rs, {1: 1.0, 2: 1.8})
    # a capacity differing on one SKU: that layout is not the same column everywhere
    odd = [candidate("chat", BOX2, 0.9) if (c.sku, c.tp) == (BOX2, 1) else c for c in cands.inference]
    assert merge_populations(dataclasses.replace(cands, inference=odd)).groups == {}
    # a layout missing from one SKU that could hold it
    assert merge_populations(dataclasses.replace(
        cands, inference=[c for c in cands.inference if (c.sku, c.tp) != (BOX4, 2)])).groups == {}
    # a fine-tuning job on one of its SKUs, or a SKU kept apart for the exact spread rows
    job = FinetuneCandidate(workload="tune", sku=BOX4, gpus=4, hours=1.0, peak_gib_per_gpu=10.0)
    assert merge_populations(dataclasses.replace(cands, finetune=[job])).groups == {}
    assert merge_populations(cands, frozenset({BOX1})).groups == {}
    assert list(merge_populations(cands).groups) == [BOX8]


def test_mixed_populations_same_optimum() -> None:
    # 5 req/s on 1 req/s TP1 replicas = 5 GPUs: one 4-GPU box + one 1-GPU box = 35k + 20k = 55k,
    # against 60k for an 8-GPU server or 4 + 2 GPUs (35k + 25k)
    rs = scenario([workload("chat", 5)], prices=PRICES, constraints=L20_ONLY)
    cands = _table(rs, {1: 1.0})
    (merged, mm), (per_sku, mm_full) = _both(rs, cands)
    assert merged.objective == pytest.approx(55_000) == per_sku.objective
    assert counts(merged, mm) == {BOX4: 1, BOX1: 1} == counts(per_sku, mm_full)
    assert len(mm.r) == 1 and len(mm_full.r) == 7
    chosen = [(0, mm.cands.inference[0], 5)]
    split = split_replicas(mm.merge, chosen, counts(merged, mm), set())
    assert [(c.sku, r) for _, c, r in split] == [(BOX4, 4), (BOX1, 1)]  # largest population first


def test_threshold_rows_keep_a_replica_off_smaller_servers() -> None:
    # four 1-GPU servers hold 4 GPUs but no TP4 replica: with the servers fixed so, the merged
    # model must be infeasible (a volume row alone would accept it)
    rs = scenario([workload("chat", 1)], prices=PRICES, constraints=L20_ONLY)
    cands = _table(rs, {4: 1.0})
    mm = build_model(rs, cands, objective="capex")
    for k, var in mm.n.items():
        var.lower_bound = var.upper_bound = 4.0 if k == BOX1 else 0.0
    assert solve_model(mm, SETTINGS, "capex").status == "infeasible"
    names = sorted(c.name for c in mm.model.linear_constraints() if c.name.startswith("packing["))
    assert names == [f"packing[{BOX8},{t}+]" for t in (1, 2, 4, 8)]


def test_spread_counts_the_groups_servers() -> None:
    # min_replicas 2 on two servers, 2 req/s of 1 req/s TP1 replicas: two 1-GPU boxes (40k), not
    # one 2-GPU box (25k, one server); the split puts one replica on each
    rs = scenario([workload("chat", 2, min_replicas=2)], prices=PRICES, constraints=L20_ONLY)
    cands = _table(rs, {1: 1.0})
    (merged, mm), (per_sku, _) = _both(rs, cands)
    assert merged.objective == pytest.approx(40_000) == per_sku.objective
    assert counts(merged, mm) == {BOX1: 2}
    split = split_replicas(mm.merge, [(0, mm.cands.inference[0], 2)], {BOX1: 2}, {"chat"})
    assert [(c.sku, r) for _, c, r in split] == [(BOX1, 2)]
    # with an 8-GPU and a 1-GPU server, a spread workload's two replicas land on both
    split = split_replicas(mm.merge, [(0, mm.cands.inference[0], 2)], {BOX8: 1, BOX1: 1}, {"chat"})
    assert sorted((c.sku, r) for _, c, r in split) == [(BOX1, 1), (BOX8, 1)]
    # without spread, first fit keeps them together
    split = split_replicas(mm.merge, [(0, mm.cands.inference[0], 2)], {BOX8: 1, BOX1: 1}, set())
    assert [(c.sku, r) for _, c, r in split] == [(BOX8, 2)]


def test_split_places_largest_first() -> None:
    # a TP4 and four TP1 replicas on an 8-GPU server: TP4 first (GPUs 0-3), the TP1s fill the rest
    rs = scenario([workload("a", 1), workload("b", 4)], prices=PRICES, constraints=L20_ONLY)
    cands = _table(rs, {1: 1.0, 4: 1.0}, workloads=("a", "b"))
    merge = merge_populations(cands)
    tp1_b = next(i for i, c in enumerate(merge.cands.inference) if (c.workload, c.tp) == ("b", 1))
    tp4_a = next(i for i, c in enumerate(merge.cands.inference) if (c.workload, c.tp) == ("a", 4))
    chosen = [(tp1_b, merge.cands.inference[tp1_b], 4), (tp4_a, merge.cands.inference[tp4_a], 1)]
    split = split_replicas(merge, chosen, {BOX8: 1}, set())
    assert sorted((c.workload, c.tp, c.sku, r) for _, c, r in split) == [("a", 4, BOX8, 1), ("b", 1, BOX8, 4)]
    # on a 4-GPU and four 1-GPU servers the TP4 takes the 4-GPU box, the TP1s the small ones
    split = split_replicas(merge, chosen, {BOX4: 1, BOX1: 4}, set())
    assert sorted((c.workload, c.tp, c.sku, r) for _, c, r in split) == [("a", 4, BOX4, 1), ("b", 1, BOX1, 4)]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.floats(0.5, 12), st.integers(1, 2), st.sampled_from([(1.0, 1.7, 3.1), (1.0, 2.1, 3.9)])),
                min_size=1, max_size=3))
def test_merged_optimum_equals_per_sku(loads: list[tuple[float, int, tuple[float, float, float]]]) -> None:
    """Random L20 platforms: merging never changes the optimal capex without spread, and with
    spread never raises it (the group's spread row is necessary only; placement checks it)."""
    rs = scenario([workload(f"w{k}", rps, min_replicas=m) for k, (rps, m, _) in enumerate(loads)],
                  prices=PRICES, constraints=L20_ONLY)
    skus = server_skus(rs)
    cands = CandidateSet(skus=skus, inference=[
        candidate(f"w{k}", key, cap, tp=tp) for k, (_, _, caps) in enumerate(loads) for key, sku in skus.items()
        for tp, cap in zip((1, 2, 4), caps, strict=True) if tp <= sku.gpus])
    (merged, mm), (per_sku, _) = _both(rs, cands)
    assert merged.status == per_sku.status == "optimal"
    if all(m == 1 for _, m, _ in loads):
        assert merged.objective == pytest.approx(per_sku.objective, rel=1e-6)
    else:
        assert merged.objective <= per_sku.objective + 1e-6
    values = merged.values
    chosen = [(i, c, round(values[mm.r[i]])) for i, c in enumerate(mm.cands.inference) if round(values[mm.r[i]])]
    spread = {f"w{k}" for k, (_, m, _) in enumerate(loads) if m > 1}
    split = split_replicas(mm.merge, chosen, counts(merged, mm), spread)
    # every replica lands on a bought server of a population that holds it, none beyond its GPUs
    used: dict[str, int] = {}
    for _, c, r in split:
        assert c.gpus_per_replica <= skus[c.sku].gpus
        used[c.sku] = used.get(c.sku, 0) + r * c.gpus_per_replica
    assert all(used[k] <= skus[k].gpus * n for k, n in counts(merged, mm).items() if k in used)
    assert sum(r for _, _, r in split) == sum(r for _, _, r in chosen)


def test_unplaceable_spread_falls_back_to_the_per_sku_rows() -> None:
    # one plain and two spread workloads, 1 req/s each on 1 req/s TP1 replicas: 5 GPUs on two or
    # more servers. A 4-GPU + a 1-GPU box (55k) passes the group's two-server rows, but only one
    # spread workload can have a replica off the 4-GPU box: placement fails on the 4-GPU SKU, and
    # the pipeline's re-solve with that SKU's exact rows (its group kept apart) finds 60k
    rs = scenario([workload("a", 1), workload("b", 1, min_replicas=2), workload("c", 1, min_replicas=2)],
                  prices=PRICES, constraints=L20_ONLY)
    cands = _table(rs, {1: 1.0}, workloads=("a", "b", "c"))
    merged, mm = _both(rs, cands)[0]
    assert merged.objective == pytest.approx(55_000)
    bought = counts(merged, mm)
    assert bought == {BOX4: 1, BOX1: 1}
    chosen = [(i, c, round(merged.values[mm.r[i]])) for i, c in enumerate(mm.cands.inference)]
    split = split_replicas(mm.merge, [e for e in chosen if e[2]], bought, {"b", "c"})
    items = [Item(c.workload, c.sku, c.tp, c.pp, c.gpus_per_replica, 1, spread=c.workload != "a")
             for _, c, r in split for _ in range(r)]
    with pytest.raises(PlacementError) as err:
        place({k: [1] * n for k, n in bought.items()}, {k: server_skus(rs)[k].gpus for k in bought}, items)
    assert err.value.sku == BOX4
    again = build_model(rs, cands, objective="capex", exact_spread=frozenset({err.value.sku}))
    assert again.groups == {}
    assert solve_model(again, SETTINGS, "capex").objective == pytest.approx(60_000)
