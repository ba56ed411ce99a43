"""benchmarks/melange.py: Mélange's input, its ILP, the conversion to a scenario, the generator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.melange import EXAMPLE, MelangeInput, generate, main, melange_ilp, solve_procure, to_scenario
from optimizer.errors import UsageError
from tests.conftest import REPO

#: 2 buckets (one input row, two output columns) x 2 GPU types, 8 req/s split evenly: 4 req/s each.
#: S: 1.00 $/h, tputs 8 and 4 req/s -> loads 4/8 = 0.5 and 4/4 = 1.0 GPU; B: tputs 16 and 16 ->
#: loads 0.25 and 0.25 GPU.
TOY: dict[str, Any] = {"gpu_info": {"S": {"cost": 1.0, "tputs": [[8, 4]]}, "B": {"cost": 2.5, "tputs": [[16, 16]]}},
                       "workload_distribution": [[0.5, 0.5]], "total_request_rate": 8.0, "slice_factor": 1}


def toy(**gpu_cost: float) -> MelangeInput:
    data = json.loads(json.dumps(TOY))
    for name, cost in gpu_cost.items():
        data["gpu_info"][name]["cost"] = cost
    return MelangeInput.model_validate(data)


def test_melange_ilp_toy_by_hand() -> None:
    # Assignments (b0, b1): (S, S) loads S 1.5 -> 2 S = 2.00; (B, B) loads B 0.5 -> 1 B = 2.50;
    # (S, B) or (B, S): 1 S + 1 B = 3.50. Least: 2 x S at 2.00 $/h.
    ans = melange_ilp(toy())
    assert (ans.cost, ans.allocation, ans.status) == (pytest.approx(2.0), {"S": 2}, "optimal")
    # B at 1.90 $/h: (B, B) = 1.90 < 2.00, so one B
    ans = melange_ilp(toy(B=1.9))
    assert (ans.cost, ans.allocation) == (pytest.approx(1.9), {"B": 1})


def test_melange_ilp_example_matches_its_readme() -> None:
    # Mélange README (d46ab43): 3 x A10G + 1 x A100-80GB = 6.7 $/h. By hand: bucket rates 30 x
    # [0.2, 0.1, 0.5, 0.2] = 6, 3, 15, 6 req/s; A100 loads 6/20 + 3/20 + 15/40 + 6/20 = 1.125 > 1,
    # so one A100 takes three buckets (e.g. 0.15 + 0.375 + 0.3) and the fourth (6 req/s at 2 req/s)
    # needs 3 A10G: 3 x 1.01 + 3.67 = 6.70.
    ans = melange_ilp(MelangeInput.model_validate(EXAMPLE))
    assert ans.cost == pytest.approx(6.70)
    assert ans.allocation == {"A10G": 3, "A100-80GB": 1}


def test_slices_split_a_bucket() -> None:
    # slice_factor 2 on the toy with B at 1.90: still (B, B); the slices are 2 req/s each, 4 of them
    data = {**TOY, "slice_factor": 2}
    inp = MelangeInput.model_validate(data)
    assert inp.slices == 4
    assert melange_ilp(inp).cost == pytest.approx(2.0)


def test_conversion_shape() -> None:
    data = to_scenario(MelangeInput.model_validate(EXAMPLE), source="example.json")
    w = data["workloads"][0]
    # rows are inputs, columns outputs, at Mélange's profiled lengths 25 and 100
    assert w["lengths"] == [{"input_tokens": 25, "output_tokens": 25, "share": 0.2},
                            {"input_tokens": 25, "output_tokens": 100, "share": 0.1},
                            {"input_tokens": 100, "output_tokens": 25, "share": 0.5},
                            {"input_tokens": 100, "output_tokens": 100, "share": 0.2}]
    assert w["requests_per_s"] == 30.0 and data["headroom"] == 1.0 and data["objective"] == "hourly"
    servers = {s["name"]: (s["compatible_gpus"], s["hourly_usd"]) for s in data["catalog"]["servers"]}
    # A100-80GB is an alias of the shipped A100-SXM-80GB; A10G is declared on the A10's specs
    assert servers == {"melange-1x-A100-80GB": (["A100-SXM-80GB"], 3.67),
                       "melange-1x-A10G": (["A10G-melange"], 1.01)}
    assert [g["name"] for g in data["catalog"]["gpus"]] == ["A10G-melange"]
    m = {(e["gpu"], e["input_tokens"], e["output_tokens"]): e["requests_per_s"] for e in data["measured"]}
    assert len(m) == 8 and m[("A10G-melange", 100, 25)] == 5 and m[("A100-SXM-80GB", 25, 100)] == 20


def test_conversion_needs_lengths_for_every_bucket() -> None:
    with pytest.raises(UsageError, match="give 2 input and 2 output lengths"):
        to_scenario(MelangeInput.model_validate(EXAMPLE), input_tokens=[10, 20, 30])


def test_generator_is_seeded_and_sized() -> None:
    a, b = generate((5, 5), 32, 12, seed=3), generate((5, 5), 32, 12, seed=3)
    assert a == b and a.slices == 800 and len(a.gpu_info) == 12
    assert generate((5, 5), 32, 12, seed=4) != a
    assert sum(map(sum, a.workload_distribution)) == pytest.approx(1.0, abs=1e-12)
    # the two base types keep the anchors: A10G 1.01 $/h, 1 / (25/6000 + 25/250) = 9.6 req/s at 25/25
    assert a.gpu_info["A10G"].cost == 1.01 and a.gpu_info["A10G"].tputs[0][0] == 9.6


@pytest.mark.parametrize("bad, needle", [
    ({**TOY, "workload_distribution": [[0.5, 0.4]]}, "must sum to 1"),
    ({**TOY, "gpu_info": {"S": {"cost": 1.0, "tputs": [[8, 0]]}}}, "every tput must be > 0"),
    ({**TOY, "gpu_info": {"S": {"cost": 1.0, "tputs": [[8]]}}}, "must be 1 x 2"),
])
def test_bad_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: dict[str, Any],
                          needle: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    assert main([str(path), "--format", "json"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "bad.json" in err and "Traceback" not in err


def test_procure_on_the_example_by_hand() -> None:
    # Continuous routing (worked by hand): per bucket, A10G load / A100 load = 3/0.3 = 10, 3/0.15 = 20,
    # 3/0.375 = 8, 3/0.3 = 10, so one A100 takes the buckets where it saves most: (25/100) 0.15,
    # (25/25) 0.3, (100/100) 0.3 and 0.25 of the 0.375 of (100/25), i.e. 10 of its 15 req/s; the other
    # 5 req/s at 5 req/s fill one A10G. 3.67 + 1.01 = 4.68 $/h (no cheaper plan: one A100 alone
    # carries 1.125 > 1, and A10Gs alone need 12), 30 % below the ILP's 6.70.
    ans = solve_procure(MelangeInput.model_validate(EXAMPLE))
    assert ans.status == "optimal"
    assert ans.cost == pytest.approx(4.68)
    assert ans.allocation == {"A100-80GB": 1, "A10G": 1}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_procure_never_costs_more_than_the_ilp(seed: int) -> None:
    # procure's routing is the LP relaxation of Mélange's slice assignment on the same capacities
    inp = generate((3, 3), 2, 4, seed=seed, rate=40.0)
    ilp = melange_ilp(inp)
    pro = solve_procure(inp)
    assert ilp.status == "optimal" and ilp.cost is not None and pro.cost is not None
    assert pro.cost <= ilp.cost + 1e-9


def test_json_contract(tmp_path: Path) -> None:
    path = tmp_path / "example.json"
    path.write_text(json.dumps(EXAMPLE))
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "melange.py"), str(path), "--format", "json"],
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"cost", "solve_time_s", "allocation"}  # DESIGN.md's contract, nothing else
    assert out["cost"] == pytest.approx(4.68) and out["allocation"] == {"A100-80GB": 1, "A10G": 1}
    assert out["solve_time_s"] > 0
