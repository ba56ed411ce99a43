"""Scenarios the page can load, and the strict reading of a scenario posted as text.

A posted scenario is read with the same strict loader and messages as a file
(:func:`optimizer.loaders.load_scenario_text`). It has no folder of its own: it is anchored where
its source is (the file given to ``procure serve``, or a shipped scenario), else in the shipped
scenarios folder. Relative (or absolute) ``model:`` and ``calibration:`` paths in it may only reach
files inside the catalogs folder, the shipped scenarios folder and the folder of the file given on
the command line: the page must not read ``/etc/passwd`` through a model path. The same holds for
``measured_file:``. A workload's ``lengths_file:`` is refused outright (before anything is read):
a request names no file for the server to bin; it sends the buckets as ``lengths:``.
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optimizer.errors import ScenarioError
from optimizer.loaders import (
    REPO_ROOT,
    ResolvedScenario,
    catalog_root,
    load_catalog,
    model_config_path,
    parse_yaml_bytes,
    scenario_from_data,
)

#: The name a posted scenario without a known source is given (in the shipped scenarios folder).
POSTED_NAME = "posted.yaml"


def scenarios_root() -> Path:
    """The shipped scenarios: the wheel's copy (``optimizer/_scenarios``), else the checkout's."""
    shipped = importlib.resources.files("optimizer") / "_scenarios"
    if isinstance(shipped, Path) and shipped.is_dir():
        return shipped
    return REPO_ROOT / "scenarios"


@dataclass(frozen=True)
class Sources:
    """The scenario files the page offers and the folders a posted scenario may read from."""

    initial: Path | None = None   # the file given to `procure serve`, if any

    def listing(self) -> dict[str, Path]:
        """Name shown on the page -> file: the command-line file first, then the shipped ones."""
        out: dict[str, Path] = {}
        if self.initial is not None:
            out[self.initial.name] = self.initial
        root = scenarios_root()
        if root.is_dir():
            for p in sorted(root.glob("*.yaml")):
                out.setdefault(p.name, p)
        return out

    def roots(self) -> tuple[Path, ...]:
        found = [catalog_root(), scenarios_root()]
        if self.initial is not None:
            found.append(self.initial.parent)
        return tuple(Path(os.path.realpath(r)) for r in found)

    def path_for(self, source: str | None) -> Path:
        """Where a posted scenario is anchored: its source's file, else ``scenarios/posted.yaml``."""
        if source:
            hit = self.listing().get(source)
            if hit is not None:
                return hit
        return scenarios_root() / POSTED_NAME

    def load(self, raw: bytes, source: str | None) -> ResolvedScenario:
        """Parse, guard and resolve a posted scenario (ScenarioError with the field path)."""
        path = self.path_for(source)
        data = parse_yaml_bytes(raw, str(path))
        if isinstance(data, dict):
            self.guard(data, path)
        return scenario_from_data(data, path)

    def guard(self, data: dict[str, Any], path: Path) -> None:
        """Refuse any lengths_file, and model, calibration and measured_file paths that reach outside
        the allowed folders."""
        roots = self.roots()
        catalog = load_catalog()
        names = {n.lower() for m in catalog.models.values() for n in (m.name, m.hf_id, *m.aliases)}
        workloads = data.get("workloads")
        for i, w in enumerate(workloads if isinstance(workloads, list) else []):
            if isinstance(w, dict) and "lengths_file" in w:
                raise ScenarioError(
                    "lengths_file is not read from a web request (the server reads no file a request names)",
                    file=str(path), field=f"workloads[{i}].lengths_file",
                    hint="give the buckets as lengths: [{input_tokens, output_tokens, share}, ...]; "
                         "`procure validate FILE --format json` prints them from your request file")
            spec = w.get("model") if isinstance(w, dict) else None
            if not isinstance(spec, str) or spec.strip().lower() in names:
                continue
            hit = model_config_path(spec, path.parent)
            if hit is not None and not _inside(hit, roots):
                raise ScenarioError(
                    f"model path {spec[:200]!r} is outside the folders the web app reads", file=str(path),
                    field=f"workloads[{i}].model",
                    hint="use a catalog model (`procure catalog models`), or put the config.json under "
                         "catalogs/models/ (or PROCURE_CATALOG) or beside the scenario given to `procure serve`")
        cal = data.get("calibration")
        if isinstance(cal, str) and not _inside(path.parent / cal, roots):
            raise ScenarioError(f"calibration path {cal[:200]!r} is outside the folders the web app reads",
                                file=str(path), field="calibration",
                                hint="put the calibration file beside the scenario given to `procure serve`")
        mfile = data.get("measured_file")
        if isinstance(mfile, str) and not _inside(path.parent / mfile, roots):
            raise ScenarioError(f"measured_file path {mfile[:200]!r} is outside the folders the web app reads",
                                file=str(path), field="measured_file",
                                hint="put the measured file beside the scenario given to `procure serve`, or "
                                     "give its entries as measured: in the scenario")


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    try:
        real = Path(os.path.realpath(path))
    except (OSError, ValueError):
        return False
    return any(real == r or real.is_relative_to(r) for r in roots)
