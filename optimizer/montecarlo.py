"""Monte-Carlo risk of a plan: sampled demand, prices and capacity errors (``compare --monte-carlo``).

A *sample* ``k`` of seed ``S`` draws, each from its own generator seeded by the text
``procure-mc/S/k/<what>`` (so a draw depends only on the seed, the sample index and what it is:
not on the executor, the worker count, the order samples finish in, or which other GPUs exist):

* a demand scale ``m_d = demand_median x exp(demand_log_sd x z)`` on every inference request rate
  (``risk:`` block of the scenario; :class:`optimizer.schema.scenario.Risk`);
* with ``periods:``, a demand growth multiplier ``m = exp(growth_log_sd x z)``: year y's rate
  (optimizer.periods.demand_by_year) is times ``m_d x m^(y-1)`` (:func:`year_factor`);
* a price multiplier per GPU ``m_g = exp(price_log_sd x z_g)`` on the GPU's unit price (catalog
  prices are dated estimates; the chassis price and quote lines are not sampled);
* a capacity error per GPU family ``z_f ~ N(0, 1)``: every replica on a GPU of family ``f`` serves
  ``point x exp(z_f x band_log_sd)``, the log-normal band of optimizer.sizing.uncertainty (one draw
  per family: the fit's error is shared by all GPUs fitted with it).

With ``periods:`` the plans are the period MIP's, with the scenario's own objective (npv or tco);
a plan's cost is its NPV (or TCO) with the part linear in each GPU's price times ``m_g``
(:func:`period_shape_of`: purchases at every year's price and support), served fractions are
evaluated per year on that year's deployments (:func:`served_by_year`) and a sample's optimum solves
the period MIP on every year's table scaled by the sample (:func:`_solve_periods_sample`).

Each sample is used twice (:func:`run_monte_carlo`):

1. The *recommended plan* (the scenario solved as written, at its confidence) is evaluated without
   re-solving (:func:`served_fractions`, :func:`cost_at`): a workload's served fraction is
   ``min(1, headroom x Σ_d replicas_d x point_d x exp(z_f(d) x sd_d) / (λ_w x m_d))``, where
   ``point_d`` is the deployment's capacity divided by its planning quantile factor
   (``capacity_rps / exp(Φ^-1(q) x sd)``); its cost is its capex with each GPU's spend times ``m_g``
   (:func:`cost_at`; with the quote lines priced as a fraction of hardware, such as support).
2. The sample is solved: the cheapest plan (the scenario's objective, capex or TCO, without the
   budget cap) for the sample's demand, with the candidate table's capacities and GPU prices scaled by
   the sample (point estimates, confidence 0.5: the sample *is* the truth). Its cost, as in 1., gives
   the distribution of optimal cost. The checker is skipped for these solves (it re-sizes from the
   scenario, which the scaled table departs from on purpose); the recommended plan is checked.

*The plan that holds in 90 % of samples* (:func:`robust_plan`): among the recommended plan and the
distinct sampled optima, each evaluated on every sample as in 1., the plans that serve all demand
of every workload in at least 90 % of samples; of those, the lowest median cost over the samples
(ties: lower capex at catalog prices, then the earlier plan). None when no plan qualifies.

Percentiles are linear interpolation between order statistics (position ``p x (n - 1)``).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import random
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import Field

from optimizer import periods as per
from optimizer import quote
from optimizer.errors import InfeasibleError, ProcureError, UsageError
from optimizer.loaders import ResolvedScenario, resolve_scenario
from optimizer.model.periods import YearTable, year_tables
from optimizer.model.pipeline import settings_of, solve_scenario, with_overrides
from optimizer.model.solve import SolveSettings
from optimizer.schema.base import Record
from optimizer.schema.plan import Deployment, Plan
from optimizer.schema.scenario import InferenceWorkload, Risk
from optimizer.sizing.candidates import CandidateSet, build_candidates
from optimizer.sizing.uncertainty import quantile_factor

Executor = Literal["local", "ray"]
HOLD_FRACTION = 0.9  # "the plan that holds in 90 % of samples"
ALL_SERVED = 1.0 - 1e-9  # served fraction counted as all demand (float slack of the MIP's rows)
MAX_SAMPLES = 100_000


class Sample(Record):
    """One draw: demand scale, price multiplier per GPU, capacity error z per GPU family."""

    index: int = Field(ge=0)
    demand_scale: float = Field(gt=0, description="Multiplier on every inference request rate")
    growth: float = Field(default=1.0, gt=0, description="With periods: year y's demand is also x growth^(y-1)")
    price_factor: dict[str, float] = Field(description="Multiplier on each GPU's unit price, by GPU name")
    capacity_z: dict[str, float] = Field(description="Standard-normal capacity error, by GPU family")


def _normal(seed: int, index: int, what: str) -> float:
    # random.Random seeds a str through SHA-512: stable across runs, platforms and PYTHONHASHSEED
    return random.Random(f"procure-mc/{seed}/{index}/{what}").gauss(0.0, 1.0)


def draw_sample(seed: int, index: int, risk: Risk, gpus: Sequence[str], families: Sequence[str]) -> Sample:
    """Sample ``index`` of ``seed`` (module docstring); a pure function of its arguments."""
    scale = risk.demand_median * math.exp(risk.demand_log_sd * _normal(seed, index, "demand"))
    prices = {g: math.exp(risk.price_log_sd * _normal(seed, index, f"price/{g}")) for g in sorted(gpus)}
    zs = {f: (_normal(seed, index, f"capacity/{f}") if risk.capacity_error else 0.0) for f in sorted(families)}
    growth = math.exp(risk.growth_log_sd * _normal(seed, index, "growth"))
    return Sample(index=index, demand_scale=scale, growth=growth, price_factor=prices, capacity_z=zs)


def year_factor(sample: Sample, year: int) -> float:
    """Sampled demand of year y over the scenario's: demand_scale x growth^(y-1)."""
    return sample.demand_scale * sample.growth ** (year - 1)


# ------------------------------------------------------------------------------------------------
# A plan reduced to what a sample changes, and its evaluation
# ------------------------------------------------------------------------------------------------


class ShapeDeployment(Record):
    workload: str
    year: int = Field(default=1, ge=1, description="The period it serves (1 without periods)")
    gpu: str
    replicas: int = Field(ge=0)
    point_capacity_rps: float = Field(ge=0, description="One replica's point-estimate (median) SLO capacity")
    band_log_sd: float = Field(ge=0, description="Standard deviation of log(capacity); 0 for a measured point")


class PlanShape(Record):
    """What a plan bought and how much it serves, at catalog prices and point capacities."""

    source: str = Field(description="recommended (the scenario solved as written) or sample K (its optimum)")
    capex: float = Field(ge=0, description="Capex at the scenario's prices (servers + quote lines; with periods "
                         "nominal over all years), currency")
    cost: float | None = Field(default=None, description="The cost sampled prices move (cost_at): None = capex; "
                               "with periods the NPV (or nominal TCO) at the scenario's prices")
    gpu_spend: dict[str, float] = Field(description="The part of cost linear in each GPU's price, by GPU, at the "
                                        "scenario's prices: GPU unit price x GPUs bought x (1 + the quote lines "
                                        "linear in it); with periods also discounted and with support")
    buys: list[tuple[int, str, int]] = Field(default_factory=list, description="With periods: (year, SKU, count)")
    gpus_by_type: dict[str, int]
    servers: dict[str, int] = Field(description="Servers bought (or rented) by SKU")
    headroom: float = Field(gt=0, le=1)
    deployments: list[ShapeDeployment]

    def key(self) -> tuple[Any, ...]:
        deps = sorted((d.year, d.workload, d.gpu, d.replicas, round(d.point_capacity_rps, 9))
                      for d in self.deployments)
        return (tuple(sorted(self.servers.items())), tuple(sorted(self.buys)), tuple(deps))


def hardware_markup(rs: ResolvedScenario) -> float:
    """Quote lines per currency of server price (support years x fraction, fraction_of_hardware
    items; optimizer.quote.terms): a GPU price change moves capex by (1 + this) x the change."""
    years = quote.support_years(rs)
    out = 0.0
    for it in quote.items(rs):
        if it.rule == "fraction_of_hardware_per_year":
            out += years * quote.unit_price(rs, it)
        elif it.rule == "fraction_of_hardware":
            out += quote.unit_price(rs, it)
    return out


def shape_of(plan: Plan, source: str, base_gpu_price: dict[str, float], family: dict[str, str],
             markup: float, sample: Sample | None = None) -> PlanShape:
    """``plan`` as a :class:`PlanShape`. A sampled optimum (``sample`` given) had its capacities and
    GPU prices scaled by that sample: both are taken back to the point estimate and catalog price
    (with the quote lines linear in the price, ``markup``: :func:`hardware_markup`)."""
    deps = _shape_deployments(plan.deployments, 1, family, sample)
    spend: dict[str, float] = {}
    capex = plan.capex
    for line in plan.servers:
        if line.hourly_price is not None:
            continue  # rented: nothing bought
        n = line.count * line.gpus_per_server
        price = base_gpu_price.get(line.gpu, line.gpu_unit_price)
        capex += n * (price - line.gpu_unit_price) * (1.0 + markup)
        spend[line.gpu] = spend.get(line.gpu, 0.0) + n * price * (1.0 + markup)
    return PlanShape(source=source, capex=max(capex, 0.0), gpu_spend=dict(sorted(spend.items())),
                     gpus_by_type=dict(sorted(plan.gpus_by_type.items())),
                     servers=dict(sorted((s.sku, s.count) for s in plan.servers)),
                     headroom=plan.headroom, deployments=deps)


def _shape_deployments(deployments: Sequence[Deployment], year: int, family: dict[str, str],
                       sample: Sample | None) -> list[ShapeDeployment]:
    """Deployments at their point capacities: the planning quantile factor taken off, and a sampled
    optimum's capacity error (its table was scaled by ``sample``)."""
    out = []
    for d in deployments:
        sd = d.capacity_band_log_sd
        point = d.capacity_rps / quantile_factor(d.capacity_quantile, sd) if 0 < d.capacity_quantile < 1 \
            else d.capacity_rps
        if sample is not None:
            point /= math.exp(sample.capacity_z.get(family.get(d.gpu, d.gpu), 0.0) * sd)
        out.append(ShapeDeployment(workload=d.workload, year=year, gpu=d.gpu, replicas=d.replicas,
                                   point_capacity_rps=point, band_log_sd=sd))
    return out


def _split_key(key: str) -> tuple[str, int]:
    """(GPU, GPUs per server) of a SKU key chassis/GPU/population."""
    _, gpu, count = key.rsplit("/", 2)
    return gpu, int(count)


def period_shape_of(plan: Plan, source: str, rs: ResolvedScenario, base_gpu_price: dict[str, float],
                    family: dict[str, str], sample: Sample | None = None) -> PlanShape:
    """A plan over periods as a :class:`PlanShape`: deployments of every year; ``cost`` its NPV (objective
    npv) or nominal TCO (tco); ``gpu_spend`` per GPU Σ_y δ_y x (GPUs bought in y x the GPU's year-y price
    + opex_per_year_fraction x GPUs owned in y x its year-1 price: support), the part of the cost linear in
    the GPU's price (cloud rent and chassis prices are not sampled). A sampled optimum (``sample`` given)
    was solved at prices x m_g: its cost and capex are taken back to the scenario's prices."""
    sc = rs.scenario
    assert plan.periods is not None and sc.periods is not None
    rate = per.discount_rate(sc) if sc.objective == "npv" else 0.0
    spend: dict[str, float] = {}
    bought: dict[str, float] = {}  # nominal GPU spend on purchases, for capex
    deps: list[ShapeDeployment] = []
    buys: list[tuple[int, str, int]] = []
    for p in plan.periods:
        df = per.discount_factor(rate, p.year)
        for line in p.buy:
            gpu, n = _split_key(line.sku)
            price = per.item_price(sc.periods, gpu, base_gpu_price.get(gpu, 0.0), p.year) * n * line.count
            spend[gpu] = spend.get(gpu, 0.0) + df * price
            bought[gpu] = bought.get(gpu, 0.0) + price
            buys.append((p.year, line.sku, line.count))
        for line in p.own:
            gpu, n = _split_key(line.sku)
            support = sc.opex_per_year_fraction * n * line.count * base_gpu_price.get(gpu, 0.0)
            spend[gpu] = spend.get(gpu, 0.0) + df * support
        deps += _shape_deployments(p.deployments, p.year, family, sample)
    cost = plan.npv if sc.objective == "npv" else plan.tco
    assert cost is not None
    capex = plan.capex
    if sample is not None:
        cost -= sum(v * (sample.price_factor.get(g, 1.0) - 1.0) for g, v in spend.items())
        capex -= sum(v * (sample.price_factor.get(g, 1.0) - 1.0) for g, v in bought.items())
    return PlanShape(source=source, capex=max(capex, 0.0), cost=cost, gpu_spend=dict(sorted(spend.items())),
                     gpus_by_type=dict(sorted(plan.gpus_by_type.items())),
                     servers=dict(sorted((s.sku, s.count) for s in plan.servers)), buys=sorted(buys),
                     headroom=plan.headroom, deployments=deps)


def served_fractions(shape: PlanShape, sample: Sample, demand_rps: dict[str, float],
                     family: dict[str, str], year: int = 1) -> dict[str, float]:
    """Served fraction of each inference workload's sampled demand in ``year`` (module docstring, 1.):
    ``demand_rps`` is the scenario's rate of that year, times :func:`year_factor`."""
    capacity = dict.fromkeys(demand_rps, 0.0)
    for d in shape.deployments:
        if d.workload in capacity and d.year == year:
            z = sample.capacity_z.get(family.get(d.gpu, d.gpu), 0.0)
            capacity[d.workload] += d.replicas * d.point_capacity_rps * math.exp(z * d.band_log_sd)
    out = {}
    factor = year_factor(sample, year)
    for w, lam in demand_rps.items():
        need = lam * factor
        out[w] = 1.0 if need <= 0 else min(1.0, shape.headroom * capacity[w] / need)
    return out


def served_by_year(shape: PlanShape, sample: Sample, demand: dict[str, list[float]],
                   family: dict[str, str]) -> list[dict[str, float]]:
    """:func:`served_fractions` of each year; ``demand`` holds each workload's rate per year."""
    years = max((len(v) for v in demand.values()), default=1)
    return [served_fractions(shape, sample, {w: v[y - 1] for w, v in demand.items()}, family, y)
            for y in range(1, years + 1)]


def requests_served(fractions: dict[str, float], demand_rps: dict[str, float]) -> float:
    """Requests/s served over requests/s demanded (the demand scale is common, so it cancels)."""
    total = sum(demand_rps.values())
    return sum(fractions[w] * lam for w, lam in demand_rps.items()) / total if total > 0 else 1.0


def cost_at(shape: PlanShape, sample: Sample) -> float:
    """Capex (with periods: NPV or TCO) with each GPU's spend times its sampled price multiplier:
    ``cost + Σ_g spend_g x (m_g - 1)``, the spend including the quote lines linear in the hardware
    price (support; :func:`hardware_markup`)."""
    base = shape.capex if shape.cost is None else shape.cost
    return base + sum(v * (sample.price_factor.get(g, 1.0) - 1.0) for g, v in shape.gpu_spend.items())


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between order statistics at position ``p x (n - 1)``."""
    xs = sorted(values)
    if not xs:
        raise ValueError("no values")
    pos = p * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class Quantiles(Record):
    p10: float
    p50: float
    p90: float


def quantiles(values: Sequence[float]) -> Quantiles:
    return Quantiles(p10=percentile(values, 0.1), p50=percentile(values, 0.5), p90=percentile(values, 0.9))


# ------------------------------------------------------------------------------------------------
# Solving one sample (runs in a worker: a process or a Ray task)
# ------------------------------------------------------------------------------------------------


@dataclass
class Setup:
    """What every sample needs: built once, shipped to the workers."""

    rs: ResolvedScenario          # no budget cap, confidence 0.5, a cost objective
    cands: CandidateSet           # point-estimate capacities at the scenario's prices
    settings: SolveSettings
    risk: Risk
    seed: int
    family: dict[str, str]        # GPU -> family (one capacity draw per family)
    band: dict[str, float]        # GPU -> band_log_sd of its capacities
    base_gpu_price: dict[str, float]
    markup: float                 # hardware_markup of the scenario
    tables: list[YearTable] | None = None  # with periods: each year's scenario and table (point estimates)
    demand: dict[str, list[float]] | None = None  # inference rate per workload per year

    def sample(self, index: int) -> Sample:
        return draw_sample(self.seed, index, self.risk, sorted(self.base_gpu_price), sorted(set(self.family.values())))


class SampleResult(Record):
    sample: Sample
    status: Literal["optimal", "feasible", "infeasible", "error"]
    optimum: PlanShape | None = None
    optimal_cost: float | None = Field(default=None, description="The sample's optimum's cost (cost_at)")
    reason: str | None = None


def scaled_candidates(setup: Setup, s: Sample, cands: CandidateSet | None = None) -> CandidateSet:
    """The candidate table (``setup.cands`` unless given) with each replica's capacity times
    ``exp(z_f x sd)`` and each GPU's price times its multiplier (measured capacities are exact: not scaled)."""
    c = setup.cands if cands is None else cands
    skus = {k: (sku if sku.hourly_price is not None else
                replace(sku, gpu_price=sku.gpu_price * s.price_factor.get(sku.gpu.name, 1.0)))
            for k, sku in c.skus.items()}
    inference = []
    for cand in c.inference:
        gpu = c.skus[cand.sku].gpu.name
        f = 1.0 if cand.perf.source == "measured" else \
            math.exp(s.capacity_z.get(setup.family.get(gpu, gpu), 0.0) * setup.band.get(gpu, 0.0))
        inference.append(replace(cand, perf=replace(cand.perf, requests_per_s=cand.perf.requests_per_s * f),
                                 bucket_perf=tuple(replace(p, requests_per_s=p.requests_per_s * f)
                                                   for p in cand.bucket_perf)))
    return replace(c, skus=skus, inference=inference)


def _sample_prices(setup: Setup, s: Sample) -> ResolvedScenario:
    """With periods: the scenario with per-year GPU price overrides (``periods.prices``) x m_g, so a
    GPU's every year's price moves with its multiplier (the tables' year-1 prices are scaled alike)."""
    sc = setup.rs.scenario
    assert sc.periods is not None
    names = {g.lower(): g for g in setup.base_gpu_price}
    prices = {k: ([v * s.price_factor.get(names[k.lower()], 1.0) for v in vs] if k.lower() in names else vs)
              for k, vs in sorted(sc.periods.prices.items())}
    if prices == sc.periods.prices:
        return setup.rs
    return resolve_scenario(sc.model_copy(update={"periods": sc.periods.model_copy(update={"prices": prices})}),
                            setup.rs.path, setup.rs.catalog)


def _solve_periods_sample(setup: Setup, s: Sample) -> Plan:
    """The period MIP on the sample: year y's rates x year_factor, every year's table scaled."""
    from optimizer.model.periods_plan import solve_period_tables

    assert setup.tables is not None
    scaled: dict[int, CandidateSet] = {}  # years sharing a table share its scaled copy
    tables = []
    for t in setup.tables:
        if id(t.cands) not in scaled:
            scaled[id(t.cands)] = scaled_candidates(setup, s, t.cands)
        tables.append(YearTable(t.year, with_overrides(t.rs, demand_scale=year_factor(s, t.year)),
                                scaled[id(t.cands)]))
    return solve_period_tables(_sample_prices(setup, s), tables, setup.settings)


def solve_sample(setup: Setup, index: int) -> SampleResult:
    """The cheapest plan for sample ``index`` (module docstring, 2.)."""
    s = setup.sample(index)
    try:
        if setup.tables is not None:
            plan = _solve_periods_sample(setup, s)
        else:
            rs = with_overrides(setup.rs, demand_scale=s.demand_scale)
            plan = solve_scenario(rs, setup.settings, cands=scaled_candidates(setup, s), verify=False).plan
    except InfeasibleError as exc:
        return SampleResult(sample=s, status="infeasible", reason=exc.message)
    except ProcureError as exc:
        return SampleResult(sample=s, status="error", reason=exc.render())
    if setup.tables is not None:
        shape = period_shape_of(plan, f"sample {index}", setup.rs, setup.base_gpu_price, setup.family, sample=s)
    else:
        shape = shape_of(plan, f"sample {index}", setup.base_gpu_price, setup.family, setup.markup, sample=s)
    return SampleResult(sample=s, status=plan.status, optimum=shape, optimal_cost=cost_at(shape, s))


_SETUP: Setup | None = None


def _init_worker(setup: Setup) -> None:
    """Process worker start: the setup; HiGHS's C-level chatter off stdout; Ctrl-C left to the parent."""
    global _SETUP
    _SETUP = setup
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def _local_task(index: int) -> SampleResult:
    assert _SETUP is not None
    return solve_sample(_SETUP, index)


def _ray_task(setup: Setup, index: int) -> SampleResult:
    return solve_sample(setup, index)


Progress = Callable[[int, int], None]


def _run_local(setup: Setup, n: int, workers: int, progress: Progress) -> list[SampleResult]:
    out: dict[int, SampleResult] = {}
    if workers == 1:
        for i in range(n):
            out[i] = solve_sample(setup, i)
            progress(len(out), n)
        return [out[i] for i in range(n)]
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(setup,))
    try:
        futures: dict[Future[SampleResult], int] = {pool.submit(_local_task, i): i for i in range(n)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                out[futures[f]] = f.result()
            progress(len(out), n)
    finally:
        # on Ctrl-C (or any error) queued samples are dropped; running ones finish (each is short)
        pool.shutdown(wait=True, cancel_futures=True)
    return [out[i] for i in range(n)]


def _run_ray(setup: Setup, n: int, workers: int | None, address: str | None,
             progress: Progress) -> list[SampleResult]:
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray, which is not installed", field="--executor",
                         hint="pip install 'procure[ray]' (ray>=2.9), or use --executor local") from None
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, log_to_driver=False, include_dashboard=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise UsageError(f"cannot connect to a Ray cluster at {address!r}: {exc}", field="--address",
                             hint="give the head node's address (ray status prints it), e.g. "
                             "--address 10.0.0.5:6379, or omit it to start Ray on this machine") from None
        started = True
    remote = ray.remote(num_cpus=1)(_ray_task)
    ref = ray.put(setup)
    limit = workers or n  # at most this many samples in flight; the cluster schedules them
    out: dict[int, SampleResult] = {}
    pending: dict[Any, int] = {}
    nxt = 0
    try:
        while len(out) < n:
            while nxt < n and len(pending) < limit:
                pending[remote.remote(ref, nxt)] = nxt
                nxt += 1
            ready, _ = ray.wait(list(pending), num_returns=1)
            for r in ready:
                out[pending.pop(r)] = ray.get(r)
            progress(len(out), n)
    except BaseException:
        for r in pending:
            ray.cancel(r, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
    return [out[i] for i in range(n)]


# ------------------------------------------------------------------------------------------------
# The run and its report
# ------------------------------------------------------------------------------------------------


class PlanRisk(Record):
    """One plan evaluated on every sample."""

    source: str
    capex: float = Field(description="At the scenario's prices, currency")
    cost: Quantiles = Field(description="Capex at sampled prices (with periods: NPV, or TCO), currency")
    served: Quantiles = Field(description="Requests/s served over requests/s demanded (with periods: in the "
                              "plan's worst year of each sample)")
    served_by_year: list[Quantiles] = Field(description="Requests served fraction in each year (one without periods)")
    p_all_served: float = Field(ge=0, le=1, description="Share of samples where every workload is fully served")
    gpus_by_type: dict[str, int]
    servers: dict[str, int]


class SampleRow(Record):
    index: int
    demand_scale: float
    growth: float
    price_factor: dict[str, float]
    capacity_z: dict[str, float]
    cost: float = Field(description="The recommended plan's capex (with periods: NPV or TCO) at this sample's prices")
    served: float = Field(description="The recommended plan's requests served fraction (with periods: worst year)")
    served_by_year: list[float] = Field(description="The recommended plan's requests served fraction per year")
    all_served: bool
    status: str = Field(description="Of the sample's own solve")
    optimal_cost: float | None
    reason: str | None = None


class MonteCarloResult(Record):
    scenario: str
    scenario_file: str
    currency: str
    samples: int
    seed: int
    risk: Risk
    executor: Executor
    workers: int | None
    recommended: PlanRisk = Field(description="The scenario solved as written, evaluated on every sample")
    cost: Quantiles
    served: Quantiles
    served_by_workload: dict[str, Quantiles] = Field(description="Served fraction (with periods: the workload's "
                                                      "worst year in each sample)")
    served_by_year: list[Quantiles]
    years: int = Field(ge=1, description="Periods of the plan (1 without periods)")
    cost_name: Literal["capex", "npv", "tco"] = Field(description="What cost is: capex, or with periods NPV or TCO")
    p_all_served: float
    optimal_cost: Quantiles | None = Field(description="Capex of each sample's own optimum (solved samples)")
    unsolved_samples: int = Field(description="Samples with no feasible plan (a site or supply limit binds)")
    robust_plan: PlanRisk | None = Field(description="The plan that holds in 90 % of samples (robust_rule); "
                                         "None when no plan does")
    most_robust_plan: PlanRisk = Field(description="The plan serving all demand in the most samples "
                                       "(ties as robust_rule): what to look at when none holds in 90 %")
    robust_rule: str
    rows: list[SampleRow]
    wall_time_s: float


Yearly = list[dict[str, float]]  # served fraction per workload, per year


def yearly_served(fr: Yearly, demand: dict[str, list[float]]) -> list[float]:
    """Requests served fraction of each year (weights: that year's rates; the sample's factor cancels)."""
    return [requests_served(f, {w: v[y] for w, v in demand.items()}) for y, f in enumerate(fr)]


def all_served(fr: Yearly) -> bool:
    return all(v >= ALL_SERVED for f in fr for v in f.values())


def evaluate(shape: PlanShape, samples: Sequence[Sample], demand: dict[str, list[float]],
             family: dict[str, str]) -> tuple[PlanRisk, list[Yearly]]:
    """``shape`` on every sample; ``demand``: each workload's rate per year (one entry without periods)."""
    fr = [served_by_year(shape, s, demand, family) for s in samples]
    ok = sum(all_served(f) for f in fr)
    by_year = [yearly_served(f, demand) for f in fr]
    risk = PlanRisk(source=shape.source, capex=shape.capex, cost=quantiles([cost_at(shape, s) for s in samples]),
                    served=quantiles([min(v) for v in by_year]),
                    served_by_year=[quantiles([v[y] for v in by_year]) for y in range(len(by_year[0]))],
                    p_all_served=ok / len(samples), gpus_by_type=shape.gpus_by_type, servers=shape.servers)
    return risk, fr


def robust_rule(hold: float = HOLD_FRACTION) -> str:
    return (f"among the recommended plan and the distinct sampled optima, each evaluated on every sample: "
            f"those serving all demand of every workload in at least {hold:.0%} of samples; of those the "
            "lowest median cost at sampled prices (ties: lower capex at the scenario's prices, then the "
            "earlier plan)")


def robust_plan(shapes: Sequence[PlanShape], samples: Sequence[Sample], demand: dict[str, list[float]],
                family: dict[str, str], hold: float = HOLD_FRACTION) -> tuple[PlanRisk | None, PlanRisk]:
    """(The plan that holds in ``hold`` of samples or None, the plan that holds in the most samples)
    (module docstring); ``shapes`` in priority order, the recommended plan first."""
    seen: set[tuple[Any, ...]] = set()
    best: tuple[tuple[float, float, int], PlanRisk] | None = None
    most: tuple[tuple[float, float, float, int], PlanRisk] | None = None
    for i, sh in enumerate(shapes):
        k = sh.key()
        if k in seen:
            continue
        seen.add(k)
        r, _ = evaluate(sh, samples, demand, family)
        rank = (round(r.cost.p50, 6), round(sh.capex, 6), i)
        if r.p_all_served >= hold - 1e-12 and (best is None or rank < best[0]):
            best = (rank, r)
        if most is None or (-r.p_all_served, *rank) < most[0]:
            most = ((-r.p_all_served, *rank), r)
    assert most is not None, "no plan to rank"
    return (best[1] if best else None), most[1]


def prepare(rs: ResolvedScenario, seed: int, risk: Risk | None = None,
            time_limit_s: float | None = None) -> tuple[Setup, Plan]:
    """The recommended plan (the scenario solved as written) and the samples' shared setup."""
    plan = solve_scenario(rs, settings_of(rs, time_limit_s=time_limit_s)).plan
    sc = rs.scenario
    # with periods the scenario's own objective (npv or tco: the schema allows no other there)
    objective = sc.objective if sc.objective in ("capex", "tco") or sc.periods is not None else "capex"
    srs = with_overrides(rs, confidence=0.5, objective=objective)
    # no budget cap: a sample's optimum is the cheapest plan serving its demand, whatever it costs
    srs = resolve_scenario(srs.scenario.model_copy(update={
        "constraints": srs.scenario.constraints.model_copy(update={"budget": None})}), srs.path, srs.catalog)
    tables = year_tables(srs) if sc.periods is not None else None
    all_cands = [t.cands for t in tables] if tables else [build_candidates(srs)]
    family: dict[str, str] = {}
    band: dict[str, float] = {}
    base_price: dict[str, float] = {}
    for cands in all_cands:
        for g, e in sorted(cands.efficiency.items()):
            family.setdefault(g, e.family)
            band.setdefault(g, e.band_log_sd)
        for sku in cands.skus.values():
            if sku.hourly_price is None:
                base_price.setdefault(sku.gpu.name, sku.gpu_price)
    setup = Setup(rs=srs, cands=all_cands[0], settings=settings_of(srs, time_limit_s=time_limit_s),
                  risk=risk or sc.risk, seed=seed, family=dict(sorted(family.items())),
                  band=dict(sorted(band.items())), base_gpu_price=dict(sorted(base_price.items())),
                  markup=0.0 if tables else hardware_markup(srs), tables=tables, demand=demand_of(rs))
    return setup, plan


def demand_of(rs: ResolvedScenario) -> dict[str, list[float]]:
    """Each inference workload's rate per year (optimizer.periods.demand_by_year; one year without periods)."""
    sc = rs.scenario
    years = sc.periods.years if sc.periods is not None else 1
    return {w.name: (per.demand_by_year(w, years) if sc.periods is not None else [w.requests_per_s])
            for w in sc.workloads if isinstance(w, InferenceWorkload)}


def run_monte_carlo(rs: ResolvedScenario, n: int, *, seed: int = 0, executor: Executor = "local",
                    workers: int | None = None, address: str | None = None, risk: Risk | None = None,
                    time_limit_s: float | None = None, progress: Progress | None = None) -> MonteCarloResult:
    """Sample, evaluate the recommended plan, solve every sample (module docstring)."""
    if not 1 <= n <= MAX_SAMPLES:
        raise UsageError(f"--monte-carlo must be between 1 and {MAX_SAMPLES}, not {n}", field="--monte-carlo")
    t0 = time.perf_counter()
    say = progress or (lambda _d, _n: None)
    setup, plan = prepare(rs, seed, risk, time_limit_s)
    if executor == "local":
        from optimizer.compare import default_jobs

        k = max(1, min(workers or default_jobs(), n))
        results = _run_local(setup, n, k, say)
    else:
        results = _run_ray(setup, n, workers, address, say)
    samples = [r.sample for r in results]
    demand = setup.demand
    assert demand is not None
    sc = rs.scenario
    if sc.periods is not None:
        rec = period_shape_of(plan, "recommended", setup.rs, setup.base_gpu_price, setup.family)
    else:
        rec = shape_of(plan, "recommended", setup.base_gpu_price, setup.family, setup.markup)
    rec_risk, fractions = evaluate(rec, samples, demand, setup.family)
    shapes = [rec, *(r.optimum for r in results if r.optimum is not None)]
    robust, most = robust_plan(shapes, samples, demand, setup.family)
    rows = []
    for r, f in zip(results, fractions, strict=True):
        yearly = yearly_served(f, demand)
        rows.append(SampleRow(index=r.sample.index, demand_scale=r.sample.demand_scale, growth=r.sample.growth,
                              price_factor=r.sample.price_factor, capacity_z=r.sample.capacity_z,
                              cost=cost_at(rec, r.sample), served=min(yearly), served_by_year=yearly,
                              all_served=all_served(f), status=r.status, optimal_cost=r.optimal_cost,
                              reason=r.reason))
    solved = [r.optimal_cost for r in results if r.optimal_cost is not None]
    years = len(rec_risk.served_by_year)
    cost_name: Literal["capex", "npv", "tco"] = "capex" if sc.periods is None else \
        ("npv" if sc.objective == "npv" else "tco")
    return MonteCarloResult(
        scenario=sc.name, scenario_file=str(rs.path), currency=sc.currency, samples=n, seed=seed,
        risk=setup.risk, executor=executor, workers=workers, recommended=rec_risk, cost=rec_risk.cost,
        served=rec_risk.served,
        served_by_workload={w: quantiles([min(fy[w] for fy in f) for f in fractions]) for w in demand},
        served_by_year=rec_risk.served_by_year, years=years, cost_name=cost_name,
        p_all_served=rec_risk.p_all_served, optimal_cost=quantiles(solved) if solved else None,
        unsolved_samples=n - len(solved), robust_plan=robust, most_robust_plan=most, robust_rule=robust_rule(),
        rows=rows,
        wall_time_s=time.perf_counter() - t0)


def same_results(a: MonteCarloResult, b: MonteCarloResult) -> bool:
    """Equal apart from how they were run (executor, workers, wall time)."""
    skip = {"executor", "workers", "wall_time_s"}
    return a.model_dump(exclude=skip) == b.model_dump(exclude=skip)


__all__ = ["MonteCarloResult", "PlanShape", "Sample", "cost_at", "draw_sample", "percentile", "robust_plan",
           "run_monte_carlo", "served_fractions", "shape_of"]
