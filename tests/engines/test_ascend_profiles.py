"""vLLM-Ascend and MindIE profiles (issue #12, "vLLM-Ascend and MindIE on Ascend"): hand-computed
KV capacity of Qwen3-8B bf16 on one Ascend-910B-64GB under each rule, a public vLLM-Ascend log, and
the refusal of both engines on a non-Ascend GPU (exit 2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from optimizer.engines import DEFAULT_VERSION, KNOWN, check_engine_gpu, mindie, profile_for, vllm_ascend
from optimizer.errors import UsageError
from optimizer.loaders import load_catalog, resolve_gpu, resolve_model
from optimizer.schema.engine import EngineSettings
from optimizer.sizing.architecture import ModelArch, param_counts, parse_config
from optimizer.sizing.calibration import SHIPPED
from optimizer.sizing.memory import activation_peak_bytes, serving_memory
from tests.conftest import assert_user_error, run_cli

GIB = 1 << 30
#: Qwen3-8B: 36 layers x 8 KV heads x 128 x (K + V) x 2 bytes (bf16).
QWEN3_8B_KV_BYTES_PER_TOKEN = 36 * 8 * 128 * 2 * 2
#: What the NPU runtime reports for a 64 GB 910B (vllm-ascend#3090, #3843, #4037, #4594).
NPU_TOTAL = 65_452_113_920


def _arch(name: str) -> ModelArch:
    resolved = resolve_model(name, load_catalog())
    return parse_config(resolved.config, resolved.name, file=str(resolved.path))


def _blocks_of_128(free: int, per_token: int) -> int:
    return free // (128 * per_token) * 128


def test_both_engines_are_registered_with_their_releases_and_calibration() -> None:
    assert KNOWN["vllm-ascend"] == ("0.10.2", "0.11.0") and DEFAULT_VERSION["vllm-ascend"] == "0.11.0"
    assert KNOWN["mindie"] == ("2.0.RC1",)
    assert profile_for("vllm-ascend").efficiency_engine == "vllm"  # the vLLM-Ascend rows are fitted there
    assert profile_for("mindie").efficiency_engine == "mindie"
    assert SHIPPED["mindie"] == "mindie-published.yaml" and SHIPPED["vllm-ascend"] == SHIPPED["vllm"]
    # engine defaults the schema fills in: block 128 (both), NPU_MEMORY_FRACTION 0.8 (MindIE)
    va, mi = EngineSettings(engine="vllm-ascend"), EngineSettings(engine="mindie")
    assert (va.engine_version, va.block_size_tokens, va.gpu_memory_utilization) == ("0.11.0", 128, 0.9)
    assert (mi.engine_version, mi.block_size_tokens, mi.gpu_memory_utilization) == ("2.0.RC1", 128, 0.8)
    assert EngineSettings(engine="mindie", gpu_memory_utilization=0.96).gpu_memory_utilization == 0.96


def test_npu_total_is_the_runtime_figure_of_a_64gb_part() -> None:
    gpu = resolve_gpu("Ascend-910B-64GB", load_catalog())
    assert vllm_ascend.npu_total_bytes(gpu.memory_gib) == NPU_TOTAL


def test_qwen3_8b_on_910b_under_vllm_ascend_by_hand() -> None:
    """0.9 x 65,452,113,920 - W - A(2048) - 1,195,763,802 non-torch, in 128-token blocks."""
    arch = _arch("Qwen3-8B")
    weights = 2 * param_counts(arch).total  # bf16
    assert weights == 16_381_470_720
    act = activation_peak_bytes(arch, 2048, 1, 1)  # vllm serve default under 70 GiB
    free = int(NPU_TOTAL * 0.9) - weights - act - 1_195_763_802
    expected = _blocks_of_128(free, QWEN3_8B_KV_BYTES_PER_TOKEN)
    assert expected == 278_912
    mem = serving_memory(arch, "bf16", gpu_memory_gib=64.0, settings=EngineSettings(engine="vllm-ascend"),
                         max_model_len=32_768)
    assert mem.kv_cache_tokens == expected and mem.block_size_tokens == 128 and mem.fits
    assert mem.kv_bytes_per_token_per_gpu == QWEN3_8B_KV_BYTES_PER_TOKEN
    assert mem.cuda_graph_bytes > 0  # ACL graphs, outside the budget


def test_qwen3_8b_on_910b_under_mindie_by_hand() -> None:
    """0.8 (NPU_MEMORY_FRACTION) x 65,452,113,920 - W - A(maxPrefillTokens 8192) - non-torch."""
    arch = _arch("Qwen3-8B")
    weights = 2 * param_counts(arch).total
    act = activation_peak_bytes(arch, 8192, 1, 1)
    free = int(NPU_TOTAL * 0.8) - weights - act - 1_195_763_802
    expected = _blocks_of_128(free, QWEN3_8B_KV_BYTES_PER_TOKEN)
    assert expected == 230_400
    mem = serving_memory(arch, "bf16", gpu_memory_gib=64.0, settings=EngineSettings(engine="mindie"),
                         max_model_len=32_768)
    assert mem.kv_cache_tokens == expected and mem.cuda_graph_bytes == 0
    assert mindie.DEFAULTS.max_num_seqs == 200  # maxBatchSize of the shipped config.json


def test_vllm_ascend_4594_qwen3_32b_tp8_log_within_5pct() -> None:
    """vllm-project/vllm-ascend#4594 (vLLM 0.11.2, vllm-ascend main fb5538625, 2025-11-29):
    Qwen3-32B bf16, 8 x 910B 64 GB, TP 8, --gpu-memory-utilization 0.9, --block-size 128,
    max_num_batched_tokens 2048 (logged), "Available memory: 49075702272, total memory: 65452113920",
    "GPU KV cache size: 1,497,600 tokens". procure: 1,495,168 (-0.16 %)."""
    mem = serving_memory(_arch("Qwen3-32B"), "bf16", gpu_memory_gib=64.0, tp=8,
                         settings=EngineSettings(engine="vllm-ascend"), max_model_len=6656)
    assert mem.kv_cache_tokens == pytest.approx(1_497_600, rel=0.05)
    assert mem.kv_cache_tokens == 1_495_168
    assert mem.comm_reserve_bytes == 2 * 200 * (1 << 20)  # HCCL estimate


def test_the_4037_tp1_log_is_the_non_torch_constant() -> None:
    """vllm-ascend#4037 (0.11.0rc1): Qwen3-1.7B TP 1, utilisation 0.8, 3.2153 GiB weights,
    "Available memory: 47612861952" -- the source of NPU_NON_TORCH_TP1_BYTES (less 0.09375 GiB,
    procure's activation of Qwen3-1.7B at 2048 tokens). A derivation, not an independent check."""
    residual = int(0.8 * NPU_TOTAL) - 47_612_861_952 - int(3.2153 * GIB) - int(0.09375 * GIB)
    assert residual == vllm_ascend.NPU_NON_TORCH_TP1_BYTES


def test_check_engine_gpu_refuses_non_ascend_gpus() -> None:
    catalog = load_catalog()
    h100, npu = resolve_gpu("H100-SXM-80GB", catalog), resolve_gpu("Ascend-910B-64GB", catalog)
    for engine in ("vllm-ascend", "mindie"):
        check_engine_gpu(engine, npu)
        check_engine_gpu(engine, None)
        with pytest.raises(UsageError, match="Ascend NPUs only"):
            check_engine_gpu(engine, h100)
    check_engine_gpu("vllm", h100)


SIZE = ("size", "Qwen3-8B", "--max-model-len", "32768", "--format", "json")


@pytest.mark.parametrize("engine", ["vllm-ascend", "mindie"])
def test_size_cli_on_910b_prints_the_rule_and_its_release(engine: str) -> None:
    res = run_cli(*SIZE, "--gpu", "Ascend-910B-64GB", "--engine", engine)
    assert res.exit_code == 0, res.output
    d: dict[str, Any] = json.loads(res.stdout)
    assert d["engine"] == engine and d["engine_version"] == DEFAULT_VERSION[engine]
    assert d["memory_rules_source"] == profile_for(engine).memory_rules_source
    assert d["kv_cache_tokens"] == {"vllm-ascend": 278_912, "mindie": 230_400}[engine]
    table = run_cli(*SIZE[:-2], "--gpu", "Ascend-910B-64GB", "--engine", engine)
    assert table.exit_code == 0 and "rules:" in table.output


@pytest.mark.parametrize("engine", ["vllm-ascend", "mindie"])
def test_size_and_perf_cli_refuse_a_non_ascend_gpu(engine: str) -> None:
    assert_user_error([*SIZE, "--gpu", "H100-SXM-80GB", "--engine", engine], "Ascend NPUs only", "--engine")
    assert_user_error(["perf", "Qwen3-8B", "--gpu", "H100-SXM-80GB", "--engine", engine, "--input-tokens", "1000",
                       "--output-tokens", "200", "--format", "json"],
                      "Ascend NPUs only")


def test_solve_with_an_ascend_engine_needs_ascend_gpus(write_scenario: Callable[[Any], Path],
                                                       base_scenario: dict[str, Any]) -> None:
    path = str(write_scenario(base_scenario))
    assert_user_error(["solve", path, "--engine", "vllm-ascend", "--format", "json", "--no-workbook"],
                      "Ascend NPUs only", "constraints.gpus")


def test_compare_with_an_ascend_engine_needs_ascend_gpus(write_scenario: Callable[[Any], Path],
                                                         base_scenario: dict[str, Any]) -> None:
    """The check sits in candidate building, so what-ifs meet it as solve does."""
    base_scenario["serving"] = {"engine": "mindie"}
    path = str(write_scenario(base_scenario))
    assert_user_error(["compare", path, "--budget", "100000", "--format", "json", "--no-workbook"],
                      "Ascend NPUs only", "constraints.gpus")
