"""Candidate table: server SKUs, twin removal, dominance pruning and rejections kept for diagnosis."""

from __future__ import annotations

from pathlib import Path

from optimizer.loaders import load_catalog, resolve_scenario
from optimizer.schema.scenario import Scenario
from optimizer.sizing.candidates import build_candidates, group_size, server_skus
from tests.conftest import BASE_SCENARIO


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
                assert not (d.gpus_per_replica <= c.gpus_per_replica and d.capacity_rps >= c.capacity_rps)


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
