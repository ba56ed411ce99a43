"""`procure perf --format json`: provenance (`efficiency.source`) and the p10/p90 band of every figure."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from optimizer.cli import main
from optimizer.loaders import load_catalog

Z90 = 1.2816  # Phi^-1(0.9)
FIGURES = ("output_tokens_per_s", "requests_per_s", "ttft_ms", "tpot_ms", "offline_tpot_ms", "prefill_ms")


def _perf(*args: str) -> dict:
    r = CliRunner().invoke(main, ["perf", *args, "--format", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


@pytest.mark.parametrize("gpu", sorted(load_catalog().gpus))
def test_every_gpu_says_fitted_transferred_or_measured_and_has_a_band(gpu: str) -> None:
    precision = "fp8" if load_catalog().gpus[gpu].runs("fp8") else "bf16"
    d = _perf("Qwen2-0.5B", "--gpu", gpu, "--tp", "1", "--precision", precision,
              "--input-tokens", "500", "--output-tokens", "100")
    eff = d["efficiency"]
    assert eff["source"] in ("fitted", "transferred", "measured")
    assert (eff["source"] == "transferred") == bool(eff["transferred_from"])
    assert eff["citation"]
    for key in FIGURES:
        assert d[f"{key}_p10"] <= d[key] * (1 + 1e-9) and d[key] <= d[f"{key}_p90"] * (1 + 1e-9)
        assert all(math.isfinite(d[f"{key}_{q}"]) for q in ("p10", "p90"))


def test_band_is_the_stated_lognormal_quantile(tmp_path: Path) -> None:
    """With a calibration band of 0.3 and no latency target, every time is scaled by
    exp(+-1.2816 x 0.3) at the same batch, so the offline throughput band is exactly that factor."""
    cal = {"engine": "trtllm", "source": "test", "families": {"Hopper": {
        "compute": 0.55, "memory_bw": 0.9, "step_overhead_ms": 0.0, "layer_overhead_us": 128.0,
        "band_log_sd": 0.3}}}
    path = tmp_path / "cal.yaml"
    path.write_text(yaml.safe_dump(cal), encoding="utf-8")
    d = _perf("Llama-3.1-8B", "--gpu", "H100-SXM-80GB", "--tp", "1", "--precision", "fp8",
              "--input-tokens", "1000", "--output-tokens", "200", "--engine", "trtllm",
              "--calibration", str(path))
    assert d["efficiency"]["source"] == "fitted" and d["efficiency"]["band_log_sd"] == 0.3
    k = math.exp(Z90 * 0.3)  # 1.4690
    assert d["output_tokens_per_s_p10"] == pytest.approx(d["output_tokens_per_s"] / k, rel=1e-3)
    assert d["output_tokens_per_s_p90"] == pytest.approx(d["output_tokens_per_s"] * k, rel=1e-3)
    assert d["offline_tpot_ms_p90"] == pytest.approx(d["offline_tpot_ms"] * k, rel=1e-3)
    assert d["prefill_ms_p10"] == pytest.approx(d["prefill_ms"] / k, rel=1e-3)


def test_measured_deployment_says_measured_with_no_band(tmp_path: Path) -> None:
    cal = {"engine": "trtllm", "source": "test", "families": {"Hopper": {
        "compute": 0.55, "memory_bw": 0.9, "step_overhead_ms": 0.0, "layer_overhead_us": 128.0,
        "band_log_sd": 0.3}},
        "measured": [{"model": "Llama-3.1-8B", "gpu": "H100-SXM-80GB", "tp": 1, "precision": "fp8",
                      "input_tokens": 1000, "output_tokens": 200, "output_tokens_per_s": 9000}]}
    path = tmp_path / "cal.yaml"
    path.write_text(yaml.safe_dump(cal), encoding="utf-8")
    d = _perf("Llama-3.1-8B", "--gpu", "H100-SXM-80GB", "--tp", "1", "--precision", "fp8",
              "--input-tokens", "1000", "--output-tokens", "200", "--engine", "trtllm",
              "--calibration", str(path))
    assert d["source"] == "measured" and d["efficiency"]["source"] == "measured"
    assert d["output_tokens_per_s_p10"] == d["output_tokens_per_s"] == d["output_tokens_per_s_p90"]
