"""nwb_export: one session's suite2p results (every plane) as one NWB file, via pynwb.

Layout (names as neuroconv's suite2p interface writes them; ``<sfx>`` is empty for a
single-plane session and ``Chan1Plane<p>`` otherwise, suite2p's chan1 being the
functional channel):

* ``general/devices/Microscope`` and one ``ImagingPlane<sfx>`` per plane: rate fs,
  grid_spacing (dx, dy) and origin_coords (0, 0, p * dz) in metres;
* ``processing/ophys/ImageSegmentation/PlaneSegmentation<sfx>``: one row per stat.npy
  entry (id = index in stat.npy) with pixel_mask (x = column, y = row, weight = lam),
  ROICentroids (x, y in pixels, from stat['med']), Accepted / Rejected (iscell.npy
  column 0 after planeflow's filters) and ClassifierProbability (iscell.npy column 1);
  a plane without ROIs gets no table and no traces (an empty table is a best-practice
  violation);
* ``processing/ophys/Fluorescence``: RoiResponseSeries<sfx> (F), Neuropil<sfx> (Fneu),
  Deconvolved<sfx> (spks); ``processing/ophys/DfOverF/RoiResponseSeries<sfx>`` (dff);
  all (frames, ROIs), linked to the plane's PlaneSegmentation rows;
* ``processing/ophys/SegmentationImages``: MeanImage<sfx>, MaxProjectionImage<sfx>,
  CorrelationImage<sfx> (the last two placed back into the full frame);
* optionally ``processing/ophys/TwoPhotonSeriesRegistered<sfx>``: the registered movie,
  written a block of frames at a time from the registration binaries.

Images and the movie are stored in NWB's (x, y) axis order, i.e. transposed with
respect to suite2p's (y, x) arrays, as roiextractors writes and reads them.
"""
from __future__ import annotations

import datetime as _dt
import logging
import time
from typing import NamedTuple

import numpy as np
from hdmf.data_utils import GenericDataChunkIterator
from pynwb import NWBHDF5IO

from planeflow import PlaneflowError, __version__
from planeflow.progress import Progress
from planeflow.io.atomic import atomic_path
from planeflow.io.history import suite2p_version
from planeflow.io.planefiles import check_binary, full_frame_image, load_array, load_ops, open_binary

log = logging.getLogger("planeflow")

TRACES = (  # (file, container, series name, description, unit)
    ("F", "Fluorescence", "RoiResponseSeries", "suite2p ROI fluorescence (F.npy)", "a.u."),
    ("Fneu", "Fluorescence", "Neuropil", "suite2p neuropil fluorescence around each ROI (Fneu.npy)", "a.u."),
    ("spks", "Fluorescence", "Deconvolved", "suite2p deconvolved activity (spks.npy, OASIS)", "a.u."),
    ("dff", "DfOverF", "RoiResponseSeries", "dF/F computed by planeflow's postprocess step (dff.npy)",
     "dimensionless"),
)
#: NWB's pixel_mask element: (x, y, weight)
PIXEL_MASK_DTYPE = np.dtype([("x", np.uint32), ("y", np.uint32), ("weight", np.float32)])
#: HDF5 chunks of about this many bytes
CHUNK_BYTES = 4_000_000
#: trace buffers handed to hdf5 at a time (bytes)
TRACE_BUFFER_BYTES = 64_000_000


class TimeChunkIterator(GenericDataChunkIterator):
    """hdmf iterator over a (time, ...) dataset that reads a block of frames per step.

    ``read(t0, t1)`` returns frames t0:t1 with the full extent of the other axes; at most
    ``frames_per_buffer`` frames are read at once (HDF5 chunks hold ``frames_per_chunk``
    frames, fewer when the buffer is smaller). ``on_buffer(t0, t1, nbytes)``
    is called after each block (for progress reports).
    """

    def __init__(self, read, shape, dtype, frames_per_buffer: int, frames_per_chunk: int,
                 on_buffer=None):
        self._read = read
        self._shape = tuple(int(s) for s in shape)
        self._np_dtype = np.dtype(dtype)
        self._on_buffer = on_buffer
        nt = self._shape[0]
        if nt < 1 or any(s < 1 for s in self._shape):
            raise ValueError(f"cannot iterate over an empty dataset of shape {self._shape}")
        fb = max(1, min(int(frames_per_buffer), nt))
        fc = max(1, min(int(frames_per_chunk), fb))
        fb = fb if fb == nt else fb // fc * fc  # hdf5 chunks must tile the buffer
        super().__init__(buffer_shape=(fb, *self._shape[1:]), chunk_shape=(fc, *self._shape[1:]))

    def _get_data(self, selection):
        t = selection[0]
        block = np.ascontiguousarray(self._read(t.start, t.stop), dtype=self._np_dtype)
        if block.shape != (t.stop - t.start, *self._shape[1:]):
            raise RuntimeError(f"read {block.shape} for frames {t.start}:{t.stop}, expected "
                                 f"{(t.stop - t.start, *self._shape[1:])}")
        if self._on_buffer is not None:
            self._on_buffer(t.start, t.stop, block.nbytes)
        return block

    def _get_maxshape(self):
        return self._shape

    def _get_dtype(self):
        return self._np_dtype


def frames_per_chunk(frame_bytes: int, nframes: int) -> int:
    """Frames per HDF5 chunk: about CHUNK_BYTES, at least one frame."""
    return int(max(1, min(nframes, CHUNK_BYTES // max(1, frame_bytes))))


def _read_plane(files: dict) -> dict:
    """The plane's ops, stat, iscell and memory-mapped traces, checked against each other."""
    ops = load_ops(files["ops"])
    stat = load_array(files["stat"], allow_pickle=True)
    iscell = load_array(files["iscell"])
    traces = {k: load_array(files[k], mmap_mode="r") for k in ("F", "Fneu", "spks", "dff")}
    n = len(stat)
    if iscell.shape[0] != n:
        raise PlaneflowError(f"'{files['iscell']}' has {iscell.shape[0]} rows but '{files['stat']}' "
                             f"{n} ROIs; delete the plane's suite2p folder and rerun snakemake.")
    nframes = int(ops["nframes"])
    for k, a in traces.items():
        if a.ndim != 2 or a.shape != (n, nframes):
            raise PlaneflowError(f"'{files[k]}' has shape {a.shape}, expected ({n} ROIs, {nframes} frames) "
                                 "from stat.npy and ops.npy; delete the plane's suite2p folder and rerun "
                                 "snakemake.")
    return {"ops": ops, "stat": stat, "iscell": iscell, "traces": traces, "n": n, "nframes": nframes}


def _movie_reader(parts: list[dict], plane_shape, nframes: int):
    """read(t0, t1) -> (t, x, y) int16 frames of the registered plane, its parts in place.

    suite2p's binaries are raw int16 (frames, Ly, Lx), memory-mapped with
    :func:`planeflow.io.planefiles.open_binary`.
    """
    Ly, Lx = (int(v) for v in plane_shape)
    opened = []
    for part in parts:
        ly, lx = (int(v) for v in part["shape"])
        check_binary(part["bin"], nframes, ly, lx)
        mm = open_binary(part["bin"], (nframes, ly, lx))
        opened.append((mm, ly, lx, [int(v) for v in part["offset"]]))

    def read(t0: int, t1: int) -> np.ndarray:
        if len(opened) == 1 and (opened[0][1], opened[0][2]) == (Ly, Lx):
            block = np.asarray(opened[0][0][t0:t1])
        else:
            block = np.zeros((t1 - t0, Ly, Lx), np.int16)
            for bf, ly, lx, (oy, ox) in opened:
                block[:, oy:oy + ly, ox:ox + lx] = bf[t0:t1]
        return block.transpose(0, 2, 1)

    def close():
        for mm, *_ in opened:
            mm._mmap.close()

    return read, close


def _trace_reader(arr: np.ndarray):
    return lambda t0, t1: np.asarray(arr[:, t0:t1], dtype=np.float32).T


def _pixel_mask_columns(stat, VectorData, VectorIndex):
    """NWB's ragged pixel_mask column for suite2p ROIs: one compound array of every pixel
    (x = xpix, y = ypix, weight = lam) and the index of where each ROI ends. Built from
    arrays rather than row by row (12 bytes per pixel instead of a Python tuple each)."""
    npix = np.array([len(roi["xpix"]) for roi in stat], dtype=np.int64)
    masks = np.zeros(int(npix.sum()), dtype=PIXEL_MASK_DTYPE)
    masks["x"] = np.concatenate([np.asarray(roi["xpix"]) for roi in stat])
    masks["y"] = np.concatenate([np.asarray(roi["ypix"]) for roi in stat])
    masks["weight"] = np.concatenate([np.asarray(roi["lam"]) for roi in stat])
    column = VectorData(name="pixel_mask", description="Pixel masks for each ROI", data=masks)
    return column, VectorIndex(name="pixel_mask_index", data=np.cumsum(npix), target=column)


def _volume_rows(path) -> dict:
    """volume_stats' rois.tsv by plane: {plane: {roi: row}}."""
    from planeflow.io.tables import read_tsv

    out: dict = {}
    for r in read_tsv(path):
        out.setdefault(int(r["plane"]), {})[int(r["roi"])] = r
    return out


def _add_volume_columns(ps, rows: dict, n: int, plane: int) -> None:
    """Per-ROI columns of volume_stats' rois.tsv: CellID, Primary,
    DuplicateReason and VolumePosition (x, y, z in µm, NaN where a voxel size is unknown)."""
    if set(rows) != set(range(n)):
        raise PlaneflowError(f"volume_stats/rois.tsv lists {len(rows)} ROIs for plane {plane}, its "
                             f"stat.npy {n}: the table is out of date; delete it and rerun snakemake")

    def num(v):
        return float(v) if v not in (None, "") else np.nan

    ps.add_column(name="CellID", data=np.array([int(rows[i]["cell_id"] or 0) for i in range(n)], np.int64),
                  description="one ID per neuron across the session's planes (volume_stats/rois.tsv cell_id)")
    ps.add_column(name="Primary", data=np.array([rows[i]["primary"] == "true" for i in range(n)]),
                  description="the ROI that stands for its cell; count neurons with Primary and Accepted")
    ps.add_column(name="DuplicateReason", data=[rows[i]["duplicate_of_reason"] for i in range(n)],
                  description="why a non-primary ROI repeats a cell: axial (seen in a neighbouring plane) "
                              "or crosstalk (a ghost of a brighter ROI); empty for primary ROIs")
    ps.add_column(name="VolumePosition",
                  data=np.array([[num(rows[i]["x_um"]), num(rows[i]["y_um"]), num(rows[i]["z_um"])]
                                 for i in range(n)]),
                  description="ROI centre in the session's volume (x, y, z) in micrometres: plane offsets "
                              "applied (volume_stats/plane_offsets.tsv), z = plane x dz; multi-ROI "
                              "sessions: x, y in the microscope's scan coordinates, each scan field at "
                              "its header position (docs/volume.md)")


def _metres(um):
    return None if um is None else float(um) * 1e-6


class _Settings(NamedTuple):
    """What every part of the file needs from the session and the export options."""

    sid: str
    fs: float
    dx: float | None
    dy: float | None
    dz: float | None
    planes_in_session: int
    planes_exported: int
    io_kw: dict
    chunk_frames: int
    multi: bool


def _settings(planes: list[dict], session: dict, options: dict) -> _Settings:
    """The session's rate, pixel size and depth step, and the options of the written datasets."""
    sid = session["session_id"]
    fs = float(session["fs"])
    dx, dy, dz = session.get("dx"), session.get("dy"), session.get("dz")
    comp = options.get("compression") or "none"
    io_kw = {"compression": "gzip", "compression_opts": 4} if comp == "gzip" else {}
    chunk_frames = int(options.get("chunk_frames", 500))
    return _Settings(sid=sid, fs=fs, dx=dx, dy=dy, dz=dz, planes_in_session=session.get("nplanes", len(planes)),
                     planes_exported=len(planes), io_kw=io_kw, chunk_frames=chunk_frames, multi=len(planes) > 1)


def _new_nwbfile(metadata: dict, s: _Settings):
    """The NWBFile with the session's metadata (its description written from the session when not given)."""
    from pynwb import NWBFile

    experimenters = [e.strip() for e in (metadata.get("experimenter") or "").split(";") if e.strip()]
    description = metadata.get("session_description") or (
        f"Two-photon calcium imaging session '{s.sid}' ({s.planes_exported} plane(s) at {s.fs:g} Hz): "
        f"suite2p {suite2p_version()} ROIs, traces and summary images, processed with planeflow "
        f"{__version__}.")
    return NWBFile(
        session_description=description,
        identifier=metadata["identifier"],
        session_start_time=_dt.datetime.fromisoformat(metadata["session_start_time"]),
        session_id=s.sid,
        experimenter=experimenters or None,
        institution=metadata.get("institution"),
        lab=metadata.get("lab"),
        experiment_description=metadata.get("experiment_description"),
        source_script=f"planeflow {__version__} (rule nwb_export), suite2p {suite2p_version()}",
        source_script_file_name="scripts/nwb_export.py",
    )


def _subject(metadata: dict):
    """The NWB Subject of the session's metadata."""
    from pynwb.file import Subject

    return Subject(subject_id=metadata["subject_id"], species=metadata["species"],
                   sex=metadata["sex"], age=metadata["age"],
                   genotype=metadata.get("genotype"), strain=metadata.get("strain"))


def _add_device(nwbfile, metadata: dict):
    """The microscope (``general/devices/Microscope``)."""
    return nwbfile.create_device(name="Microscope",
                                 description=metadata.get("device") or "two-photon microscope")


def _add_ophys_module(nwbfile):
    """The empty ``processing/ophys`` module."""
    return nwbfile.create_processing_module(
        name="ophys", description=f"suite2p {suite2p_version()} results per plane (planeflow {__version__})")


def _ophys_containers():
    """The ImageSegmentation, the trace containers by name and the SegmentationImages, not yet in ophys."""
    from pynwb.base import Images
    from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation

    segmentation = ImageSegmentation(name="ImageSegmentation")
    containers = {"Fluorescence": Fluorescence(name="Fluorescence"), "DfOverF": DfOverF(name="DfOverF")}
    images = Images(name="SegmentationImages",
                    description="per-plane summary images of the registered movie (suite2p), stored as (x, y)")
    return segmentation, containers, images


def _log_plane(plane: dict, p: int, k: int, nplanes: int) -> None:
    """One log line on the plane about to be exported (number k, from 0, of nplanes)."""
    ops, iscell, n, nframes = (plane[k2] for k2 in ("ops", "iscell", "n", "nframes"))
    log.info("nwb_export: plane %d (%d of %d): %d ROIs (%d accepted), %d frames of %dx%d px",
             p, k + 1, nplanes, n, int(iscell[:, 0].sum()) if n else 0, nframes, int(ops["Ly"]), int(ops["Lx"]))


def _add_imaging_plane(nwbfile, device, metadata: dict, s: _Settings, p: int, sfx: str):
    """The plane's ImagingPlane<sfx> with its OpticalChannel: rate, and pixel size and depth (p * dz)
    in metres where known."""
    from pynwb.ophys import OpticalChannel

    z = None if s.dz is None else p * float(s.dz)
    optical = OpticalChannel(
        name="OpticalChannel", description="functional channel (suite2p chan1)",
        emission_lambda=float(metadata["emission_lambda"]) if metadata.get("emission_lambda") else np.nan)
    plane_kw = {}
    if s.dx is not None and s.dy is not None:
        plane_kw.update(grid_spacing=[_metres(s.dx), _metres(s.dy)], grid_spacing_unit="meters")
    if z is not None:
        plane_kw.update(origin_coords=[0.0, 0.0, _metres(z)], origin_coords_unit="meters")
    return nwbfile.create_imaging_plane(
        name=f"ImagingPlane{sfx}", optical_channel=optical, device=device,
        description=(f"plane {p} of {s.planes_in_session} of session '{s.sid}'"
                     + (f", {z:g} um below plane 0" if z is not None else "")),
        excitation_lambda=float(metadata["excitation_lambda"]) if metadata.get("excitation_lambda") else np.nan,
        imaging_rate=s.fs, indicator=metadata["indicator"], location=metadata["location"],
        reference_frame=("x, y: pixel (0, 0) of the plane image (x = column, y = row); z: depth "
                         "below plane 0 of this session, growing with the plane index"),
        **plane_kw)


def _add_plane_segmentation(ophys, segmentation, imaging_plane, plane: dict, p: int, sfx: str):
    """The plane's PlaneSegmentation<sfx> (one row per ROI, pixel masks), ImageSegmentation added
    to ophys first when it is not there yet."""
    from hdmf.common import VectorData, VectorIndex
    from pynwb.ophys import PlaneSegmentation

    if "ImageSegmentation" not in ophys.data_interfaces:
        ophys.add(segmentation)  # before the ROI regions that link into it
    segmentation.add_plane_segmentation(PlaneSegmentation(
        name=f"PlaneSegmentation{sfx}", imaging_plane=imaging_plane, id=np.arange(plane["n"]),
        columns=list(_pixel_mask_columns(plane["stat"], VectorData, VectorIndex)),
        description=(f"suite2p ROIs of plane {p}; row id = index in suite2p/plane{p}/stat.npy; "
                     "pixel_mask x = column, y = row, weight = stat['lam']")))
    return segmentation[f"PlaneSegmentation{sfx}"]


def _add_roi_columns(ps, plane: dict, p: int) -> None:
    """ROICentroids, Accepted, Rejected and ClassifierProbability, and the volume columns when
    the plane has volume_stats rows."""
    stat, iscell, n = plane["stat"], plane["iscell"], plane["n"]
    med = np.array([roi["med"] for roi in stat], dtype=np.float64).reshape(n, 2)
    accepted = iscell[:, 0].astype(bool)
    ps.add_column(name="ROICentroids", data=med[:, ::-1].copy(),
                  description="ROI centre (x = column, y = row) in pixels: suite2p stat['med']")
    ps.add_column(name="Accepted", data=accepted,
                  description="accepted as a cell: suite2p classifier and planeflow's cell filters "
                              "(iscell.npy column 0)")
    ps.add_column(name="Rejected", data=~accepted, description="not accepted (inverse of Accepted)")
    ps.add_column(name="ClassifierProbability", data=iscell[:, 1].astype(np.float32),
                  description="suite2p classifier probability that the ROI is a cell (iscell.npy column 1)")
    vrows = plane.get("volume")
    if vrows is not None:
        _add_volume_columns(ps, vrows, n, p)
        if plane.get("tracks") is not None:
            ps.add_column(name="TrackID", data=np.array([plane["tracks"].get(str(vrows[i]["cell_id"]), -1)
                                                         for i in range(n)], np.int64),
                          description="the subject's track this ROI's cell belongs to, the same ID in every "
                                      "session of the subject (subjects/<subject>/tracked_cells.tsv "
                                      "track_id; -1: a ROI of no tracked cell)")


def _add_trace_series(ophys, containers: dict, region, plane: dict, trace: tuple, p: int, sfx: str,
                      s: _Settings, progress: Progress) -> None:
    """One RoiResponseSeries of TRACES (``trace``) over the plane's ROI region, read a block of
    frames at a time; its container added to ophys first when it is not there yet."""
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from pynwb.ophys import RoiResponseSeries

    key, cname, base, desc, unit = trace
    n, nframes = plane["n"], plane["nframes"]
    name = f"{cname}/{base}{sfx}"

    def done(t0, t1, nbytes):
        progress.add(nbytes, part=f"plane {p}", note=f"plane {p} {name} written" if t1 >= nframes else None)

    it = TimeChunkIterator(_trace_reader(plane["traces"][key]), (nframes, n), np.float32,
                           frames_per_buffer=max(1, TRACE_BUFFER_BYTES // (4 * n)),
                           frames_per_chunk=frames_per_chunk(4 * n, nframes), on_buffer=done)
    if cname not in ophys.data_interfaces:
        ophys.add(containers[cname])  # before the series whose ROI region links into ophys
    containers[cname].add_roi_response_series(RoiResponseSeries(
        name=f"{base}{sfx}", data=H5DataIO(it, **s.io_kw), rois=region, unit=unit, rate=s.fs,
        starting_time=0.0, description=f"{desc}, plane {p}; (frames, ROIs)"))


def _add_traces(ophys, containers: dict, ps, plane: dict, p: int, sfx: str, s: _Settings,
                progress: Progress) -> None:
    """The plane's four trace series (TRACES), linked to all rows of its PlaneSegmentation."""
    region = ps.create_roi_table_region(region=list(range(plane["n"])), description=f"all ROIs of plane {p}")
    for trace in TRACES:
        _add_trace_series(ophys, containers, region, plane, trace, p, sfx, s, progress)


def _add_summary_images(images, ops: dict, p: int, sfx: str, s: _Settings) -> None:
    """MeanImage, MaxProjectionImage and CorrelationImage<sfx> in the full frame, axes (x, y);
    an image missing from ops.npy is skipped with a warning."""
    from pynwb.image import GrayscaleImage

    res = {} if s.dx is None or s.dx != s.dy else {"resolution": 1e4 / float(s.dx)}  # pixels per cm
    for name, key, what in (("MeanImage", "meanImg", "mean image of the registered movie"),
                            ("MaxProjectionImage", "max_proj", "maximum projection (suite2p max_proj)"),
                            ("CorrelationImage", "Vcorr", "correlation map (suite2p Vcorr)")):
        if ops.get(key) is None:
            log.warning("nwb_export: plane %d has no %s in ops.npy; %s%s not written", p, key, name, sfx)
            continue
        img = full_frame_image(ops, key)
        images.add_image(GrayscaleImage(name=f"{name}{sfx}", data=img.T, description=(
            f"{what}, plane {p}, full frame (zero outside yrange/xrange), axes (x, y)"), **res))


def _add_movie(ophys, imaging_plane, parts: list[dict], plane: dict, p: int, sfx: str, s: _Settings,
               progress: Progress, closers: list) -> None:
    """TwoPhotonSeriesRegistered<sfx>: the registered movie read from the registration binaries
    ``s.chunk_frames`` frames at a time, axes (frames, x, y); its closer appended to ``closers``."""
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from pynwb.ophys import TwoPhotonSeries

    ops, nframes = plane["ops"], plane["nframes"]
    Ly, Lx = int(ops["Ly"]), int(ops["Lx"])
    read, close = _movie_reader(parts, (Ly, Lx), nframes)
    closers.append(close)
    frame_bytes = Ly * Lx * 2
    counter = {"i": 0, "n": 0}

    def movie_done(t0, t1, nbytes):
        counter["i"] += 1
        progress.add(nbytes, part=f"plane {p}",
                     note=f"plane {p} movie chunk {counter['i']}/{counter['n']} (frames {t0}-{t1 - 1} of {nframes})")

    it = TimeChunkIterator(read, (nframes, Lx, Ly), np.int16, frames_per_buffer=s.chunk_frames,
                           frames_per_chunk=frames_per_chunk(frame_bytes, nframes),
                           on_buffer=movie_done)
    counter["n"] = it.num_buffers
    fov = None if s.dx is None or s.dy is None else [_metres(Lx * s.dx), _metres(Ly * s.dy)]
    ophys.add(TwoPhotonSeries(
        name=f"TwoPhotonSeriesRegistered{sfx}", imaging_plane=imaging_plane,
        data=H5DataIO(it, **s.io_kw), unit="a.u.", rate=s.fs, starting_time=0.0,
        dimension=[Lx, Ly], field_of_view=fov,
        description=(f"registered (motion-corrected) movie of plane {p} from suite2p's int16 "
                     "registration binary; axes (frames, x, y)")))


def build_nwbfile(planes: list[dict], metadata: dict, session: dict, options: dict,
                  progress: Progress, loaded: list[dict], closers: list):
    """The in-memory NWBFile; datasets backed by iterators are read while it is written."""
    s = _settings(planes, session, options)
    nwbfile = _new_nwbfile(metadata, s)
    nwbfile.subject = _subject(metadata)
    device = _add_device(nwbfile, metadata)
    ophys = _add_ophys_module(nwbfile)
    segmentation, containers, images = _ophys_containers()

    for k, (files, plane) in enumerate(zip(planes, loaded)):
        p = int(files["plane"])
        sfx = f"Chan1Plane{p}" if s.multi else ""
        _log_plane(plane, p, k, s.planes_exported)
        imaging_plane = _add_imaging_plane(nwbfile, device, metadata, s, p, sfx)
        if plane["n"]:
            ps = _add_plane_segmentation(ophys, segmentation, imaging_plane, plane, p, sfx)
            _add_roi_columns(ps, plane, p)
            _add_traces(ophys, containers, ps, plane, p, sfx, s, progress)
        else:
            # an empty table is a best-practice violation: the plane keeps its ImagingPlane and images
            log.info("nwb_export: plane %d has no ROIs: no PlaneSegmentation and no traces", p)
        _add_summary_images(images, plane["ops"], p, sfx, s)
        if options.get("include_movie"):
            _add_movie(ophys, imaging_plane, files["movie_parts"], plane, p, sfx, s, progress, closers)

    if images.images:
        ophys.add(images)
    return nwbfile


def nwb_export(planes: list[dict], out, metadata: dict, session: dict, options: dict,
               volume_rois=None, tracked_cells=None) -> dict:
    """Write the session's NWB file to ``out`` (temporary name beside it, then renamed).

    ``planes``: per plane, in plane order, ``plane`` (index) and the paths ``ops``, ``stat``,
    ``iscell``, ``F``, ``Fneu``, ``spks``, ``dff`` of its final suite2p folder, plus
    ``movie_parts`` (list of {bin, shape, offset}) when the movie is included.
    ``metadata``: from :func:`planeflow.plan.nwb_meta.resolve_metadata`; ``session``: session_id,
    fs, dx, dy, dz (µm), nplanes; ``options``: include_movie, chunk_frames, compression;
    ``volume_rois``: volume_stats' rois.tsv (adds CellID, Primary, DuplicateReason and
    VolumePosition to every PlaneSegmentation); ``tracked_cells``: the subject's
    tracked_cells.tsv (rule tracking; adds TrackID).
    """
    from planeflow.plan.nwb_meta import resolve_metadata

    t0 = time.time()
    meta, missing, problems = resolve_metadata(session["session_id"], metadata)
    if missing or problems:  # the DAG-time check normally stops this earlier
        raise PlaneflowError(f"session '{session['session_id']}': NWB metadata incomplete "
                             f"({'; '.join([f'missing {m}' for m in missing] + problems)}).")
    loaded = [_read_plane(f) for f in planes]
    if volume_rois:
        vrows = _volume_rows(volume_rois)
        tracks = None
        if tracked_cells:
            from planeflow.io.tables import read_tsv

            tracks = {r["cell_id"]: int(r["track_id"]) for r in read_tsv(tracked_cells)
                      if r["session"] == str(session["session_id"])}
        for f, pl in zip(planes, loaded):
            pl["volume"] = vrows.get(int(f["plane"]), {})
            pl["tracks"] = tracks
    totals = {}
    for f, pl in zip(planes, loaded):
        n, nt = pl["n"], pl["nframes"]
        movie = nt * int(pl["ops"]["Ly"]) * int(pl["ops"]["Lx"]) * 2 if options.get("include_movie") else 0
        totals[int(f["plane"])] = len(TRACES) * 4 * n * nt + movie
    progress = Progress("nwb_export", parts={f"plane {p}": n for p, n in totals.items()})
    closers: list = []
    try:
        nwbfile = build_nwbfile(planes, meta, session, options, progress, loaded, closers)
        log.info("nwb_export: writing %s (%d planes%s)", out, len(planes),
                 ", with registered movies" if options.get("include_movie") else "")
        with atomic_path(out, suffix=".nwb") as tmp:
            with NWBHDF5IO(str(tmp), mode="w") as io:
                io.write(nwbfile)
    finally:
        for close in closers:
            close()
    summary = {"session_id": session["session_id"], "identifier": meta["identifier"],
               "planes": [int(f["plane"]) for f in planes], "n_rois": [pl["n"] for pl in loaded],
               "include_movie": bool(options.get("include_movie")), "duration": time.time() - t0}
    log.info("nwb_export: wrote %s in %.1f s (%d ROIs in %d planes)", out, summary["duration"],
             sum(summary["n_rois"]), len(planes))
    return summary
