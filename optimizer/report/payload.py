"""The JSON documents procure prints with ``--format json``, built in one place.

``procure solve|compare|catalog --format json`` and the web app's API (``optimizer/web``) both call
these functions, so the API returns exactly what the CLI prints for the same input.
"""

from __future__ import annotations

import json
import math
from datetime import date
from typing import TYPE_CHECKING, Any

from optimizer.schema.catalog import price_stale

if TYPE_CHECKING:
    from optimizer.compare import Comparison
    from optimizer.errors import InfeasibleError
    from optimizer.schema.catalog import Catalog
    from optimizer.schema.plan import Plan



def finite_json(data: Any) -> Any:
    """``data`` with every non-finite float replaced by null: strict JSON parsers reject NaN."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite_json(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite_json(v) for v in data]
    return data


def json_text(data: Any) -> str:
    """One strict JSON object as text (no NaN or Infinity tokens), as ``--format json`` prints it."""
    return json.dumps(finite_json(data), indent=2, default=str, allow_nan=False)


def plan_payload(plan: Plan) -> dict[str, Any]:
    """``procure solve --format json`` when there is a plan."""
    return plan.model_dump(mode="json")


def infeasible_payload(exc: InfeasibleError) -> dict[str, Any]:
    """``procure solve --format json`` when no plan fits the limits (exit 1)."""
    return {"status": "infeasible", "objective": None, "reason": exc.message}


def comparison_payload(result: Comparison) -> dict[str, Any]:
    """``procure compare --format json``."""
    return result.model_dump(mode="json")


def catalog_payload(catalog: Catalog, kind: str, today: date | None = None) -> dict[str, Any]:
    """``procure catalog gpus|servers|cloud|models --format json``; ``servers`` are the ones to buy,
    ``cloud`` the instance types to rent. GPUs, servers and instances carry ``price_stale`` (their
    price is older than 12 months on ``today``)."""
    entries = catalog.purchasable if kind == "servers" else getattr(catalog, kind)
    out = []
    for e in entries.values():
        entry = e.model_dump(mode="json")
        price = getattr(e, "price", None) or getattr(e, "base_price", None)
        if price is not None:
            entry["price_stale"] = price_stale(price.as_of, today)
        elif kind == "cloud":
            entry["price_stale"] = price_stale(e.as_of, today)
        out.append(entry)
    return {kind: out}
