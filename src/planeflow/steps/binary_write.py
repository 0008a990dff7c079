"""binary_write: one plane (part) of the raw recording into suite2p's int16 binary."""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import queue
import threading
import time

import numpy as np

from planeflow import PlaneflowError
from planeflow.progress import Progress
from planeflow.io.atomic import atomic_path, save_npy
from planeflow.core.bidiphase import apply_bidiphase
from planeflow.io.history import append_history
from planeflow.io.raw import open_plane_reader, to_int16
from planeflow.plan.session import load_metadata

log = logging.getLogger("planeflow")


def assemble_part(frames: np.ndarray, part: dict) -> np.ndarray:
    """Cut a part's tiles out of raw pages (n, H, W) and place them in the part image."""
    tiles = part["tiles"]
    Ly, Lx = part["shape"]
    if len(tiles) == 1 and tiles[0]["dst"] == [0, 0]:
        y0, y1, x0, x1 = tiles[0]["src"]
        if (y1 - y0, x1 - x0) == (Ly, Lx):
            return frames[:, y0:y1, x0:x1]
    out = np.zeros((frames.shape[0], Ly, Lx), frames.dtype)
    for t in tiles:
        y0, y1, x0, x1 = t["src"]
        dy, dx = t["dst"]
        out[:, dy:dy + y1 - y0, dx:dx + x1 - x0] = frames[:, y0:y1, x0:x1]
    return out


class _ChunkSink:
    """Writes chunks of int16 frames to ``fh`` in a background thread, with their sha256
    and per-pixel sum, while the caller reads the next chunk (file writes, hashing and
    numpy sums release the GIL, so reading and writing overlap). At most one chunk waits
    in the queue, so memory stays bounded by about three chunks. An error in the writer (e.g. disk full) is
    raised again by the next ``put`` or by ``close``.
    """

    def __init__(self, fh, shape):
        self.fh = fh
        # checksum of exactly the bytes written (raw_compress checks it before archiving)
        self.digest = hashlib.sha256()
        self.mean = np.zeros(shape, np.float64)  # the sum of all frames written
        self.frames = 0
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run, name="binary_write-sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            frames = self._queue.get()
            if frames is None:
                return
            if self.error is not None:
                continue  # drain after a failure; the caller raises it
            try:
                buf = memoryview(np.ascontiguousarray(frames)).cast("B")  # no copy
                self.fh.write(buf)
                self.digest.update(buf)
                self.mean += frames.sum(axis=0, dtype=np.float64)
                self.frames += frames.shape[0]
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                self.error = e

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, frames: np.ndarray) -> None:
        self._raise()
        self._queue.put(frames)

    def close(self) -> None:
        """Wait until every chunk is written; raise the writer's error if there was one."""
        self._queue.put(None)
        self._thread.join()
        self._raise()

    def abort(self) -> None:
        if self._thread.is_alive():
            self.error = self.error or RuntimeError("aborted")
            self._queue.put(None)
            self._thread.join()


def estimate_plane_bidiphase(reader, plane: int, bidi: dict, nsample: int = 300) -> float:
    """Scan-phase offset of ``plane`` from up to ``nsample`` frames spread over the movie."""
    from planeflow.core.bidiphase import estimate_bidiphase

    n = reader.nframes
    step = max(1, n // nsample)
    sample = []
    for start in range(0, n, step * 50):
        for frames in reader.iter_frames(plane, chunk=50, start=start, stop=min(n, start + 50 * step)):
            sample.append(frames[::step])
        if sum(len(f) for f in sample) >= nsample:
            break
    return float(estimate_bidiphase(np.concatenate(sample), max_offset=int(bidi["max_offset"]),
                                    subpixel=bool(bidi["subpixel"])))


def binary_write(metadata: str, plane: int, part: int, out_bin: str, out_ops: str,
                 chunk_frames: int = 500, chunk_mb: float | None = None) -> dict:
    """Stream ``plane``'s frames (cropped to ``part``) into ``out_bin``; write ``out_ops``.

    Frames are read and written ``chunk_frames`` at a time, fewer when ``chunk_mb`` caps
    the chunk's size, so memory stays bounded by one chunk whatever the movie length.
    Small chunks (tens of MB) are also faster than large ones: they stay in the CPU
    caches and reuse the same memory instead of faulting in new pages for every chunk.
    """
    t0 = time.time()
    meta = load_metadata(metadata)
    plane, part = int(plane), int(part)
    if not 0 <= plane < meta["nplanes"]:
        raise PlaneflowError(
            f"plane {plane} does not exist in session '{meta['session_id']}' "
            f"(nplanes={meta['nplanes']})."
        )
    region = meta["parts"][part]
    Ly, Lx = region["shape"]
    reader = open_plane_reader(meta)
    nframes = meta["nframes"]
    bidi = meta.get("bidiphase") or {}
    offset = 0.0
    if bidi.get("enabled"):
        offset = estimate_plane_bidiphase(reader, plane, bidi)
        log.info("binary_write plane %d: bidirectional phase offset %.2f px (corrected)", plane, offset)
        if hasattr(reader, "timestamps"):
            reader.timestamps = []  # keep only those of the frames written below
    if chunk_mb:
        chunk_frames = max(1, min(int(chunk_frames), int(chunk_mb * 1e6 // (Ly * Lx * 2))))
    written = 0
    progress = Progress(f"binary_write plane {plane} part {part}", nframes, unit="frames", scale=1)
    sink = None
    try:
        with atomic_path(out_bin) as tmp, open(tmp, "wb") as fh:
            sink = _ChunkSink(fh, (Ly, Lx))
            for frames in reader.iter_frames(plane, chunk=int(chunk_frames)):
                if offset:
                    frames = apply_bidiphase(frames, offset)
                sink.put(to_int16(assemble_part(frames, region)))
                written += frames.shape[0]
                progress.add(frames.shape[0])
            sink.close()
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as e:
        if e.errno == errno.ENOSPC:
            done = sink.frames if sink is not None else 0
            raise PlaneflowError(
                f"disk full while writing '{out_bin}' ({done} of {nframes} frames done). "
                "Free space on that disk or point results_dir at a larger one, then rerun."
            ) from e
        raise
    finally:
        if sink is not None:
            sink.abort()
    digest, mean = sink.digest, sink.mean
    stamps = np.asarray(getattr(reader, "timestamps", []), dtype=float)
    if written != nframes:
        raise PlaneflowError(
            f"plane {plane}: read {written} frames but the session metadata says {nframes}. "
            "The raw files changed since the metadata was cached: rerun snakemake."
        )
    duration = time.time() - t0
    ops = {
        "session_id": meta["session_id"],
        "data_path": [meta["data_path"]],
        "file_list": meta["files"],
        "input_format": meta["format"],
        "nplanes": meta["nplanes"],
        "nchannels": 1,
        "iplane": plane,
        "iroi": part,
        "nparts": len(meta["parts"]),
        "part_region": region,
        "Ly": Ly,
        "Lx": Lx,
        "nframes": nframes,
        "fs": meta["fs"],
        "dx": meta.get("dx"),
        "dy": meta.get("dy"),
        "dz": meta.get("dz"),
        "raw_file": os.path.abspath(out_bin),
        "raw_bin_checksum": {"algorithm": digest.name, "value": digest.hexdigest(),
                             "bytes": written * Ly * Lx * 2},
        "keep_movie_raw": True,
        "meanImg": (mean / max(written, 1)).astype(np.float32),
        "stack_type": meta.get("stack_type"),
        "zoom": meta.get("zoom"),
        # planeflow corrected the scan phase while writing the binary; suite2p's own
        # registration.bidiphase setting is left alone so it does not correct twice
        "bidiphase_offset": float(offset),
        "bidi_corrected": bool(offset),
    }
    if stamps.size == nframes and np.isfinite(stamps).any():
        ops["frame_timestamps"] = stamps  # s, from ScanImage's per-frame headers
    ops = append_history(ops, "binary_write", meta["files"], duration,
                         {"frames": written, "bytes": written * Ly * Lx * 2,
                          "bidiphase_offset": float(offset),
                          "MB_per_s": written * Ly * Lx * 2 / 1e6 / max(duration, 1e-9)})
    save_npy(out_ops, ops)
    log.info("binary_write plane %d part %d: %d frames of %dx%d in %.1f s",
             plane, part, written, Ly, Lx, duration)
    return ops
