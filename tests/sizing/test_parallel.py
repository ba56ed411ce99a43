"""Sizing in worker processes (optimizer/sizing/parallel.py): the same table as a serial run."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from benchmarks.large_instance import generate
from optimizer.loaders import load_catalog, resolve_scenario
from optimizer.schema.scenario import Scenario
from optimizer.sizing import parallel
from optimizer.sizing.candidates import CandidateSet, build_candidates


def table(c: CandidateSet) -> tuple[object, ...]:
    return (c.inference, c.rejections, sorted(c.efficiency), c.measured_used, c.unrackable)


@pytest.fixture(scope="module")
def generated():  # type: ignore[no-untyped-def]
    return resolve_scenario(Scenario.model_validate(generate(12, 0)), Path("generated.yaml"), load_catalog())


def test_workers_give_the_serial_table(generated, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(parallel.ENV_WORKERS, "1")
    serial = build_candidates(generated)
    monkeypatch.setenv(parallel.ENV_WORKERS, "2")
    used = []
    real = parallel.size_in_workers

    def spy(*args):  # type: ignore[no-untyped-def]
        out = real(*args)
        used.append(out is not None)
        return out

    monkeypatch.setattr(parallel, "size_in_workers", spy)
    forked = build_candidates(generated)
    assert used == [True]  # the workers really ran
    assert len(serial.inference) > 500
    assert table(forked) == table(serial)


def test_a_failing_worker_falls_back_to_the_serial_run(generated, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(parallel.ENV_WORKERS, "1")
    serial = build_candidates(generated)

    def broken(names: list[str]) -> parallel.GroupResult:
        raise RuntimeError("worker died")

    monkeypatch.setenv(parallel.ENV_WORKERS, "2")
    monkeypatch.setattr(parallel, "_size_group", broken)  # inherited by the forked workers
    assert table(build_candidates(generated)) == table(serial)


def test_worker_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(parallel.ENV_WORKERS, raising=False)
    monkeypatch.setattr(parallel, "_cpus", lambda: 2)
    assert parallel.worker_count(parallel.PARALLEL_MIN_WORKLOADS - 1, 10) == 1  # too few to pay
    assert parallel.worker_count(200, 10) == 2
    assert parallel.worker_count(200, 1) == 1  # one model: one task
    monkeypatch.setattr(parallel, "_cpus", lambda: 64)
    assert parallel.worker_count(200, 10) == parallel.MAX_WORKERS
    monkeypatch.setenv(parallel.ENV_WORKERS, "1")
    assert parallel.worker_count(200, 10) == 1
    monkeypatch.setenv(parallel.ENV_WORKERS, "3")
    assert parallel.worker_count(5, 10) == 3
    seen = []
    worker = threading.Thread(target=lambda: seen.append(parallel.worker_count(200, 10)))
    worker.start()
    worker.join()
    assert seen == [1]  # never forks from a thread (e.g. the web server's)
