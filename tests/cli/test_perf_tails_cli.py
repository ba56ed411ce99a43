"""`procure perf` tail targets and shared prefixes: the JSON "tail"/"prefix" objects, the table
rows and bad input (exit 2 naming the option)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from optimizer.cli import main

BASE = ("Llama-3.1-8B", "--gpu", "H100-SXM-80GB", "--tp", "1", "--precision", "fp8",
        "--input-tokens", "3000", "--output-tokens", "300")


def _json(*args: str) -> dict:  # type: ignore[type-arg]
    r = CliRunner().invoke(main, ["perf", *BASE, *args, "--format", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)  # type: ignore[no-any-return]


def test_tails_are_reported_and_targets_bind() -> None:
    free = _json("--tpot-ms", "40")
    tail = free["tail"]
    assert set(tail) == {"ttft_p90_ms", "ttft_p99_ms", "tpot_p90_ms", "tpot_p99_ms"}
    assert free["tpot_ms"] < tail["tpot_p90_ms"] < tail["tpot_p99_ms"]
    assert tail["ttft_p90_ms"] < tail["ttft_p99_ms"]
    assert "ttft_ms_p90" in free  # the confidence band keeps its own keys
    # a p99 TTFT target halfway between the floor (prefill + one step) and today's p99
    target = round((tail["ttft_p99_ms"] + free["prefill_ms"] + free["tpot_ms"]) / 2, 1)
    bound = _json("--tpot-ms", "40", "--ttft-p99-ms", str(target))
    assert bound["limited_by"] == "ttft" and bound["requests_per_s"] < free["requests_per_s"]
    assert abs(bound["tail"]["ttft_p99_ms"] - target) <= 1e-3
    assert bound["slo"]["ttft_p99_ms"] == target and bound["slo"]["ttft_ms"] is None and bound["slo"]["met"]
    # tail targets alone are enough
    only = _json("--ttft-p90-ms", "500", "--tpot-p99-ms", "40")
    assert only["slo"]["met"] and only["slo"]["tpot_ms"] is None


def test_prefix_raises_capacity_and_the_kv_batch() -> None:
    plain = _json("--tpot-ms", "40")
    cached = _json("--tpot-ms", "40", "--prefix-tokens", "2000")
    assert cached["prefix"] == {"tokens": 2000, "hit_rate": 1.0}  # the hit rate defaults to 1
    # KV: one copy of the 2000-token prefix, then 1000 + 300 tokens per sequence (TensorRT-LLM
    # reserves I + O) instead of 3300
    kv = plain["kv_cache_tokens"]
    assert plain["kv_batch_limit"] == kv // 3300
    assert cached["kv_batch_limit"] == (kv - 2000) // 1300
    assert cached["prefill_ms"] < plain["prefill_ms"] and cached["requests_per_s"] > plain["requests_per_s"]


def test_table_has_the_tail_and_prefix_rows() -> None:
    r = CliRunner().invoke(main, ["perf", *BASE, "--ttft-p99-ms", "2000", "--tpot-ms", "40",
                                  "--prefix-tokens", "1000", "--prefix-hit-rate", "0.5"])
    assert r.exit_code == 0, r.output
    assert "TTFT p99" in r.output and "target 2000 ms" in r.output and "TPOT p90" in r.output
    assert "2,500 new tokens prefilled" in r.output  # 3000 - 0.5 x 1000


def test_bad_prefix_options_exit_2() -> None:
    r = CliRunner().invoke(main, ["perf", *BASE, "--prefix-hit-rate", "0.5"])
    assert r.exit_code == 2 and "--prefix-hit-rate needs --prefix-tokens" in r.output
    r = CliRunner().invoke(main, ["perf", *BASE, "--prefix-tokens", "4000"])
    assert r.exit_code == 2 and "--prefix-tokens 4,000 exceeds --input-tokens 3,000" in r.output
    r = CliRunner().invoke(main, ["perf", *BASE, "--ttft-p99-ms", "-5"])
    assert r.exit_code == 2
