"""The table of feasible deployments that feeds the MIP.

For each inference workload: every (server SKU, TP, PP, precision) the scenario allows that fits in
memory with the workload's context and whose SLO-limited capacity is > 0. TP degrees divide the
attention heads and stay inside one server's GPU interconnect domain; PP stays inside a server
unless the scenario allows it to span whole servers. Fine-tuning jobs become GPU demands: enough GPUs
of a fitting type to finish tokens x epochs by the deadline.

Everything the MIP needs is computed here; the MIP never sizes anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from optimizer.engines import check_engine_gpus
from optimizer.loaders import ResolvedScenario
from optimizer.schema.catalog import GPU, Server
from optimizer.schema.engine import EngineSettings
from optimizer.schema.scenario import SLO, FinetuneWorkload, InferenceWorkload
from optimizer.sizing.architecture import ModelArch, param_counts, parse_config
from optimizer.sizing.finetune import finetune_memory
from optimizer.sizing.layout import layout_label, moe_layouts
from optimizer.sizing.lengths import LengthBin, LengthMix, mix_requests_per_s, mix_throughput
from optimizer.sizing.measured import measured_match, slo_targets, with_measured
from optimizer.sizing.memory import ServingMemory, serving_memory
from optimizer.sizing.perf import (
    Efficiency,
    PerfQuery,
    ReplicaPerf,
    TailTargets,
    load_efficiency,
    replica_perf_many,
    replica_perf_mix_many,
)
from optimizer.sizing.uncertainty import planning_time_scale
from optimizer.units import GIB

#: TP degrees tried; each must divide the attention heads, stay inside the GPU's NVLink/HCCS
#: domain and give a replica footprint (TP x PP) that is a power of two DIVIDING the server's GPU
#: count (see :func:`_pp_servers`). On a 72-GPU NVL72 rack that allows footprints 1, 2, 4, 8
#: (72 = 8 x 9): a 16-, 32- or 64-GPU footprint does not divide 72, and mixing it with others
#: would break the exactness of the MIP's aggregate packing row (16 + 64 GPUs "fit" 2 x 72 slots
#: by the row but not on the racks), which placement and constraints rely on. Degrees 16-64 are
#: used on a SKU whose GPU count they divide.
TP_DEGREES = (1, 2, 4, 8, 16, 32, 64)
PP_DEGREES = (1, 2, 4)

# Llama 3 paper (Dubey et al. 2024, Table 4): 38-43% BF16 MFU training on H100; the low end is
# used for fine-tuning jobs unless the scenario sets `mfu`.
DEFAULT_FINETUNE_MFU = 0.38
MAX_FINETUNE_GPUS = 256


@dataclass(frozen=True)
class ServerSku:
    """A purchasable server: a chassis populated with ``gpus`` GPUs of one type."""

    key: str
    chassis: Server
    gpu: GPU
    gpus: int
    chassis_price: float
    gpu_price: float
    power_w: float
    price_source: str
    #: A cloud instance type's price per hour in the scenario currency (None: a server to buy)
    hourly_price: float | None = None

    @property
    def unit_price(self) -> float:
        return self.chassis_price + self.gpus * self.gpu_price

    @property
    def rack_units(self) -> int:
        return self.chassis.power_units[1]


@dataclass(frozen=True)
class InferenceCandidate:
    workload: str
    sku: str
    tp: int
    pp: int
    precision: str
    kv_dtype: str
    servers_per_replica: int  # >1 only when PP spans whole servers
    memory: ServingMemory
    perf: ReplicaPerf
    #: MoE layout (docs/perf.md "MoE layouts"): expert-parallel size (1 or tp x dp) and attention
    #: data-parallel ranks; a replica is tp x pp x dp GPUs.
    ep: int = 1
    dp: int = 1
    #: with a length mix (``InferenceWorkload.lengths``, two or more buckets): the replica's
    #: performance on each bucket alone, in the workload's bucket order, its capacity scaled by
    #: the mix factor kappa (:func:`apply_mix`); ``perf`` is then the mix-aware evaluation of the
    #: whole mix (:func:`optimizer.sizing.perf.replica_perf_mix_many`). Empty for one length.
    bucket_perf: tuple[ReplicaPerf, ...] = ()

    @property
    def gpus_per_replica(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def capacity_rps(self) -> float:
        """SLO capacity of one replica, requests/s: on the workload's whole length mix (0 when
        some bucket cannot meet the SLO here; the MIP may still route other buckets to it)."""
        return self.perf.requests_per_s

    @property
    def bucket_rps(self) -> tuple[float, ...]:
        """SLO capacity of one replica on each length bucket alone (one entry without a mix)."""
        return tuple(p.requests_per_s for p in self.bucket_perf) if self.bucket_perf else (self.perf.requests_per_s,)


@dataclass(frozen=True)
class FinetuneCandidate:
    workload: str
    sku: str
    gpus: int
    hours: float
    peak_gib_per_gpu: float


@dataclass(frozen=True)
class Rejection:
    """Why a configuration was not a candidate; the diagnosis reads these."""

    workload: str
    sku: str
    tp: int
    pp: int
    precision: str
    reason: str  # "memory" | "slo" | "precision" | "kv_dtype" | "rack" | "heads" | "deadline"
    detail: str
    need_gib: float = 0.0
    have_gib: float = 0.0
    best_ttft_ms: float = math.inf
    best_tpot_ms: float = math.inf
    ep: int = 1  # the MoE layout rejected (InferenceCandidate.ep / .dp)
    dp: int = 1


@dataclass
class CandidateSet:
    skus: dict[str, ServerSku]
    inference: list[InferenceCandidate] = field(default_factory=list)
    finetune: list[FinetuneCandidate] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    archs: dict[str, ModelArch] = field(default_factory=dict)
    # server SKUs dropped because one of them alone exceeds a rack's power or units (see drop_unrackable)
    unrackable: dict[str, ServerSku] = field(default_factory=dict)
    # the efficiency factors (and error band) each GPU's capacities were computed with, by GPU name
    efficiency: dict[str, Efficiency] = field(default_factory=dict)
    # indices into ResolvedScenario.measured of the entries that gave some layout's capacity
    measured_used: set[int] = field(default_factory=set)

    def for_workload(self, name: str) -> list[InferenceCandidate]:
        return [c for c in self.inference if c.workload == name]


def price_of(rs: ResolvedScenario, name: str, usd: float) -> tuple[float, str]:
    """Unit price in scenario currency: the scenario's override, else the catalog estimate converted
    (an entry the scenario declares in ``catalog:`` says so)."""
    sc = rs.scenario
    for key, value in sc.prices.items():
        if key.lower() == name.lower():
            return value, f"scenario override ({rs.path.name})"
    if name in rs.declared:
        return usd * sc.usd_rate, f"scenario-declared estimate ({rs.path.name} catalog:)"
    return usd * sc.usd_rate, "catalog estimate"


def server_power_w(chassis: Server, gpu: GPU, gpus: int) -> float:
    """Full-load power one server draws from the site: base + GPUs at TDP; 0 for a cloud instance,
    which runs in the provider's data centre."""
    return 0.0 if chassis.cloud else (chassis.power_units[0] + gpus * gpu.tdp_w)


def hourly_price_of(rs: ResolvedScenario, chassis: Server) -> tuple[float | None, str]:
    """A cloud instance type's price per hour in scenario currency (``prices:`` overrides it by the
    instance's name) and its source; (None, "") for a server to buy."""
    if chassis.hourly_usd is None:
        return None, ""
    return price_of(rs, chassis.name, chassis.hourly_usd)


def server_skus(rs: ResolvedScenario) -> dict[str, ServerSku]:
    """Every (allowed chassis, allowed GPU it takes, allowed population)."""
    out: dict[str, ServerSku] = {}
    for chassis in rs.servers.values():
        c_price, c_src = price_of(rs, chassis.name, chassis.base_usd)
        hourly, h_src = hourly_price_of(rs, chassis)
        for gname in chassis.compatible_gpus:
            gpu = rs.gpus.get(gname)
            if gpu is None:
                continue
            g_price, g_src = price_of(rs, gpu.name, gpu.price.usd)
            if hourly is not None:  # rented: nothing is bought, the GPUs are in the hourly price
                c_price = g_price = 0.0
            for k in sorted(chassis.allowed_populations):
                key = f"{chassis.name}/{gpu.name}/{k}"
                src = (f"cloud instance: {h_src}, {hourly:g} per hour ({chassis.price_as_of})" if hourly is not None
                       else f"chassis: {c_src} ({chassis.price_as_of}); GPU: {g_src} ({gpu.price.as_of})")
                out[key] = ServerSku(key=key, chassis=chassis, gpu=gpu, gpus=k, chassis_price=c_price,
                                     gpu_price=g_price, power_w=server_power_w(chassis, gpu, k),
                                     price_source=src, hourly_price=hourly)
    return _distinct(out)


def _distinct(skus: dict[str, ServerSku]) -> dict[str, ServerSku]:
    """Drop SKUs identical to another in everything the plan depends on (GPU, GPU count, price,
    power, rack units): e.g. 4 GPUs in a 4-slot or an 8-slot PCIe chassis at the same price. The
    fully populated chassis is kept (it alone may join a multi-server job), then the first by name.
    Fewer twin SKUs make the MIP smaller and its search less symmetric."""
    kept: dict[tuple[str, int, float, float, int, float], ServerSku] = {}
    for sku in sorted(skus.values(), key=lambda s: (s.gpus < s.chassis.gpu_slots, s.key)):
        kept.setdefault((sku.gpu.name, sku.gpus, sku.unit_price, sku.power_w, sku.rack_units,
                          -1.0 if sku.hourly_price is None else sku.hourly_price), sku)
    return {s.key: s for s in sorted(kept.values(), key=lambda s: s.key)}


def _tp_ok(arch: ModelArch, tp: int, sku: ServerSku) -> bool:
    return (arch.num_attention_heads % tp == 0 and tp <= sku.gpus
            and tp <= sku.gpu.interconnect.domain_size)


def _pp_servers(tp: int, pp: int, sku: ServerSku, allow_across: bool) -> int | None:
    """Servers one replica occupies, or None when the layout is not allowed. Inside one server
    the footprint tp x pp is a power of two dividing the server's GPU count (TP_DEGREES)."""
    f = tp * pp
    if f <= sku.gpus:
        return 1 if sku.gpus % f == 0 and not f & (f - 1) else None
    if allow_across and tp == sku.gpus:
        return pp
    return None


#: What a replica's capacity depends on within one build_candidates call (the efficiency of a GPU
#: is fixed there), besides the model (the outer key of the memo): GPU, TP, PP, precision, KV
#: dtype, I, O, KV tokens, TTFT/TPOT targets, max_num_seqs, headroom, confidence, EP, DP, tail
#: targets, shared prefix (tokens, hit rate).
PerfKey = tuple[str, int, int, str, str, int, int, int, float | None, float | None, int, float, float, int,
                int, TailTargets, tuple[int, float]]
#: One sized layout of a workload: GPU, TP, PP, precision, EP, DP.
LayoutKey = tuple[str, int, int, str, int, int]
PerfMemo = dict[ModelArch, dict[PerfKey, ReplicaPerf]]


def inference_candidates(rs: ResolvedScenario, w: InferenceWorkload, arch: ModelArch,
                         skus: dict[str, ServerSku], out: CandidateSet,
                         efficiency: dict[str, Efficiency], calibration: Path | None,
                         perf_memo: PerfMemo | None = None) -> None:
    """Candidates and rejections of one inference workload, appended to ``out`` in the fixed
    order of the grid (SKU, precision, TP, PP).

    Each distinct (GPU, TP, PP, precision) is sized once (the same answer for every chassis
    population): memory by :func:`serving_memory` (memoised there), then capacity for all the
    fitting ones together by :func:`replica_perf_many` (numpy over the grid). ``perf_memo``
    (one per :func:`build_candidates` call, where the efficiency of each GPU is fixed) holds
    answers already computed for an identical query of another workload.
    """
    sc = rs.scenario
    kv_dtype = w.kv_dtype if w.kv_dtype != "auto" else sc.serving.kv_dtype
    settings = sc.serving.model_copy(update={"kv_dtype": kv_dtype})
    memo = ({} if perf_memo is None else perf_memo).setdefault(arch, {})
    # First pass: walk the grid, size memory, and record what to append in order; a layout's
    # SLO rejection (known only after the batch) goes where its first evaluation was.
    events: list[Rejection | tuple[str, LayoutKey, ServerSku, int]] = []
    fitting: dict[LayoutKey, tuple[GPU, ServingMemory]] = {}
    seen: set[LayoutKey] = set()

    def visit(key: LayoutKey, sku: ServerSku, n_srv: int) -> None:
        # the same GPU/layout/precision gives the same answer for every chassis population
        if key not in seen:
            seen.add(key)
            _, tp, pp, precision, ep, dp = key
            mem = _memory_fit(arch, sku.gpu, tp, pp, precision, settings, w, rs, sku, ep, dp)
            if isinstance(mem, Rejection):
                events.append(mem)
            else:
                fitting[key] = (sku.gpu, mem)
                events.append(("first", key, sku, 0))
        if key in fitting:
            events.append(("cand", key, sku, n_srv))

    for sku in skus.values():
        gpu = sku.gpu
        for precision in w.precisions:
            if not gpu.runs(precision):
                events.append(Rejection(w.name, sku.key, 0, 0, precision, "precision",
                                        f"{gpu.name} cannot run {precision} weights"))
                continue
            if kv_dtype == "fp8" and "fp8" not in gpu.tflops_dense and gpu.vendor != "NVIDIA":
                # the weights' precision is fine; the KV cache dtype is what this GPU lacks
                events.append(Rejection(
                    w.name, sku.key, 0, 0, precision, "kv_dtype",
                    f"{gpu.name} runs {precision} weights but has no fp8 KV cache (kv_dtype fp8)"))
                continue
            for tp in TP_DEGREES:
                if not _tp_ok(arch, tp, sku):
                    continue
                for pp in PP_DEGREES:
                    if pp > 1 and arch.num_layers % pp:
                        continue
                    n_srv = _pp_servers(tp, pp, sku, sc.constraints.allow_pp_across_servers)
                    if n_srv is None:
                        continue
                    visit((gpu.name, tp, pp, precision, 1, 1), sku, n_srv)
            # MoE: the EP and DP-attention + EP layouts of each TP footprint inside one server
            for footprint in TP_DEGREES:
                if _pp_servers(footprint, 1, sku, False) is None:
                    continue
                for a_tp, ep, dp in moe_layouts(arch, footprint, gpu):
                    visit((gpu.name, a_tp, 1, precision, ep, dp), sku, 1)
    buckets = w.buckets()
    by_bucket: list[dict[LayoutKey, ReplicaPerf]] = []
    if len(buckets) == 1:
        perfs = _perf_batch(arch, w, kv_dtype, fitting, rs, efficiency, calibration, memo, out.measured_used)
    else:
        model: list[dict[LayoutKey, ReplicaPerf]] = [{} for _ in buckets]
        hits: list[set[LayoutKey]] = [set() for _ in buckets]
        by_bucket = [_perf_batch(arch, w, kv_dtype, fitting, rs, efficiency, calibration, memo,
                                 out.measured_used, (i, o), model[b], hits[b])
                     for b, (i, o, _) in enumerate(buckets)]
        by_bucket, perfs = _mix_batch(arch, w, kv_dtype, fitting, rs, efficiency, calibration, model,
                                      by_bucket, hits)
    for ev in events:
        if isinstance(ev, Rejection):
            out.rejections.append(ev)
            continue
        kind, key, sku, n_srv = ev
        gpu, mem = fitting[key]
        perf = perfs[key]
        _, tp, pp, prec, ep, dp = key
        if kind == "first":
            if perf.requests_per_s <= 0 and not any(per[key].requests_per_s > 0 for per in by_bucket):
                out.rejections.append(Rejection(
                    w.name, sku.key, tp, pp, prec, "slo",
                    f"on {gpu.name} TP{tp} PP{pp}{layout_label(ep, dp)} {prec}: best TTFT {perf.ttft_ms:.0f} ms, "
                    f"TPOT {perf.tpot_ms:.1f} ms vs target {w.slo.describe()}",
                    best_ttft_ms=perf.ttft_ms, best_tpot_ms=perf.tpot_ms, ep=ep, dp=dp))
        elif perf.requests_per_s > 0 or any(per[key].requests_per_s > 0 for per in by_bucket):
            out.inference.append(InferenceCandidate(
                workload=w.name, sku=sku.key, tp=tp, pp=pp, precision=prec,
                kv_dtype=kv_dtype, servers_per_replica=n_srv, memory=mem, perf=perf, ep=ep, dp=dp,
                bucket_perf=tuple(per[key] for per in by_bucket)))



def _memory_fit(arch: ModelArch, gpu: GPU, tp: int, pp: int, precision: str,
                settings: EngineSettings, w: InferenceWorkload, rs: ResolvedScenario,
                sku: ServerSku, ep: int = 1, dp: int = 1) -> ServingMemory | Rejection:
    """The replica's memory account, or the ``memory`` rejection when one ``max_context``
    sequence does not fit (in one DP rank's cache)."""
    mem = serving_memory(arch, precision, gpu_memory_gib=gpu.memory_gib, tp=tp, pp=pp,
                         settings=settings, max_model_len=w.max_context, ep=ep, dp=dp)
    n = tp * pp * dp
    if not mem.fits or mem.kv_cache_tokens < w.max_context:
        return Rejection(
            w.name, sku.key, tp, pp, precision, "memory",
            f"{arch.name} at {precision} needs more than {gpu.name} x{n}{layout_label(ep, dp)} holds with "
            f"max_context {w.max_context}",
            need_gib=_required_bytes(mem) * n / GIB,
            have_gib=gpu.memory_gib * rs.scenario.serving.gpu_memory_utilization * n, ep=ep, dp=dp)
    return mem


def _perf_batch(arch: ModelArch, w: InferenceWorkload, kv_dtype: str,
                fitting: dict[LayoutKey, tuple[GPU, ServingMemory]],
                rs: ResolvedScenario, efficiency: dict[str, Efficiency], calibration: Path | None,
                memo: dict[PerfKey, ReplicaPerf], measured_used: set[int] | None = None,
                lengths: tuple[int, int] | None = None,
                model_out: dict[LayoutKey, ReplicaPerf] | None = None,
                measured_keys: set[LayoutKey] | None = None) -> dict[LayoutKey, ReplicaPerf]:
    """SLO capacity of every fitting layout of ``w`` (at ``lengths`` = (input, output) tokens, one
    bucket of a length mix, else the workload's own): memo hits, the rest in one
    :func:`replica_perf_many` call; then a scenario's ``measured:`` entry for a TP/PP layout
    replaces the estimate (:mod:`optimizer.sizing.measured`; its index goes to ``measured_used``,
    the layout to ``measured_keys``). ``model_out`` receives the estimates before that."""
    isl, osl = lengths or (w.input_tokens, w.output_tokens)
    sc = rs.scenario
    serving = sc.serving
    slo = w.slo
    tails, prefix = slo_tails(slo), (w.prefix.tokens, w.prefix.hit_rate) if w.prefix else (0, 0.0)
    out: dict[LayoutKey, ReplicaPerf] = {}
    todo: list[tuple[LayoutKey, PerfKey]] = []
    queries: list[PerfQuery] = []
    for key, (gpu, mem) in fitting.items():
        gname, tp, pp, precision, ep, dp = key
        mkey: PerfKey = (gname, tp, pp, precision, kv_dtype, isl, osl,
                         mem.kv_cache_tokens, slo.ttft_ms, slo.tpot_ms,
                         serving.max_num_seqs, sc.headroom, sc.confidence, ep, dp, tails, prefix)
        hit = memo.get(mkey)
        if hit is not None:
            out[key] = hit
            continue
        if gname not in efficiency:
            efficiency[gname] = plan_efficiency(gpu, serving, calibration)
        eff = efficiency[gname]
        todo.append((key, mkey))
        queries.append(perf_query(gpu, mem, key, eff, sc.confidence))
    perfs = replica_perf_many(arch, queries, kv_dtype=kv_dtype, input_tokens=isl,
                              output_tokens=osl, ttft_ms=slo.ttft_ms,
                              tpot_ms=slo.tpot_ms, max_num_seqs=serving.max_num_seqs,
                              utilization=sc.headroom, tails=tails, prefix_tokens=prefix[0],
                              prefix_hit_rate=prefix[1])
    for (key, mkey), perf in zip(todo, perfs, strict=True):
        out[key] = memo[mkey] = perf
    if model_out is not None:
        model_out.update(out)
    if rs.measured:  # the memo keeps the estimate; the measured figure is laid over it here
        targets = slo_targets(slo)
        for key in out:
            gname, tp, pp, precision, ep, dp = key
            m_i = None if ep > 1 or dp > 1 else measured_match(
                rs.measured, model=rs.models[w.name].name, gpu=gname, tp=tp, pp=pp, precision=precision,
                input_tokens=isl, output_tokens=osl, slo=targets)
            if m_i is not None:
                out[key] = with_measured(out[key], rs.measured[m_i], targets)
                if measured_used is not None:
                    measured_used.add(m_i)
                if measured_keys is not None:
                    measured_keys.add(key)
    return out


def perf_query(gpu: GPU, mem: ServingMemory, key: LayoutKey, eff: Efficiency, confidence: float) -> PerfQuery:
    """The :class:`PerfQuery` of one sized layout (``key``: GPU name, TP, PP, precision, EP, DP) at
    the scenario's confidence (the candidate table and the checker build it alike)."""
    _, tp, pp, precision, ep, dp = key
    return PerfQuery(gpu, tp, pp, precision, mem.kv_cache_tokens, eff,
                     planning_time_scale(eff.band_log_sd, confidence), ep, dp)


def mix_eval(arch: ModelArch, w: InferenceWorkload, kv_dtype: str, rs: ResolvedScenario,
             queries: Sequence[PerfQuery], buckets: Sequence[tuple[int, int, float]]) -> list[ReplicaPerf]:
    """The mix-aware evaluation (:func:`replica_perf_mix_many`) of ``queries`` on ``buckets`` at
    the workload's SLO and the scenario's serving settings (used by the candidates and the checker)."""
    sc, slo = rs.scenario, w.slo
    return replica_perf_mix_many(arch, queries, buckets=buckets, kv_dtype=kv_dtype, ttft_ms=slo.ttft_ms,
                                 tpot_ms=slo.tpot_ms, max_num_seqs=sc.serving.max_num_seqs,
                                 utilization=sc.headroom, tails=slo_tails(slo),
                                 prefix_tokens=w.prefix.tokens if w.prefix else 0,
                                 prefix_hit_rate=w.prefix.hit_rate if w.prefix else 0.0)


def servable_mix(model: Sequence[ReplicaPerf], buckets: Sequence[tuple[int, int, float]]
                 ) -> list[tuple[int, int, float]]:
    """The buckets the model can serve alone (capacity > 0), shares renormalised to sum 1: the mix
    :func:`apply_mix` evaluates (empty when no bucket can be served)."""
    kept = [b for b, p in zip(buckets, model, strict=True) if p.requests_per_s > 0]
    total = math.fsum(b[2] for b in kept)
    return [(i, o, share / total) for i, o, share in kept]


def apply_mix(model: Sequence[ReplicaPerf], perfs: Sequence[ReplicaPerf], measured: Sequence[bool],
              buckets: Sequence[tuple[int, int, float]], mixed: ReplicaPerf | None,
              ) -> tuple[tuple[ReplicaPerf, ...], ReplicaPerf]:
    """A layout's bucket capacities and its whole-mix performance on a length mix.

    ``model``: its estimate on each bucket alone; ``perfs``: the same with ``measured:`` entries
    laid over (``measured[b]`` True where bucket b's capacity is such an entry); ``mixed``: the
    mix-aware evaluation (:func:`mix_eval`) on :func:`servable_mix`, None when that is empty.

    Bucket capacities alone time-share to ``mu_ts = 1 / sum_b phi_b / mu_b`` (:func:`mix_perf`);
    the mix-aware capacity ``mu_mix`` also counts that long prompts queue ahead of short ones and
    that the decode batch mixes contexts. Where ``mu_mix < mu_ts`` every modelled bucket capacity
    is scaled by ``kappa = mu_mix / mu_ts``, so serving the mix in proportion gives exactly
    ``mu_mix``; measured capacities are not scaled, and buckets the model cannot serve stay 0
    (``mu_ts`` and ``mu_mix`` are then both taken over the servable buckets, renormalised).
    Approximation: a deployment the MIP routes only a sub-mix to is scaled with the whole
    (servable) mix's kappa. ``kappa`` is capped at 1: a mix is never credited above time-sharing.

    Returns the bucket perfs and the candidate's ``perf``: the mix-aware evaluation (latencies at
    its operating point) with the capacity of the whole mix served in proportion
    (``1 / sum_b phi_b / mu_b`` of the returned buckets; 0 when some bucket cannot be served)."""
    if mixed is None:
        return tuple(perfs), mix_perf(perfs, buckets)
    sub = servable_mix(model, buckets)
    mu_ts = mix_requests_per_s(LengthMix("mix", tuple(LengthBin(i, o, f) for i, o, f in sub)),
                               [p.requests_per_s for p in model if p.requests_per_s > 0])
    kappa = min(1.0, mixed.requests_per_s / mu_ts)
    scaled = tuple(p if hit or kappa >= 1.0 else replace(p, requests_per_s=kappa * p.requests_per_s)
                   for p, hit in zip(perfs, measured, strict=True))
    whole = mix_requests_per_s(LengthMix("mix", tuple(LengthBin(i, o, f) for i, o, f in buckets)),
                               [p.requests_per_s for p in scaled])
    return scaled, replace(mixed, requests_per_s=whole)


def _mix_batch(arch: ModelArch, w: InferenceWorkload, kv_dtype: str,
               fitting: dict[LayoutKey, tuple[GPU, ServingMemory]], rs: ResolvedScenario,
               efficiency: dict[str, Efficiency], calibration: Path | None,
               model: list[dict[LayoutKey, ReplicaPerf]],
               perfs: list[dict[LayoutKey, ReplicaPerf]], measured: list[set[LayoutKey]],
               ) -> tuple[list[dict[LayoutKey, ReplicaPerf]], dict[LayoutKey, ReplicaPerf]]:
    """:func:`apply_mix` for every fitting layout: the mix-aware evaluations in one
    :func:`mix_eval` call per set of servable buckets (in first-seen order, so deterministic).
    Returns the scaled bucket perfs (one dict per bucket) and each layout's whole-mix perf."""
    buckets = w.buckets()
    groups: dict[tuple[int, ...], list[LayoutKey]] = {}
    for key in fitting:
        served = tuple(b for b in range(len(buckets)) if model[b][key].requests_per_s > 0)
        if served:
            groups.setdefault(served, []).append(key)
    mixed: dict[LayoutKey, ReplicaPerf] = {}
    for keys in groups.values():
        sub = servable_mix([model[b][keys[0]] for b in range(len(buckets))], buckets)
        for k in keys:
            if k[0] not in efficiency:
                efficiency[k[0]] = plan_efficiency(fitting[k][0], rs.scenario.serving, calibration)
        queries = [perf_query(*fitting[k], k, efficiency[k[0]], rs.scenario.confidence) for k in keys]
        mixed.update(zip(keys, mix_eval(arch, w, kv_dtype, rs, queries, sub), strict=True))
    scaled: list[dict[LayoutKey, ReplicaPerf]] = [{} for _ in buckets]
    whole: dict[LayoutKey, ReplicaPerf] = {}
    for key in fitting:
        per, whole[key] = apply_mix([m[key] for m in model], [p[key] for p in perfs],
                                    [key in hit for hit in measured], buckets, mixed.get(key))
        for b, p in enumerate(per):
            scaled[b][key] = p
    return scaled, whole


def slo_tails(slo: SLO) -> TailTargets:
    """The p90/p99 targets of a workload's SLO, for :func:`replica_perf_many`."""
    return TailTargets(slo.ttft_p90_ms, slo.ttft_p99_ms, slo.tpot_p90_ms, slo.tpot_p99_ms)


def mix_perf(perfs: Sequence[ReplicaPerf], buckets: Sequence[tuple[int, int, float]]) -> ReplicaPerf:
    """One replica on a length mix, from its performance on each bucket alone (``buckets`` are
    (input, output, share), shares summing to 1).

    Time-sharing, as Mélange plans a GPU's load over request sizes (Griggs et al. 2024, Sec. 4):
    a replica at its SLO capacity ``mu_b`` on each bucket spends ``share_b / mu_b`` seconds per
    request of the mix on bucket b, so it serves ``1 / sum_b share_b / mu_b`` requests/s of the mix
    (``optimizer.sizing.lengths.mix_requests_per_s``; 0 when a bucket cannot meet the SLO here).
    Latencies are the worst bucket's that can be served, batch and limit the largest bucket's;
    offline throughput is time-weighted by output tokens (``mix_throughput``).

    Time-sharing ignores that one replica's requests share a decode batch and a prefill queue
    (long prompts queueing ahead of short ones): :func:`apply_mix` scales the bucket capacities
    down to the mix-aware evaluation where that is lower, and a candidate's ``perf`` is that
    evaluation; this function remains the time-share reference (``mu_ts``) and the fallback when
    the model can serve no bucket."""
    mix = LengthMix("workload", tuple(LengthBin(i, o, share) for i, o, share in buckets))
    served = [p for p in perfs if p.requests_per_s > 0] or list(perfs)
    main = max(zip([b[2] for b in buckets], range(len(perfs)), perfs, strict=True), key=lambda t: (t[0], -t[1]))[2]
    return replace(main, requests_per_s=mix_requests_per_s(mix, [p.requests_per_s for p in perfs]),
                   ttft_ms=max(p.ttft_ms for p in served), tpot_ms=max(p.tpot_ms for p in served),
                   output_tokens_per_s=mix_throughput(mix, [p.output_tokens_per_s for p in perfs]))


def plan_efficiency(gpu: GPU, serving: EngineSettings, calibration: Path | None) -> Efficiency:
    """Efficiency factors of ``gpu``'s family for the scenario's serving engine (its profile's
    calibration, ``EngineProfile.efficiency_engine``), with the user's calibration file if any."""
    from optimizer.engines import profile_for

    engine = profile_for(serving.engine, serving.engine_version).efficiency_engine
    return load_efficiency(gpu, engine=engine, calibration_path=calibration)


def _required_bytes(mem: ServingMemory) -> int:
    """Per-GPU bytes a replica needs to hold one max_model_len sequence besides the engine's own use."""
    return (mem.weight_bytes + mem.activation_peak_bytes + mem.non_torch_bytes + mem.cuda_graph_bytes
            + mem.kv_bytes_per_token_per_gpu * mem.max_model_len)


def finetune_flops_per_token(arch: ModelArch, method: str, checkpointing: bool) -> float:
    """Training FLOPs per token.

    Full fine-tuning: 6·N (forward 2N, backward 4N: activation and weight gradients; Kaplan et al.
    2020, Sec. 2.1). LoRA/QLoRA freeze the base, so the backward pass skips weight gradients of the
    base: 2N forward + 2N activation gradients = 4N (adapter FLOPs are negligible at small rank).
    Gradient checkpointing recomputes the forward once more: +2N (Chen et al. 2016).
    N is the active parameter count (MoE experts a token touches).
    """
    n = param_counts(arch).active
    base = 6.0 * n if method == "full" else 4.0 * n
    return base + (2.0 * n if checkpointing else 0.0)


def group_size(gpus: int, per_server: int) -> int:
    """GPUs a job is given: a power of two inside one server, whole servers beyond it."""
    if gpus <= per_server:
        n = 1
        while n < gpus:
            n *= 2
        return n
    return math.ceil(gpus / per_server) * per_server


#: Fraction of a GPU's memory a fine-tuning job's peak may use (the rest: allocator fragmentation).
FINETUNE_MEMORY_FRACTION = 0.95


def finetune_fit(arch: ModelArch, w: FinetuneWorkload, gpu: GPU, gpus: int) -> tuple[float, float]:
    """Wall-clock hours and peak GiB per GPU of job ``w`` on ``gpus`` x ``gpu`` (6N/4N FLOPs per
    token at the job's MFU; memory from ``finetune_memory``). The candidate builder and the
    solver-free checker both size jobs with this one function."""
    flops = finetune_flops_per_token(arch, w.method, w.gradient_checkpointing) * w.dataset_tokens * w.epochs
    rate = gpu.compute_tflops("bf16") * 1e12 * (w.mfu or DEFAULT_FINETUNE_MFU)
    mem = finetune_memory(arch, method=w.method, num_gpus=gpus, zero_stage=w.zero_stage,
                          micro_batch=w.micro_batch, seq_len=w.seq_len,
                          gradient_checkpointing=w.gradient_checkpointing, lora_rank=w.lora_rank)
    return flops / (rate * gpus) / 3600.0, mem.peak_bytes_per_gpu / GIB


def finetune_candidates(rs: ResolvedScenario, w: FinetuneWorkload, arch: ModelArch,
                        skus: dict[str, ServerSku], out: CandidateSet) -> None:
    """GPUs per SKU that finish the job by its deadline with memory to spare."""
    for sku in skus.values():
        gpu = sku.gpu
        one_gpu_hours, _ = finetune_fit(arch, w, gpu, 1)
        n = group_size(math.ceil(one_gpu_hours / w.deadline_hours), sku.gpus)
        cand = None
        while n <= MAX_FINETUNE_GPUS:
            hours, peak_gib = finetune_fit(arch, w, gpu, n)
            if peak_gib <= gpu.memory_gib * FINETUNE_MEMORY_FRACTION:
                cand = FinetuneCandidate(workload=w.name, sku=sku.key, gpus=n, hours=hours, peak_gib_per_gpu=peak_gib)
                break
            n = group_size(n + 1, sku.gpus)
        if cand is None:
            out.rejections.append(Rejection(w.name, sku.key, 0, 0, w.method, "memory",
                                            f"{w.method} of {arch.name} does not fit {MAX_FINETUNE_GPUS} x {gpu.name}"))
            continue
        if cand.gpus > sku.gpus and sku.gpus < sku.chassis.gpu_slots:
            continue  # partially populated chassis cannot host a multi-server job
        out.finetune.append(cand)


def fits_rack(sku: ServerSku, rack_power_kw: float, rack_units: int) -> bool:
    """Whether one server of ``sku`` fits an empty rack (its power and its height)."""
    return sku.power_w <= rack_power_kw * 1000.0 * (1 + 1e-9) and sku.rack_units <= rack_units


def rack_misfit(sku: ServerSku, rack_power_kw: float, rack_units: int) -> str:
    """Why a server fits no rack, with both numbers of each limit it breaks."""
    parts = []
    if sku.power_w > rack_power_kw * 1000.0 * (1 + 1e-9):
        parts.append(f"draws {sku.power_w / 1000:,.1f} kW, more than a rack's {rack_power_kw:g} kW")
    if sku.rack_units > rack_units:
        parts.append(f"is {sku.rack_units} U tall, more than a rack's {rack_units} U")
    return f"{sku.key} " + " and ".join(parts)


def drop_unrackable(out: CandidateSet, rack_power_kw: float, rack_units: int) -> None:
    """Take server SKUs that fit no rack on their own out of the table (more racks never help them).

    Every candidate on such a SKU becomes a ``rack`` rejection naming both numbers, so the diagnosis
    can say so when a workload has nothing left; the MIP never sees the SKU.
    """
    bad = {k: s for k, s in out.skus.items() if not fits_rack(s, rack_power_kw, rack_units)}
    if not bad:
        return
    rejected: set[tuple[str, str]] = set()
    used = [(c.workload, c.sku) for c in out.inference] + [(f.workload, f.sku) for f in out.finetune]
    for workload, key in used:
        if key in bad and (workload, key) not in rejected:
            rejected.add((workload, key))
            out.rejections.append(Rejection(workload, key, 0, 0, "", "rack",
                                            rack_misfit(bad[key], rack_power_kw, rack_units)))
    out.inference = [c for c in out.inference if c.sku not in bad]
    out.finetune = [f for f in out.finetune if f.sku not in bad]
    out.skus = {k: s for k, s in out.skus.items() if k not in bad}
    out.unrackable.update(bad)


def build_candidates(rs: ResolvedScenario) -> CandidateSet:
    """All candidates of a resolved scenario, with rejections kept for diagnosis."""
    check_engine_gpus(rs.scenario.serving.engine, rs.gpus.values())  # NPU-only engines: Ascend GPUs only
    skus = server_skus(rs)
    out = CandidateSet(skus=skus)
    calibration = rs.calibration_path
    efficiency: dict[str, Efficiency] = out.efficiency
    perf_memo: PerfMemo = {}
    # one object per distinct architecture: the memo and the sizing caches compare keys by
    # identity first, so workloads of the same model skip a field-by-field comparison
    interned: dict[ModelArch, ModelArch] = {}
    for w in rs.scenario.workloads:
        model = rs.models[w.name]
        arch = parse_config(model.config, model.name)
        out.archs[w.name] = interned.setdefault(arch, arch)
    from optimizer.sizing.parallel import size_in_workers

    sized = size_in_workers(rs, skus, out.archs, calibration, out)  # None: serial, here
    for w in rs.scenario.workloads:
        arch = out.archs[w.name]
        if isinstance(w, InferenceWorkload):
            if sized is None:
                inference_candidates(rs, w, arch, skus, out, efficiency, calibration, perf_memo)
            else:
                inference, rejections = sized[w.name]
                out.inference += inference
                out.rejections += rejections
        else:
            finetune_candidates(rs, w, arch, skus, out)
    drop_unrackable(out, rs.scenario.site.rack_power_kw, rs.scenario.site.rack_units)
    out.inference = prune_dominated(out.inference)
    return out


def serves_at_least(d: InferenceCandidate, c: InferenceCandidate) -> bool:
    """One replica of d serves at least what one of c does on every length bucket (whatever the
    routing, d can carry c's load)."""
    return all(a >= b for a, b in zip(d.bucket_rps, c.bucket_rps, strict=True))


def prune_dominated(cands: list[InferenceCandidate]) -> list[InferenceCandidate]:
    """Drop candidates another candidate of the same workload and SKU beats on every count.

    d dominates c (g: GPUs per replica, μ: requests/s a replica serves) when either

    - d uses no more GPUs per replica (and servers per replica) and μ_d ≥ μ_c; or
    - d fits in one server, g_d divides g_c and (g_c/g_d)·μ_d ≥ μ_c: across layouts (TP, PP,
      attention-DP, precision), k = g_c/g_d replicas of d fill exactly c's GPUs and serve at least
      as much.

    Any plan using c stays feasible at no higher cost with d instead (one d per c, or k d's in each
    c's GPUs): demand only gains; packing is unchanged or freer (k aligned blocks of g_d inside c's
    aligned block of g_c, footprints being powers of two); minimum replicas only gain; spread only
    improves (the k replicas sit on c's servers: a c spanning m ≥ 2 whole servers has k ≥ m
    replicas of d to put one or more on each); quote lines only fall (a one-server d needs no
    scale-out NICs, links or switch ports); servers, power, racks, budget and GPU types are
    unchanged; replicas of d beyond its bound ⌈λ/(ρ·μ_d)⌉ (or min_replicas) are never needed and
    can be dropped. So the optimal cost is unchanged; among equally cheap plans the tie-breaks now
    choose from fewer layouts (more, smaller replicas where those serve as much per GPU).

    Ties keep the first in a fixed order (fewer GPUs, fewer servers, higher capacity, then lower
    TP, precision name, DP, EP), so the table is deterministic: a candidate is only ever dropped
    for one kept before it.
    """
    groups: dict[tuple[str, str], list[InferenceCandidate]] = {}
    for c in cands:
        groups.setdefault((c.workload, c.sku), []).append(c)
    kept: list[InferenceCandidate] = []
    for group in groups.values():
        group.sort(key=lambda c: (c.gpus_per_replica, c.servers_per_replica, -c.capacity_rps, c.tp,
                                  c.precision, c.dp, c.ep))
        front: list[InferenceCandidate] = []
        for c in group:
            if not any(_dominates(d, c) for d in front):
                front.append(c)
        kept += front
    return kept


def _dominates(d: InferenceCandidate, c: InferenceCandidate) -> bool:
    """Whether d dominates c (same workload and SKU; see :func:`prune_dominated`)."""
    g_d, g_c = d.gpus_per_replica, c.gpus_per_replica
    if g_d <= g_c and d.servers_per_replica <= c.servers_per_replica and serves_at_least(d, c):
        return True
    # with a length mix, on every bucket: k replicas of d carry whatever routed mix c's replica does
    return (d.servers_per_replica == 1 and g_c % g_d == 0
            and all((g_c // g_d) * a >= b for a, b in zip(d.bucket_rps, c.bucket_rps, strict=True)))
