"""`procure catalog gpus|servers|cloud|models`: list what procure plans with, with sources and dates."""

from __future__ import annotations

from datetime import date

import click
from rich.table import Table

from optimizer.cli.common import FORMAT_OPTION, print_json, stdout
from optimizer.loaders import load_catalog
from optimizer.report.payload import catalog_payload
from optimizer.schema.catalog import Catalog, price_stale


def _stale_mark(as_of: date, today: date | None) -> str:
    return "STALE" if price_stale(as_of, today) else ""


def _gpu_table(cat: Catalog, today: date | None = None) -> Table:
    t = Table(title="GPUs (prices are dated estimates; override them per scenario; STALE = price older "
                    "than 12 months)")
    for col in ("name", "memory", "GiB", "BW GB/s", "bf16 TF", "fp8 TF", "TDP W", "link GB/s", "domain",
                "price USD", "price as of", "stale", "as of", "conf."):
        t.add_column(col, justify="left" if col in ("name", "memory", "as of", "conf.") else "right")
    for g in cat.gpus.values():
        t.add_row(g.name, g.memory_marketed, f"{g.memory_gib:.1f}", f"{g.memory_bandwidth_gb_s:,.0f}",
                  f"{g.tflops_dense.get('bf16', g.tflops_dense.get('fp16', 0)):,.0f}",
                  f"{g.tflops_dense['fp8']:,.0f}" if "fp8" in g.tflops_dense else "-",
                  f"{g.tdp_w:,.0f}", f"{g.interconnect.bandwidth_gb_s:,.0f}", str(g.interconnect.domain_size),
                  f"{g.price.usd:,.0f}", str(g.price.as_of), _stale_mark(g.price.as_of, today), str(g.as_of),
                  g.confidence)
    return t


def _server_table(cat: Catalog, today: date | None = None) -> Table:
    t = Table(title="Servers (base price excludes GPUs; estimates; STALE = price older than 12 months)")
    for col in ("name", "vendor", "form", "GPUs", "populations", "base USD", "price as of", "stale", "base W",
                "U", "as of"):
        t.add_column(col)
    for s in cat.purchasable.values():
        t.add_row(s.name, s.vendor, s.gpu_form_factor, ", ".join(s.compatible_gpus),
                  ",".join(map(str, s.allowed_populations)), f"{s.base_usd:,.0f}",
                  str(s.price_as_of), _stale_mark(s.price_as_of, today),
                  f"{s.base_power_w:,.0f}", str(s.rack_units), str(s.as_of))
    return t


def _usd_h(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _cloud_table(cat: Catalog, today: date | None = None) -> Table:
    t = Table(title="Cloud instance types to rent (USD per instance-hour, GPUs included; dated estimates, "
                    "not quotes; - = no committed price in the source; STALE = older than 12 months)")
    for col in ("name", "provider", "region", "GPUs", "on-demand", "1-year", "3-year", "per GPU-h",
                "as of", "stale"):
        t.add_column(col, justify="right" if col in ("on-demand", "1-year", "3-year", "per GPU-h") else "left")
    t.add_column("source (cut: --format json has it whole)")
    for s in cat.cloud.values():
        hourly = s.hourly_usd or 0.0
        n = s.allowed_populations[0]
        t.add_row(s.name, s.provider or "-", s.region or "-", f"{n} x {', '.join(s.compatible_gpus)}",
                  _usd_h(s.hourly_usd), _usd_h(s.hourly_1y_usd), _usd_h(s.hourly_3y_usd), f"{hourly / n:,.3f}",
                  str(s.as_of), _stale_mark(s.as_of, today),
                  s.source if len(s.source) <= 40 else s.source[:39] + "…")
    return t


def _model_table(cat: Catalog, today: date | None = None) -> Table:
    t = Table(title="Models (Hugging Face config.json in catalogs/models/)")
    for col in ("name", "hf_id", "params (ref.)", "active", "config", "as of"):
        t.add_column(col)
    for m in cat.models.values():
        t.add_row(m.name, m.hf_id, f"{m.params_reference / 1e9:.2f} B" if m.params_reference else "-",
                  f"{m.active_params_reference / 1e9:.2f} B" if m.active_params_reference else "-",
                  m.config_file, str(m.as_of))
    return t


@click.command("catalog")
@click.argument("kind", type=click.Choice(["gpus", "servers", "cloud", "models"]))
@FORMAT_OPTION
def catalog_command(kind: str, fmt: str) -> None:
    """List catalog GPUs, servers to buy, cloud instance types to rent (on-demand and 1-/3-year
    committed USD per hour, provider, region) or models, each with its source and as-of date."""
    cat = load_catalog()
    if fmt == "json":
        print_json(catalog_payload(cat, kind))
        return
    table = {"gpus": _gpu_table, "servers": _server_table, "cloud": _cloud_table,
             "models": _model_table}[kind](cat)
    stdout().print(table)
