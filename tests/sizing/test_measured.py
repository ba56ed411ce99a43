"""Matching a scenario's measured: entries to deployments (optimizer/sizing/measured.py, issue 17 item 5)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from optimizer.loaders import load_scenario
from optimizer.schema.measured import MeasuredEntry
from optimizer.sizing.candidates import build_candidates
from optimizer.sizing.measured import duplicates, measured_capacity, slo_covers
from tests.conftest import assert_user_error, run_cli

ENTRY: dict[str, Any] = {"model": "Llama-3.1-8B", "gpu": "L20-48GB", "tp": 1, "precision": "bf16",
                         "input_tokens": 1000, "output_tokens": 200, "requests_per_s": 6.0,
                         "slo": {"ttft_ms": 2000, "tpot_ms": 60}, "source": "own vllm bench serve, 2026-11-30"}
DEPLOYMENT: dict[str, Any] = {"model": "Llama-3.1-8B", "gpu": "L20-48GB", "tp": 1, "pp": 1, "precision": "bf16",
                              "input_tokens": 1000, "output_tokens": 200}
SLO = {"ttft_ms": 2000.0, "tpot_ms": 60.0}


def _entry(**kw: Any) -> MeasuredEntry:
    return MeasuredEntry.model_validate({**ENTRY, **kw})


def test_exact_deployment_only() -> None:
    e = _entry()
    assert measured_capacity([e], **DEPLOYMENT, slo=SLO) is e
    assert measured_capacity([e], **{**DEPLOYMENT, "model": "llama-3.1-8b", "gpu": "l20-48gb"}, slo=SLO) is e
    for change in ({"tp": 2}, {"pp": 2}, {"precision": "fp8"}, {"input_tokens": 999}, {"output_tokens": 201},
                   {"gpu": "L40S-48GB"}, {"model": "Qwen2-7B"}):
        assert measured_capacity([e], **{**DEPLOYMENT, **change}, slo=SLO) is None, change


def test_slo_rule() -> None:
    e = _entry()  # measured at TTFT 2000 / TPOT 60 ms
    assert slo_covers(e, {"ttft_ms": 2000, "tpot_ms": 60})      # the same SLO
    assert slo_covers(e, {"ttft_ms": 5000, "tpot_ms": 100})     # a looser workload: still met
    assert not slo_covers(e, {"ttft_ms": 1000, "tpot_ms": 60})  # stricter TTFT than measured
    assert not slo_covers(e, {"ttft_ms": 2000, "tpot_ms": 50})
    # a workload p99 target is not implied by mean figures; an entry's extra p99 bound does no harm
    assert not slo_covers(e, {**SLO, "ttft_p99_ms": 9000})
    tail = _entry(slo={"ttft_ms": 2000, "tpot_ms": 60, "ttft_p99_ms": 4000})
    assert slo_covers(tail, SLO) and slo_covers(tail, {**SLO, "ttft_p99_ms": 4000})
    assert not slo_covers(tail, {**SLO, "ttft_p99_ms": 3000})
    # without slo: the owner vouches for it at any SLO
    assert slo_covers(_entry(slo=None), {"ttft_ms": 1, "tpot_ms": 1})


def test_highest_applicable_entry_wins() -> None:
    # measured at 2000 ms TTFT: 6 req/s; at a tighter 1000 ms: 4 req/s. A 2000 ms workload may use
    # either (both met 2000 ms), so it takes 6; a 1500 ms workload only the 1000 ms one: 4.
    loose = _entry()
    tight = _entry(requests_per_s=4.0, slo={"ttft_ms": 1000, "tpot_ms": 60})
    assert measured_capacity([tight, loose], **DEPLOYMENT, slo=SLO) is loose
    assert measured_capacity([tight, loose], **DEPLOYMENT, slo={"ttft_ms": 1500, "tpot_ms": 60}) is tight
    assert duplicates([loose, tight]) == []
    assert duplicates([loose, tight, _entry(requests_per_s=5.0)]) == [(0, 2)]


def test_entry_schema_is_strict() -> None:
    with pytest.raises(ValueError, match="source"):
        MeasuredEntry.model_validate({k: v for k, v in ENTRY.items() if k != "source"})
    with pytest.raises(ValueError, match="at least one target"):
        _entry(slo={})
    with pytest.raises(ValueError, match="greater than 0"):
        _entry(requests_per_s=0)
    with pytest.raises(ValueError, match="Extra inputs"):
        _entry(ep=2)


def _scenario(measured: list[dict[str, Any]] | None = None, **top: Any) -> dict[str, Any]:
    return {"name": "m", "site": {"power_kw": 1000, "pue": 1.0, "racks": 10, "rack_power_kw": 100},
            "constraints": {"gpus": ["L20-48GB"], "servers": ["PCIe-4GPU-4U"]},
            "workloads": [{"name": "chat", "model": "Llama-3.1-8B", "requests_per_s": 10, "input_tokens": 1000,
                           "output_tokens": 200, "max_context": 4096, "slo": {"ttft_ms": 2000, "tpot_ms": 60}}],
            **({"measured": measured} if measured is not None else {}), **top}


def test_candidate_takes_the_measured_capacity_as_is(write_scenario: Callable[[Any], Path]) -> None:
    # HF id and alias resolve as a workload's model and GPU do; confidence 0.9 would shrink an
    # estimate but leaves the measurement alone; other layouts keep the estimate.
    entry = {**ENTRY, "model": "meta-llama/Llama-3.1-8B-Instruct", "gpu": "L20"}
    rs = load_scenario(write_scenario(_scenario([entry], confidence=0.9)))
    cands = build_candidates(rs)
    tp1 = [c for c in cands.inference if c.tp == 1 and c.pp == 1]
    assert tp1 and all(c.capacity_rps == 6.0 and c.perf.source == "measured" for c in tp1)
    assert all(c.perf.ttft_ms == 2000 and c.perf.tpot_ms == 60 for c in tp1)
    assert all(c.perf.source == "model" for c in cands.inference if (c.tp, c.pp) != (1, 1))
    assert cands.measured_used == {0}


def test_measured_file_relative_to_the_scenario(tmp_path: Path, write_scenario: Callable[[Any], Path]) -> None:
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "m.yaml").write_text(yaml.safe_dump({"measured": [ENTRY]}))
    rs = load_scenario(write_scenario(_scenario(measured_file="bench/m.yaml")))
    assert [e.requests_per_s for e in rs.measured] == [6.0]


def test_bad_entries_exit_2(tmp_path: Path, write_scenario: Callable[[Any], Path]) -> None:
    path = write_scenario(_scenario([ENTRY, {**ENTRY, "requests_per_s": 5.0}]))
    assert_user_error(["validate", str(path)], "measured[1]", "duplicates measured[0]", "same deployment and SLO")
    path = write_scenario(_scenario([{**ENTRY, "gpu": "L2O"}]))
    assert_user_error(["validate", str(path)], "measured[0].gpu", "unknown GPU")
    path = write_scenario(_scenario([{**ENTRY, "model": "Llama-9-8B"}]))
    assert_user_error(["validate", str(path)], "measured[0].model")
    path = write_scenario(_scenario(measured_file="nope.yaml"))
    assert_user_error(["validate", str(path)], "measured_file", "not found")
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"measured": [{**ENTRY, "tp": 0}]}))
    path = write_scenario(_scenario(measured_file="m.yaml"))
    assert_user_error(["validate", str(path)], "m.yaml: measured[0].tp")
    # a duplicate across the scenario and its file names both places
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"measured": [ENTRY]}))
    path = write_scenario(_scenario([ENTRY], measured_file="m.yaml"))
    assert_user_error(["validate", str(path)], "m.yaml: measured[0]", "duplicates measured[0] of")


def test_an_entry_never_opens_a_path(tmp_path: Path, write_scenario: Callable[[Any], Path]) -> None:
    # a config.json path in an entry is refused without being read (the web app reads no file a
    # request names); the same path as a workload's own model: is matched as that workload's model
    config = tmp_path / "secret.json"
    config.write_text("{not json")
    path = write_scenario(_scenario([{**ENTRY, "model": str(config)}]))
    text = assert_user_error(["validate", str(path)], "measured[0].model", "neither a catalog model")
    assert "JSON" not in text


def test_owner_vouched_entry_opens_a_layout_the_estimate_rejects(write_scenario: Callable[[Any], Path]) -> None:
    # TPOT 15 ms is beyond the estimate for an 8B model on one L20 (~864 GB/s streams 16 GB of bf16
    # weights in ~19 ms a step), so the estimate gives no TP1 candidate; the owner's measurement
    # without slo: vouches 2 req/s at any SLO, so TP1 becomes a candidate at 2 req/s and the plan passes its check.
    data = _scenario([{**ENTRY, "requests_per_s": 2.0, "slo": None}])
    data["workloads"][0]["slo"] = {"ttft_ms": 2000, "tpot_ms": 15}
    data["workloads"][0]["requests_per_s"] = 3.0
    path = write_scenario(data)
    before = build_candidates(load_scenario(write_scenario({**data, "measured": []}, "plain.yaml")))
    assert not [c for c in before.inference if (c.tp, c.pp) == (1, 1)]
    cands = build_candidates(load_scenario(path))
    (tp1,) = {(c.capacity_rps, c.perf.tpot_ms) for c in cands.inference if (c.tp, c.pp) == (1, 1)}
    assert tp1 == (2.0, 15.0)
    res = run_cli("solve", str(path), "--no-workbook", "--format", "json")
    assert res.exit_code == 0, res.output


def test_a_vouched_entry_meets_a_tail_target_too(write_scenario: Callable[[Any], Path]) -> None:
    # the same layout with a tail target only (TPOT p99 15 ms): the entry's latencies stand for the
    # tails as well as the means, so the plan on it passes the checker (it failed with "tpot_p99_ms
    # 30.0 > 15" when only the means were replaced)
    data = _scenario([{**ENTRY, "requests_per_s": 2.0, "slo": None}])
    data["workloads"][0]["slo"] = {"ttft_ms": 2000, "tpot_p99_ms": 15}
    data["workloads"][0]["requests_per_s"] = 3.0
    cands = build_candidates(load_scenario(write_scenario(data)))
    (tp1,) = {(c.capacity_rps, c.perf.tpot_p99_ms) for c in cands.inference if (c.tp, c.pp) == (1, 1)}
    assert tp1 == (2.0, 15.0)
    res = run_cli("solve", str(write_scenario(data)), "--no-workbook", "--format", "json")
    assert res.exit_code == 0, res.output
