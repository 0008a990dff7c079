"""crosstalk: the crosstalk coefficient per plane separation, from the registered binaries
(``volume.crosstalk: subtract`` only; see docs/volume.md).

Reads a sample of frames of every plane's registered binary (memory-mapped), moves each
source plane onto each target plane's recorded pixels with the two planes' rigid offsets,
and measures the slope of the target's activity on the source's at the source's most active
pixels (:func:`planeflow.core.volume.crosstalk_pair`), pooled over plane pairs and parts
(:func:`planeflow.core.volume.crosstalk_table`). Writes one table; rule crosstalk_subtract
removes the ``subtracted`` separations from the binaries before detection.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from planeflow.core import volume as vol
from planeflow.io.atomic import save_text
from planeflow.io.planefiles import check_binary, load_ops

log = logging.getLogger("planeflow")

#: spatial high-pass of the activity (Gaussian sigma, in cell diameters): keeps the fine
#: structure where crosstalk (same recorded pixel) and shared tissue (plane offset) differ
HIGHPASS = 1 / 3

#: columns of the table, in order
COLUMNS = ("separation", "coefficient", "pair_min", "pair_max", "null_mean", "null_std", "n_pixels",
           "n_plane_pairs", "significant", "subtracted")


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (float, np.floating)):
        return "" if not np.isfinite(v) else f"{float(v):.4g}"
    return str(v)


def write_table(path: str, rows: list[dict]) -> None:
    save_text(path, "\t".join(COLUMNS) + "\n"
              + "".join("\t".join(_fmt(r.get(c)) for c in COLUMNS) + "\n" for r in rows))


def read_table(path: str) -> dict:
    """separation -> coefficient of the rows to subtract."""
    import csv

    with open(path) as fh:
        return {int(r["separation"]): float(r["coefficient"]) for r in csv.DictReader(fh, delimiter="\t")
                if r["subtracted"] == "true"}


def offsets(ops: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A plane's rigid registration offsets per frame (zeros when it was not registered)."""
    y, x = ops.get("yoff"), ops.get("xoff")
    if y is None or x is None or len(y) != n:
        return np.zeros(n), np.zeros(n)
    return np.asarray(y, float).ravel(), np.asarray(x, float).ravel()


def _frames(path: str, ops: dict, start: int, stop: int) -> np.ndarray:
    mm = np.memmap(path, dtype=np.int16, mode="r", shape=(int(ops["nframes"]), int(ops["Ly"]), int(ops["Lx"])))
    out = np.asarray(mm[start:stop], np.float32)
    del mm
    return out


def crosstalk(parts: list[dict], out_table: str, options: dict) -> dict:
    """``parts``: per plane and part (session order) ``plane_index, part, ops, bin`` of the
    registration outputs; ``options``: the config's ``volume`` group."""
    t0 = time.time()
    by_part: dict = {}
    for p in parts:
        by_part.setdefault(int(p["part"]), {})[int(p["plane_index"])] = p
    nplanes = max((len(v) for v in by_part.values()), default=0)
    D = int(options["crosstalk_max_separation"])
    m = int(options["crosstalk_frames"])
    pairs: dict = {}
    for q_part, planes in sorted(by_part.items()):
        ops = {i: load_ops(p["ops"]) for i, p in planes.items()}
        for i, p in planes.items():
            check_binary(p["bin"], ops[i]["nframes"], ops[i]["Ly"], ops[i]["Lx"])
        n = min(int(o["nframes"]) for o in ops.values())
        start = max(0, (n - m) // 2)
        stop = min(n, start + m)
        for tgt in sorted(planes):
            o_t = ops[tgt]
            diameter = float(np.mean(o_t.get("diameter", 12) or 12))
            sigma = max(1.0, diameter * HIGHPASS)
            T = vol.activity_frames(_frames(planes[tgt]["bin"], o_t, start, stop), sigma)
            yt, xt = offsets(o_t, int(o_t["nframes"]))
            for src in sorted(planes):
                if src == tgt or abs(tgt - src) > D:
                    continue
                o_s = ops[src]
                if (o_s["Ly"], o_s["Lx"]) != (o_t["Ly"], o_t["Lx"]):
                    continue
                ys, xs = offsets(o_s, int(o_s["nframes"]))
                S = vol.source_in_target(_frames(planes[src]["bin"], o_s, start, stop),
                                         ys[start:stop], xs[start:stop], yt[start:stop], xt[start:stop])
                res = vol.crosstalk_pair(vol.activity_frames(S, sigma), T, diameter)
                pairs.setdefault((src, tgt), []).append(res)
                log.info("crosstalk: part %d plane index %d -> %d: %.3f (null %.3f +- %.3f, %d px)", q_part,
                         src, tgt, res["coefficient"], res["null_mean"], res["null_std"], res["n_pixels"])
                del S
            del T
    rows = vol.crosstalk_table(pairs, D, nplanes, float(options["crosstalk_min"]))
    for r in rows:
        r["subtracted"] = r["significant"]
    write_table(out_table, rows)
    sub = {r["separation"]: round(r["coefficient"], 4) for r in rows if r["subtracted"]}
    log.info("crosstalk: %d planes, %d frames sampled; subtracted %s in %.1f s", nplanes, stop - start,
             sub or "nothing", time.time() - t0)
    return dict(rows=rows, subtracted=sub)
