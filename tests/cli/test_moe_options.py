"""`procure perf` / `procure size` --ep/--dp: MoE layouts, validated with exit 2."""

from __future__ import annotations

import json

from click.testing import CliRunner

from optimizer.cli import main

PERF = ["perf", "Qwen3-235B-A22B", "--gpu", "H200-SXM-141GB", "--precision", "fp8", "--input-tokens", "1000",
        "--output-tokens", "500", "--format", "json"]


def test_perf_reports_ep_and_dp() -> None:
    res = CliRunner().invoke(main, [*PERF, "--tp", "4", "--dp", "2", "--ep", "8"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert (out["tp"], out["ep"], out["dp"], out["gpus"]) == (4, 8, 2, 8)


def test_bad_layouts_exit_2_with_a_message() -> None:
    r = CliRunner().invoke(main, [*PERF, "--tp", "4", "--dp", "2", "--ep", "4"])
    assert r.exit_code == 2 and "EP 4 must be 1 or TP x DP = 8" in r.output
    r = CliRunner().invoke(main, ["size", "Llama-3.1-8B", "--tp", "2", "--ep", "2"])
    assert r.exit_code == 2 and "dense model" in r.output
    r = CliRunner().invoke(main, ["size", "Mixtral-8x7B", "--tp", "1", "--dp", "16", "--ep", "16"])
    assert r.exit_code == 2 and "does not divide" in r.output


def test_size_shows_expert_memory_per_gpu() -> None:
    r = CliRunner().invoke(main, ["size", "Qwen3-235B-A22B", "--precision", "bf16", "--tp", "1", "--dp", "8",
                                  "--ep", "8", "--format", "json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["expert_bytes_per_gpu"] == 94 * 16 * 3 * 4096 * 1536 * 2 and out["gpus"] == 8
