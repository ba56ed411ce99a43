"""Read YAML and config.json files into the typed schema.

Every error names the file, the field path (``workloads[1].slo.tpot_ms``) and what to do, and
unknown names come with the closest catalog name.
"""

from __future__ import annotations

import difflib
import importlib.resources
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from optimizer import yaml_safe
from optimizer.errors import CatalogError, ProcureError, ScenarioError
from optimizer.schema.catalog import GPU, Catalog, ModelSource, QuoteItem, Server
from optimizer.schema.measured import MeasuredEntry, MeasuredFile
from optimizer.schema.scenario import InventoryItem, Scenario, ScenarioCatalog
from optimizer.sizing.architecture import ModelArch, parse_config
from optimizer.sizing.quant import is_gguf

T = TypeVar("T", bound=BaseModel)

REPO_ROOT = Path(__file__).resolve().parent.parent  # the source checkout (in an installed wheel: site-packages)


def catalog_root() -> Path:
    """The catalogs: $PROCURE_CATALOG if set; else the copy a wheel ships as package data
    (``optimizer/_catalogs``, built from the repository's ``catalogs/`` by pyproject.toml/setup.py);
    else, in a source checkout or an editable install, the repository's ``catalogs/`` folder."""
    env = os.environ.get("PROCURE_CATALOG")
    if env:
        return Path(env)
    shipped = importlib.resources.files("optimizer") / "_catalogs"
    if isinstance(shipped, Path) and shipped.is_dir():
        return shipped
    return REPO_ROOT / "catalogs"


UNION_TAGS = {"inference", "finetune"}  # pydantic puts the discriminator tag into error locations
DEMAND_TAGS = {"users", "daily", "hourly"}  # the same for a workload's demand form


def field_path(loc: Iterable[int | str]) -> str:
    """Render a pydantic error location as ``workloads[1].slo.tpot_ms``; a bad dict key
    (``("prices", 1, "[key]")``) as ``prices.1 (key)``; huge or unprintable keys quoted and cut."""
    parts = list(loc)
    out = ""
    prev: int | str | None = None
    for i, part in enumerate(parts):
        if (isinstance(prev, int) and part in UNION_TAGS) or (prev == "demand" and part in DEMAND_TAGS):
            prev = part
            continue
        prev = part
        if part == "requests_per_s_by_year":  # written as requests_per_s: [per year] (the schema splits it)
            part = "requests_per_s"
        if part == "[key]":
            out += " (key)"
        elif isinstance(part, int) and not (i + 1 < len(parts) and parts[i + 1] == "[key]"):
            out += f"[{part}]"
        else:
            text = str(part)
            if len(text) > 80 or not text.isprintable():  # a huge or odd dict key: quote and cut it
                text = yaml_safe.shorten(text)
            out += f".{text}" if out else text
    return out or "(top level)"


def closest(name: str, choices: Iterable[str] | Mapping[str, str]) -> str | None:
    """Closest known name, case-insensitive, or None when nothing is near. A mapping of alias ->
    canonical name matches against aliases too ("H2O" finds H20-96GB through its alias "H20")."""
    pool = ({k.lower(): v for k, v in choices.items()} if isinstance(choices, Mapping)
            else {c.lower(): c for c in choices})
    hit = difflib.get_close_matches(name.lower(), list(pool), n=1, cutoff=0.5)
    return pool[hit[0]] if hit else None


#: Largest YAML file read (scenarios are a few KB, the catalogs ~30 KB; the pure-Python parser
#: needs seconds per MB, so a bound keeps a wrong file from looking like a hang).
MAX_YAML_BYTES = 1_000_000


def read_yaml(path: Path, error: type[ProcureError] = ScenarioError) -> Any:
    """Parse a YAML file with :class:`optimizer.yaml_safe.StrictLoader`. Missing, unreadable,
    oversized or non-UTF-8 files, syntax errors and the input the strict loader refuses (duplicate
    keys, tags, control characters, deep nesting, alias bombs) become ``error`` with the line."""
    file = str(path)
    if not path.exists():
        hint = ("check the path; the shipped scenarios live in scenarios/" if error is ScenarioError
                else "the catalog is incomplete: reinstall procure or point PROCURE_CATALOG at a catalogs/ folder")
        raise error("file not found", file=file, hint=hint)
    if path.is_dir():
        raise error("is a directory, expected a YAML file", file=file)
    if not path.is_file():  # a FIFO or device (/dev/zero) would block or never end
        raise error("not a regular file, expected a YAML file", file=file)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise error(f"cannot read file: {exc.strerror or exc}", file=file) from exc
    return parse_yaml_bytes(raw, file, error)


def parse_yaml_bytes(raw: bytes, file: str, error: type[ProcureError] = ScenarioError) -> Any:
    """The checks and parse of :func:`read_yaml` on bytes already read (a file, or the body of a web
    request): size, UTF-8, the strict loader; errors name ``file`` as read_yaml's do."""
    if len(raw) > MAX_YAML_BYTES:
        raise error(f"file is larger than {MAX_YAML_BYTES // 1_000_000} MB; procure reads YAML files "
                    "up to that size", file=file, hint="check it is the right file; a scenario is a few KB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise error(f"not UTF-8 text: byte 0x{raw[exc.start]:02x} on line {line} cannot be decoded",
                    file=file, hint="save the file as UTF-8 (without a UTF-16 byte-order mark)") from exc
    try:
        return yaml_safe.load(text)
    except yaml_safe.StrictYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise error(f"{where}{exc.problem}", file=file, field=field_path(exc.loc) if exc.loc else None,
                    hint=exc.hint) from exc
    except yaml.reader.ReaderError as exc:
        line = text[:exc.position].count("\n") + 1
        raise error(f"line {line}: unacceptable character U+{exc.character:04X} ({exc.reason})"
                    if isinstance(exc.character, int) else f"line {line}: {exc.reason}", file=file,
                    hint="remove it; use printable UTF-8 text only") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = _clip(getattr(exc, "problem", None) or str(exc), 200)
        raise error(f"YAML syntax error at {where}{problem}", file=file,
                    hint="fix the indentation or quoting on that line") from exc
    except (RecursionError, MemoryError) as exc:
        raise error(f"too deeply nested or too large to load ({type(exc).__name__})", file=file,
                    hint="check for unclosed brackets or repeated aliases") from exc


def _clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis and the full length."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def validation_error(exc: ValidationError, file: str, prefix: str = "",
                     error: type[ProcureError] = ScenarioError) -> ProcureError:
    """First pydantic error as a ProcureError naming the field path and what to do."""
    first = exc.errors()[0]
    loc = field_path([*([prefix] if prefix else []), *first["loc"]])
    kind = first["type"]
    msg = first["msg"]
    hint = None
    if kind == "extra_forbidden":
        msg = "unknown key"
        hint = "remove it or check its spelling against docs/scenario.md"
    elif kind == "missing":
        msg = "required field is missing"
        hint = "add it; see docs/scenario.md for every field"
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        msg = f"wrong type: {msg} (got {yaml_safe.shorten(first.get('input'))})"
    elif kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    return error(_clip(msg, 500), file=file, field=loc, hint=hint)


def _entries(path: Path, key: str, cls: type[T]) -> dict[str, T]:
    data = read_yaml(path, CatalogError)
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise CatalogError(f"expected a top-level '{key}:' list", file=str(path))
    out: dict[str, T] = {}
    for i, raw in enumerate(data[key]):
        try:
            entry = cls.model_validate(raw)
        except ValidationError as exc:
            raise validation_error(exc, str(path), f"{key}[{i}]", CatalogError) from exc
        name = entry.name  # type: ignore[attr-defined]
        if name in out:
            raise CatalogError(f"duplicate name {name!r}", file=str(path), field=f"{key}[{i}].name")
        out[name] = entry
    return out


@lru_cache(maxsize=8)
def _load_catalog_cached(root: Path) -> Catalog:
    gpus = _entries(root / "gpus.yaml", "gpus", GPU)
    servers = _entries(root / "servers.yaml", "servers", Server)
    models = _entries(root / "models" / "sources.yaml", "models", ModelSource)
    quote_file = root / "quote_items.yaml"
    quote_items = _entries(quote_file, "quote_items", QuoteItem) if quote_file.exists() else {}
    for s in servers.values():
        for g in s.compatible_gpus:
            if g not in gpus:
                raise CatalogError(f"server {s.name} lists unknown GPU {g!r}",
                                   file=str(root / "servers.yaml"), hint=_suggest(g, gpus))
    cloud_file = root / "cloud.yaml"
    if cloud_file.exists():
        servers = {**servers, **_cloud_instances(cloud_file, gpus, servers)}
    return Catalog(gpus=gpus, servers=servers, models=models, quote_items=quote_items)


def _cloud_instances(path: Path, gpus: dict[str, GPU], servers: dict[str, Server]) -> dict[str, Server]:
    """The rentable instance types of catalogs/cloud.yaml: each a Server with ``hourly_usd``,
    ``provider`` and ``region``, naming catalog GPUs, its name and aliases clear of servers.yaml's."""
    instances = _entries(path, "instances", Server)
    taken = _names(servers.values())
    for i, s in enumerate(instances.values()):
        missing = [f for f in ("hourly_usd", "provider", "region") if getattr(s, f) is None]
        if missing:
            raise CatalogError(f"instance {s.name} lacks {', '.join(missing)}", file=str(path),
                               field=f"instances[{i}]", hint="every cloud instance type gives its "
                               "on-demand hourly_usd, provider and the region its prices are for")
        for g in s.compatible_gpus:
            if g not in gpus:
                raise CatalogError(f"instance {s.name} lists unknown GPU {g!r}", file=str(path),
                                   field=f"instances[{i}].compatible_gpus", hint=_suggest(g, gpus))
        for label in [s.name, *s.aliases]:
            if label.lower() in taken:
                raise CatalogError(f"instance {s.name}: {label!r} is already the server "
                                   f"{taken[label.lower()]!r} of servers.yaml", file=str(path),
                                   field=f"instances[{i}]", hint="rename the instance type")
    return instances


def load_catalog(root: Path | None = None) -> Catalog:
    """Load GPUs, servers and the model registry from ``root`` (default: catalogs/)."""
    return _load_catalog_cached((root or catalog_root()).resolve())


def _suggest(name: str, choices: Iterable[str] | Mapping[str, str]) -> str | None:
    near = closest(name, choices)
    return f"did you mean {near!r}?" if near else None


def _names(entries: Iterable[GPU | Server | ModelSource]) -> dict[str, str]:
    """Lower-cased name and alias -> canonical name."""
    out: dict[str, str] = {}
    for e in entries:
        out[e.name.lower()] = e.name
        for a in e.aliases:
            out.setdefault(a.lower(), e.name)
        if isinstance(e, ModelSource):
            out.setdefault(e.hf_id.lower(), e.name)
    return out


def _resolve(name: str, entries: dict[str, T], kind: str, command: str) -> T:
    names = _names(entries.values())  # type: ignore[arg-type]
    hit = names.get(name.strip().lower())
    if hit is None:
        raise CatalogError(f"unknown {kind} {name!r}", hint=_suggest(name, names)
                           or f"run `procure catalog {command}` to list them")
    return entries[hit]


def resolve_gpu(name: str, catalog: Catalog) -> GPU:
    """Catalog GPU by name or alias (case-insensitive)."""
    return _resolve(name, catalog.gpus, "GPU", "gpus")


def resolve_server(name: str, catalog: Catalog) -> Server:
    """Catalog server by name or alias (case-insensitive)."""
    return _resolve(name, catalog.servers, "server", "servers")


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    config: dict[str, Any]
    path: Path
    source: ModelSource | None


def read_config_json(path: Path) -> dict[str, Any]:
    """A Hugging Face config.json as a dict; errors name the file."""
    if not path.exists():
        raise CatalogError("model config not found", file=str(path))
    if path.is_dir():
        raise CatalogError("is a directory, expected a config.json", file=str(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise CatalogError(f"not UTF-8 text (byte {exc.start}: {exc.reason}); a config.json is UTF-8 JSON",
                           file=str(path), hint="use the model's Hugging Face config.json unchanged") from exc
    except OSError as exc:
        raise CatalogError(f"cannot read file: {exc.strerror or exc}", file=str(path)) from exc
    except json.JSONDecodeError as exc:
        raise CatalogError(f"invalid JSON at line {exc.lineno}: {exc.msg}", file=str(path)) from exc
    except RecursionError as exc:
        raise CatalogError("JSON nested too deeply", file=str(path)) from exc
    if not isinstance(data, dict):
        raise CatalogError("expected a JSON object (a Hugging Face config.json)", file=str(path))
    return data


def model_config_path(spec: str, base: Path | None = None) -> Path | None:
    """The config.json a path-like (not catalog-named) model ``spec`` reads, or None: tried against
    ``base`` (the scenario's folder), the working directory and catalogs/models/, where a dropped-in
    ``NAME.json`` or ``NAME/config.json`` is found by NAME. The web app's path guard asks this same
    function, so it checks the file that would be read."""
    looks_like_path = spec.endswith(".json") or "/" in spec or os.sep in spec
    # a config.json dropped into catalogs/models/ (as NAME.json or NAME/config.json) needs no registry entry
    dropped = catalog_root() / "models"
    for root in [*([base] if base else []), Path.cwd(), dropped]:
        try:
            cand = (root / spec) if not Path(spec).is_absolute() else Path(spec)
            if root is dropped and not looks_like_path:
                cand = cand.with_name(cand.name + ".json") if not cand.is_dir() else cand
            if cand.is_dir():
                cand = cand / "config.json"
            if cand.is_file():
                return cand
        except (OSError, ValueError):  # a name too long, a NUL byte: nothing to read there
            continue
    return None


def resolve_model(spec: str, catalog: Catalog, base: Path | None = None) -> ResolvedModel:
    """A model by catalog name, HF id or alias, or a path to a config.json (or its folder).

    Relative paths are tried against ``base`` (the scenario's folder), the working directory and
    catalogs/models/, where a dropped-in ``NAME.json`` or ``NAME/config.json`` is found by NAME.
    """
    names = _names(catalog.models.values())
    hit = names.get(spec.strip().lower())
    if hit is not None:
        src = catalog.models[hit]
        path = catalog_root() / "models" / src.config_file
        return ResolvedModel(name=src.name, config=read_config_json(path), path=path, source=src)
    looks_like_path = spec.endswith(".json") or "/" in spec or os.sep in spec
    cand = model_config_path(spec, base)
    if cand is not None:
        return ResolvedModel(name=cand.parent.name if cand.name == "config.json" else cand.stem,
                             config=read_config_json(cand), path=cand, source=None)
    hint = _suggest(spec, names)
    if looks_like_path and spec.endswith(".json"):
        raise CatalogError(f"model config {spec!r} not found", hint="check the path to the config.json")
    raise CatalogError(f"unknown model {spec!r}",
                       hint=hint or "run `procure catalog models`, or give a path to a config.json")


# --- scenarios ---------------------------------------------------------------------------------



@dataclass(frozen=True)
class ResolvedScenario:
    """A validated scenario with every name resolved against the catalog."""

    scenario: Scenario
    path: Path
    catalog: Catalog
    gpus: dict[str, GPU]            # allowed GPUs by canonical name
    servers: dict[str, Server]      # allowed servers (taking at least one allowed GPU)
    models: dict[str, ResolvedModel]  # by workload name
    declared: frozenset[str] = frozenset()  # GPU and server names the scenario's catalog: declares
    #: cloud instance types (shipped cloud.yaml and declared) taking an allowed GPU, by name: what a
    #: plan may rent (objective hourly rents only these; ``constraints.rent`` lets a plan over periods)
    rentable: Mapping[str, Server] = dc_field(default_factory=dict)
    #: measured: entries then measured_file's, model and GPU names resolved to the catalog's
    measured: tuple[MeasuredEntry, ...] = ()

    @property
    def calibration_path(self) -> Path | None:
        """The scenario's ``calibration:`` file, relative to the scenario's folder; None if unset."""
        return calibration_path(self.scenario, self.path)


def calibration_path(scenario: Scenario, path: Path) -> Path | None:
    """Where ``calibration:`` of the scenario at ``path`` points (relative to its folder)."""
    return (path.parent / scenario.calibration) if scenario.calibration else None


def load_scenario(path: Path | str, catalog: Catalog | None = None) -> ResolvedScenario:
    """Read, validate and resolve a scenario file."""
    path = Path(path)
    return scenario_from_data(read_yaml(path), path, catalog)


def load_scenario_text(raw: bytes, path: Path, catalog: Catalog | None = None) -> ResolvedScenario:
    """A scenario from YAML bytes (a web request's body) with the checks and messages of a file;
    ``path`` names it in errors and anchors relative paths in it, as a file's location does."""
    return scenario_from_data(parse_yaml_bytes(raw, str(path)), path, catalog)


def scenario_from_data(data: Any, path: Path, catalog: Catalog | None = None) -> ResolvedScenario:
    """Validate and resolve parsed scenario YAML (what :func:`load_scenario` does after reading)."""
    if not isinstance(data, dict):
        raise ScenarioError("expected a mapping of scenario fields at the top level", file=str(path),
                            hint="see scenarios/bank-rollout.yaml for the shape")
    from optimizer.request_log import expand_lengths_files

    data = expand_lengths_files(data, path)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, str(path)) from exc
    return resolve_scenario(scenario, path, catalog or load_catalog())


def _check_calibration(cal_path: Path, file: str) -> None:
    """The scenario's ``calibration:`` must be a readable calibration file (from `procure calibrate`)."""
    from optimizer.sizing.calibration import load_calibration

    if not cal_path.is_file():
        raise ScenarioError(f"calibration file {cal_path} not found", file=file, field="calibration",
                            hint="the path is relative to the scenario's folder; write the file with "
                                 "`procure calibrate`, or remove calibration:")
    try:
        load_calibration(cal_path)
    except CatalogError as exc:
        where = exc.file or str(cal_path)
        detail = f" ({exc.field})" if exc.field else ""
        raise ScenarioError(f"{where}{detail}: {exc.message}", file=file, field="calibration",
                            hint=exc.hint or "write one with `procure calibrate`, or remove calibration:") from exc


def _context_source(arch: ModelArch) -> str:
    if arch.max_context > arch.max_position_embeddings:
        return f"max_position_embeddings {arch.max_position_embeddings:,} with its rope_scaling"
    return "max_position_embeddings"


# --- scenario-declared catalog entries ----------------------------------------------------------

def _declared_source(entry: Any, file: str) -> dict[str, Any]:
    """The entry's fields with ``replaces`` dropped and every source marked as scenario-declared,
    so each place that shows a catalog source says where the entry came from."""
    data: dict[str, Any] = entry.model_dump(exclude={"replaces"})
    mark = f"scenario-declared ({Path(file).name} catalog:): "
    data["source"] = mark + data["source"]
    for key in ("price", "base_price"):
        if data.get(key):
            data[key]["source"] = mark + data[key]["source"]
    return data


def _merge_entries(shipped: dict[str, T], declared: list[Any], cls: type[T], kind: str, field: str,
                   file: str) -> tuple[dict[str, T], dict[str, str]]:
    """``shipped`` with ``declared`` added (a ``replaces`` entry stands in for the shipped one);
    returns the merged entries and {replaced name: new name}. A clash of names or aliases with a
    shipped or earlier declared entry is a ScenarioError naming both."""
    out = dict(shipped)
    renamed: dict[str, str] = {}
    for i, entry in enumerate(declared):
        merged = cls.model_validate(_declared_source(entry, file))
        name = merged.name  # type: ignore[attr-defined]
        if out.get(name) == merged:
            continue  # already merged (a scenario re-resolved with overrides)
        if entry.replaces is not None:
            hit = _names(out.values()).get(entry.replaces.strip().lower())  # type: ignore[arg-type]
            if hit is None:
                raise ScenarioError(f"replaces names unknown {kind} {entry.replaces!r}", file=file,
                                    field=f"{field}[{i}].replaces", hint=_suggest(entry.replaces, _names(
                                        out.values())) or f"run `procure catalog {kind.lower()}s` to list them")  # type: ignore[arg-type]
            del out[hit]
            renamed[hit] = name
        taken = _names(out.values())  # type: ignore[arg-type]
        for label in [name, *merged.aliases]:  # type: ignore[attr-defined]
            owner = taken.get(label.lower())
            if owner is not None:
                what = "its name" if owner.lower() == label.lower() else f"an alias of {owner}"
                raise ScenarioError(
                    f"{kind} {name!r} clashes with the {kind} {owner!r} already in the catalog "
                    f"({label!r} is {what})", file=file, field=f"{field}[{i}]",
                    hint=f"rename it, or add `replaces: {owner}` to stand in for the shipped entry")
        out[name] = merged
    return out, renamed


def merge_declared(catalog: Catalog, declared: ScenarioCatalog, file: str) -> tuple[Catalog, frozenset[str]]:
    """The catalog with a scenario's ``catalog:`` GPUs and servers merged in, and their names.

    Declared servers must name GPUs of the merged catalog (canonical names or aliases); a GPU that
    ``replaces`` a shipped one takes its place in the shipped servers' ``compatible_gpus``."""
    gpus, renamed = _merge_entries(catalog.gpus, declared.gpus, GPU, "GPU", "catalog.gpus", file)
    servers = {k: (s.model_copy(update={"compatible_gpus": [renamed.get(g, g) for g in s.compatible_gpus]})
                   if any(g in renamed for g in s.compatible_gpus) else s) for k, s in catalog.servers.items()}
    gpu_names = _names(gpus.values())
    mine = []
    for i, s in enumerate(declared.servers):
        fixed = []
        for j, g in enumerate(s.compatible_gpus):
            hit = gpu_names.get(g.strip().lower())
            if hit is None:
                raise ScenarioError(f"server {s.name} lists unknown GPU {g!r}", file=file,
                                    field=f"catalog.servers[{i}].compatible_gpus[{j}]",
                                    hint=_suggest(g, gpu_names) or "declare it under catalog.gpus")
            fixed.append(hit)
        mine.append(s.model_copy(update={"compatible_gpus": fixed}))
    servers, _ = _merge_entries(servers, mine, Server, "server", "catalog.servers", file)
    names = frozenset({g.name for g in declared.gpus} | {s.name for s in declared.servers})
    return (Catalog(gpus=gpus, servers=servers, models=catalog.models, quote_items=catalog.quote_items), names)


def _allowed_servers(scenario: Scenario, catalog: Catalog, gpus: dict[str, GPU], file: str) -> dict[str, Server]:
    """The servers a scenario may use. Objective ``hourly`` rents cloud instance types (servers with
    ``hourly_usd``) and every other objective buys servers: omitted ``constraints.servers`` means
    every one of that kind taking an allowed GPU, and a named one of the other kind is an error."""
    c = scenario.constraints
    hourly = scenario.objective == "hourly"
    both = scenario.periods is not None  # periods: servers are bought, cloud instances rented per year
    if c.servers is None:
        return {s.name: s for s in catalog.servers.values()
                if (both or s.cloud == hourly) and any(g in gpus for g in s.compatible_gpus)}
    servers: dict[str, Server] = {}
    for i, name in enumerate(c.servers):
        try:
            s = resolve_server(name, catalog)
        except CatalogError as exc:
            raise ScenarioError(exc.message, file=file, field=f"constraints.servers[{i}]", hint=exc.hint) from exc
        if hourly and not s.cloud:
            raise ScenarioError(f"objective hourly needs an hourly price for every allowed server; {s.name} "
                                "has no hourly_usd", file=file, field=f"constraints.servers[{i}]",
                                hint="drop it, or declare a cloud instance type with hourly_usd under catalog.servers")
        if not hourly and s.cloud and not both:
            raise ScenarioError(f"{s.name} is a cloud instance type (hourly_usd) with no purchase price; "
                                f"objective {scenario.objective} buys servers", file=file,
                                field=f"constraints.servers[{i}]", hint="use objective: hourly, or drop it")
        servers[s.name] = s
    return servers


def inventory_key(item: InventoryItem, catalog: Catalog) -> str:
    """The canonical SKU key (chassis/GPU/population) of an inventory item; CatalogError names
    what does not resolve or fit."""
    if item.sku is not None:
        parts = item.sku.split("/")
        if len(parts) != 3 or not parts[2].isdigit():
            raise CatalogError(f"inventory sku {_clip(item.sku, 80)!r} is not chassis/GPU/population",
                               hint="e.g. DGX-A100-640GB/A100-SXM-80GB/8, or give server, gpu and gpus_per_server")
        server_name, gpu_name, count = parts[0], parts[1], int(parts[2])
    else:
        assert item.server is not None and item.gpu is not None and item.gpus_per_server is not None
        server_name, gpu_name, count = item.server, item.gpu, item.gpus_per_server
    server = resolve_server(server_name, catalog)
    gpu = resolve_gpu(gpu_name, catalog)
    if server.cloud:
        raise CatalogError(f"inventory: {server.name} is a cloud instance type, not a server owned",
                           hint="list owned servers only; cloud instances are rented per period")
    if gpu.name not in server.compatible_gpus:
        raise CatalogError(f"inventory: {server.name} does not take {gpu.name}",
                           hint=f"it takes {', '.join(server.compatible_gpus)}")
    if count not in server.allowed_populations:
        raise CatalogError(f"inventory: {server.name} holds {sorted(server.allowed_populations)} GPUs, not {count}",
                           hint="give gpus_per_server as one of those")
    return f"{server.name}/{gpu.name}/{count}"


def _check_periods(scenario: Scenario, catalog: Catalog, path: Path) -> None:
    """Inventory SKUs and per-year models resolve against the catalog (exit 2 naming the field)."""
    file = str(path)
    for i, item in enumerate(scenario.inventory):
        try:
            inventory_key(item, catalog)
        except CatalogError as exc:
            raise ScenarioError(exc.message, file=file, field=f"inventory[{i}]", hint=exc.hint) from exc
    for i, w in enumerate(scenario.workloads):
        for j, name in enumerate(getattr(w, "model_by_year", None) or []):
            try:
                resolve_model(name, catalog, base=path.parent)
            except CatalogError as exc:
                raise ScenarioError(exc.message, file=file, field=f"workloads[{i}].model_by_year[{j}]",
                                    hint=exc.hint) from exc
    periods = scenario.periods
    if periods is not None:
        known = _names([*catalog.gpus.values(), *catalog.servers.values()])
        for name in periods.prices:
            if name.lower() not in known:
                raise ScenarioError(f"per-year price for unknown item {_clip(name, 80)!r}", file=file,
                                    field=f"periods.prices.{_clip(name, 80)}", hint=_suggest(name, known))


def resolve_scenario(scenario: Scenario, path: Path, catalog: Catalog) -> ResolvedScenario:
    """Merge the scenario's ``catalog:`` entries; resolve GPU, server and model names; check
    precisions can run on some allowed GPU."""
    file = str(path)
    declared: frozenset[str] = frozenset()
    if scenario.catalog is not None:
        catalog, declared = merge_declared(catalog, scenario.catalog, file)

    def gpu(name: str, field: str) -> GPU:
        try:
            return resolve_gpu(name, catalog)
        except CatalogError as exc:
            raise ScenarioError(exc.message, file=file, field=field, hint=exc.hint) from exc

    c = scenario.constraints
    if c.gpus is None:
        gpus = {n: g for n, g in catalog.gpus.items() if g.datacenter_licensed or c.allow_consumer_gpus}
    else:
        gpus = {}
        for i, name in enumerate(c.gpus):
            g = gpu(name, f"constraints.gpus[{i}]")
            gpus[g.name] = g
    for name in c.availability:
        gpu(name, f"constraints.availability.{name}")
    servers = _allowed_servers(scenario, catalog, gpus, file)
    rentable = {n: s for n, s in catalog.cloud.items() if any(g in gpus for g in s.compatible_gpus)}
    if c.rent and scenario.objective != "hourly":
        raise ScenarioError(f"constraints.rent: renting beside buying is priced per period, and objective "
                            f"{scenario.objective} plans one purchase", file=file, field="constraints.rent",
                            hint="use objective: hourly to plan on cloud instance types only, or remove rent:")
    if not any(g in gpus for s in servers.values() for g in s.compatible_gpus):
        if scenario.objective == "hourly":
            raise ScenarioError("objective hourly: no allowed cloud instance type takes an allowed GPU",
                                file=file, field="constraints", hint="allow a GPU of the shipped instance "
                                "types (`procure catalog cloud`), or declare cloud instance types (servers "
                                "with hourly_usd) under catalog.servers; docs/scenario.md")
        raise ScenarioError("no allowed server takes any allowed GPU", file=file,
                            field="constraints", hint="allow a server whose compatible_gpus "
                            "include one of constraints.gpus (see `procure catalog servers`)")
    known = _names([*catalog.gpus.values(), *catalog.servers.values()])

    def priced(prices: Mapping[str, float], field: str) -> None:
        for name in prices:
            if name.lower() not in known:
                raise ScenarioError(f"price override for unknown item {_clip(name, 80)!r}", file=file,
                                    field=f"{field}.{_clip(name, 80)}", hint=_suggest(name, known))

    priced(scenario.prices, "prices")
    quote_known = {q.lower(): q for q in catalog.quote_items}
    for field, names in (("quote.prices", scenario.quote.prices), ("quote.fractions", scenario.quote.fractions)):
        for name in names:
            item = catalog.quote_items.get(quote_known.get(name.lower(), ""))
            want_fraction = field == "quote.fractions"
            if item is None or (item.fraction is not None) != want_fraction:
                raise ScenarioError(f"{field} names {_clip(name, 80)!r}, not a quote item priced by "
                                    f"{'fraction' if want_fraction else 'unit price'}", file=file,
                                    field=f"{field}.{_clip(name, 80)}", hint=_suggest(name, quote_known))
    models: dict[str, ResolvedModel] = {}
    for i, w in enumerate(scenario.workloads):
        try:
            models[w.name] = resolve_model(w.model, catalog, base=path.parent)
        except CatalogError as exc:
            where = f"{exc.file}: " if exc.file else ""
            raise ScenarioError(where + exc.message, file=file, field=f"workloads[{i}].model",
                                hint=exc.hint) from exc
        try:
            arch = parse_config(models[w.name].config, models[w.name].name, file=str(models[w.name].path))
        except CatalogError as exc:
            raise ScenarioError(
                f"model config {models[w.name].path} is unusable: {exc.field + ': ' if exc.field else ''}"
                f"{exc.message}", file=file, field=f"workloads[{i}].model", hint=exc.hint) from exc
        context, context_field = ((w.max_context, "max_context") if w.kind == "inference"
                                  else (w.seq_len, "seq_len"))
        if context > arch.max_context:
            raise ScenarioError(
                f"{context_field} {context:,} exceeds the {arch.max_context:,} positions "
                f"{models[w.name].name} supports ({_context_source(arch)}, {models[w.name].path})",
                file=file, field=f"workloads[{i}].{context_field}",
                hint=f"lower {context_field} to at most {arch.max_context:,}, or use a long-context "
                     "variant of the model (a config with rope_scaling)")
        if w.kind == "inference":
            gguf = [p for p in w.precisions if is_gguf(p)]
            if gguf:
                raise ScenarioError(
                    f"precision {', '.join(gguf)} is a GGUF (llama.cpp/Ollama) type; llama.cpp is not "
                    "one of the modelled serving engines (vLLM, SGLang, TensorRT-LLM), so it cannot "
                    "be planned", file=file, field=f"workloads[{i}].precisions",
                    hint="plan with an engine format (bf16, fp8, int8, int4, nvfp4, mxfp4, w8a8, w4a8); "
                         "`procure size MODEL --precision q4_k_m` still gives the GGUF file size and memory")
            usable = [g for g in gpus.values() if any(g.runs(p) for p in w.precisions)]
            if not usable:
                raise ScenarioError(
                    f"none of the precisions {w.precisions} runs on the allowed GPUs "
                    f"({', '.join(gpus)})", file=file, field=f"workloads[{i}].precisions",
                    hint="add bf16 or int4, or allow a GPU with fp8 support (Hopper, Ada, Blackwell, MI300)")
    _check_periods(scenario, catalog, path)
    calibration = calibration_path(scenario, path)
    if calibration is not None:
        _check_calibration(calibration, file)
    for v_i, v in enumerate(scenario.whatif):
        for g_i, name in enumerate(v.gpus or []):
            gpu(name, f"whatif[{v_i}].gpus[{g_i}]")
        priced(v.prices, f"whatif[{v_i}].prices")
    return ResolvedScenario(scenario=scenario, path=path, catalog=catalog, gpus=gpus,
                            servers=servers, models=models, declared=declared, rentable=rentable,
                            measured=resolve_measured(scenario, path, catalog, models))


def _catalog_model_name(spec: str, catalog: Catalog) -> str | None:
    """The catalog name of a model given by name, Hugging Face id or alias (case-insensitive)."""
    key = spec.strip().lower()
    for m in catalog.models.values():
        if key in {n.lower() for n in (m.name, m.hf_id, *m.aliases)}:
            return m.name
    return None


def read_measured_file(path: Path, file: str) -> list[MeasuredEntry]:
    """The entries of a ``measured_file:`` (a mapping with ``measured:``, or a bare list)."""
    if not path.is_file():
        raise ScenarioError(f"measured file {path} not found", file=file, field="measured_file",
                            hint="the path is relative to the scenario's folder; write one with "
                                 "`procure calibrate --capacity`, or remove measured_file:")
    data = read_yaml(path)
    if isinstance(data, list):
        data = {"measured": data}
    if not isinstance(data, dict):
        raise ScenarioError("expected a mapping with a measured: list", file=str(path),
                            hint="write it with `procure calibrate --capacity`")
    try:
        return MeasuredFile.model_validate(data).measured
    except ValidationError as exc:
        raise validation_error(exc, str(path)) from exc


def resolve_measured(scenario: Scenario, path: Path, catalog: Catalog,
                     models: Mapping[str, ResolvedModel] | None = None) -> tuple[MeasuredEntry, ...]:
    """The scenario's measured: entries and its measured_file's, with model and GPU names resolved;
    two entries for the same deployment at the same SLO are an error.

    An entry's model is a catalog model (name, Hugging Face id or alias) or exactly one of the
    workloads' own ``model:`` values (``models``, already resolved): an entry never names a file of
    its own, so no path in a measured list is ever opened (the web app reads no file a request
    names)."""
    own = {w.model: models[w.name].name for w in scenario.workloads if models and w.name in models}
    from optimizer.sizing.measured import duplicates, label

    sources: list[tuple[str, str, MeasuredEntry]] = [
        (str(path), f"measured[{i}]", e) for i, e in enumerate(scenario.measured)]
    if scenario.measured_file:
        mfile = path.parent / scenario.measured_file
        sources += [(str(mfile), f"measured[{i}]", e)
                    for i, e in enumerate(read_measured_file(mfile, str(path)))]
    out: list[MeasuredEntry] = []
    for file, where, e in sources:
        model = own.get(e.model) or _catalog_model_name(e.model, catalog)
        if model is None:
            raise ScenarioError(f"model {e.model[:200]!r} is neither a catalog model nor one of the workloads' "
                                "models", file=file, field=f"{where}.model",
                                hint="name the model as a workload names it, or by its catalog name "
                                     "(`procure catalog models`)")
        try:
            gpu = resolve_gpu(e.gpu, catalog).name
        except CatalogError as exc:
            raise ScenarioError(exc.message, file=file, field=f"{where}.gpu", hint=exc.hint) from exc
        out.append(e.model_copy(update={"model": model, "gpu": gpu}))
    for first, later in duplicates(out):
        f_file, f_where, _ = sources[first]
        raise ScenarioError(f"duplicates {f_where} of {f_file} (same deployment and SLO): {label(out[later])}",
                            file=sources[later][0], field=sources[later][1],
                            hint="keep one measurement per deployment and SLO")
    return tuple(out)
