"""Issue #12, export-controlled markets: Ascend 910C (Atlas 800T A3) and Cambricon MLU370-X8.

Each figure is pinned to the public source cited next to it (the same sources sit in the entry's
``source`` field). RTX PRO 6000D, Kunlunxin P800, Hygon K100/BW and Cambricon MLU590 are omitted
from the catalog: no bandwidth and dense tensor rate could be sourced (see catalogs/gpus.yaml).
"""

from __future__ import annotations

import json
from datetime import date
from functools import cache
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from optimizer.cli.catalog import _gpu_table, catalog_command
from optimizer.loaders import ResolvedScenario, load_catalog, load_scenario
from optimizer.model.check import check_plan
from optimizer.model.pipeline import solve_scenario
from optimizer.report.payload import catalog_payload
from optimizer.schema.catalog import GPU, Server
from optimizer.sizing import comm

NEW = ("Ascend-910C-128GB", "MLU370-X8-48GB")
OMITTED = ("RTX-PRO-6000D", "RTX 6000D", "P800", "K100", "BW1000", "MLU590")


@cache
def _cat():  # type: ignore[no-untyped-def]
    return load_catalog()


def gpu(name: str) -> GPU:
    return _cat().gpus[name]


def server(name: str) -> Server:
    return _cat().servers[name]


def test_ascend_910c_figures() -> None:
    g = gpu("Ascend-910C-128GB")
    # CloudMatrix384 paper (emergentmind summary): 752 TFLOPS FP16/BF16 per package, 128 GB, 3.2 TB/s;
    # DigiTimes via techpowerup.com/335749: eight HBM2E stacks, 3,200 GB/s.
    assert (g.tflops_dense["bf16"], g.tflops_dense["fp16"], g.memory_bandwidth_gb_s) == (752, 752, 3200)
    # same summary: "752 INT8 TFLOPS (per die)", two dies per package
    assert g.tflops_dense["int8"] == 2 * 752
    # vllm-ascend issue #2035 npu-smi on A3: two dies per 910C, HBM-Usage(MB) "... / 65536" each
    assert g.memory_gib == 2 * 65536 / 1024
    # besthub.dev (CloudMatrix384): "over 392 GB/s of unidirectional bandwidth" per 910C
    assert (g.interconnect.kind, g.interconnect.bandwidth_gb_s, g.interconnect.domain_size) == ("hccs", 392, 8)
    assert g.tdp_w == 2 * gpu("Ascend-910B-64GB").tdp_w  # proxy: two 910B dies (no 910C TDP published)
    assert g.confidence == "low" and g.vendor == "Huawei"
    # no FP8 on Ascend before the 950 series; W8A8 and W4A8 (int8 activations) are the Ascend paths
    assert not g.runs("fp8") and g.runs("w8a8") and g.runs("w4a8") and not g.runs("nvfp4")
    assert g.compute_tflops("w8a8") == 1504


def test_mlu370_x8_figures() -> None:
    g = gpu("MLU370-X8-48GB")
    # Cambricon MLU370-X8 launch (guangxilong.com, 2022-03-21) and product page (cronfeed.work reading):
    # FP16/BF16 96 TFLOPS, INT8 256 TOPS, INT4 512 TOPS, 48 GB LPDDR5, 614.4 GB/s, 250 W, MLU-Link 200 GB/s.
    assert (g.tflops_dense["bf16"], g.tflops_dense["int8"], g.tflops_dense["int4"]) == (96, 256, 512)
    assert (g.memory_bandwidth_gb_s, g.tdp_w, g.memory_type) == (614.4, 250, "LPDDR5")
    assert g.memory_gib == pytest.approx(48e9 / 2**30, abs=0.01)
    assert (g.interconnect.kind, g.interconnect.bandwidth_gb_s, g.interconnect.domain_size) == ("mlu-link", 100, 4)
    assert g.vendor == "Cambricon" and g.form_factor == "pcie"
    # native int8/int4, no FP8, no FP4 (FP4 weight-only is an NVIDIA Marlin path)
    assert g.runs("int4") and g.runs("w8a8") and not g.runs("fp8") and not g.runs("nvfp4")


def test_atlas_800t_a3_derivations() -> None:
    s, g = server("Atlas-800T-A3"), gpu("Ascend-910C-128GB")
    assert s.compatible_gpus == [g.name] and (s.gpu_slots, s.allowed_populations, s.integrated) == (8, [8], True)
    # capacitymedia.com: CloudMatrix 384 = 48 nodes x 8 x 910C, 559 kW, "up to $8.2 million"
    assert s.base_power_w == pytest.approx(559_000 / 48 - 8 * g.tdp_w, abs=1)
    assert s.base_price.usd == pytest.approx(8_200_000 / 48 - 8 * g.price.usd, abs=1)
    assert "MLU370-X8-48GB" in server("PCIe-8GPU-4U").compatible_gpus


def test_new_gpus_have_their_own_comm_profile() -> None:
    for name in NEW:
        p = comm.comm_profile(gpu(name))
        assert not p.scaled_from and p.basis == "estimate", name
    assert comm.comm_profile(gpu("Ascend-910C-128GB")).name == "hccs-a3"
    assert comm.comm_profile(gpu("Ascend-910B-64GB")).name == "hccs"  # 910B keeps its own


def test_omitted_accelerators_are_absent() -> None:
    labels = {lab.lower() for g in _cat().gpus.values() for lab in (g.name, *g.aliases)}
    for name in OMITTED:
        assert name.lower() not in labels


def test_catalog_gpus_lists_them() -> None:
    out = CliRunner().invoke(catalog_command, ["gpus", "--format", "json"])
    assert out.exit_code == 0, out.output
    names = {g["name"] for g in json.loads(out.output)["gpus"]}
    assert set(NEW) <= names
    assert CliRunner().invoke(catalog_command, ["gpus"]).exit_code == 0
    console = Console(width=400, record=True)
    console.print(_gpu_table(_cat(), date(2026, 12, 1)))
    lines = console.export_text().splitlines()
    for name in NEW:
        assert any(name in ln for ln in lines), name
    # the 910C row carries the stale flag (2025-07-28 price), the MLU370-X8 row does not
    assert any("Ascend-910C-128GB" in ln and "STALE" in ln for ln in lines)
    assert not any("MLU370-X8-48GB" in ln and "STALE" in ln for ln in lines)


def test_stale_price_flags() -> None:
    cat = _cat()
    on = date(2026, 12, 1)
    gpus = {g["name"]: g for g in catalog_payload(cat, "gpus", on)["gpus"]}
    servers = {s["name"]: s for s in catalog_payload(cat, "servers", on)["servers"]}
    # the 910C / Atlas 800T A3 estimates rest on the CloudMatrix price of 2025-07-28: older than 12 months
    assert gpus["Ascend-910C-128GB"]["price_stale"] is True
    assert servers["Atlas-800T-A3"]["price_stale"] is True
    # the MLU370-X8 estimate was read 2026-11-24: not stale on 2026-12-01, stale a year later
    assert gpus["MLU370-X8-48GB"]["price_stale"] is False
    later = {g["name"]: g for g in catalog_payload(cat, "gpus", date(2027, 12, 1))["gpus"]}
    assert later["MLU370-X8-48GB"]["price_stale"] is True


def _scenario(tmp: Path, gpu_name: str) -> ResolvedScenario:
    p = tmp / f"{gpu_name}.yaml"
    p.write_text(f"""name: tiny {gpu_name}
description: one small workload restricted to {gpu_name}
currency: USD
horizon_years: 3
site: {{power_kw: 100, pue: 1.3, racks: 2, rack_power_kw: 40, rack_units: 42, electricity_per_kwh: 0.08}}
constraints:
  gpus: [{gpu_name}]
objective: capex
workloads:
  - name: chat8b
    model: meta-llama/Llama-3.1-8B-Instruct
    precisions: [bf16]
    requests_per_s: 2
    input_tokens: 500
    output_tokens: 200
    max_context: 8192
    slo: {{ttft_ms: 2000, tpot_ms: 100}}
""", encoding="utf-8")
    return load_scenario(p)


@pytest.mark.parametrize("name", NEW)
def test_tiny_scenario_plans_on_the_new_gpu(tmp_path: Path, name: str) -> None:
    rs = _scenario(tmp_path, name)
    plan = solve_scenario(rs).plan
    assert plan.status in ("optimal", "feasible")
    assert plan.deployments and all(d.gpu == name for d in plan.deployments)
    assert check_plan(plan, rs)  # raises on any violated constraint
