"""Golden plans for every shipped scenario, and determinism: same input, same plan.

A golden file holds what a purchase review would compare: status, capex, servers bought and every
deployment's layout and replica count. Each plan is made by the real command in a fresh process, as
users run it (a fresh process also has a fresh string-hash seed, which once reordered the model).
Regenerate after an intended change with
``PROCURE_UPDATE_GOLDEN=1 pytest tests/model/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

GOLDEN = REPO / "tests" / "golden"
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))


def solve_json(path: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "optimizer", "solve", str(path), "--format", "json",
                           "--no-workbook", "--time-limit", "120"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    plan: dict[str, Any] = json.loads(proc.stdout)
    return plan


@cache
def plan_of(path: Path) -> dict[str, Any]:
    return solve_json(path)


def summary(plan: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": plan["status"],
        "capex": round(plan["capex"], 2),
        "servers": {s["sku"]: s["count"] for s in plan["servers"]},
        "deployments": sorted(f"{d['workload']} {d['gpu']} TP{d['tp']} PP{d['pp']}"
                              + (f" EP{d['ep']}" if d.get("ep", 1) > 1 else "")
                              + (f" DP{d['dp']}" if d.get("dp", 1) > 1 else "")
                              + f" {d['precision']} x{d['replicas']}" for d in plan["deployments"]),
        "finetunes": sorted(f"{f['workload']} {f['gpu']} x{f['gpus']}" for f in plan["finetunes"]),
    }


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_golden_plan(path: Path) -> None:
    got = summary(plan_of(path))
    golden = GOLDEN / f"{path.stem}.json"
    if os.environ.get("PROCURE_UPDATE_GOLDEN") or not golden.exists():
        golden.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(golden.read_text())
    assert got["status"] == "optimal"


def test_same_input_same_plan() -> None:
    path = REPO / "scenarios" / "bank-rollout.yaml"
    first, again = plan_of(path), solve_json(path)
    first.pop("solver")
    again.pop("solver")
    assert first == again
