"""Reading one plane's frames out of raw interleaved recordings, chunk by chunk.

ScanImage writes a volumetric recording as a sequence of pages with the plane
index innermost: page ``g`` holds plane ``g % nplanes`` of volume ``g // nplanes``,
and a session may be split over several files at arbitrary page boundaries.
A reader here never holds more than one chunk in memory.
"""
from __future__ import annotations

import bisect
import re
from typing import Iterator

import numpy as np

from planeflow import PlaneflowError


def to_int16(im: np.ndarray) -> np.ndarray:
    """Convert frames to int16 exactly as suite2p's TIFF reader does (parity)."""
    if im.dtype == np.uint16 or im.dtype == np.int32:
        return (im // 2).astype(np.int16)
    if im.dtype != np.int16:
        return im.astype(np.int16)
    return im


_STAMP = re.compile(r"frameTimestamps_sec\s*=\s*([-+0-9.eE]+)")


def _timestamp(page) -> float:
    """ScanImage's per-page ``frameTimestamps_sec`` (NaN when the page has none)."""
    try:
        m = _STAMP.search(page.description or "")
    except Exception:  # noqa: BLE001 - a page without a readable description
        return float("nan")
    return float(m.group(1)) if m else float("nan")


class TiffPlaneReader:
    """Frames of one plane from interleaved multi-page TIFF files.

    ``layout`` says how pages are ordered within one volume: ``nchannels`` colour
    channels innermost (``channel`` is the one read), then ``frames_per_slice``
    frames of each plane, then the planes, then flyback pages up to
    ``pages_per_volume``. With ``average_slices`` a plane's frames of one volume are
    averaged into one frame (piezo stacks); otherwise each is a frame of its own.
    The default layout is ScanImage's plain interleave: one page per plane per volume.
    """

    def __init__(self, files: list[str], pages_per_file: list[int], nplanes: int,
                 layout: dict | None = None):
        self.files = list(files)
        self.pages_per_file = [int(n) for n in pages_per_file]
        self.nplanes = int(nplanes)
        lay = layout or {}
        self.nch = int(lay.get("nchannels", 1))
        self.channel = int(lay.get("channel", 0))
        self.fps = int(lay.get("frames_per_slice", 1))
        self.ppv = int(lay.get("pages_per_volume", self.nplanes * self.nch * self.fps))
        self.average = bool(lay.get("average_slices", False)) and self.fps > 1
        self.starts = np.concatenate([[0], np.cumsum(self.pages_per_file)]).tolist()
        self.npages = self.starts[-1]
        nvol = self.npages // self.ppv
        self.nframes = nvol if self.average else nvol * self.fps
        #: per-frame acquisition times (s) of the frames yielded so far, from ScanImage's
        #: per-page ``frameTimestamps_sec``; NaN where a page has none
        self.timestamps: list[float] = []

    def pages(self, plane: int, frames: np.ndarray) -> np.ndarray:
        """Page index of each of ``plane``'s frames (n,), or (n, frames_per_slice) when averaging."""
        frames = np.asarray(frames)
        if self.average:
            k = np.arange(self.fps)
            return (frames[:, None] * self.ppv + (plane * self.fps + k[None]) * self.nch + self.channel)
        t, k = np.divmod(frames, self.fps)
        return t * self.ppv + (plane * self.fps + k) * self.nch + self.channel

    def _locate(self, page: int) -> tuple[int, int]:
        i = bisect.bisect_right(self.starts, page) - 1
        return i, page - self.starts[i]

    def iter_frames(self, plane: int, chunk: int = 500, start: int = 0, stop: int | None = None
                    ) -> Iterator[np.ndarray]:
        """Yield (n, Ly, Lx) arrays of ``plane``'s frames ``start:stop`` in order."""
        import tifffile

        stop = self.nframes if stop is None else min(stop, self.nframes)
        open_idx, tif = None, None
        stamps: list[float] = []
        try:
            for t0 in range(start, stop, chunk):
                pidx = self.pages(plane, np.arange(t0, min(t0 + chunk, stop)))
                pages = pidx.ravel()
                parts = []
                # group the chunk's pages by file (a chunk may straddle a file boundary)
                located = [self._locate(int(p)) for p in pages]
                for fi in sorted({fi for fi, _ in located}):
                    keys = [k for f, k in located if f == fi]
                    if fi != open_idx:
                        if tif is not None:
                            tif.close()
                        tif = tifffile.TiffFile(self.files[fi])
                        open_idx = fi
                    try:
                        arr = tif.asarray(key=keys)
                    except Exception as e:  # noqa: BLE001 - any read failure is a bad file
                        raise PlaneflowError(
                            f"cannot read frames {keys[0]}..{keys[-1]} of '{self.files[fi]}' "
                            f"({type(e).__name__}: {e}). The file may be truncated or corrupt: "
                            "replace it with a complete copy."
                        ) from e
                    if arr.ndim == 2:
                        arr = arr[np.newaxis]
                    parts.append(arr)
                    stamps.extend(_timestamp(tif.pages[k]) for k in keys)
                out = parts[0] if len(parts) == 1 else np.concatenate(parts)
                first = np.asarray(stamps).reshape(pidx.shape)
                self.timestamps.extend((first[:, 0] if self.average else first).tolist())
                stamps.clear()
                if self.average:
                    out = out.reshape(pidx.shape + out.shape[1:]).mean(axis=1).round().astype(out.dtype)
                yield out
        finally:
            if tif is not None:
                tif.close()


def open_plane_reader(meta: dict):
    fmt = meta.get("format")
    if fmt == "tiff":
        return TiffPlaneReader(meta["files"], meta["pages_per_file"], meta["nplanes"], meta.get("layout"))
    if fmt in ("zarr", "hdf5"):
        from planeflow.io.arrays import ArrayPlaneReader

        return ArrayPlaneReader(meta["files"][0], meta.get("dataset"))
    raise PlaneflowError(f"session '{meta.get('session_id')}': unsupported input format '{fmt}'.")
