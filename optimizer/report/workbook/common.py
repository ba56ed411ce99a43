"""What every sheet module shares: sheet names, the cross-sheet references, and the plan facts the
sheets look up (catalog entries, whether a server is an integrated system, power split)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from optimizer.loaders import ResolvedScenario
from optimizer.schema.plan import Plan, QuoteLine, ServerLine
from optimizer.schema.scenario import FinanceSettings

SUMMARY = "Summary"
BOM = "Bill of Materials"
SCHEDULE = "Schedule"
RACKS = "Racks"
DEPLOYMENT = "Deployment"
CAPACITY = "Capacity"
REPLICAS = "Replicas"
SIZING = "Sizing"
ASSUMPTIONS = "Assumptions"
SOLVER = "Solver"
SHEETS = (SUMMARY, BOM, SCHEDULE, RACKS, DEPLOYMENT, CAPACITY, REPLICAS, SIZING, ASSUMPTIONS, SOLVER)

CATEGORY_SYSTEM = "Server system"
CATEGORY_CHASSIS = "Server chassis"
CATEGORY_GPU = "GPU"
SERVER_CATEGORIES = (CATEGORY_SYSTEM, CATEGORY_CHASSIS, CATEGORY_GPU)
QUOTE_CATEGORIES = {"network": "Network", "storage": "Storage", "rack": "Racks and PDUs",
                    "shipping": "Shipping and installation", "support": "Support"}


@dataclass
class Refs:
    """Cell addresses (absolute, sheet-qualified) that one sheet writes and others link to."""

    price: dict[str, str] = field(default_factory=dict)       # price key -> Assumptions cell
    fraction: dict[str, str] = field(default_factory=dict)    # quote item -> Assumptions fraction cell
    power: dict[str, str] = field(default_factory=dict)       # "chassis:X"/"gpu:X" -> W cell
    units: dict[str, str] = field(default_factory=dict)       # chassis -> U cell
    server_qty: dict[str, str] = field(default_factory=dict)  # sku -> BOM qty cell (system or chassis)
    server_unit: dict[str, str] = field(default_factory=dict)  # sku -> BOM unit-price cell of that line
    gpu_qty: dict[str, str] = field(default_factory=dict)     # gpu -> BOM qty cell of the card line
    gpu_unit: dict[str, str] = field(default_factory=dict)    # gpu -> BOM unit-price cell of the card line
    category_sum: dict[str, str] = field(default_factory=dict)  # BOM category -> SUMIF formula
    sku_power_w: dict[str, str] = field(default_factory=dict)   # sku -> W per server cell (Racks)
    # plans over periods: (label, BOM qty cell, BOM unit cell, count, unit price) per year's purchase,
    # (label, BOM extended cell, cost) per year's rent line
    period_buys: list[tuple[str, str, str, int, float]] = field(default_factory=list)
    period_rent: list[tuple[str, str, float]] = field(default_factory=list)
    bom_first: int = 0
    bom_last: int = 0


def price_key(kind: str, name: str) -> str:
    return f"{kind}:{name}"


def is_integrated(line: ServerLine, rs: ResolvedScenario) -> bool:
    """An HGX/DGX/OAM/Atlas system sold as one unit: the plan's flag, else the catalog's."""
    srv = rs.catalog.servers.get(line.chassis)
    return line.integrated or (srv is not None and srv.integrated)


def override(rs: ResolvedScenario, name: str) -> bool:
    """The scenario's ``prices:`` names this item (a figure of the user's, not an estimate)."""
    return any(k.lower() == name.lower() for k in rs.scenario.prices)


def gpu_power_w(line: ServerLine, rs: ResolvedScenario) -> float:
    if line.hourly_price is not None:  # a cloud instance draws no site power
        return 0.0
    gpu = rs.catalog.gpus.get(line.gpu)
    if gpu is not None:
        return gpu.tdp_w
    chassis = rs.catalog.servers.get(line.chassis)
    return (line.power_w - chassis.power_units[0]) / line.gpus_per_server if chassis else 0.0


def chassis_power_w(line: ServerLine, rs: ResolvedScenario) -> float:
    """Base power of one chassis: the plan's server power less its GPUs (the plan's own figure)."""
    return line.power_w - line.gpus_per_server * gpu_power_w(line, rs)


def quote_lines(plan: Plan) -> list[QuoteLine]:
    return list(plan.quote_lines)


def finance(rs: ResolvedScenario) -> FinanceSettings:
    """The scenario's ``finance:`` settings."""
    return rs.scenario.finance


def support_is_quoted(rs: ResolvedScenario) -> bool:
    """Support bought as quote lines (capex): then it is not yearly opex in the schedule."""
    return rs.scenario.quote.support


def today() -> date:
    return date.today()
