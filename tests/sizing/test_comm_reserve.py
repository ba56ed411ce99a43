"""Communication reserve per rank (memory.comm_reserve_terms): hand-computed at TP 1/2/4/8 per
engine, the logs it is checked against, and its effect on Llama-3.1-405B fp8 at TP 8 on H100."""

from __future__ import annotations

import pytest

from optimizer.loaders import load_catalog, resolve_model
from optimizer.schema.engine import EngineSettings
from optimizer.sizing.architecture import parse_config
from optimizer.sizing.memory import (
    NON_TORCH_BYTES_TP1,
    comm_reserve_bytes,
    comm_reserve_terms,
    serving_memory,
)

MIB = 1 << 20
GIB = 1 << 30
H100 = 79.65  # catalogs/gpus.yaml H100-SXM-80GB
SMALL = 23.58  # RTX 3090-class PCIe card

# Hand-computed terms (bytes):
# NCCL, NVLink GPUs, vLLM/SGLang: int(2.01 GiB) - SGLang custom all-reduce (3 x 8 MiB)
NCCL_TP8 = int(2.01 * GIB) - 24 * MIB                      # 2,133,055,242
NCCL_TP2 = int(NCCL_TP8 * 358_612_992 / 411_041_792)        # x 342/392 MiB (AIConfigurator shape)
CUSTOM_AR = 8 * MIB + 8 * MIB + 8 * MIB                    # meta + buffer + rank_data
AIC = {2: 358_612_992, 4: 411_041_792, 8: 411_041_792}
TRT_WS = {2: 4 * 16_000_000 * 2 + 256 * 2, 4: 4 * 8_000_000 * 4 + 256 * 4, 8: 4 * 8_000_000 * 8 + 256 * 8}


def test_nothing_at_tp1() -> None:
    for engine, version in (("vllm", "0.6.3"), ("vllm", "0.11.0"), ("sglang", "0.4.9"), ("trtllm", "1.0")):
        assert comm_reserve_terms(engine, 1, gpu_memory_gib=H100, engine_version=version) == ()
        assert comm_reserve_bytes(engine, 1, gpu_memory_gib=H100, engine_version=version) == 0


@pytest.mark.parametrize(("tp", "expected"), [
    (2, NCCL_TP2 + CUSTOM_AR),
    (4, NCCL_TP8 + CUSTOM_AR),
    (8, NCCL_TP8 + CUSTOM_AR),
])
def test_vllm_before_symm_mem_and_sglang(tp: int, expected: int) -> None:
    for engine, version in (("vllm", "0.6.3"), ("vllm", "0.10.0"), ("sglang", "0.4.9")):
        assert comm_reserve_bytes(engine, tp, gpu_memory_gib=H100, engine_version=version) == expected


def test_sglang_tp8_is_the_logged_distributed_init() -> None:
    """sgl-project/sglang#11716: 'Init torch distributed ends. mem usage=2.01 GB' (H200, TP 8)."""
    assert comm_reserve_bytes("sglang", 8, gpu_memory_gib=139.8) == int(2.01 * GIB)


def test_vllm_tp2_against_the_10511_log() -> None:
    """vllm-project/vllm#10511 (H100 79.22 GiB, Llama-3-8B): non_torch_memory 1.79 GiB at TP 1,
    3.58 GiB at TP 2. The reserve, 1.757 GiB, is the 1.79 GiB rise within 2 %."""
    reserve = comm_reserve_bytes("vllm", 2, gpu_memory_gib=79.22, engine_version="0.6.3")
    assert reserve / GIB == pytest.approx(1.757, abs=0.001)
    assert reserve / GIB == pytest.approx(3.58 - 1.79, rel=0.02)


@pytest.mark.parametrize(("tp", "ar_cap", "symm"), [(2, 8 * MIB, 64 * MIB), (4, 8 * MIB, 32 * MIB),
                                                    (8, MIB // 4, 64 * MIB)])
def test_vllm_symm_mem_from_0_11(tp: int, ar_cap: int, symm: int) -> None:
    nccl = NCCL_TP2 if tp == 2 else NCCL_TP8
    expected = nccl + 2 * ar_cap + 8 * MIB + symm
    assert comm_reserve_bytes("vllm", tp, gpu_memory_gib=H100, engine_version="0.11.0") == expected
    assert comm_reserve_bytes("vllm", tp, gpu_memory_gib=H100, engine_version="0.21.0") == expected


@pytest.mark.parametrize("tp", [2, 4, 8])
def test_trtllm(tp: int) -> None:
    assert comm_reserve_bytes("trtllm", tp, gpu_memory_gib=H100, engine_version="1.0") == AIC[tp] + TRT_WS[tp]
    # over PCIe no IPC workspace: NCCL only
    assert comm_reserve_bytes("trtllm", tp, gpu_memory_gib=SMALL, engine_version="1.0") == AIC[tp]
    assert comm_reserve_bytes("trtllm", 8, gpu_memory_gib=H100) / MIB == pytest.approx(636.1, abs=0.1)


def test_pcie_gpus_keep_the_v0_nccl_figure() -> None:
    nccl = int(0.20 * GIB)
    assert comm_reserve_bytes("vllm", 4, gpu_memory_gib=SMALL, engine_version="0.6.3") == nccl
    assert comm_reserve_bytes("vllm", 2, gpu_memory_gib=SMALL, engine_version="0.6.3") == nccl + CUSTOM_AR
    assert comm_reserve_bytes("sglang", 8, gpu_memory_gib=SMALL) == nccl


def test_reserve_grows_with_tp_on_nvlink() -> None:
    for engine, version in (("vllm", "0.6.3"), ("vllm", "0.11.0"), ("sglang", "0.4.9"), ("trtllm", "1.0")):
        r = [comm_reserve_bytes(engine, tp, gpu_memory_gib=H100, engine_version=version) for tp in (1, 2, 4, 8)]
        assert r[0] == 0 < r[1] <= r[2] <= r[3], (engine, version, r)


# Llama-3.1-405B fp8 on 8 x H100-SXM-80GB (TP 8), max_model_len 8192: KV tokens before (flat
# 0.20 GiB NCCL for V0 / TensorRT-LLM, flat 2.01 GiB dist init for V1 / SGLang) and after (V1 "after"
# also carries the sampler's full-vocabulary sort peak, engines/vllm_v1.py "Sampler peak").
BEFORE_AFTER = {
    ("vllm", "0.6.3", "auto"): (371_760, 341_632),
    ("vllm", "0.10.0", "auto"): (304_992, 277_152),
    ("vllm", "0.11.0", "auto"): (304_992, 276_352),
    ("sglang", "0.4.9", "auto"): (247_344, 247_344),
    ("trtllm", "1.0", "fp8"): (907_804, 895_185),
}


@pytest.mark.parametrize(("engine", "version", "kv"), list(BEFORE_AFTER))
def test_405b_fp8_tp8_h100(engine: str, version: str, kv: str) -> None:
    catalog = load_catalog()
    arch = parse_config(resolve_model("Llama-3.1-405B", catalog).config, "Llama-3.1-405B")
    m = serving_memory(arch, "fp8", gpu_memory_gib=H100, tp=8, max_model_len=8192,
                       settings=EngineSettings(engine=engine, engine_version=version, kv_dtype=kv))
    before, after = BEFORE_AFTER[(engine, version, kv)]
    assert m.kv_cache_tokens == after
    assert m.kv_cache_tokens <= before
    reserve = comm_reserve_bytes(engine, 8, gpu_memory_gib=H100, engine_version=version)
    assert m.comm_reserve_bytes == reserve
    assert m.non_torch_bytes == NON_TORCH_BYTES_TP1 + reserve
    line = next(ln for ln in m.breakdown if ln.name == "communication reserve")
    assert "NCCL" in line.note and ("sglang#11716" in line.note or "AIConfigurator" in line.note)


def test_explicit_non_torch_replaces_the_reserve() -> None:
    catalog = load_catalog()
    arch = parse_config(resolve_model("Llama-3.1-8B", catalog).config, "Llama-3.1-8B")
    m = serving_memory(arch, "bf16", gpu_memory_gib=H100, tp=2, max_model_len=8192, non_torch=GIB)
    assert m.non_torch_bytes == GIB and m.comm_reserve_bytes == 0
