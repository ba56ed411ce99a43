"""Length mixes: a workload or benchmark as a few (input, output, weight) bins, and how a mix's
throughput and latency follow from the per-bin figures. Pure functions, no sizing imports (the
demand model and the calibration both use them).

Aggregation rules (``weight`` = share of requests in the bin, normalised to sum 1):

* **throughput** of a mix on one replica, time-weighted: the replica spends ``w_i O_i / thr_i``
  seconds per request-share producing bin ``i``'s ``w_i O_i`` output tokens, so
  ``thr_mix = sum_i w_i O_i / sum_i (w_i O_i / thr_i)`` (a harmonic mean weighted by output
  tokens). This treats each bin as if it ran alone at its own batch; the interaction of mixed
  contexts inside one batch is not modelled.
* **requests/s** of a mix: ``1 / sum_i (w_i / mu_i)`` (the same rule per request).
* **mean TPOT** over requests (what ``vllm bench serve`` and MLPerf report): ``sum_i w_i TPOT_i``.

Dataset mixes (:data:`DATASETS`) carry their citation; a dataset whose distribution was not found
in citable form is one bin at its published means, and an estimated quantity says ``estimate``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LengthBin:
    input_tokens: int
    output_tokens: int
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.input_tokens < 1 or self.output_tokens < 1:
            raise ValueError("a length bin needs input_tokens >= 1 and output_tokens >= 1")
        if not self.weight > 0:
            raise ValueError("a length bin's weight must be > 0")


@dataclass(frozen=True)
class LengthMix:
    name: str
    bins: tuple[LengthBin, ...]
    citation: str = ""

    def __post_init__(self) -> None:
        if not self.bins:
            raise ValueError("a length mix needs at least one bin")

    @property
    def weights(self) -> tuple[float, ...]:
        total = sum(b.weight for b in self.bins)
        return tuple(b.weight / total for b in self.bins)

    @property
    def mean_input(self) -> float:
        return sum(w * b.input_tokens for w, b in zip(self.weights, self.bins, strict=True))

    @property
    def mean_output(self) -> float:
        return sum(w * b.output_tokens for w, b in zip(self.weights, self.bins, strict=True))

    @property
    def max_tokens(self) -> int:
        return max(b.input_tokens + b.output_tokens for b in self.bins)


def fixed(input_tokens: int, output_tokens: int) -> LengthMix:
    """The one-bin mix of a fixed-length benchmark (trtllm-bench, ``vllm bench --dataset random``)."""
    return LengthMix(f"fixed {input_tokens}/{output_tokens}", (LengthBin(input_tokens, output_tokens),))


def mix_throughput(mix: LengthMix, throughputs: Sequence[float]) -> float:
    """Output tokens/s of ``mix`` from each bin's output tokens/s (time-weighted, module doc)."""
    if len(throughputs) != len(mix.bins):
        raise ValueError("one throughput per bin")
    tokens = 0.0
    seconds = 0.0
    for w, b, thr in zip(mix.weights, mix.bins, throughputs, strict=True):
        if thr <= 0:
            return 0.0
        tokens += w * b.output_tokens
        seconds += w * b.output_tokens / thr
    return tokens / seconds


def mix_requests_per_s(mix: LengthMix, rates: Sequence[float]) -> float:
    """Requests/s of ``mix`` from each bin's requests/s (``1 / sum w_i / mu_i``)."""
    if len(rates) != len(mix.bins):
        raise ValueError("one rate per bin")
    if any(r <= 0 for r in rates):
        return 0.0
    return 1.0 / sum(w / r for w, r in zip(mix.weights, rates, strict=True))


def mix_mean(mix: LengthMix, values: Sequence[float]) -> float:
    """Request-weighted mean of a per-request figure (TPOT, TTFT) over the bins."""
    if len(values) != len(mix.bins):
        raise ValueError("one value per bin")
    return sum(w * v for w, v in zip(mix.weights, values, strict=True))


#: Benchmark datasets as length mixes. Each number is cited; ``estimate`` marks what is not.
DATASETS: dict[str, LengthMix] = {
    # MLPerf llama2-70b (OpenOrca GPT-4 split, 24,576 samples, input and output capped at 1024
    # tokens: mlcommons/inference language/llama2-70b/README.md, processorca.py --seqlen_limit=1024).
    # Output: reference "Tokens per sample: 294.45" (same README, Accuracy Target); the submitters'
    # own logs give 273-301 generated tokens/sample. Input: no published mean or histogram was found
    # in the sources read. The one published fact that bounds it: the same 24,576 samples as text
    # (huggingface.co/datasets/ctuning/MLPerf-OpenOrca README.md @791c3b6, columns
    # id/system_prompt/question/response) are 41,708,098 bytes in all, 1,697 bytes per sample for
    # prompt AND reference response together. At ~4 bytes of English per Llama-2 token (estimate),
    # the prompt is at most 1,697 / 4 = 424 tokens even with an empty response: ESTIMATE 424 (the upper
    # bound; the response bytes are not subtracted because their share is not published). One bin
    # until the distribution is read from the public dataset (tok_input_length column of
    # open_orca_gpt4_tokenized_llama.sampled_24576.pkl); the fitted B200/L40S/MI300X errors move by
    # tens of percent between ~150 and ~450 tokens, so this is the first number to replace.
    "mlperf-openorca": LengthMix(
        "MLPerf llama2-70b OpenOrca",
        (LengthBin(424, 294),),
        "output 294.45 tok/sample: mlcommons/inference language/llama2-70b/README.md; input 424: estimate, "
        "the upper bound from the ctuning/MLPerf-OpenOrca text (41,708,098 bytes / 24,576 samples / ~4 bytes "
        "per token, reference responses not subtracted)"),
    # MLPerf llama3.1-8b (CNN/DailyMail v3.0.0 validation, 13,368 samples: mlcommons/inference
    # language/llama3.1-8b/README.md). Input: CNN/DailyMail articles average 781 tokens (See, Liu and
    # Manning, "Get To The Point", ACL 2017, Sec. 4; word-level tokens, Llama-3 BPE counts run higher:
    # estimate). Output: 128.0 generated tokens/sample in the RedHat v5.1 log (1642.22 tokens/s /
    # 12.8299 samples/s).
    "mlperf-cnndm": LengthMix(
        "MLPerf llama3.1-8b CNN/DailyMail",
        (LengthBin(781, 128),),
        "input 781 (See et al. 2017, word tokens: estimate for BPE); output 128 (RedHat v5.1 log ratio)"),
    # ShareGPT_V3 as GPUStack's perf-lab runs it (vllm bench serve --dataset-name sharegpt, 1000
    # prompts, seed 42): 217,393 input and ~201k output tokens (gpustack/gpustack
    # docs/performance-lab/*, quoted in the shared rows' notes). One bin at those means: the per-request
    # distribution is not published in those docs.
    "sharegpt-gpustack-1000": LengthMix(
        "ShareGPT_V3, 1000 prompts (GPUStack)",
        (LengthBin(217, 201),),
        "GPUStack perf-lab: 217,393 input / ~201k output tokens over 1000 prompts"),
    # The 100-prompt ShareGPT subset of GPUStack's concurrency-4 runs: 23,260 input / 22,061 output
    # tokens (gpustack/gpustack docs/performance-lab/qwen3-8b/910b.md).
    "sharegpt-gpustack-100": LengthMix(
        "ShareGPT_V3, 100 prompts (GPUStack)",
        (LengthBin(233, 221),),
        "GPUStack perf-lab qwen3-8b/910b.md: 23,260 input / 22,061 output tokens over 100 prompts"),
}


@dataclass(frozen=True)
class RequestBucket:
    """A bucket of observed requests (:func:`bin_requests`): its mean lengths, its share of the
    requests, and the ranges of lengths it covers (inclusive)."""

    input_tokens: int
    output_tokens: int
    share: float
    requests: int
    input_range: tuple[int, int]
    output_range: tuple[int, int]


def natural_breaks(values: Sequence[int], bins: int, resolution: int = 256) -> list[int]:
    """Upper edges of up to ``bins`` groups of ``values`` (each group holds values ``<=`` its edge and
    above the previous one; the last edge is the maximum): Jenks natural breaks of log length.

    The groups minimise the within-group sum of squared deviations of log2(length), found exactly
    by dynamic programming (Fisher 1958, "On grouping for maximum homogeneity", JASA 53) over the
    distinct values, or over ``resolution`` equal steps of log2(length) when there are more
    distinct values than that. Log length, because request lengths are spread over orders of
    magnitude and a bimodal mix (300-token chats, 3,000-token RAG prompts) must split at its gap,
    which quantiles of the raw lengths do not do. Fewer groups come back when there are fewer
    distinct values. Deterministic."""
    import math

    distinct = sorted(set(values))
    counts: dict[int, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    # cells: (log2 value x, weight w, largest raw value in the cell), in increasing order
    if len(distinct) <= resolution:
        cells = [(math.log2(v), float(counts[v]), v) for v in distinct]
    else:
        lo, hi = math.log2(distinct[0]), math.log2(distinct[-1])
        step = (hi - lo) / resolution
        grid: dict[int, list[float]] = {}
        for v in distinct:
            k = min(int((math.log2(v) - lo) / step), resolution - 1)
            cell = grid.setdefault(k, [0.0, 0.0, 0.0])
            cell[0] += counts[v] * math.log2(v)
            cell[1] += counts[v]
            cell[2] = max(cell[2], v)
        cells = [(c[0] / c[1], c[1], int(c[2])) for _, c in sorted(grid.items())]
    n = len(cells)
    k = min(bins, n)
    # prefix sums of w, w x, w x^2 for O(1) within-group cost
    sw, sx, sxx = [0.0], [0.0], [0.0]
    for x, w, _ in cells:
        sw.append(sw[-1] + w)
        sx.append(sx[-1] + w * x)
        sxx.append(sxx[-1] + w * x * x)

    def cost(a: int, b: int) -> float:  # cells a..b-1
        w = sw[b] - sw[a]
        m = sx[b] - sx[a]
        return (sxx[b] - sxx[a]) - m * m / w

    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(k + 1)]
    cut = [[0] * (n + 1) for _ in range(k + 1)]
    best[0][0] = 0.0
    for g in range(1, k + 1):
        for b in range(g, n + 1):
            for a in range(g - 1, b):
                c = best[g - 1][a] + cost(a, b)
                if c < best[g][b] - 1e-12:
                    best[g][b], cut[g][b] = c, a
    edges = []
    b = n
    for g in range(k, 0, -1):
        edges.append(cells[b - 1][2])
        b = cut[g][b]
    return sorted(edges)


def bin_requests(inputs: Sequence[int], outputs: Sequence[int], bins: tuple[int, int] = (3, 3)
                 ) -> list[RequestBucket]:
    """Observed requests (input and output token counts, one pair per request) as length buckets.

    Input lengths are cut into ``bins[0]`` groups and output lengths into ``bins[1]`` at the natural
    breaks of log length (:func:`natural_breaks`); each non-empty cell of that grid is one bucket, standing
    for its requests by their mean input and mean output length (rounded; the step-time model is
    linear in context per sequence, so the mean is the representative for throughput) and their
    share of all requests. Buckets come sorted by (input, output) range; deterministic."""
    if len(inputs) != len(outputs):
        raise ValueError("one output length per input length")
    if not inputs:
        raise ValueError("no requests to bin")
    if min(inputs) < 1 or min(outputs) < 1:
        raise ValueError("every request needs input and output lengths >= 1 token")
    in_edges, out_edges = natural_breaks(inputs, bins[0]), natural_breaks(outputs, bins[1])
    cells: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for i, o in zip(inputs, outputs, strict=True):
        cell = (bisect_left(in_edges, i), bisect_left(out_edges, o))
        cells.setdefault(cell, []).append((i, o))
    n = len(inputs)
    out: list[RequestBucket] = []
    for (a, b), reqs in sorted(cells.items()):
        ins = [r[0] for r in reqs]
        outs = [r[1] for r in reqs]
        out.append(RequestBucket(
            input_tokens=max(1, round(sum(ins) / len(ins))), output_tokens=max(1, round(sum(outs) / len(outs))),
            share=len(reqs) / n, requests=len(reqs),
            input_range=(in_edges[a - 1] + 1 if a else min(inputs), in_edges[a]),
            output_range=(out_edges[b - 1] + 1 if b else min(outputs), out_edges[b])))
    return _merge_same_means(out)


def _merge_same_means(buckets: list[RequestBucket]) -> list[RequestBucket]:
    """Cells whose rounded means coincide become one bucket (a scenario's buckets are distinct)."""
    merged: dict[tuple[int, int], RequestBucket] = {}
    for b in buckets:
        key = (b.input_tokens, b.output_tokens)
        if key in merged:
            m = merged[key]
            b = RequestBucket(b.input_tokens, b.output_tokens, m.share + b.share, m.requests + b.requests,
                              (min(m.input_range[0], b.input_range[0]), max(m.input_range[1], b.input_range[1])),
                              (min(m.output_range[0], b.output_range[0]), max(m.output_range[1], b.output_range[1])))
        merged[key] = b
    return list(merged.values())


def dataset(name: str) -> LengthMix:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown length dataset {name!r}; known: {', '.join(DATASETS)}") from None


__all__ = ["DATASETS", "LengthBin", "LengthMix", "RequestBucket", "bin_requests", "dataset", "fixed", "mix_mean",
           "mix_requests_per_s", "mix_throughput", "natural_breaks"]
