"""Inference candidates of many workloads sized in forked worker processes.

A platform of hundreds of workloads spends most of its sizing in ``inference_candidates``, one
workload after another, and every workload's candidates depend only on the workload, its model and
the scenario. Each task is one model's workloads (together, so the sizing caches keep their hits),
handed to whichever worker is free; the results are merged back in the scenario's order, so
the table is the same as a serial run's, whatever the worker count. Generated 200-workload
platform on the 2-core machine (``python benchmarks/scale.py``): sizing 3.65-3.85 s with two
workers, 7.0 s serially (``PROCURE_SIZING_WORKERS=1``).

Workers are used only where forking is safe and pays: the main thread of a process that is not
itself a multiprocessing worker, on Linux (``fork``), with at least PARALLEL_MIN_WORKLOADS inference
workloads and two CPUs. ``PROCURE_SIZING_WORKERS`` sets the count (1: serial). Any failure in a
worker falls back to the serial run, which raises the real error.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from optimizer.loaders import ResolvedScenario
from optimizer.schema.scenario import InferenceWorkload
from optimizer.sizing.architecture import ModelArch
from optimizer.sizing.perf import Efficiency

if TYPE_CHECKING:
    from optimizer.sizing.candidates import CandidateSet, InferenceCandidate, PerfMemo, Rejection, ServerSku

#: Fewer inference workloads than this are sized serially (forking costs ~0.1 s).
PARALLEL_MIN_WORKLOADS = 40
#: Most worker processes.
MAX_WORKERS = 4
ENV_WORKERS = "PROCURE_SIZING_WORKERS"

#: Each inference workload's candidates and rejections, by workload name.
Sized = dict[str, tuple[list["InferenceCandidate"], list["Rejection"]]]


@dataclass
class _Job:
    rs: ResolvedScenario
    skus: dict[str, ServerSku]
    archs: dict[str, ModelArch]
    calibration: Path | None


@dataclass
class GroupResult:
    """What one worker sized: each workload's candidates and rejections, in grid order."""

    by_workload: Sized = field(default_factory=dict)
    efficiency: dict[str, Efficiency] = field(default_factory=dict)
    measured_used: set[int] = field(default_factory=set)


_JOB: _Job | None = None  # what a forked worker sizes from (inherited, not pickled)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(n_workloads: int, n_models: int) -> int:
    """Workers for ``n_workloads`` inference workloads of ``n_models`` models (1: serial)."""
    env = os.environ.get(ENV_WORKERS)
    if env is not None and env.strip().isdigit():
        wanted = max(int(env), 1)
    elif n_workloads < PARALLEL_MIN_WORKLOADS:
        return 1
    else:
        wanted = min(_cpus(), MAX_WORKERS)
    safe = ("fork" in multiprocessing.get_all_start_methods() and multiprocessing.parent_process() is None
            and threading.current_thread() is threading.main_thread())
    return min(wanted, n_models) if safe else 1


def _model_groups(workloads: list[InferenceWorkload], archs: dict[str, ModelArch]) -> list[list[str]]:
    """Workload names by model, the largest group first (ties by first appearance: deterministic);
    the pool hands groups to whichever worker is free, so the load balances itself."""
    by_model: dict[int, list[str]] = {}
    for w in workloads:  # archs are interned: one object per distinct architecture
        by_model.setdefault(id(archs[w.name]), []).append(w.name)
    return sorted(by_model.values(), key=len, reverse=True)


def _size_group(names: list[str]) -> GroupResult:
    from optimizer.sizing.candidates import CandidateSet, inference_candidates, prune_dominated

    job = _JOB
    assert job is not None
    out = GroupResult()
    memo: PerfMemo = {}  # one per task: a task is one model's workloads
    workloads = job.rs.scenario.inference_workloads()
    for name in names:
        part = CandidateSet(skus=job.skus)
        inference_candidates(job.rs, workloads[name], job.archs[name], job.skus, part, out.efficiency,
                             job.calibration, memo)
        # pruned here (per workload and SKU, as build_candidates prunes: it is idempotent there), so
        # a fraction of the candidates is pickled back
        out.by_workload[name] = (prune_dominated(part.inference), part.rejections)
        out.measured_used |= part.measured_used
    return out


def size_in_workers(rs: ResolvedScenario, skus: dict[str, ServerSku], archs: dict[str, ModelArch],
                    calibration: Path | None, out: CandidateSet) -> Sized | None:
    """Every inference workload's candidates and rejections by name, sized in worker processes
    (``out`` gains their efficiency factors and measured entries used); None when the run should
    be serial (``worker_count``) or a worker failed."""
    global _JOB
    workloads = list(rs.scenario.inference_workloads().values())
    groups = _model_groups(workloads, archs)
    k = worker_count(len(workloads), len(groups))
    if k < 2:
        return None
    _JOB = _Job(rs, skus, archs, calibration)
    try:
        with ProcessPoolExecutor(max_workers=k, mp_context=multiprocessing.get_context("fork")) as pool:
            results = list(pool.map(_size_group, groups))
    except Exception:  # a worker's error, or a broken pool: the serial run says what is wrong
        return None
    finally:
        _JOB = None
    merged: Sized = {}
    for res in results:
        merged.update(res.by_workload)
        for g, eff in res.efficiency.items():
            out.efficiency.setdefault(g, eff)
        out.measured_used |= res.measured_used
    return merged
