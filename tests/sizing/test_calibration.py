"""Calibration: the shipped fit meets issue 4's accuracy bar; readers; the fitter recovers known factors.

Published rows: /work/shared/calibration/trtllm-perf-overview-v1.0.yaml (TensorRT-LLM v1.0 perf
overview, NVIDIA/TensorRT-LLM docs/source/performance/perf-overview.md @00f37686).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from optimizer.errors import CatalogError, UsageError
from optimizer.loaders import REPO_ROOT, load_catalog, resolve_gpu, resolve_model
from optimizer.sizing import calibration as cal
from optimizer.sizing.architecture import parse_config
from optimizer.sizing.memory import GIB, weight_bytes
from optimizer.sizing.perf import Efficiency

CAT = load_catalog()
ROWS = next((p for p in (REPO_ROOT.parent / "shared" / "calibration" / "trtllm-perf-overview-v1.0.yaml",
                         Path("/work/shared/calibration/trtllm-perf-overview-v1.0.yaml")) if p.is_file()), None)
needs_rows = pytest.mark.skipif(ROWS is None, reason="shared calibration rows not present")


@needs_rows
def test_shipped_fit_meets_the_accuracy_bar() -> None:
    assert ROWS is not None
    rows = cal.read_published(ROWS, CAT)
    assert len(rows) == 40
    table = []
    for row, (arch, gpu) in zip(rows, cal.resolve_rows(rows, CAT), strict=True):
        eff = cal.efficiency_for(gpu)
        table.append(cal.Residual(row, *cal.predict_row(row, arch, gpu, eff)))
    med, worst = cal.error_summary(table)
    assert med <= 15.0 and worst <= 40.0
    # The file documents the Hopper family's in-sample errors (capacity errors of its 40 rows).
    doc = yaml.safe_load(cal.default_calibration_path().read_text())
    hop = doc["families"]["Hopper"]
    assert hop["rows"] == 40 and hop["median_abs_pct_error"] == pytest.approx(med, abs=0.5)
    assert sum(1 for r in doc["fit"]["residuals"] if r["gpu"].startswith("H")) == 40


def test_shipped_file_has_one_parameter_set_per_family() -> None:
    f = cal.load_calibration(cal.default_calibration_path())
    assert f.engine == "trtllm" and "Hopper" in f.families and f.default_family == "Hopper"
    hop = f.families["Hopper"]
    assert 0.3 < hop.compute < 0.8 and 0.5 < hop.memory_bw <= 0.9
    assert 0 < hop.band_log_sd < 1


def test_fitted_family_says_fitted_and_an_unfitted_one_transferred() -> None:
    eff = cal.efficiency_for(resolve_gpu("H100-SXM-80GB", CAT), engine="trtllm")
    assert eff.provenance == "fitted" and eff.transferred_from == "" and eff.band_log_sd > 0
    eff = cal.efficiency_for(resolve_gpu("MI300X-192GB", CAT), engine="vllm")
    assert eff.provenance == "fitted" and eff.family == "CDNA 3"
    # MI355X (CDNA 4) has no rows under any engine: transferred, with the wide transfer band.
    eff = cal.efficiency_for(resolve_gpu("MI355X-288GB", CAT), engine="vllm")
    assert eff.family == "CDNA 4" and eff.provenance == "transferred" and eff.transferred_from
    doc = yaml.safe_load(cal.default_calibration_path("vllm").read_text())
    # another family: the band of cross-family transfers in the fit
    assert eff.band_log_sd == pytest.approx(doc["transfer"]["cross_family_rms_log"])
    assert eff.band_log_sd > max(v["band_log_sd"] for k, v in doc["families"].items() if v["sources"][1:])
    # SGLang has no rows: its profile points at its own (empty) file and transfers.
    from optimizer.engines import sglang
    assert sglang.PROFILE.efficiency_engine == "sglang"
    eff = cal.efficiency_for(resolve_gpu("H20-96GB", CAT), engine="sglang")
    assert eff.provenance == "transferred" and eff.transferred_from == "Hopper/trtllm"
    # the same family under another engine: the (narrower) band of cross-engine transfers
    sg = yaml.safe_load(cal.default_calibration_path("sglang").read_text())
    assert eff.band_log_sd == pytest.approx(sg["transfer"]["cross_engine_rms_log"])
    assert eff.band_log_sd < sg["transfer"]["cross_family_rms_log"]


def test_user_calibration_family_is_fitted(tmp_path: Path) -> None:
    f = tmp_path / "cal.yaml"
    f.write_text("engine: vllm\nfamilies:\n  CDNA 4:\n    compute: 0.4\n    memory_bw: 0.6\n"
                 "    step_overhead_ms: 1\n", encoding="utf-8")
    eff = cal.efficiency_for(resolve_gpu("MI355X-288GB", CAT), engine="vllm", calibration_path=f)
    assert eff.provenance == "fitted" and eff.compute == 0.4


def test_trtllm_kv_tokens_by_hand() -> None:
    # Llama-3.1-8B fp8 on H100 SXM (79.65 GiB in the catalog): free = G - W - A - N, A = activation
    # workspace of 8192 tokens x (3 x 4096 + 3 x 14336) x 2 B, N = 0.35 GiB; 0.95 of it / 64 KiB
    # per token (32 layers x 2 x 8 heads x 128 x 1 B).
    m = resolve_model("Llama-3.1-8B", CAT)
    arch = parse_config(m.config, m.name)
    gpu = resolve_gpu("H100-SXM-80GB", CAT)
    free = gpu.memory_gib * GIB - weight_bytes(arch, "fp8") - 8192 * (3 * 4096 + 3 * 14336) * 2 - int(0.35 * GIB)
    expect = int(0.95 * free // 65536)
    got = cal.trtllm_kv_cache_tokens(arch, gpu, tp=1, pp=1, precision="fp8", kv_dtype="fp8")
    assert got == expect


def test_fitter_recovers_known_factors() -> None:
    # Synthetic rows made by the model itself with known factors must be fitted back.
    truth = replace(cal.PRIOR, compute=0.42, memory_bw=0.66, step_overhead_ms=1.5, layer_overhead_us=40.0)
    rows = []
    for model, gpu, tp in (("Llama-3.1-8B", "H100-SXM-80GB", 1), ("Llama-3.1-8B", "H200-SXM-141GB", 1),
                           ("Llama-3.3-70B", "H100-SXM-80GB", 2)):
        for isl, osl in ((128, 2048), (2048, 128), (1000, 1000), (5000, 500), (128, 128)):
            r = cal.CalibrationRow(model=model, gpu=gpu, tp=tp, precision="fp8", kv_dtype="fp8",
                                   input_tokens=isl, output_tokens=osl, output_tokens_per_s=1.0)
            rows.append(r)
    resolved = cal.resolve_rows(rows, CAT)
    rows = [replace(r, output_tokens_per_s=cal.predict_row(r, a, g, truth)[0])
            for r, (a, g) in zip(rows, resolved, strict=True)]
    fitted = cal.fit_rows(rows, CAT)
    eff, table = fitted["Hopper"]
    assert eff.compute == pytest.approx(0.42, rel=0.02)
    assert eff.memory_bw == pytest.approx(0.66, rel=0.02)
    assert cal.error_summary(table)[1] < 0.5


def test_read_csv_yaml_and_vllm_json(tmp_path: Path) -> None:
    csv_file = tmp_path / "m.csv"
    csv_file.write_text("model,gpu,tp,precision,input_tokens,output_tokens,output_tokens_per_s\n"
                        "meta-llama/Llama-3.1-8B-Instruct,H100,1,FP8,1000,1000,5000\n")
    yml = tmp_path / "m.yaml"
    yml.write_text(yaml.safe_dump([{"model": "Llama-3.3-70B", "gpu": "H200 SXM 141GB", "tp": 1,
                                    "precision": "fp8", "input_tokens": 128, "output_tokens": 128,
                                    "output_tokens_per_s": 3803, "ttft_ms": 900}]))
    # Keys as written by vLLM benchmarks/benchmark_serving.py (--save-result).
    js = tmp_path / "bench.json"
    js.write_text(json.dumps({"date": "20250101-000000", "model_id": "Qwen/Qwen2-7B-Instruct",
                              "request_rate": "inf", "max_concurrency": None, "completed": 100,
                              "total_input_tokens": 102400, "total_output_tokens": 12800,
                              "output_throughput": 2500.5, "mean_ttft_ms": 800.0, "mean_tpot_ms": 30.0}))
    rows = cal.read_measurements([csv_file, yml, js], catalog=CAT,
                                 defaults={"gpu": "L40S", "tp": 1, "precision": "bf16"})
    assert [r.model for r in rows] == ["Llama-3.1-8B", "Llama-3.3-70B", "Qwen2-7B"]
    assert rows[0].gpu == "H100-SXM-80GB" and rows[0].precision == "fp8"
    assert rows[1].gpu == "H200-SXM-141GB" and rows[1].ttft_ms == 900
    assert rows[2].gpu == "L40S-48GB" and rows[2].input_tokens == 1024 and rows[2].output_tokens == 128
    assert rows[2].output_tokens_per_s == 2500.5 and rows[2].tpot_ms == 30.0 and rows[2].engine == "vllm"


def test_finite_rate_vllm_run_is_refused(tmp_path: Path) -> None:
    js = tmp_path / "bench.json"
    js.write_text(json.dumps({"model_id": "Qwen/Qwen2-7B-Instruct", "request_rate": 4.0, "completed": 10,
                              "total_input_tokens": 100, "total_output_tokens": 100, "output_throughput": 9.0}))
    with pytest.raises(UsageError, match="request_rate"):
        cal.read_measurements([js], catalog=CAT, defaults={"gpu": "L40S", "tp": 1, "precision": "bf16"})


def test_missing_column_and_unknown_gpu(tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    f.write_text("model,gpu,tp,input_tokens,output_tokens,output_tokens_per_s\nLlama-3.1-8B,H100,1,10,10,100\n")
    with pytest.raises(UsageError, match="precision"):
        cal.read_measurements([f], catalog=CAT)
    f.write_text("model,gpu,tp,precision,input_tokens,output_tokens,output_tokens_per_s\n"
                 "Llama-3.1-8B,H900,1,fp8,10,10,100\n")
    with pytest.raises(CatalogError, match="H900"):
        cal.read_measurements([f], catalog=CAT)


def test_bad_calibration_file(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("families:\n  Hopper:\n    compute: 2.0\n    memory_bw: 0.5\n    step_overhead_ms: 1\n")
    with pytest.raises(CatalogError, match="compute"):
        cal.load_calibration(f)
    with pytest.raises(CatalogError):
        cal.load_calibration(tmp_path / "missing.yaml")
    assert isinstance(cal.PRIOR, Efficiency)
