"""Which of a scenario's ``measured:`` entries gives a deployment's SLO capacity.

An entry replaces procure's estimate for exactly one deployment: the same model, GPU, TP, PP,
precision, prompt length and answer length (names as the loader resolved them; compared without
case). MoE expert-parallel and attention-DP layouts are never matched: an entry names TP and PP only.

SLO rule. A capacity measured while meeting targets ``s_e`` is a valid capacity for a workload
with targets ``s_w`` when no target of the workload is stricter: for every latency target the
workload sets (``ttft_ms``, ``tpot_ms``, and any ``_p90_ms``/``_p99_ms`` it has), the entry gives
the same metric with ``s_e <= s_w``. Serving at that rate then meets ``s_w`` because it met the
tighter ``s_e``. A metric the entry does not give is not implied by the ones it does (a p99 bound
says nothing about the mean, nor the mean about p99), so such an entry is not applied. An entry
without ``slo`` is the owner's word that it holds at any workload's SLO and always applies.

Several entries may apply (measured at different SLOs): each is a valid capacity, so the highest
is used; ties go to the first listed. The figure is used as is: no confidence-band scaling (it is
a measurement, not the model), while the MIP still plans at ``headroom`` of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from optimizer.schema.measured import MeasuredEntry
from optimizer.sizing.perf import ReplicaPerf

#: Relative slack when comparing latency targets (a YAML round trip of 2000.0 stays 2000.0).
SLO_REL = 1e-12


def slo_targets(slo: Any) -> dict[str, float]:
    """A workload's latency targets by key (``ttft_ms``, ``tpot_p99_ms``, ...): the ``*_ms`` fields
    of its ``slo`` model that are set."""
    fields = slo.model_dump() if hasattr(slo, "model_dump") else dict(slo)
    return {k: float(v) for k, v in fields.items() if k.endswith("_ms") and v is not None}


def slo_covers(entry: MeasuredEntry, targets: Mapping[str, float]) -> bool:
    """Whether ``entry`` was measured at an SLO no looser than ``targets`` (see the module doc)."""
    if entry.slo is None:
        return True
    given = entry.slo.targets()
    return all(key in given and given[key] <= target * (1 + SLO_REL) for key, target in targets.items())


def same_deployment(entry: MeasuredEntry, *, model: str, gpu: str, tp: int, pp: int, precision: str,
                    input_tokens: int, output_tokens: int) -> bool:
    return (entry.model.lower() == model.lower() and entry.gpu.lower() == gpu.lower() and entry.tp == tp
            and entry.pp == pp and entry.precision == precision and entry.input_tokens == input_tokens
            and entry.output_tokens == output_tokens)


def measured_match(entries: Sequence[MeasuredEntry], *, model: str, gpu: str, tp: int, pp: int, precision: str,
                   input_tokens: int, output_tokens: int, slo: Mapping[str, float]) -> int | None:
    """Index of the entry that gives this deployment's capacity under targets ``slo``, or None."""
    best: int | None = None
    for i, e in enumerate(entries):
        if not (same_deployment(e, model=model, gpu=gpu, tp=tp, pp=pp, precision=precision,
                                input_tokens=input_tokens, output_tokens=output_tokens) and slo_covers(e, slo)):
            continue
        if best is None or e.requests_per_s > entries[best].requests_per_s:
            best = i
    return best


def measured_capacity(entries: Sequence[MeasuredEntry], *, model: str, gpu: str, tp: int, pp: int, precision: str,
                      input_tokens: int, output_tokens: int, slo: Mapping[str, float]) -> MeasuredEntry | None:
    """The entry of :func:`measured_match`, or None when the estimate stands."""
    i = measured_match(entries, model=model, gpu=gpu, tp=tp, pp=pp, precision=precision,
                       input_tokens=input_tokens, output_tokens=output_tokens, slo=slo)
    return None if i is None else entries[i]


#: The latency figures of a ReplicaPerf an SLO target can bound (mean and p90/p99 TTFT and TPOT).
LATENCY_KEYS = ("ttft_ms", "tpot_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p90_ms", "tpot_p99_ms")


def with_measured(perf: ReplicaPerf, entry: MeasuredEntry, slo: Mapping[str, float]) -> ReplicaPerf:
    """``perf`` with the measured capacity (``source="measured"``). Its TTFT and TPOT (means and
    tails) become the bounds the entry was measured against (the workload's targets for an entry without ``slo``):
    the latency at the planned rate was not measured, only that it stayed within them. The memory
    account and the offline throughput stay the model's."""
    bounds = {**slo, **(entry.slo.targets() if entry.slo else {})}
    latencies = {k: bounds.get(k, getattr(perf, k)) for k in LATENCY_KEYS}  # tails too, not only the means
    return replace(perf, requests_per_s=entry.requests_per_s, source="measured", measured_scale=1.0, **latencies)


def _key(e: MeasuredEntry) -> tuple[Any, ...]:
    slo = tuple(sorted(e.slo.targets().items())) if e.slo else None
    return (e.model.lower(), e.gpu.lower(), e.tp, e.pp, e.precision, e.input_tokens, e.output_tokens, slo)


def duplicates(entries: Iterable[MeasuredEntry]) -> list[tuple[int, int]]:
    """Pairs ``(first, later)`` of entries for the same deployment at the same SLO (ambiguous)."""
    seen: dict[tuple[Any, ...], int] = {}
    out = []
    for i, e in enumerate(entries):
        k = _key(e)
        if k in seen:
            out.append((seen[k], i))
        else:
            seen[k] = i
    return out


def label(e: MeasuredEntry) -> str:
    """One line naming an entry's deployment, for messages."""
    slo = ", ".join(f"{k} {v:g}" for k, v in e.slo.targets().items()) if e.slo else "any SLO"
    return (f"{e.model} on {e.gpu} TP{e.tp} PP{e.pp} {e.precision} at {e.input_tokens}/{e.output_tokens} tokens "
            f"({slo}): {e.requests_per_s:g} req/s")
