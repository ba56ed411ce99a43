"""Collective communication time inside one scale-up domain, as it is measured.

Every collective is an alpha-beta ("latency-bandwidth", Hockney 1994) model per interconnect
profile and rank count, fitted to measured tables (``catalogs/calibration/comm.yaml``, derived by
``benchmarks/aiconfigurator_comm.py`` from NVIDIA AIConfigurator's nccl/custom-all-reduce data,
or taken from the cited rccl-tests / HCCL figures)::

    all-reduce  T(S, n) = alpha_n + 2 (n-1)/n * S / busBW_n
    all-to-all  T(S, n) = alpha_n +   (n-1)/n * S / busBW_n     S = bytes each rank sends (all peers)
    p2p         T(S)    = alpha   +             S / BW

``S`` is the message (buffer) size per rank in bytes, as nccl-tests' ``size`` column; the
``2 (n-1)/n`` and ``(n-1)/n`` factors are nccl-tests' bus-bandwidth conventions
(NVIDIA/nccl-tests ``doc/PERFORMANCE.md``: ``busBw = algBw x 2(n-1)/n`` for all-reduce,
``x (n-1)/n`` for all-to-all), so ``busBW`` compares across rank counts and with the link rate.
``alpha`` dominates decode messages (tens of KB to a few MB: a few to tens of us), ``busBW``
prefill ones (hundreds of MB).

Rank counts between two measured ones interpolate ``alpha`` and ``busBW`` linearly in ``n``.
Beyond the largest measured count ``n_max`` (a GB200 NVL72 TP16, say), ``busBW`` stays at
``n_max``'s (the bus bandwidth of a ring or switch all-reduce does not grow with ranks) and
``alpha`` grows in proportion to ``n - 1`` (a ring all-reduce takes ``2 (n-1)`` steps, each
paying a hop latency: NCCL ring algorithm, nccl-tests PERFORMANCE.md); below the smallest,
``n_min``'s figures are used. One rank costs nothing.

A GPU maps to a profile by name (the ``gpus`` list of each profile in comm.yaml) while its catalog
interconnect kind and link rate are the profile's; any other GPU (a user catalog) takes the
profile of the same interconnect kind whose link rate is nearest its own, with ``busBW`` scaled
by the ratio of the link rates (``scaled_from`` says so).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from optimizer.errors import CatalogError, UsageError
from optimizer.schema.base import Strict
from optimizer.schema.catalog import GPU

COMM_FILE = "comm.yaml"


# ------------------------------------------------------------------------------------------
# comm.yaml schema (a catalog boundary: unknown keys rejected)
# ------------------------------------------------------------------------------------------


class RankFit(Strict):
    """One alpha-beta fit: ``latency_us`` (alpha) and ``bus_bw_gb_s`` (busBW, 10**9 B/s)."""

    ranks: int = Field(ge=2)
    latency_us: float = Field(ge=0)
    bus_bw_gb_s: float = Field(gt=0)
    fit_error: float | None = Field(default=None, ge=0, description="median |relative error| of the fit")
    max_error: float | None = Field(default=None, ge=0, description="worst |relative error| of the fit")
    points: int | None = Field(default=None, ge=0, description="measured sizes fitted")
    implementation: str = ""


class ProfileEntry(Strict):
    kind: Literal["nvlink", "pcie", "infinity-fabric", "hccs", "mlu-link"]
    link_gb_s: float = Field(gt=0, description="the catalog link rate the figures belong to")
    gpus: list[str]
    basis: Literal["measured", "estimate"]
    source: str
    note: str = ""
    allreduce: list[RankFit] = Field(min_length=1)
    alltoall: list[RankFit] = Field(default_factory=list)
    p2p: RankFit | None = None


class CommFile(Strict):
    source: dict[str, str | int | float | list[str]]
    as_of: str
    method: str
    profiles: dict[str, ProfileEntry]


# ------------------------------------------------------------------------------------------
# Profiles
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlphaBeta:
    ranks: int
    latency_s: float
    bus_bw: float                # bytes/s


@dataclass(frozen=True)
class CommProfile:
    """Measured collective costs of one interconnect (see the module doc). ``scaled_from`` is
    set when the figures were borrowed from another profile and scaled by link rate."""

    name: str
    kind: str
    basis: str
    allreduce: tuple[AlphaBeta, ...]
    alltoall: tuple[AlphaBeta, ...]
    p2p: AlphaBeta
    scaled_from: str = ""


def _fits(rows: list[RankFit], scale: float) -> tuple[AlphaBeta, ...]:
    return tuple(AlphaBeta(r.ranks, r.latency_us * 1e-6, r.bus_bw_gb_s * 1e9 * scale)
                 for r in sorted(rows, key=lambda r: r.ranks))


def _profile(name: str, e: ProfileEntry, scale: float = 1.0, scaled_from: str = "") -> CommProfile:
    ar = _fits(e.allreduce, scale)
    # No all-to-all table: the all-reduce's alpha and busBW (an all-reduce is a reduce-scatter plus
    # an all-gather, each moving (n-1)/n of the buffer like one all-to-all; an estimate).
    a2a = _fits(e.alltoall, scale) if e.alltoall else ar
    # No p2p table: a send is one hop of the ring, the 2-rank all-reduce's alpha and busBW (estimate).
    p2p = _fits([e.p2p], scale)[0] if e.p2p is not None else ar[0]
    return CommProfile(name=name, kind=e.kind, basis=e.basis, allreduce=ar, alltoall=a2a, p2p=p2p,
                       scaled_from=scaled_from)


@lru_cache(maxsize=8)
def _load(path: Path) -> CommFile:
    from optimizer.loaders import read_yaml

    raw = read_yaml(path, CatalogError)
    try:
        return CommFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise CatalogError(err["msg"], file=str(path), field=".".join(str(p) for p in err["loc"])) from exc


def comm_file(path: Path | None = None) -> CommFile:
    """The parsed comm.yaml (cached; default ``catalog_root()/calibration/comm.yaml``)."""
    if path is None:
        from optimizer.loaders import catalog_root

        path = catalog_root() / "calibration" / COMM_FILE
    return _load(path)


def comm_profile(gpu: GPU, path: Path | None = None) -> CommProfile:
    """The :class:`CommProfile` of ``gpu``'s scale-up interconnect (by name, else by kind and
    nearest link rate, scaled; see the module doc)."""
    return _profile_for(gpu.name, gpu.interconnect.kind, gpu.interconnect.bandwidth_gb_s, path)


@lru_cache(maxsize=256)
def _profile_for(name: str, kind: str, link_gb_s: float, path: Path | None) -> CommProfile:
    f = comm_file(path)
    for pname, e in f.profiles.items():
        # a listed GPU whose catalog entry still has the profile's interconnect (an edited
        # catalog entry, say an H100 moved to PCIe, falls through to the kind rule below)
        if name in e.gpus and e.kind == kind and math.isclose(e.link_gb_s, link_gb_s):
            return _profile(pname, e)
    same = [(abs(e.link_gb_s - link_gb_s), pname, e) for pname, e in f.profiles.items() if e.kind == kind]
    if not same:
        raise CatalogError(f"no communication profile for GPU {name!r} (interconnect {kind!r})",
                           file=str(path or COMM_FILE),
                           hint="add the GPU to a profile's gpus list in catalogs/calibration/comm.yaml")
    _, pname, e = min(same, key=lambda t: (t[0], t[1]))
    return _profile(pname, e, scale=link_gb_s / e.link_gb_s, scaled_from=pname)


# ------------------------------------------------------------------------------------------
# Collective times
# ------------------------------------------------------------------------------------------


def _check(nbytes: float, ranks: int) -> None:
    if ranks < 1:
        raise UsageError(f"ranks must be >= 1, got {ranks}", field="ranks")
    if not nbytes >= 0:  # also rejects NaN
        raise UsageError(f"message size must be >= 0 bytes, got {nbytes}", field="message_bytes")


def coefficients(table: tuple[AlphaBeta, ...], ranks: int) -> tuple[float, float]:
    """``(alpha_s, busBW_bytes_per_s)`` at ``ranks`` from a table sorted by ranks (the
    interpolation / extrapolation rule of the module doc)."""
    lo = table[0]
    if ranks <= lo.ranks:
        return lo.latency_s, lo.bus_bw
    hi = table[-1]
    if ranks >= hi.ranks:
        return hi.latency_s * (ranks - 1) / (hi.ranks - 1), hi.bus_bw
    for a, b in itertools.pairwise(table):
        if a.ranks <= ranks <= b.ranks:
            w = (ranks - a.ranks) / (b.ranks - a.ranks)
            return a.latency_s + w * (b.latency_s - a.latency_s), a.bus_bw + w * (b.bus_bw - a.bus_bw)
    raise AssertionError("unreachable: table sorted by ranks")


def ring_allreduce_s(alpha_s: float, bus_bw: float, message_bytes: float, ranks: int) -> float:
    """``alpha + 2 (n-1)/n x S / busBW`` (0 for one rank): the all-reduce form, on coefficients
    already looked up (:func:`coefficients`); :mod:`optimizer.sizing.perf` keeps them per
    deployment and evaluates this same expression (its array path too, term for term)."""
    if ranks <= 1:
        return 0.0
    return alpha_s + 2.0 * (ranks - 1) / ranks * message_bytes / bus_bw


def alltoall_form_s(alpha_s: float, bus_bw: float, bytes_per_rank: float, ranks: int) -> float:
    """``alpha + (n-1)/n x S / busBW`` (0 for one rank): the all-to-all form on looked-up coefficients."""
    if ranks <= 1:
        return 0.0
    return alpha_s + (ranks - 1) / ranks * bytes_per_rank / bus_bw


def send_s(alpha_s: float, bw: float, message_bytes: float) -> float:
    """``alpha + S / BW``: the point-to-point form on looked-up coefficients."""
    return alpha_s + message_bytes / bw


def allreduce_s(profile: CommProfile, message_bytes: float, ranks: int) -> float:
    """One all-reduce of ``message_bytes`` per rank over ``ranks`` GPUs:
    ``alpha_n + 2 (n-1)/n S / busBW_n`` (0 for one rank)."""
    _check(message_bytes, ranks)
    if ranks == 1:
        return 0.0
    alpha, bus = coefficients(profile.allreduce, ranks)
    return ring_allreduce_s(alpha, bus, message_bytes, ranks)


def alltoall_s(profile: CommProfile, bytes_per_rank: float, ranks: int) -> float:
    """One all-to-all where each rank sends ``bytes_per_rank`` in all (``1/n`` of it to each rank,
    its own share included, as nccl-tests' alltoall ``size``): ``alpha_n + (n-1)/n S / busBW_n``."""
    _check(bytes_per_rank, ranks)
    if ranks == 1:
        return 0.0
    alpha, bus = coefficients(profile.alltoall, ranks)
    return alltoall_form_s(alpha, bus, bytes_per_rank, ranks)


def p2p_s(profile: CommProfile, message_bytes: float) -> float:
    """One point-to-point send of ``message_bytes`` between two GPUs: ``alpha + S / BW``."""
    _check(message_bytes, 2)
    return send_s(profile.p2p.latency_s, profile.p2p.bus_bw, message_bytes)


__all__ = [
    "AlphaBeta",
    "CommFile",
    "CommProfile",
    "allreduce_s",
    "alltoall_form_s",
    "alltoall_s",
    "coefficients",
    "comm_file",
    "comm_profile",
    "p2p_s",
    "ring_allreduce_s",
    "send_s",
]
