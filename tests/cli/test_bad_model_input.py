"""Bad model and sizing input: exit 2 with one clear message, never a traceback or a wrong number."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from optimizer.cli.common import FiniteFloat
from optimizer.errors import CatalogError
from optimizer.sizing.architecture import parse_config
from tests.conftest import BASE_SCENARIO, REPO, assert_user_error, run_cli


@click.command()
@click.option("--x", type=FiniteFloat(0, 100, min_open=True))
def _probe(x: float) -> None:
    click.echo(repr(x))


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "0", "-1", "100.5", "abc"])
def test_finite_float_rejects(value: str) -> None:
    res = CliRunner().invoke(_probe, ["--x", value])
    assert res.exit_code == 2, res.output
    assert "'--x'" in res.output and "finite number > 0 and <= 100" in res.output


@pytest.mark.parametrize(("value", "expected"), [("5", 5.0), ("100", 100.0), ("1e-3", 0.001)])
def test_finite_float_accepts(value: str, expected: float) -> None:
    res = CliRunner().invoke(_probe, ["--x", value])
    assert res.exit_code == 0, res.output
    assert float(res.output) == expected


# --- config.json validation (procure size on a config path; same parser everywhere) ----------------

LLAMA = json.loads((REPO / "catalogs" / "models" / "Llama-3.1-8B.json").read_text())
QWEN3 = json.loads((REPO / "catalogs" / "models" / "Qwen3-8B.json").read_text())


def _write(tmp_path: Path, cfg: dict[str, Any] | str, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    return path


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(base)
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    return cfg


def test_config_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b'{"model_type": "llama", "name": "\xff\xfe"}')
    assert_user_error(["size", str(path)], str(path), "not UTF-8")


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("num_hidden_layers", 0, "must be >= 1"),
    ("num_hidden_layers", -4, "must be >= 1"),
    ("num_hidden_layers", 10**12, "sane limit of 1,000"),
    ("num_hidden_layers", True, "must be an integer, got True"),
    ("num_hidden_layers", 32.5, "must be an integer"),
    ("num_hidden_layers", "32", "must be an integer"),
    ("hidden_size", 10**12, "sane limit of 1,000,000"),
    ("vocab_size", 0, "must be >= 1"),
    ("vocab_size", 10**9, "sane limit of 10,000,000"),
    ("intermediate_size", -5, "must be >= 1"),
    ("max_position_embeddings", 0, "must be >= 1"),
    ("num_key_value_heads", False, "must be an integer, got False"),
    ("num_key_value_heads", 0, "must be >= 1"),
])
def test_bad_config_sizes(tmp_path: Path, key: str, value: Any, needle: str) -> None:
    path = _write(tmp_path, _with(LLAMA, **{key: value}))
    assert_user_error(["size", str(path)], str(path), key, needle)


def test_too_many_experts(tmp_path: Path) -> None:
    cfg = json.loads((REPO / "catalogs" / "models" / "Mixtral-8x7B.json").read_text())
    path = _write(tmp_path, _with(cfg, num_local_experts=10**6))
    assert_user_error(["size", str(path)], "num_local_experts", "sane limit of 100,000")
    path = _write(tmp_path, _with(cfg, num_experts_per_tok=9))
    assert_user_error(["size", str(path)], "num_experts_per_tok", "sane limit of 8")


def test_moe_zero_step_is_an_error_not_a_crash(tmp_path: Path) -> None:
    cfg = json.loads((REPO / "catalogs" / "models" / "Qwen2-57B-A14B.json").read_text())
    path = _write(tmp_path, _with(cfg, decoder_sparse_step=0))
    assert_user_error(["size", str(path)], "decoder_sparse_step", "must be >= 1")


def test_heads_must_divide_hidden_without_head_dim(tmp_path: Path) -> None:
    path = _write(tmp_path, _with(LLAMA, num_attention_heads=30, num_key_value_heads=10))
    assert_user_error(["size", str(path)], "num_attention_heads", "does not divide hidden_size 4096",
                      "head_dim")


def test_explicit_head_dim_need_not_match_hidden() -> None:
    # Qwen3-8B: 32 heads x head_dim 128 = 4096 = hidden; make hidden 5000 (heads x d != hidden is legal).
    arch = parse_config(_with(QWEN3, hidden_size=5000), "q")
    assert arch.head_dim == 128 and arch.hidden_size == 5000


def test_kv_heads_must_divide_heads(tmp_path: Path) -> None:
    path = _write(tmp_path, _with(LLAMA, num_key_value_heads=5))
    assert_user_error(["size", str(path)], "num_key_value_heads", "5 KV heads do not divide the 32")


@pytest.mark.parametrize("text", [
    '"rms_norm_eps": NaN', '"rope_theta": Infinity', '"hidden_size": 1e400', '"hidden_size": NaN'])
def test_non_finite_numbers(tmp_path: Path, text: str) -> None:
    body = json.dumps(_with(LLAMA, rms_norm_eps=None, rope_theta=None, hidden_size=None))
    path = _write(tmp_path, body[:-1] + (", " if body != "{}" else "") + text
                  + ('' if "hidden_size" in text else ', "hidden_size": 4096') + "}")
    key = text.split('"')[1]
    out = assert_user_error(["size", str(path)], str(path), key)
    assert "non-finite" in out or "must be an integer" in out


def test_parse_config_names_the_file() -> None:
    with pytest.raises(CatalogError) as err:
        parse_config(_with(LLAMA, num_hidden_layers=0), "Llama", file="/x/config.json")
    assert err.value.file == "/x/config.json" and err.value.field == "num_hidden_layers"


# --- max_context beyond the model's positions ---------------------------------------------------------

def _scenario(tmp_path: Path, **workload: Any) -> Path:
    data = copy.deepcopy(BASE_SCENARIO)
    data["workloads"][0].update(workload)
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_scenario_context_beyond_positions(tmp_path: Path) -> None:
    path = _scenario(tmp_path, model="meta-llama/Llama-2-7b-hf", max_context=8192)
    assert_user_error(["validate", str(path)], "workloads[0].max_context", "8,192", "4,096",
                      "max_position_embeddings")


def test_scenario_context_reached_by_rope_scaling(tmp_path: Path) -> None:
    llama2 = json.loads((REPO / "catalogs" / "models" / "Llama-2-7B.json").read_text())
    yarn = _with(llama2, rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096})
    _write(tmp_path, yarn, "yarn.json")
    path = _scenario(tmp_path, model="yarn.json", max_context=16384)
    assert run_cli("validate", str(path)).exit_code == 0
    path = _scenario(tmp_path, model="yarn.json", max_context=20000)
    assert_user_error(["validate", str(path)], "workloads[0].max_context", "20,000", "16,384", "rope_scaling")


def test_llama3_rope_type_does_not_multiply_positions(tmp_path: Path) -> None:
    # Llama-3.1's rope_scaling (rope_type llama3) already gives the extended 131,072 positions.
    path = _scenario(tmp_path, model="meta-llama/Llama-3.1-8B-Instruct", max_context=140_000)
    assert_user_error(["validate", str(path)], "workloads[0].max_context", "131,072")


def test_perf_and_size_context_options() -> None:
    assert_user_error(["perf", "Llama-2-7B", "--gpu", "H100", "--input-tokens", "4000", "--output-tokens",
                       "500"], "--input-tokens + --output-tokens", "4,500", "4,096")
    assert_user_error(["perf", "Llama-2-7B", "--gpu", "H100", "--input-tokens", "100", "--output-tokens",
                       "100", "--max-model-len", "8192"], "--max-model-len", "8,192", "4,096")
    assert_user_error(["perf", "Llama-2-7B", "--gpu", "H100", "--input-tokens", "100", "--output-tokens",
                       "100", "--max-model-len", "150"], "--max-model-len", "shorter than one request")
    assert_user_error(["size", "Llama-2-7B", "--gpu", "H100", "--max-model-len", "5000"], "--max-model-len",
                      "4,096")


# --- parallel layouts and precisions ---------------------------------------------------------------------

PERF = ["perf", "Llama-3.1-8B", "--gpu", "H100-SXM-80GB", "--input-tokens", "100", "--output-tokens", "100"]


@pytest.mark.parametrize(("args", "needles"), [
    (["--tp", "3"], ["--tp", "does not divide", "32 attention heads", "1, 2, 4, 8"]),
    (["--tp", "16"], ["--tp", "domain of 8", "1, 2, 4, 8"]),
    (["--pp", "64"], ["--pp", "32 layers", "1..32"]),
])
def test_perf_layout(args: list[str], needles: list[str]) -> None:
    assert_user_error([*PERF, *args], *needles)


def test_perf_precision_the_gpu_cannot_run() -> None:
    assert_user_error(["perf", "Llama-3.1-8B", "--gpu", "A100-SXM-80GB", "--precision", "fp8",
                       "--input-tokens", "10", "--output-tokens", "10"], "--precision", "cannot run fp8",
                      "bf16", "int4")


def test_kv_heads_replicated_or_split() -> None:
    # Qwen2-0.5B: 14 heads, 2 KV heads. TP 2 splits them; TP 7 divides the heads but cannot shard 2 KV heads.
    assert run_cli("size", "Qwen2-0.5B", "--tp", "2", "--format", "json").exit_code == 0
    assert_user_error(["size", "Qwen2-0.5B", "--tp", "7"], "--tp", "2 KV heads", "1, 2, 14")


def test_size_layout() -> None:
    assert_user_error(["size", "Llama-3.1-8B", "--tp", "5"], "--tp", "does not divide")
    assert_user_error(["size", "Llama-3.1-8B", "--pp", "33"], "--pp", "32 layers")
    assert_user_error(["size", "Llama-3.1-8B", "--gpu", "A100-SXM-80GB", "--precision", "fp8"], "--precision")


def test_calibrate_row_layout(tmp_path: Path) -> None:
    m = tmp_path / "m.csv"
    m.write_text("model,gpu,tp,precision,input_tokens,output_tokens,output_tokens_per_s\n"
                 "Llama-3.1-8B,H100 SXM,3,fp8,1000,1000,5000\n")
    assert_user_error(["calibrate", str(m), "-o", str(tmp_path / "c.yaml")], "m.csv:row 2", "tp",
                      "does not divide", "1, 2, 4, 8")


# --- numbers on the command line and in calibration input ------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1e400"])
def test_size_gpu_memory_gib_finite(value: str) -> None:
    assert_user_error(["size", "Llama-3.1-8B", "--gpu-memory-gib", value], "--gpu-memory-gib")


@pytest.mark.parametrize(("option", "value"), [
    ("--ttft-ms", "nan"), ("--tpot-ms", "inf"), ("--utilization", "nan"), ("--utilization", "1.5"),
    ("--gpu-memory-utilization", "inf"), ("--tpot-ms", "-3")])
def test_perf_float_options_finite(option: str, value: str) -> None:
    assert_user_error([*PERF, option, value], option)


CSV_HEAD = "model,gpu,tp,precision,input_tokens,output_tokens,output_tokens_per_s,ttft_ms\n"


@pytest.mark.parametrize(("row", "column"), [
    ("Llama-3.1-8B,H100 SXM,1,fp8,1000,1000,nan,", "output_tokens_per_s"),
    ("Llama-3.1-8B,H100 SXM,1,fp8,1000,1000,inf,", "output_tokens_per_s"),
    ("Llama-3.1-8B,H100 SXM,1,fp8,1000,1000,-5,", "output_tokens_per_s"),
    ("Llama-3.1-8B,H100 SXM,1,fp8,1000,1000,5000,inf", "ttft_ms"),
    ("Llama-3.1-8B,H100 SXM,1.5,fp8,1000,1000,5000,", "tp"),
    ("Llama-3.1-8B,H100 SXM,1,fp8,-1000,1000,5000,", "input_tokens"),
])
def test_calibration_csv_values(tmp_path: Path, row: str, column: str) -> None:
    m = tmp_path / "m.csv"
    m.write_text(CSV_HEAD + "Llama-3.1-8B,H100 SXM,1,fp8,1000,1000,5000,\n" + row + "\n")
    assert_user_error(["calibrate", str(m), "-o", str(tmp_path / "c.yaml")], "m.csv:row 3", column)


def test_calibration_yaml_bool_is_not_a_number(tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(yaml.safe_dump([{"model": "Llama-3.1-8B", "gpu": "H100", "tp": True, "precision": "fp8",
                                  "input_tokens": 1000, "output_tokens": 1000, "output_tokens_per_s": 5000}]))
    assert_user_error(["calibrate", str(m), "-o", str(tmp_path / "c.yaml")], "rows[0]", "tp", "True")


def test_calibration_vllm_bench_json(tmp_path: Path) -> None:
    base = {"model_id": "Qwen/Qwen2-7B-Instruct", "request_rate": "inf", "max_concurrency": None,
            "completed": 200, "total_input_tokens": 200_000, "total_output_tokens": 40_000,
            "output_throughput": 1800.0}
    opts = ["--gpu", "H100", "--tp", "1", "--precision", "bf16", "-o", str(tmp_path / "c.yaml")]
    js = tmp_path / "bench.json"
    js.write_text(json.dumps({**base, "output_throughput": float("nan")}))  # json.dumps writes NaN
    assert_user_error(["calibrate", str(js), *opts], "bench.json", "output_tokens_per_s")
    js.write_text(json.dumps({k: v for k, v in base.items() if k != "total_input_tokens"}))
    assert_user_error(["calibrate", str(js), *opts], "bench.json", "total_input_tokens")


def test_calibration_measurements_not_utf8(tmp_path: Path) -> None:
    m = tmp_path / "m.csv"
    m.write_bytes(b"model,gpu\n\xff\xfe\n")
    assert_user_error(["calibrate", str(m)], "m.csv", "not UTF-8")


# --- the scenario's calibration: ------------------------------------------------------------------------

def test_scenario_calibration_is_not_a_calibration_file(tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(BASE_SCENARIO))
    data = {**copy.deepcopy(BASE_SCENARIO), "calibration": "other.yaml"}
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    assert_user_error(["validate", str(path)], "calibration", "other.yaml", "not a calibration file",
                      "scenario")
    assert_user_error(["solve", str(path), "--no-workbook"], "calibration", "not a calibration file")


def test_scenario_calibration_missing(tmp_path: Path) -> None:
    data = {**copy.deepcopy(BASE_SCENARIO), "calibration": "nope.yaml"}
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    assert_user_error(["validate", str(path)], "scenario.yaml: calibration", "nope.yaml", "not found")


def test_perf_calibration_option_not_a_calibration_file(tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(BASE_SCENARIO))
    assert_user_error([*PERF, "--calibration", str(other)], "other.yaml", "not a calibration file")


def test_calibration_file_non_finite_factor(tmp_path: Path) -> None:
    cal = tmp_path / "cal.yaml"
    cal.write_text("engine: trtllm\nfamilies:\n  Hopper: {compute: 0.5, memory_bw: 0.8, step_overhead_ms: .nan}\n")
    assert_user_error([*PERF, "--calibration", str(cal)], "families.Hopper.step_overhead_ms", "finite")


def test_bad_rope_scaling_factor(tmp_path: Path) -> None:
    llama2 = json.loads((REPO / "catalogs" / "models" / "Llama-2-7B.json").read_text())
    path = _write(tmp_path, _with(llama2, rope_scaling={"type": "linear", "factor": "four"}))
    assert_user_error(["size", str(path)], "rope_scaling.factor", "'four'")
    path = _write(tmp_path, _with(llama2, rope_scaling={"type": "linear", "factor": 2.0}))
    d = json.loads(run_cli("size", str(path), "--format", "json").output)
    assert d["max_model_len"] == 4096  # the default stays the positions; 8192 is now allowed
    assert run_cli("size", str(path), "--max-model-len", "8192", "--format", "json").exit_code == 0


def test_finetune_seq_len_beyond_positions() -> None:
    assert_user_error(["size", "Llama-2-7B", "--finetune", "lora", "--seq-len", "8192"], "--seq-len", "4,096")


def test_calibration_file_non_finite_measured_point(tmp_path: Path) -> None:
    cal = tmp_path / "cal.yaml"
    cal.write_text(yaml.safe_dump({"engine": "vllm", "families": {}, "measured": [
        {"model": "Llama-3.1-8B", "gpu": "H100-SXM-80GB", "tp": 1, "precision": "fp8", "input_tokens": 100,
         "output_tokens": 100, "output_tokens_per_s": float("nan")}]}))
    assert_user_error([*PERF, "--calibration", str(cal)], "measured[0]", "output_tokens_per_s")
