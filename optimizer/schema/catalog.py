"""Catalog schema: GPUs, servers and the model registry, each entry with a source and an as-of date.

Units are in the field names: ``_gib`` = 2**30 bytes, ``_gb_s`` = 10**9 bytes per second,
``_tflops`` = 10**12 dense (no 2:4 sparsity) operations per second, ``_w`` = watts, ``_usd`` = US dollars.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, model_validator

from optimizer.schema.base import Strict

#: Weight formats. 16/32-bit floats; ``fp8`` (E4M3, per-tensor/channel/128x128-block scales);
#: ``int8``/``int4`` weight-only (GPTQ/AWQ); ``nvfp4``/``mxfp4`` (OCP/NVIDIA FP4 E2M1 with block
#: scales, native on Blackwell tensor cores); ``w8a8``/``w4a8`` (int8 activations); GGUF types
#: ``q4_0`` ... ``q8_0`` (llama.cpp). Byte layouts: optimizer/sizing/quant.py.
Precision = Literal["fp32", "bf16", "fp16", "fp8", "int8", "int4", "nvfp4", "mxfp4", "w8a8", "w4a8",
                    "q4_0", "q4_k_m", "q5_k_m", "q6_k", "q8_0"]
FormFactor = Literal["sxm", "pcie", "oam", "module"]



class Sourced(Strict):
    source: str = Field(min_length=3, description="Where the figures were read (URL, document, commit)")
    as_of: date = Field(strict=False, description="Date the figures were read or published (YYYY-MM-DD)")


#: A price estimate older than this many days is flagged (issues #12, #13: "older than 12 months").
STALE_AFTER_DAYS = 365


def price_stale(as_of: date, today: date | None = None) -> bool:
    """Whether a price dated ``as_of`` is older than 12 months on ``today`` (default: today)."""
    return ((today or date.today()) - as_of).days > STALE_AFTER_DAYS


class PriceEstimate(Sourced):
    """An estimated price. Prices are never quotes; scenarios may override them."""

    usd: float = Field(gt=0, description="Estimated unit price in US dollars")
    estimate: Literal[True] = True
    note: str | None = None


class Interconnect(Strict):
    kind: Literal["nvlink", "pcie", "infinity-fabric", "hccs", "mlu-link"]
    bandwidth_gb_s: float = Field(
        gt=0, description="Per-GPU unidirectional GPU-to-GPU bandwidth inside the domain, GB/s")
    domain_size: int = Field(
        ge=1, description="GPUs that share this link all-to-all (NVLink/IF/HCCS domain); "
        "tensor parallelism stays inside it")
    description: str = Field(description="Datasheet wording, e.g. 'NVLink 4: 900 GB/s bidirectional'")


class GPU(Sourced):
    name: str = Field(description="Canonical catalog name, e.g. H100-SXM-80GB")
    aliases: list[str] = Field(default_factory=list)
    vendor: Literal["NVIDIA", "AMD", "Huawei", "Cambricon"]
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
        """Whether a modelled engine (vLLM, SGLang, TensorRT-LLM, vLLM-Ascend) can serve weights
        of ``precision`` on this GPU.

        * listed in ``tflops_dense`` (native) or ``weight_only_precisions``: yes;
        * ``nvfp4`` / ``mxfp4`` without FP4 tensor cores: weight-only (W4A16) on NVIDIA GPUs that
          run int4 weight-only, via vLLM's FP4 Marlin kernels (vllm-project/vllm#17687, #18000;
          ``quantization/utils/marlin_utils_fp4.py``, sm80+);
        * ``w8a8`` (int8 activations): needs native int8 (``tflops_dense["int8"]``);
        * ``w4a8``: int4 weights with fp8 activations need native fp8 (TensorRT-LLM
          ``W4A8_AWQ``, sm89+); Ascend runs int8 activations (vLLM-Ascend W4A8 dynamic), so
          native int8 on Huawei;
        * GGUF types (``q4_0`` ... ``q8_0``): no modelled engine serves them (llama.cpp/Ollama
          are not modelled), so never; ``procure size`` still sizes them.
        """
        if precision == "fp32":
            return True
        if precision == "bf16" and "bf16" not in self.tflops_dense:
            return False
        if precision in self.tflops_dense or precision in self.weight_only_precisions:
            return True
        if precision in ("nvfp4", "mxfp4"):
            return self.vendor == "NVIDIA" and self.runs("int4")
        if precision == "w8a8":
            return "int8" in self.tflops_dense
        if precision == "w4a8":
            return "fp8" in self.tflops_dense or (self.vendor == "Huawei" and "int8" in self.tflops_dense)
        return False

    def compute_tflops(self, precision: str) -> float:
        """Matrix throughput used for ``precision`` weights: native if present; W8A8 at the int8
        rate and W4A8 at the fp8 (else int8) rate, the activations' type; else the 16-bit rate
        (weight-only formats, FP4 off Blackwell and GGUF dequantise to 16 bit before the matmul)."""
        if precision in self.tflops_dense:
            return self.tflops_dense[precision]
        if precision == "w8a8" and "int8" in self.tflops_dense:
            return self.tflops_dense["int8"]
        if precision == "w4a8":
            for act in ("fp8", "int8"):
                if act in self.tflops_dense:
                    return self.tflops_dense[act]
        return self.tflops_dense.get("bf16") or self.tflops_dense["fp16"]


class Server(Sourced):
    """A server chassis (base system) that takes GPUs of one form factor, or a cloud instance type.

    A cloud instance type sets ``hourly_usd`` (its on-demand price per hour, GPUs included; and,
    where a source gives them, ``hourly_1y_usd`` / ``hourly_3y_usd`` under a commitment, with the
    ``provider`` and the ``region`` the prices are for; catalogs/cloud.yaml ships them): it is
    rented, not bought, so ``base_price``, ``base_power_w`` and ``rack_units`` may be omitted (it
    draws no site power and takes no rack space: it runs in the provider's data centre), and
    ``integrated`` defaults to true (the instance comes whole). A purchased server needs all three.
    """

    name: str = Field(description="Canonical catalog name, e.g. HGX-H100-8GPU")
    aliases: list[str] = Field(default_factory=list)
    vendor: str
    description: str
    gpu_form_factor: FormFactor
    compatible_gpus: list[str] = Field(min_length=1, description="Catalog GPU names this chassis takes")
    gpu_slots: int = Field(ge=1)
    allowed_populations: list[int] = Field(
        min_length=1, description="GPU counts the chassis may be bought with (HGX boards: only 8)")
    integrated: bool = Field(
        description="Sold as one system at a system price (HGX/DGX boards, OAM platforms, Atlas 800: "
        "GPUs are not sold separately, scale-out NICs included); false for PCIe chassis + cards. "
        "A cloud instance type is whole (default true)")
    integrated_reason: str = Field(min_length=3, description="Why the server is (not) an integrated system")
    base_price: PriceEstimate | None = Field(
        default=None, description="Chassis without GPUs: CPUs, RAM, NICs, storage, PSUs (estimate); "
        "required unless hourly_usd is set")
    base_power_w: float | None = Field(
        default=None, gt=0, description="Power at full load excluding GPUs, watts; required unless hourly_usd is set")
    rack_units: int | None = Field(default=None, ge=1, description="Height, U; required unless hourly_usd is set")
    hourly_usd: float | None = Field(
        default=None, gt=0, le=1e6, description="Cloud instance type: on-demand price per hour in US dollars, "
        "GPUs included (the objective `hourly` minimises the sum of these)")
    hourly_1y_usd: float | None = Field(
        default=None, gt=0, le=1e6, description="Cloud instance type: effective price per hour in US dollars "
        "under a 1-year commitment (reserved instance, savings plan or committed-use discount, no upfront "
        "payment); null where no source gives it")
    hourly_3y_usd: float | None = Field(
        default=None, gt=0, le=1e6, description="Cloud instance type: effective price per hour in US dollars "
        "under a 3-year commitment; null where no source gives it")
    provider: str | None = Field(default=None, min_length=2, max_length=100,
                                 description="Cloud instance type: the provider renting it, e.g. AWS")
    region: str | None = Field(default=None, min_length=2, max_length=100,
                               description="Cloud instance type: the region its prices are for, e.g. us-east-1")
    notes: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _cloud_is_whole(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("hourly_usd") is not None:
            data = {"integrated": True, "integrated_reason": "cloud instance type: rented whole, GPUs included",
                    **data}
        return data

    @model_validator(mode="after")
    def _populations_fit(self) -> Server:
        bad = [p for p in self.allowed_populations if p < 1 or p > self.gpu_slots]
        if bad:
            raise ValueError(f"{self.name}: allowed_populations {bad} exceed gpu_slots {self.gpu_slots}")
        if self.hourly_usd is None:
            missing = [f for f in ("base_price", "base_power_w", "rack_units") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"{self.name}: a purchased server needs {', '.join(missing)} "
                                 "(a cloud instance type sets hourly_usd instead)")
        elif self.integrated is not True:
            raise ValueError(f"{self.name}: a cloud instance type (hourly_usd) is rented whole; "
                             "remove integrated: false")
        cloud_only = [f for f in ("hourly_1y_usd", "hourly_3y_usd", "provider", "region")
                      if getattr(self, f) is not None]
        if self.hourly_usd is None and cloud_only:
            raise ValueError(f"{self.name}: {', '.join(cloud_only)} describe a cloud instance type; "
                             "give its on-demand hourly_usd too")
        for term in ("hourly_1y_usd", "hourly_3y_usd"):
            committed = getattr(self, term)
            if committed is not None and self.hourly_usd is not None and committed > self.hourly_usd:
                raise ValueError(f"{self.name}: {term} {committed:g} exceeds the on-demand hourly_usd "
                                 f"{self.hourly_usd:g}; a commitment never costs more per hour")
        return self

    @property
    def cloud(self) -> bool:
        """A cloud instance type (rented by the hour), not a server to buy."""
        return self.hourly_usd is not None

    def hourly_for(self, term: Literal["on_demand", "1y", "3y"]) -> float | None:
        """Price per hour in USD on ``term`` (on-demand, 1- or 3-year commitment); None for a
        purchased server or where the catalog has no committed price."""
        return {"on_demand": self.hourly_usd, "1y": self.hourly_1y_usd, "3y": self.hourly_3y_usd}[term]

    @property
    def base_usd(self) -> float:
        """Chassis price estimate in USD; 0 for a cloud instance (nothing is bought)."""
        return self.base_price.usd if self.base_price is not None else 0.0

    @property
    def price_as_of(self) -> date:
        """Date of the price the server is planned with (its hourly price's for a cloud instance)."""
        return self.base_price.as_of if self.base_price is not None else self.as_of

    @property
    def price_source(self) -> str:
        """Where the server's price was read."""
        if self.base_price is not None:
            return self.base_price.source
        return f"cloud instance at {self.hourly_usd:g} USD/h: {self.source}"

    @property
    def power_units(self) -> tuple[float, int]:
        """(base power W, rack units) counted against the site: (0, 0) for a cloud instance."""
        return (self.base_power_w or 0.0, self.rack_units or 0)


class DeclaredGPU(GPU):
    """A GPU a scenario declares itself (``catalog.gpus``): the catalog schema plus ``replaces``."""

    replaces: str | None = Field(default=None, description="Shipped GPU this entry stands in for "
                                 "(its name and aliases may then be reused)")


class DeclaredServer(Server):
    """A server or cloud instance type a scenario declares itself (``catalog.servers``)."""

    replaces: str | None = Field(default=None, description="Shipped server this entry stands in for")


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


class FractionEstimate(Sourced):
    """An estimated fraction (of the hardware price, or of it per year). Never a quote."""

    fraction: float = Field(gt=0, le=1, description="e.g. 0.02 = 2 % of the servers' price")
    estimate: Literal[True] = True
    note: str | None = None


QuoteCategory = Literal["network", "storage", "rack", "shipping", "support"]

#: How a quote item's quantity follows from the plan (optimizer/quote.py):
#:   per_scaleout_gpu        ceil(per x GPUs per server) on each server of a non-integrated SKU in a
#:                           multi-server group (PCIe scale-out NICs; integrated systems ship theirs)
#:   per_scaleout_port       per x scale-out ports (cables, transceivers)
#:   per_switch_ports        ceil(scale-out ports / per) (leaf switches, ``per`` ports down each)
#:   per_tb                  ceil(per x TB of model weights (bf16) and fine-tuning datasets)
#:   per_rack                per x racks used (only when the site provides no racks)
#:   per_server              per x servers bought
#:   fraction_of_hardware    one line at fraction x server (hardware) price
#:   fraction_of_hardware_per_year  support years x (fraction x hardware price)
QuoteRule = Literal["per_scaleout_gpu", "per_scaleout_port", "per_switch_ports", "per_tb", "per_rack",
                    "per_server", "fraction_of_hardware", "fraction_of_hardware_per_year"]


class QuoteItem(Sourced):
    """A line a real quote has besides the servers: network, storage, racks, shipping, support."""

    name: str = Field(description="Catalog name, used by quote.prices overrides")
    category: QuoteCategory
    vendor: str
    description: str = Field(description="Product description as printed on the quote")
    part_number: str | None = Field(default=None, description="Vendor part number where public")
    rule: QuoteRule
    per: float = Field(default=1.0, gt=0, le=1e6, description="The rule's parameter (see QuoteRule)")
    price: PriceEstimate | None = Field(default=None, description="Unit price (every rule but fraction_*)")
    fraction: FractionEstimate | None = Field(default=None, description="For fraction_* rules")
    confidence: Literal["high", "medium", "low"]
    notes: str | None = None

    @model_validator(mode="after")
    def _priced_once(self) -> QuoteItem:
        by_fraction = self.rule.startswith("fraction_")
        if by_fraction and (self.fraction is None or self.price is not None):
            raise ValueError(f"{self.name}: rule {self.rule} needs fraction (and no price)")
        if not by_fraction and (self.price is None or self.fraction is not None):
            raise ValueError(f"{self.name}: rule {self.rule} needs price (and no fraction)")
        return self

    @property
    def as_of_price(self) -> date:
        """Date of the figure the line is priced with."""
        est = self.price or self.fraction
        assert est is not None
        return est.as_of


class Catalog(Strict):
    gpus: dict[str, GPU]
    #: servers to buy (servers.yaml) and cloud instance types to rent (cloud.yaml, ``hourly_usd`` set)
    servers: dict[str, Server]
    models: dict[str, ModelSource]
    quote_items: dict[str, QuoteItem] = Field(default_factory=dict)

    @property
    def purchasable(self) -> dict[str, Server]:
        """Servers that are bought (no hourly price)."""
        return {k: s for k, s in self.servers.items() if not s.cloud}

    @property
    def cloud(self) -> dict[str, Server]:
        """Cloud instance types (rented by the hour)."""
        return {k: s for k, s in self.servers.items() if s.cloud}
