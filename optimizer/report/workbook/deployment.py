"""Deployment: every numbered server (rack, SKU, GPU) with a row per replica or job placed on it and
the GPU slots it uses; spare slots are listed as ``(free)``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from openpyxl.worksheet.worksheet import Worksheet

from optimizer.report.xlsx import FMT_INT, NOTE, Sheet
from optimizer.schema.plan import Plan


def _slots(gpus: Iterable[int]) -> str:
    """``[0, 1, 2, 3, 6]`` -> ``"0-3, 6"``."""
    out: list[str] = []
    ids = sorted(set(gpus))
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(f"{ids[i]}-{ids[j]}" if j > i else str(ids[i]))
        i = j + 1
    return ", ".join(out)


def write_deployment(ws: Worksheet, plan: Plan) -> None:
    sh = Sheet(ws)
    sh.title(1, f"Deployment — every server and what runs on it — {plan.scenario}")
    hr = 3
    sh.header(hr, ["Server", "Rack", "SKU", "GPU", "GPUs in server", "Runs", "Kind", "TP", "PP", "GPU slots",
                   "GPUs used"])
    lines = {s.sku: s for s in plan.servers}
    row = hr
    for p in plan.placement:
        line = lines.get(p.sku)
        k = line.gpus_per_server if line else 0
        gpu = line.gpu if line else ""
        used: set[int] = set()
        entries: list[tuple[str, str, Any, Any, str, int]] = []
        for r in p.replicas:
            used.update(r.gpus)
            kind = "inference replica" + (f" (EP{r.ep} DP{r.dp})" if r.ep > 1 or r.dp > 1 else "")
            entries.append((r.workload, kind, r.tp, r.pp, _slots(r.gpus), len(r.gpus)))
        ft_gpus = max(0, k - len(used) - p.free_gpus)
        for job in p.finetune:
            n = ft_gpus // max(1, len(p.finetune))
            entries.append((job, "fine-tuning job", "", "", f"{n} GPUs", n))
        if p.free_gpus:
            free = sorted(set(range(k)) - used)[-p.free_gpus:] if k else []
            entries.append(("(free)", "spare GPU slots", "", "", _slots(free) if free else "", p.free_gpus))
        if not entries:
            entries.append(("(idle)", "", "", "", "", 0))
        for name, kind, tp, pp, slots, n in entries:
            row += 1
            sh.put(row, 1, p.index, FMT_INT)
            sh.put(row, 2, p.rack, FMT_INT)
            sh.put(row, 3, p.sku, wrap=True, cap=22)
            sh.put(row, 4, gpu)
            sh.put(row, 5, k, FMT_INT)
            sh.put(row, 6, name, wrap=True, cap=24)
            sh.put(row, 7, kind)
            sh.put(row, 8, tp, FMT_INT if tp != "" else None)
            sh.put(row, 9, pp, FMT_INT if pp != "" else None)
            sh.put(row, 10, slots, align="center")
            sh.put(row, 11, n, FMT_INT)
    row += 2
    sh.title(row, f"{len(plan.placement)} servers in {plan.racks_used} racks; "
                   f"{plan.rack_units_used} U; GPU slot numbers are per server, from 0.", NOTE)
    sh.finish(header_row=hr, footer=f"procure — {plan.scenario}")
