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
