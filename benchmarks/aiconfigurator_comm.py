"""Derive procure's collective-communication profiles from NVIDIA AIConfigurator's measured tables.

AIConfigurator (Apache-2.0; ``pip install aiconfigurator-core``) ships, per system, nccl-tests-style
measurements: ``systems/data/<system>/comm/nccl/<ver>/nccl_perf.parquet`` (NCCL all_reduce,
all_gather, alltoall, reduce_scatter; columns ``num_gpus``, ``message_size``, ``latency``) and
``systems/data/<system>/comm/<engine>/<ver>/custom_allreduce_perf.parquet`` (the engine's own
all-reduce kernel). Units, read from the package: ``message_size`` is an ELEMENT count (its
``perf_database._factor_message_size`` "factor an element count"; the models pass
``tokens x hidden``), ``latency`` is in milliseconds (nccl-tests prints us; the table's 2-rank
1 KB figure, ~0.006, is 6 us), ``nccl_dtype``/``allreduce_dtype`` half/bfloat16 = 2 bytes.

Per profile and rank count this fits ``T(S) = alpha + c S`` (``S`` bytes per rank) by weighted
least squares on relative error (minimise ``sum ((alpha + c S_i) / T_i - 1)^2``) over messages
from 16 KiB (a decode step's activations) to 256 MiB (a long prefill chunk), and reports busBW
by the nccl-tests conventions (``doc/PERFORMANCE.md``): all-reduce ``c = 2 (n-1)/n / busBW``,
all-to-all ``c = (n-1)/n / busBW``. The all-reduce curve fitted is the lower envelope of NCCL and
the TensorRT-LLM custom all-reduce at each size (TensorRT-LLM's ``AllReduceStrategy.AUTO`` picks
the faster per size; AIConfigurator models TRT-LLM's TP all-reduces with the custom table).
p2p: AIConfigurator has no p2p table; a 2-rank all_gather of ``2 S`` is one send of ``S`` each way.

Run (any env with aiconfigurator-core, pandas, pyarrow, numpy, pyyaml; never procure's own env)::

    /tmp/aicvenv/bin/python benchmarks/aiconfigurator_comm.py            # print the fits
    /tmp/aicvenv/bin/python benchmarks/aiconfigurator_comm.py --write    # and write comm.yaml
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

OUT = Path(__file__).resolve().parents[1] / "catalogs" / "calibration" / "comm.yaml"
ELEM_BYTES = 2                       # half / bfloat16 rows
FIT_RANGE = (16 * 1024, 256 * 1024 * 1024)   # bytes per rank fitted
PKG = "aiconfigurator-core"

#: profile -> (AIConfigurator system, NCCL version dir, TRT-LLM comm version dir, catalog link GB/s)
MEASURED = {
    "nvlink3": ("a100_sxm", "2.27.3", "1.0.0", 300),
    "nvlink4": ("h100_sxm", "2.27.3", "1.3.0rc20", 450),
    "nvlink5": ("b200_sxm", "2.29.2", "1.3.0rc20", 900),
    "pcie-gen4": ("l40s", "2.27.3", "1.3.0rc20", 32),
    "pcie-gen5": ("rtx_pro_6000_server", "2.29.2", "1.3.0rc20", 64),
}


def data_root() -> Path:
    import aiconfigurator_core

    return Path(aiconfigurator_core.__file__).parent / "systems"


def fit(sizes: np.ndarray, times: np.ndarray) -> tuple[float, float, float, float, int]:
    """``(alpha_s, c_s_per_byte, median_rel_err, max_rel_err, n)`` of ``T = alpha + c S``."""
    keep = (sizes >= FIT_RANGE[0]) & (sizes <= FIT_RANGE[1])
    s, t = sizes[keep], times[keep]
    a = np.stack([1.0 / t, s / t], axis=1)      # rows of (alpha + c s) / t
    (alpha, c), *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
    if alpha < 0:  # latency cannot be negative: refit slope only
        alpha, c = 0.0, float(np.sum(s / t) / np.sum((s / t) ** 2))
    rel = np.abs((alpha + c * s) / t - 1.0)
    return float(alpha), float(c), float(np.median(rel)), float(np.max(rel)), len(s)


def curves(system: str, nccl_ver: str, trt_ver: str) -> dict[str, dict[int, pd.Series]]:
    """Latency (s) by bytes per rank, per op and rank count."""
    root = data_root() / "data" / system / "comm"
    nccl = pd.read_parquet(root / "nccl" / nccl_ver / "nccl_perf.parquet")
    nccl = nccl[nccl.nccl_dtype == "half"]
    out: dict[str, dict[int, pd.Series]] = {}
    for op in ("all_reduce", "alltoall", "all_gather"):
        d = nccl[nccl.op_name == op]
        out[op] = {int(n): pd.Series(g.latency.to_numpy() * 1e-3, index=g.message_size.to_numpy() * ELEM_BYTES)
                   .groupby(level=0).min() for n, g in d.groupby("num_gpus")}
    custom = pd.read_parquet(root / "trtllm" / trt_ver / "custom_allreduce_perf.parquet")
    custom = custom[custom.op_name == "all_reduce"]
    out["custom"] = {int(n): pd.Series(g.latency.to_numpy() * 1e-3, index=g.message_size.to_numpy() * ELEM_BYTES)
                     .groupby(level=0).min() for n, g in custom.groupby("num_gpus")}
    return out


def rankfit(sizes: np.ndarray, times: np.ndarray, n: int, factor: float, impl: str) -> dict[str, Any]:
    alpha, c, med, worst, pts = fit(sizes, times)
    return {"ranks": n, "latency_us": round(alpha * 1e6, 2), "bus_bw_gb_s": round(factor / c / 1e9, 2),
            "fit_error": round(med, 3), "max_error": round(worst, 3), "points": pts, "implementation": impl}


def derive(profile: str) -> dict[str, Any]:
    system, nccl_ver, trt_ver, _link = MEASURED[profile]
    cv = curves(system, nccl_ver, trt_ver)
    ar, a2a = [], []
    for n in sorted(cv["all_reduce"]):
        nc = cv["all_reduce"][n]
        cu = cv["custom"].get(n)
        env = nc if cu is None else pd.concat([nc, cu], axis=1).min(axis=1, skipna=True)
        env = env.dropna()
        ar.append(rankfit(env.index.to_numpy(float), env.to_numpy(float), n, 2 * (n - 1) / n,
                          "min(NCCL all_reduce, TRT-LLM custom all-reduce)" if cu is not None else "NCCL all_reduce"))
    for n, s in sorted(cv["alltoall"].items()):
        a2a.append(rankfit(s.index.to_numpy(float), s.to_numpy(float), n, (n - 1) / n, "NCCL alltoall"))
    ag2 = cv["all_gather"][2]
    p2p = rankfit(ag2.index.to_numpy(float) / 2, ag2.to_numpy(float), 2, 1.0,
                  "NCCL 2-rank all_gather (one send each way)")
    return {"allreduce": ar, "alltoall": a2a, "p2p": p2p,
            "source": (f"{PKG} {importlib.metadata.version(PKG)}: "
                       f"systems/data/{system}/comm/nccl/{nccl_ver}/nccl_perf.parquet"
                       f" + systems/data/{system}/comm/trtllm/{trt_ver}/custom_allreduce_perf.parquet"
                       f" (collection_meta schema_version {meta_version(system, nccl_ver)})")}


def meta_version(system: str, nccl_ver: str) -> Any:
    p = data_root() / "data" / system / "comm" / "nccl" / nccl_ver / "collection_meta.yaml"
    return yaml.safe_load(p.read_text()).get("schema_version") if p.exists() else "absent"


def scaled(base: dict[str, Any], bw_scale: float, ranks: set[int] | None = None) -> list[dict[str, Any]]:
    """Rows of ``base`` with busBW scaled (a cut or bridged link); fit errors dropped (not fitted)."""
    rows = []
    for r in base:
        if ranks is None or r["ranks"] in ranks:
            rows.append({"ranks": r["ranks"], "latency_us": r["latency_us"],
                         "bus_bw_gb_s": round(r["bus_bw_gb_s"] * bw_scale, 2), "implementation": r["implementation"]})
    return rows


def show(name: str, d: dict[str, Any]) -> None:
    for op in ("allreduce", "alltoall"):
        for r in d.get(op, []):
            err = (f"  fit median {r['fit_error']:.0%} max {r['max_error']:.0%} on {r['points']} sizes"
                   if "fit_error" in r else "")
            print(f"  {name:16s} {op:9s} n={r['ranks']}: alpha {r['latency_us']:7.1f} us  "
                  f"busBW {r['bus_bw_gb_s']:7.1f} GB/s{err}")
    if d.get("p2p"):
        r = d["p2p"]
        print(f"  {name:16s} p2p        : alpha {r['latency_us']:7.1f} us  BW    {r['bus_bw_gb_s']:7.1f} GB/s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(OUT.parents[2])}")
    args = ap.parse_args(argv)
    version = importlib.metadata.version(PKG)
    m = {p: derive(p) for p in MEASURED}
    print(f"{PKG} {version}: fit T = alpha + c S over {FIT_RANGE[0]} B .. {FIT_RANGE[1]} B per rank")
    for p, d in m.items():
        print(f"{p} ({MEASURED[p][0]}):")
        show(p, d)
    # The AIConfigurator curves themselves at decode and prefill sizes (what the fit must honour).
    print("measured all-reduce at TP4 (us): 64 KiB / 1 MiB / 16 MiB / 128 MiB per rank")
    for p in MEASURED:
        s, nv, tv, _ = MEASURED[p]
        cv = curves(s, nv, tv)
        env = pd.concat([cv["all_reduce"][4], cv["custom"].get(4, cv["all_reduce"][4])], axis=1).min(axis=1)
        print(f"  {p:10s} " + "  ".join(f"{env.get(b, float('nan')) * 1e6:9.1f}" for b in (65536, 2**20, 2**24, 2**27)))

    profiles = build_profiles(m)
    if args.write:
        doc = {
            "source": {"package": PKG, "version": version, "license": "Apache-2.0",
                       "files": [f"aiconfigurator_core/systems/data/{s}/comm/nccl/{nv}/nccl_perf.parquet; "
                                 f".../{s}/comm/trtllm/{tv}/custom_allreduce_perf.parquet"
                                 for s, nv, tv, _ in MEASURED.values()],
                       "collection_meta": "schema_version 1 (provenance: legacy)",
                       "script": "benchmarks/aiconfigurator_comm.py"},
            "as_of": dt.date.today().isoformat(),
            "method": (f"T = alpha + c S per rank count, weighted least squares on relative error over "
                       f"{FIT_RANGE[0]} B..{FIT_RANGE[1]} B per rank; busBW by nccl-tests PERFORMANCE.md "
                       "(all-reduce c = 2(n-1)/n / busBW, all-to-all c = (n-1)/n / busBW); fit_error = "
                       "median |relative error|, max_error = worst, over the fitted sizes"),
            "profiles": profiles,
        }
        header = ("# Derived by benchmarks/aiconfigurator_comm.py --write (do not edit by hand; the non-NVIDIA\n"
                  "# profiles are carried in EXTERNAL inside that script with their citations).\n")
        OUT.write_text(header + yaml.safe_dump(doc, sort_keys=False, width=110))
        print(f"wrote {OUT}")
    return 0


def entry(kind: str, link: float, gpus: list[str], basis: str, source: str, note: str,
          allreduce: list[dict[str, Any]], alltoall: list[dict[str, Any]] | None = None,
          p2p: dict[str, Any] | None = None) -> dict[str, Any]:
    e: dict[str, Any] = {"kind": kind, "link_gb_s": link, "gpus": gpus, "basis": basis, "source": source,
                         "note": note, "allreduce": allreduce}
    if alltoall:
        e["alltoall"] = alltoall
    if p2p:
        e["p2p"] = p2p
    return e


def build_profiles(m: dict[str, dict[str, Any]]) -> dict[str, Any]:
    nv3, nv4, nv5, g4, g5 = (m[k] for k in ("nvlink3", "nvlink4", "nvlink5", "pcie-gen4", "pcie-gen5"))
    p2p_scaled = lambda d, k: {**scaled([d["p2p"]], k)[0]}  # noqa: E731
    return {
        "nvlink3": entry("nvlink", 300, ["A100-SXM-80GB", "A100-SXM-40GB"], "measured", nv3["source"],
                         "HGX A100 8-GPU, NVSwitch", nv3["allreduce"], nv3["alltoall"], nv3["p2p"]),
        "nvlink3-cut": entry("nvlink", 200, ["A800-SXM-80GB"], "estimate", nv3["source"],
                             "estimate: A800 = A100 with NVLink cut to 400 of 600 GB/s bidirectional; nvlink3 "
                             "latencies, busBW x 200/300 (bandwidth-bound share of the link)",
                             scaled(nv3["allreduce"], 200 / 300), scaled(nv3["alltoall"], 200 / 300),
                             p2p_scaled(nv3, 200 / 300)),
        "nvlink4": entry("nvlink", 450, ["H100-SXM-80GB", "H200-SXM-141GB", "H20-96GB"], "measured", nv4["source"],
                         "HGX H100 8-GPU, NVSwitch; H200 and H20 have the same NVLink 4 board",
                         nv4["allreduce"], nv4["alltoall"], nv4["p2p"]),
        "nvlink4-cut": entry("nvlink", 200, ["H800-SXM-80GB"], "estimate", nv4["source"],
                             "estimate: H800 has 8 of H100's 18 NVLink 4 links (400 of 900 GB/s bidirectional); "
                             "nvlink4 latencies, busBW x 200/450",
                             scaled(nv4["allreduce"], 200 / 450), scaled(nv4["alltoall"], 200 / 450),
                             p2p_scaled(nv4, 200 / 450)),
        "nvlink5": entry("nvlink", 900, ["B200-SXM-180GB", "B300-SXM-288GB", "GB200-NVL72-186GB", "GB300-NVL72-288GB"],
                         "measured", nv5["source"],
                         "HGX B200 8-GPU; B300 and the NVL72 racks share NVLink 5 "
                         "(ranks > 8 extrapolated, comm.py rule)",
                         nv5["allreduce"], nv5["alltoall"], nv5["p2p"]),
        "nvlink-bridge-2": entry("nvlink", 300, ["H100-NVL-94GB"], "estimate", f"{nv4['source']}; {g5['source']}",
                                 "estimate: 2-card NVLink bridge (600 GB/s bidirectional) = nvlink4 at TP2 with busBW "
                                 "x 300/450; TP4/TP8 rings cross PCIe Gen5, so pcie-gen5 figures",
                                 scaled(nv4["allreduce"], 300 / 450, {2}) + scaled(g5["allreduce"], 1.0, {4, 8}),
                                 scaled(nv4["alltoall"], 300 / 450, {2}) + scaled(g5["alltoall"], 1.0, {4, 8}),
                                 p2p_scaled(nv4, 300 / 450)),
        "nvlink-bridge-4": entry("nvlink", 450, ["H200-NVL-141GB"], "estimate", f"{nv4['source']}; {g5['source']}",
                                 "estimate: 4-card NVLink bridge (900 GB/s bidirectional per GPU) = nvlink4 up to TP4; "
                                 "TP8 crosses PCIe Gen5, so pcie-gen5 figures",
                                 scaled(nv4["allreduce"], 1.0, {2, 4}) + scaled(g5["allreduce"], 1.0, {8}),
                                 scaled(nv4["alltoall"], 1.0, {2, 4}) + scaled(g5["alltoall"], 1.0, {8}),
                                 nv4["p2p"]),
        "pcie-gen4": entry("pcie", 32, ["L40S-48GB", "L20-48GB", "L4-24GB", "A10-24GB"], "measured", g4["source"],
                           "measured on AIConfigurator's 8x L40S node (PCIe Gen4 x16); its systems/l40s.yaml and "
                           "collection_meta do not state the PCIe topology. TP4/TP8 busBW (5.1/1.9 GB/s of a 32 GB/s "
                           "link) is what traffic routed through the host gives (inference, not stated by the "
                           "source); a PCIe-switch chassis with peer-to-peer would need its own measured profile (none "
                           "found). L20, L4 and A10 "
                           "(PCIe Gen4 x16) borrow it",
                           g4["allreduce"], g4["alltoall"], g4["p2p"]),
        "pcie-gen4-nop2p": entry("pcie", 32, ["RTX-4090-24GB"], "estimate", g4["source"],
                                 "estimate: GeForce drivers disable P2P, so NCCL stages every transfer in host memory "
                                 "(SHM transport); the L40S figures (busBW 2-19 GB/s of a 32 GB/s link, host-routed by "
                                 "inference) are used unchanged",
                                 g4["allreduce"], g4["alltoall"], g4["p2p"]),
        "pcie-gen5": entry("pcie", 64, ["RTX-PRO-6000-BSE-96GB", "H100-PCIe-80GB"], "measured", g5["source"],
                           "measured on 8x RTX PRO 6000 Blackwell Server (PCIe Gen5 x16); H100 PCIe (no NVLink "
                           "bridge) borrows it (AIConfigurator 0.12 ships no h100_pcie comm data)",
                           g5["allreduce"], g5["alltoall"], g5["p2p"]),
        "mlu-link": entry("mlu-link", 100, ["MLU370-X8-48GB"], "estimate", f"{MLU_LINK_SOURCE}; {g4['source']}",
                          "estimate: no published CNCL all-reduce curve found; inside the 4-card MLU-Link bridge "
                          "group busBW = 100 x 0.75 GB/s (xGMI's usable share), alpha = NVLink 4's measured alpha; "
                          "TP8 spans two bridge groups over PCIe Gen4, so pcie-gen4 figures",
                          _flat(MLU_LINK_USABLE_GB_S, _NV4_ALPHA_US, (2, 4), "CNCL (estimate)")
                          + scaled(g4["allreduce"], 1.0, {8})),
        **EXTERNAL,
    }


def _mesh(link_usable_gb_s: float, latency_us: dict[int, float], impl: str) -> list[dict[str, Any]]:
    """Full-mesh estimate: a ring of n ranks on a fully connected mesh can run over the n-1 links
    each GPU has to its peers (RCCL/HCCL open several rings), so busBW = (n-1) x usable link rate."""
    return [{"ranks": n, "latency_us": latency_us[n], "bus_bw_gb_s": round((n - 1) * link_usable_gb_s, 1),
             "implementation": impl} for n in (2, 4, 8)]


#: AMD ROCm blog "Understanding RCCL Bandwidth and xGMI Performance on AMD Instinct MI300X"
#: (2025-03-02, https://rocm.blogs.amd.com/software-tools-optimization/mi300x-rccl-xgmi/README.html):
#: xGMI is rated 64 GB/s per point-to-point link, "approximately 48 GB/s per link" usable after CRC
#: and protocol overhead (75%); 7 links per GPU, fully connected 8-GPU mesh.
XGMI_USABLE_GB_S = 48.0
#: Ascend 910B (Atlas 800T A2): HCCS full mesh, 56 GB/s per peer link (catalogs/gpus.yaml entry;
#: also https://www.meemx.com/p/hccl-contest-log-overall, an HCCL contest write-up on an 8x 910B
#: server, 392 GB/s aggregate). No published hccl_test all-reduce curve found: xGMI's 75% usable
#: share is assumed.
HCCS_USABLE_GB_S = 56.0 * 0.75
#: Ascend 910C (Atlas 800T A3 / CloudMatrix384): "over 392 GB/s of unidirectional bandwidth" per 910C
#: into the UB/HCCS switches (CloudMatrix384 paper as summarised at besthub.dev, catalog entry). A
#: switched fabric: a ring of n ranks runs over each rank's one link to the switch, so busBW = the
#: usable link rate for every n; xGMI's 75% usable share is assumed (no hccl_test curve for A3 found).
HCCS_A3_USABLE_GB_S = 392.0 * 0.75
#: Cambricon MLU370-X8: MLU-Link bridge, 200 GB/s bidirectional per card in 4-card groups (catalog entry).
MLU_LINK_USABLE_GB_S = 100.0 * 0.75
MLU_LINK_SOURCE = ("catalogs/gpus.yaml MLU370-X8-48GB (MLU-Link 200 GB/s bidirectional per card, 4-card bridge); "
                   "usable share from the AMD xGMI blog; latency: AIConfigurator h100_sxm NCCL alphas")
#: Small-message latency: no public rccl-tests / hccl_test latency curve found; the measured NVLink 4
#: alphas (AIConfigurator h100_sxm) stand in for an in-node switchless fabric (estimate).
_NV4_ALPHA_US = {2: 2.8, 4: 3.6, 8: 4.5}

def _flat(link_usable_gb_s: float, latency_us: dict[int, float], ranks: tuple[int, ...],
          impl: str) -> list[dict[str, Any]]:
    """Switched-fabric estimate: every rank has one link into the switch, so busBW = usable link rate."""
    return [{"ranks": n, "latency_us": latency_us[n], "bus_bw_gb_s": round(link_usable_gb_s, 1),
             "implementation": impl} for n in ranks]


#: Profiles AIConfigurator does not cover (estimates from the cited figures; see each note).
EXTERNAL: dict[str, Any] = {
    "infinity-fabric": entry(
        "infinity-fabric", 448, ["MI300X-192GB", "MI325X-256GB", "MI355X-288GB"], "estimate",
        "https://rocm.blogs.amd.com/software-tools-optimization/mi300x-rccl-xgmi/README.html (48 GB/s usable per "
        "xGMI link); latency: AIConfigurator h100_sxm NCCL alphas",
        "estimate: no published rccl-tests curve used; busBW = (n-1) x 48 GB/s (the n-1 mesh links a rank can use), "
        "alpha = NVLink 4's measured alpha. MI355X keeps MI300X's 8-GPU xGMI mesh (catalog)",
        _mesh(XGMI_USABLE_GB_S, _NV4_ALPHA_US, "RCCL (estimate)")),
    "hccs": entry(
        "hccs", 196, ["Ascend-910B-64GB"], "estimate",
        "catalogs/gpus.yaml Ascend-910B (56 GB/s per HCCS peer link); "
        "https://www.meemx.com/p/hccl-contest-log-overall; "
        "usable share from the AMD xGMI blog; latency: AIConfigurator h100_sxm NCCL alphas",
        "estimate: no published hccl_test all-reduce curve found; busBW = (n-1) x 56 x 0.75 GB/s on the 8-NPU "
        "full mesh, alpha = NVLink 4's measured alpha",
        _mesh(HCCS_USABLE_GB_S, _NV4_ALPHA_US, "HCCL (estimate)")),
    "hccs-a3": entry(
        "hccs", 392, ["Ascend-910C-128GB"], "estimate",
        "catalogs/gpus.yaml Ascend-910C (392 GB/s unidirectional per 910C, CloudMatrix384 paper as summarised at "
        "besthub.dev); usable share from the AMD xGMI blog; latency: AIConfigurator h100_sxm NCCL alphas",
        "estimate: no published hccl_test curve for Atlas A3 found; switched HCCS/UB, busBW = 392 x 0.75 GB/s at "
        "every rank count (one link per rank into the switch), alpha = NVLink 4's measured alpha; ranks count "
        "910C packages (two NPU dies each, joined on-package by SIO)",
        _flat(HCCS_A3_USABLE_GB_S, _NV4_ALPHA_US, (2, 4, 8), "HCCL (estimate)")),
}


if __name__ == "__main__":
    sys.exit(main())
