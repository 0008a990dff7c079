"""Reading one plane's frames out of raw interleaved recordings, chunk by chunk.

ScanImage writes a volumetric recording as a sequence of pages with the plane
index innermost: page ``g`` holds plane ``g % nplanes`` of volume ``g // nplanes``,
and a session may be split over several files at arbitrary page boundaries.
A reader here never holds more than one chunk in memory.
"""
from __future__ import annotations

import bisect
from typing import Iterator

import numpy as np

from . import PlaneflowError


def to_int16(im: np.ndarray) -> np.ndarray:
    """Convert frames to int16 exactly as suite2p's TIFF reader does (parity)."""
    if im.dtype == np.uint16 or im.dtype == np.int32:
        return (im // 2).astype(np.int16)
    if im.dtype != np.int16:
        return im.astype(np.int16)
    return im


class TiffPlaneReader:
    """Frames of one plane from interleaved multi-page TIFF files."""

    def __init__(self, files: list[str], pages_per_file: list[int], nplanes: int):
        self.files = list(files)
        self.pages_per_file = [int(n) for n in pages_per_file]
        self.nplanes = int(nplanes)
        self.starts = np.concatenate([[0], np.cumsum(self.pages_per_file)]).tolist()
        self.npages = self.starts[-1]
        self.nframes = self.npages // self.nplanes

    def _locate(self, page: int) -> tuple[int, int]:
        i = bisect.bisect_right(self.starts, page) - 1
        return i, page - self.starts[i]

    def iter_frames(self, plane: int, chunk: int = 500, start: int = 0, stop: int | None = None
                    ) -> Iterator[np.ndarray]:
        """Yield (n, Ly, Lx) arrays of ``plane``'s frames ``start:stop`` in order."""
        import tifffile

        stop = self.nframes if stop is None else min(stop, self.nframes)
        open_idx, tif = None, None
        try:
            for t0 in range(start, stop, chunk):
                pages = plane + self.nplanes * np.arange(t0, min(t0 + chunk, stop))
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
                yield parts[0] if len(parts) == 1 else np.concatenate(parts)
        finally:
            if tif is not None:
                tif.close()


def open_plane_reader(meta: dict):
    fmt = meta.get("format")
    if fmt == "tiff":
        return TiffPlaneReader(meta["files"], meta["pages_per_file"], meta["nplanes"])
    raise PlaneflowError(f"session '{meta.get('session_id')}': unsupported input format '{fmt}'.")
