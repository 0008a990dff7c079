"""crosstalk_subtract: one plane's (part's) registered binary with the crosstalk of the
other planes taken out (``volume.crosstalk: subtract``); detection reads it instead of
registration's.

For every separation rule crosstalk found ``significant`` (coefficient ``c``, source plane
= this plane minus the separation), each frame becomes ``frame - c x source frame``, the
source moved onto this plane's recorded pixels with both planes' rigid offsets
(:func:`planeflow.core.volume.source_in_target`), rounded and clipped to int16. Frames are
processed in chunks; the registered binaries are only read. With nothing to subtract
(the first plane, or no significant crosstalk) the output is a relative symbolic link to
registration's binary (:func:`link_binary`), not a copy. The ops are registration's with the new mean image and a
``crosstalk_subtracted`` entry.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from planeflow.core import volume as vol
from planeflow.io.atomic import atomic_path, save_npy
from planeflow.io.history import append_history
from planeflow.io.planefiles import check_binary, load_ops, open_binary, without_reg_metrics
from planeflow.steps.crosstalk import offsets, read_table

log = logging.getLogger("planeflow")

#: frames processed at a time
CHUNK = 500


def link_binary(src: str, tmp: Path) -> str:
    """Make ``tmp`` (atomic_path's temporary name of the output) a relative symbolic link to
    ``src``, or a copy of it where the file system has no symbolic links; returns "link" or
    "copy".

    Not a hard link: Snakemake decides what to rerun from modification times and reads an
    output's own time (a symbolic link's, not its target's). A hard link shares registration's
    time, older than the other planes' binaries this job reads, so Snakemake would rerun the
    job (and detection after it) on every run; touching it would touch registration's file.
    """
    tmp.unlink()
    try:
        os.symlink(os.path.relpath(os.path.abspath(src), os.path.dirname(os.path.abspath(tmp))), tmp)
        return "link"
    except OSError:
        shutil.copyfile(src, tmp)
        return "copy"


def crosstalk_subtract(in_ops: str, in_bin: str, table: str, sources: list[dict], out_bin: str,
                       out_ops: str) -> dict:
    """``sources``: the planes within ``volume.crosstalk_max_separation`` of this one, each
    ``separation`` (this plane's index minus the source's), ``plane``, ``ops``, ``bin``
    (their registration outputs)."""
    t0 = time.time()
    ops = load_ops(in_ops)
    n, Ly, Lx = int(ops["nframes"]), int(ops["Ly"]), int(ops["Lx"])
    check_binary(in_bin, n, Ly, Lx)
    coef = read_table(table)
    used = []
    for s in sources:
        k = int(s["separation"])
        if k not in coef:
            continue
        o = load_ops(s["ops"])
        if (int(o["Ly"]), int(o["Lx"]), int(o["nframes"])) != (Ly, Lx, n):
            log.warning("crosstalk_subtract: plane %s has another frame size or length; its crosstalk "
                        "(separation %d) is left in", s["plane"], k)
            continue
        check_binary(s["bin"], n, Ly, Lx)
        used.append(dict(separation=k, plane=int(s["plane"]), coefficient=coef[k], bin=s["bin"],
                         off=offsets(o, n)))
    yt, xt = offsets(ops, n)
    mean = np.zeros((Ly, Lx), np.float64)
    with atomic_path(out_bin) as tmp:
        if not used:
            how = link_binary(in_bin, tmp)
            log.info("crosstalk_subtract: nothing to subtract; %s to %s", "linked" if how == "link" else "copied",
                     in_bin)
            mean = np.asarray(ops.get("meanImg", mean), np.float64)
        else:
            src_mm = [open_binary(u["bin"], ops) for u in used]
            tgt_mm = open_binary(in_bin, ops)
            out_mm = open_binary(tmp, ops, mode="w+")
            for a in range(0, n, CHUNK):
                b = min(n, a + CHUNK)
                srcs = [(u["coefficient"], vol.source_in_target(mm[a:b], u["off"][0][a:b], u["off"][1][a:b],
                                                                 yt[a:b], xt[a:b]))
                        for u, mm in zip(used, src_mm)]
                out = vol.subtract_crosstalk(tgt_mm[a:b], srcs)
                out_mm[a:b] = out
                mean += out.sum(axis=0, dtype=np.float64)
            out_mm.flush()
            del out_mm, tgt_mm, src_mm
            mean /= max(n, 1)
    done = [{k: u[k] for k in ("separation", "plane", "coefficient")} for u in used]
    out = {**without_reg_metrics(ops), "meanImg": mean.astype(np.float32), "crosstalk_subtracted": done,
           "reg_file": os.path.abspath(out_bin)}
    out = append_history(out, "crosstalk_subtract", [in_ops, in_bin, table] + [u["bin"] for u in used],
                         time.time() - t0, {"subtracted": done})
    save_npy(out_ops, out)
    log.info("crosstalk_subtract: %d frames; %s in %.1f s", n,
             ", ".join(f"{u['coefficient']:.3f} x plane {u['plane']}" for u in used) or "nothing to subtract",
             time.time() - t0)
    return dict(subtracted=done)
