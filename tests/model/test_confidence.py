"""Plans at a chosen confidence (scenario ``confidence``): a wider band costs more capacity."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from optimizer.loaders import load_scenario
from optimizer.model.pipeline import solve_scenario, with_overrides
from optimizer.sizing.uncertainty import confidence_factor

#: Hopper/TensorRT-LLM factors of a user calibration file, with a stated error band.
CALIBRATION = {
    "engine": "trtllm",
    "source": "test: stated factors and band",
    "families": {"Hopper": {"compute": 0.55, "memory_bw": 0.9, "step_overhead_ms": 0.0,
                            "layer_overhead_us": 128.0, "band_log_sd": 0.3}},
}


def _scenario(tmp_path: Path, **top: object) -> Path:
    (tmp_path / "cal.yaml").write_text(yaml.safe_dump(CALIBRATION), encoding="utf-8")
    data = {
        "name": "confidence",
        "site": {"power_kw": 500, "pue": 1.0, "racks": 4, "rack_power_kw": 60, "rack_units": 42},
        "constraints": {"gpus": ["H100-SXM-80GB"]},
        "serving": {"engine": "trtllm"},
        "calibration": "cal.yaml",
        "headroom": 1.0,
        "quote": {"network": False, "storage": False, "support": False, "shipping_installation": False},
        # loose latency targets: capacity is set by the batch limit, so it scales exactly with time
        "workloads": [{"name": "chat", "model": "Llama-3.1-8B", "precisions": ["bf16"], "requests_per_s": 140,
                       "input_tokens": 1000, "output_tokens": 300, "max_context": 4096,
                       "slo": {"ttft_ms": 60000, "tpot_ms": 5000}}],
        **top,
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_confidence_090_buys_more_than_the_point_estimate(tmp_path: Path) -> None:
    rs = load_scenario(_scenario(tmp_path))
    point = solve_scenario(rs).plan
    sure = solve_scenario(with_overrides(rs, confidence=0.9)).plan
    assert point.confidence == 0.5 and sure.confidence == 0.9
    assert sure.capex > point.capex
    by_layout = {(d.tp, d.pp, d.precision): d for d in point.deployments}
    for d in sure.deployments:
        assert d.capacity_quantile == pytest.approx(0.1) and d.capacity_band_log_sd == 0.3
        assert d.efficiency_source == "fitted"
        p = by_layout.get((d.tp, d.pp, d.precision))
        if p is not None and d.limited_by in ("kv", "max_num_seqs"):
            # same batch, every time x 1/exp(-1.2816 x 0.3): capacity x 0.6808
            assert d.capacity_rps / p.capacity_rps == pytest.approx(confidence_factor(0.9, 0.3), rel=1e-9)
            assert confidence_factor(0.9, 0.3) == pytest.approx(math.exp(-1.2816 * 0.3), rel=1e-4)
    assert all(d.capacity_quantile == 0.5 for d in point.deployments)


def test_confidence_is_validated(tmp_path: Path) -> None:
    from optimizer.errors import ProcureError

    with pytest.raises(ProcureError, match="confidence"):
        load_scenario(_scenario(tmp_path, confidence=0.3))


def test_shipped_wide_band_family_costs_more_at_090(tmp_path: Path) -> None:
    """The shipped calibration: L40S under vLLM (Ada/vllm, fitted on two sources with a wide
    leave-one-source-out band) needs more servers when planned at confidence 0.9."""
    data = {
        "name": "shipped bands",
        "site": {"power_kw": 500, "pue": 1.0, "racks": 4, "rack_power_kw": 60, "rack_units": 42},
        "constraints": {"gpus": ["L40S-48GB"]},
        "serving": {"engine": "vllm", "engine_version": "0.6.3"},
        "workloads": [{"name": "chat", "model": "Llama-3.1-8B", "precisions": ["fp8"], "requests_per_s": 40,
                       "input_tokens": 1000, "output_tokens": 300, "max_context": 4096,
                       "slo": {"ttft_ms": 3000, "tpot_ms": 100}}],
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    rs = load_scenario(path)
    point = solve_scenario(rs).plan
    sure = solve_scenario(with_overrides(rs, confidence=0.9)).plan
    band = point.deployments[0].capacity_band_log_sd
    assert band >= 0.2, "precondition: Ada/vllm has a wide band in the shipped calibration"
    assert sure.capex > point.capex
    assert sum(d.replicas for d in sure.deployments) > sum(d.replicas for d in point.deployments)
