"""`procure catalog gpus|servers` flags price estimates older than 12 months (issue #12)."""

from __future__ import annotations

import json
from datetime import date

from click.testing import CliRunner
from rich.console import Console

from optimizer.cli.catalog import _gpu_table, _server_table, catalog_command
from optimizer.loaders import load_catalog
from optimizer.report.payload import catalog_payload
from optimizer.schema.catalog import price_stale

TODAY = date(2026, 11, 24)


def test_price_stale_threshold() -> None:
    assert not price_stale(date(2025, 11, 24), TODAY)  # exactly 365 days: not older than 12 months
    assert price_stale(date(2025, 11, 23), TODAY)
    assert not price_stale(date(2026, 4, 6), TODAY)


def test_json_flags_by_price_date() -> None:
    cat = load_catalog()
    servers = {s["name"]: s for s in catalog_payload(cat, "servers", TODAY)["servers"]}
    # HGX-H100-8GPU is priced from a Thinkmate quote of 2024-08-22; GB200-NVL72 from a 2026 estimate.
    assert servers["HGX-H100-8GPU"]["price_stale"] is True
    assert servers["GB200-NVL72"]["price_stale"] is False
    gpus = {g["name"]: g for g in catalog_payload(cat, "gpus", TODAY)["gpus"]}
    assert gpus["B300-SXM-288GB"]["price_stale"] is False
    assert set(gpus) >= {"B300-SXM-288GB", "GB200-NVL72-186GB", "GB300-NVL72-288GB", "H200-NVL-141GB",
                         "RTX-PRO-6000-BSE-96GB", "MI355X-288GB"}
    # a fixed later date turns every 2026-11-24 price stale
    later = catalog_payload(cat, "gpus", date(2028, 1, 1))["gpus"]
    assert all(g["price_stale"] for g in later)


def test_tables_mark_stale_rows() -> None:
    cat = load_catalog()
    console = Console(width=400, record=True)
    console.print(_server_table(cat, TODAY))
    lines = console.export_text().splitlines()
    assert any("HGX-H100-8GPU" in ln and "STALE" in ln for ln in lines)
    assert not any("GB200-NVL72" in ln and "STALE" in ln for ln in lines)
    console.print(_gpu_table(cat, TODAY))
    assert "price as of" in console.export_text()


def test_cli_json_has_price_stale() -> None:
    out = CliRunner().invoke(catalog_command, ["gpus", "--format", "json"])
    assert out.exit_code == 0, out.output
    assert all("price_stale" in g for g in json.loads(out.output)["gpus"])
