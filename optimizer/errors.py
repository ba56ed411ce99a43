"""Typed errors. Library code raises these; only ``cli.py`` prints them and maps them to exit codes.

Exit codes (DESIGN.md, README): 0 success, 1 no feasible plan, 2 bad input or usage, 3 internal error
(a bug: the solver failed or the checker rejected a plan), 4 no plan found within the solver's limits.
"""

from __future__ import annotations


class ProcureError(Exception):
    """Base of every error procure raises on purpose."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None,
                 hint: str | None = None) -> None:
        self.message = message
        self.file = file
        self.field = field
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        """One readable message: where, what, and what to do."""
        where = ""
        if self.file and self.field:
            where = f"{self.file}: {self.field}: "
        elif self.file:
            where = f"{self.file}: "
        elif self.field:
            where = f"{self.field}: "
        text = f"{where}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ScenarioError(ProcureError):
    """A scenario file is missing, unreadable or invalid."""


class CatalogError(ProcureError):
    """A catalog entry or model config is missing or invalid, or a name is unknown."""


class UsageError(ProcureError):
    """A command-line argument is invalid."""


class InfeasibleError(ProcureError):
    """No plan satisfies the scenario's limits; the message says which limit binds and by how much."""

    exit_code = 1


class SolverLimitError(ProcureError):
    """The solver's time or node limit ended the search before it found any plan (not proven
    infeasible: a larger limit may find one)."""

    exit_code = 4


class SolverError(ProcureError):
    """The solver failed or returned something the checker rejects (a bug, reported loudly)."""

    exit_code = 3


class RackingError(SolverError):
    """The servers the MIP chose under its aggregate rack rows fit no layout in the racks it allowed.
    The pipeline answers it by re-solving with the exact per-rack rows; it reaches a user only if
    that fails."""


class PlacementError(SolverError):
    """No assignment of the MIP's replicas to numbered servers of ``sku`` exists. The pipeline
    answers it by re-solving with that SKU's exact spread rows; it reaches a user only if that fails."""

    def __init__(self, message: str, *, sku: str) -> None:
        self.sku = sku
        super().__init__(message)
