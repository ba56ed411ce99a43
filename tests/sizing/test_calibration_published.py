"""Published rows of every family (issue 11): the mapping decides every shared row, the reserved
rows never enter a fit, leave-one-source-out and the band by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from optimizer.loaders import REPO_ROOT
from optimizer.sizing import calibration as cal
from optimizer.sizing import lengths

SHARED = next((p for p in (REPO_ROOT.parent / "shared" / "calibration", Path("/work/shared/calibration"))
               if (p / "published-nonhopper.yaml").is_file()), None)
RESERVED = ("trtllm10-b200-llama31-405b-", "trtllm10-b200-qwen3-235b-")
MAPPING = cal.load_mapping()


def test_every_mapping_entry_is_predicted_or_excluded_with_a_reason() -> None:
    for rid, spec in MAPPING.items():
        if "excluded" in spec:
            assert len(str(spec["excluded"])) > 20, rid
        else:
            for key in ("source", "model", "gpu", "engine", "tp", "precision", "kv_dtype", "mode", "lengths",
                        "metric"):
                assert key in spec, (rid, key)
            assert spec["engine"] in cal.FIT_ENGINES


def test_reserved_rows_are_excluded() -> None:
    reserved = [rid for rid in MAPPING if rid.startswith(RESERVED)]
    assert len(reserved) == 2
    assert all("reserved" in MAPPING[rid]["excluded"] for rid in reserved)


@pytest.mark.skipif(SHARED is None, reason="shared calibration rows (../shared) not present")
def test_mapping_covers_every_shared_row_and_reserved_rows_never_fit() -> None:
    from optimizer.loaders import load_catalog

    assert SHARED is not None
    ids = [r["id"] for r in yaml.safe_load((SHARED / "published-nonhopper.yaml").read_text())["rows"]]
    assert set(ids) == set(MAPPING)
    rows, excluded = cal.read_published_rows(SHARED / "published-nonhopper.yaml", load_catalog())
    assert not any(r.id.startswith(RESERVED) for r in rows)
    assert sum(rid.startswith(RESERVED) for rid in excluded) == 2
    for name in ("trtllm-v1.0.yaml", "vllm-published.yaml", "mindie-published.yaml", "sglang-published.yaml"):
        doc = yaml.safe_load((cal.default_calibration_path("trtllm").parent / name).read_text())
        assert not any(str(r.get("id", "")).startswith(RESERVED) for r in doc["fit"]["residuals"])


@pytest.mark.skipif(SHARED is None, reason="shared calibration rows (../shared) not present")
def test_shipped_fits_reproduce() -> None:
    # The shipped factors give the in-sample errors their files record (benchmarks.accuracy --refit --write).
    from benchmarks import accuracy

    assert SHARED is not None
    rows, _ = accuracy.all_rows(SHARED)
    for (fam, eng), rs in cal.group_rows(rows).items():
        f = cal.load_calibration(cal.default_calibration_path(eng))
        errs = sorted(accuracy.pct(cal.log_residual(r, f.families[fam])) for r in rs)
        med = errs[len(errs) // 2] if len(errs) % 2 else (errs[len(errs) // 2 - 1] + errs[len(errs) // 2]) / 2
        assert f.data["families"][fam]["median_abs_pct_error"] == pytest.approx(med, abs=0.05), (fam, eng)


def _row(source: str, measured: float) -> cal.MappedRow:
    return cal.MappedRow(id=f"{source}-{measured}", source=source, model="m", gpu="g", engine="vllm", tp=1, pp=1,
                         precision="bf16", kv_dtype="auto", mode="offline", mix=lengths.fixed(1, 2),
                         metric="output_tokens_per_s", measured=measured, family="F")


def test_loso_on_a_hand_made_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # Model: prediction = compute x 1000. Fit = geometric mean of measured/1000 over the training rows.
    # Sources A (1000, 1000), B (2000), C (4000):
    #   leave A: fit on B, C -> compute = sqrt(2 x 4) = 2.828; residuals of A: log(1000 / 2828.4) twice
    #   leave B: fit on A, A, C -> (1 x 1 x 4)^(1/3) = 1.587; residual log(2000 / 1587.4)
    #   leave C: fit on A, A, B -> (1 x 1 x 2)^(1/3) = 1.260; residual log(4000 / 1259.9)
    monkeypatch.setattr(cal, "predict_mapped", lambda row, eff: eff.compute * 1000.0)

    class _Eff:
        def __init__(self, c: float) -> None:
            self.compute = c

    def fit(rows: list[cal.MappedRow], prior: object) -> _Eff:
        return _Eff(math.exp(sum(math.log(r.measured / 1000.0) for r in rows) / len(rows)))

    rows = [_row("A", 1000), _row("A", 1000), _row("B", 2000), _row("C", 4000)]
    out = cal.loso_residuals(rows, cal.PRIOR, fit=fit)  # type: ignore[arg-type]
    got = {s: [round(e, 6) for _, e in items] for s, items in out.items()}
    a = math.log(1000 / (1000 * math.sqrt(8)))
    b = math.log(2000 / (1000 * 4 ** (1 / 3)))
    c = math.log(4000 / (1000 * 2 ** (1 / 3)))
    assert got == {"A": [round(a, 6)] * 2, "B": [round(b, 6)], "C": [round(c, 6)]}
    band = cal.band_from_residuals([e for items in out.values() for _, e in items])
    assert band == pytest.approx(math.sqrt((2 * a * a + b * b + c * c) / 4))
    # One source: nothing to leave out.
    assert cal.loso_residuals(rows[:2], cal.PRIOR, fit=fit) == {}  # type: ignore[arg-type]


DEP4 = "trtllm12-b200-deepseek-r1-dep4-fp4-1024-1024"


def test_dep4_row_is_mapped_with_its_moe_layout() -> None:
    # TensorRT-LLM "DEP4" (tp_size 4, enable_attention_dp, EP4) = procure's attention TP1 x DP4, EP4;
    # the published figure is per GPU (6,430 tok/s), the replica is tp x pp x dp = 4 GPUs.
    from optimizer.loaders import load_catalog

    spec = MAPPING[DEP4]
    assert "excluded" not in spec and (spec["tp"], spec["pp"], spec["dp"], spec["ep"]) == (1, 1, 4, 4)
    row = cal.mapped_row(DEP4, spec, 6430, load_catalog())
    assert (row.tp, row.pp, row.ep, row.dp, row.family) == (1, 1, 4, 4, "Blackwell")
    assert row.measured == 6430 * 4
    # A TP-only row keeps the defaults.
    plain = cal.mapped_row("x", MAPPING["trtllm12-b200-llama33-70b-tp1-fp4-1024-1024"], 6842, load_catalog())
    assert (plain.ep, plain.dp, plain.measured) == (1, 1, 6842)


def test_mapped_row_rejects_a_moe_layout_procure_cannot_run() -> None:
    from optimizer.errors import CatalogError
    from optimizer.loaders import load_catalog

    bad = {**MAPPING[DEP4], "ep": 3}                 # EP must be 1 or TP x DP = 4
    with pytest.raises(CatalogError, match="EP 3"):
        cal.mapped_row(DEP4, bad, 6430, load_catalog())
    wide = {**MAPPING[DEP4], "dp": 16, "ep": 16}     # 16 GPUs: beyond B200's 8-GPU NVLink domain
    with pytest.raises(CatalogError, match="domain"):
        cal.mapped_row(DEP4, wide, 6430, load_catalog())


def test_an_ep_row_is_predicted_with_its_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from optimizer.engines import trtllm
    from optimizer.loaders import load_catalog
    from optimizer.schema.engine import EngineSettings
    from optimizer.sizing.perf import load_efficiency

    row = cal.mapped_row(DEP4, MAPPING[DEP4], 6430, load_catalog())
    arch, gpu = cal._arch_gpu(row.model, row.gpu)
    eff = load_efficiency(gpu, "trtllm")
    seen: list[dict] = []
    real = cal.replica_perf

    def spy(*args: object, **kw: object) -> object:
        seen.append(kw)
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(cal, "replica_perf", spy)
    pred = cal.predict_mapped(row, eff)
    kw = seen[-1]
    assert (kw["tp"], kw["pp"], kw["ep"], kw["dp"]) == (1, 1, 4, 4)
    # One DP rank's KV by hand (TensorRT-LLM rule, optimizer/engines/trtllm.py): G = 179.06 GiB =
    # 192,264,211,005.44 B; weights of one GPU (attention/dense/shared at TP1 + 64 of 256 routed experts,
    # nvfp4) 104,403,385,152 B; activation workspace 1,560,281,088 B; CUDA context + communicator of the
    # 4-GPU group 914,852,454 B -> free 85,385,692,311.44 B. MLA fp8 KV per token: (512 + 64) x 61 x 1 B
    # = 35,136 B, held once per rank. 0.95 x 85,385,692,311.44 / 35,136 = 2,308,640.9 -> 2,308,640.
    free = 179.06 * 2**30 - 104_403_385_152 - 1_560_281_088 - 914_852_454
    hand = int(0.95 * free // ((512 + 64) * 61 * 1))
    assert kw["kv_cache_tokens"] == hand == 2_308_640
    # The replica holds dp x one rank's cache: what ServingMemory.replica_kv_tokens of the trtllm rule says.
    mem = trtllm.serving_memory_trtllm(arch, "nvfp4", gpu.memory_gib, 1, 1,
                                       EngineSettings(kv_dtype="fp8", gpu_memory_utilization=0.95), 2048,
                                       128, "gptq", None, ep=4, dp=4)
    assert (mem.weight_bytes, mem.activation_peak_bytes, mem.non_torch_bytes, mem.kv_bytes_per_token_per_gpu) \
        == (104_403_385_152, 1_560_281_088, 914_852_454, 35_136)
    assert mem.kv_cache_tokens == hand
    assert mem.replica_kv_tokens == 4 * 2_308_640 == 9_234_560
    # The layout matters: the same row at ep = dp = 1 (671B on one B200) does not fit, and TP4 on the
    # same four GPUs predicts another figure.
    assert cal.predict_mapped(replace(row, ep=1, dp=1), eff) < 1e-6
    tp4 = cal.predict_mapped(replace(row, tp=4, ep=1, dp=1), eff)
    assert tp4 > 1.0 and abs(pred / tp4 - 1.0) > 0.05
