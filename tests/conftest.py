"""Shared fixtures: a runner for the real CLI and a writer for scenario files."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from optimizer.cli import main

REPO = Path(__file__).resolve().parent.parent

BASE_SCENARIO: dict[str, Any] = {
    "name": "test",
    "site": {"power_kw": 100, "pue": 1.3, "racks": 4, "rack_power_kw": 20, "rack_units": 42},
    "constraints": {"budget": 5_000_000, "gpus": ["H20-96GB", "L20-48GB"]},
    "workloads": [
        {"name": "chat", "model": "Qwen/Qwen2-7B-Instruct", "precisions": ["bf16"], "requests_per_s": 1.5,
         "input_tokens": 1000, "output_tokens": 200, "max_context": 4096,
         "slo": {"ttft_ms": 2000, "tpot_ms": 60}},
    ],
}


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def assert_user_error(args: list[str], *needles: str) -> str:
    """Bad input: exit 2, no traceback, and every needle in the message."""
    res = run_cli(*args)
    text = res.output
    assert res.exit_code == 2, text
    assert "Traceback" not in text
    for needle in needles:
        assert needle in text, f"{needle!r} not in:\n{text}"
    return text


@pytest.fixture
def base_scenario() -> dict[str, Any]:
    return copy.deepcopy(BASE_SCENARIO)


@pytest.fixture
def write_scenario(tmp_path: Path) -> Callable[[Any], Path]:
    def write(data: Any, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path
    return write
