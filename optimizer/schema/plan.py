"""Plan schema: what to buy, what runs where, and how sure the solver is.

Money is in the scenario currency, power in kW (IT load unless named facility), rates in requests/s.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from optimizer.schema.base import Record


class ServerLine(Record):
    """One server SKU bought: a chassis populated with ``gpus_per_server`` GPUs of one type."""

    sku: str = Field(description="chassis/GPU/population, e.g. HGX-H20-8GPU/H20-96GB/8")
    chassis: str
    gpu: str
    gpus_per_server: int
    count: int
    chassis_price: float = Field(description="Base system price per server, currency")
    gpu_unit_price: float = Field(description="Price per GPU, currency")
    unit_price: float = Field(description="chassis_price + gpus_per_server * gpu_unit_price")
    power_w: float = Field(description="Full-load power per server: base + GPUs at TDP, W")
    rack_units: int
    price_source: str = Field(description="Where the prices come from and their date")
    integrated: bool = Field(default=False, description="One system at a system price (HGX/DGX, OAM, "
                             "Atlas 800): one orderable line with the GPU count as description; "
                             "false: chassis + cards")
    hourly_price: float | None = Field(default=None, description="Cloud instance type: price per hour "
                                       "(GPUs included), currency; prices and power are then 0 (rented)")


class QuoteLine(Record):
    """A quote line besides the servers (optimizer/quote.py): network, storage, rack, shipping, support."""

    item: str = Field(description="Catalog name (catalogs/quote_items.yaml)")
    category: Literal["network", "storage", "rack", "shipping", "support"]
    vendor: str
    description: str
    part_number: str | None
    quantity: float = Field(description="Units (ports, TB, racks, servers, support years)")
    unit: str = Field(description="What one unit is, e.g. 'switch', 'TB', 'support year'")
    unit_price: float = Field(description="Currency per unit")
    extended_price: float = Field(description="quantity x unit_price, currency")
    price_date: date
    source: str = Field(description="Where the figure was read (clean; research notes stay in the catalog)")
    confidence: Literal["high", "medium", "low"]
    stale: bool = Field(description="price_date more than 12 months before the plan date")
    basis: str = Field(description="How the quantity follows from the plan, e.g. '3 servers x 4 NICs'")


class MemoryAccount(Record):
    """Per-GPU memory of the most loaded rank of one replica, as the engine's start-up profiling
    accounts it (optimizer.sizing.memory.serving_memory), GiB."""

    gpu_memory_gib: float
    budget_gib: float = Field(description="gpu_memory_gib x gpu_memory_utilization")
    activation_peak_gib: float
    non_torch_gib: float = Field(description="CUDA context, cuBLAS, NCCL")
    kv_cache_gib: float
    cuda_graph_gib: float = Field(description="Captured after the KV cache, outside the budget")
    max_model_len: int
    max_concurrency: float = Field(description="KV cache tokens / max_model_len")


class BucketLoad(Record):
    """What a deployment's replicas carry of one length bucket of their workload's mix."""

    input_tokens: int
    output_tokens: int
    capacity_rps: float = Field(description="SLO requests/s one replica sustains on this bucket alone")
    planned_rps: float = Field(description="This bucket's requests/s routed to these replicas")
    ttft_ms: float = Field(description="Predicted TTFT on this bucket at its SLO capacity x headroom")
    tpot_ms: float = Field(description="Predicted TPOT on this bucket at that load")


class Deployment(Record):
    """Replicas of one workload in one configuration."""

    workload: str
    model: str
    sku: str
    gpu: str
    tp: int
    pp: int
    ep: int = Field(default=1, ge=1, description="Expert-parallel size: 1 (experts TP-sharded) or tp x dp "
                    "(routed experts whole, num_experts / ep per GPU)")
    dp: int = Field(default=1, ge=1, description="Attention data-parallel ranks of tp GPUs each; a replica "
                    "is tp x pp x dp GPUs")
    precision: str
    kv_dtype: str
    replicas: int
    gpus_per_replica: int
    capacity_rps: float = Field(description="SLO-limited requests/s one replica sustains (before headroom)")
    planned_rps: float = Field(description="Share of the workload's demand routed to these replicas")
    ttft_ms: float = Field(description="Predicted time to first token at planned load")
    tpot_ms: float = Field(description="Predicted time per output token at the SLO batch")
    batch: int = Field(description="Concurrent sequences per replica at the SLO limit")
    limited_by: str
    weights_gib_per_gpu: float
    kv_cache_tokens: int = Field(description="KV cache capacity per replica, tokens (dp x one DP rank's)")
    memory: MemoryAccount
    perf_source: str = Field(description="model (estimated) or measured (calibration file)")
    efficiency_source: Literal["fitted", "transferred", "measured"] = Field(
        default="fitted", description="fitted: this GPU family and engine have calibration rows; "
        "transferred: factors borrowed from another family or engine; measured: a measured point")
    capacity_quantile: float = Field(
        default=0.5, ge=0, le=1, description="Quantile of the replica's capacity distribution "
        "capacity_rps is (0.5 = point estimate; 1 - the scenario's confidence)")
    capacity_band_log_sd: float = Field(
        default=0.0, ge=0, description="Standard deviation of log(capacity) of this family and engine")
    buckets: list[BucketLoad] = Field(default_factory=list, description=(
        "With a length mix: the buckets routed here; capacity_rps is then one replica's capacity on "
        "that routed mix, planned_rps / sum(planned_b / capacity_b) (time-sharing)"))


class FinetuneAssignment(Record):
    workload: str
    model: str
    sku: str
    gpu: str
    gpus: int
    method: str
    hours: float = Field(description="Predicted wall-clock hours on these GPUs")
    deadline_hours: float
    peak_gib_per_gpu: float


class WorkloadCoverage(Record):
    workload: str
    kind: Literal["inference", "finetune"]
    demand_rps: float | None
    capacity_rps: float | None = Field(description="Planned capacity after headroom, requests/s")
    served_fraction: float
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None


class PlacedReplica(Record):
    workload: str
    tp: int
    pp: int
    ep: int = 1
    dp: int = 1
    gpus: list[int] = Field(description="GPU slot indices on this server")


class PlacedServer(Record):
    index: int = Field(description="1-based server number")
    sku: str
    rack: int = Field(description="1-based rack number")
    replicas: list[PlacedReplica]
    finetune: list[str] = Field(default_factory=list, description="Fine-tuning jobs using GPUs here")
    free_gpus: int


class SolverReport(Record):
    solver: str
    status: Literal["optimal", "feasible", "infeasible"]
    objective_name: str
    objective: float
    bound: float
    gap: float
    solve_time_s: float = Field(description="Both stages: objective, then tie-breaks")
    objective_time_s: float = Field(description="Stage 1: time to reach the objective within the gap")
    candidates: int
    variables: int
    constraints: int
    time_limit_s: float = Field(description="Wall-clock cap per stage, seconds (a safety net)")
    node_limit: int = Field(description="Branch-and-bound nodes per stage (the deterministic limit)")
    seed: int
    stopped_by: str = Field(description="What ended stage 1: optimal (within the gap), node_limit or "
                            "time_limit; a time_limit result can differ between a busy and an idle machine")
    tiebreak_stopped_by: str = Field(description="What ended stage 2 (tie-breaks, or the cheapest plan "
                                     "under coverage): optimal, node_limit, time_limit, none")
    tiebreak_gap: float = Field(description="Relative gap of stage 2 when it stopped")
    nodes: int = Field(default=0, description="Branch-and-bound nodes stage 1 used (what --node-limit counts)")


class SkuCount(Record):
    sku: str = Field(description="chassis/GPU/population")
    count: int = Field(ge=0, description="Servers")


class RentLine(Record):
    """Cloud instances rented in one period (option on-demand, or a committed term started then)."""

    instance: str = Field(description="Instance type as a SKU key: instance/GPU/GPUs")
    option: str = Field(description="on-demand, or a committed term such as 1y, 3y")
    term_years: int = Field(ge=1, description="Years the option's price covers (1 for on-demand)")
    start_year: int = Field(ge=1, description="Year the option was taken (its term runs from there)")
    count: int = Field(ge=0, description="Instances")
    gpu_hours: float = Field(description="count x GPUs per instance x 8760 h in this period")
    hourly_price: float = Field(description="Currency per instance-hour in this period")
    cost: float = Field(description="count x hourly_price x 8760, currency, this period")


class PeriodPlan(Record):
    """One year of a plan over periods: buys at its start at that year's prices, then runs on what
    is owned (inventory kept + bought so far) and rented."""

    year: int = Field(ge=1)
    demand_rps: dict[str, float] = Field(description="Peak requests/s per workload this year")
    models: dict[str, str] = Field(description="Model served per workload this year")
    buy: list[SkuCount] = Field(description="Servers bought at the start of this year")
    retire: list[SkuCount] = Field(description="Owned servers (inventory) retired at the start of this year")
    own: list[SkuCount] = Field(description="Servers owned during this year (inventory kept + bought so far)")
    rent: list[RentLine] = Field(description="Cloud instances rented during this year")
    unit_prices: dict[str, float] = Field(description="Server price this year for each SKU bought, currency")
    capex: float = Field(description="Σ bought x unit price this year, currency")
    energy: float = Field(description="Owned servers' energy this year (full load x PUE x 8760 h), currency")
    support: float = Field(description="opex_per_year_fraction x year-1 price of the servers owned, currency")
    rent_cost: float = Field(description="What the instances rented cost for this year, currency")
    opex: float = Field(description="energy + support + rent_cost, currency")
    cash_out: float = Field(description="capex + opex, currency")
    discount_factor: float = Field(description="1 / (1 + discount rate)^(year - 1)")
    discounted: float = Field(description="cash_out x discount_factor, currency")
    power_kw: float = Field(description="IT power of the owned servers at full load, kW")
    racks_used: int
    deployments: list[Deployment]
    coverage: list[WorkloadCoverage]
    notes: list[str] = Field(default_factory=list, description="Why: what was rented, kept or retired")


class Plan(Record):
    scenario: str
    currency: str
    status: Literal["optimal", "feasible", "infeasible"]
    objective: float = Field(description="The objective's value: capex or TCO (currency), served demand "
                             "(coverage), or currency per hour (hourly)")
    gap: float
    hourly_cost: float | None = Field(default=None, description="Σ hourly price x count of the plan's "
                                      "cloud instances, currency per hour; None when it rents none")
    capex: float = Field(description="hardware_capex + quote lines, before contingency and tax, currency")
    hardware_capex: float = Field(default=0.0, description="Servers only (chassis and GPUs), currency")
    quote_lines: list[QuoteLine] = Field(default_factory=list)
    contingency: float = Field(default=0.0, description="capex x finance.contingency_pct, currency")
    tax: float = Field(default=0.0, description="(capex + contingency) x finance.tax_pct, currency")
    total_with_tax: float = Field(default=0.0, description="capex + contingency + tax: what the budget "
                                  "is checked against, currency")
    tco: float = Field(description="capex + energy + opex over the horizon (before contingency and tax), currency")
    energy_cost: float
    opex_cost: float
    power_kw: float = Field(description="IT power at full load, kW")
    facility_power_kw: float = Field(description="power_kw x PUE, kW")
    racks_used: int
    rack_units_used: int
    gpus_by_type: dict[str, int]
    servers: list[ServerLine]
    deployments: list[Deployment]
    finetunes: list[FinetuneAssignment]
    coverage: list[WorkloadCoverage]
    placement: list[PlacedServer]
    solver: SolverReport
    headroom: float
    confidence: float = Field(default=0.5, description="Probability each replica reaches its planned "
                              "capacity (0.5: point estimates; scenario `confidence`)")
    horizon_years: float
    notes: list[str] = Field(default_factory=list)
    periods: list[PeriodPlan] | None = Field(default=None, description="Plans over periods: one entry per "
        "year; top-level servers, deployments and placement are then the last year's")
    npv: float | None = Field(default=None, description="With periods: Σ_y cash out_y / (1 + d)^(y - 1), currency")
    discount_rate: float | None = Field(default=None, description="With periods: the NPV's discount rate")
