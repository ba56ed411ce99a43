"""Length mixes from the user's side: lengths: buckets, lengths_file binning, and bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from optimizer.loaders import load_scenario
from optimizer.request_log import parse_request_lengths
from optimizer.schema.scenario import InferenceWorkload
from optimizer.sizing.lengths import bin_requests, natural_breaks
from tests.conftest import assert_user_error, run_cli

WORKLOAD: dict[str, Any] = {"name": "chat", "model": "Qwen2-7B", "requests_per_s": 2.0, "max_context": 8192,
                            "slo": {"ttft_ms": 2000, "tpot_ms": 60}}


def _w(**kw: Any) -> InferenceWorkload:
    return InferenceWorkload.model_validate({**WORKLOAD, **kw})


def test_lengths_fill_the_means_and_reload() -> None:
    # means: 0.3 x 3000 + 0.7 x 300 = 1110 input, 0.3 x 200 + 0.7 x 400 = 340 output
    w = _w(lengths=[{"input_tokens": 3000, "output_tokens": 200, "share": 0.3},
                    {"input_tokens": 300, "output_tokens": 400, "share": 0.7}])
    assert (w.input_tokens, w.output_tokens) == (1110, 340)
    assert w.buckets() == [(3000, 200, 0.3), (300, 400, 0.7)]
    assert InferenceWorkload.model_validate(w.model_dump()).buckets() == w.buckets()


@pytest.mark.parametrize(("extra", "needle"), [
    ({"lengths": [{"input_tokens": 100, "output_tokens": 10, "share": 0.5}]}, "sum to 0.5"),
    ({"lengths": [{"input_tokens": 100, "output_tokens": 10, "share": 0.5},
                  {"input_tokens": 100, "output_tokens": 10, "share": 0.5}]}, "repeats 100/10"),
    ({"lengths": [{"input_tokens": 9000, "output_tokens": 10, "share": 1.0}]}, "exceeds max_context"),
    ({"lengths": [{"input_tokens": 100, "output_tokens": 10, "share": 1.0}], "input_tokens": 50},
     "not the mean"),
    ({"lengths": [{"input_tokens": 100, "output_tokens": 10, "share": 1.0, "weight": 2}]}, "weight"),
])
def test_bad_lengths_are_refused(extra: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        _w(**extra)


def test_natural_breaks_split_a_bimodal_mix_at_its_gap() -> None:
    # 300-ish chat turns and 3,000-ish RAG prompts: two groups, split between 350 and 2,950
    values = [250, 300, 350] * 10 + [2950, 3000, 3050] * 3
    assert natural_breaks(values, 2) == [350, 3050]
    # quantile edges would have put the median (300) at the cut; log-length grouping finds the gap.
    assert natural_breaks([5, 5, 5], 3) == [5]          # fewer distinct values than groups
    assert natural_breaks([1, 2, 4, 8], 4) == [1, 2, 4, 8]


def test_bin_requests_means_and_shares_by_hand() -> None:
    # 6 short (inputs 300 or 310, outputs 100) and 2 long (3000, 3100 in; 200 out); 2 x 1 bins:
    # short: mean input 305, output 100, share 6/8; long: 3050 / 200, share 2/8
    ins = [300, 310, 300, 310, 300, 310, 3000, 3100]
    outs = [100] * 6 + [200, 200]
    b = bin_requests(ins, outs, (2, 1))
    assert [(x.input_tokens, x.output_tokens, x.share, x.requests) for x in b] == [
        (305, 100, 0.75, 6), (3050, 200, 0.25, 2)]
    assert b[0].input_range == (300, 310) and b[1].input_range == (311, 3100)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 100_000), st.integers(1, 10_000)), min_size=1, max_size=300),
       st.integers(1, 8), st.integers(1, 8))
def test_binning_keeps_every_request(pairs: list[tuple[int, int]], a: int, b: int) -> None:
    buckets = bin_requests([p[0] for p in pairs], [p[1] for p in pairs], (a, b))
    assert sum(x.requests for x in buckets) == len(pairs)
    assert sum(x.share for x in buckets) == pytest.approx(1.0)
    assert len(buckets) <= a * b
    assert len({(x.input_tokens, x.output_tokens) for x in buckets}) == len(buckets)
    for x in buckets:
        assert x.input_range[0] <= x.input_tokens <= x.input_range[1]


def test_file_formats() -> None:
    csv_text = "prompt_tokens,completion_tokens\n100,20\n200,30\n"
    assert parse_request_lengths(csv_text, ".csv") == ([100, 200], [20, 30])
    jsonl = '{"usage": {"prompt_tokens": 7, "completion_tokens": 3}}\n\n{"input_tokens": 5, "output_tokens": 2}\n'
    assert parse_request_lengths(jsonl, ".jsonl") == ([7, 5], [3, 2])
    # vllm bench serve --save-result --save-detailed: input_lens / output_lens lists
    bench = json.dumps({"request_throughput": 1.0, "input_lens": [10, 11], "output_lens": [4, 5]})
    assert parse_request_lengths(bench, ".json") == ([10, 11], [4, 5])


def _mix_scenario(base_scenario: dict[str, Any], lengths_file: str) -> dict[str, Any]:
    w = base_scenario["workloads"][0]
    del w["input_tokens"], w["output_tokens"]
    w["lengths_file"] = lengths_file
    w["lengths_bins"] = [2, 1]
    return base_scenario


def test_lengths_file_is_binned_when_loaded(tmp_path: Path, base_scenario: dict[str, Any],
                                            write_scenario: Callable[[Any], Path]) -> None:
    rows = ["input_tokens,output_tokens"] + ["300,100"] * 30 + ["3000,200"] * 10
    (tmp_path / "requests.csv").write_text("\n".join(rows) + "\n")
    path = write_scenario(_mix_scenario(base_scenario, "requests.csv"))
    w = load_scenario(path).scenario.workloads[0]
    assert isinstance(w, InferenceWorkload)
    assert w.buckets() == [(300, 100, 0.75), (3000, 200, 0.25)]
    assert w.lengths_source is not None and "40 requests in 2 buckets" in w.lengths_source
    res = run_cli("validate", str(path))
    assert res.exit_code == 0, res.output
    assert "length mix" in res.output and "75.0%" in res.output


@pytest.mark.parametrize(("content", "needles"), [
    ("input_tokens,output_tokens\n300,100\n300,x\n", ("requests.csv (line 3, output_tokens)", "token count")),
    ("tokens_in,tokens_out\n1,2\n", ("line 1", "input column")),
    ("input_tokens,output_tokens\n300,0\n", ("line 2", "whole numbers from 1")),
    ("input_tokens,output_tokens\n", ("holds no requests",)),
])
def test_bad_lengths_file_exits_2(tmp_path: Path, base_scenario: dict[str, Any],
                                  write_scenario: Callable[[Any], Path], content: str,
                                  needles: tuple[str, ...]) -> None:
    (tmp_path / "requests.csv").write_text(content)
    path = write_scenario(_mix_scenario(base_scenario, "requests.csv"))
    assert_user_error(["validate", str(path)], "workloads[0].lengths_file", *needles)


def test_missing_lengths_file_exits_2(base_scenario: dict[str, Any], write_scenario: Callable[[Any], Path]) -> None:
    path = write_scenario(_mix_scenario(base_scenario, "nowhere.jsonl"))
    assert_user_error(["solve", str(path), "--no-workbook"], "nowhere.jsonl", "file not found",
                      "relative to the scenario's folder")


def test_an_incomplete_bucket_is_reported_at_its_own_path() -> None:
    # a bucket without output_tokens: the error names lengths[0], not the mean it could not fill in
    with pytest.raises(ValidationError) as err:
        _w(lengths=[{"input_tokens": 3000, "share": 0.3}, {"input_tokens": 300, "output_tokens": 400, "share": 0.7}])
    assert [e["loc"] for e in err.value.errors()] == [("lengths", 0, "output_tokens")]


def test_a_prefix_must_fit_the_shortest_bucket() -> None:
    # the shared prefix is part of every prompt: 1,000 tokens cannot prefix a 100-token bucket
    mix = [{"input_tokens": 100, "output_tokens": 100, "share": 0.5},
           {"input_tokens": 2000, "output_tokens": 100, "share": 0.5}]
    with pytest.raises(ValidationError, match="shortest length bucket's input_tokens 100"):
        _w(lengths=mix, prefix={"tokens": 1000, "hit_rate": 0.5})
    assert _w(lengths=mix, prefix={"tokens": 100, "hit_rate": 0.5}).prefix is not None
