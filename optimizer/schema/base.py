"""Base models for every boundary: unknown keys are errors, numbers are finite and typed as written.

``strict=True`` keeps YAML's types: ``true`` is not the number 1 and ``"8"`` is not the integer 8
(an integer is still accepted where a float is expected). ``allow_inf_nan=False`` refuses ``.inf``
and ``.nan``, so no non-finite number reaches the sizing, the MIP or the JSON output.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

#: Longest name (scenario, workload, variant) accepted; a value is echoed at most this long.
NAME_MAX_CHARS = 80


def _printable(value: str) -> str:
    """Refuse control characters (they corrupt terminals and cannot be stored in a workbook)."""
    bad = next((ch for ch in value if unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\t\n"), None)
    if bad is not None:
        raise ValueError(f"contains the control character {bad!r}; use printable text only")
    return value


#: A short printable name: a scenario, workload or what-if variant.
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_CHARS),
                 AfterValidator(_printable)]
#: A catalog reference or path (a model id, a GPU or server name): printable, at most 300 characters.
Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300),
                AfterValidator(_printable)]
#: Free text (descriptions): printable, at most 2,000 characters.
Text = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_printable)]


class Record(BaseModel):
    """A result record (plans, comparisons): unknown keys rejected."""

    model_config = ConfigDict(extra="forbid")


class Strict(BaseModel):
    """User input and catalog data: unknown keys rejected, immutable once loaded, finite numbers,
    no silent type coercion."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
