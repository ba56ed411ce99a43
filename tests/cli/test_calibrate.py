"""`procure calibrate`: a hand-made measurement changes later `procure perf` answers (issue 4)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from optimizer.cli import main

PERF = ("perf", "Llama-3.1-8B", "--gpu", "H100-SXM-80GB", "--tp", "1", "--precision", "fp8",
        "--input-tokens", "1000", "--output-tokens", "1000", "--format", "json")


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_calibrate_changes_perf_for_that_deployment(tmp_path: Path) -> None:
    before = json.loads(_run(*PERF).output)
    m = tmp_path / "measured.csv"
    m.write_text("model,gpu,tp,precision,input_tokens,output_tokens,output_tokens_per_s,tpot_ms\n"
                 "Llama-3.1-8B,H100 SXM,1,fp8,1000,1000,5000,40\n")
    out = tmp_path / "calibration.yaml"
    r = _run("calibrate", str(m), "-o", str(out), "--format", "json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["rows"] == 1 and "Hopper" in summary["families"]
    doc = yaml.safe_load(out.read_text())
    assert doc["measured"][0]["output_tokens_per_s"] == 5000 and doc["engine"] == "vllm"
    assert doc["families"]["Hopper"]["kv_reserve_output_fraction"] == 0.5
    after = json.loads(_run(*PERF, "--calibration", str(out)).output)
    assert after["source"] == "measured" and after["output_tokens_per_s"] == 5000
    assert before["source"] == "model" and before["output_tokens_per_s"] != after["output_tokens_per_s"]
    # Another deployment of the same GPU family gets the refitted factors, not the measured point.
    other = json.loads(_run("perf", "Llama-3.3-70B", "--gpu", "H100", "--tp", "2", "--precision", "fp8",
                            "--input-tokens", "1000", "--output-tokens", "1000", "--format", "json",
                            "--calibration", str(out)).output)
    assert other["source"] == "model" and other["efficiency"]["source"] == "fitted"
    assert other["efficiency"]["citation"].startswith("calibration.yaml")


def test_calibrate_vllm_bench_json_with_options(tmp_path: Path) -> None:
    # Keys as written by `vllm bench serve --save-result` (vLLM benchmarks/benchmark_serving.py).
    js = tmp_path / "bench.json"
    js.write_text(json.dumps({"date": "20250101-000000", "model_id": "Qwen/Qwen2-7B-Instruct",
                              "request_rate": "inf", "max_concurrency": None, "completed": 200,
                              "total_input_tokens": 200_000, "total_output_tokens": 40_000,
                              "output_throughput": 1800.0, "mean_ttft_ms": 2500.0, "mean_tpot_ms": 45.0}))
    out = tmp_path / "c.yaml"
    r = _run("calibrate", str(js), "--gpu", "L40S", "--tp", "1", "--precision", "bf16", "-o", str(out))
    assert r.exit_code == 0, r.output
    doc = yaml.safe_load(out.read_text())
    assert list(doc["families"]) == ["Ada Lovelace"]
    pt = doc["measured"][0]
    assert (pt["model"], pt["gpu"], pt["input_tokens"], pt["output_tokens"]) == ("Qwen2-7B", "L40S-48GB", 1000, 200)
    r2 = _run("perf", "Qwen2-7B", "--gpu", "L40S", "--precision", "bf16", "--input-tokens", "1000",
              "--output-tokens", "200", "--calibration", str(out), "--format", "json")
    assert json.loads(r2.output)["output_tokens_per_s"] == 1800.0


def test_calibrate_bad_input(tmp_path: Path) -> None:
    js = tmp_path / "bench.json"
    js.write_text(json.dumps({"model_id": "Qwen/Qwen2-7B-Instruct", "request_rate": "inf", "completed": 1,
                              "total_input_tokens": 10, "total_output_tokens": 10, "output_throughput": 5.0}))
    r = _run("calibrate", str(js), "-o", str(tmp_path / "c.yaml"))
    assert r.exit_code == 2 and "gpu" in r.output
    r = _run("calibrate", str(tmp_path / "nope.csv"))
    assert r.exit_code == 2 and "not found" in r.output
