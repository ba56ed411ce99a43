"""Spread (min_replicas ≥ 2) from the MIP to numbered servers: the necessary row, placement's
proof that counts cannot be placed, and the pipeline's re-solve with that SKU's exact rows."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from optimizer.loaders import load_scenario
from optimizer.model.pipeline import solve_scenario

# Llama-3.1-405B in fp8 needs a whole 8-GPU H100 server per replica (about 405 GB of weights), and
# both workloads must sit on two servers. Packing alone allows 3 servers (16 + 2 GPUs <= 24), but
# then both 1-GPU replicas of `small` share the third server; the necessary row n >= 2 cannot see
# that, placement proves it, and the exact rows buy a fourth server: 4 x HGX-H100-8GPU.
SPREAD_405B: dict[str, Any] = {
    "name": "spread-405b",
    "site": {"power_kw": 1000, "pue": 1.2, "racks": 10, "rack_power_kw": 100, "rack_units": 42},
    "constraints": {"gpus": ["H100-SXM-80GB"], "servers": ["HGX-H100-8GPU"]},
    "quote": {"network": False, "storage": False, "support": False, "shipping_installation": False},
    "workloads": [
        {"name": "big", "model": "Llama-3.1-405B", "precisions": ["fp8"], "requests_per_s": 0.2,
         "input_tokens": 1000, "output_tokens": 200, "max_context": 4096,
         "slo": {"ttft_ms": 10000, "tpot_ms": 200}, "min_replicas": 2},
        {"name": "small", "model": "Llama-3.1-8B", "precisions": ["bf16"], "requests_per_s": 0.2,
         "input_tokens": 1000, "output_tokens": 200, "max_context": 4096,
         "slo": {"ttft_ms": 10000, "tpot_ms": 200}, "min_replicas": 2},
    ],
}


def test_unplaceable_counts_are_re_solved_with_exact_rows(tmp_path: Path) -> None:
    path = tmp_path / "spread.yaml"
    path.write_text(yaml.safe_dump(SPREAD_405B))
    said: list[str] = []
    result = solve_scenario(load_scenario(path), progress=said.append)
    plan = result.plan
    assert any(m.startswith("re-solving with exact spread rows on HGX-H100-8GPU") for m in said), said
    assert [(s.sku, s.count) for s in plan.servers] == [("HGX-H100-8GPU/H100-SXM-80GB/8", 4)]
    hosts: dict[str, set[int]] = defaultdict(set)
    for server in plan.placement:
        for r in server.replicas:
            hosts[r.workload].add(server.index)
    assert len(hosts["big"]) == 2 and len(hosts["small"]) == 2
    assert plan.status == "optimal"
