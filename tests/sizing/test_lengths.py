"""Length mixes: the aggregation rules of optimizer/sizing/lengths.py by hand."""

from __future__ import annotations

import pytest

from optimizer.sizing import lengths as L


def test_two_bin_throughput_is_time_weighted() -> None:
    # Bin 1: 75 % of requests, 100 output tokens, 1000 tok/s; bin 2: 25 %, 1000 tokens, 500 tok/s.
    # Tokens per request-share: 0.75 x 100 + 0.25 x 1000 = 325; seconds: 75/1000 + 250/500 = 0.575.
    mix = L.LengthMix("two", (L.LengthBin(500, 100, 3.0), L.LengthBin(2000, 1000, 1.0)))
    assert L.mix_throughput(mix, [1000.0, 500.0]) == pytest.approx(325 / 0.575)
    # Requests/s: 1 / (0.75 / 10 + 0.25 / 1) = 1 / 0.325.
    assert L.mix_requests_per_s(mix, [10.0, 1.0]) == pytest.approx(1 / 0.325)
    assert L.mix_mean(mix, [20.0, 40.0]) == pytest.approx(25.0)
    assert mix.mean_output == pytest.approx(325.0) and mix.max_tokens == 3000


def test_one_bin_is_the_fixed_case_and_datasets_are_cited() -> None:
    assert L.mix_throughput(L.fixed(128, 128), [777.0]) == pytest.approx(777.0)
    for name, mix in L.DATASETS.items():
        assert mix.citation, name
    with pytest.raises(KeyError):
        L.dataset("nope")
    with pytest.raises(ValueError):
        L.LengthBin(0, 1)
