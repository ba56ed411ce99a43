"""One MIP column per layout across the GPU populations of a GPU type (issue #16).

A PCIe chassis may be bought with 1, 2, 4 or 8 GPUs of one type, and each population is its own
server SKU, so the candidate table holds the same layout (workload, TP, PP, DP, EP, precision,
KV dtype) once per population, with the same capacity: on the generated 20-workload benchmark 246
of 643 layouts appear on two to four SKUs (1,248 candidates in all). The MIP needs one replica
count per layout and group of interchangeable SKUs, not one per SKU, when packing is written over
the group.

A *group* is the set of single-server SKUs of one GPU type (across chassis) whose populations
are powers of two (each divides the next larger) and on which every layout has the same SLO
capacity. Footprints g_c are
powers of two too (``sizing.layout``), so items of sizes {g} pack into servers of sizes {G_s}
exactly when, for every threshold t, the items of size ≥ t fit the servers of size ≥ t::

    Σ_{c in group, g_c ≥ t} g_c·r[c] ≤ Σ_{s in group, G_s ≥ t} G_s·(n[s] − m[s])       (packing)

(m[s]: servers of s taken whole by replicas spanning servers, which stay on their own SKU).
Necessary, since an item of size g fits no server smaller than g; sufficient, since placing items
largest first leaves every server of size ≥ t with free space a multiple of t, so any item of size
t fits wherever the volume allows (first-fit decreasing on divisible sizes; Coffman, Garey &
Johnson 1987, "Bin packing with divisible item sizes", J. Complexity 3). :func:`split_replicas`
is that placement, and gives each replica the candidate of the SKU it lands on.

Groups are formed only where that is exact, so the merged MIP has the same optimum as the
per-SKU one (without spread; with it the group's spread row is necessary only, and a plan it
admits that placement cannot spread is re-solved with that SKU's exact rows, its group kept
apart: ``constraints.add_spread``): a group needs two or more SKUs, populations each dividing the next larger, no
fine-tuning candidate on it, no SKU named for the exact spread rows, and for every layout a twin
with the same capacity on every SKU of the group large enough to hold it.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from dataclasses import dataclass, field

from optimizer.errors import SolverError
from optimizer.sizing.candidates import CandidateSet, InferenceCandidate

LayoutKey = tuple[str, int, int, int, int, str, str]


def layout_key(c: InferenceCandidate) -> LayoutKey:
    return (c.workload, c.tp, c.pp, c.dp, c.ep, c.precision, c.kv_dtype)


@dataclass(frozen=True)
class Merge:
    """The MIP's candidate table and how its columns map back to the sized one."""

    cands: CandidateSet  # twins across a group's populations kept once (on its largest population)
    sized: int  # candidates in the table as sized (inference + fine-tuning), for the plan's report
    #: group key (its largest-population SKU) -> the group's SKUs, largest population first
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: grouped SKU -> its group key
    group_of: dict[str, str] = field(default_factory=dict)
    #: merged candidate index -> that layout's candidate on each SKU of its group that holds it
    twins: dict[int, dict[str, InferenceCandidate]] = field(default_factory=dict)

    @classmethod
    def none(cls, cands: CandidateSet) -> Merge:
        """No group: every candidate its own column."""
        return cls(cands=cands, sized=len(cands.inference) + len(cands.finetune))

    def bin_of(self, sku: str) -> str:
        """The packing unit a SKU belongs to: its group's key, else the SKU itself."""
        return self.group_of.get(sku, sku)


def merge_populations(cands: CandidateSet, keep_apart: frozenset[str] = frozenset()) -> Merge:
    """Merge twin candidates across each exact group (module docstring); SKUs in ``keep_apart``
    (those given the exact spread rows) are never grouped."""
    by_gpu: dict[str, list[str]] = defaultdict(list)
    for key, sku in cands.skus.items():
        if sku.hourly_price is None:
            by_gpu[sku.gpu.name].append(key)
    finetuned = {f.sku for f in cands.finetune}
    groups: dict[str, tuple[str, ...]] = {}
    for gpu in sorted(by_gpu):
        skus = sorted(by_gpu[gpu], key=lambda k: (-cands.skus[k].gpus, k))
        sizes = [cands.skus[k].gpus for k in skus]
        if (len(skus) < 2 or any(a % b for a, b in itertools.pairwise(sizes))
                or finetuned.intersection(skus) or keep_apart.intersection(skus)):
            continue
        if _twins_agree(cands, skus):
            groups[skus[0]] = tuple(skus)
    unmerged = Merge.none(cands)
    if not groups:
        return unmerged
    group_of = {s: g for g, skus in groups.items() for s in skus}
    kept: list[InferenceCandidate] = []
    twins: dict[int, dict[str, InferenceCandidate]] = {}
    slot: dict[tuple[str, LayoutKey], int] = {}
    for c in cands.inference:
        g = group_of.get(c.sku)
        if g is None or c.servers_per_replica > 1:
            kept.append(c)
            continue
        column = (g, layout_key(c))
        if column not in slot:
            slot[column] = len(kept)
            kept.append(c)
            twins[slot[column]] = {}
        twins[slot[column]][c.sku] = c
    for (g, _), i in slot.items():  # each column sits on its group's key SKU (holds every layout)
        kept[i] = twins[i][g]
    return Merge(cands=dataclasses.replace(cands, inference=kept), sized=unmerged.sized, groups=groups,
                 group_of=group_of, twins=twins)


def _twins_agree(cands: CandidateSet, skus: list[str]) -> bool:
    """Every single-server layout on these SKUs has one capacity (and per-bucket capacity) and a
    twin on every SKU that can hold its footprint, so a replica may land on any of them."""
    members = set(skus)
    seen: dict[LayoutKey, dict[str, InferenceCandidate]] = defaultdict(dict)
    for c in cands.inference:
        if c.sku in members and c.servers_per_replica == 1:
            seen[layout_key(c)][c.sku] = c
    for on in seen.values():
        first = next(iter(on.values()))
        if any(c.capacity_rps != first.capacity_rps or c.bucket_rps != first.bucket_rps for c in on.values()):
            return False
        if set(on) != {s for s in skus if cands.skus[s].gpus >= first.gpus_per_replica}:
            return False
    return True


def split_replicas(merge: Merge, chosen: list[tuple[int, InferenceCandidate, int]], servers: dict[str, int],
                   spread: set[str]) -> list[tuple[int, InferenceCandidate, int]]:
    """The chosen (merged index, candidate, replicas) re-stated per SKU: each grouped column's
    replicas placed on the group's bought servers, largest footprint first, each on the first
    server with room (first-fit decreasing: never fails when the packing rows hold), a spread
    workload's replicas preferring servers that hold none of its replicas yet; every other entry
    unchanged. Servers taken whole by multi-server replicas are left out first."""
    cands = merge.cands
    whole: dict[str, int] = defaultdict(int)
    for _, c, r in chosen:
        if c.servers_per_replica > 1:
            whole[c.sku] += c.servers_per_replica * r
    host_sku: dict[str, list[str]] = {}  # group -> the SKU of each of its servers free for singles
    room: dict[str, list[int]] = {}  # group -> each such server's free GPUs
    for g, skus in merge.groups.items():
        host_sku[g] = [s for s in skus for _ in range(servers.get(s, 0) - whole[s])]
        room[g] = [cands.skus[s].gpus for s in host_sku[g]]
    grouped = sorted(((i, c, r) for i, c, r in chosen if i in merge.twins),
                     key=lambda e: (-e[1].gpus_per_replica, e[1].workload, e[0]))
    hosts: dict[str, set[tuple[str, int]]] = defaultdict(set)  # workload -> (group, server) holding it
    landed: dict[tuple[int, str], int] = defaultdict(int)
    for i, c, r in grouped:
        group = merge.group_of[c.sku]
        for _ in range(r):
            fits = [j for j, left in enumerate(room[group]) if left >= c.gpus_per_replica]
            if not fits:
                raise SolverError(f"the packing rows of population group {group} admitted replicas "
                                  "its servers cannot hold (a bug: please report the scenario)")
            fresh = [j for j in fits if (group, j) not in hosts[c.workload]] if c.workload in spread else []
            j = (fresh or fits)[0]
            room[group][j] -= c.gpus_per_replica
            hosts[c.workload].add((group, j))
            landed[(i, host_sku[group][j])] += 1
    out: list[tuple[int, InferenceCandidate, int]] = []
    for i, c, r in chosen:
        if i not in merge.twins:
            out.append((i, c, r))
            continue
        for s in merge.groups[merge.group_of[c.sku]]:
            if landed.get((i, s)):
                out.append((i, merge.twins[i][s], landed[(i, s)]))
    return out
