"""`procure catalog` and `procure validate` on the shipped data."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO, run_cli

SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("kind,minimum", [("models", 25), ("gpus", 18), ("servers", 10), ("cloud", 12)])
def test_catalog_json_lists_sourced_entries(kind: str, minimum: int) -> None:
    res = run_cli("catalog", kind, "--format", "json")
    assert res.exit_code == 0, res.output
    entries = json.loads(res.output)[kind]
    assert len(entries) >= minimum
    for e in entries:
        assert len(e["source"]) > 10 and e["as_of"] >= "2020-01-01", e["name"]


def test_catalog_gpu_prices_are_dated_estimates() -> None:
    gpus = json.loads(run_cli("catalog", "gpus", "--format", "json").output)["gpus"]
    assert all(g["price"]["estimate"] is True and g["price"]["as_of"] for g in gpus)


@pytest.mark.parametrize("kind", ["gpus", "servers", "cloud", "models"])
def test_catalog_table(kind: str) -> None:
    res = run_cli("catalog", kind)
    assert res.exit_code == 0 and "as of" in res.output


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_validate_accepts_every_shipped_scenario(path: object) -> None:
    res = run_cli("validate", str(path), "--format", "json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["valid"] is True and out["workloads"]


def test_at_least_three_shipped_scenarios() -> None:
    assert {p.stem for p in SCENARIOS} >= {"bank-rollout", "startup-api", "multi-model-platform"}


def test_validate_table_names_resolved_models() -> None:
    res = run_cli("validate", str(REPO / "scenarios" / "bank-rollout.yaml"))
    assert res.exit_code == 0
    assert "Qwen1.5-110B" in res.output and "valid" in res.output
