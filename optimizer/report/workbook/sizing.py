"""Sizing: the GPU-memory account each deployment was chosen with, as the plan records it from
:func:`optimizer.sizing.memory.serving_memory` (not re-sized here)."""

from __future__ import annotations

from openpyxl.worksheet.worksheet import Worksheet

from optimizer.loaders import ResolvedScenario
from optimizer.report.xlsx import FMT_1, FMT_2, FMT_INT, NOTE, SECTION, Sheet
from optimizer.schema.plan import Plan


def write_sizing(ws: Worksheet, plan: Plan, rs: ResolvedScenario) -> None:
    """The memory account each deployment was chosen with (recorded in the plan, not re-sized here)."""
    sh = Sheet(ws)
    sh.title(1, f"Sizing — GPU memory per replica rank (vLLM rules) — {plan.scenario}")
    hr = 3
    sh.header(hr, ["Workload", "Model", "GPU", "TP", "PP", "Precision", "KV dtype", "GPU memory (GiB)",
                   "Engine budget (GiB)", "Weights (GiB)", "Activations peak (GiB)", "Overhead, non-torch (GiB)",
                   "KV cache (GiB)", "Unallocated (GiB)", "CUDA graphs, outside budget (GiB)",
                   "KV cache (tokens per replica)", "Max context (tokens)", "Concurrent full-length sequences",
                   "Fits", "EP", "DP"])
    row = hr
    for d in plan.deployments:
        mem = d.memory
        row += 1
        for col, value in enumerate((d.workload, d.model, d.gpu), start=1):
            sh.put(row, col, value)
        sh.put(row, 4, d.tp, FMT_INT)
        sh.put(row, 5, d.pp, FMT_INT)
        sh.put(row, 6, d.precision)
        sh.put(row, 7, d.kv_dtype)
        sh.put(row, 8, mem.gpu_memory_gib, FMT_2)
        sh.put(row, 9, mem.budget_gib, FMT_2)
        sh.put(row, 10, d.weights_gib_per_gpu, FMT_2)
        sh.put(row, 11, mem.activation_peak_gib, FMT_2)
        sh.put(row, 12, mem.non_torch_gib, FMT_2)
        sh.put(row, 13, mem.kv_cache_gib, FMT_2)
        sh.put(row, 14, f"=I{row}-J{row}-K{row}-L{row}-M{row}", FMT_2,
               shown=mem.budget_gib - d.weights_gib_per_gpu - mem.activation_peak_gib - mem.non_torch_gib
               - mem.kv_cache_gib)
        sh.put(row, 15, mem.cuda_graph_gib, FMT_2)
        sh.put(row, 16, d.kv_cache_tokens, FMT_INT)
        sh.put(row, 17, mem.max_model_len, FMT_INT)
        sh.put(row, 18, mem.max_concurrency, FMT_1)
        sh.put(row, 19, "yes")  # the checker re-sized every deployment of the plan
        sh.put(row, 20, d.ep, FMT_INT)
        sh.put(row, 21, d.dp, FMT_INT)
    if plan.finetunes:
        row += 2
        sh.put(row, 1, "Fine-tuning jobs", font=SECTION, width=False)
        row += 1
        sh.header(row, ["Job", "Model", "GPU", "GPUs", "Method", "Peak memory per GPU (GiB)",
                        "GPU memory (GiB)"])
        for f in plan.finetunes:
            row += 1
            gpu = rs.catalog.gpus.get(f.gpu)
            sh.put(row, 1, f.workload)
            sh.put(row, 2, f.model)
            sh.put(row, 3, f.gpu)
            sh.put(row, 4, f.gpus, FMT_INT)
            sh.put(row, 5, f.method)
            sh.put(row, 6, f.peak_gib_per_gpu, FMT_2)
            sh.put(row, 7, gpu.memory_gib if gpu else None, FMT_2)
    row += 2
    sh.title(row, "Per GPU of the most loaded rank. Budget = GPU memory x gpu_memory_utilization; the engine "
                   "gives what is left after weights, activations and overhead to the KV cache "
                   "(vLLM v0.6 rules, docs/sizing.md).", NOTE)
    sh.finish(header_row=hr, footer=f"procure — {plan.scenario}", title_cols="A:A")
