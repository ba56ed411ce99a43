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


def dataset(name: str) -> LengthMix:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown length dataset {name!r}; known: {', '.join(DATASETS)}") from None


__all__ = ["DATASETS", "LengthBin", "LengthMix", "dataset", "fixed", "mix_mean", "mix_requests_per_s",
           "mix_throughput"]
