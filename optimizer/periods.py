"""Plans over periods: demand, models and prices per year, and discounting (pure functions).

The multi-period MIP (``optimizer.model.periods``), its checker and the Monte Carlo sweep all read
per-year figures from here, so they agree by construction. Periods are one year each, y = 1..Y.

Timing convention: everything paid for year y (servers bought at its start at that year's prices,
and that year's energy, support and rent) counts at the start of year y, discounted by
1 / (1 + d)^(y − 1): year 1 is not discounted. Rent is paid for a whole year per instance (a
peak rented for a year), committed terms (``RentOption.term_years`` > 1) for every year of the term.
"""

from __future__ import annotations

from dataclasses import dataclass

from optimizer.schema.scenario import InferenceWorkload, Periods, Scenario
from optimizer.units import HOURS_PER_YEAR


def demand_by_year(w: InferenceWorkload, years: int) -> list[float]:
    """Peak requests/s of ``w`` in years 1..years: its per-year list, or year 1's rate grown by
    ``growth_per_year`` (λ_y = λ_1·(1 + g)^(y−1)), or the same rate every year."""
    if w.requests_per_s_by_year is not None:
        if len(w.requests_per_s_by_year) != years:
            raise ValueError(f"{w.name}: {len(w.requests_per_s_by_year)} yearly rates for {years} years")
        return list(w.requests_per_s_by_year)
    g = w.growth_per_year or 0.0
    return [w.requests_per_s * (1.0 + g) ** (y - 1) for y in range(1, years + 1)]


def model_by_year(w: InferenceWorkload, years: int) -> list[str]:
    """The model ``w`` serves in years 1..years (its ``model_by_year``, else ``model`` throughout)."""
    return list(w.model_by_year) if w.model_by_year is not None else [w.model] * years


def price_factor(periods: Periods, year: int) -> float:
    """(1 − decline)^(y − 1): a catalog price in year y, as a fraction of year 1's."""
    return (1.0 - periods.price_decline_per_year) ** (year - 1)


def _override(periods: Periods, name: str, year: int) -> float | None:
    for key, values in sorted(periods.prices.items()):
        if key.lower() == name.lower():
            return values[year - 1]
    return None


def item_price(periods: Periods, name: str, year_one: float, year: int) -> float:
    """The unit price of a catalog item (GPU, chassis, cloud instance per hour) in year y: the
    per-year override from ``periods.prices`` when given, else year 1's price x price_factor."""
    given = _override(periods, name, year)
    return given if given is not None else year_one * price_factor(periods, year)


def server_price(periods: Periods, chassis: str, chassis_price: float, gpu: str, gpu_price: float,
                 gpus: int, year: int) -> float:
    """A server's price in year y: chassis + gpus x GPU, each at its year-y price."""
    return item_price(periods, chassis, chassis_price, year) + gpus * item_price(periods, gpu, gpu_price, year)


def discount_rate(sc: Scenario) -> float:
    """periods.discount_rate, else finance.discount_rate."""
    assert sc.periods is not None
    rate = sc.periods.discount_rate
    return sc.finance.discount_rate if rate is None else rate


def discount_factor(rate: float, year: int) -> float:
    """1 / (1 + d)^(y − 1): cash of year y counted at its start."""
    return 1.0 / (1.0 + rate) ** (year - 1)


@dataclass(frozen=True)
class RentOption:
    """One way to rent an instance type: on demand for one year, or committed for ``term_years``
    (its cost covers every year of the term, beyond the horizon too)."""

    name: str           # "on-demand", "1y", "3y"
    term_years: int
    hourly: float       # currency per instance-hour in the start year of the term

    def year_cost(self, count: int | float = 1) -> float:
        """What ``count`` instances cost for one year of the term: hourly x 8760 x count."""
        return self.hourly * HOURS_PER_YEAR * count


def rent_options(periods: Periods, instance: str, hourly_year_one: float, year: int,
                 committed: dict[int, float] | None = None) -> list[RentOption]:
    """The rent options of an instance type starting in year y: on demand at that year's hourly
    price, then each committed term (years → year-1 hourly price, e.g. {1: …, 3: …}) declining alike."""
    out = [RentOption("on-demand", 1, item_price(periods, instance, hourly_year_one, year))]
    for term, hourly in sorted((committed or {}).items()):
        out.append(RentOption(f"{term}y", term, hourly * price_factor(periods, year)))
    return out
