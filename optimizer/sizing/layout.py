"""Which parallel layouts and precisions a model can run with on a GPU: one rule for every caller.

``procure perf``, ``procure size``, ``procure calibrate`` and the candidate builder ask the same
questions; :func:`layout_problems` answers them once:

* **TP divides the attention heads** (vLLM ``ModelConfig.verify_with_parallel_config``:
  ``num_attention_heads % tensor_parallel_size == 0``).
* **TP and the KV heads**: vLLM splits the KV heads when ``kv_heads % tp == 0`` and replicates
  them when ``tp % kv_heads == 0`` (``QKVParallelLinear``: ``num_kv_head_replicas``); any other
  pair cannot be sharded. MLA (one latent KV shared by all heads) has no such rule.
* **TP stays inside one interconnect domain** (``GPU.interconnect.domain_size``: the NVLink / IF /
  HCCS group whose links all-reduce at full speed; DESIGN.md "its parallel group stays inside one
  NVLink/HCCS domain").
* **PP at most the number of layers** (each stage needs at least one layer).
* **The GPU runs the weight precision** (``GPU.runs``) and, for an fp8 KV cache, has fp8 or is an
  NVIDIA part (the candidate builder's rule: NVIDIA engines dequantise an fp8 cache in software).

MoE layouts (:func:`moe_layout_problems`, :func:`moe_layouts`; docs/perf.md "MoE layouts"): a
replica is ``tp x pp x dp`` GPUs, ``dp`` attention data-parallel ranks of ``tp`` GPUs each, and
``ep`` is 1 (routed experts TP-sharded) or ``tp x dp`` (routed experts whole, ``E / ep`` per GPU:
vLLM ``--enable-expert-parallel`` makes the EP size ``DP x TP``, "Data Parallel Deployment"
docs; SGLang ``--ep-size`` with ``--enable-dp-attention``; TensorRT-LLM
``moe_expert_parallel_size`` with ``enable_attention_dp``). Rules: only for MoE models; ``ep``
divides the expert count; ``dp > 1`` only with ``ep = tp x dp`` (attention DP with TP-sharded
experts is not modelled); the ``tp x dp`` group stays inside one interconnect domain (the
all-to-all runs over it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from optimizer.errors import UsageError
from optimizer.schema.catalog import GPU
from optimizer.sizing.architecture import ModelArch
from optimizer.sizing.memory import WEIGHT_BYTES

#: Largest TP listed as "allowed" when no GPU bounds it (an NVL72 rack's NVLink domain).
MAX_LISTED_TP = 72


@dataclass(frozen=True)
class LayoutProblem:
    """One reason a layout cannot run: the ``option`` at fault (tp, pp, precision, kv_dtype), what is
    wrong, and the values that would work."""

    option: str
    message: str
    allowed: tuple[str, ...]


def tp_kv_ok(arch: ModelArch, tp: int) -> bool:
    """vLLM splits or replicates the KV heads: ``kv % tp == 0`` or ``tp % kv == 0`` (MLA: always)."""
    kv = arch.num_kv_heads
    return arch.is_mla or kv % tp == 0 or tp % kv == 0


def tp_model_ok(arch: ModelArch, tp: int) -> bool:
    """The model can be sharded ``tp`` ways (attention heads divide, KV heads split or replicate)."""
    return tp >= 1 and arch.num_attention_heads % tp == 0 and tp_kv_ok(arch, tp)


def allowed_tp(arch: ModelArch, gpu: GPU | None = None) -> tuple[int, ...]:
    """TP degrees that shard the model (and stay in ``gpu``'s interconnect domain)."""
    top = gpu.interconnect.domain_size if gpu is not None else MAX_LISTED_TP
    return tuple(t for t in range(1, min(top, arch.num_attention_heads) + 1) if tp_model_ok(arch, t))


def allowed_precisions(gpu: GPU) -> tuple[str, ...]:
    return tuple(p for p in WEIGHT_BYTES if gpu.runs(p))


def kv_dtype_ok(gpu: GPU, kv_dtype: str) -> bool:
    return kv_dtype != "fp8" or "fp8" in gpu.tflops_dense or gpu.vendor == "NVIDIA"


def layout_problems(arch: ModelArch, gpu: GPU | None, *, tp: int = 1, pp: int = 1,
                    precision: str | None = None, kv_dtype: str | None = None) -> list[LayoutProblem]:
    """Every reason ``(tp, pp, precision, kv_dtype)`` cannot serve ``arch`` on ``gpu`` (empty: it
    can). ``gpu`` None skips the GPU rules; ``precision``/``kv_dtype`` None skip theirs."""
    out: list[LayoutProblem] = []
    tps = tuple(str(t) for t in allowed_tp(arch, gpu))
    heads, kv = arch.num_attention_heads, arch.num_kv_heads
    if tp < 1:
        out.append(LayoutProblem("tp", f"TP must be >= 1, got {tp}", tps))
    elif heads % tp:
        out.append(LayoutProblem("tp", f"TP {tp} does not divide {arch.name}'s {heads} attention heads", tps))
    elif not tp_kv_ok(arch, tp):
        out.append(LayoutProblem(
            "tp", f"TP {tp} can neither split nor replicate {arch.name}'s {kv} KV heads "
            f"(needs {kv} % TP == 0 or TP % {kv} == 0)", tps))
    elif gpu is not None and tp > gpu.interconnect.domain_size:
        out.append(LayoutProblem(
            "tp", f"TP {tp} exceeds {gpu.name}'s {gpu.interconnect.kind} domain of "
            f"{gpu.interconnect.domain_size} GPUs (tensor parallelism stays inside it)", tps))
    if pp < 1 or pp > arch.num_layers:
        out.append(LayoutProblem(
            "pp", f"PP {pp} is not between 1 and {arch.name}'s {arch.num_layers} layers "
            "(each pipeline stage needs at least one layer)", (f"1..{arch.num_layers}",)))
    if gpu is not None and precision is not None and not gpu.runs(precision):
        out.append(LayoutProblem("precision", f"{gpu.name} cannot run {precision} weights",
                                 allowed_precisions(gpu)))
    if gpu is not None and kv_dtype is not None and not kv_dtype_ok(gpu, kv_dtype):
        out.append(LayoutProblem("kv_dtype", f"{gpu.name} has no fp8 path for the KV cache",
                                 ("auto", "bf16", "fp16")))
    return out


def moe_layout_problems(arch: ModelArch, gpu: GPU | None, *, tp: int, ep: int, dp: int) -> list[LayoutProblem]:
    """Every reason the MoE layout ``(ep, dp)`` cannot run ``arch`` with attention TP ``tp`` (see
    the module doc); empty for ``ep = dp = 1``."""
    if ep == 1 and dp == 1:
        return []
    group = tp * dp
    eps = ("1", str(group))
    if not arch.is_moe:
        return [LayoutProblem("ep" if ep > 1 else "dp", f"{arch.name} is a dense model: expert parallel and "
                              "attention data parallel are for MoE models", ("1",))]
    out: list[LayoutProblem] = []
    if dp < 1:
        out.append(LayoutProblem("dp", f"DP must be >= 1, got {dp}", ("1",)))
    elif ep not in (1, group):
        out.append(LayoutProblem("ep", f"EP {ep} must be 1 or TP x DP = {group}", eps))
    elif dp > 1 and ep == 1:
        out.append(LayoutProblem("ep", "attention data parallel is modelled with expert parallel only "
                                 f"(EP = TP x DP = {group})", (str(group),)))
    elif arch.num_experts % ep:
        divisors = tuple(str(d) for d in range(1, arch.num_experts + 1) if arch.num_experts % d == 0)
        out.append(LayoutProblem("ep", f"EP {ep} does not divide {arch.name}'s {arch.num_experts} routed experts",
                                 divisors))
    elif gpu is not None and group > gpu.interconnect.domain_size:
        out.append(LayoutProblem(
            "dp", f"TP x DP = {group} exceeds {gpu.name}'s {gpu.interconnect.kind} domain of "
            f"{gpu.interconnect.domain_size} GPUs (the expert all-to-all stays inside it)",
            tuple(str(d) for d in range(1, gpu.interconnect.domain_size // tp + 1))))
    return out


def moe_layouts(arch: ModelArch, footprint: int, gpu: GPU) -> list[tuple[int, int, int]]:
    """``(tp, ep, dp)`` of the EP and DP-attention + EP layouts of a ``footprint``-GPU MoE replica
    (``tp x dp = ep = footprint``, ``dp`` a power of two, PP 1) that pass :func:`layout_problems`
    and :func:`moe_layout_problems`; none for dense models or ``footprint`` 1. The candidate
    builder adds these beside every TP-only footprint it already sizes, so a MoE workload gets at
    most ``log2(footprint) + 1`` more layouts per footprint and a dense one none."""
    if not arch.is_moe or footprint < 2 or arch.num_experts % footprint:
        return []
    out = []
    dp = 1
    while dp <= footprint:
        tp = footprint // dp
        if (footprint % dp == 0 and not layout_problems(arch, gpu, tp=tp)
                and not moe_layout_problems(arch, gpu, tp=tp, ep=footprint, dp=dp)):
            out.append((tp, footprint, dp))
        dp *= 2
    return out


def check_layout(arch: ModelArch, gpu: GPU | None, *, tp: int = 1, pp: int = 1,
                 precision: str | None = None, kv_dtype: str | None = None,
                 options: Mapping[str, str] | None = None, file: str | None = None,
                 ep: int = 1, dp: int = 1) -> None:
    """Raise :class:`UsageError` for the first of :func:`layout_problems`, naming the option (as
    ``options`` spells it, e.g. ``{"tp": "--tp"}``; default ``--tp`` etc.) and the allowed values."""
    problems = layout_problems(arch, gpu, tp=tp, pp=pp, precision=precision, kv_dtype=kv_dtype)
    problems += moe_layout_problems(arch, gpu, tp=tp, ep=ep, dp=dp)
    if not problems:
        return
    first = problems[0]
    name = (options or {}).get(first.option, f"--{first.option.replace('_', '-')}")
    raise UsageError(first.message, file=file, field=name,
                     hint=f"allowed {name} values here: {', '.join(first.allowed) or 'none'}")


def layout_label(ep: int, dp: int) -> str:
    """``" EP8 DP2"`` for a MoE layout (empty for the TP/PP layout): the suffix every report
    puts after ``TP.. PP..``."""
    return (f" EP{ep}" if ep > 1 else "") + (f" DP{dp}" if dp > 1 else "")


__all__ = [
    "LayoutProblem",
    "allowed_precisions",
    "allowed_tp",
    "check_layout",
    "kv_dtype_ok",
    "layout_label",
    "layout_problems",
    "moe_layout_problems",
    "moe_layouts",
    "tp_kv_ok",
    "tp_model_ok",
]

