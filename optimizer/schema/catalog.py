"""Catalog schema: GPUs, servers and the model registry, each entry with a source and an as-of date.

Units are in the field names: ``_gib`` = 2**30 bytes, ``_gb_s`` = 10**9 bytes per second,
``_tflops`` = 10**12 dense (no 2:4 sparsity) operations per second, ``_w`` = watts, ``_usd`` = US dollars.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, model_validator

from optimizer.schema.base import Strict

Precision = Literal["fp32", "bf16", "fp16", "fp8", "int8", "int4"]
FormFactor = Literal["sxm", "pcie", "oam", "module"]



class Sourced(Strict):
    source: str = Field(min_length=3, description="Where the figures were read (URL, document, commit)")
    as_of: date = Field(strict=False, description="Date the figures were read or published (YYYY-MM-DD)")


class PriceEstimate(Sourced):
    """An estimated price. Prices are never quotes; scenarios may override them."""

    usd: float = Field(gt=0, description="Estimated unit price in US dollars")
    estimate: Literal[True] = True
    note: str | None = None


class Interconnect(Strict):
    kind: Literal["nvlink", "pcie", "infinity-fabric", "hccs"]
    bandwidth_gb_s: float = Field(
        gt=0, description="Per-GPU unidirectional GPU-to-GPU bandwidth inside the domain, GB/s")
    domain_size: int = Field(
        ge=1, description="GPUs that share this link all-to-all (NVLink/IF/HCCS domain); "
        "tensor parallelism stays inside it")
    description: str = Field(description="Datasheet wording, e.g. 'NVLink 4: 900 GB/s bidirectional'")


class GPU(Sourced):
    name: str = Field(description="Canonical catalog name, e.g. H100-SXM-80GB")
    aliases: list[str] = Field(default_factory=list)
    vendor: Literal["NVIDIA", "AMD", "Huawei"]
    architecture: str
    form_factor: FormFactor
    memory_marketed: str = Field(description="Capacity as the vendor markets it, e.g. '80 GB'")
    memory_gib: float = Field(
        gt=0, description="Device memory visible to the runtime in GiB (2**30 B), e.g. "
        "torch.cuda.mem_get_info total; the serving budget is a fraction of this")
    memory_type: str
    memory_bandwidth_gb_s: float = Field(gt=0, description="Peak memory bandwidth, GB/s (10**9 B/s)")
    tflops_dense: dict[Precision, float] = Field(
        description="Dense tensor-core peak per precision in TFLOPS (int8/int4 in TOPS). "
        "A precision is absent when the hardware has no native path for it.")
    weight_only_precisions: list[Precision] = Field(
        default_factory=list,
        description="Weight-only quantised formats engines run here via dequantising kernels "
        "(e.g. int4 AWQ/GPTQ Marlin on Ampere+) although the tensor cores lack the native type")
    tdp_w: float = Field(gt=0, description="Board power (TDP/TBP) in watts, at the configuration sold in servers")
    interconnect: Interconnect
    software_stack: str
    datacenter_licensed: bool = Field(
        default=True, description="False for consumer cards whose driver licence forbids datacenter deployment")
    datacenter_license_note: str | None = None
    price: PriceEstimate
    confidence: Literal["high", "medium", "low"] = "medium"
    notes: str | None = None

    @model_validator(mode="after")
    def _has_bf16_or_fp16(self) -> GPU:
        if "bf16" not in self.tflops_dense and "fp16" not in self.tflops_dense:
            raise ValueError(f"{self.name}: tflops_dense needs bf16 or fp16")
        return self

    def runs(self, precision: str) -> bool:
        """Whether an engine can serve weights of ``precision`` on this GPU."""
        if precision == "fp32":
            return True
        if precision == "bf16" and "bf16" not in self.tflops_dense:
            return False
        return precision in self.tflops_dense or precision in self.weight_only_precisions

    def compute_tflops(self, precision: str) -> float:
        """Matrix throughput used for ``precision`` weights: native if present, else the 16-bit
        rate (weight-only formats dequantise to 16 bit before the matmul)."""
        if precision in self.tflops_dense:
            return self.tflops_dense[precision]
        return self.tflops_dense.get("bf16") or self.tflops_dense["fp16"]


class Server(Sourced):
    """A server chassis (base system) that takes GPUs of one form factor."""

    name: str = Field(description="Canonical catalog name, e.g. HGX-H100-8GPU")
    aliases: list[str] = Field(default_factory=list)
    vendor: str
    description: str
    gpu_form_factor: FormFactor
    compatible_gpus: list[str] = Field(min_length=1, description="Catalog GPU names this chassis takes")
    gpu_slots: int = Field(ge=1)
    allowed_populations: list[int] = Field(
        min_length=1, description="GPU counts the chassis may be bought with (HGX boards: only 8)")
    base_price: PriceEstimate = Field(
        description="Chassis without GPUs: CPUs, RAM, NICs, storage, PSUs (estimate)")
    base_power_w: float = Field(gt=0, description="Power at full load excluding GPUs, watts")
    rack_units: int = Field(ge=1)
    notes: str | None = None

    @model_validator(mode="after")
    def _populations_fit(self) -> Server:
        bad = [p for p in self.allowed_populations if p < 1 or p > self.gpu_slots]
        if bad:
            raise ValueError(f"{self.name}: allowed_populations {bad} exceed gpu_slots {self.gpu_slots}")
        return self


class ModelSource(Sourced):
    """Registry entry for one model whose Hugging Face config.json is stored in catalogs/models/."""

    name: str = Field(description="Catalog name, e.g. Qwen2-7B")
    hf_id: str = Field(description="Hugging Face repository id, e.g. Qwen/Qwen2-7B")
    aliases: list[str] = Field(default_factory=list,
        description="Other HF ids (e.g. -Instruct/-Chat) with the same architecture")
    config_file: str = Field(description="File name under catalogs/models/")
    params_reference: float | None = Field(
        default=None, description="Exact total parameter count from the checkpoint's tensors or a "
        "three-significant-figure publisher figure (see params_reference_source)")
    params_reference_source: str | None = None
    active_params_reference: float | None = None
    license: str | None = None


class Catalog(Strict):
    gpus: dict[str, GPU]
    servers: dict[str, Server]
    models: dict[str, ModelSource]
