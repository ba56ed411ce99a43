"""Options and output helpers shared by the commands."""

from __future__ import annotations

import math
from typing import Any

import click
from rich.console import Console

from optimizer.report.payload import finite_json, json_text

__all__ = ["FORMAT_OPTION", "FiniteFloat", "finite_json", "print_json", "stdout"]

FORMAT_OPTION = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
    help="table: readable rich tables; json: one JSON object on stdout for other tools.")


def stdout() -> Console:
    return Console(soft_wrap=False, width=max(120, Console().width))


def print_json(data: Any) -> None:
    """One strict JSON object on stdout (no NaN or Infinity tokens)."""
    click.echo(json_text(data))


class FiniteFloat(click.ParamType):
    """A float option that must be finite and inside a range.

    ``click.FloatRange`` accepts ``inf`` and ``nan`` (``nan`` even passes its bounds checks), which
    then flow into sizes and prices as silently wrong numbers. This type rejects them and checks
    ``min``/``max`` (open when ``min_open``/``max_open``), so a bad value exits 2 with click's
    "Invalid value for '--option'" message naming the option, the value and the allowed range.
    """

    name = "float"

    def __init__(self, min: float | None = None, max: float | None = None, *,
                 min_open: bool = False, max_open: bool = False) -> None:
        self.min = min
        self.max = max
        self.min_open = min_open
        self.max_open = max_open

    def describe_range(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"{'>' if self.min_open else '>='} {self.min:g}")
        if self.max is not None:
            parts.append(f"{'<' if self.max_open else '<='} {self.max:g}")
        return "a finite number" + (" " + " and ".join(parts) if parts else "")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, bool):
            self.fail(f"{value!r} is not a number; expected {self.describe_range()}.", param, ctx)
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number; expected {self.describe_range()}.", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not finite; expected {self.describe_range()}.", param, ctx)
        low_bad = self.min is not None and (number <= self.min if self.min_open else number < self.min)
        high_bad = self.max is not None and (number >= self.max if self.max_open else number > self.max)
        if low_bad or high_bad:
            self.fail(f"{value!r} is out of range; expected {self.describe_range()}.", param, ctx)
        return number

    def __repr__(self) -> str:
        return f"FiniteFloat({self.min!r}, {self.max!r}, min_open={self.min_open}, max_open={self.max_open})"
