"""A plane's files: reading ops and arrays with one clear "damaged, rerun" error,
binary size checks, writing a plane's ROI outputs."""
from __future__ import annotations

import logging
import os
import pickle

import numpy as np

from planeflow import PlaneflowError

log = logging.getLogger("planeflow")


#: what to do about a damaged planeflow output
RERUN = "It is damaged: delete it and rerun snakemake, which remakes it."


def load_array(path, allow_pickle: bool = False, mmap_mode: str | None = None,
               advice: str = RERUN) -> np.ndarray:
    """The one reader of ``.npy`` files: a damaged or unreadable file is one clear error
    naming it, with ``advice`` on what to do."""
    try:
        return np.load(path, allow_pickle=allow_pickle, mmap_mode=mmap_mode)
    except (OSError, ValueError, EOFError, pickle.UnpicklingError) as e:
        raise PlaneflowError(f"cannot read '{path}' ({e}). {advice}") from e


#: suite2p's registration-metric arrays (regPC: 2 x 30 PCs x Ly x Lx float32, 15 MB a plane at
#: 256 px and 63 MB at 512 px; tPC). Registration's ops.npy and the final suite2p folder hold them;
#: the steps in between leave them out of the ops they write (merge takes them from registration)
REG_METRICS = ("regPC", "tPC")


def without_reg_metrics(ops: dict) -> dict:
    """``ops`` without :data:`REG_METRICS` (what a step after registration passes on)."""
    return {k: v for k, v in ops.items() if k not in REG_METRICS}


def load_ops(path) -> dict:
    """A suite2p ``ops.npy`` (a pickled dict)."""
    ops = load_array(path, allow_pickle=True)
    if ops.dtype != object or ops.ndim != 0 or not isinstance(ops.item(), dict):
        raise PlaneflowError(f"cannot read '{path}' (it holds no ops dict). {RERUN}")
    return ops.item()


def check_binary(path, nframes: int, Ly: int, Lx: int, advice: str | None = None) -> None:
    """Fail clearly when a binary's size does not match the frames its ops promise.

    ``advice``: what the user should do, when it differs from deleting the binary.
    """
    advice = advice or "Delete it and rerun snakemake; only this plane's jobs are redone."
    expected = int(nframes) * int(Ly) * int(Lx) * 2
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise PlaneflowError(f"cannot open binary '{path}' ({e}). {advice}") from e
    if size != expected:
        raise PlaneflowError(
            f"binary '{path}' has {size} bytes but its ops promise {nframes} frames of "
            f"{Ly}x{Lx} int16 ({expected} bytes): it is truncated or corrupt. {advice}"
        )


def open_binary(path, shape, mode: str = "r") -> np.memmap:
    """suite2p's binary of a plane memory-mapped: int16 frames of ``shape``, a plane's ops
    (``nframes``, ``Ly``, ``Lx``) or ``(nframes, Ly, Lx)``; ``mode="w+"`` creates it. Check a
    binary that is read with :func:`check_binary` first. (``suite2p.io.BinaryFile`` is the
    same np.memmap, but importing it loads torch and cellpose: about 1 GB and 3-4 s.)"""
    if isinstance(shape, dict):
        shape = (shape["nframes"], shape["Ly"], shape["Lx"])
    return np.memmap(path, dtype=np.int16, mode=mode, shape=tuple(int(v) for v in shape))


def full_frame_image(ops: dict, key: str) -> np.ndarray:
    """``ops[key]`` as a float32 (Ly, Lx) image. suite2p's ``max_proj`` and ``Vcorr`` cover
    only the registration crop (``yrange``, ``xrange``); they are placed back into the full
    frame, zero outside. Any other shape is a damaged ops.npy."""
    Ly, Lx = int(ops["Ly"]), int(ops["Lx"])
    img = np.asarray(ops[key], dtype=np.float32)
    if img.shape == (Ly, Lx):
        return img.copy()
    y0, y1 = (int(v) for v in ops.get("yrange", [0, Ly]))
    x0, x1 = (int(v) for v in ops.get("xrange", [0, Lx]))
    if img.shape != (y1 - y0, x1 - x0):
        raise PlaneflowError(
            f"ops['{key}'] of plane {ops.get('iplane')} ({ops.get('session_id')}) has shape {img.shape}, "
            f"neither the frame ({Ly}, {Lx}) nor the crop yrange={[y0, y1]}, xrange={[x0, x1]}: "
            "the plane's ops.npy is inconsistent. Delete its suite2p folder and rerun snakemake.")
    full = np.zeros((Ly, Lx), np.float32)
    full[y0:y1, x0:x1] = img
    return full


def save_plane_outputs(out: dict, stat, F, Fneu, spks, iscell, ops: dict, **extra) -> None:
    """Save a plane's ROI outputs (suite2p's names) atomically; ops.npy last, so a folder
    whose ops.npy exists is complete. ``extra``: more arrays by output name."""
    from planeflow.io.atomic import save_npy

    save_npy(out["stat"], np.asarray(stat, dtype=object) if len(stat) else np.array([], dtype=object))
    for name, arr in (("F", F), ("Fneu", Fneu), ("spks", spks), ("iscell", iscell), *extra.items()):
        save_npy(out[name], arr)
    save_npy(out["ops"], ops)


