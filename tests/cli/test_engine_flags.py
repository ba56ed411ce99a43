"""`--engine` / `--engine-version` on `procure perf`, `solve` and `size` (issue #12, "Engine profiles")."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from optimizer.engines import ASCEND_ONLY, PROFILES
from optimizer.engines.trtllm import TRTLLM_KV_FRACTION
from optimizer.loaders import load_catalog, resolve_gpu, resolve_model
from optimizer.sizing.architecture import parse_config
from optimizer.sizing.calibration import trtllm_kv_cache_tokens
from tests.conftest import assert_user_error, run_cli

PERF = ("perf", "Llama-3.1-8B", "--gpu", "H100-SXM-80GB", "--precision", "fp8",
        "--input-tokens", "1000", "--output-tokens", "200", "--format", "json")
SIZE = ("size", "Llama-3.1-8B", "--gpu", "H100-SXM-80GB", "--precision", "fp8", "--max-model-len", "1200",
        "--format", "json")


def _json(*args: str) -> dict[str, Any]:
    res = run_cli(*args)
    assert res.exit_code == 0, res.output
    data: dict[str, Any] = json.loads(res.stdout)
    return data


def _trtllm_tokens(kv_dtype: str, fraction: float) -> int:
    catalog = load_catalog()
    resolved = resolve_model("Llama-3.1-8B", catalog)
    arch = parse_config(resolved.config, resolved.name, file=str(resolved.path))
    return trtllm_kv_cache_tokens(arch, resolve_gpu("H100-SXM-80GB", catalog), tp=1, pp=1, precision="fp8",
                                  kv_dtype=kv_dtype, fraction=fraction)


# ---------------------------------------------------------------- perf


# Ascend-only engines run on an Ascend GPU in tests/engines/test_ascend_profiles.py
@pytest.mark.parametrize("profile", [p for p in PROFILES if p.engine not in ASCEND_ONLY],
                         ids=lambda p: f"{p.engine}-{p.family}")
def test_perf_runs_every_profile_with_its_own_defaults(profile: Any) -> None:
    for version in profile.versions:
        d = _json(*PERF, "--engine", profile.engine, "--engine-version", version)
        assert (d["engine"], d["engine_version"]) == (profile.engine, version)
        assert d["max_num_seqs"] == profile.defaults.max_num_seqs
        assert d["kv_dtype"] == profile.defaults.kv_dtype_for("fp8")
        assert d["kv_cache_tokens"] > 0 and d["output_tokens_per_s"] > 0


def test_perf_engine_version_defaults_to_the_engines_default_release() -> None:
    assert _json(*PERF, "--engine", "vllm") == _json(*PERF, "--engine", "vllm", "--engine-version", "0.6.3")
    assert _json(*PERF) == _json(*PERF, "--engine", "trtllm", "--engine-version", "1.0")


def test_perf_kv_rule_follows_the_version() -> None:
    v0 = _json(*PERF, "--engine", "vllm", "--engine-version", "0.6.3")
    v1 = _json(*PERF, "--engine", "vllm", "--engine-version", "0.10.0")
    sg = _json(*PERF, "--engine", "sglang")
    assert len({v0["kv_cache_tokens"], v1["kv_cache_tokens"], sg["kv_cache_tokens"]}) == 3
    # the same numbers as `procure size` under that engine's rules (one rule per profile)
    size_v1 = _json(*SIZE, "--kv-dtype", "auto", "--engine", "vllm", "--engine-version", "0.10.0")
    assert v1["kv_cache_tokens"] == size_v1["kv_cache_tokens"]


def test_perf_trtllm_keeps_its_rule_and_explicit_flags_override() -> None:
    d = _json(*PERF)
    assert d["kv_cache_tokens"] == _trtllm_tokens("fp8", TRTLLM_KV_FRACTION)
    o = _json(*PERF, "--kv-dtype", "auto", "--max-num-seqs", "64", "--gpu-memory-utilization", "0.8")
    assert (o["kv_dtype"], o["max_num_seqs"]) == ("auto", 64)
    assert o["kv_cache_tokens"] == _trtllm_tokens("auto", 0.8)
    sg = _json(*PERF, "--engine", "sglang", "--gpu-memory-utilization", "0.5")
    assert sg["kv_cache_tokens"] < _json(*PERF, "--engine", "sglang")["kv_cache_tokens"]


def test_perf_unknown_engine_or_version_exits_2() -> None:
    assert_user_error([*PERF, "--engine", "mindie"], "--engine")
    assert_user_error([*PERF, "--engine", "vllm", "--engine-version", "0.4.9"], "0.4.9", "vllm: 0.6.3")
    assert_user_error([*PERF, "--engine-version", "2.0"], "2.0", "trtllm: 1.0")


# ---------------------------------------------------------------- size


def test_size_trtllm_uses_the_perf_rule() -> None:
    d = _json(*SIZE, "--kv-dtype", "fp8", "--engine", "trtllm", "--gpu-memory-utilization",
              str(TRTLLM_KV_FRACTION))
    assert d["engine"] == "trtllm" and d["engine_version"] == "1.0" and d["fits"]
    assert d["kv_cache_tokens"] == _trtllm_tokens("fp8", TRTLLM_KV_FRACTION)
    assert d["kv_cache_tokens"] == _json(*PERF)["kv_cache_tokens"]
    # default fraction: serving.gpu_memory_utilization 0.9 (KvCacheConfig.free_gpu_memory_fraction's default)
    plain = _json(*SIZE, "--kv-dtype", "fp8", "--engine", "trtllm")
    assert plain["kv_cache_tokens"] == _trtllm_tokens("fp8", 0.9)
    assert "free_gpu_memory_fraction" in plain["memory_rules_source"]


def test_size_trtllm_table_and_too_small_gpu() -> None:
    res = run_cli(*SIZE[:-2], "--engine", "trtllm")
    assert res.exit_code == 0, res.output
    assert "trtllm 1.0" in res.output and "free after load" in res.output
    d = _json("size", "Llama-3.1-8B", "--gpu-memory-gib", "16", "--engine", "trtllm", "--format", "json")
    assert not d["fits"] and "TensorRT-LLM" in d["reason"]


# ---------------------------------------------------------------- solve


def _fingerprint(out: str) -> dict[str, Any]:
    plan = json.loads(out)
    return {"capex": plan["capex"], "servers": [(s["sku"], s["count"]) for s in plan["servers"]],
            "deployments": [(d["workload"], d["sku"], d["tp"], d["pp"], d["precision"], d["replicas"])
                            for d in plan["deployments"]]}


def test_solve_engine_override(write_scenario: Callable[[Any], Path], base_scenario: dict[str, Any]) -> None:
    path = str(write_scenario(base_scenario))
    base = ["solve", path, "--format", "json", "--no-workbook"]
    plain = run_cli(*base)
    assert plain.exit_code == 0, plain.output
    ref = _fingerprint(plain.stdout)
    for extra in (["--engine", "vllm"], ["--engine-version", "0.6.3"],
                  ["--engine", "vllm", "--engine-version", "0.6.3"]):
        again = run_cli(*base, *extra)
        assert again.exit_code == 0, again.output
        assert _fingerprint(again.stdout) == ref, extra
    for extra in (["--engine", "sglang"], ["--engine", "vllm", "--engine-version", "0.10.0"], ["--engine", "trtllm"]):
        res = run_cli(*base, *extra)
        assert res.exit_code in (0, 1), (extra, res.output)
        assert "Traceback" not in res.output


def test_solve_engine_override_keeps_a_restated_scenario_engine(
        write_scenario: Callable[[Any], Path], base_scenario: dict[str, Any]) -> None:
    base_scenario["serving"] = {"engine": "sglang"}
    path = str(write_scenario(base_scenario))
    base = ["solve", path, "--format", "json", "--no-workbook"]
    plain = run_cli(*base)
    assert plain.exit_code in (0, 1), plain.output
    again = run_cli(*base, "--engine", "sglang", "--engine-version", "0.4.9")
    assert again.exit_code == plain.exit_code, again.output
    if plain.exit_code == 0:
        assert _fingerprint(again.stdout) == _fingerprint(plain.stdout)


def test_solve_unknown_engine_version_exits_2(write_scenario: Callable[[Any], Path],
                                               base_scenario: dict[str, Any]) -> None:
    path = str(write_scenario(base_scenario))
    base = ["solve", path, "--format", "json", "--no-workbook"]
    assert_user_error([*base, "--engine-version", "1.0"], "1.0", "known engine versions", "vllm: 0.6.3",
                      "trtllm: 1.0")
    assert_user_error([*base, "--engine", "sglang", "--engine-version", "0.6.3"], "sglang: 0.4.9")
    assert_user_error([*base, "--engine", "mindie"], "--engine")


def test_unknown_scenario_engine_version_names_that_engines_releases(write_scenario: Any,
                                                                      base_scenario: dict[str, Any]) -> None:
    # review finding: the schema answered with every engine's versions mixed, unnamed and unsorted
    base_scenario["serving"] = {"engine": "vllm", "engine_version": "9.9"}
    text = assert_user_error(["validate", str(write_scenario(base_scenario))], "serving",
                             "vllm has no profile for version '9.9'")
    assert "vllm: 0.6.3, 0.6.4, 0.8.5, 0.9.2, 0.10.0, 0.11.0, 0.21.0" in text
