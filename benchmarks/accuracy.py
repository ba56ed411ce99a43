"""Accuracy of the throughput model per (GPU family, engine), and the shipped calibration files.

    python -m benchmarks.accuracy                  # shipped factors: table, targets, exit 1 if missed
    python -m benchmarks.accuracy --refit          # refit everything and print (nothing written)
    python -m benchmarks.accuracy --refit --write  # regenerate catalogs/calibration/<engine>-*.yaml

Rows: shared/calibration/trtllm-perf-overview-v1.0.yaml (Hopper, TensorRT-LLM v1.0) and
shared/calibration/published-nonhopper.yaml, each row predicted as catalogs/calibration/
published-rows.yaml says (length mix, mode, metric, scope) or excluded there with its reason.
The reserved rows (Llama-3.1-405B and Qwen3-235B of the TensorRT-LLM perf overview) are excluded
in that file and never enter a fit or this table.

Per (family, engine): rows, sources, in-sample median / p90 absolute error, leave-one-source-out
(LOSO) median / p90 (refit without each source, predict it), and ``band_log_sd`` = RMS of the LOSO
log residuals (in-sample RMS x 2 for a single-source family: ``calibration.SINGLE_SOURCE_INFLATION``).
Transfer residuals (one fitted group's factors on another group's rows) give the
``transfer_band_log_sd`` of every file. Targets: LOSO median <= 15 % for every (family, engine) with
>= 2 sources; no family's median above 25 % (in-sample for single-source families).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import yaml

from optimizer.loaders import REPO_ROOT, load_catalog
from optimizer.sizing import calibration as cal
from optimizer.sizing.perf import Efficiency

SHARED = [REPO_ROOT.parent / "shared" / "calibration", Path("/work/shared/calibration")]
LOSO_TARGET_PCT = 15.0
FAMILY_TARGET_PCT = 25.0
#: as_of written into the regenerated files (the data's date, so a refit is byte-identical).
AS_OF = "2026-11-24"
FILES = {"trtllm": "trtllm-v1.0.yaml", "vllm": "vllm-published.yaml", "sglang": "sglang-published.yaml",
         "mindie": "mindie-published.yaml"}
Group = tuple[str, str]


def shared_dir(arg: str | None = None) -> Path:
    for p in ([Path(arg)] if arg else SHARED):
        if (p / "published-nonhopper.yaml").is_file():
            return p
    raise SystemExit("shared calibration rows not found; pass --shared DIR")


def all_rows(shared: Path) -> tuple[list[cal.MappedRow], dict[str, str]]:
    catalog = load_catalog()
    rows, excluded = cal.read_published_rows(shared / "published-nonhopper.yaml", catalog)
    return cal.hopper_rows(shared / "trtllm-perf-overview-v1.0.yaml", catalog) + rows, excluded


def pct(res: float) -> float:
    """|error| in % of the measured capacity from a log residual log(measured/predicted)."""
    return abs(math.exp(-res) - 1.0) * 100.0


def p90(xs: list[float]) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = 0.9 * (len(s) - 1)
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def fit_all(rows: list[cal.MappedRow]) -> dict[Group, Efficiency]:
    """One fit per (family, engine): Hopper/trtllm from the generic prior, every other group pulled
    toward the Hopper/trtllm factors (prior weight 0.5/sqrt(n), fewer free parameters when few rows)."""
    groups = cal.group_rows(rows)
    hop = ("Hopper", "trtllm")
    effs: dict[Group, Efficiency] = {}
    base = replace(cal.PRIOR, family="Hopper", engine="trtllm")
    effs[hop] = cal.fit_mapped(groups[hop], base, prior_weight=0.0)
    for g, rs in sorted(groups.items()):
        if g == hop:
            continue
        prior = replace(effs[hop], family=g[0], engine=g[1], measured=(),
                        kv_reserve_output_fraction=cal.FIT_KV_RESERVE.get(g[1], 0.5))
        effs[g] = cal.fit_mapped(rs, prior, prior_weight=0.0 if len(rs) >= 8 else None)
    return effs


def prior_for(g: Group, effs: dict[Group, Efficiency]) -> Efficiency:
    if g == ("Hopper", "trtllm"):
        return replace(cal.PRIOR, family="Hopper", engine="trtllm")
    return replace(effs[("Hopper", "trtllm")], family=g[0], engine=g[1], measured=(),
                   kv_reserve_output_fraction=cal.FIT_KV_RESERVE.get(g[1], 0.5))


def evaluate(rows: list[cal.MappedRow], effs: dict[Group, Efficiency]) -> dict[Group, dict[str, Any]]:
    out: dict[Group, dict[str, Any]] = {}
    for g, rs in sorted(cal.group_rows(rows).items()):
        ins = [cal.log_residual(r, effs[g]) for r in rs]
        weight = 0.0 if len(rs) >= 8 else None

        def refit(train: list[cal.MappedRow], prior: Efficiency, weight: float | None = weight) -> Efficiency:
            return cal.fit_mapped(train, prior, prior_weight=weight)

        loso = cal.loso_residuals(rs, prior_for(g, effs), fit=refit)
        lres = [e for items in loso.values() for _, e in items]
        sources = sorted({r.source for r in rs})
        band = (cal.band_from_residuals(lres) if lres
                else cal.band_from_residuals(ins, inflate=cal.SINGLE_SOURCE_INFLATION))
        out[g] = {"rows": rs, "sources": sources, "in": ins, "loso": lres, "band": band,
                  "band_method": ("LOSO RMS" if lres else
                                  f"in-sample RMS x {cal.SINGLE_SOURCE_INFLATION:g} (single source)")}
    return out


def transfers(rows: list[cal.MappedRow], effs: dict[Group, Efficiency]) -> dict[str, list[float]]:
    """Residuals of every fitted group's rows under another group's factors, split by kind."""
    groups = cal.group_rows(rows)
    out: dict[str, list[float]] = {"cross_family": [], "cross_engine": []}
    for a, ea in effs.items():
        for b, rs in groups.items():
            if a == b or (a[0] != b[0] and a[1] != b[1]):
                continue
            kind = "cross_engine" if a[0] == b[0] else "cross_family"
            eff = replace(ea, family=b[0], engine=b[1],
                          kv_reserve_output_fraction=cal.FIT_KV_RESERVE.get(b[1], 0.5))
            out[kind] += [cal.log_residual(r, eff) for r in rs]
    return out


def rms(xs: list[float]) -> float:
    return math.sqrt(sum(x * x for x in xs) / len(xs)) if xs else float("nan")


def _fmt(v: float) -> str:
    return "    -  " if math.isnan(v) else f"{v:6.1f}%"


def table(ev: dict[Group, dict[str, Any]]) -> tuple[list[str], bool]:
    lines = [f"{'family':24s} {'engine':7s} {'rows':>4s} {'src':>3s} {'in med':>7s} {'in p90':>7s} "
             f"{'LOSO med':>8s} {'LOSO p90':>8s} {'band':>5s}  target"]
    ok = True
    for (fam, eng), d in ev.items():
        ins = [pct(e) for e in d["in"]]
        lo = [pct(e) for e in d["loso"]]
        im, ip = statistics.median(ins), p90(ins)
        lm, lp = (statistics.median(lo), p90(lo)) if lo else (float("nan"), float("nan"))
        if lo:
            passed = lm <= LOSO_TARGET_PCT and im <= FAMILY_TARGET_PCT
            verdict = f"{'PASS' if passed else 'FAIL'} (LOSO median <= {LOSO_TARGET_PCT:g}%)"
        else:
            passed = im <= FAMILY_TARGET_PCT
            verdict = f"{'PASS' if passed else 'FAIL'} (1 source: median <= {FAMILY_TARGET_PCT:g}%)"
        ok &= passed
        lines.append(f"{fam[:24]:24s} {eng:7s} {len(d['rows']):4d} {len(d['sources']):3d} {_fmt(im)} {_fmt(ip)} "
                     f"{_fmt(lm):>8s} {_fmt(lp):>8s} {d['band']:5.2f}  {verdict}")
    return lines, ok


def documents(rows: list[cal.MappedRow], effs: dict[Group, Efficiency], ev: dict[Group, dict[str, Any]],
              tr: dict[str, list[float]], order: tuple[str, ...], excluded: dict[str, str]
              ) -> dict[str, dict[str, Any]]:
    transfer_band = min(3.0, rms(tr["cross_family"] + tr["cross_engine"]))
    docs = {}
    for engine, name in FILES.items():
        fams: dict[str, Any] = {}
        residuals = []
        for (fam, eng), d in ev.items():
            if eng != engine:
                continue
            eff = replace(effs[(fam, eng)], band_log_sd=round(d["band"], 4))
            vals = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(eff).items()
                    if k in cal._EFF_KEYS}
            errs = [pct(e) for e in d["in"]]
            vals["fitted"] = list(cal._free_params(len(d["rows"])))
            vals["rows"] = len(d["rows"])
            vals["sources"] = d["sources"]
            vals["median_abs_pct_error"] = round(statistics.median(errs), 2)
            vals["worst_abs_pct_error"] = round(max(errs), 2)
            vals["band_method"] = d["band_method"]
            vals["note"] = (f"fitted on {len(d['rows'])} published rows ({', '.join(d['sources'])}); "
                            "rows and modes in catalogs/calibration/published-rows.yaml")
            fams[fam] = vals
            for r, e in zip(d["rows"], d["in"], strict=True):
                residuals.append({"id": r.id, "model": r.model, "gpu": r.gpu, "tp": r.tp, "pp": r.pp,
                                  "precision": r.precision, "kv_dtype": r.kv_dtype, "mode": r.mode,
                                  "lengths": r.mix.name, "metric": r.metric, "measured": round(r.measured, 3),
                                  "predicted": round(cal.predict_mapped(r, effs[(fam, eng)]), 3),
                                  "capacity_error_pct": round((math.exp(-e) - 1) * 100, 2)})
        all_err = [abs(x["capacity_error_pct"]) for x in residuals]
        # the engine-way transfer borrows the best-supported family of the engine (most rows)
        default = "Hopper" if "Hopper" in fams else max(fams, key=lambda f: (fams[f]["rows"], f), default="Hopper")
        docs[name] = {
            "about": f"Efficiency factors of procure's throughput model for engine {engine!r}, one set per "
                     "GPU family with published rows. Regenerate with `python -m benchmarks.accuracy --refit "
                     "--write` (all engines at once).",
            "engine": engine,
            "source": "shared/calibration/trtllm-perf-overview-v1.0.yaml, shared/calibration/published-nonhopper.yaml "
                      "(sources per family below)",
            "as_of": AS_OF,
            "method": "scipy.optimize.least_squares on log(predicted/measured) per (family, engine); >= 8 rows: "
                      f"{', '.join(cal.FIT_PARAMS)}; 3-7 rows: compute, memory_bw; 1-2 rows: one scale of both; "
                      "pulled toward the Hopper/trtllm factors with weight 0.5/sqrt(n) below 8 rows; bounds "
                      f"{cal.BOUNDS}; communication from catalogs/calibration/comm.yaml (sizing.comm)",
            "assumptions": {"rows_mapping": "catalogs/calibration/published-rows.yaml",
                            "length_mixes": "optimizer/sizing/lengths.py DATASETS",
                            "band": "band_log_sd = RMS of leave-one-source-out log residuals; single-source "
                                    f"families: in-sample RMS x {cal.SINGLE_SOURCE_INFLATION:g}"},
            "default_family": default,
            "transfer_band_log_sd": round(transfer_band, 4),
            "transfer": {"order": list(order),
                         "cross_family_rms_log": round(rms(tr["cross_family"]), 4),
                         "cross_engine_rms_log": round(rms(tr["cross_engine"]), 4),
                         "residuals": len(tr["cross_family"]) + len(tr["cross_engine"])},
            "families": fams,
            "fit": {"median_abs_pct_error": round(statistics.median(all_err), 2) if all_err else None,
                    "worst_abs_pct_error": round(max(all_err), 2) if all_err else None,
                    "residuals": residuals},
            "excluded": dict(sorted(excluded.items())),
            "measured": [],
        }
    return docs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", help="folder with the shared calibration rows")
    ap.add_argument("--refit", action="store_true", help="fit the factors on the rows first")
    ap.add_argument("--write", action="store_true", help="with --refit: write the shipped calibration files")
    args = ap.parse_args(argv)
    rows, excluded = all_rows(shared_dir(args.shared))
    if args.refit:
        effs = fit_all(rows)
    else:
        effs = {}
        for g in cal.group_rows(rows):
            f = cal.load_calibration(cal.default_calibration_path(g[1]))
            effs[g] = f.families[g[0]]
    ev = evaluate(rows, effs)
    tr = transfers(rows, effs)
    order = ("engine", "family") if rms(tr["cross_family"]) <= rms(tr["cross_engine"]) else ("family", "engine")
    lines, ok = table(ev)
    print("\n".join(lines))
    print(f"transfer residuals (log, RMS): cross-family same engine {rms(tr['cross_family']):.2f} "
          f"({len(tr['cross_family'])}), cross-engine same family {rms(tr['cross_engine']):.2f} "
          f"({len(tr['cross_engine'])}); fallback order {' then '.join(order)}; "
          f"transfer band {min(3.0, rms(tr['cross_family'] + tr['cross_engine'])):.2f}")
    print(f"rows fitted: {len(rows)}; excluded: {len(excluded)} (reasons in published-rows.yaml)")
    print(f"targets: LOSO median <= {LOSO_TARGET_PCT:g}% for every (family, engine) with >= 2 sources; "
          f"no family median above {FAMILY_TARGET_PCT:g}%: {'PASS' if ok else 'FAIL'}")
    if args.refit and args.write:
        root = cal.default_calibration_path("trtllm").parent
        for name, doc in documents(rows, effs, ev, tr, order, excluded).items():
            (root / name).write_text(yaml.safe_dump(doc, sort_keys=False, width=110), encoding="utf-8")
            print(f"wrote {root / name}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
