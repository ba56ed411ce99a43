"""Fitting the throughput model's efficiency factors to measurements, and calibration files.

A calibration file (YAML, ``catalogs/calibration/<engine>-v<version>.yaml`` or one written by
``procure calibrate``) holds, per GPU family (``GPU.architecture``, e.g. ``Hopper``), ONE small set
of :class:`~optimizer.sizing.perf.Efficiency` factors for one engine, the fit's residual table and
median / worst absolute percentage error, and optionally measured points that override the model
for their exact (model, GPU, TP, PP, precision).

Fit (``fit_family``): minimise ``sum_i log(pred_i / measured_i)^2`` (+ a weak pull toward a prior
when the data are few) over ``theta = (compute, memory_bw, step_overhead_ms, layer_overhead_us)``
with ``scipy.optimize.least_squares`` (trust-region reflective; bounds in :data:`BOUNDS`:
``compute in [0.05, 1]``, ``memory_bw in [0.05, 0.9]``, step overhead ``[0, 50] ms``, layer
overhead ``[0, 1000] us``). Log error makes a 10% miss on a 300 tok/s row weigh as
much as on a 30,000 tok/s row. ``pred_i`` is the offline output tokens/s of
:func:`optimizer.sizing.perf.replica_perf` at the row's batch limit.

Engine rules used to predict each row:

* ``trtllm`` (trtllm-bench throughput): KV cache = ``kv_cache_free_gpu_mem_fraction`` (0.95, the
  perf-overview setting) of the memory left after weights, activations and the CUDA context
  (TensorRT-LLM ``KvCacheConfig.free_gpu_memory_fraction``); batch cap 4096
  (``tensorrt_llm/bench/build/tuning.py``: ``min(kv_cache_max_requests, 4096)``).
* ``vllm``: KV cache from :func:`optimizer.sizing.memory.serving_memory` (vLLM rules), batch cap
  ``max_num_seqs`` 256 (vLLM default).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from dataclasses import fields as dataclass_fields
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from optimizer import yaml_safe
from optimizer.engines import trtllm as trtllm_engine
from optimizer.engines import vllm_v0
from optimizer.engines.base import EngineDefaults
from optimizer.errors import CatalogError, UsageError
from optimizer.schema.catalog import GPU, Catalog
from optimizer.schema.engine import EngineSettings
from optimizer.sizing.architecture import ModelArch
from optimizer.sizing.memory import (
    KV_BYTES,
    serving_memory,
)
from optimizer.sizing.perf import Efficiency, MeasuredPoint, replica_perf

#: Shipped calibration per engine (file name under ``catalogs/calibration/``).
SHIPPED = {"trtllm": "trtllm-v1.0.yaml", "vllm": "vllm-published.yaml", "sglang": "sglang-published.yaml",
           "mindie": "mindie-published.yaml", "vllm-ascend": "vllm-published.yaml"}  # vLLM-Ascend rows: vllm file
#: trtllm-bench's KV fraction in the perf overview ("--kv_cache_free_gpu_mem_fraction 0.95").
TRTLLM_KV_FRACTION = trtllm_engine.TRTLLM_KV_FRACTION


#: The one table of per-engine defaults, from the engine profiles (``optimizer/engines/``;
#: see :class:`~optimizer.engines.base.EngineDefaults` for the sources).
ENGINE_DEFAULTS = {"trtllm": trtllm_engine.DEFAULTS, "vllm": vllm_v0.DEFAULTS}
#: KV-reservation rule per engine (see ``perf`` module docstring, "Batch limits").
KV_RESERVE = {k: v.kv_reserve_output_fraction for k, v in ENGINE_DEFAULTS.items()}
#: Batch cap per engine: trtllm-bench ``finetune_setting`` caps at 4096; vLLM ``max_num_seqs``.
MAX_BATCH = {k: v.max_num_seqs for k, v in ENGINE_DEFAULTS.items()}


def engine_defaults(engine: str) -> EngineDefaults:
    """Defaults of ``engine`` (``trtllm`` or ``vllm``); UsageError naming the known ones otherwise."""
    try:
        return ENGINE_DEFAULTS[engine]
    except KeyError:
        raise UsageError(f"unknown engine {engine!r}", field="engine",
                         hint=f"use one of {', '.join(ENGINE_DEFAULTS)}") from None
#: TensorRT-LLM ``max_num_tokens`` default used as the activation workspace of the estimate.
TRTLLM_MAX_NUM_TOKENS = trtllm_engine.TRTLLM_MAX_NUM_TOKENS
#: Fitted parameters and their bounds. ``memory_bw`` is capped at 0.9: coalesced weight loads
#: reach ~84% of H100's 3.35 TB/s in Nsight Compute measurements (mikamirai.com/blog/
#: gpu-memory-bandwidth, 2026-03-28) and the fit left unbounded runs to the 1.0 wall, which no
#: real kernel reaches (an effective factor absorbing model error; see docs/perf.md).
FIT_PARAMS = ("compute", "memory_bw", "step_overhead_ms", "layer_overhead_us")
BOUNDS = ((0.05, 0.05, 0.0, 0.0), (1.0, 0.9, 50.0, 1000.0))
#: Starting point / prior when nothing else is known (estimate: ~50% MFU, ~75% of HBM peak, 2 ms).
PRIOR = Efficiency(compute=0.5, memory_bw=0.75, step_overhead_ms=2.0, layer_overhead_us=50.0)
PRECISIONS = {"fp8": "fp8", "bf16": "bf16", "fp16": "fp16", "int8": "int8", "int4": "int4",
              "fp32": "fp32", "w8a8": "int8", "awq": "int4", "gptq": "int4"}


@dataclass(frozen=True)
class CalibrationRow(MeasuredPoint):
    """One measured or published throughput of a whole replica, with the engine that produced it."""

    engine: str = "trtllm"

    def point(self) -> MeasuredPoint:
        fields = {f.name: getattr(self, f.name) for f in dataclass_fields(MeasuredPoint)}
        return MeasuredPoint(**fields)


@dataclass(frozen=True)
class Residual:
    row: CalibrationRow
    predicted: float
    batch: int

    @property
    def error_pct(self) -> float:
        return (self.predicted / self.row.output_tokens_per_s - 1.0) * 100.0


# ------------------------------------------------------------------------------------------
# Engine memory rules
# ------------------------------------------------------------------------------------------


def trtllm_kv_cache_tokens(arch: ModelArch, gpu: GPU, *, tp: int, pp: int, precision: str,
                           kv_dtype: str, fraction: float = TRTLLM_KV_FRACTION) -> int:
    """KV tokens TensorRT-LLM allocates (:func:`optimizer.engines.trtllm.kv_cache_tokens`, the one
    rule ``perf``, ``size`` and the planner share) on ``gpu``'s memory."""
    return trtllm_engine.kv_cache_tokens(arch, precision, gpu.memory_gib, tp, pp, kv_dtype=kv_dtype,
                                         fraction=fraction)


def kv_cache_tokens(arch: ModelArch, gpu: GPU, *, engine: str, tp: int, pp: int, precision: str,
                    kv_dtype: str, max_model_len: int, memory_fraction: float | None = None,
                    ep: int = 1, dp: int = 1) -> int:
    """KV-cache tokens under ``engine``'s memory rule (module docstring); ``memory_fraction``
    overrides the engine's ``kv_memory_fraction``. With a MoE layout (``ep``/``dp``, docs/perf.md
    "MoE layouts") the figure is ONE attention-DP rank's cache (``ServingMemory.kv_cache_tokens``;
    the replica holds ``dp x`` it, ``ServingMemory.replica_kv_tokens``), as ``replica_perf`` takes it."""
    if engine == "trtllm":
        return trtllm_engine.kv_cache_tokens(arch, precision, gpu.memory_gib, tp, pp, kv_dtype=kv_dtype,
                                             fraction=memory_fraction or TRTLLM_KV_FRACTION, ep=ep, dp=dp)
    kw: dict[str, Any] = {"kv_dtype": kv_dtype}
    if memory_fraction is not None:
        kw["gpu_memory_utilization"] = memory_fraction
    mem = serving_memory(arch, precision, gpu_memory_gib=gpu.memory_gib, tp=tp, pp=pp,
                         settings=EngineSettings(**kw), max_model_len=max_model_len, ep=ep, dp=dp)
    return mem.kv_cache_tokens


def predict_row(row: CalibrationRow, arch: ModelArch, gpu: GPU, eff: Efficiency) -> tuple[float, int]:
    """Model's offline output tokens/s (and batch) for ``row`` under ``eff`` (no measured override)."""
    kv = kv_cache_tokens(arch, gpu, engine=row.engine, tp=row.tp, pp=row.pp, precision=row.precision,
                         kv_dtype=row.kv_dtype, max_model_len=row.input_tokens + row.output_tokens)
    eff = replace(eff, kv_reserve_output_fraction=KV_RESERVE.get(row.engine, 1.0), measured=())
    perf = replica_perf(arch, gpu, tp=row.tp, pp=row.pp, precision=row.precision,
                        kv_dtype=row.kv_dtype, input_tokens=row.input_tokens,
                        output_tokens=row.output_tokens, kv_cache_tokens=kv,
                        max_num_seqs=MAX_BATCH.get(row.engine, 256), efficiency=eff, measured=())
    return perf.output_tokens_per_s, perf.batch


# ------------------------------------------------------------------------------------------
# Fitting
# ------------------------------------------------------------------------------------------


def _with(eff: Efficiency, theta: Sequence[float]) -> Efficiency:
    return replace(eff, compute=float(theta[0]), memory_bw=float(theta[1]),
                   step_overhead_ms=float(theta[2]), layer_overhead_us=float(theta[3]))


def fit_family(rows: Sequence[CalibrationRow], resolved: Sequence[tuple[ModelArch, GPU]], *,
               prior: Efficiency = PRIOR, prior_weight: float | None = None) -> tuple[Efficiency, list[Residual]]:
    """Least squares on log error for one family's rows (see the module docstring).

    ``prior_weight`` (default ``0.05`` when fewer rows than 2 x parameters, else 0) adds residuals
    ``w x log(theta_j / prior_j)`` (overhead: ``w x (theta - prior) / 1 ms``) so that one or two
    measurements move the factors without making them arbitrary.
    """
    from scipy.optimize import least_squares  # type: ignore[import-untyped]

    if not rows:
        raise UsageError("no rows to fit")
    w = prior_weight if prior_weight is not None else (0.05 if len(rows) < 2 * len(FIT_PARAMS) else 0.0)
    p0 = [prior.compute, prior.memory_bw, prior.step_overhead_ms, prior.layer_overhead_us]

    def resid(theta: Sequence[float]) -> list[float]:
        eff = _with(prior, theta)
        out = []
        for row, (arch, gpu) in zip(rows, resolved, strict=True):
            pred, _ = predict_row(row, arch, gpu, eff)
            out.append(math.log(max(pred, 1e-9) / row.output_tokens_per_s))
        if w:
            out += [w * math.log(theta[0] / p0[0]), w * math.log(theta[1] / p0[1]),
                    w * (theta[2] - p0[2]), w * (theta[3] - p0[3]) / 100.0]
        return out

    start = [min(max(v, lo + 1e-6), hi - 1e-6) for v, lo, hi in zip(p0, *BOUNDS, strict=True)]
    res = least_squares(resid, start, bounds=BOUNDS, method="trf", diff_step=1e-3, xtol=1e-10,
                        ftol=1e-10, max_nfev=400)
    best = _with(prior, res.x)
    table = [Residual(row, *predict_row(row, arch, gpu, best))
             for row, (arch, gpu) in zip(rows, resolved, strict=True)]
    return best, table


def error_summary(table: Iterable[Residual]) -> tuple[float, float]:
    """(median, worst) absolute percentage error of a residual table."""
    errs = [abs(r.error_pct) for r in table]
    if not errs:
        return 0.0, 0.0
    return statistics.median(errs), max(errs)


# ------------------------------------------------------------------------------------------
# Reading measurements
# ------------------------------------------------------------------------------------------


def _precision(value: Any, where: str) -> str:
    text = str(value).strip().lower().split()[0] if value else ""
    if text not in PRECISIONS:
        raise UsageError(f"unknown precision {value!r}", file=where, field="precision",
                         hint=f"use one of {', '.join(sorted(set(PRECISIONS.values())))}")
    return PRECISIONS[text]


def _canonical(kind: str, name: str, catalog: Catalog | None, where: str) -> str:
    """Catalog name for a GPU or model given loosely (``H200 SXM 141GB`` -> ``H200-SXM-141GB``)."""
    if catalog is None:
        return name
    from optimizer.loaders import resolve_gpu, resolve_model

    if kind == "gpu":
        for cand in (name, name.replace(" ", "-")):
            try:
                return resolve_gpu(cand, catalog).name
            except CatalogError:
                continue
        raise CatalogError(f"unknown GPU {name!r}", file=where, field="gpu",
                           hint="use a catalog GPU name (`procure catalog gpus`)")
    try:
        return resolve_model(name, catalog).name
    except CatalogError as exc:
        raise CatalogError(f"unknown model {name!r}", file=where, field="model",
                           hint="use a catalog model name or HF id (`procure catalog models`)") from exc


#: Upper bounds on measured values (beyond them a row is a typo: 10^12 tok/s, TP 10^6).
MAX_PARALLEL = 1024
MAX_ROW_TOKENS = 100_000_000
MAX_THROUGHPUT = 1e9
MAX_LATENCY_MS = 1e8


def _number(value: Any, where: str, column: str, *, integer: bool, hi: float,
            positive: bool = True) -> float:
    """A finite, positive (whole, when ``integer``) number from a CSV cell, YAML or JSON value;
    UsageError naming the file/row and the column otherwise (``true`` is not a number here)."""
    kind = "a positive whole number" if integer else "a positive number"
    ok = not isinstance(value, bool)
    number = math.nan
    if ok:
        try:
            number = float(value.strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            ok = False
    if not ok or not math.isfinite(number) or (integer and not number.is_integer()) \
            or (positive and number <= 0) or number > hi:
        raise UsageError(f"must be {kind} (at most {hi:g}), got {value!r}", file=where, field=column,
                         hint="fix the value in that row; throughput and latencies must be measured, finite figures")
    return number


def _row_from_mapping(d: dict[str, Any], where: str, catalog: Catalog | None, engine: str,
                      defaults: dict[str, Any]) -> CalibrationRow:
    data = {**{k: v for k, v in defaults.items() if v is not None}, **d}

    def need(*keys: str) -> tuple[str, Any]:
        for k in keys:
            if data.get(k) not in (None, ""):
                return k, data[k]
        raise UsageError(f"missing {keys[0]!r}", file=where, field=keys[0],
                         hint="columns: model, gpu, tp, precision, input_tokens, output_tokens, "
                              "output_tokens_per_s")

    def integer(*keys: str, hi: float) -> int:
        key, value = need(*keys)
        return int(_number(value, where, key, integer=True, hi=hi))

    def optional(key: str) -> float | None:
        value = data.get(key)
        return None if value in (None, "") else _number(value, where, key, integer=False, hi=MAX_LATENCY_MS)

    kv_dtype = str(data.get("kv_dtype") or "auto").strip().lower()
    if kv_dtype not in KV_BYTES:
        raise UsageError(f"unknown kv_dtype {data.get('kv_dtype')!r}", file=where, field="kv_dtype",
                         hint=f"use one of {', '.join(KV_BYTES)}")
    row_engine = str(data.get("engine") or engine)
    if row_engine not in ENGINE_DEFAULTS:
        raise UsageError(f"unknown engine {row_engine!r}", file=where, field="engine",
                         hint=f"use one of {', '.join(ENGINE_DEFAULTS)}")
    pp = data.get("pp")
    row = CalibrationRow(
        model=_canonical("model", str(need("model")[1]), catalog, where),
        gpu=_canonical("gpu", str(need("gpu")[1]), catalog, where),
        tp=integer("tp", hi=MAX_PARALLEL),
        pp=1 if pp in (None, "") else int(_number(pp, where, "pp", integer=True, hi=MAX_PARALLEL)),
        precision=_precision(need("precision", "weights")[1], where),
        kv_dtype=kv_dtype,
        input_tokens=integer("input_tokens", "input_len", hi=MAX_ROW_TOKENS),
        output_tokens=integer("output_tokens", "output_len", hi=MAX_ROW_TOKENS),
        output_tokens_per_s=_number(need("output_tokens_per_s")[1], where, "output_tokens_per_s",
                                    integer=False, hi=MAX_THROUGHPUT),
        engine=row_engine,
        ttft_ms=optional("ttft_ms"),
        tpot_ms=optional("tpot_ms"),
        source=str(data.get("source") or where),
    )
    if catalog is not None:
        _check_row_layout(row, catalog, where)
    return row


def _check_row_layout(row: CalibrationRow, catalog: Catalog, where: str) -> None:
    """The row's TP/PP/precision must be a layout the model and GPU can run (``sizing.layout``)."""
    from optimizer.loaders import resolve_gpu, resolve_model
    from optimizer.sizing.architecture import parse_config
    from optimizer.sizing.layout import check_layout

    m = resolve_model(row.model, catalog)
    arch = parse_config(m.config, m.name, file=str(m.path))
    check_layout(arch, resolve_gpu(row.gpu, catalog), tp=row.tp, pp=row.pp, precision=row.precision,
                 kv_dtype=row.kv_dtype, file=where,
                 options={"tp": "tp (column or --tp)", "pp": "pp (column or --pp)",
                          "precision": "precision (column or --precision)",
                          "kv_dtype": "kv_dtype (column or --kv-dtype)"})


def _vllm_bench_row(d: dict[str, Any], where: str, catalog: Catalog | None, engine: str,
                    defaults: dict[str, Any]) -> CalibrationRow:
    """A ``vllm bench serve --save-result`` JSON (vLLM ``benchmarks/benchmark_serving.py``):
    ``output_throughput`` (output tok/s), ``completed``, ``total_input_tokens``,
    ``total_output_tokens``, ``mean_ttft_ms``, ``mean_tpot_ms``, ``model_id``, ``request_rate``.
    It does not record the GPU, TP or precision: they come from ``defaults`` (command options)."""
    if d.get("completed") in (None, "", 0):
        raise UsageError("vllm bench result has no completed requests", file=where, field="completed")
    completed = int(_number(d.get("completed"), where, "completed", integer=True, hi=1e12))
    totals = {}
    for key in ("total_input_tokens", "total_output_tokens"):
        if d.get(key) is None:
            raise UsageError(f"vllm bench result has no {key!r}", file=where, field=key,
                             hint="use the JSON `vllm bench serve --save-result` writes, unchanged")
        totals[key] = _number(d[key], where, key, integer=False, hi=1e15)
    rate = d.get("request_rate", "inf")
    if str(rate) != "inf" or d.get("max_concurrency") not in (None, "None"):
        raise UsageError(
            f"vllm bench result ran at request_rate={rate}, max_concurrency={d.get('max_concurrency')}: "
            "it measures that load, not the replica's capacity", file=where, field="request_rate",
            hint="calibrate on runs with --request-rate inf and no --max-concurrency")
    mapping = {
        "model": defaults.get("model") or d.get("model_id"),
        "input_tokens": max(1, round(totals["total_input_tokens"] / completed)),
        "output_tokens": max(1, round(totals["total_output_tokens"] / completed)),
        "output_tokens_per_s": d.get("output_throughput"),
        "ttft_ms": d.get("mean_ttft_ms"),
        "tpot_ms": d.get("mean_tpot_ms"),
        "engine": "vllm",
        "source": f"{where} (vllm bench serve, {d.get('date', 'undated')})",
    }
    return _row_from_mapping(mapping, where, catalog, "vllm",
                             {k: v for k, v in defaults.items() if k != "model"})


def read_measurements(paths: Iterable[Path], *, catalog: Catalog | None = None, engine: str = "vllm",
                      defaults: dict[str, Any] | None = None) -> list[CalibrationRow]:
    """Rows from CSV (header ``model,gpu,tp,precision,input_tokens,output_tokens,
    output_tokens_per_s[,pp,kv_dtype,ttft_ms,tpot_ms]``), YAML (a list of such mappings, or a
    mapping with ``rows:`` as in the shared perf-overview file) and ``vllm bench serve`` JSON.
    ``defaults`` (gpu, tp, precision, model, kv_dtype) fill columns a file lacks."""
    defaults = defaults or {}
    out: list[CalibrationRow] = []
    for path in paths:
        where = str(path)
        if not path.is_file():
            raise UsageError("measurement file not found", file=where)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"not UTF-8 text (byte {exc.start}: {exc.reason})", file=where,
                             hint="save the measurements as UTF-8 CSV, YAML or JSON") from exc
        except OSError as exc:
            raise UsageError(f"cannot read file: {exc.strerror or exc}", file=where) from exc
        suffix = path.suffix.lower()
        if suffix == ".csv":
            for i, rec in enumerate(csv.DictReader(text.splitlines())):
                clean = {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in rec.items() if k}
                out.append(_row_from_mapping(clean, f"{where}:row {i + 2}", catalog, engine, defaults))
            continue
        if suffix == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise UsageError(f"invalid JSON at line {exc.lineno}: {exc.msg}", file=where) from exc
            items = data if isinstance(data, list) else [data]
            for item in items:
                if not isinstance(item, dict):
                    raise UsageError("expected a JSON object", file=where)
                if "output_throughput" in item:
                    out.append(_vllm_bench_row(item, where, catalog, engine, defaults))
                else:
                    out.append(_row_from_mapping(item, where, catalog, engine, defaults))
            continue
        try:
            data = yaml_safe.load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"YAML syntax error: {exc}", file=where) from exc
        meta: dict[str, Any] = {}
        if isinstance(data, dict):
            meta = {"source": data.get("source")} if data.get("source") else {}
            data = data.get("rows", data.get("measurements"))
        if not isinstance(data, list):
            raise UsageError("expected a list of measurements (or a mapping with rows:)", file=where)
        for i, item in enumerate(data):
            if not isinstance(item, dict):
                raise UsageError("each measurement must be a mapping", file=where, field=f"rows[{i}]")
            out.append(_row_from_mapping(item, f"{where}: rows[{i}]", catalog, engine,
                                         {**defaults, **meta}))
    if not out:
        raise UsageError("no measurements found in the given files")
    return out


def read_published(path: Path, catalog: Catalog, *, kv_dtype: str = "fp8") -> list[CalibrationRow]:
    """Rows of the shared TensorRT-LLM perf-overview file (engine ``trtllm``).

    ``kv_dtype`` defaults to fp8: NVIDIA's ModelOpt FP8 checkpoints run with an FP8 KV cache in
    these benchmarks (estimate, not stated in the table). Evidence: with a 16-bit cache the
    Llama-3.1-8B H100 128/4096 row (14,325 tok/s) would need > 100% of HBM bandwidth under the
    trtllm-bench batch rule (see docs/perf.md, "KV dtype of the calibration rows")."""
    rows = read_measurements([path], catalog=catalog, engine="trtllm",
                             defaults={"kv_dtype": kv_dtype})
    src = yaml_safe.load(path.read_text(encoding="utf-8")).get("source", str(path))
    return [replace(r, source=src) for r in rows]


def resolve_rows(rows: Sequence[CalibrationRow], catalog: Catalog) -> list[tuple[ModelArch, GPU]]:
    """(ModelArch, GPU) of each row, from the catalog."""
    from optimizer.loaders import resolve_gpu, resolve_model
    from optimizer.sizing.architecture import parse_config

    out = []
    archs: dict[str, ModelArch] = {}
    for r in rows:
        if r.model not in archs:
            m = resolve_model(r.model, catalog)
            archs[r.model] = parse_config(m.config, m.name)
        out.append((archs[r.model], resolve_gpu(r.gpu, catalog)))
    return out


# ------------------------------------------------------------------------------------------
# Calibration files
# ------------------------------------------------------------------------------------------

_EFF_KEYS = {f.name for f in fields(Efficiency)} - {"family", "engine", "citation", "provenance", "transferred_from",
                                                 "measured"}


def default_calibration_path(engine: str = "trtllm") -> Path:
    from optimizer.loaders import catalog_root

    return catalog_root() / "calibration" / SHIPPED.get(engine, SHIPPED["trtllm"])


@dataclass(frozen=True)
class CalibrationFile:
    path: Path
    engine: str
    default_family: str
    families: dict[str, Efficiency]
    measured: tuple[MeasuredPoint, ...]
    data: dict[str, Any]


@lru_cache(maxsize=32)
def _load_cached(path: str, mtime: float) -> CalibrationFile:
    p = Path(path)
    hint = "write calibration files with `procure calibrate`"
    try:
        data = yaml_safe.load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise CatalogError(f"not a calibration file: not UTF-8 text (byte {exc.start})", file=path,
                           hint=hint) from exc
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"cannot read calibration file: {exc}", file=path, hint=hint) from exc
    if not isinstance(data, dict) or not ("families" in data or "measured" in data):
        what = ("it looks like a scenario (it has workloads:)" if isinstance(data, dict) and "workloads" in data
                else "it has no families: or measured: section")
        raise CatalogError(f"not a calibration file: {what}", file=path, hint=hint)
    if not isinstance(data.get("families") or {}, dict):
        raise CatalogError("families: must map GPU families to efficiency factors", file=path,
                           field="families", hint=hint)
    if not isinstance(data.get("measured") or [], list):
        raise CatalogError("measured: must be a list of measured points", file=path, field="measured",
                           hint=hint)
    engine = str(data.get("engine", "trtllm"))
    if engine not in ENGINE_DEFAULTS and engine not in ("sglang", "mindie"):
        raise CatalogError(f"unknown engine {engine!r}", file=path, field="engine",
                           hint=f"use one of {', '.join(ENGINE_DEFAULTS)}")
    source = str(data.get("source", path))
    fams: dict[str, Efficiency] = {}
    for name, vals in (data.get("families") or {}).items():
        if not isinstance(vals, dict):
            raise CatalogError("family entry must be a mapping", file=path, field=f"families.{name}")
        kw = {k: v for k, v in vals.items() if k in _EFF_KEYS}
        for k, v in kw.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise CatalogError(f"must be a finite number >= 0, got {v!r}", file=path,
                                   field=f"families.{name}.{k}", hint=hint)
        try:
            fams[str(name)] = Efficiency(**kw, family=str(name), engine=engine, provenance="fitted",
                                         citation=f"{p.name}: {vals.get('note', source)}")
        except (TypeError, UsageError) as exc:
            raise CatalogError(f"bad efficiency factors: {exc}", file=path, field=f"families.{name}",
                               hint="compute, memory_bw and comm_efficiency are fractions in (0, 1]") from exc
    measured = []
    for i, m in enumerate(data.get("measured") or []):
        if not isinstance(m, dict):
            raise CatalogError("each measured point must be a mapping", file=path, field=f"measured[{i}]")
        try:
            measured.append(_row_from_mapping(m, f"{path}: measured[{i}]", None, engine, {}).point())
        except UsageError as exc:
            raise CatalogError(exc.message, file=exc.file, field=exc.field, hint=exc.hint) from exc
    return CalibrationFile(p, engine, str(data.get("default_family", next(iter(fams), "Hopper"))),
                           fams, tuple(measured), data)


def load_calibration(path: Path) -> CalibrationFile:
    """Parse a calibration file (cached by path and modification time)."""
    if not path.is_file():
        raise CatalogError("calibration file not found", file=str(path),
                           hint="write one with `procure calibrate`, or omit --calibration")
    return _load_cached(str(path.resolve()), path.stat().st_mtime)


#: Order in which a (family, engine) without rows borrows factors, measured by
#: ``benchmarks.accuracy`` (cross-family vs cross-engine transfer residuals; see docs/perf.md):
#: ``"engine"`` = same engine, the engine file's default family first; ``"family"`` = same family,
#: another engine first.
TRANSFER_ORDER = ("family", "engine")
#: Engines tried, in order, for a same-family transfer.
TRANSFER_ENGINES = ("trtllm", "vllm", "sglang", "mindie")


def _shipped(engine: str) -> CalibrationFile | None:
    path = default_calibration_path(engine)
    return load_calibration(path) if path.is_file() else None


def _transfer_band(files: Iterable[CalibrationFile | None], way: str) -> float:
    """The band of a transfer: the RMS log residual of the same kind of transfer in the fit
    (``transfer.cross_engine_rms_log`` when the family is kept and the engine changes,
    ``cross_family_rms_log`` otherwise), else the file's overall ``transfer_band_log_sd``."""
    key = "cross_engine_rms_log" if way == "family" else "cross_family_rms_log"
    for f in files:
        if f is None:
            continue
        kinds = f.data.get("transfer")
        if isinstance(kinds, dict) and isinstance(kinds.get(key), int | float):
            return min(float(kinds[key]), 3.0)
        if isinstance(f.data.get("transfer_band_log_sd"), int | float):
            return min(float(f.data["transfer_band_log_sd"]), 3.0)
    return 1.0


def efficiency_for(gpu: GPU, *, engine: str = "trtllm", calibration_path: Path | None = None) -> Efficiency:
    """Efficiency of ``gpu.architecture`` under ``engine``.

    * ``calibration_path`` (``procure calibrate``) fits the family: its factors, ``fitted``;
    * the shipped file of ``engine`` (:data:`SHIPPED`) fits it: ``fitted``, with the family's
      leave-one-source-out ``band_log_sd``;
    * else ``transferred``: borrowed in :data:`TRANSFER_ORDER` (same engine's default family, then
      the same family under another engine, then Hopper/trtllm), with the band of that kind of
      transfer in the engine file (``transfer.cross_engine_rms_log`` for the same family under
      another engine, ``cross_family_rms_log`` for another family).

    Measured points of ``calibration_path`` are attached either way."""
    shipped = _shipped(engine)
    user = load_calibration(calibration_path) if calibration_path else None
    fam = gpu.architecture
    eff: Efficiency | None = None
    if user and fam in user.families:
        eff = user.families[fam]
        if not eff.band_log_sd and shipped and fam in shipped.families:
            eff = replace(eff, band_log_sd=shipped.families[fam].band_log_sd)
        eff = replace(eff, provenance="fitted", transferred_from="")
    elif shipped and fam in shipped.families:
        eff = replace(shipped.families[fam], provenance="fitted", transferred_from="")
    else:
        base: Efficiency | None = None
        way = "default"
        for way in TRANSFER_ORDER:
            if way == "engine" and shipped and shipped.families:
                base = shipped.families.get(shipped.default_family) or next(iter(shipped.families.values()))
            elif way == "family":
                for e in TRANSFER_ENGINES:
                    other = _shipped(e) if e != engine else None
                    if other and fam in other.families:
                        base = other.families[fam]
                        break
            if base is not None:
                break
        if base is None:
            trt = _shipped("trtllm")
            if trt is None or not trt.families:
                raise CatalogError("no shipped calibration to transfer factors from",
                                   file=str(default_calibration_path("trtllm")))
            base = trt.families[trt.default_family]
            way = "family" if base.family == fam else "engine"
        band = _transfer_band((shipped, _shipped("trtllm")), way)
        eff = replace(base, family=fam, engine=engine, provenance="transferred",
                      transferred_from=f"{base.family}/{base.engine}", band_log_sd=band,
                      citation=f"{base.citation}; transferred from {base.family}/{base.engine} "
                      f"(no {fam}/{engine} calibration rows: estimate, transfer band {band:.2f})")
    if user:
        eff = replace(eff, measured=user.measured)
    return eff


def calibration_document(*, engine: str, families: dict[str, tuple[Efficiency, list[Residual]]],
                         measured: Sequence[CalibrationRow] = (), source: str, about: str,
                         assumptions: dict[str, Any] | None = None,
                         default_family: str | None = None) -> dict[str, Any]:
    """The YAML document of a calibration file (families, residuals, errors, measured points)."""
    all_res = [r for _, table in families.values() for r in table]
    med, worst = error_summary(all_res)
    fams: dict[str, Any] = {}
    for name, (eff, table) in families.items():
        vals = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(eff).items()
                if k in _EFF_KEYS}
        fm, fw = error_summary(table)
        vals["fitted"] = list(FIT_PARAMS)
        vals["rows"] = len(table)
        vals["median_abs_pct_error"] = round(fm, 2)
        vals["worst_abs_pct_error"] = round(fw, 2)
        vals["note"] = f"fitted on {len(table)} rows of {source}"
        fams[name] = vals
    doc: dict[str, Any] = {
        "about": about,
        "engine": engine,
        "source": source,
        "as_of": date.today().isoformat(),
        "method": f"scipy.optimize.least_squares on log(predicted/measured) over ({', '.join(FIT_PARAMS)}) "
                  f"per GPU family, bounds {BOUNDS}; comm_efficiency, allreduce_latency_us fixed "
                  "(optimizer/sizing/perf.py Efficiency)",
        "assumptions": assumptions or {},
        "default_family": default_family or next(iter(families), "Hopper"),
        "families": fams,
        "fit": {
            "median_abs_pct_error": round(med, 2),
            "worst_abs_pct_error": round(worst, 2),
            "residuals": [
                {"model": r.row.model, "gpu": r.row.gpu, "tp": r.row.tp, "pp": r.row.pp,
                 "precision": r.row.precision, "kv_dtype": r.row.kv_dtype,
                 "input_tokens": r.row.input_tokens, "output_tokens": r.row.output_tokens,
                 "measured": r.row.output_tokens_per_s, "predicted": round(r.predicted, 1),
                 "batch": r.batch, "error_pct": round(r.error_pct, 2)}
                for r in all_res
            ],
        },
        "measured": [
            {k: v for k, v in asdict(m.point()).items() if v is not None} for m in measured
        ],
    }
    return doc


def write_calibration(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=110), encoding="utf-8")


def fit_rows(rows: Sequence[CalibrationRow], catalog: Catalog, *,
             prior: dict[str, Efficiency] | None = None,
             prior_weight: float | None = None) -> dict[str, tuple[Efficiency, list[Residual]]]:
    """Fit one :class:`Efficiency` per GPU family present in ``rows``."""
    resolved = resolve_rows(rows, catalog)
    groups: dict[str, list[int]] = {}
    for i, (_, gpu) in enumerate(resolved):
        groups.setdefault(gpu.architecture, []).append(i)
    out = {}
    for fam, idx in groups.items():
        base = (prior or {}).get(fam, PRIOR)
        engine = rows[idx[0]].engine
        base = replace(base, family=fam, engine=engine, measured=(),
                       kv_reserve_output_fraction=KV_RESERVE.get(engine, base.kv_reserve_output_fraction))
        out[fam] = fit_family([rows[i] for i in idx], [resolved[i] for i in idx], prior=base,
                              prior_weight=prior_weight)
    return out


__all__ = [
    "ENGINE_DEFAULTS",
    "CalibrationFile",
    "CalibrationRow",
    "EngineDefaults",
    "Residual",
    "calibration_document",
    "default_calibration_path",
    "efficiency_for",
    "engine_defaults",
    "error_summary",
    "fit_family",
    "fit_rows",
    "kv_cache_tokens",
    "load_calibration",
    "predict_row",
    "read_measurements",
    "read_published",
    "resolve_rows",
    "trtllm_kv_cache_tokens",
    "write_calibration",
]


# ------------------------------------------------------------------------------------------
# Published rows of every family and engine (issue 11): mapping, prediction, fit, validation
# ------------------------------------------------------------------------------------------
#
# Each published row is predicted as its benchmark ran (catalogs/calibration/published-rows.yaml):
# a length mix (``sizing.lengths``), a prediction mode (offline max throughput, fixed concurrency,
# MLPerf Server/Interactive capacity under the latency limits) and a metric per replica. Factors are
# fitted per (family, engine) on log(predicted / measured); validation refits without one source
# (publication) at a time and predicts that source's rows (leave-one-source-out).

from optimizer.sizing import lengths as _lengths  # noqa: E402

#: Engine keys with shipped calibrations. ``mindie`` has no engine profile: vLLM memory rules.
FIT_ENGINES = ("trtllm", "vllm", "sglang", "mindie")
#: Fallback batch cap per engine when a row states none: trtllm-bench 4096, vLLM ``max_num_seqs``
#: 256, SGLang profile 4096; MindIE 256 (estimate: no profile).
FIT_MAX_BATCH = {"trtllm": 4096, "vllm": 256, "sglang": 4096, "mindie": 256}
#: KV held per running sequence ``I + r O`` (TensorRT-LLM no-evict 1.0; paged engines 0.5).
FIT_KV_RESERVE = {"trtllm": 1.0, "vllm": 0.5, "sglang": 0.5, "mindie": 0.5}
PUBLISHED_ROWS = "published-rows.yaml"
HOPPER_SOURCE = "TensorRT-LLM perf overview"


@dataclass(frozen=True)
class MappedRow:
    """One published measurement as procure predicts it (see the mapping file's ``modes``)."""

    id: str
    source: str
    model: str
    gpu: str
    engine: str
    tp: int
    pp: int
    precision: str
    kv_dtype: str
    mode: str
    mix: _lengths.LengthMix
    metric: str
    measured: float                 # per replica, in the metric's unit
    batch: int | None = None
    kv_fraction: float | None = None
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    family: str = ""
    #: MoE layout (docs/perf.md "MoE layouts"): expert-parallel size (1 or ``tp x dp``) and
    #: attention data-parallel ranks; the replica is ``tp x pp x dp`` GPUs and ``batch`` caps
    #: each DP rank.
    ep: int = 1
    dp: int = 1

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "tpot_ms"


def _mix(spec: Any) -> _lengths.LengthMix:
    if isinstance(spec, str):
        return _lengths.dataset(spec)
    i, o = spec
    return _lengths.fixed(int(i), int(o))


def mapped_row(rid: str, spec: dict[str, Any], value: float, catalog: Catalog) -> MappedRow:
    """A :class:`MappedRow` from one mapping entry and the shared row's published ``value``.
    Optional ``ep``/``dp`` (default 1) give a MoE layout, checked by ``layout.moe_layout_problems``;
    a per-GPU figure is multiplied by the replica's ``tp x pp x dp`` GPUs."""
    from optimizer.loaders import resolve_gpu, resolve_model
    from optimizer.sizing.architecture import parse_config
    from optimizer.sizing.layout import moe_layout_problems

    ep, dp = int(spec.get("ep", 1)), int(spec.get("dp", 1))
    measured = float(value)
    if spec["metric"] == "output_tokens_per_s":
        if spec.get("scope") == "per_gpu":
            measured *= spec["tp"] * spec.get("pp", 1) * dp
        else:
            measured /= spec.get("replicas", 1)
    slo = spec.get("slo") or {}
    gpu = resolve_gpu(spec["gpu"], catalog)
    if (ep, dp) != (1, 1):
        m = resolve_model(spec["model"], catalog)
        problems = moe_layout_problems(parse_config(m.config, m.name), gpu, tp=int(spec["tp"]), ep=ep, dp=dp)
        if problems:
            raise CatalogError(f"row {rid!r}: {problems[0].message}", file=PUBLISHED_ROWS, field=problems[0].option,
                               hint=f"allowed: {', '.join(problems[0].allowed)}")
    return MappedRow(id=rid, source=spec["source"], model=spec["model"], gpu=gpu.name, engine=spec["engine"],
                     tp=int(spec["tp"]), pp=int(spec.get("pp", 1)), precision=spec["precision"],
                     kv_dtype=spec["kv_dtype"], mode=spec["mode"], mix=_mix(spec["lengths"]),
                     metric=spec["metric"], measured=measured, batch=spec.get("batch"),
                     kv_fraction=spec.get("kv_fraction"), ttft_ms=slo.get("ttft_ms"),
                     tpot_ms=slo.get("tpot_ms"), family=gpu.architecture, ep=ep, dp=dp)


def mapping_path() -> Path:
    from optimizer.loaders import catalog_root

    return catalog_root() / "calibration" / PUBLISHED_ROWS


def load_mapping(path: Path | None = None) -> dict[str, dict[str, Any]]:
    data = yaml_safe.load((path or mapping_path()).read_text(encoding="utf-8"))
    return dict(data["rows"])


def read_published_rows(shared: Path, catalog: Catalog, *, mapping: dict[str, dict[str, Any]] | None = None
                        ) -> tuple[list[MappedRow], dict[str, str]]:
    """Mapped rows of ``shared`` (published-nonhopper.yaml) and ``{id: reason}`` of the excluded ones.
    A shared row the mapping does not name is an error (every row is decided, in review)."""
    mapping = mapping if mapping is not None else load_mapping()
    data = yaml_safe.load(shared.read_text(encoding="utf-8"))
    rows, excluded = [], {}
    for r in data["rows"]:
        spec = mapping.get(r["id"])
        if spec is None:
            raise CatalogError(f"shared row {r['id']!r} has no entry in {PUBLISHED_ROWS}", file=str(shared),
                               hint="map it (model, gpu, engine, mode, ...) or exclude it with a reason")
        if "excluded" in spec:
            excluded[r["id"]] = str(spec["excluded"])
            continue
        rows.append(mapped_row(r["id"], spec, r["value"], catalog))
    return rows, excluded


def hopper_rows(path: Path, catalog: Catalog) -> list[MappedRow]:
    """The TensorRT-LLM v1.0 perf-overview rows (H100/H200) as mapped rows (offline, batch 4096,
    FP8 KV: :func:`read_published`)."""
    out = []
    for i, r in enumerate(read_published(path, catalog)):
        from optimizer.loaders import resolve_gpu

        gpu = resolve_gpu(r.gpu, catalog)
        out.append(MappedRow(id=f"trtllm10-{r.gpu}-{r.model}-tp{r.tp}-{r.input_tokens}-{r.output_tokens}-{i}",
                             source=HOPPER_SOURCE, model=r.model, gpu=r.gpu, engine="trtllm", tp=r.tp, pp=r.pp,
                             precision=r.precision, kv_dtype=r.kv_dtype, mode="offline",
                             mix=_lengths.fixed(r.input_tokens, r.output_tokens), metric="output_tokens_per_s",
                             measured=r.output_tokens_per_s, batch=4096, family=gpu.architecture))
    return out


@lru_cache(maxsize=64)
def _arch_gpu(model: str, gpu: str) -> tuple[ModelArch, GPU]:
    from optimizer.loaders import load_catalog, resolve_gpu, resolve_model
    from optimizer.sizing.architecture import parse_config

    catalog = load_catalog()
    m = resolve_model(model, catalog)
    return parse_config(m.config, m.name), resolve_gpu(gpu, catalog)


def predict_mapped(row: MappedRow, eff: Efficiency) -> float:
    """procure's figure for ``row`` (in the row's metric) under ``eff`` (no measured override)."""
    arch, gpu = _arch_gpu(row.model, row.gpu)
    mem_engine = "trtllm" if row.engine == "trtllm" else "vllm"
    eff = replace(eff, kv_reserve_output_fraction=FIT_KV_RESERVE.get(row.engine, 0.5), measured=())
    cap = row.batch or FIT_MAX_BATCH.get(row.engine, 256)
    kv = kv_cache_tokens(arch, gpu, engine=mem_engine, tp=row.tp, pp=row.pp, precision=row.precision,
                         kv_dtype=row.kv_dtype, max_model_len=row.mix.max_tokens,
                         memory_fraction=row.kv_fraction, ep=row.ep, dp=row.dp)
    thr, rps, tpot = [], [], []
    for b in row.mix.bins:
        slo = row.mode.startswith("mlperf_")
        perf = replica_perf(arch, gpu, tp=row.tp, pp=row.pp, precision=row.precision, kv_dtype=row.kv_dtype,
                            input_tokens=b.input_tokens, output_tokens=max(b.output_tokens, 2),
                            kv_cache_tokens=kv, max_num_seqs=cap, efficiency=eff, measured=(),
                            ttft_ms=row.ttft_ms if slo else None, tpot_ms=row.tpot_ms if slo else None,
                            utilization=1.0, ep=row.ep, dp=row.dp)
        thr.append(perf.output_tokens_per_s)
        rps.append(perf.requests_per_s)
        tpot.append(perf.offline_tpot_ms)
    if row.mode.startswith("mlperf_"):
        out = _lengths.mix_requests_per_s(row.mix, rps) * row.mix.mean_output
    elif row.metric == "output_tokens_per_s":
        out = _lengths.mix_throughput(row.mix, thr)
    else:
        t = _lengths.mix_mean(row.mix, tpot)
        out = t if row.metric == "tpot_ms" else 1000.0 / max(t, 1e-9)
    return max(out, 1e-9)


def log_residual(row: MappedRow, eff: Efficiency) -> float:
    """``log(measured / predicted)`` as a capacity ratio (a time metric is inverted first), so a
    positive residual means procure under-estimates capacity."""
    pred = predict_mapped(row, eff)
    r = math.log(row.measured / pred)
    return r if row.higher_is_better else -r


#: Free parameters by data size: >= 8 rows fit all four; 3-7 rows (compute, memory_bw) with the
#: overheads at the prior's; 1-2 rows one common scale of (compute, memory_bw).
def _free_params(n: int) -> tuple[str, ...]:
    if n >= 8:
        return FIT_PARAMS
    if n >= 3:
        return ("compute", "memory_bw")
    return ("scale",)


def fit_mapped(rows: Sequence[MappedRow], prior: Efficiency, *, prior_weight: float | None = None
               ) -> Efficiency:
    """Least squares on ``log(pred / measured)`` for one (family, engine), pulled toward ``prior``
    with weight ``0.5 / sqrt(n)`` per parameter (log-ratio units; overheads per 1 ms / 100 us)."""
    from scipy.optimize import least_squares

    if not rows:
        raise UsageError("no rows to fit")
    free = _free_params(len(rows))
    w = prior_weight if prior_weight is not None else 0.5 / math.sqrt(len(rows))
    lo = dict(zip(FIT_PARAMS, BOUNDS[0], strict=True))
    hi = dict(zip(FIT_PARAMS, BOUNDS[1], strict=True))

    def make(theta: Sequence[float]) -> Efficiency:
        if free == ("scale",):
            s = float(theta[0])
            return replace(prior, compute=min(max(prior.compute * s, lo["compute"]), hi["compute"]),
                           memory_bw=min(max(prior.memory_bw * s, lo["memory_bw"]), hi["memory_bw"]))
        vals = dict(zip(free, (float(v) for v in theta), strict=True))
        return replace(prior, compute=vals.get("compute", prior.compute),
                       memory_bw=vals.get("memory_bw", prior.memory_bw),
                       step_overhead_ms=vals.get("step_overhead_ms", prior.step_overhead_ms),
                       layer_overhead_us=vals.get("layer_overhead_us", prior.layer_overhead_us))

    def resid(theta: Sequence[float]) -> list[float]:
        eff = make(theta)
        out = [-log_residual(r, eff) for r in rows]
        for k, v in zip(free, theta, strict=True):
            if k == "scale":
                out.append(w * math.log(v))
            elif k in ("compute", "memory_bw"):
                out.append(w * math.log(v / getattr(prior, k)))
            elif k == "step_overhead_ms":
                out.append(w * (v - prior.step_overhead_ms))
            else:
                out.append(w * (v - prior.layer_overhead_us) / 100.0)
        return out

    if free == ("scale",):
        start, bounds = [1.0], ([0.05 / max(prior.memory_bw, prior.compute)], [1.0 / min(prior.memory_bw, 1.0)])
    else:
        start = [min(max(getattr(prior, k), lo[k] + 1e-6), hi[k] - 1e-6) for k in free]
        bounds = ([lo[k] for k in free], [hi[k] for k in free])
    res = least_squares(resid, start, bounds=bounds, method="trf", diff_step=1e-3, xtol=1e-8, ftol=1e-8,
                        max_nfev=200)
    return make(res.x)


def group_rows(rows: Iterable[MappedRow]) -> dict[tuple[str, str], list[MappedRow]]:
    out: dict[tuple[str, str], list[MappedRow]] = {}
    for r in rows:
        out.setdefault((r.family, r.engine), []).append(r)
    return out


def band_from_residuals(residuals: Sequence[float], *, inflate: float = 1.0) -> float:
    """``band_log_sd`` = root mean square of log residuals (about 0, not their mean: a bias is part
    of the error a user meets), times ``inflate``; capped at 3 (Efficiency's range)."""
    if not residuals:
        return 0.0
    return min(3.0, inflate * math.sqrt(sum(r * r for r in residuals) / len(residuals)))


#: In-sample residuals understate the error of a single-source family: inflated by this factor
#: (estimate: the ratio of LOSO to in-sample RMS over the multi-source families is reported by
#: benchmarks.accuracy; 2 is the round figure used until more sources exist).
SINGLE_SOURCE_INFLATION = 2.0


def loso_residuals(rows: Sequence[MappedRow], prior: Efficiency,
                   fit: Any = None) -> dict[str, list[tuple[MappedRow, float]]]:
    """Leave-one-source-out: for every source of ``rows``, fit on the others (``fit(rows, prior)``,
    default :func:`fit_mapped`) and return that source's ``(row, log(measured/predicted))``.
    A single-source set gives ``{}`` (nothing to leave out)."""
    fit = fit or fit_mapped
    sources = sorted({r.source for r in rows})
    if len(sources) < 2:
        return {}
    out: dict[str, list[tuple[MappedRow, float]]] = {}
    for s in sources:
        train = [r for r in rows if r.source != s]
        eff = fit(train, prior)
        out[s] = [(r, log_residual(r, eff)) for r in rows if r.source == s]
    return out
