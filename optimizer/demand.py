"""Business volumes to a peak request rate: the arithmetic behind a workload's ``demand:``.

Owners know their traffic as users and requests per day; the plan needs the peak arrival rate in
requests/s, because replicas are sized for the busiest moment (DESIGN.md, "Data flow"). Three forms:

* **users**: ``N`` users making ``R`` requests a day each, a share ``F`` of a day's requests in
  the busiest hour: ``lambda = N R F / 3600``. ``F`` is at least 1/24 (a flat day) and at most 1.
* **daily**: ``D`` requests a day and a peak-to-mean ratio ``P``: the mean rate is ``D / 86400``
  and the peak ``lambda = D / 86400 x P``. ``P >= 1`` (the peak is never below the mean).
* **hourly**: requests in each of the 24 hours of a typical day, ``h_0 .. h_23``:
  ``lambda = max_k h_k / 3600``.

Each form gives the mean rate *within* the busiest hour; arrivals inside it are taken as a Poisson
stream at that rate (the queueing model of docs/perf.md), so bursts shorter than an hour are the
queue's business, not this peak's. The two ratios are the usual capacity-planning ones: the
peak-hour share is the telephony "busy hour" fraction of daily traffic (ITU-T E.500 defines
traffic intensity over the busy hour), the peak factor the peak-to-average ratio of a load curve.

Pure functions of plain numbers; the schema (``optimizer.schema.scenario``) validates ranges and
calls these to fill ``requests_per_s``.
"""

from __future__ import annotations

from collections.abc import Sequence

SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86400.0
HOURS_PER_DAY = 24


def users_peak_rps(users: float, requests_per_user_per_day: float, peak_hour_share: float) -> float:
    """``N R F / 3600``: the peak-hour requests of ``N`` users, spread over the hour's seconds."""
    return users * requests_per_user_per_day * peak_hour_share / SECONDS_PER_HOUR


def daily_peak_rps(requests_per_day: float, peak_factor: float) -> float:
    """``D / 86400 x P``: the day's mean rate times the peak-to-mean ratio."""
    return requests_per_day / SECONDS_PER_DAY * peak_factor


def hourly_peak_rps(hourly_requests: Sequence[float]) -> float:
    """``max(h) / 3600``: the busiest hour's requests over its seconds."""
    if len(hourly_requests) != HOURS_PER_DAY:
        raise ValueError(f"hourly_requests needs {HOURS_PER_DAY} numbers, got {len(hourly_requests)}")
    return max(hourly_requests) / SECONDS_PER_HOUR


def _num(x: float) -> str:
    """A count as people write it: thousands separated, no trailing zeros."""
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.6g}"


def explain_users(users: float, requests_per_user_per_day: float, peak_hour_share: float) -> str:
    rate = users_peak_rps(users, requests_per_user_per_day, peak_hour_share)
    return (f"{_num(users)} users × {_num(requests_per_user_per_day)} req/day × "
            f"{peak_hour_share * 100:.4g} % in the peak hour = {rate:,.2f} req/s")


def explain_daily(requests_per_day: float, peak_factor: float) -> str:
    rate = daily_peak_rps(requests_per_day, peak_factor)
    return f"{_num(requests_per_day)} req/day / 86,400 s × peak factor {peak_factor:g} = {rate:,.2f} req/s"


def explain_hourly(hourly_requests: Sequence[float]) -> str:
    peak = max(hourly_requests)
    hour = list(hourly_requests).index(peak)
    return (f"busiest hour {hour:02d}:00 with {_num(peak)} requests / 3,600 s = "
            f"{hourly_peak_rps(hourly_requests):,.2f} req/s")
