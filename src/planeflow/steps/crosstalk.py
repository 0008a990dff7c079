"""crosstalk: the crosstalk coefficient per plane separation, from the registered binaries
(``volume.crosstalk: subtract`` only; see docs/volume.md).

Reads a sample of frames of every plane's registered binary (memory-mapped), turns each
plane's frames into activity once (:func:`planeflow.core.volume.activity_frames`), moves each
source plane's activity onto each target plane's recorded pixels with the two planes' rigid
offsets, and measures the slope of the target's activity on the source's at the source's
most active pixels (:func:`planeflow.core.volume.crosstalk_pair`), pooled over plane pairs
and parts (:func:`planeflow.core.volume.crosstalk_table`). Writes one table
(``coefficients.tsv``); rule crosstalk_subtract removes the ``significant`` separations from
the binaries before detection.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np

from planeflow.core import volume as vol
from planeflow.io.planefiles import check_binary, load_ops, open_binary
from planeflow.io.tables import is_true, read_tsv, write_tsv

log = logging.getLogger("planeflow")

#: spatial high-pass of the activity (Gaussian sigma, in cell diameters): keeps the fine
#: structure where crosstalk (same recorded pixel) and shared tissue (plane offset) differ
HIGHPASS = 1 / 3
#: suite2p 1.1.0's default ROI diameter (``suite2p.default_settings()["diameter"]``), used when
#: neither the config's suite2p settings nor the sessions sheet give one
DEFAULT_DIAMETER = 12.0

#: columns of the table, in order; rule crosstalk_subtract takes out the ``significant`` rows
COLUMNS = ("separation", "coefficient", "uncertainty", "pair_min", "pair_max", "null_mean", "null_std",
           "n_pixels", "n_plane_pairs", "pairs", "significant")


def read_table(path: str) -> dict:
    """separation -> coefficient of the rows to subtract (the significant ones)."""
    return {int(r["separation"]): float(r["coefficient"]) for r in read_tsv(path) if is_true(r["significant"])}


def session_diameter(value) -> float:
    """The session's ROI diameter (px) from its suite2p ``diameter`` setting (a number, a
    [y, x] pair, or None for suite2p's default)."""
    if value is None:
        return DEFAULT_DIAMETER
    return float(np.mean(np.ravel(np.asarray(value, float))))


def offsets(ops: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A plane's rigid registration offsets per frame (zeros when it was not registered)."""
    y, x = ops.get("yoff"), ops.get("xoff")
    if y is None or x is None or len(y) != n:
        return np.zeros(n), np.zeros(n)
    return np.asarray(y, float).ravel(), np.asarray(x, float).ravel()


def _activity(path: str, ops: dict, start: int, stop: int, sigma: float, threads: int = 1) -> np.ndarray:
    """Activity (:func:`planeflow.core.volume.activity_frames`) of frames ``start:stop`` of a
    binary, converted to float32 once, straight from the memory map."""
    mm = open_binary(path, ops)
    try:
        return vol.activity_frames(mm[start:stop], sigma, threads)
    finally:
        del mm


def tissue_offsets(ops: dict) -> np.ndarray | None:
    """Plane offsets (rows = plane index) from the registered mean images of ``ops`` ({plane
    index: ops}; :func:`planeflow.core.volume.plane_offsets`), None when a plane has none or
    the planes differ in size."""
    idx = sorted(ops)
    means = [ops[i].get("meanImg") for i in idx]
    if any(m is None for m in means) or len({np.shape(m) for m in means}) != 1 or idx != list(range(len(idx))):
        return None
    rows = vol.plane_offsets([np.asarray(m, float) for m in means])
    return np.array([[r["dy_px"], r["dx_px"]] for r in rows])


def _measure_pair(act: dict, offs: dict, lag: dict, tissue, diameter: float, tgt: int, tgt_t: np.ndarray,
                  src: int) -> dict:
    """One pair of :func:`measure_pairs`: the source's activity moved onto the target's recorded
    pixels, measured (``lag`` keeps the lag sums of a source that is not moved)."""
    S = vol.source_in_target(act[src], *offs[src], *offs[tgt])
    if S is act[src] and src not in lag:       # not moved (same offsets every frame)
        lag[src] = vol.half_lag_sums(S.reshape(len(S), -1))
    res = vol.crosstalk_pair(S, act[tgt], diameter, src_lag=lag[src] if S is act[src] else None, tgt_t=tgt_t)
    if tissue is not None:  # where the same tissue lies, relative to the recorded pixel
        rec = np.array([np.median(offs[src][a] - offs[tgt][a]) for a in (0, 1)])
        res["tissue_px"] = float(np.abs(tissue[tgt] - tissue[src] - rec).max())
    return res


def measure_pairs(parts: list[dict], options: dict, threads: int = 1) -> dict:
    """Every plane pair's coefficient of crosstalk from the registered binaries
    (:func:`planeflow.core.volume.crosstalk_pair`). ``parts``: per plane and part (session
    order) ``plane_index, part, ops, bin``; ``options``: ``crosstalk_max_separation``,
    ``crosstalk_frames`` and the session's ``diameter`` (its suite2p setting; None = suite2p's
    default). Returns ``pairs`` ({(source, target): [result per part]}), ``nplanes``,
    ``frames`` (sampled per plane) and ``diameter``. ``threads``: each plane's activity is
    filtered in that many blocks of frames at once, and the sources of one target are measured
    that many at a time (each holds a moved copy of its source; the results do not depend on it)."""
    by_part: dict = {}
    for p in parts:
        by_part.setdefault(int(p["part"]), {})[int(p["plane_index"])] = p
    nplanes = max((len(v) for v in by_part.values()), default=0)
    D = int(options["crosstalk_max_separation"])
    m = int(options["crosstalk_frames"])
    diameter = session_diameter(options.get("diameter"))
    sigma = max(1.0, diameter * HIGHPASS)
    pairs: dict = {}
    start = stop = 0
    for q_part, planes in sorted(by_part.items()):
        ops = {i: load_ops(p["ops"]) for i, p in planes.items()}
        for i, p in planes.items():
            check_binary(p["bin"], ops[i]["nframes"], ops[i]["Ly"], ops[i]["Lx"])
        n = min(int(o["nframes"]) for o in ops.values())
        start = max(0, (n - m) // 2)
        stop = min(n, start + m)
        offs = {i: tuple(a[start:stop] for a in offsets(o, int(o["nframes"]))) for i, o in ops.items()}
        tissue = tissue_offsets(ops)
        # each plane's activity is computed once and kept while a target within
        # crosstalk_max_separation still needs it (at most 2 D + 1 planes at a time)
        act: dict = {}
        lag: dict = {}      # each plane's lag-1 sums per half, for the pairs that do not move it
        for tgt in sorted(planes):
            for i in [i for i in act if i < tgt - D]:
                del act[i]
                lag.pop(i, None)
            for i in sorted(planes):
                if abs(i - tgt) <= D and i not in act:
                    act[i] = _activity(planes[i]["bin"], ops[i], start, stop, sigma, threads)
            o_t = ops[tgt]
            tgt_t = vol.pixels_by_frames(act[tgt])      # read by every source of this target

            measure = partial(_measure_pair, act, offs, lag, tissue, diameter, tgt, tgt_t)
            sources = [s for s in sorted(planes) if s != tgt and abs(tgt - s) <= D
                       and (ops[s]["Ly"], ops[s]["Lx"]) == (o_t["Ly"], o_t["Lx"])]
            if threads > 1 and len(sources) > 1:
                with ThreadPoolExecutor(min(threads, len(sources))) as pool:
                    results = list(pool.map(measure, sources))
            else:
                results = [measure(s) for s in sources]
            for src, res in zip(sources, results):
                pairs.setdefault((src, tgt), []).append(res)
                log.info("crosstalk: part %d plane index %d -> %d: %.3f (null %.3f +- %.3f, %d px)%s", q_part,
                         src, tgt, res["coefficient"], res["null_mean"], res["null_std"], res["n_pixels"],
                         "" if res.get("peak", True) else
                         f"; {res['around']:.3f} a few px away: shared tissue, not crosstalk")
            del tgt_t, results
        del act
    return dict(pairs=pairs, nplanes=nplanes, frames=stop - start, diameter=diameter)


def crosstalk(parts: list[dict], out_table: str, options: dict, threads: int = 1) -> dict:
    """``parts``: per plane and part (session order) ``plane_index, part, ops, bin`` of the
    registration outputs; ``options``: ``crosstalk_max_separation``, ``crosstalk_frames``,
    ``crosstalk_min`` (the config's ``volume`` group) and the session's ``diameter`` (its
    suite2p setting; None = suite2p's default); ``threads``: as :func:`measure_pairs`."""
    t0 = time.time()
    found = measure_pairs(parts, options, threads)
    pairs, nplanes = found["pairs"], found["nplanes"]
    rows = vol.crosstalk_table(pairs, int(options["crosstalk_max_separation"]), nplanes,
                               float(options["crosstalk_min"]))
    write_tsv(out_table, rows, COLUMNS)
    sub = {r["separation"]: round(r["coefficient"], 4) for r in rows if r["significant"]}
    log.info("crosstalk: %d planes, %d frames sampled, %d plane pairs, diameter %.1f px; subtracted %s in %.1f s",
             nplanes, found["frames"], sum(len(v) for v in pairs.values()), found["diameter"], sub or "nothing",
             time.time() - t0)
    return dict(rows=rows, subtracted=sub, diameter=found["diameter"])
