"""Bad model and sizing input: exit 2 with one clear message, never a traceback or a wrong number."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from optimizer.cli.common import FiniteFloat


@click.command()
@click.option("--x", type=FiniteFloat(0, 100, min_open=True))
def _probe(x: float) -> None:
    click.echo(repr(x))


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "0", "-1", "100.5", "abc"])
def test_finite_float_rejects(value: str) -> None:
    res = CliRunner().invoke(_probe, ["--x", value])
    assert res.exit_code == 2, res.output
    assert "'--x'" in res.output and "finite number > 0 and <= 100" in res.output


@pytest.mark.parametrize(("value", "expected"), [("5", 5.0), ("100", 100.0), ("1e-3", 0.001)])
def test_finite_float_accepts(value: str, expected: float) -> None:
    res = CliRunner().invoke(_probe, ["--x", value])
    assert res.exit_code == 0, res.output
    assert float(res.output) == expected
