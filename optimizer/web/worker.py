"""The solver worker: one separate process that runs every solve and comparison of the web app.

The server stays responsive while a solve runs (the event loop only waits on a future), and a
solver that crashes or exhausts memory takes down the worker, not the server: the next job starts a
fresh worker (:class:`SolveWorker`). One job runs at a time; the app refuses a second one with 429.

Jobs run the CLI's own steps and return the JSON the CLI prints (``optimizer.report.payload``):
``solve_job`` is ``procure solve SCENARIO --format json --no-workbook``, ``compare_job`` is
``procure compare SCENARIO --format json --no-workbook``. Progress messages (the ones the CLI's
spinner shows) come back over a queue.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Literal

from optimizer.errors import InfeasibleError, ProcureError
from optimizer.schema.plan import Plan
from optimizer.web.sources import Sources

Kind = Literal["plan", "infeasible", "comparison", "error"]


@dataclass(frozen=True)
class JobOutcome:
    """What a job returns: the CLI's JSON document (or an error body) and the CLI's exit code."""

    kind: Kind
    payload: dict[str, Any]
    exit_code: int
    plan: Plan | None = None


def error_body(exc: ProcureError) -> dict[str, Any]:
    """The JSON body of an error: the CLI's message (``error``), its parts and the exit code."""
    return {"status": "error", "error": exc.render(), "message": exc.message, "field": exc.field,
            "hint": exc.hint, "file": exc.file, "kind": type(exc).__name__, "exit_code": exc.exit_code}


# --- in the worker process ---------------------------------------------------------------------

_queue: Any = None


def _init_worker(queue: Any, parent: int) -> None:
    global _queue
    _queue = queue
    threading.Thread(target=_watch_parent, args=(parent,), name="procure-parent-watch", daemon=True).start()


def _watch_parent(parent: int) -> None:
    """End this worker when the server is gone (killed outright, it cannot stop its worker)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _say(message: str, done: int | None = None, total: int | None = None) -> None:
    if _queue is not None:
        _queue.put((message, done, total))


def warm_job() -> bool:
    """Import the solver stack and load the catalog once, so the first solve is not slowed by it."""
    from optimizer.loaders import load_catalog
    from optimizer.model import pipeline  # noqa: F401

    load_catalog()
    return True


def solve_job(raw: bytes, source: str | None, sources: Sources) -> JobOutcome:
    """``procure solve SCENARIO --format json --no-workbook`` on a posted scenario."""
    from optimizer.model.pipeline import settings_of, solve_scenario
    from optimizer.report.payload import infeasible_payload, plan_payload

    try:
        rs = sources.load(raw, source)
        result = solve_scenario(rs, settings_of(rs), progress=_say)
    except InfeasibleError as exc:
        return JobOutcome("infeasible", infeasible_payload(exc), exc.exit_code)
    except ProcureError as exc:
        return JobOutcome("error", error_body(exc), exc.exit_code)
    return JobOutcome("plan", plan_payload(result.plan), 0, result.plan)


def compare_job(raw: bytes, source: str | None, sources: Sources) -> JobOutcome:
    """``procure compare SCENARIO --format json --no-workbook``: the scenario and its whatif: section."""
    from optimizer.compare import build_variants, default_jobs, run_comparison
    from optimizer.report.payload import comparison_payload

    try:
        rs = sources.load(raw, source)
        variants = build_variants(rs, budgets=[], prices={}, gpus=None, demand_scale=1.0, use_whatif=True)
        result = run_comparison(rs, variants, time_limit_s=None, jobs=default_jobs(),
                                progress=lambda e: _say(e.message, e.done, e.total))
    except ProcureError as exc:
        return JobOutcome("error", error_body(exc), exc.exit_code)
    none = all(v.plan is None for v in result.variants)
    return JobOutcome("comparison", comparison_payload(result), 1 if none else 0)


# --- in the server -------------------------------------------------------------------------------


@dataclass
class Progress:
    busy: bool = False
    what: str = ""
    message: str = ""
    done: int | None = None
    total: int | None = None
    started: float = field(default_factory=time.monotonic)

    def as_json(self) -> dict[str, Any]:
        return {"busy": self.busy, "job": self.what, "message": self.message, "done": self.done,
                "total": self.total, "elapsed_s": round(time.monotonic() - self.started, 1) if self.busy else None}


class WorkerCrashed(Exception):
    """The worker process died during a job (killed, out of memory, a crash in the solver)."""


class SolveWorker:
    """One worker process (spawned: the server has threads, so no fork) and its progress queue."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._queue = self._ctx.SimpleQueue()
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self.progress = Progress()
        self._reader = threading.Thread(target=self._read, name="procure-progress", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            message, done, total = item
            self.progress.message, self.progress.done, self.progress.total = message, done, total

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=self._ctx, initializer=_init_worker,
                                                 initargs=(self._queue, os.getpid()))
            return self._pool

    def warm(self) -> None:
        self._executor().submit(warm_job)

    def submit(self, what: str, fn: Callable[..., JobOutcome], *args: Any) -> Future[JobOutcome]:
        """Start a job (the caller has made sure no other runs); a broken pool is replaced."""
        self.progress = Progress(busy=True, what=what, message="starting")
        try:
            return self._executor().submit(fn, *args)
        except BrokenProcessPool:
            self._reset()
            return self._executor().submit(fn, *args)

    def finished(self) -> None:
        self.progress.busy = False

    def crashed(self) -> None:
        """Forget the dead worker; the next job starts a new one."""
        self._reset()

    def _reset(self) -> None:
        """Stop the worker process (a solve in progress is abandoned) and forget the pool."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        for proc in list(pool._processes.values()):  # the pool has no public way to stop a busy worker
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._reset()
        self._queue.put(None)
