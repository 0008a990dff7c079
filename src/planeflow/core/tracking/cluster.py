"""CellReg's clustering of cells across sessions: at most one cell per session in a cluster.

1. **Initial clustering**: candidate pairs from the most to the least likely (``P_same``); two
   clusters are joined when the pair reaches the threshold and they hold no common session.
2. **Refinement** (CellReg's iterative procedure with its *maximal similarity* criterion): every
   cell goes to the cluster it is most similar to (its highest ``P_same`` with a member of
   another session). Below the threshold it leaves its cluster for one of its own; above it, it
   moves there, or takes the place of the cluster's cell of its session if it is more similar to
   the cluster than that cell (which then starts a cluster of its own). Repeated until nothing
   changes (at most :data:`MAX_ITERATIONS` rounds).
"""
from __future__ import annotations

import numpy as np

MAX_ITERATIONS = 10


def _similarity(cell, members, p_of) -> float:
    """Highest P_same of ``cell`` (session, index) with a member of another session."""
    best = 0.0
    for m in members:
        if m[0] != cell[0]:
            best = max(best, p_of.get((cell, m), 0.0))
    return best


def cluster(n_cells: list[int], pairs: list[tuple], threshold: float) -> list[dict]:
    """Clusters of cells: ``n_cells`` cells per session, ``pairs`` (session a, index a,
    session b, index b, p_same); returns one dict per cluster, session -> cell index."""
    p_of = {}
    for sa, ia, sb, ib, p in pairs:
        a, b = (sa, ia), (sb, ib)
        p_of[(a, b)] = p_of[(b, a)] = max(p, p_of.get((a, b), 0.0))
    of = {(s, i): (s, i) for s, n in enumerate(n_cells) for i in range(n)}   # cell -> cluster key
    members = {k: {k} for k in of}
    for sa, ia, sb, ib, p in sorted(pairs, key=lambda r: -r[4]):
        if p < threshold:
            break
        ka, kb = of[(sa, ia)], of[(sb, ib)]
        if ka == kb or {m[0] for m in members[ka]} & {m[0] for m in members[kb]}:
            continue
        for m in members[kb]:
            of[m] = ka
        members[ka] |= members.pop(kb)
    neighbours = {}
    for a, b in p_of:
        neighbours.setdefault(a, set()).add(b)
    for _ in range(MAX_ITERATIONS):
        if not _refine(of, members, neighbours, p_of, threshold):
            break
    out = []
    for k in sorted(members, key=lambda k: min(members[k])):
        out.append({s: i for s, i in members[k]})
    return out


def _refine(of, members, neighbours, p_of, threshold) -> int:
    """One round of the refinement; the number of changes."""
    changes = 0
    for cell in sorted(of):
        own = of[cell]
        options = {of[n] for n in neighbours.get(cell, ())} | {own}
        sims = {k: _similarity(cell, members[k], p_of) for k in options}
        best = max(sorted(options), key=lambda k: sims[k])
        if sims[best] < threshold:
            if len(members[own]) > 1:
                _move(cell, None, of, members)
                changes += 1
            continue
        if best == own:
            continue
        incumbent = next((m for m in members[best] if m[0] == cell[0]), None)
        if incumbent is not None:
            if sims[best] <= _similarity(incumbent, members[best] - {incumbent}, p_of):
                continue
            _move(incumbent, None, of, members)
        _move(cell, best, of, members)
        changes += 1
    return changes


def _move(cell, target, of, members) -> None:
    """``cell`` out of its cluster into ``target`` (None: a new cluster of its own)."""
    members[of[cell]].discard(cell)
    if not members[of[cell]]:
        del members[of[cell]]
    if target is None:
        target = cell
        while target in members:          # a fresh key
            target = (target[0], target[1], len(members))
        members[target] = set()
    members[target].add(cell)
    of[cell] = target


def scores(clusters: list[dict], pairs: list[tuple]) -> dict:
    """Each clustered cell's match score: its mean P_same with the other members of its
    cluster (a member it was never compared with counts 0); NaN for a cell alone."""
    p_of = {}
    for sa, ia, sb, ib, p in pairs:
        p_of[((sa, ia), (sb, ib))] = p_of[((sb, ib), (sa, ia))] = p
    out = {}
    for c in clusters:
        cells = list(c.items())
        for s, i in cells:
            others = [p_of.get(((s, i), (t, j)), 0.0) for t, j in cells if t != s]
            out[(s, i)] = float(np.mean(others)) if others else float("nan")
    return out
