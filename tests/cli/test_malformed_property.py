"""Property: a malformed scenario exits 2 with one message that names the mutated field, through
`procure validate`, `procure solve` and `procure compare` (in-process, no workbook).

Mutations start from valid scenarios (tests/conftest.BASE_SCENARIO and the shipped scenarios/*.yaml)
and change one field: a wrong type, a non-finite number, an out-of-range number, a deleted key or an
unknown key. Which outcome is right depends on the kind:

- wrong type, non-finite, negative, huge (1e308, 2**70), unknown key: always invalid, so exit 2 and
  the message names the field (``workloads[0].slo.tpot_ms``, as loaders.field_path renders it);
  a wrong ``kind`` is reported on its workload, the discriminated union's level.
- zero and a deleted key: 0 can be in range (``electricity_per_kwh: 0``) and many keys are
  optional, so exit 0 or 1 is accepted; exit 2 must still name the field or an enclosing one
  (cross-field checks report on the enclosing model).

Never a traceback or "internal error", whatever the outcome.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer import yaml_safe
from tests.conftest import BASE_SCENARIO, REPO, run_cli

PathT = tuple[int | str, ...]

#: The scenarios mutations start from: (label, data). The small ones are also solved.
SHIPPED = {p.stem: yaml_safe.load(p.read_text(encoding="utf-8")) for p in sorted((REPO / "scenarios").glob("*.yaml"))}
BASE_WITH_WHATIF = {**copy.deepcopy(BASE_SCENARIO), "whatif": [{"name": "cheaper", "budget": 3_000_000}]}
SEEDS_VALIDATE = {"base": BASE_SCENARIO, "base+whatif": BASE_WITH_WHATIF, **SHIPPED}
SEEDS_SOLVE = {"base": BASE_SCENARIO, "startup-api": SHIPPED["startup-api"]}
SEEDS_COMPARE = {"base+whatif": BASE_WITH_WHATIF}

UNKNOWN_KEY = "zz_not_a_field"
ALWAYS_INVALID = {"wrong_type", "nonfinite", "negative", "huge", "unknown_key"}
MAYBE_VALID = {"zero", "delete"}


@dataclass(frozen=True)
class Mutation:
    seed: str
    kind: str
    path: PathT
    value: Any = None  # the replacement (unused for delete; the key for unknown_key)

    def render(self) -> str:
        """The field path the message must name, as loaders.field_path renders it."""
        return render(self.path)


def render(path: PathT) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def walk(node: Any, path: PathT = ()) -> Iterator[tuple[PathT, Any]]:
    """Every (path, value) below the root, depth first."""
    items: list[tuple[int | str, Any]] = (list(node.items()) if isinstance(node, dict)
                                          else list(enumerate(node)) if isinstance(node, list) else [])
    for key, value in items:
        yield (*path, key), value
        yield from walk(value, (*path, key))


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def wrong_types(value: Any) -> list[Any]:
    """Replacements of another type than ``value`` that no field accepts in its place."""
    if is_number(value):
        return ["lots", [1], {"a": 1}, True]
    if isinstance(value, bool):
        return ["yes", 1, [True], {"a": 1}]
    if isinstance(value, str):
        return [7, 2.5, [value], {"a": value}, True]
    if isinstance(value, list):
        return ["x", 5, {"a": 1}]
    if isinstance(value, dict):
        return ["x", 5, [1]]
    return []  # null: a string or a list may be just what an optional field takes


def mutations(seed: str, data: dict[str, Any]) -> list[Mutation]:
    """Every single-field mutation of ``data``."""
    out: list[Mutation] = []
    for path, value in walk(data):
        out += [Mutation(seed, "wrong_type", path, v) for v in wrong_types(value)]
        if is_number(value):
            out += [Mutation(seed, "nonfinite", path, v) for v in (math.inf, -math.inf, math.nan)]
            out += [Mutation(seed, "negative", path, v) for v in (-1, -1e9)]
            out += [Mutation(seed, "huge", path, v) for v in (1e308, 2**70)]
            out.append(Mutation(seed, "zero", path, 0))
        if isinstance(path[-1], str):
            out.append(Mutation(seed, "delete", path))
        if isinstance(value, dict):
            out.append(Mutation(seed, "unknown_key", (*path, UNKNOWN_KEY), 1))
    out.append(Mutation(seed, "unknown_key", (UNKNOWN_KEY,), 1))
    return out


def apply(data: dict[str, Any], m: Mutation) -> dict[str, Any]:
    out = copy.deepcopy(data)
    parent: Any = out
    for part in m.path[:-1]:
        parent = parent[part]
    if m.kind == "delete":
        del parent[m.path[-1]]
    else:
        parent[m.path[-1]] = m.value
    return out


def expected_fields(m: Mutation) -> list[str]:
    """Field paths of which the message must name one."""
    if m.kind in MAYBE_VALID:  # the field, or an enclosing model's cross-field check
        return [render(m.path[:i]) for i in range(len(m.path), -1, -1)]
    if m.path[-1] == "kind":  # the workload union reports a bad discriminator on the workload
        return [m.render(), render(m.path[:-1])]
    return [m.render()]


def problem(m: Mutation, exit_code: int, output: str) -> str | None:
    """Why this outcome is wrong for mutation ``m``, or None when it is right."""
    if "Traceback" in output or "internal error" in output:
        return f"crash (exit {exit_code})"
    if exit_code in (0, 1):
        return None if m.kind in MAYBE_VALID else f"accepted (exit {exit_code})"
    if exit_code != 2:
        return f"exit {exit_code}"
    if not any(f": {f}" in output for f in expected_fields(m)):
        return f"message does not name {m.render()}"
    return None


COMMANDS = {
    "validate": ["validate"],
    "solve": ["solve", "--no-workbook", "--time-limit", "10"],
    # --demand-scale adds a variant, so deleting whatif: still leaves something to compare
    "compare": ["compare", "--no-workbook", "--jobs", "1", "--time-limit", "10", "--demand-scale", "1.25"],
}
SEEDS = {"validate": SEEDS_VALIDATE, "solve": SEEDS_SOLVE, "compare": SEEDS_COMPARE}
ALL = {cmd: [m for seed, data in SEEDS[cmd].items() for m in mutations(seed, data)] for cmd in COMMANDS}


def run(command: str, m: Mutation, folder: Path) -> tuple[int, str]:
    path = folder / "mutated.yaml"
    path.write_text(yaml.safe_dump(apply(SEEDS[command][m.seed], m), sort_keys=False), encoding="utf-8")
    res = run_cli(*COMMANDS[command], str(path))
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("malformed")


def _check(command: str, m: Mutation, folder: Path) -> None:
    code, output = run(command, m, folder)
    why = problem(m, code, output)
    assert why is None, f"{command} {m}: {why}\n{output}"


def examples(n: int) -> settings:
    """A fixed, reproducible number of examples, no deadline (solves vary), no example database."""
    return settings(max_examples=n, derandomize=True, deadline=None, database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@examples(150)
@given(m=st.sampled_from(ALL["validate"]))
def test_validate_refuses_malformed(folder: Path, m: Mutation) -> None:
    _check("validate", m, folder)


@examples(80)
@given(m=st.sampled_from(ALL["solve"]))
def test_solve_refuses_malformed(folder: Path, m: Mutation) -> None:
    _check("solve", m, folder)


@examples(50)
@given(m=st.sampled_from(ALL["compare"]))
def test_compare_refuses_malformed(folder: Path, m: Mutation) -> None:
    _check("compare", m, folder)


def test_seeds_are_valid(folder: Path) -> None:
    """The starting points themselves pass, so a refusal is the mutation's doing."""
    for seed, data in SEEDS_VALIDATE.items():
        path = folder / f"{seed}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        res = run_cli("validate", str(path))
        assert res.exit_code == 0, f"{seed}: {res.output}"
