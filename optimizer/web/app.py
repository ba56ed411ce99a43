"""The FastAPI application behind `procure serve`: the page, and the JSON API it uses.

API (docs/web.md has the table and examples):

* ``POST /api/solve`` and ``POST /api/compare`` take scenario YAML as the body and answer exactly
  what ``procure solve|compare SCENARIO --format json --no-workbook`` prints; ``GET
  /api/catalog/gpus|servers|cloud|models`` what ``procure catalog KIND --format json`` prints.
* Status codes follow the CLI's exit codes: 200 with a plan or with ``{"status": "infeasible"}``
  (exit 0 or 1; the exit code is also in the ``X-Procure-Exit-Code`` header), 400 bad input (exit
  2: the CLI's message in ``error``, the field path in ``field``), 422 no plan within the solver's
  limits (exit 4), 500 internal error (exit 3); and 404 unknown resource, 413 body too large, 429
  a solve is already running.

Every request body is capped; a scenario body is parsed by the strict loader with the CLI's
messages and may only read model, calibration and measured files in the allowed folders, and
never a workload's ``lengths_file`` (``sources``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import re
import tempfile
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from optimizer import __version__
from optimizer.errors import ProcureError
from optimizer.loaders import MAX_YAML_BYTES, ResolvedScenario, load_catalog, parse_yaml_bytes
from optimizer.report.inputs import validate_payload
from optimizer.report.payload import catalog_payload, finite_json, json_text
from optimizer.schema.plan import Plan
from optimizer.web.sources import Sources
from optimizer.web.worker import JobOutcome, SolveWorker, compare_job, error_body, solve_job

STATIC = Path(__file__).resolve().parent / "static"
CATALOG_KINDS = ("gpus", "servers", "cloud", "models")
#: A JSON list of page variants (each a scenario) for the comparison workbook.
MAX_VARIANTS = 20
MAX_VARIANTS_BYTES = 4_000_000
#: HTTP status of each CLI exit code (DESIGN.md: 0 ok, 1 infeasible, 2 bad input, 3 bug, 4 limits).
STATUS_OF_EXIT = {0: 200, 1: 200, 2: 400, 3: 500, 4: 422}
CACHE_SIZE = 32
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ApiError(Exception):
    """An HTTP error with a JSON body ``{"status": "error", "error": message, ...}``."""

    def __init__(self, status: int, message: str, *, hint: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse({"status": "error", "error": self.message, "message": self.message, "field": None,
                             "hint": self.hint, "file": None, "kind": "ApiError", "exit_code": None},
                            status_code=self.status, headers=self.headers)


class VariantIn(BaseModel):
    """One variant the page tried: its name and its scenario as YAML (or JSON) text."""

    name: str = Field(min_length=1, max_length=100)
    yaml: str = Field(min_length=1)
    source: str | None = Field(default=None, max_length=200)


class VariantsIn(BaseModel):
    variants: list[VariantIn] = Field(min_length=1, max_length=MAX_VARIANTS)


@dataclass
class Solved:
    rs: ResolvedScenario
    outcome: JobOutcome


def _json(data: Any, status: int = 200, exit_code: int | None = None) -> Response:
    headers = {} if exit_code is None else {"X-Procure-Exit-Code": str(exit_code)}
    return Response(json_text(data), status_code=status, media_type="application/json", headers=headers)


def _error(exc: ProcureError) -> Response:
    return _json(error_body(exc), STATUS_OF_EXIT.get(exc.exit_code, 400), exc.exit_code)


def _outcome(o: JobOutcome) -> Response:
    return _json(o.payload, STATUS_OF_EXIT.get(o.exit_code, 500) if o.kind == "error" else 200, o.exit_code)


def _internal(exc: BaseException) -> Response:
    text = (f"internal error: {type(exc).__name__}: {exc}\n"
            "  this is a bug in procure; rerun with PROCURE_DEBUG=1 for the traceback")
    return _json({"status": "error", "error": text, "message": text, "field": None, "hint": None, "file": None,
                  "kind": "InternalError", "exit_code": 3}, 500, 3)


def _guarded(fn: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """Typed errors become their status and message; anything else a 500 without a traceback."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return await fn(*args, **kwargs)
        except ApiError as exc:
            return exc.response()
        except ProcureError as exc:
            return _error(exc)
        except Exception as exc:
            import os

            if os.environ.get("PROCURE_DEBUG"):
                raise
            return _internal(exc)

    return wrapper


async def read_body(request: Request, cap: int, what: str) -> bytes:
    """The request body, refused with 413 past ``cap`` bytes (the length header is checked first;
    a chunked body is cut off as soon as it passes the cap)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise ApiError(413, f"{what} is larger than {cap:,} bytes", hint="a scenario is a few KB")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise ApiError(413, f"{what} is larger than {cap:,} bytes", hint="a scenario is a few KB")
        chunks.append(chunk)
    return b"".join(chunks)


def _filename(name: str | None, default: str, suffix: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name or default).stem).strip("-.") or Path(default).stem
    return stem[:80] + suffix


def _attachment(data: bytes | str, filename: str, media_type: str) -> Response:
    return Response(data, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def create_app(sources: Sources | None = None, worker: SolveWorker | None = None) -> FastAPI:
    """The application; ``worker`` defaults to a new solver process, started at the app's startup."""
    src = sources or Sources()
    work = worker or SolveWorker()
    cache: OrderedDict[str, Solved] = OrderedDict()
    state = {"busy": False}

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        work.warm()
        yield
        work.close()

    app = FastAPI(title="procure", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    async def load(raw: bytes, source: str | None) -> ResolvedScenario:
        return await run_in_threadpool(src.load, raw, source)

    async def run_job(what: str, fn: Callable[..., JobOutcome], *args: Any) -> JobOutcome:
        if state["busy"]:
            raise ApiError(429, f"a {work.progress.what or 'solve'} is already running; wait for it to finish "
                           "and send the request again", headers={"Retry-After": "2"})
        state["busy"] = True
        try:
            return await asyncio.wrap_future(work.submit(what, fn, *args))
        except BrokenProcessPool as exc:
            work.crashed()
            raise ApiError(500, "the solver process stopped during the solve (killed or out of memory); "
                           "a new one starts with the next request") from exc
        finally:
            state["busy"] = False
            work.finished()

    def key_of(raw: bytes, source: str | None) -> str:
        return hashlib.sha256((source or "").encode() + b"\0" + raw).hexdigest()

    async def solved(raw: bytes, source: str | None) -> Solved:
        """A solve of this exact text, from the cache or the worker (bad input raises first)."""
        key = key_of(raw, source)
        hit = cache.get(key)
        if hit is not None:
            cache.move_to_end(key)
            return hit
        rs = await load(raw, source)
        outcome = await run_job("solve", solve_job, raw, source, src)
        entry = Solved(rs, outcome)
        if outcome.kind != "error":
            cache[key] = entry
            while len(cache) > CACHE_SIZE:
                cache.popitem(last=False)
        return entry

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/health")
    @_guarded
    async def health() -> Response:
        return _json({"ok": True, "version": __version__})

    @app.get("/api/progress")
    @_guarded
    async def progress() -> Response:
        return _json(work.progress.as_json())

    @app.get("/api/scenarios")
    @_guarded
    async def scenarios() -> Response:
        listing = src.listing()
        initial = src.initial.name if src.initial is not None else None
        return _json({"initial": initial, "scenarios": [{"name": n, "initial": n == initial} for n in listing]})

    @app.get("/api/scenarios/{name}")
    @_guarded
    async def scenario_file(name: str) -> Response:
        path = src.listing().get(name)
        if path is None:
            raise ApiError(404, f"no scenario {name[:100]!r}", hint="GET /api/scenarios lists them")
        try:
            raw = path.read_bytes()[: MAX_YAML_BYTES + 1]
        except OSError as exc:
            raise ApiError(404, f"cannot read {path}: {exc.strerror or exc}") from exc
        return Response(raw, media_type="text/yaml; charset=utf-8")

    @app.post("/api/scenario/parse")
    @_guarded
    async def parse(request: Request, source: str | None = None) -> Response:
        """The scenario as JSON data for the form, with the first validation error (or null)."""
        raw = await read_body(request, MAX_YAML_BYTES, "the scenario")
        file = str(src.path_for(source))
        data = await run_in_threadpool(parse_yaml_bytes, raw, file)
        if not isinstance(data, dict):
            raise ApiError(400, f"{file}: expected a mapping of scenario fields at the top level",
                           hint="see scenarios/bank-rollout.yaml for the shape")
        error = None
        try:
            await load(raw, source)
        except ProcureError as exc:
            error = error_body(exc)
        return _json({"data": finite_json(json.loads(json.dumps(data, default=str))), "error": error})

    @app.post("/api/validate")
    @_guarded
    async def validate(request: Request, source: str | None = None) -> Response:
        """`procure validate --format json`: load, validate and resolve the scenario, without solving
        (the derived peak rates, length buckets and unmatched-measured warnings the page shows)."""
        rs = await load(await read_body(request, MAX_YAML_BYTES, "the scenario"), source)
        return _json(await run_in_threadpool(validate_payload, rs), exit_code=0)

    @app.post("/api/scenario/yaml")
    @_guarded
    async def to_yaml(request: Request, filename: str | None = None) -> Response:
        """The posted scenario (JSON from the page, or YAML) as a YAML file to download."""
        raw = await read_body(request, MAX_YAML_BYTES, "the scenario")
        data = await run_in_threadpool(parse_yaml_bytes, raw, "the edited scenario")
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
        return _attachment(text, _filename(filename, "scenario.yaml", ".yaml"), "text/yaml; charset=utf-8")

    @app.post("/api/solve")
    @_guarded
    async def solve(request: Request, source: str | None = None) -> Response:
        """`procure solve SCENARIO --format json --no-workbook`."""
        return _outcome((await solved(await read_body(request, MAX_YAML_BYTES, "the scenario"), source)).outcome)

    @app.post("/api/compare")
    @_guarded
    async def compare(request: Request, source: str | None = None) -> Response:
        """`procure compare SCENARIO --format json --no-workbook`."""
        raw = await read_body(request, MAX_YAML_BYTES, "the scenario")
        await load(raw, source)
        return _outcome(await run_job("comparison", compare_job, raw, source, src))

    @app.post("/api/workbook/plan")
    @_guarded
    async def plan_workbook(request: Request, source: str | None = None, filename: str | None = None) -> Response:
        """The plan workbook (`procure solve SCENARIO -o FILE`) of the posted scenario."""
        entry = await solved(await read_body(request, MAX_YAML_BYTES, "the scenario"), source)
        if entry.outcome.plan is None:
            return _outcome(entry.outcome)
        data = await run_in_threadpool(_plan_xlsx, entry.outcome.plan, entry.rs)
        return _attachment(data, _filename(filename, entry.rs.path.name, ".xlsx"), XLSX)

    @app.post("/api/workbook/compare")
    @_guarded
    async def compare_workbook(request: Request, filename: str | None = None) -> Response:
        """The comparison workbook of the variants the page tried (each a whole scenario)."""
        raw = await read_body(request, MAX_VARIANTS_BYTES, "the list of variants")
        try:
            body = VariantsIn.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise ApiError(400, f"{where}: {first['msg']}",
                           hint='send {"variants": [{"name": ..., "yaml": ...}, ...]}') from exc
        runs = []
        for v in body.variants:
            text = v.yaml.encode("utf-8", "surrogatepass")
            try:
                runs.append((v.name, await solved(text, v.source)))
            except ProcureError as exc:
                raise ApiError(400, f"variant {v.name!r}: {exc.render()}") from exc
        data = await run_in_threadpool(_compare_xlsx, runs)
        return _attachment(data, _filename(filename, "variants-compare.xlsx", ".xlsx"), XLSX)

    @app.get("/api/catalog/{kind}")
    @_guarded
    async def catalog(kind: str) -> Response:
        """`procure catalog KIND --format json`."""
        if kind not in CATALOG_KINDS:
            raise ApiError(404, f"unknown catalog {kind[:50]!r}", hint="use gpus, servers, cloud or models")
        return _json(catalog_payload(await run_in_threadpool(load_catalog), kind), exit_code=0)

    return app


def _plan_xlsx(plan: Plan, rs: ResolvedScenario) -> bytes:
    from optimizer.report.workbook import write_workbook

    with tempfile.TemporaryDirectory(prefix="procure-web-") as tmp:
        return write_workbook(plan, rs, Path(tmp) / "plan.xlsx").read_bytes()


def _compare_xlsx(runs: list[tuple[str, Solved]]) -> bytes:
    from optimizer.compare import Comparison, VariantResult, weighted_served
    from optimizer.report.compare_excel import write_compare_workbook

    seen: dict[str, int] = {}
    results: list[VariantResult] = []
    for name, s in runs:
        seen[name] = seen.get(name, 0) + 1
        label = name if seen[name] == 1 else f"{name} ({seen[name]})"
        sc = s.rs.scenario
        common: dict[str, Any] = dict(name=label, origin="base", group=len(results), budget=sc.constraints.budget,
                                      prices=dict(sc.prices), gpus=sc.constraints.gpus, demand_scale=1.0,
                                      budget_binds=None, full_demand_capex=None)
        plan = s.outcome.plan
        if plan is None:
            results.append(VariantResult(**common, status="infeasible", objective=None,
                                         reason=str(s.outcome.payload.get("reason"))))
            continue
        weighted, requests, by_w = weighted_served(plan, s.rs)
        results.append(VariantResult(
            **common, status=plan.status, objective=plan.solver.objective_name, capex=plan.capex, tco=plan.tco,
            power_kw=plan.power_kw, facility_power_kw=plan.facility_power_kw,
            servers=sum(line.count for line in plan.servers), gpus_by_type=dict(sorted(plan.gpus_by_type.items())),
            served_fraction=weighted, served_requests_fraction=requests, served_by_workload=by_w,
            solve_time_s=plan.solver.solve_time_s, gap=plan.gap, plan=plan))
    first = runs[0][1].rs
    workloads: list[str] = []
    priorities: dict[str, float] = {}
    for _, s in runs:
        for w in s.rs.scenario.workloads:
            if w.name not in priorities:
                workloads.append(w.name)
                priorities[w.name] = getattr(w, "priority", 1.0)
    result = Comparison(scenario=first.scenario.name, scenario_file=str(first.path), currency=first.scenario.currency,
                        horizon_years=first.scenario.horizon_years, objective=first.scenario.objective,
                        workloads=workloads, priorities=priorities, variants=results, jobs=1, wall_time_s=0.0)
    with tempfile.TemporaryDirectory(prefix="procure-web-") as tmp:
        return write_compare_workbook(result, first, Path(tmp) / "compare.xlsx",
                                      scenarios=[s.rs for _, s in runs]).read_bytes()
