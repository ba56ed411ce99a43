"""Scenario schema: what a user must serve and the limits of their site and budget.

Money is in the scenario's ``currency``; catalog prices are US dollars converted with
``usd_to_currency``. Every field is documented in docs/scenario.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from optimizer import demand
from optimizer.schema.base import Name, Ref, Strict, Text
from optimizer.schema.catalog import DeclaredGPU, DeclaredServer, Precision
from optimizer.schema.engine import EngineSettings, KVDtype
from optimizer.schema.measured import MeasuredEntry

# Sane ranges, checked once here: a value outside them is a typo or a unit mistake, never a plan.
MAX_MONEY = 1e15          # currency units (a trillion US dollars in won or rupiah still fits)
MAX_UNIT_PRICE = 1e12     # one item or one kWh, currency units
MAX_SITE_KW = 1e7         # 10 GW
MAX_RACKS = 1_000_000
MAX_COUNT = 10_000_000    # GPUs available, replicas
MAX_RPS = 1e7             # requests/s
MAX_TOKENS = 100_000_000  # prompt, answer, context, sequence lengths
MAX_LATENCY_MS = 3.6e6    # one hour
MAX_DEMAND_SCALE = 1e4
MAX_TIME_LIMIT_S = 7 * 86400.0
MAX_SEED = 2**31 - 1      # HiGHS and SCIP take a 32-bit seed
MAX_PERIOD_YEARS = 30     # periods: one-year periods
DEFAULT_NODE_LIMIT = 100_000

#: A unit price override in the scenario currency.
Price = Annotated[float, Field(gt=0, le=MAX_UNIT_PRICE)]


class Site(Strict):
    power_kw: float = Field(gt=0, le=MAX_SITE_KW,
        description="Facility power available to this deployment, kW (at the meter, incl. cooling)")
    pue: float = Field(default=1.4, ge=1.0, le=3.0, description="Power usage effectiveness: facility kW per IT kW")
    racks: int = Field(ge=1, le=MAX_RACKS, description="Racks available")
    rack_power_kw: float = Field(gt=0, le=1000, description="IT power one rack can feed and cool, kW")
    rack_units: int = Field(default=42, ge=1, le=100, description="Usable rack units (U) per rack")
    electricity_per_kwh: float = Field(default=0.0, ge=0, le=MAX_UNIT_PRICE,
        description="Electricity price per kWh in the scenario currency")
    racks_provided: bool = Field(default=True,
        description="The site provides racks and PDUs; false: the quote buys them (quote.racks)")


class Constraints(Strict):
    budget: float | None = Field(default=None, gt=0, le=MAX_MONEY,
        description="Capex cap in the scenario currency; omit for no cap")
    gpus: list[Ref] | None = Field(default=None, min_length=1,
        description="GPUs that may be bought (catalog names); omit for all")
    servers: list[Ref] | None = Field(default=None, min_length=1,
        description="Server chassis that may be bought; omit for all that take an allowed GPU")
    max_gpu_types: int | None = Field(default=None, ge=1, le=100,
        description="At most this many distinct GPU types in the plan")
    availability: dict[Ref, Annotated[int, Field(ge=0, le=MAX_COUNT)]] = Field(default_factory=dict,
        description="Most GPUs of a type that can be obtained, e.g. {H20-96GB: 64}")
    allow_consumer_gpus: bool = Field(
        default=False, description="With gpus omitted, also consider cards not licensed for datacenters "
        "(GeForce RTX); naming one in gpus allows it too")
    allow_pp_across_servers: bool = Field(default=False,
        description="Let pipeline parallelism span servers (needs a fast scale-out fabric)")
    rent: bool = Field(default=False,
        description="Let the plan rent cloud instance types (catalogs/cloud.yaml, catalog: entries with "
        "hourly_usd) beside buying servers; renting is priced per period (issue #14), so a one-period "
        "plan rents only under objective hourly")


Latency = Annotated[float, Field(gt=0, le=MAX_LATENCY_MS)]


class SLO(Strict):
    """Latency targets: means and/or p90/p99 tails (docs/perf.md "Tail latency"); at least one
    TTFT-type and one TPOT-type target."""

    ttft_ms: Latency | None = Field(default=None, description="Mean time to first token target, ms")
    tpot_ms: Latency | None = Field(default=None, description="Mean time per output token target, ms")
    ttft_p90_ms: Latency | None = Field(default=None, description="90th-percentile time to first token target, ms")
    ttft_p99_ms: Latency | None = Field(default=None, description="99th-percentile time to first token target, ms")
    tpot_p90_ms: Latency | None = Field(default=None, description="90th-percentile time per output token target, ms")
    tpot_p99_ms: Latency | None = Field(default=None, description="99th-percentile time per output token target, ms")

    @model_validator(mode="after")
    def _one_target_of_each_metric(self) -> SLO:
        for metric, label in (("ttft", "time to first token"), ("tpot", "time per output token")):
            mean, p90, p99 = (getattr(self, f"{metric}{s}_ms") for s in ("", "_p90", "_p99"))
            if mean is None and p90 is None and p99 is None:
                raise ValueError(f"no {label} target: give {metric}_ms (mean), {metric}_p90_ms or {metric}_p99_ms")
            if p90 is not None and p99 is not None and p99 < p90:
                raise ValueError(f"{metric}_p99_ms {p99:g} is below {metric}_p90_ms {p90:g}; a p99 target "
                                 "is at least the p90 one")
        return self

    def describe(self) -> str:
        """The targets as people read them: ``TTFT 2000 ms, TTFT p99 5000 ms, TPOT 50 ms``."""
        parts = []
        for metric in ("ttft", "tpot"):
            for suffix, label in (("", ""), ("_p90", " p90"), ("_p99", " p99")):
                v = getattr(self, f"{metric}{suffix}_ms")
                if v is not None:
                    parts.append(f"{metric.upper()}{label} {v:g} ms")
        return ", ".join(parts)


class Prefix(Strict):
    """A prompt prefix shared by the workload's requests (system prompt, RAG template), kept by
    the engine's prefix cache (vLLM automatic prefix caching, SGLang RadixAttention)."""

    tokens: int = Field(ge=1, le=MAX_TOKENS, description="Shared prefix length, tokens (part of input_tokens)")
    hit_rate: float = Field(ge=0, le=1, description="Share of requests whose prefix is found in the cache, 0-1")


#: Most length buckets a workload may carry (each is a column of capacities in the MIP).
MAX_LENGTH_BUCKETS = 64


class LengthBucket(Strict):
    """One slice of a workload's traffic: requests of about these lengths, this share of them."""

    input_tokens: int = Field(ge=1, le=MAX_TOKENS, description="Prompt length of the bucket, tokens")
    output_tokens: int = Field(ge=1, le=MAX_TOKENS, description="Answer length of the bucket, tokens")
    share: float = Field(gt=0, le=1, description="Fraction of the workload's requests in this bucket")


def _mix_means(buckets: list[Any]) -> tuple[int, int]:
    """Share-weighted mean input and output tokens of raw bucket mappings (rounded, at least 1)."""
    total = sum(float(b["share"]) for b in buckets)
    mean_in = sum(float(b["share"]) * float(b["input_tokens"]) for b in buckets) / total
    mean_out = sum(float(b["share"]) * float(b["output_tokens"]) for b in buckets) / total
    return max(1, round(mean_in)), max(1, round(mean_out))


MAX_USERS = 1e10              # more than every person on Earth
MAX_REQUESTS_PER_DAY = MAX_RPS * 86400.0


class UsersDemand(Strict):
    """Peak rate from a user base: users x requests per user per day x peak-hour share / 3600."""

    users: int = Field(ge=1, le=MAX_USERS, description="Users of the service")
    requests_per_user_per_day: float = Field(gt=0, le=1e6, description="Requests one user makes a day")
    peak_hour_share: float = Field(gt=0, le=1,
        description="Share of a day's requests that fall in the busiest hour (1/24 = a flat day)")

    @field_validator("peak_hour_share")
    @classmethod
    def _at_least_flat(cls, value: float) -> float:
        if value < 1 / 24 * (1 - 1e-12):
            raise ValueError(f"peak_hour_share {value:g} is below 1/24 = {1 / 24:.4f}: the busiest of 24 hours "
                             "holds at least an average hour's share; give the share as a fraction (0.11 = 11 %)")
        return value

    def peak_rps(self) -> float:
        return demand.users_peak_rps(self.users, self.requests_per_user_per_day, self.peak_hour_share)

    def explain(self) -> str:
        return demand.explain_users(self.users, self.requests_per_user_per_day, self.peak_hour_share)

    def scaled(self, factor: float) -> UsersDemand:
        return self.model_copy(update={"requests_per_user_per_day": self.requests_per_user_per_day * factor})


class DailyDemand(Strict):
    """Peak rate from a daily volume: requests per day / 86400 x peak-to-mean factor."""

    requests_per_day: float = Field(gt=0, le=MAX_REQUESTS_PER_DAY, description="Requests a day")
    peak_factor: float = Field(ge=1, le=1000, description="Peak-to-mean ratio of the request rate (>= 1)")

    def peak_rps(self) -> float:
        return demand.daily_peak_rps(self.requests_per_day, self.peak_factor)

    def explain(self) -> str:
        return demand.explain_daily(self.requests_per_day, self.peak_factor)

    def scaled(self, factor: float) -> DailyDemand:
        return self.model_copy(update={"requests_per_day": self.requests_per_day * factor})


class HourlyDemand(Strict):
    """Peak rate from a day's profile: the busiest of 24 hourly request counts / 3600."""

    hourly_requests: list[Annotated[float, Field(ge=0, le=MAX_RPS * 3600.0)]] = Field(
        min_length=24, max_length=24, description="Requests in each hour of a typical day, 00:00 first")

    @field_validator("hourly_requests")
    @classmethod
    def _some_traffic(cls, value: list[float]) -> list[float]:
        if max(value) <= 0:
            raise ValueError("hourly_requests are all 0: give at least one hour with requests")
        return value

    def peak_rps(self) -> float:
        return demand.hourly_peak_rps(self.hourly_requests)

    def explain(self) -> str:
        return demand.explain_hourly(self.hourly_requests)

    def scaled(self, factor: float) -> HourlyDemand:
        return self.model_copy(update={"hourly_requests": [h * factor for h in self.hourly_requests]})


#: The key that identifies each demand form (a mapping must hold exactly one of them).
DEMAND_FORMS = {"users": "users", "requests_per_day": "daily", "hourly_requests": "hourly"}
DEMAND_ALTERNATIVES = ("{users, requests_per_user_per_day, peak_hour_share}, "
                       "{requests_per_day, peak_factor} or {hourly_requests: [24 numbers]}")


def _demand_form(value: Any) -> str | None:
    """Tag of the one demand form whose identifying key ``value`` holds; None (an error naming the
    alternatives) when it holds none or several."""
    if isinstance(value, dict):
        tags = [tag for key, tag in DEMAND_FORMS.items() if key in value]
        return tags[0] if len(tags) == 1 else None
    if isinstance(value, UsersDemand | DailyDemand | HourlyDemand):
        return {UsersDemand: "users", DailyDemand: "daily", HourlyDemand: "hourly"}[type(value)]
    return None


Demand = Annotated[
    Annotated[UsersDemand, Tag("users")] | Annotated[DailyDemand, Tag("daily")]
    | Annotated[HourlyDemand, Tag("hourly")],
    Discriminator(_demand_form, custom_error_type="demand_form",
                  custom_error_message=f"demand must be exactly one of {DEMAND_ALTERNATIVES}"),
]

#: Relative tolerance within which a workload's requests_per_s and its demand must agree.
DEMAND_AGREEMENT = 1e-9


class InferenceWorkload(Strict):
    kind: Literal["inference"] = "inference"
    name: Name
    model: Ref = Field(description="Catalog name, Hugging Face id, or path to a config.json")
    precisions: list[Precision] = Field(default_factory=lambda: list[Precision](["bf16"]), min_length=1,
                                        description="Weight precisions the owners accept")
    kv_dtype: KVDtype = Field(default="auto", description="KV cache dtype")
    # 0 stands for "not given": a validator fills it from `demand` (or asks for one of the two)
    requests_per_s: float = Field(default=0.0, gt=0, le=MAX_RPS,
        description="Peak request rate to serve, requests/s; derived from demand when that is given")
    demand: Demand | None = Field(default=None,
        description="Business volumes the peak rate is derived from, instead of requests_per_s")
    # periods: (docs/periods.md): a list `requests_per_s: [12, 20, 36]` is moved here by the
    # validator below, and requests_per_s keeps year 1's rate for single-period readers
    requests_per_s_by_year: list[Annotated[float, Field(gt=0, le=MAX_RPS)]] | None = Field(
        default=None, min_length=1, max_length=MAX_PERIOD_YEARS,
        description="Peak request rate per year of periods:, requests/s (written as requests_per_s: [..])")
    growth_per_year: float | None = Field(default=None, gt=-1, le=100,
        description="With periods: the peak rate grows by this fraction a year (0.5 = +50 %/year)")
    model_by_year: list[Ref] | None = Field(default=None, min_length=1, max_length=MAX_PERIOD_YEARS,
        description="With periods: the model served in each year (a newer model replaces an older one)")
    input_tokens: int = Field(ge=1, le=MAX_TOKENS,
        description="Mean prompt length, tokens (with `lengths`: the mix's mean, filled in)")
    output_tokens: int = Field(ge=1, le=MAX_TOKENS,
        description="Mean answer length, tokens (with `lengths`: the mix's mean, filled in)")
    lengths: list[LengthBucket] | None = Field(default=None, min_length=1, max_length=MAX_LENGTH_BUCKETS,
        description="Length mix: buckets of {input_tokens, output_tokens, share} (shares sum to 1); "
        "capacity is sized per bucket and the plan may route buckets to different deployments")
    lengths_file: Ref | None = Field(default=None,
        description="CSV/JSONL/JSON of observed requests' input and output token counts, binned into "
        "`lengths` buckets when the scenario is loaded (path relative to the scenario file)")
    lengths_bins: list[Annotated[int, Field(ge=1, le=8)]] = Field(
        default_factory=lambda: [3, 3], min_length=2, max_length=2,
        description="With lengths_file: groups of input x output length (natural breaks of log length), e.g. [3, 3]")
    lengths_source: Text | None = Field(default=None,
        description="Where `lengths` came from (written by the loader for lengths_file)")
    max_context: int = Field(ge=2, le=MAX_TOKENS, description="max_model_len the engine is configured with, tokens")
    slo: SLO
    prefix: Prefix | None = Field(default=None,
        description="Shared prompt prefix served from the prefix cache; omit for none")
    min_replicas: int = Field(default=1, ge=1, le=MAX_COUNT,
        description="Replicas for availability; >=2 spreads them over servers")
    priority: float = Field(default=1.0, gt=0, le=1e6,
        description="Weight of this workload's served demand under the coverage objective")

    @model_validator(mode="before")
    @classmethod
    def _mix_fills_means(cls, data: Any) -> Any:
        """With ``lengths``, ``input_tokens``/``output_tokens`` are the mix's means: filled in when
        omitted, and when given they must be those means (so a written-out scenario reloads)."""
        if not isinstance(data, dict) or not isinstance(data.get("lengths"), list):
            return data
        buckets = data["lengths"]
        try:
            means = _mix_means(buckets)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            # the field validators report the malformed bucket with its path; stand-in means keep
            # "input_tokens missing" from being reported first (the bucket's error fails validation)
            return {"input_tokens": 1, "output_tokens": 1, **data}
        data = dict(data)
        for key, mean in zip(("input_tokens", "output_tokens"), means, strict=True):
            given = data.setdefault(key, mean)
            if given != mean:
                raise ValueError(f"{key} {given} is not the mean of `lengths` ({mean}); give lengths or "
                                 f"input_tokens/output_tokens, or omit {key} (it is filled in)")
        return data

    @model_validator(mode="before")
    @classmethod
    def _rate_list(cls, data: Any) -> Any:
        """``requests_per_s: [12, 20, 36]`` is one rate per year of ``periods:``: kept as
        ``requests_per_s_by_year``, with year 1's rate as ``requests_per_s``."""
        if not isinstance(data, dict) or not isinstance(data.get("requests_per_s"), list):
            return data
        rates = data["requests_per_s"]
        data = dict(data)
        if "requests_per_s_by_year" in data and data["requests_per_s_by_year"] != rates:
            raise ValueError("requests_per_s is a list and disagrees with requests_per_s_by_year; give one of them")
        data["requests_per_s_by_year"] = rates
        first = rates[0] if rates else None
        if isinstance(first, int | float) and not isinstance(first, bool) and 0 < first <= MAX_RPS:
            data["requests_per_s"] = first
        else:  # the list's own error (reported as requests_per_s[0]) says what is wrong with it
            data["requests_per_s"] = 1.0
        return data

    @model_validator(mode="after")
    def _peak_rate(self) -> InferenceWorkload:
        by_year = self.requests_per_s_by_year
        if by_year is not None:
            if self.demand is not None:
                raise ValueError("requests_per_s per year and demand: give one of them (demand with growth_per_year "
                                 "grows over periods)")
            if self.growth_per_year is not None:
                raise ValueError("requests_per_s per year and growth_per_year: give one of them")
            if abs(self.requests_per_s - by_year[0]) > DEMAND_AGREEMENT * by_year[0]:
                raise ValueError(f"requests_per_s {self.requests_per_s:g} is not year 1 of requests_per_s_by_year "
                                 f"({by_year[0]:g}); give one of them")
        given = "requests_per_s" in self.model_fields_set
        if self.demand is None:
            if not given:
                raise ValueError("give the peak rate as requests_per_s, or business volumes as demand: "
                                 + DEMAND_ALTERNATIVES)
            return self
        rate = self.demand.peak_rps()
        if not 0 < rate <= MAX_RPS:
            raise ValueError(f"demand gives a peak rate of {rate:g} req/s, outside (0, {MAX_RPS:g}]: "
                             f"{self.demand.explain()}")
        if given and abs(self.requests_per_s - rate) > DEMAND_AGREEMENT * rate:
            raise ValueError(f"requests_per_s {self.requests_per_s:g} disagrees with demand ({self.demand.explain()}); "
                             "give one of them")
        # the model is frozen: set the derived rate once, here, before anyone reads it
        object.__setattr__(self, "requests_per_s", rate)
        return self

    @model_validator(mode="after")
    def _fits_context(self) -> InferenceWorkload:
        if self.lengths_file is not None:
            raise ValueError("lengths_file is read when a scenario file is loaded (procure solve FILE); "
                             "here give `lengths:` buckets instead")
        if self.lengths is not None:
            total = sum(b.share for b in self.lengths)
            if abs(total - 1.0) > 1e-3:
                raise ValueError(f"lengths shares sum to {total:.6g}; they must sum to 1")
            seen: set[tuple[int, int]] = set()
            for i, b in enumerate(self.lengths):
                if b.input_tokens + b.output_tokens > self.max_context:
                    raise ValueError(f"lengths[{i}]: input_tokens + output_tokens = "
                                     f"{b.input_tokens + b.output_tokens} exceeds max_context {self.max_context}")
                if (b.input_tokens, b.output_tokens) in seen:
                    raise ValueError(f"lengths[{i}] repeats {b.input_tokens}/{b.output_tokens} tokens; "
                                     "merge the buckets (add their shares)")
                seen.add((b.input_tokens, b.output_tokens))
        if self.input_tokens + self.output_tokens > self.max_context:
            raise ValueError(
                f"input_tokens + output_tokens = {self.input_tokens + self.output_tokens} exceeds "
                f"max_context {self.max_context}; raise max_context or shorten the request")
        shortest = min(i for i, _, _ in self.buckets())  # every bucket's prompt holds the prefix
        if self.prefix is not None and self.prefix.tokens > shortest:
            what = "input_tokens" if self.lengths is None else "the shortest length bucket's input_tokens"
            raise ValueError(f"prefix.tokens {self.prefix.tokens} exceeds {what} {shortest}: "
                             "the shared prefix is part of the prompt")
        return self

    def buckets(self) -> list[tuple[int, int, float]]:
        """(input tokens, output tokens, share) of each length bucket, shares summing to 1: the one
        bucket (input_tokens, output_tokens, 1) without ``lengths``."""
        if self.lengths is None:
            return [(self.input_tokens, self.output_tokens, 1.0)]
        total = sum(b.share for b in self.lengths)
        return [(b.input_tokens, b.output_tokens, b.share / total) for b in self.lengths]


class FinetuneWorkload(Strict):
    kind: Literal["finetune"]
    name: Name
    model: Ref = Field(description="Catalog name, Hugging Face id, or path to a config.json")
    method: Literal["full", "lora", "qlora"] = "lora"
    dataset_tokens: float = Field(gt=0, le=1e15, description="Training tokens per epoch")
    epochs: float = Field(default=1.0, gt=0, le=1e4)
    deadline_hours: float = Field(gt=0, le=1e5, description="Wall-clock hours the job must finish in")
    seq_len: int = Field(default=4096, ge=1, le=MAX_TOKENS, description="Training sequence length, tokens")
    micro_batch: int = Field(default=1, ge=1, le=1e5, description="Sequences per GPU per step")
    lora_rank: int = Field(default=16, ge=1, le=65536)
    gradient_checkpointing: bool = True
    zero_stage: Literal[0, 1, 2, 3] = 3
    mfu: float | None = Field(default=None, gt=0, le=1,
        description="Model FLOPs utilisation; default from docs/perf.md")

    @field_validator("zero_stage", mode="before")
    @classmethod
    def _stage_not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # Literal[0, 1] would take True as 1
            raise ValueError("zero_stage must be 0, 1, 2 or 3, not a boolean")
        return value


def _workload_kind(value: Any) -> str:
    """``kind`` may be omitted for inference workloads."""
    if isinstance(value, dict):
        return str(value.get("kind", "inference"))
    return str(getattr(value, "kind", "inference"))


Workload = Annotated[
    Annotated[InferenceWorkload, Tag("inference")] | Annotated[FinetuneWorkload, Tag("finetune")],
    Discriminator(_workload_kind, custom_error_type="workload_kind",
                  custom_error_message="kind must be 'inference' (the default) or 'finetune'"),
]


class SolverSettings(Strict):
    time_limit_s: float = Field(default=60.0, gt=0, le=MAX_TIME_LIMIT_S,
        description="Wall-clock cap per solve, seconds: a safety net; a plan stopped by it says so")
    node_limit: int = Field(default=DEFAULT_NODE_LIMIT, ge=1, le=10**9,
        description="Branch-and-bound nodes per solve stage: the deterministic work limit")
    gap: float = Field(default=1e-4, ge=0, le=1, description="Relative MIP gap at which to stop")
    threads: int = Field(default=1, ge=1, le=1024)
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="Solver random seed")


Fraction = Annotated[float, Field(ge=0, le=1)]


class ApprovalBlock(Strict):
    """Who raises and signs the purchase request (printed on the workbook's Summary)."""

    requester: Name | None = None
    cost_centre: Name | None = None
    approver: Name | None = None
    date: Name | None = Field(default=None, description="As it should print, e.g. 2026-12-01")


class FinanceSettings(Strict):
    contingency_pct: float = Field(default=0.0, ge=0, le=1,
        description="Contingency reserve as a fraction of capex (0.1 = 10 %); inside the budget check")
    tax_pct: float = Field(default=0.0, ge=0, le=1,
        description="Sales tax / VAT as a fraction, applied after contingency; inside the budget check")
    payment_on_order_pct: float = Field(default=0.3, ge=0, le=1,
        description="Fraction of capex paid on order; the rest on delivery")
    delivery_lag_years: int = Field(default=0, ge=0, le=10,
        description="Years between order (year 0) and delivery payment")
    useful_life_years: int = Field(default=4, ge=1, le=50,
        description="Straight-line depreciation period, years")
    discount_rate: float = Field(default=0.08, ge=0, le=1, description="Yearly discount rate for NPV")
    approval: ApprovalBlock | None = None

    @property
    def budget_factor(self) -> float:
        """What the budget is compared against, per unit of capex: (1 + contingency)·(1 + tax)."""
        return (1.0 + self.contingency_pct) * (1.0 + self.tax_pct)


class QuoteSettings(Strict):
    """Which quote lines besides the servers the plan carries (catalogs/quote_items.yaml)."""

    network: bool = Field(default=True,
        description="Scale-out NICs, switches, cables; only plans with multi-server groups get them")
    storage: bool = Field(default=True, description="Storage for model weights and datasets")
    racks: bool | None = Field(default=None,
        description="Racks and PDUs; omitted: bought only when site.racks_provided is false")
    shipping_installation: bool = Field(default=True, description="Freight, rack-and-stack, cabling")
    support: bool = Field(default=True,
        description="Multi-year support as quote lines (capex); off: opex_per_year_fraction is yearly opex")
    support_years: int | None = Field(default=None, ge=1, le=50,
        description="Years of support bought; omitted: horizon_years rounded up")
    prices: dict[Ref, Price] = Field(default_factory=dict,
        description="Unit price overrides of quote items by catalog name, in currency")
    fractions: dict[Ref, Fraction] = Field(default_factory=dict,
        description="Overrides of the fraction of quote items priced as a share of hardware")

    def racks_bought(self, site: Site) -> bool:
        return (not site.racks_provided) if self.racks is None else self.racks


class Periods(Strict):
    """A plan over ``years`` one-year periods (docs/periods.md): what to buy at the start of each
    year, what is rented in it, and what owned servers retire."""

    years: int = Field(ge=1, le=MAX_PERIOD_YEARS, description="Number of one-year periods")
    discount_rate: float | None = Field(default=None, ge=0, le=1,
        description="Yearly discount rate of the NPV objective; omitted: finance.discount_rate")
    price_decline_per_year: float = Field(default=0.0, ge=0, lt=1,
        description="Fraction by which server and GPU prices fall each year (0.15 = -15 %/year)")
    prices: dict[Ref, list[Price]] = Field(default_factory=dict,
        description="Per-year unit prices (GPU, server or cloud instance name; instances per hour), "
        "one per year, in currency; they replace the decline for that item")


class InventoryItem(Strict):
    """Servers already owned and installed: used first, their power and racks counted, only their
    energy and support paid; a plan may retire them when that is cheaper."""

    sku: Ref | None = Field(default=None, description="chassis/GPU/population, e.g. DGX-A100-640GB/A100-SXM-80GB/8")
    server: Ref | None = Field(default=None, description="Chassis name (with gpu and gpus_per_server)")
    gpu: Ref | None = Field(default=None, description="GPU name (with server)")
    gpus_per_server: int | None = Field(default=None, ge=1, le=1024, description="GPUs in each server")
    count: int = Field(ge=1, le=MAX_COUNT, description="Servers owned")
    age_years: float = Field(default=0.0, ge=0, le=50, description="Years since purchase (reported)")

    @model_validator(mode="after")
    def _one_form(self) -> InventoryItem:
        parts = (self.server, self.gpu, self.gpus_per_server)
        if self.sku is not None and any(p is not None for p in parts):
            raise ValueError("give sku, or server + gpu + gpus_per_server, not both")
        if self.sku is None and any(p is None for p in parts):
            raise ValueError("give sku (chassis/GPU/population), or all of server, gpu and gpus_per_server")
        return self

    @property
    def key(self) -> str:
        """The SKU key as the candidate table writes it (names as given; the loader canonicalises)."""
        return self.sku if self.sku is not None else f"{self.server}/{self.gpu}/{self.gpus_per_server}"


class ScenarioCatalog(Strict):
    """GPUs and servers (or cloud instance types) the scenario declares itself, in the schema of
    catalogs/gpus.yaml and catalogs/servers.yaml (source and as_of required); merged into the
    catalog for this scenario. A name or alias that a shipped entry has is an error unless the
    entry says ``replaces: <shipped name>`` (docs/scenario.md, "Scenario catalog entries")."""

    gpus: list[DeclaredGPU] = Field(default_factory=list, max_length=1000)
    servers: list[DeclaredServer] = Field(default_factory=list, max_length=1000)


class Variant(Strict):
    """A what-if: overrides applied to the base scenario."""

    name: Name
    budget: float | None = Field(default=None, gt=0, le=MAX_MONEY)
    prices: dict[Ref, Price] = Field(default_factory=dict)
    gpus: list[Ref] | None = Field(default=None, min_length=1)
    demand_scale: float = Field(default=1.0, gt=0, le=MAX_DEMAND_SCALE)
    confidence: float | None = Field(default=None, ge=0.5, le=0.99,
        description="Plan this variant at another confidence (see the scenario's `confidence`)")


class Risk(Strict):
    """Distributions ``procure compare --monte-carlo`` samples (docs/compare.md, "Monte Carlo").

    Each sample draws a demand scale on every inference workload, a price multiplier per GPU and a
    capacity error per GPU family; the defaults are planning assumptions, stated in the docs."""

    demand_median: float = Field(default=1.0, gt=0, le=100,
        description="Median of the log-normal demand scale on every inference request rate")
    demand_log_sd: float = Field(default=0.25, ge=0, le=2,
        description="Standard deviation of log(demand scale): 0.25 puts p10/p90 at x0.73/x1.38")
    price_log_sd: float = Field(default=0.15, ge=0, le=2,
        description="Standard deviation of log(price multiplier) per GPU (dated catalog estimates)")
    capacity_error: bool = Field(default=True,
        description="Sample each GPU family's capacity error band (band_log_sd); false: point estimates")
    growth_log_sd: float = Field(default=0.1, ge=0, le=1,
        description="With periods: standard deviation of log(growth multiplier m); year y's demand is "
        "x m^(y-1). 0.1 puts p10/p90 of m at x0.88/x1.14 a year (x0.77/x1.29 by year 3)")


class Scenario(Strict):
    name: Name
    description: Text | None = None
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR")
    usd_to_currency: float | None = Field(default=None, gt=0, le=1e6,
        description="Units of currency per US dollar (catalog prices are USD); required unless USD")
    horizon_years: float = Field(default=3.0, gt=0, le=50, description="TCO horizon, years")
    site: Site
    constraints: Constraints = Constraints()
    objective: Literal["capex", "tco", "coverage", "hourly", "npv"] = Field(default="capex",
        description="capex, tco, coverage, or hourly: the least Σ hourly price x instances of cloud "
        "instance types (servers with hourly_usd), in currency per hour; npv (with periods): the least "
        "discounted cash out over the periods")
    periods: Periods | None = Field(default=None,
        description="Plan over years: demand per year, purchases per year, rent, retire (docs/periods.md)")
    inventory: list[InventoryItem] = Field(default_factory=list, max_length=1000,
        description="Servers already owned (with periods)")
    headroom: float = Field(default=0.8, gt=0, le=1,
        description="Plan replicas at most at this fraction of SLO capacity")
    confidence: float = Field(default=0.5, ge=0.5, le=0.99,
        description="Probability that each replica reaches the capacity it is planned at: 0.5 plans on "
        "the point estimate; higher sizes every replica at the lower quantile of its GPU family's error "
        "band (docs/perf.md, 'Error bands'), so families with wide bands cost more to rely on")
    prices: dict[Ref, Price] = Field(default_factory=dict,
        description="Overrides of catalog unit prices (GPU or server name), in currency")
    opex_per_year_fraction: float = Field(default=0.0, ge=0, le=1,
        description="Yearly support as a fraction of the servers' price: with quote.support it prices "
        "the support lines (omitted/0: the catalog's figure); without, it is yearly opex in TCO")
    finance: FinanceSettings = FinanceSettings()
    quote: QuoteSettings = QuoteSettings()
    serving: EngineSettings = EngineSettings()
    calibration: Ref | None = Field(default=None, description="Calibration file from `procure calibrate`")
    catalog: ScenarioCatalog | None = Field(default=None,
        description="GPUs and servers/cloud instance types this scenario declares (a vendor's quoted SKU, "
        "a 1-GPU cloud instance at its hourly price)")
    measured: list[MeasuredEntry] = Field(default_factory=list,
        description="Own benchmark results: requests/s of exact deployments that replace the estimate")
    measured_file: Ref | None = Field(default=None,
        description="YAML file of more measured: entries (`procure calibrate --capacity`), relative to this file")
    solver: SolverSettings = SolverSettings()
    workloads: list[Workload] = Field(min_length=1)
    whatif: list[Variant] = Field(default_factory=list)
    risk: Risk = Field(default_factory=Risk, description="Monte-Carlo distributions (compare --monte-carlo)")

    def inference_workloads(self) -> dict[str, InferenceWorkload]:
        return {w.name: w for w in self.workloads if isinstance(w, InferenceWorkload)}

    def finetune_workloads(self) -> dict[str, FinetuneWorkload]:
        return {w.name: w for w in self.workloads if isinstance(w, FinetuneWorkload)}

    @model_validator(mode="after")
    def _checks(self) -> Scenario:
        seen: set[str] = set()
        for w in self.workloads:
            if w.name in seen:
                raise ValueError(f"duplicate workload name {w.name!r}; names must be unique")
            seen.add(w.name)
        if self.currency != "USD" and self.usd_to_currency is None:
            raise ValueError(f"currency {self.currency} needs usd_to_currency (units per US dollar)")
        if self.currency == "USD" and self.usd_to_currency not in (None, 1.0):
            raise ValueError("usd_to_currency must be 1 (or omitted) when currency is USD")
        self._check_periods()
        return self

    def _check_periods(self) -> None:
        """Everything that only makes sense over periods, and per-year lists of the right length."""
        p = self.periods
        if p is None:
            if self.objective == "npv":
                raise ValueError("objective npv needs a periods: block (years, discount_rate, ...); "
                                 "use capex or tco for one period")
            if self.inventory:
                raise ValueError("inventory: needs a periods: block (servers owned are planned over years)")
            for i, w in enumerate(self.workloads):
                if not isinstance(w, InferenceWorkload):
                    continue
                given = [key for key, value in (("requests_per_s", w.requests_per_s_by_year),
                                                ("growth_per_year", w.growth_per_year),
                                                ("model_by_year", w.model_by_year)) if value is not None]
                if given:
                    raise ValueError(f"workloads[{i}].{given[0]} ({w.name}): per-year demand or models need a "
                                     "periods: block with years; give one number (req/s) for one period")
            return
        if self.objective not in ("npv", "tco"):
            raise ValueError(f"objective {self.objective} is for one period; with periods: use npv (discounted "
                             "cash out) or tco (the same undiscounted)")
        for i, w in enumerate(self.workloads):
            if isinstance(w, FinetuneWorkload):  # the job runs every year on what is owned or rented
                continue
            if w.growth_per_year is not None:
                last = w.requests_per_s * (1.0 + w.growth_per_year) ** (p.years - 1)
                if not 0 < last <= MAX_RPS:
                    raise ValueError(f"workloads[{i}] ({w.name}) grows to {last:g} req/s in year {p.years}, "
                                     f"outside (0, {MAX_RPS:g}]: lower growth_per_year")
            for key in ("requests_per_s_by_year", "model_by_year"):
                given = getattr(w, key)
                if given is not None and len(given) != p.years:
                    shown = "requests_per_s" if key == "requests_per_s_by_year" else key
                    raise ValueError(f"workloads[{i}].{shown} has {len(given)} values; periods.years is "
                                     f"{p.years}: give one per year")
        for name, values in p.prices.items():
            if len(values) != p.years:
                raise ValueError(f"periods.prices.{name} has {len(values)} values; periods.years is "
                                 f"{p.years}: give one per year")

    @property
    def usd_rate(self) -> float:
        """Currency units per US dollar (1 for USD)."""
        return 1.0 if self.usd_to_currency is None else self.usd_to_currency
