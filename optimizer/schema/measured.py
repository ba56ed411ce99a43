"""A scenario's own benchmark results: ``measured:`` entries that replace the SLO capacity estimate.

One entry is the highest sustained request rate one replica of an exact deployment (model, GPU,
TP, PP, precision, prompt and answer length) served while meeting an SLO, from the owner's
benchmark (``vllm bench serve``, genai-perf, or ``procure calibrate --capacity``). Matching and
the SLO rule are in :mod:`optimizer.sizing.measured`; docs/scenario.md, "Measured capacities".
"""

from __future__ import annotations

from pydantic import Field, model_validator

from optimizer.schema.base import Ref, Strict, Text
from optimizer.schema.catalog import Precision

MAX_RPS = 1e7
MAX_TOKENS = 100_000_000
MAX_LATENCY_MS = 3.6e6


def _latency(description: str) -> float | None:
    return Field(default=None, gt=0, le=MAX_LATENCY_MS, description=description)


class MeasuredSLO(Strict):
    """The latency targets a measurement was taken against, ms (means unless the key says p90/p99).
    Key names are those of a workload's ``slo:``."""

    ttft_ms: float | None = _latency("Mean time to first token target, ms")
    tpot_ms: float | None = _latency("Mean time per output token target, ms")
    ttft_p90_ms: float | None = _latency("90th-percentile TTFT target, ms")
    ttft_p99_ms: float | None = _latency("99th-percentile TTFT target, ms")
    tpot_p90_ms: float | None = _latency("90th-percentile TPOT target, ms")
    tpot_p99_ms: float | None = _latency("99th-percentile TPOT target, ms")

    @model_validator(mode="after")
    def _some_target(self) -> MeasuredSLO:
        if not self.targets():
            raise ValueError("slo needs at least one target (ttft_ms, tpot_ms, ttft_p90_ms, ...); "
                             "omit slo when the figure holds for any SLO")
        return self

    def targets(self) -> dict[str, float]:
        """The targets given, by key."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class MeasuredEntry(Strict):
    """Requests/s one replica of one exact deployment sustains at its SLO, measured."""

    model: Ref = Field(description="Catalog name, Hugging Face id or config path, as workloads give it")
    gpu: Ref = Field(description="Catalog GPU name or alias")
    tp: int = Field(ge=1, le=1024, description="Tensor-parallel size")
    pp: int = Field(default=1, ge=1, le=1024, description="Pipeline-parallel size")
    precision: Precision = Field(description="Weight precision")
    input_tokens: int = Field(ge=1, le=MAX_TOKENS, description="Prompt length measured, tokens")
    output_tokens: int = Field(ge=1, le=MAX_TOKENS, description="Answer length measured, tokens")
    requests_per_s: float = Field(gt=0, le=MAX_RPS,
        description="Highest sustained request rate meeting the SLO, one replica, requests/s")
    slo: MeasuredSLO | None = Field(default=None,
        description="SLO it was measured against; omitted: the owner vouches for it at any workload's SLO")
    source: Text = Field(min_length=1, description="Who measured it, how and when (tool, version, date)")


class MeasuredFile(Strict):
    """A ``measured_file:`` (as ``procure calibrate --capacity`` writes it)."""

    measured: list[MeasuredEntry] = Field(min_length=1)
    about: Text | None = None
