"""Capacity and Replicas.

* **Capacity** – per workload: demand, planned capacity after headroom (a formula over the
  Replicas sheet and ``Planning_Headroom``), capacity and served demand as % of demand (so one large
  workload does not flatten the chart), TTFT/TPOT predicted (worst deployment) vs target; the
  fine-tuning jobs; a native bar chart of capacity as % of demand.
* **Replicas** – every deployment configuration: model, GPU, TP/PP, precision, replicas, capacity per
  replica at the SLO, after headroom, planned load, latencies, batch, what limits it.
"""

from __future__ import annotations

from openpyxl.chart import BarChart, Reference
from openpyxl.worksheet.worksheet import Worksheet

from optimizer.report.workbook.common import REPLICAS
from optimizer.report.xlsx import FMT_1, FMT_2, FMT_3, FMT_INT, FMT_PCT, SECTION, Sheet, chart_fonts, range_ref
from optimizer.schema.plan import Deployment, Plan

CAP_HEADER_ROW = 3
REP_HEADER_ROW = 3


def write_replicas(ws: Worksheet, plan: Plan) -> tuple[int, int]:
    """The deployments table; returns its (first, last) rows."""
    sh = Sheet(ws)
    sh.title(1, f"Replicas — every deployment configuration and its capacity — {plan.scenario}")
    hr = REP_HEADER_ROW
    sh.header(hr, ["Workload", "Model", "GPU", "SKU", "TP", "PP", "Precision", "KV dtype", "Replicas",
                   "GPUs per replica", "Capacity per replica at SLO (req/s)", "Capacity at SLO (req/s)",
                   "Capacity after headroom (req/s)", "Planned load (req/s)", "TTFT (ms)", "TPOT (ms)",
                   "Batch at SLO", "Limited by", "Perf source", "EP", "DP"])
    row = hr
    for d in plan.deployments:
        row += 1
        sh.put(row, 1, d.workload)
        sh.put(row, 2, d.model)
        sh.put(row, 3, d.gpu)
        sh.put(row, 4, d.sku, wrap=True, cap=28)
        sh.put(row, 5, d.tp, FMT_INT)
        sh.put(row, 6, d.pp, FMT_INT)
        sh.put(row, 7, d.precision)
        sh.put(row, 8, d.kv_dtype)
        sh.put(row, 9, d.replicas, FMT_INT)
        sh.put(row, 10, d.gpus_per_replica, FMT_INT)
        sh.put(row, 11, d.capacity_rps, FMT_3)
        sh.put(row, 12, f"=I{row}*K{row}", FMT_3, shown=d.replicas * d.capacity_rps)
        sh.put(row, 13, f"=L{row}*Planning_Headroom", FMT_3, shown=d.replicas * d.capacity_rps)
        sh.put(row, 14, d.planned_rps, FMT_3)
        sh.put(row, 15, d.ttft_ms, FMT_INT)
        sh.put(row, 16, d.tpot_ms, FMT_1)
        sh.put(row, 17, d.batch, FMT_INT)
        sh.put(row, 18, d.limited_by)
        sh.put(row, 19, d.perf_source)
        sh.put(row, 20, d.ep, FMT_INT)  # MoE layout: expert-parallel size, attention DP ranks
        sh.put(row, 21, d.dp, FMT_INT)
    sh.finish(header_row=hr, footer=f"procure — {plan.scenario}", title_cols="A:A")
    return hr + 1, max(row, hr + 1)


def write_capacity(ws: Worksheet, plan: Plan, replicas: tuple[int, int]) -> tuple[int, int] | None:
    """Returns the (first, last) rows of the workload table (the chart's ranges), or None."""
    sh = Sheet(ws)
    sh.title(1, f"Capacity — planned capacity as % of demand — {plan.scenario}")
    inference = [c for c in plan.coverage if c.kind == "inference"]
    hr = CAP_HEADER_ROW
    sh.header(hr, ["Workload", "Demand (req/s)", "Planned capacity after headroom (req/s)",
                   "Capacity (% of demand)", "Served (% of demand)", "TTFT predicted, worst (ms)", "TTFT target (ms)",
                   "TPOT predicted, worst (ms)", "TPOT target (ms)", "Within SLO"])
    wl_first = hr + 1
    wl_last = hr + len(inference)
    dep_w = range_ref(REPLICAS, 1, *replicas)
    dep_cap = range_ref(REPLICAS, 13, *replicas)
    by_w: dict[str, list[Deployment]] = {}
    for d in plan.deployments:
        by_w.setdefault(d.workload, []).append(d)
    row = hr
    for c in inference:
        row += 1
        deps = by_w.get(c.workload, [])
        ttft = max((d.ttft_ms for d in deps), default=None)
        tpot = max((d.tpot_ms for d in deps), default=None)
        sh.put(row, 1, c.workload)
        sh.put(row, 2, c.demand_rps, FMT_2)
        sh.put(row, 3, f"=SUMIF({dep_w},A{row},{dep_cap})", FMT_2, shown=c.capacity_rps or 0.0)
        sh.put(row, 4, f'=IF(B{row}>0,C{row}/B{row},"")', FMT_PCT, shown=9.999)
        sh.put(row, 5, f'=IF(B{row}>0,MIN(1,C{row}/B{row}),"")', FMT_PCT, shown=1.0)
        sh.put(row, 6, ttft, FMT_INT)
        sh.put(row, 7, c.slo_ttft_ms, FMT_INT)
        sh.put(row, 8, tpot, FMT_1)
        sh.put(row, 9, c.slo_tpot_ms, FMT_1)
        if ttft is not None and c.slo_ttft_ms is not None and c.slo_tpot_ms is not None:
            sh.put(row, 10, f'=IF(AND(F{row}<=G{row},H{row}<=I{row}),"yes","NO")', shown="yes")
    row += 2
    if plan.finetunes:
        sh.put(row, 1, "Fine-tuning jobs", font=SECTION, width=False)
        row += 1
        sh.header(row, ["Job", "Model", "GPU", "SKU", "GPUs", "Method", "Hours predicted", "Deadline (h)",
                        "Spare (h)", "Peak memory per GPU (GiB)"])
        for f in plan.finetunes:
            row += 1
            sh.put(row, 1, f.workload)
            sh.put(row, 2, f.model)
            sh.put(row, 3, f.gpu)
            sh.put(row, 4, f.sku, wrap=True, cap=16)
            sh.put(row, 5, f.gpus, FMT_INT)
            sh.put(row, 6, f.method)
            sh.put(row, 7, f.hours, FMT_1)
            sh.put(row, 8, f.deadline_hours, FMT_1)
            sh.put(row, 9, f"=H{row}-G{row}", FMT_1, shown=f.deadline_hours - f.hours)
            sh.put(row, 10, f.peak_gib_per_gpu, FMT_2)
        row += 2
    routed = [(d, b) for d in plan.deployments for b in d.buckets]
    if routed:
        # length mixes: what each deployment carries of each bucket, and the replica time it takes
        # (time-sharing: planned / (capacity per replica x headroom) replicas; they add up to at
        # most the deployment's replicas)
        sh.put(row, 1, "Length buckets routed to deployments", font=SECTION, width=False)
        row += 1
        sh.header(row, ["Workload", "GPU", "TP", "Precision", "Replicas", "Input tokens", "Output tokens",
                        "Capacity per replica on bucket (req/s)", "Planned load (req/s)", "Replicas busy",
                        "TTFT (ms)", "TPOT (ms)"])
        for d, b in routed:
            row += 1
            sh.put(row, 1, d.workload)
            sh.put(row, 2, d.gpu)
            sh.put(row, 3, d.tp, FMT_INT)
            sh.put(row, 4, d.precision)
            sh.put(row, 5, d.replicas, FMT_INT)
            sh.put(row, 6, b.input_tokens, FMT_INT)
            sh.put(row, 7, b.output_tokens, FMT_INT)
            sh.put(row, 8, b.capacity_rps, FMT_3)
            sh.put(row, 9, b.planned_rps, FMT_3)
            sh.put(row, 10, f"=I{row}/(H{row}*Planning_Headroom)", FMT_3,
                   shown=b.planned_rps / (b.capacity_rps * plan.headroom))
            sh.put(row, 11, b.ttft_ms, FMT_INT)
            sh.put(row, 12, b.tpot_ms, FMT_1)
        row += 2
    chart_row = row
    sh.finish(header_row=hr, footer=f"procure — {plan.scenario}")
    if not inference:
        return None
    chart = BarChart()
    chart.type = "col"
    chart.grouping = "clustered"
    chart.title = "Planned capacity as % of demand (100% = demand met)"
    chart.y_axis.numFmt = "0%"
    chart.legend = None
    chart.add_data(Reference(ws, min_col=4, max_col=4, min_row=hr, max_row=wl_last), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=wl_first, max_row=wl_last))
    chart.height = 7.5
    chart.width = 16.0
    chart_fonts(chart)
    ws.add_chart(chart, f"A{chart_row}")
    return wl_first, wl_last
