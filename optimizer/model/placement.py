"""Turn counts into numbered servers in numbered racks, with replicas on GPU slots.

The MIP decides how many servers of each SKU to buy (and how many of them sit in each rack) and
how many replicas of each candidate to run; this module numbers the servers and puts every replica
on GPU slots of one of them, so that

- packing: the GPUs of a server are used at most once, each replica on an *aligned* block of
  ``gpus`` adjacent slots (a TP group on neighbouring GPUs);
- whole-server items (cross-server PP replicas, fine-tuning groups larger than a server:
  ``whole_servers > 1``) take that many empty servers;
- spread: every workload with min_replicas ≥ 2 whose replicas all sit on one SKU has replicas on at
  least two servers (replicas on two SKUs are on two servers already, and so is one replica that
  spans two whole servers).

Racks are left as the MIP chose them: servers of one SKU are interchangeable for rack power and
rack units, so which replica goes to which server of a SKU never changes rack feasibility. Each SKU
is therefore placed on its own.

Two passes per SKU:

1. A fast greedy pass (decreasing size; spread workloads first, each replica to the server holding
   the fewest of its workload, then the roomiest; others best-fit; then a one-swap repair). It
   usually succeeds, and its result is verified, never trusted.
2. When the greedy pass leaves a spread workload on one server (or anything unplaced), an exact
   CP-SAT model over counts: y[τ, j] replicas of item type τ = (workload, layout, gpus) on server j,
   Σ_j y[τ, j] = count(τ), Σ_τ gpus_τ·y[τ, j] ≤ G, and b[w, j] ≤ Σ_{τ of w} y[τ, j] with
   Σ_j b[w, j] ≥ 2 for the spread workloads. Whole-server items are taken out first (they need
   empty servers, and servers of a SKU are interchangeable, so any of them will do). Symmetry
   breaking: servers are ordered by non-increasing load, which every solution satisfies after
   renumbering. The model is solved deterministically (1 worker, fixed seed, a deterministic-time
   limit, no wall-clock limit).

Why the count model is exact: footprints are powers of two (TP ∈ {1, 2, 4, 8} times PP ∈ {1, 2,
4}; fine-tuning groups are rounded to powers of two inside a server; any other size is refused as
unplaceable, not guessed at). A server whose items sum to at most G is filled by taking its items
in decreasing size, each on the lowest aligned free block: before an item of size t every earlier
item has a size that is a multiple of t, so the used slots are exactly the prefix [0, used) with
``used`` a multiple of t, and the block [used, used + t) is aligned and free. So the per-server
sums are the only packing condition, CP-SAT searches all of them, and its verdict (a placement, or
a proof that none exists) is a verdict on the real problem. Only an exhausted deterministic-time
limit leaves the question open; that is reported as such.

A proof that none exists means the MIP's aggregate rows admitted counts no numbered servers can
hold: add_spread's row on every SKU is only necessary (n ≥ 2 where a workload must spread), e.g.
two 4-GPU servers with one TP2 replica and three spread workloads of two 1-GPU replicas each
(tests/model/test_placement.py, ``COUNTER``). It is raised as ``PlacementError`` naming the SKU,
and the pipeline re-solves with that SKU's exact named-server rows (model/pipeline.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from optimizer.errors import PlacementError, SolverError
from optimizer.schema.plan import PlacedReplica, PlacedServer

# CP-SAT work limit in deterministic seconds: reproducible on every machine, unlike wall time.
# Placement models are tiny (types x servers of one SKU); this is orders of magnitude above need.
DETERMINISTIC_LIMIT = 30.0


@dataclass
class _Box:
    index: int
    sku: str
    rack: int
    slots: int
    used: list[bool] = field(default_factory=list)
    replicas: list[PlacedReplica] = field(default_factory=list)
    finetune: list[str] = field(default_factory=list)
    hosts: set[str] = field(default_factory=set)  # workloads with a replica or job here

    def free(self) -> int:
        return self.used.count(False)

    def block(self, size: int) -> list[int] | None:
        """Lowest aligned block of ``size`` free slots (keeps TP groups on adjacent GPUs), or None."""
        for start in range(0, self.slots - size + 1, size):
            if not any(self.used[start:start + size]):
                return list(range(start, start + size))
        return None

    def clear(self) -> None:
        self.used = [False] * self.slots
        self.replicas = []
        self.finetune = []
        self.hosts = set()


@dataclass(frozen=True)
class Item:
    workload: str
    sku: str
    tp: int
    pp: int
    gpus: int
    whole_servers: int  # >1: the item occupies that many whole servers (cross-server PP, big finetune)
    finetune: bool = False
    spread: bool = False  # the workload's replicas must sit on two or more servers
    ep: int = 1  # MoE layout of the replica (gpus = tp x pp x dp)
    dp: int = 1


def place(racks_by_sku: dict[str, list[int]], slots: dict[str, int], items: list[Item]) -> list[PlacedServer]:
    """Assign items to servers. ``racks_by_sku[s]`` lists the rack (1-based) of each server of SKU s.

    Raises ``SolverError`` only when no placement exists (the message says why that is a gap in
    the MIP's aggregate rows) or the exact search ran out of its deterministic limit.
    """
    boxes: list[_Box] = []
    order = sorted(((rack, sku) for sku, racks in racks_by_sku.items() for rack in racks))
    for i, (rack, sku) in enumerate(order, start=1):
        boxes.append(_Box(index=i, sku=sku, rack=rack, slots=slots[sku], used=[False] * slots[sku]))
    by_sku: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        by_sku[it.sku].append(it)
    for sku in sorted(by_sku):
        pool = [b for b in boxes if b.sku == sku]
        its = by_sku[sku]
        need = spread_needed(items, sku)
        if not _greedy(pool, its, need):
            for b in pool:
                b.clear()
            _exact(pool, its, need, sku)
    return [PlacedServer(index=b.index, sku=b.sku, rack=b.rack, replicas=b.replicas, finetune=b.finetune,
                         free_gpus=b.free()) for b in boxes]


def spread_needed(items: list[Item], sku: str) -> set[str]:
    """Workloads that must find two servers *within* SKU ``sku``: spread, all replicas on ``sku``,
    and no replica spanning two or more whole servers (which is two servers by itself)."""
    skus: dict[str, set[str]] = defaultdict(set)
    wide: set[str] = set()
    for it in items:
        if it.spread:
            skus[it.workload].add(it.sku)
            if it.whole_servers > 1:
                wide.add(it.workload)
    return {w for w, s in skus.items() if s == {sku} and w not in wide}


# --- pass 1: greedy ---------------------------------------------------------------------------


def _greedy(pool: list[_Box], items: list[Item], need: set[str]) -> bool:
    """Decreasing size with spread ordering and one-swap repair; False if anything is left unmet."""
    rank: dict[int, int] = {}
    seen: dict[str, int] = {}
    for i, it in enumerate(items):
        rank[i] = seen.get(it.workload, 0)
        seen[it.workload] = rank[i] + 1
    # Within a size, the replicas of workloads that must spread go first, taken in turns (every
    # workload's first replica, then every second one, ...), each to the roomiest server not yet
    # holding that workload; the rest go best-fit.
    order = sorted(range(len(items)), key=lambda i: (-items[i].whole_servers, -items[i].gpus,
                                                    items[i].workload not in need, rank[i], items[i].workload))
    for item in (items[i] for i in order):
        if item.whole_servers > 1:
            empty = [b for b in pool if b.free() == b.slots][: item.whole_servers]
            if len(empty) < item.whole_servers:
                return False
            for b in empty:
                _record(b, item, list(range(b.slots)))
            continue
        fits = [b for b in pool if b.block(item.gpus) is not None]
        if not fits:
            return False
        if item.workload in need:
            same = {b.index: sum(1 for r in b.replicas if r.workload == item.workload) for b in fits}
            best = min(fits, key=lambda b: (same[b.index], -b.free(), b.index))
        else:
            best = min(fits, key=lambda b: (b.free(), b.index))
        gpus = best.block(item.gpus)
        assert gpus is not None
        _record(best, item, gpus)
    _repair_spread(pool, need)
    return all(sum(1 for b in pool if w in b.hosts) >= 2 for w in need)


def _repair_spread(pool: list[_Box], need: set[str]) -> None:
    """Swap equal-size replicas between servers until every spread workload has two hosts.

    A swap exchanges which workload runs on two equal GPU blocks, so packing is unchanged; it is
    taken only if the other workload keeps two hosts (or does not need them).
    """
    for w in sorted(need):
        homes = [b for b in pool if w in b.hosts]
        if len(homes) != 1:
            continue
        home = homes[0]
        mine = [r for r in home.replicas if r.workload == w]
        if len(mine) < 2:
            continue
        done = False
        for other in (b for b in pool if b is not home):
            for rep in mine:
                for swap in other.replicas:
                    if swap.workload == w or len(swap.gpus) != len(rep.gpus):
                        continue
                    if swap.workload in need and not _keeps_two(pool, swap, other, home):
                        continue
                    home.replicas[home.replicas.index(rep)] = swap.model_copy(update={"gpus": rep.gpus})
                    other.replicas[other.replicas.index(swap)] = rep.model_copy(update={"gpus": swap.gpus})
                    for b in (home, other):
                        b.hosts = {r.workload for r in b.replicas} | set(b.finetune)
                    done = True
                    break
                if done:
                    break
            if done:
                break


def _keeps_two(pool: list[_Box], moving: PlacedReplica, source: _Box, dest: _Box) -> bool:
    """Would ``moving``'s workload still be on two servers after leaving ``source`` for ``dest``?"""
    w = moving.workload
    stays = sum(1 for r in source.replicas if r.workload == w) > 1
    hosts = {b.index for b in pool if w in b.hosts and (b is not source or stays)} | {dest.index}
    return len(hosts) >= 2


# --- pass 2: exact CP-SAT over counts ---------------------------------------------------------


def _exact(pool: list[_Box], items: list[Item], need: set[str], sku: str) -> None:
    """Place one SKU's items exactly (see the module docstring), or raise SolverError."""
    wide = [it for it in items if it.whole_servers > 1]
    rest = [it for it in items if it.whole_servers <= 1]
    taken = sum(it.whole_servers for it in wide)
    g = pool[0].slots if pool else 0
    if taken > len(pool) or any(it.gpus > g or it.gpus & (it.gpus - 1) for it in rest):
        raise _no_placement(sku, pool, items, need)
    wide.sort(key=lambda it: (-it.whole_servers, it.workload, it.tp, it.pp, it.dp, it.ep))
    free = list(pool)
    for it in wide:
        for b in free[: it.whole_servers]:
            _record(b, it, list(range(b.slots)))
        free = free[it.whole_servers:]

    counts: dict[Item, int] = defaultdict(int)
    for it in rest:
        counts[it] += 1
    types = sorted(counts, key=lambda it: (-it.gpus, it.workload, it.tp, it.pp, it.finetune, it.dp, it.ep))
    m = len(free)
    if not types:
        if need:
            raise _no_placement(sku, pool, items, need)
        return
    if m == 0:
        raise _no_placement(sku, pool, items, need)
    model = cp_model.CpModel()
    y = {(k, j): model.new_int_var(0, min(counts[t], g // t.gpus), f"y[{k},{j}]")
         for k, t in enumerate(types) for j in range(m)}
    for k, t in enumerate(types):
        model.add(sum(y[k, j] for j in range(m)) == counts[t])
    load = [sum(t.gpus * y[k, j] for k, t in enumerate(types)) for j in range(m)]
    for j in range(m):
        model.add(load[j] <= g)
    for j in range(m - 1):  # servers are interchangeable: number them by non-increasing load
        model.add(load[j] >= load[j + 1])
    for w in sorted(need):
        mine = [k for k, t in enumerate(types) if t.workload == w]
        hosts = []
        for j in range(m):
            host = model.new_bool_var(f"b[{w},{j}]")
            model.add(host <= sum(y[k, j] for k in mine))
            hosts.append(host)
        model.add(sum(hosts) >= 2)
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    solver.parameters.max_deterministic_time = DETERMINISTIC_LIMIT
    status = solver.solve(model)
    if status == cp_model.INFEASIBLE:
        raise _no_placement(sku, pool, items, need)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise SolverError(f"placement of {len(items)} items on {len(pool)} {sku} servers was not decided within "
                          f"{DETERMINISTIC_LIMIT:g} deterministic seconds of CP-SAT ({solver.status_name(status)})")
    for j, box in enumerate(free):
        here = [t for k, t in enumerate(types) for _ in range(solver.value(y[k, j]))]
        for t in here:  # already in decreasing size: each takes the lowest aligned block (prefix)
            gpus = box.block(t.gpus)
            if gpus is None:  # impossible for power-of-two sizes summing to at most G (docstring)
                raise SolverError(f"server {box.index} has no aligned block of {t.gpus} GPUs")
            _record(box, t, gpus)


def _no_placement(sku: str, pool: list[_Box], items: list[Item], need: set[str]) -> PlacementError:
    sizes: dict[tuple[str, int, int], int] = defaultdict(int)
    for it in items:
        sizes[(it.workload, it.gpus, it.whole_servers)] += 1
    what = ", ".join(f"{n} x {w} ({g} GPUs{f' x {k} servers' if k > 1 else ''})"
                     for (w, g, k), n in sorted(sizes.items()))
    g = pool[0].slots if pool else 0
    spread = f"; on two servers each: {', '.join(sorted(need))}" if need else ""
    return PlacementError(
        f"no placement exists for the {len(pool)} {sku} servers ({g} GPUs each) the MIP chose: {what}{spread}. "
        "The MIP's aggregate rows (GPU packing, and the necessary spread row of add_spread) admitted server "
        "and replica counts that no assignment to numbered servers can meet; the pipeline re-solves with "
        "this SKU's exact spread rows.", sku=sku)


def _record(box: _Box, item: Item, gpus: list[int]) -> None:
    for i in gpus:
        box.used[i] = True
    box.hosts.add(item.workload)
    if item.finetune:
        box.finetune.append(item.workload)
    else:
        box.replicas.append(PlacedReplica(workload=item.workload, tp=item.tp, pp=item.pp, ep=item.ep, dp=item.dp,
                                          gpus=gpus))
