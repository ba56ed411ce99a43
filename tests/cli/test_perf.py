"""`procure perf`: the DESIGN.md JSON contract, SLO figures, tables and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from optimizer.cli import main

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str):
    return CliRunner().invoke(main, ["perf", *args])


BASE = ("Llama-3.1-8B", "--gpu", "H100-SXM-80GB", "--tp", "1", "--precision", "fp8",
        "--input-tokens", "1000", "--output-tokens", "200")


def test_json_contract() -> None:
    r = _run(*BASE, "--format", "json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    for key in ("output_tokens_per_s", "ttft_ms", "tpot_ms", "requests_per_s", "batch", "kv_cache_tokens",
                "limited_by", "source", "efficiency"):
        assert key in d
    assert d["source"] == "model" and d["efficiency"]["family"] == "Hopper"
    assert "slo" not in d
    # Offline throughput = batch x O / ((O - 1) x TPOT at that batch).
    expect = d["batch"] * 200 / (199 * d["offline_tpot_ms"] / 1e3)
    assert abs(d["output_tokens_per_s"] - expect) < 1e-3 * expect


def test_slo_figures_when_targets_given() -> None:
    r = _run(*BASE, "--ttft-ms", "500", "--tpot-ms", "20", "--format", "json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    slo = d["slo"]
    assert slo["met"] and slo["ttft_ms"] == 500 and slo["tpot_ms"] == 20
    assert d["tpot_ms"] <= 20 and d["ttft_ms"] <= 500
    assert slo["planned_requests_per_s"] == round(d["requests_per_s"] * 0.8, 4)
    r2 = _run(*BASE, "--tpot-ms", "0.5", "--format", "json")
    assert json.loads(r2.output)["slo"]["met"] is False


def test_table_and_config_path() -> None:
    r = _run(str(REPO / "catalogs" / "models" / "Llama-3.1-8B.json"), "--gpu", "H100", "--precision", "fp8",
             "--input-tokens", "128", "--output-tokens", "128", "--tpot-ms", "30")
    assert r.exit_code == 0, r.output
    assert "offline output tokens/s" in r.output and "capacity" in r.output


def test_bad_input_exit_2() -> None:
    r = _run("Llama-3.1-8B", "--gpu", "H900", "--input-tokens", "10", "--output-tokens", "10")
    assert r.exit_code == 2 and "H900" in r.output
    r = _run("Llama-3.3-70B", "--gpu", "L40S", "--precision", "bf16", "--input-tokens", "10",
             "--output-tokens", "10")
    assert r.exit_code == 2 and "does not fit" in r.output
    r = _run("Llama-3.1-8B", "--gpu", "A100-SXM-80GB", "--precision", "fp8", "--input-tokens", "10",
             "--output-tokens", "10")
    assert r.exit_code == 2 and "fp8" in r.output
    r = _run("Llama-3.1-8B", "--gpu", "H100", "--input-tokens", "10")
    assert r.exit_code == 2


# Published TensorRT-LLM v1.0 perf-overview rows (trtllm-bench, FP8 weights; shared/calibration/
# trtllm-perf-overview-v1.0.yaml, NVIDIA/TensorRT-LLM docs/source/performance/perf-overview.md @00f37686):
# (model, gpu, tp, input, output, published output tokens/s).
PUBLISHED = [
    ("Llama-3.1-8B", "H100-SXM-80GB", 1, 1000, 1000, 15220),
    ("Llama-3.1-8B", "H200-SXM-141GB", 1, 128, 4096, 18027),
    ("Llama-3.3-70B", "H100-SXM-80GB", 2, 500, 2000, 5222),
    ("Llama-3.3-70B", "H200-SXM-141GB", 1, 2048, 2048, 2003),
]


@pytest.mark.parametrize(("model", "gpu", "tp", "isl", "osl", "published"), PUBLISHED,
                         ids=[f"{m}-{g}-tp{t}-{i}-{o}" for m, g, t, i, o, _ in PUBLISHED])
def test_documented_command_lands_near_published_rows(model: str, gpu: str, tp: int, isl: int, osl: int,
                                                      published: float) -> None:
    """The README's command with only the published shape (no engine-tuning flags): the trtllm
    defaults (batch cap of trtllm-bench, fp8 KV with fp8 weights, its KV-memory rule) apply."""
    r = _run(model, "--gpu", gpu, "--tp", str(tp), "--precision", "fp8", "--input-tokens", str(isl),
             "--output-tokens", str(osl), "--format", "json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["engine"] == "trtllm" and d["kv_dtype"] == "fp8" and d["max_num_seqs"] == 4096
    assert abs(d["output_tokens_per_s"] / published - 1) < 0.20, d["output_tokens_per_s"]


def test_published_figures_match_the_shared_file() -> None:
    path = next((p for p in (REPO.parent / "shared" / "calibration" / "trtllm-perf-overview-v1.0.yaml",
                             Path("/work/shared/calibration/trtllm-perf-overview-v1.0.yaml")) if p.is_file()), None)
    if path is None:
        pytest.skip("shared calibration rows not present")
    rows = {(r["model"], r["gpu"].split()[0], r["tp"], r["input_len"], r["output_len"]): r["output_tokens_per_s"]
            for r in yaml.safe_load(path.read_text())["rows"]}
    for model, gpu, tp, isl, osl, published in PUBLISHED:
        assert rows[(model, gpu.split("-")[0], tp, isl, osl)] == published


def test_explicit_engine_flags_override_the_defaults() -> None:
    base = ("Llama-3.1-8B", "--gpu", "H100-SXM-80GB", "--precision", "fp8", "--input-tokens", "1000",
            "--output-tokens", "1000", "--format", "json")
    d = json.loads(_run(*base, "--max-num-seqs", "64", "--kv-dtype", "auto").output)
    assert d["max_num_seqs"] == 64 and d["kv_dtype"] == "auto" and d["batch"] <= 64
    default = json.loads(_run(*base).output)
    assert d["output_tokens_per_s"] < default["output_tokens_per_s"]
    v = json.loads(_run(*base, "--engine", "vllm").output)
    assert v["engine"] == "vllm" and v["max_num_seqs"] == 256 and v["kv_dtype"] == "auto"
    # bf16 weights keep a 16-bit KV cache under trtllm too (only ModelOpt FP8 checkpoints quantise it)
    b = json.loads(_run("Llama-3.1-8B", "--gpu", "H100", "--input-tokens", "100", "--output-tokens", "100",
                        "--format", "json").output)
    assert b["kv_dtype"] == "auto"
