"""Fine-tuning memory per GPU: full mixed-precision AdamW, LoRA and QLoRA, ZeRO 1/2/3, activations.

Model states follow the ZeRO paper (Rajbhandari et al., arXiv:1910.02054, §3.1 and Figure 1):
mixed-precision Adam keeps 16-bit parameters (2 B) and gradients (2 B) plus K = 12 B of optimizer
state per trainable parameter (fp32 master copy, momentum, variance). Over N data-parallel GPUs:

=========  ================================================
ZeRO 0     (2 + 2 + K) Ψ
ZeRO 1     2Ψ + 2Ψ + KΨ/N          (optimizer states sharded)
ZeRO 2     2Ψ + (2 + K)Ψ/N         (+ gradients sharded)
ZeRO 3     (2 + 2 + K)Ψ/N          (+ parameters sharded)
=========  ================================================

LoRA (Hu et al., arXiv:2106.09685) adds ``r (in + out)`` trainable parameters per targeted matrix;
the frozen base needs only its 16-bit weights (no gradients, no optimizer state). QLoRA (Dettmers
et al., arXiv:2305.14314 §3) stores the frozen base linears in 4-bit NormalFloat with double
quantisation: 4 + 0.127 bits per parameter (8-bit absmax per 64 weights, fp32 second-level
constant per 256 blocks); embeddings, lm_head and norms stay 16 bit (bitsandbytes quantises
``nn.Linear`` layers only, and PEFT keeps the output head unquantised).

Activations per layer for a micro-batch of b sequences of s tokens are the tensors transformers'
decoder layer saves for backward, for the model's own shapes (fp32 RMSNorm inputs, SDPA's
q/K/V/output, a gated MLP's four i-wide tensors: 2h + 8i, not the 2h + 6i generalised from
Korthikanti et al., arXiv:2205.05198 §4.1); LoRA/QLoRA keep less, because a frozen linear saves
no input for its weight gradient. See :func:`activation_bytes_per_layer`. With full activation
checkpointing only each layer's input is kept (``2 s b h`` per layer) and one layer is
recomputed at a time. Logits are upcast to fp32 for the loss (transformers
``LlamaForCausalLM.forward``: ``logits.float()``) and their gradient is fp32 too: ``8 s b V``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from optimizer.errors import UsageError
from optimizer.sizing.architecture import (
    LinearShape,
    ModelArch,
    attention_linears,
    linear_shapes,
    param_counts,
)

Method = Literal["full", "lora", "qlora"]

#: Bytes of optimizer state per trainable parameter for mixed-precision Adam (ZeRO paper §3.1:
#: K = 12: fp32 parameters, momentum and variance).
ADAM_K = 12
#: 16-bit parameter and gradient bytes (ZeRO paper §3.1).
PARAM_BYTES_16 = 2
GRAD_BYTES_16 = 2
#: NF4 with double quantisation: 4 bits + 0.127 bits of quantisation constants per parameter
#: (QLoRA paper §3, "Double Quantization").
NF4_BITS = 4.127

#: Module names PEFT targets, mapped to the position of the matrix in a layer's shapes.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class FinetuneMemory:
    """Per-GPU peak memory of one training step (bytes) and what dominates it."""

    method: str
    zero_stage: int
    num_gpus: int
    trainable_params: int
    frozen_params: int
    weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    logits_bytes: int
    peak_bytes_per_gpu: int
    dominant: str

    @property
    def total_bytes(self) -> int:
        return self.peak_bytes_per_gpu

    def components(self) -> dict[str, int]:
        return {
            "weights": self.weights_bytes,
            "gradients": self.gradients_bytes,
            "optimizer states": self.optimizer_bytes,
            "activations": self.activations_bytes,
            "logits": self.logits_bytes,
        }


def model_state_bytes(trainable: float, zero_stage: int, num_gpus: int,
                      k: int = ADAM_K) -> tuple[float, float, float]:
    """(parameters, gradients, optimizer states) bytes per GPU for ``trainable`` parameters under
    ZeRO ``zero_stage`` on ``num_gpus`` data-parallel GPUs (ZeRO paper, Figure 1 equations)."""
    if zero_stage not in (0, 1, 2, 3):
        raise UsageError(f"ZeRO stage must be 0, 1, 2 or 3, got {zero_stage}", field="zero")
    if num_gpus < 1:
        raise UsageError("num_gpus must be >= 1", field="num_gpus")
    n = num_gpus
    params = PARAM_BYTES_16 * trainable / (n if zero_stage >= 3 else 1)
    grads = GRAD_BYTES_16 * trainable / (n if zero_stage >= 2 else 1)
    opt = k * trainable / (n if zero_stage >= 1 else 1)
    return params, grads, opt


def _target_shapes(arch: ModelArch, targets: tuple[str, ...]) -> list[LinearShape]:
    """The matrices LoRA adapts, by PEFT module name, over all layers (expert MLPs included).
    For MLA models any attention target selects every attention matrix."""
    h, L = arch.hidden_size, arch.num_layers
    out: list[LinearShape] = []
    if arch.is_mla:
        if any(t in targets for t in ("q_proj", "k_proj", "v_proj", "o_proj")):
            out += attention_linears(arch, L)
    else:
        q_dim = arch.num_attention_heads * arch.head_dim
        kv_dim = arch.num_kv_heads * arch.head_dim
        dims = {"q_proj": (h, q_dim), "k_proj": (h, kv_dim), "v_proj": (h, kv_dim),
                "o_proj": (q_dim, h)}
        out += [LinearShape("attention", *dims[t], L) for t in dims if t in targets]
    mlps: list[tuple[str, int, int]] = []  # (component, width, matrices-sets)
    if arch.num_dense_layers:
        mlps.append(("mlp_dense", arch.intermediate_size, arch.num_dense_layers))
    if arch.num_moe_layers:
        mlps.append(("experts_routed", arch.moe_intermediate_size,
                     arch.num_moe_layers * arch.num_experts))
        if arch.shared_expert_intermediate_size:
            mlps.append(("experts_shared", arch.shared_expert_intermediate_size,
                         arch.num_moe_layers))
    for component, width, count in mlps:
        for t in ("gate_proj", "up_proj"):
            if t in targets:
                out.append(LinearShape(component, h, width, count))
        if "down_proj" in targets:
            out.append(LinearShape(component, width, h, count, False, "row"))
    return out


def lora_params(arch: ModelArch, rank: int, targets: tuple[str, ...] = ("q_proj", "v_proj")) -> int:
    """Trainable LoRA parameters: ``sum over targeted matrices of r (in + out)`` (LoRA paper §4.1;
    PEFT ``LoraConfig.target_modules``; default targets q_proj, v_proj as in the paper)."""
    if rank < 1:
        raise UsageError("LoRA rank must be >= 1", field="lora_rank")
    bad = [t for t in targets if t not in LORA_TARGETS]
    if bad:
        raise UsageError(f"unknown LoRA target(s) {bad}", field="lora_targets",
                         hint=f"use names from {', '.join(LORA_TARGETS)}")
    return sum(s.count * rank * (s.in_features + s.out_features) for s in _target_shapes(arch, targets))


def activation_bytes_per_layer(arch: ModelArch, seq_len: int, micro_batch: int,
                               flash_attention: bool = True, method: Method = "full",
                               lora_targets: tuple[str, ...] = (), lora_rank: int = 16) -> int:
    """Bytes one decoder layer saves for backward, counted tensor by tensor as transformers'
    ``LlamaDecoderLayer`` saves them under autograd (bf16 weights, SDPA attention, storage counted
    once). Per token, with h hidden, i MLP width, a query heads of width d:

    - each RMSNorm (two per layer): its fp32 upcast input (``pow`` and the ``x * rsqrt`` product
      save it, 4h) and the fp32 ``rsqrt`` (4); the bf16 normalised output (2h) that ``weight *``
      saves only when the norm weight trains (full fine-tuning); the q/k/v or gate/up
      projections read the same tensor;
    - attention: SDPA saves q (2ad), K and V (2ad each, repeated to the query heads by
      ``repeat_kv``: transformers does so whenever SDPA gets a mask or, before ``enable_gqa``,
      always), its output (2ad) and the fp32 log-sum-exp (4a); the contiguous copy feeding
      ``o_proj`` (2ad) is kept when ``o_proj`` trains; RoPE's ``q * cos`` saves only cos/sin
      (no gradient flows to them);
    - MLP: the gate output (SiLU's input), the SiLU output and the up output (the product saves
      both factors): 6i, kept whatever trains, because they carry the input gradient; the product
      feeding ``down_proj`` (2i) only when ``down_proj`` trains: 2h + 8i in full fine-tuning (the
      2h being the normalised input above), not Korthikanti et al.'s 2h + 6i.

    A frozen linear (LoRA/QLoRA base, not targeted) saves no input, since only its weight
    gradient needs it: a LoRA-targeted one saves its input through ``lora_A`` (PEFT, dropout 0)
    and the r-wide ``lora_A`` output (2r). Without FlashAttention the score matrix adds
    Korthikanti et al.'s (arXiv:2205.05198 §4.1) ``5 a s^2 b``."""
    s, b, h = seq_len, micro_batch, arch.hidden_size
    a, d = arch.num_attention_heads, arch.head_dim
    full = method == "full"
    targets = set(lora_targets) if not full else set()

    def trains(module: str) -> bool:
        return full or module in targets

    norm = 4 * h + 4 + (2 * h if full else 0)
    attn = 2 * a * d * 4 + 4 * a  # SDPA: q, K, V, output; fp32 log-sum-exp
    if not full and targets & {"q_proj", "k_proj", "v_proj"}:
        attn += 2 * h  # the normalised input, kept by lora_A
    if trains("o_proj"):
        attn += 2 * a * d
    inter = arch.moe_intermediate_size * arch.experts_per_token if arch.is_moe else arch.intermediate_size
    mlp = 6 * inter + (2 * inter if trains("down_proj") else 0)
    if not full and targets & {"gate_proj", "up_proj"}:
        mlp += 2 * h
    adapters = 2 * lora_rank * len(targets)
    per_token = 2 * norm + attn + mlp + adapters
    scores = 0 if flash_attention else 5 * a * s * s * b
    return s * b * per_token + scores


def finetune_memory(arch: ModelArch, method: Method = "full", *, num_gpus: int = 1,
                    zero_stage: int = 0, micro_batch: int = 1, seq_len: int = 2048,
                    gradient_checkpointing: bool = False, lora_rank: int = 16,
                    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj"),
                    flash_attention: bool = True) -> FinetuneMemory:
    """Per-GPU peak memory of one training step.

    total = weights + gradients + optimizer states (ZeRO-sharded as in :func:`model_state_bytes`)
    + activations (``L x`` :func:`activation_bytes_per_layer`, or with checkpointing
    ``L x 2 s b h + one layer``) + logits (``8 s b V``, fp32 logits and their gradient).

    full: every parameter trainable. lora: frozen 16-bit base (sharded only by ZeRO-3) + LoRA
    states. qlora: frozen base linears at 4.127 bits (NF4 + double quantisation), the rest 16 bit.
    """
    if method not in ("full", "lora", "qlora"):
        raise UsageError(f"unknown fine-tuning method {method!r}", field="finetune",
                         hint="use full, lora or qlora")
    if micro_batch < 1 or seq_len < 1:
        raise UsageError("micro_batch and seq_len must be >= 1", field="micro_batch")
    counts = param_counts(arch)
    n = num_gpus
    if method == "full":
        trainable = counts.total
        frozen = 0
        frozen_bytes = 0.0
    else:
        trainable = lora_params(arch, lora_rank, lora_targets)
        frozen = counts.total
        if method == "lora":
            frozen_bytes = PARAM_BYTES_16 * frozen
        else:
            linear = sum(s.params for s in linear_shapes(arch) if s.component != "router")
            frozen_bytes = linear * NF4_BITS / 8 + PARAM_BYTES_16 * (frozen - linear)
        if zero_stage >= 3:
            frozen_bytes /= n
    # QLoRA keeps the adapters in bf16 with 32-bit Adam moments (QLoRA paper §3-4: BF16 compute
    # dtype, paged 32-bit AdamW): no fp32 master copy, K = 8. Full and LoRA runs use mixed
    # precision with K = 12 (PEFT keeps adapters in fp32: 4 + 4 + 8 B, the same 16 B/param).
    p, g, o = model_state_bytes(trainable, zero_stage, n, k=8 if method == "qlora" else ADAM_K)
    s, b = seq_len, micro_batch
    per_layer = activation_bytes_per_layer(arch, s, b, flash_attention, method,
                                           lora_targets if method != "full" else (), lora_rank)
    if gradient_checkpointing:
        acts = arch.num_layers * 2 * s * b * arch.hidden_size + per_layer
    else:
        acts = arch.num_layers * per_layer
    logits = 8 * s * b * arch.vocab_size
    weights = int(p + frozen_bytes)
    parts = {
        "weights": weights,
        "gradients": int(g),
        "optimizer states": int(o),
        "activations": int(acts),
        "logits": int(logits),
    }
    dominant = max(parts, key=lambda k: parts[k])
    return FinetuneMemory(
        method=method, zero_stage=zero_stage, num_gpus=n, trainable_params=int(trainable),
        frozen_params=int(frozen), weights_bytes=weights, gradients_bytes=int(g),
        optimizer_bytes=int(o), activations_bytes=int(acts), logits_bytes=int(logits),
        peak_bytes_per_gpu=sum(parts.values()), dominant=dominant,
    )


__all__ = [
    "ADAM_K",
    "LORA_TARGETS",
    "NF4_BITS",
    "FinetuneMemory",
    "activation_bytes_per_layer",
    "finetune_memory",
    "lora_params",
    "model_state_bytes",
]
