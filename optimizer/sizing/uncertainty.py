"""Error bands of the throughput model and capacity at a chosen confidence.

The validation residuals of a (GPU family, engine) fit, ``e = log(measured / predicted)`` from
leave-one-source-out runs (``benchmarks/accuracy.py``), are summarised by one standard deviation
``band_log_sd`` (:class:`optimizer.sizing.perf.Efficiency`). The model treats the true capacity
as log-normal around the point estimate (median = the point estimate, so confidence 0.5 plans
exactly on the estimate):

    capacity_q = point x exp(z_q x band_log_sd)        z_q = Phi^-1(q), the normal quantile

* ``_p10`` / ``_p90`` of a throughput: ``q = 0.1`` / ``0.9`` (``z = -/+ 1.2816``);
* a time (TTFT, TPOT) scales inversely with throughput, so its ``_p10`` is ``point x exp(-1.2816 sd)``
  and its ``_p90`` ``point x exp(+1.2816 sd)``: the 10th and 90th percentile of that time;
* a plan at confidence ``c`` sizes every replica at the capacity it reaches with probability
  ``c``: the ``1 - c`` quantile, ``point x exp(-z_c x sd)``.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from optimizer.errors import UsageError

#: The band quantiles procure reports beside every point estimate.
BAND_QUANTILES = (0.1, 0.9)


def quantile_factor(q: float, band_log_sd: float) -> float:
    """``exp(Phi^-1(q) x band_log_sd)``: the ``q`` quantile of a log-normal quantity whose median is 1."""
    if not 0 < q < 1 or not math.isfinite(q):
        raise UsageError(f"quantile must be in (0, 1), got {q}", field="confidence")
    if band_log_sd < 0 or not math.isfinite(band_log_sd):
        raise UsageError(f"band_log_sd must be finite and >= 0, got {band_log_sd}", field="band_log_sd")
    return math.exp(NormalDist().inv_cdf(q) * band_log_sd)


def confidence_factor(confidence: float, band_log_sd: float) -> float:
    """Capacity multiplier at ``confidence``: the replica reaches ``point x factor`` with probability
    ``confidence`` (1.0 at 0.5; below 1 above it)."""
    if confidence == 0.5:
        return 1.0
    return quantile_factor(1.0 - confidence, band_log_sd)



def planning_time_scale(band_log_sd: float, confidence: float) -> float:
    """Factor on every modelled time of a replica planned at ``confidence`` (``PerfQuery.time_scale``):
    ``1 / confidence_factor``, so the GPU is modelled as slow as it is with probability ``1 - confidence``."""
    return 1.0 / confidence_factor(confidence, band_log_sd)


__all__ = ["BAND_QUANTILES", "confidence_factor", "planning_time_scale", "quantile_factor"]
