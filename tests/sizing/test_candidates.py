"""Candidate table: server SKUs, twin removal, dominance pruning and rejections kept for diagnosis."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from optimizer.loaders import load_catalog, resolve_scenario
from optimizer.schema.scenario import Scenario
from optimizer.sizing.candidates import (
    InferenceCandidate,
    build_candidates,
    group_size,
    prune_dominated,
    server_skus,
)
from tests.conftest import BASE_SCENARIO
from tests.model.helpers import candidate


def resolved(**constraints: object) -> object:
    data = {**BASE_SCENARIO, "constraints": constraints}
    return resolve_scenario(Scenario.model_validate(data), Path("s.yaml"), load_catalog())


def test_twin_skus_are_removed() -> None:
    # The catalog prices both PCIe chassis at the same base and power, so 1/2/4 L20s in either are
    # twins; one of each is kept (the 4-slot one for 4 GPUs: fully populated), plus 8 in the 8-slot.
    skus = server_skus(resolved(gpus=["L20-48GB"]))  # type: ignore[arg-type]
    assert sorted(skus) == ["PCIe-4GPU-4U/L20-48GB/1", "PCIe-4GPU-4U/L20-48GB/2", "PCIe-4GPU-4U/L20-48GB/4",
                            "PCIe-8GPU-4U/L20-48GB/8"]


def test_sku_price_and_power_from_catalog() -> None:
    skus = server_skus(resolved(gpus=["H20-96GB"]))  # type: ignore[arg-type]
    sku = skus["HGX-H20-8GPU/H20-96GB/8"]
    cat = load_catalog()
    assert sku.unit_price == cat.servers["HGX-H20-8GPU"].base_price.usd + 8 * cat.gpus["H20-96GB"].price.usd
    assert sku.power_w == cat.servers["HGX-H20-8GPU"].base_power_w + 8 * cat.gpus["H20-96GB"].tdp_w


def test_no_candidate_is_dominated() -> None:
    cands = build_candidates(resolved(gpus=["H20-96GB", "L20-48GB"]))  # type: ignore[arg-type]
    assert cands.inference
    for c in cands.inference:
        for d in cands.inference:
            if d is not c and (d.workload, d.sku) == (c.workload, c.sku):
                g_d, g_c = d.gpus_per_replica, c.gpus_per_replica
                assert not (g_d <= g_c and d.capacity_rps >= c.capacity_rps)
                # across layouts: g_c / g_d one-server replicas of d would serve at least c's load
                assert not (d.servers_per_replica == 1 and g_c % g_d == 0
                            and g_c // g_d * d.capacity_rps >= c.capacity_rps)


def _cand(tp: int, rps: float, pp: int = 1, servers: int = 1, precision: str = "bf16") -> InferenceCandidate:
    base = candidate("w", "HGX-H20-8GPU/H20-96GB/8", rps, tp=tp)
    return dataclasses.replace(base, pp=pp, servers_per_replica=servers, precision=precision)


def test_dominance_across_layouts() -> None:
    # One 8-GPU SKU. TP1 serves 10 req/s. TP2 at 19 goes (2 x 10 = 20 >= 19), TP2 int4 at 21 stays
    # (20 < 21); TP4 at 45 stays (4 x 10 = 40, 2 x 21 = 42 < 45); TP8 at 85 goes (2 x 45 = 90);
    # TP8 x PP2 over two servers (16 GPUs) at 170 goes (4 x 45 = 180), at 200 stays (180 < 200).
    # A two-server replica never dominates across layouts: TP8 x PP4 (32 GPUs, 4 servers) at 390
    # stays, though 2 x 200 = 400 (one-server ones reach 8 x 45 = 360 < 390). An exact tie (TP1 fp8
    # at 10 req/s) keeps the first in order (bf16 before fp8).
    table = [_cand(8, 85.0), _cand(2, 19.0), _cand(1, 10.0, precision="fp8"), _cand(4, 45.0),
             _cand(8, 170.0, pp=2, servers=2), _cand(2, 21.0, precision="int4"), _cand(1, 10.0),
             _cand(8, 390.0, pp=4, servers=4), _cand(8, 200.0, pp=2, servers=2)]
    kept = prune_dominated(table)
    assert [(c.tp, c.pp, c.precision, c.capacity_rps) for c in kept] == [
        (1, 1, "bf16", 10.0), (2, 1, "int4", 21.0), (4, 1, "bf16", 45.0), (8, 2, "bf16", 200.0),
        (8, 4, "bf16", 390.0)]


def test_tp_divides_heads_and_fits_server() -> None:
    cands = build_candidates(resolved(gpus=["H20-96GB"]))  # type: ignore[arg-type]
    heads = cands.archs["chat"].num_attention_heads  # Qwen2-7B: 28 heads, so TP 8 is impossible
    assert heads == 28
    assert {c.tp for c in cands.inference} <= {1, 2, 4}


def test_group_size_whole_servers_beyond_one() -> None:
    assert [group_size(n, 8) for n in (1, 3, 5, 8, 9, 23)] == [1, 4, 8, 8, 16, 24]


def resolved_site(site: dict[str, object], **constraints: object) -> object:
    data = {**BASE_SCENARIO, "site": {**BASE_SCENARIO["site"], **site}, "constraints": constraints}
    return resolve_scenario(Scenario.model_validate(data), Path("s.yaml"), load_catalog())


def test_server_that_fits_no_rack_is_dropped_with_a_rejection() -> None:
    # HGX H20: 4.6 kW + 8 x 0.4 kW = 7.8 kW and 8 U; racks of 5 kW / 6 U hold none of it, whatever
    # their number. The L20 boxes (4 U; 0.36 + 8 x 0.275 = 2.56 kW at most) fit and stay.
    cands = build_candidates(resolved_site({"rack_power_kw": 5, "rack_units": 6},  # type: ignore[arg-type]
                                           gpus=["H20-96GB", "L20-48GB"]))
    h20 = "HGX-H20-8GPU/H20-96GB/8"
    assert h20 not in cands.skus and list(cands.unrackable) == [h20]
    assert not [c for c in cands.inference if c.sku == h20]
    assert cands.inference and all("L20" in c.sku for c in cands.inference)
    rack = [r for r in cands.rejections if r.reason == "rack"]
    assert [(r.workload, r.sku) for r in rack] == [("chat", h20)]
    assert rack[0].detail == (f"{h20} draws 7.8 kW, more than a rack's 5 kW and is 8 U tall, more than a "
                              "rack's 6 U")


def test_kv_dtype_and_weight_precision_rejections_are_told_apart() -> None:
    # Ascend 910B runs int8 weights but has no fp8 (so no fp8 KV cache), and cannot run fp8 weights.
    data = {**BASE_SCENARIO, "constraints": {"gpus": ["Ascend-910B-64GB", "L20-48GB"]},
            "workloads": [{**BASE_SCENARIO["workloads"][0], "precisions": ["int8", "fp8"], "kv_dtype": "fp8"}]}
    rs = resolve_scenario(Scenario.model_validate(data), Path("s.yaml"), load_catalog())
    cands = build_candidates(rs)
    ascend = {(r.reason, r.precision, r.detail) for r in cands.rejections if "Ascend" in r.sku}
    assert ascend == {
        ("kv_dtype", "int8", "Ascend-910B-64GB runs int8 weights but has no fp8 KV cache (kv_dtype fp8)"),
        ("precision", "fp8", "Ascend-910B-64GB cannot run fp8 weights"),
    }
