"""Why no plan over periods exists (optimizer/model/diagnose_periods.py): the year a site limit
leaves without a plan, or the limit over all years, each with the amount worked out by hand.

Hand tables as in test_periods: 1-GPU L20 servers (PCIe-8GPU-4U, 635 W in the catalog) at 90,000 +
10,000 = 100,000 serving 1 req/s each; headroom 1, PUE 1, no quote lines, no discount.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from optimizer.errors import InfeasibleError
from optimizer.loaders import scenario_from_data
from optimizer.model.diagnose_periods import one_period
from optimizer.model.periods import YearTable, year_scenario
from optimizer.model.periods_plan import solve_period_tables
from optimizer.model.pipeline import solve_scenario
from optimizer.sizing.candidates import CandidateSet, server_skus
from optimizer.units import money_short
from tests.model.helpers import SETTINGS, candidate
from tests.model.test_periods import H20, L20_1, data, resolved


def tables_of(rs):  # type: ignore[no-untyped-def]
    assert rs.scenario.periods is not None
    out = []
    for y in range(1, rs.scenario.periods.years + 1):
        ry = year_scenario(rs, y)
        out.append(YearTable(y, ry, CandidateSet(skus=server_skus(ry), inference=[candidate("a", L20_1, 1.0)])))
    return out


def reasons(rs) -> list[str]:  # type: ignore[no-untyped-def]
    with pytest.raises(InfeasibleError) as err:
        solve_period_tables(rs, tables_of(rs), SETTINGS)
    lines = err.value.message.splitlines()
    assert lines[0] == "no feasible plan serves every year's demand within the limits:"
    return [line.strip() for line in lines[1:]]


def test_the_year_site_power_runs_out_is_named_with_its_shortfall() -> None:
    # 2 then 4 req/s: 2 then 4 servers of 635 W. The site's 2 kW holds year 1 (1.27 kW), not year 2
    # (2.54 kW: 0.54 kW short); racks (10 of 100 kW) and GPU types do not bind
    d = data([2, 4], {"years": 2, "discount_rate": 0.0})
    d["site"]["power_kw"] = 2.0
    assert reasons(resolved(d)) == [
        "year 2: site power short by 0.5 kW: the lowest-power plan needs 2.5 kW against the site's 2 kW "
        "(facility power, PUE 1)"]


def test_a_budget_over_all_years_is_named_with_the_least_capex() -> None:
    # 2 then 4 req/s on 100,000 servers, prices flat: every year alone has a plan (the budget caps all
    # years together), and the plan over both buys 4 servers, 400,000 nominal, against 300,000
    d = data([2, 4], {"years": 2, "discount_rate": 0.0}, opex_per_year_fraction=0.0)
    d["constraints"]["budget"] = 300000
    rs = resolved(d)
    factor = rs.scenario.finance.budget_factor
    need = 400000 * factor
    assert reasons(rs) == [
        f"budget short by {money_short(need - 300000, 'USD')}: the least capex over the 2 years (nominal, with "
        f"contingency and tax) is {money_short(need, 'USD')} against a budget of {money_short(300000, 'USD')}"]


def test_one_period_counts_owned_gpus_as_available() -> None:
    # availability caps GPUs bought; one period buys every server, so an owned 8 x L20 server adds 8
    d = data([2, 4], {"years": 2, "discount_rate": 0.0},
             inventory=[{"server": "PCIe-8GPU-4U", "gpu": "L20-48GB", "gpus_per_server": 8, "count": 1,
                         "age_years": 1}])
    d["constraints"]["availability"] = {"L20-48GB": 4}
    d["constraints"]["budget"] = 1000000
    rs = resolved(d)
    year = one_period(rs, tables_of(rs)[0])
    assert year.scenario.periods is None and year.scenario.objective == "capex"
    assert year.scenario.constraints.budget is None
    assert year.scenario.constraints.availability == {"L20-48GB": 12}


def test_a_year_whose_model_no_gpu_runs_is_named() -> None:
    """model_by_year: year 2's Qwen2.5-72B on L4 in bf16 meets no 60 ms TPOT (the best is L4 TP8,
    over 100 ms), so year 2 has no candidate; year 1's 7B does."""
    d = data([2, 3], {"years": 2, "discount_rate": 0.08})
    d["prices"] = {}
    d["constraints"] = {"gpus": ["L4-24GB"], "servers": ["PCIe-8GPU-4U"]}
    w = d["workloads"][0]
    w.update(model="Qwen2.5-7B", model_by_year=["Qwen2.5-7B", "Qwen2.5-72B"], precisions=["bf16"],
             slo={"ttft_ms": 2000, "tpot_ms": 60})
    rs = scenario_from_data(d, Path("periods.yaml"))
    with pytest.raises(InfeasibleError) as err:
        solve_scenario(rs)
    lines = [line.strip() for line in err.value.message.splitlines()[1:]]
    assert len(lines) == 1 and lines[0].startswith("year 2: a: no allowed configuration meets the SLO")
    assert "L4-24GB TP8 bf16" in lines[0]


def test_gpu_types_over_all_years_are_named() -> None:
    # year 1 runs only on L20, year 2 only on H20 (hand tables): each year alone needs one GPU type,
    # the plan over both needs 2 (year 1's L20 servers stay), against max_gpu_types 1
    d = data([2, 4], {"years": 2, "discount_rate": 0.0})
    d["constraints"] = {"gpus": ["L20-48GB", "H20-96GB"], "servers": ["PCIe-8GPU-4U", "HGX-H20-8GPU"],
                        "max_gpu_types": 1}
    rs = resolved(d)
    tables = []
    for y, c in ((1, candidate("a", L20_1, 1.0)), (2, candidate("a", H20, 8.0, tp=8))):
        ry = year_scenario(rs, y)
        tables.append(YearTable(y, ry, CandidateSet(skus=server_skus(ry), inference=[c])))
    with pytest.raises(InfeasibleError) as err:
        solve_period_tables(rs, tables, SETTINGS)
    assert err.value.message.splitlines()[1:] == [
        "  max GPU types: the 2 years need 2 GPU types in all, the limit is 1"]
