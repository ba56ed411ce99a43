"""The `procure` command line. Only this package talks to the terminal.

Each command lives in its own module and raises ``optimizer.errors`` types; ``ProcureGroup`` turns
them into one clear message on stderr and the exit code from DESIGN.md (0 ok, 1 infeasible, 2 bad
input). No traceback reaches the user unless PROCURE_DEBUG=1.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from optimizer import __version__
from optimizer.cli.calibrate import calibrate_command
from optimizer.cli.catalog import catalog_command
from optimizer.cli.compare import compare_command
from optimizer.cli.perf import perf_command
from optimizer.cli.serve import serve_command
from optimizer.cli.size import size_command
from optimizer.cli.solve import solve_command
from optimizer.cli.validate import validate_command
from optimizer.errors import ProcureError


class ProcureGroup(click.Group):
    """A click group that maps procure's typed errors to messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ProcureError as exc:
            # escape: a user's value such as "[/bold]" is text, not markup (it raised MarkupError)
            Console(stderr=True, highlight=False).print(
                f"[bold red]error:[/] {escape(exc.render())}", markup=True, soft_wrap=True)
            sys.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:
            if os.environ.get("PROCURE_DEBUG"):
                raise
            click.echo(f"internal error: {type(exc).__name__}: {exc}\n"
                       "  this is a bug in procure; rerun with PROCURE_DEBUG=1 for the traceback",
                       err=True)
            sys.exit(3)


@click.group(cls=ProcureGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="procure")
def main() -> None:
    """procure: the cheapest set of GPUs and servers that serves your LLM workloads.

    Size models exactly, predict SLO-limited throughput, solve the purchase as a MIP, and write
    an Excel bill of materials. Exit codes: 0 ok, 1 no feasible plan, 2 bad input.
    """


for _command in (validate_command, catalog_command, size_command, perf_command, calibrate_command, solve_command,
                 compare_command, serve_command):
    main.add_command(_command)
