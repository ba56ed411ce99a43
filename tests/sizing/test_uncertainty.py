"""Error bands and confidence factors (optimizer/sizing/uncertainty.py), worked out by hand."""

from __future__ import annotations

import math

import pytest

from optimizer.errors import UsageError
from optimizer.loaders import load_catalog, resolve_gpu, resolve_model
from optimizer.sizing.architecture import parse_config
from optimizer.sizing.perf import Efficiency, replica_perf
from optimizer.sizing.uncertainty import confidence_factor, planning_time_scale, quantile_factor

#: Phi^-1(0.9) to 4 digits (standard normal table).
Z90 = 1.2816


def test_quantile_factor_is_the_lognormal_quantile() -> None:
    # exp(-1.2816 x 0.25) = exp(-0.3204) = 0.72586
    assert quantile_factor(0.1, 0.25) == pytest.approx(0.72586, abs=2e-5)
    assert quantile_factor(0.9, 0.25) == pytest.approx(1 / 0.72586, abs=5e-5)
    assert quantile_factor(0.5, 0.25) == pytest.approx(1.0)
    assert quantile_factor(0.1, 0.0) == 1.0


def test_confidence_half_is_the_point_estimate_and_higher_costs_capacity() -> None:
    assert confidence_factor(0.5, 0.4) == 1.0
    # confidence 0.9 -> the 10% quantile: exp(-1.2816 x 0.4) = 0.59891
    assert confidence_factor(0.9, 0.4) == pytest.approx(math.exp(-Z90 * 0.4), rel=1e-4)
    assert planning_time_scale(0.4, 0.9) == pytest.approx(1 / 0.59891, rel=1e-4)
    assert confidence_factor(0.95, 0.1) < confidence_factor(0.9, 0.1) < 1.0


@pytest.mark.parametrize("q", [0.0, 1.0, math.nan, -0.2])
def test_quantile_outside_zero_one_is_refused(q: float) -> None:
    with pytest.raises(UsageError):
        quantile_factor(q, 0.1)


def test_band_must_be_finite_and_non_negative() -> None:
    with pytest.raises(UsageError):
        quantile_factor(0.1, -0.1)
    with pytest.raises(UsageError):
        Efficiency(compute=0.5, memory_bw=0.8, step_overhead_ms=1.0, band_log_sd=math.inf)


def test_time_scale_slows_every_modelled_time() -> None:
    """Doubling every time at the same batch halves offline throughput exactly (the KV batch limit
    does not depend on time) and doubles TPOT and prefill."""
    cat = load_catalog()
    m = resolve_model("Llama-3.1-8B", cat)
    arch = parse_config(m.config, m.name)
    gpu = resolve_gpu("H100-SXM-80GB", cat)
    eff = Efficiency(compute=0.5, memory_bw=0.8, step_overhead_ms=1.0)
    kw = dict(tp=1, precision="bf16", input_tokens=1000, output_tokens=200, kv_cache_tokens=200_000,
              max_num_seqs=64, efficiency=eff)
    one = replica_perf(arch, gpu, **kw)  # type: ignore[arg-type]
    two = replica_perf(arch, gpu, **kw, time_scale=2.0)  # type: ignore[arg-type]
    assert two.batch == one.batch == 64
    assert two.output_tokens_per_s == pytest.approx(one.output_tokens_per_s / 2, rel=1e-12)
    assert two.offline_tpot_ms == pytest.approx(2 * one.offline_tpot_ms, rel=1e-12)
    assert two.prefill_ms == pytest.approx(2 * one.prefill_ms, rel=1e-12)
