"""Relax-and-fix incumbent of the multi-period MIP (optimizer/model/periods_heuristic.py), on the
hand-solved cases of test_periods.py: one year's purchases integer at a time, the later years as LP."""

from __future__ import annotations

import pytest

from optimizer.model import periods_heuristic
from optimizer.model.periods import YearTable, build_period_model, year_scenario
from optimizer.model.periods_heuristic import relax_and_fix
from optimizer.sizing.candidates import CandidateSet, server_skus
from tests.model.helpers import SETTINGS, candidate
from tests.model.test_periods import L20_1, data, resolved


def model_of(rates: list[float], periods: dict) -> object:  # type: ignore[type-arg]
    rs = resolved(data(rates, periods, opex_per_year_fraction=0.01))
    tables = [YearTable(y, year_scenario(rs, y),
                        CandidateSet(skus=server_skus(year_scenario(rs, y)), inference=[candidate("a", L20_1, 1.0)]))
              for y in range(1, rs.scenario.periods.years + 1)]
    return build_period_model(rs, tables)


def state(pm) -> list[tuple[str, bool, float, float]]:  # type: ignore[no-untyped-def]
    return [(v.name, v.integer, v.lower_bound, v.upper_bound) for v in pm.model.variables()]


@pytest.mark.parametrize(("periods", "buys", "npv"), [
    # prices fall 30 %/year, discount 10 %: stage 1 buys what year 1 needs (2), the LP view of years
    # 2-3 buys later at 70 %/49 % of the price; stage 3 buys 2: 288,115.70 (test_periods' optimum)
    ({"years": 3, "price_decline_per_year": 0.3, "discount_rate": 0.1}, {1: 2, 3: 2}, 288115.70),
    # prices rising (100,000, 105,000, 110,000), no discount: stage 1 buys all 4 at once, 412,000
    ({"years": 3, "discount_rate": 0.0, "prices": {"PCIe-8GPU-4U": [90000, 95000, 100000]}}, {1: 4}, 412000.0),
])
def test_relax_and_fix_finds_the_hand_solved_plan(periods: dict, buys: dict[int, int], npv: float) -> None:  # type: ignore[type-arg]
    pm = model_of([2, 2, 4], periods)
    before = state(pm)
    out = relax_and_fix(pm, SETTINGS)
    assert out is not None
    values, objective = out.values, out.objective
    assert not out.clock_decided
    assert objective == pytest.approx(npv, abs=0.6)  # the tie-breaks are worth at most 0.5
    bought = {y: round(values[v]) for (_, y), v in pm.buy.items() if round(values[v])}
    assert bought == buys
    assert all(float(values[v]).is_integer() for v in pm.model.variables() if v.integer)
    assert state(pm) == before  # integrality and bounds restored


def test_relax_and_fix_none_when_a_year_cannot_be_served() -> None:
    # 3 req/s in year 1 needs 3 servers; the site's power holds none of them
    pm = model_of([3, 3], {"years": 2})
    for row in pm.model.linear_constraints():
        if row.name.startswith("site_power"):
            row.upper_bound = 0.0
    before = state(pm)
    assert relax_and_fix(pm, SETTINGS) is None
    assert state(pm) == before


def test_each_stage_has_its_year_integer_and_the_earlier_purchases_fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    # stage k: replicas and purchases of years <= k integer, later years continuous; buys of years < k
    # fixed at what stage k-1 chose (2 in year 1, 0 in year 2: the falling-prices case above)
    pm = model_of([2, 2, 4], {"years": 3, "price_decline_per_year": 0.3, "discount_rate": 0.1})
    seen = []
    real = periods_heuristic.run_solver

    def recording(model, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append({v.name: (v.integer, v.lower_bound, v.upper_bound) for v in model.variables()})
        return real(model, *args, **kwargs)

    monkeypatch.setattr(periods_heuristic, "run_solver", recording)
    assert relax_and_fix(pm, SETTINGS) is not None
    assert len(seen) == 3
    for k, stage in enumerate(seen, start=1):
        for y in (1, 2, 3):
            assert stage[f"r[{y},0]"][0] is (y <= k)
            lo, hi = stage[f"buy[{L20_1},{y}]"][1:]
            if y < k:
                assert lo == hi == {1: 2, 2: 0}[y]
            else:
                assert lo == 0 and hi > 0


def test_a_failing_stage_leaves_the_model_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    # stage 2 fails after stage 1 fixed year 1's purchases: integrality and bounds come back
    pm = model_of([2, 2, 4], {"years": 3, "price_decline_per_year": 0.3, "discount_rate": 0.1})
    before = state(pm)
    real = periods_heuristic.run_solver
    calls = []

    def failing(model, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("solver crashed")
        return real(model, *args, **kwargs)

    monkeypatch.setattr(periods_heuristic, "run_solver", failing)
    with pytest.raises(RuntimeError):
        relax_and_fix(pm, SETTINGS)
    assert state(pm) == before


def test_one_period_has_no_relax_and_fix() -> None:
    assert relax_and_fix(model_of([2], {"years": 1}), SETTINGS) is None
