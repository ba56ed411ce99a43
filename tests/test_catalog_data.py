"""Data tests for catalogs/gpus.yaml and catalogs/servers.yaml.

They validate both files against optimizer.schema.catalog and pin a handful of figures to the public
sources cited next to each assertion (the same sources are listed in each entry's ``source`` field).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from optimizer.schema.catalog import GPU, Server

CATALOGS = Path(__file__).resolve().parents[1] / "catalogs"

EXPECTED_GPUS = {
    "H100-SXM-80GB", "H100-PCIe-80GB", "H100-NVL-94GB", "H200-SXM-141GB", "H20-96GB",
    "H800-SXM-80GB", "A100-SXM-80GB", "A100-SXM-40GB", "A800-SXM-80GB", "L40S-48GB", "L20-48GB",
    "L4-24GB", "A10-24GB", "RTX-4090-24GB", "B200-SXM-180GB", "MI300X-192GB", "MI325X-256GB",
    "Ascend-910B-64GB",
    # issue #12
    "B300-SXM-288GB", "GB200-NVL72-186GB", "GB300-NVL72-288GB", "H200-NVL-141GB", "RTX-PRO-6000-BSE-96GB",
    "MI355X-288GB",
    # issue #12, export-controlled markets (tests/test_catalog_export.py)
    "Ascend-910C-128GB", "MLU370-X8-48GB",
}


def _load(name: str, key: str) -> list[dict[str, Any]]:
    with (CATALOGS / name).open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict) and list(data) == [key], f"{name} must hold only the key {key!r}"
    entries = data[key]
    assert isinstance(entries, list)
    return entries


@pytest.fixture(scope="module")
def gpus() -> dict[str, GPU]:
    parsed = [GPU.model_validate(g) for g in _load("gpus.yaml", "gpus")]
    by_name = {g.name: g for g in parsed}
    assert len(by_name) == len(parsed), "duplicate GPU names"
    return by_name


@pytest.fixture(scope="module")
def servers() -> dict[str, Server]:
    parsed = [Server.model_validate(s) for s in _load("servers.yaml", "servers")]
    by_name = {s.name: s for s in parsed}
    assert len(by_name) == len(parsed), "duplicate server names"
    return by_name


def test_gpu_catalog_has_exactly_the_canonical_names(gpus: dict[str, GPU]) -> None:
    assert set(gpus) == EXPECTED_GPUS


def test_at_least_twelve_servers(servers: dict[str, Server]) -> None:
    assert len(servers) >= 12


def test_names_and_aliases_are_unique_case_insensitively(
    gpus: dict[str, GPU], servers: dict[str, Server]
) -> None:
    for entries in (gpus.values(), servers.values()):
        seen: dict[str, str] = {}
        for e in entries:
            for label in [e.name, *e.aliases]:
                key = label.lower()
                assert seen.get(key, e.name) == e.name, f"{label!r} used by {seen[key]} and {e.name}"
                seen[key] = e.name


@pytest.mark.parametrize("alias, name", [
    ("H100", "H100-SXM-80GB"), ("H100 SXM", "H100-SXM-80GB"), ("H20", "H20-96GB"),
    ("Ascend-910B", "Ascend-910B-64GB"), ("910B", "Ascend-910B-64GB"), ("L20", "L20-48GB"),
    ("MI300X", "MI300X-192GB"), ("4090", "RTX-4090-24GB"),
])
def test_required_aliases(gpus: dict[str, GPU], alias: str, name: str) -> None:
    assert alias in gpus[name].aliases


def test_every_entry_is_sourced_and_dated(gpus: dict[str, GPU], servers: dict[str, Server]) -> None:
    today = date(2026, 11, 24)
    for g in gpus.values():
        for sourced in (g, g.price):
            assert len(sourced.source) >= 10 and sourced.as_of <= today, g.name
        assert "estimate" in (g.price.note or "").lower(), f"{g.name}: price note must say estimate"
    for s in servers.values():
        for sourced in (s, s.base_price):
            assert len(sourced.source) >= 10 and sourced.as_of <= today, s.name
        assert "estimate" in (s.base_price.note or "").lower(), s.name


def test_server_gpus_exist_and_match_form_factor(
    gpus: dict[str, GPU], servers: dict[str, Server]
) -> None:
    for s in servers.values():
        for name in s.compatible_gpus:
            assert name in gpus, f"{s.name}: unknown GPU {name}"
            assert gpus[name].form_factor == s.gpu_form_factor, f"{s.name}: {name}"


def test_every_gpu_fits_some_server(gpus: dict[str, GPU], servers: dict[str, Server]) -> None:
    placed = {n for s in servers.values() for n in s.compatible_gpus}
    assert placed == set(gpus)


def test_board_servers_only_sell_full_boards(servers: dict[str, Server]) -> None:
    for s in servers.values():
        if s.gpu_slots == 72:  # rack-scale NVL72 systems: the whole rack or nothing
            assert s.allowed_populations == [72] and s.integrated, s.name
        elif s.gpu_form_factor in ("sxm", "oam", "module"):
            assert (s.gpu_slots, s.allowed_populations) == (8, [8]), s.name
    assert servers["PCIe-8GPU-4U"].allowed_populations == [1, 2, 4, 8]
    assert servers["HGX-A100-8GPU"].compatible_gpus == ["A100-SXM-80GB", "A100-SXM-40GB"]


def test_no_fp8_on_ampere_or_ascend(gpus: dict[str, GPU]) -> None:
    # Ampere and Ascend 910B tensor/cube units have no FP8 path.
    for g in gpus.values():
        if g.architecture in ("Ampere",) or g.vendor == "Huawei":
            assert "fp8" not in g.tflops_dense and "fp8" not in g.weight_only_precisions, g.name
            assert not g.runs("fp8")


def test_dense_rates_are_ordered(gpus: dict[str, GPU]) -> None:
    for g in gpus.values():
        half = g.tflops_dense.get("bf16") or g.tflops_dense["fp16"]
        for p in ("fp8", "int8", "int4"):
            if p in g.tflops_dense:
                assert g.tflops_dense[p] >= half, f"{g.name}: {p} slower than 16-bit"


# --- datasheet figures -----------------------------------------------------------------------------

def test_h100_sxm(gpus: dict[str, GPU]) -> None:
    g = gpus["H100-SXM-80GB"]
    # glennklockwood.com/garden/processors/h100: BF16 989.4 dense, 3.35 TB/s, 700 W, NVLink 900 GB/s.
    assert g.tflops_dense["bf16"] == 989 and g.tflops_dense["fp8"] == 1979
    assert (g.memory_bandwidth_gb_s, g.tdp_w) == (3350, 700)
    assert (g.interconnect.bandwidth_gb_s, g.interconnect.domain_size) == (450, 8)  # 900 / 2
    # vllm-project/vllm issue #55169 nvidia-smi: "NVIDIA H100 80GB HBM3 ... 0MiB / 81559MiB".
    assert g.memory_gib == pytest.approx(81559 / 1024, abs=0.01)


def test_h200_memory(gpus: dict[str, GPU]) -> None:
    g = gpus["H200-SXM-141GB"]
    # NVIDIA/TensorRT-LLM docs/source/blogs/H200launch.md: "4.8TB/s ... 141 gigabytes".
    assert g.memory_bandwidth_gb_s == 4800
    # nvidia-smi on 8x H200 (public GitHub log): "0MiB / 143771MiB".
    assert g.memory_gib == pytest.approx(143771 / 1024, abs=0.01)


def test_h100_nvl(gpus: dict[str, GPU]) -> None:
    g = gpus["H100-NVL-94GB"]
    # NVIDIA datasheet table (jishuzhan.net/article/1872432607539499010): NVL BF16 1671*, FP8 3341*
    # (with sparsity), 3.9 TB/s, 400 W; NVLink bridge 600 GB/s bidirectional between the pair.
    assert g.tflops_dense["bf16"] == pytest.approx(1671 / 2)
    assert g.tflops_dense["fp8"] == pytest.approx(3341 / 2)
    assert (g.memory_bandwidth_gb_s, g.tdp_w) == (3900, 400)
    assert (g.interconnect.kind, g.interconnect.bandwidth_gb_s) == ("nvlink", 300)
    assert g.interconnect.domain_size == 2
    # NVIDIA/gpu-admin-tools issue #4 nvidia-smi: "NVIDIA H100 NVL ... 400W | 0MiB / 95830MiB".
    assert g.memory_gib == pytest.approx(95830 / 1024, abs=0.01)


def test_l40s(gpus: dict[str, GPU]) -> None:
    g = gpus["L40S-48GB"]
    # L40S datasheet (mirror: mullet.se product 355414): 864 GB/s, BF16 362.05 | 733*, FP8 733 | 1,466*,
    # 350 W, PCIe Gen4 x16 64 GB/s bidirectional.
    assert (g.memory_bandwidth_gb_s, g.tdp_w) == (864, 350)
    assert (g.tflops_dense["bf16"], g.tflops_dense["fp8"]) == (362.05, 733)
    assert g.interconnect.bandwidth_gb_s == 32
    # modal-labs/modal-client PR #2797: nvidia-smi "L40S: 46068MiB".
    assert g.memory_gib == pytest.approx(46068 / 1024, abs=0.01)


def test_l20_fp8(gpus: dict[str, GPU]) -> None:
    # Tom's Hardware H20/L20/L2 spec table: L20 "INT8 | FP8 Tensor 239 | 239", "BF16 | FP16 119.5".
    g = gpus["L20-48GB"]
    assert (g.tflops_dense["fp8"], g.tflops_dense["int8"], g.tflops_dense["bf16"]) == (239, 239, 119.5)


def test_rtx_4090(gpus: dict[str, GPU]) -> None:
    g = gpus["RTX-4090-24GB"]
    # Ada whitepaper figures (waredb.com transcription): FP16/BF16 tensor 165.15 dense (330.30 sparse),
    # INT8 660.60 dense; 450 W TBP (techgoing.com; nvidia-smi cap "450W" in vllm issue #7768).
    assert g.tflops_dense["bf16"] == pytest.approx(165.15, abs=0.1)
    assert g.tflops_dense["int8"] == pytest.approx(660.6)
    assert g.tdp_w == 450
    # vllm issue #7553: nvidia-smi "21395MiB / 24564MiB" on RTX 4090.
    assert g.memory_gib == pytest.approx(24564 / 1024, abs=0.01)


def test_mi325x(gpus: dict[str, GPU]) -> None:
    g = gpus["MI325X-256GB"]
    # awesomeagents.ai/hardware/amd-mi325x: 6,000 GB/s, FP16/BF16 1,307.4, FP8 2,614.9 (dense), 1,000 W.
    assert (g.memory_bandwidth_gb_s, g.tdp_w) == (6000, 1000)
    assert (g.tflops_dense["bf16"], g.tflops_dense["fp8"]) == (1307.4, 2614.9)


def test_mi300x_memory(gpus: dict[str, GPU]) -> None:
    # ROCm/legacy-rocm-build issue #4750 rocm-smi: "VRAM Total Memory (B): 206141652992".
    assert gpus["MI300X-192GB"].memory_gib == pytest.approx(206141652992 / 2**30, abs=0.01)


def test_h20(gpus: dict[str, GPU]) -> None:
    g = gpus["H20-96GB"]
    # Tom's Hardware table: HGX H20 96 GB HBM3, 4.0 TB/s, INT8|FP8 296|296, BF16|FP16 148|148.
    assert (g.memory_bandwidth_gb_s, g.tflops_dense["bf16"], g.tflops_dense["fp8"]) == (4000, 148, 296)
    # NVIDIA/nvtrust issue #128 nvidia-smi: "NVIDIA H20 ... 0MiB / 97871MiB".
    assert g.memory_gib == pytest.approx(97871 / 1024, abs=0.01)


def test_h800_and_a800_nvlink_cut(gpus: dict[str, GPU]) -> None:
    # Export-control variants: NVLink 400 GB/s bidirectional (aiwiki.ai/wiki/nvidia_a800; ArthurChiao).
    assert gpus["H800-SXM-80GB"].interconnect.bandwidth_gb_s == 200
    assert gpus["A800-SXM-80GB"].interconnect.bandwidth_gb_s == 200
    # nvidia-smi power caps in public H800 SXM logs: "700W".
    assert gpus["H800-SXM-80GB"].tdp_w == 700


def test_ascend_910b(gpus: dict[str, GPU]) -> None:
    g = gpus["Ascend-910B-64GB"]
    # ArthurChiao gpu-data-sheets post: FP16 320 TFLOPS, INT8 640 TOPS, 400 W, HCCS 392 GB/s total.
    assert (g.tflops_dense["fp16"], g.tflops_dense["int8"], g.tdp_w) == (320, 640, 400)
    assert (g.interconnect.kind, g.interconnect.bandwidth_gb_s) == ("hccs", 196)
    # vllm-project/vllm-ascend issue #1903 npu-smi: HBM-Usage(MB) "3369 / 65536" on 910B3.
    assert g.memory_gib == 64.0
    assert g.confidence == "low"


def test_b200(gpus: dict[str, GPU]) -> None:
    g = gpus["B200-SXM-180GB"]
    # NVIDIA DGX B200 user guide: 8 GPUs, 1,440 GB total => 180 GB each; NVLink 5 1.8 TB/s.
    assert g.memory_marketed.startswith("180 GB")
    assert g.interconnect.bandwidth_gb_s == 900
    # nvidia-smi on DGX B200 (public GitHub log): "1000W | 0MiB / 183359MiB".
    assert g.memory_gib == pytest.approx(183359 / 1024, abs=0.01)
    assert g.tdp_w == 1000
    # DGX B200 datasheet: 144 PF FP4 Tensor Core with sparsity over 8 GPUs => 9 PF dense per GPU;
    # FP4 weights must use it, not fall back to the BF16 rate.
    assert g.compute_tflops("nvfp4") == g.compute_tflops("mxfp4") == 144_000 / 8 / 2


def test_weight_only_int4_on_ampere_and_newer(gpus: dict[str, GPU]) -> None:
    # AWQ/GPTQ int4 Marlin kernels need sm80+ (Ampere and newer); MI300 runs them via ROCm kernels.
    for g in gpus.values():
        if g.vendor in ("NVIDIA", "AMD"):
            assert g.runs("int4"), g.name
    a100 = gpus["A100-SXM-80GB"]
    assert a100.compute_tflops("int4") == a100.tflops_dense["bf16"]


def test_server_power_derivations(servers: dict[str, Server]) -> None:
    # DGX H100 max 10.2 kW (supercluster.blog) - 8 x 700 W.
    assert servers["HGX-H100-8GPU"].base_power_w == 10_200 - 8 * 700
    # DGX B200 ~14.3 kW (DGX-B200 transcription) - 8 x 1,000 W.
    assert servers["HGX-B200-8GPU"].base_power_w == 14_300 - 8 * 1_000
    # DGX A100 max 6,500 W (pcnews.ru) - 8 x 400 W.
    assert servers["HGX-A100-8GPU"].base_power_w == 6_500 - 8 * 400
    # Dell XE9680: 19,200 W of PSUs in 3+3 redundancy => 9,600 W - 8 x 750 W (storagereview.com).
    assert servers["OAM-MI300X-8GPU"].base_power_w == 9_600 - 8 * 750


def test_server_price_derivations(servers: dict[str, Server], gpus: dict[str, GPU]) -> None:
    # Thinkmate HGX H100 quote $317k (Aug 2024) - 8 x catalog H100 estimate.
    assert servers["HGX-H100-8GPU"].base_price.usd == 317_000 - 8 * gpus["H100-SXM-80GB"].price.usd
    # DGX B200 $515k (vengineer blog) - 8 x catalog B200 estimate.
    assert servers["HGX-B200-8GPU"].base_price.usd == 515_000 - 8 * gpus["B200-SXM-180GB"].price.usd


def test_nvl72_systems_are_one_nvlink_domain_in_one_rack(
    gpus: dict[str, GPU], servers: dict[str, Server]
) -> None:
    # setloop.io / glennklockwood.com: 72 GPUs in one NVLink 5 domain, 1.8 TB/s per GPU, liquid cooled.
    for name, gpu_name, tdp, rack_kw in (("GB200-NVL72", "GB200-NVL72-186GB", 1200, 120.0),
                                         ("GB300-NVL72", "GB300-NVL72-288GB", 1400, 122.4)):
        s, g = servers[name], gpus[gpu_name]
        assert s.compatible_gpus == [gpu_name] and s.gpu_slots == 72
        assert (g.interconnect.domain_size, g.interconnect.bandwidth_gb_s, g.tdp_w) == (72, 900, tdp)
        # introl.com: GB200 NVL72 120 kW; epium.com (Morgan Stanley): 18 x 6.6 kW trays + 3.6 kW switches
        assert (s.base_power_w + 72 * g.tdp_w) / 1000 == pytest.approx(rack_kw)
        assert s.rack_units == 48 and "liquid" in s.description.lower()


def test_new_gpu_datasheet_figures(gpus: dict[str, GPU]) -> None:
    # glennklockwood.com/garden/processors/B300: HGX B300 BF16 2250 / FP8 4500 dense, 8 TB/s, 1400 W.
    b300 = gpus["B300-SXM-288GB"]
    assert (b300.tflops_dense["bf16"], b300.tflops_dense["fp8"], b300.tdp_w) == (2250, 4500, 1400)
    assert b300.memory_gib == pytest.approx(288e9 / 2**30, abs=0.05)
    # Tom's Hardware / ISSCC: MI355X 288 GB, 8 TB/s, 1,400 W, FP8 5 PF dense.
    mi = gpus["MI355X-288GB"]
    assert (mi.memory_bandwidth_gb_s, mi.tdp_w, mi.tflops_dense["fp8"]) == (8000, 1400, 5000)
    # gixtools.net: H200 NVL bridges four cards at 900 GB/s bidirectional; 600 W PCIe card.
    nvl = gpus["H200-NVL-141GB"]
    assert (nvl.interconnect.domain_size, nvl.interconnect.bandwidth_gb_s, nvl.tdp_w) == (4, 450, 600)
    # gpu.name (VideoCardz): RTX PRO 6000 Blackwell 96 GB GDDR7, 1,792 GB/s, 600 W; dense rates derived.
    rtx = gpus["RTX-PRO-6000-BSE-96GB"]
    assert (rtx.memory_bandwidth_gb_s, rtx.tdp_w, rtx.tflops_dense["bf16"]) == (1792, 600, 500)
    for name in ("RTX-PRO-6000-BSE-96GB", "MI355X-288GB", "H200-NVL-141GB"):
        assert gpus[name].confidence == "low", name
