"""Resource models of the steps: memory (``mem_mb``) and wall time (``runtime``, minutes).

The one home of these formulas; each step's record in :mod:`planeflow.plan.registry` names its
memory model and base wall time. The rules take them through :func:`estimate`; each grows
with the job's attempt, so a job that SLURM kills for memory or time gets more on its retry.
Estimates come from the session's cached metadata (frame size, frames, planes), never from
the raw data. Override on the command line: ``snakemake --set-resources detection:mem_mb=64000``.
"""
from __future__ import annotations

#: MB of the Snakemake process that runs a job on its node (``snakemake --mode remote``, about
#: 130 MB after parsing the workflow, more after a few jobs of a group). SLURM counts it with
#: the job's own process: a registration job sized to the script alone was killed at 1.31 GB
#: of a 1.25 GB request when grouped per plane. Added to every request.
RUNNER_MB = 250


def _volume(config: dict) -> dict:
    """The config's volume group (its schema defaults when called with a partial config)."""
    if "volume" in config:
        return config["volume"]
    from planeflow.plan.config import with_defaults

    return with_defaults("volume", None)


def crosstalk_on_frames(volume: dict, nplanes: int) -> bool:
    """Whether the volume step measures crosstalk on the frames: with two planes or more and
    ``volume.crosstalk`` not ``off``. The one home of this rule: the step
    (:func:`planeflow.steps._volume.frame_crosstalk`) and its memory model both ask it."""
    return nplanes >= 2 and volume.get("crosstalk", "estimate") != "off"


def _frame_mb(meta: dict, part) -> float:
    """MB of one float32 frame of a part (the whole plane when ``part`` is None)."""
    Ly, Lx = meta["plane_shape"] if part is None else meta["parts"][int(part)]["shape"]
    return Ly * Lx * 4 / 1e6


def _raw_mb(meta: dict) -> float:
    """MB of the session's int16 binaries (every plane)."""
    Ly, Lx = meta["plane_shape"]
    return len(meta["planes"]) * meta["nframes"] * Ly * Lx * 2 / 1e6


def _metrics_frames(meta: dict, part) -> int:
    """Frames suite2p's registration metrics hold at once (``registration.metrics.get_pc_metrics``:
    2000 frames, 5000 for long recordings of frames up to 700 px; metrics run from 1500 frames)."""
    n = meta["nframes"]
    if n < 1500:
        return 0
    Ly, Lx = meta["plane_shape"] if part is None else meta["parts"][int(part)]["shape"]
    return min(n, 2000 if n < 5000 or Ly > 700 or Lx > 700 else 5000)


# ---- memory models (MB of the job's own process), one per step, named in planeflow.plan.registry.
# Fitted to the peak resident memory (VmHWM) of jobs measured on 128² to 512² planes of 500 to
# 1500 frames, plus about 15 % (docs/performance-jobs.md). fm: MB of one float32 frame, n: frames.
def mem_binary_write(meta: dict, config: dict, part=None) -> float:
    """Three raw int16 chunks."""
    bw = config["binary_write"]
    chunk_mb = min(bw["chunk_frames"] * _frame_mb(meta, part) / 2, bw["chunk_mb"])
    return 150 + 3 * chunk_mb


def mem_registration(meta: dict, config: dict, part=None) -> float:
    """A batch of frames and its reference sample, and its PC metrics a sample of frames:
    ``get_pc_metrics`` holds the int16 sample, its cropped copy, a float32 copy and PCA's
    centred copy, about 2.4 float32 frames per sampled frame above the job's base (measured:
    VmHWM 13.8 GB, private 12.7 GB at 512² x 5000 frames, 5000 sampled; the old 1.6 put the
    request at 13.5 GB, under the peak; benchmarks/long_plane.py, docs/performance.md)."""
    fm = _frame_mb(meta, part)
    return 1100 + 3600 * fm + 2.0 * _metrics_frames(meta, part) * fm


#: the shortest indicator decay time (s) the estimates assume: suite2p bins the movie for detection
#: in round(tau * fs) frames, and a session's tau (a sheet column) is not in its metadata
TAU_MIN_S = 0.5


def binned_frames(meta: dict, config: dict) -> int:
    """At most the frames of suite2p's binned movie (``detection.detect``: bin_size = max(1,
    n // nbins, round(tau * fs)), at most nbins frames) for an indicator with tau >= TAU_MIN_S
    (or the config's suite2p tau where it is lower)."""
    n = int(meta["nframes"])
    s2p = config.get("suite2p") or {}
    det = s2p.get("detection") or {}
    nbins = int(det.get("nbins") or 5000)
    tau = min(TAU_MIN_S, float(s2p.get("tau") or TAU_MIN_S))
    bin_size = int(det.get("bin_size") or max(1, n // nbins, round(tau * float(meta.get("fs") or 0))))
    return min(nbins, n // bin_size)


def mem_detection(meta: dict, config: dict, part=None) -> float:
    """suite2p's binned movie and sparsery's copies of it (4.5 of them: measured private memory
    400 + 4.5 binned frames at 512² x 5,000, 10,000 and 20,000 frames, benchmarks/long_plane.py),
    on top of the imports and maps. The job also maps the registered movie it reads (the page
    cache counted in its VmHWM, up to the whole int16 movie), which the kernel drops under the
    job's memory limit; the request does not hold it (docs/performance.md, long planes)."""
    fm = _frame_mb(meta, part)
    return 1200 + 1100 * fm + 4.5 * binned_frames(meta, config) * fm


#: ROIs a plane's traces are sized for before detection has run: suite2p's own cap, sparsery's
#: ``max_ROIs`` (5000 in suite2p 1.1), unless the config's suite2p settings set another
SUITE2P_MAX_ROIS = 5000


def _trace_mb(meta: dict, config: dict) -> float:
    """MB of one float32 trace array (ROIs x frames) of a plane with as many ROIs as detection may
    find (:data:`SUITE2P_MAX_ROIS`, or the config's ``detection: sparsery_settings: max_ROIs``)."""
    sparsery = ((config.get("suite2p") or {}).get("detection") or {}).get("sparsery_settings") or {}
    return int(sparsery.get("max_ROIs", SUITE2P_MAX_ROIS)) * meta["nframes"] * 4 / 1e6


def mem_postprocess(meta: dict, config: dict, part=None) -> float:
    """The ops images, the figures, dF/F (one trace array; F and Fneu are read from their memory
    maps, a block of ROIs at a time) and the stat dicts. Measured private peak (RssAnon) on a 512²
    plane (benchmarks/long_plane.py --traces): 136 MB at 500 ROIs x 10,000 frames, 196 MB at 2,000 x
    10,000 and 537 MB at 5,000 x 20,000 (its VmHWM, 1,326 MB, also counts the pages of F and Fneu
    it read: page cache); before the blocked dF/F it was 3,153 MB there, 2x its request."""
    return 150 + 80 * _frame_mb(meta, part) + 1.5 * _trace_mb(meta, config)


def mem_merge(meta: dict, config: dict, part=None) -> float:
    """The ops images (and registration's metrics) and the stat dicts; a plane of several parts
    joins one trace array at a time, a plane of one part copies its arrays from their memory maps.
    Measured private peak 76-98 MB from 500 ROIs x 10,000 frames to 5,000 x 20,000 on a 512² plane
    (one part; VmHWM up to 1,662 MB with the page cache of the four arrays it copied); before the
    maps, 1,589 MB at 5,000 x 20,000."""
    nparts = len(meta.get("parts") or ())
    joined = nparts * _trace_mb(meta, config) if nparts > 1 else 0.0  # each part's detection has its own cap
    return 150 + 80 * _frame_mb(meta, None) + 1.2 * joined


#: threads of the two steps that measure crosstalk on frames (rules crosstalk and volume_stats,
#: whose registry records read it): each plane's spatial filter runs in that many blocks of
#: frames, and that many sources of a target are measured at once, each with a moved copy of
#: its frames. Both steps run alone (crosstalk before every plane's detection, volume_stats
#: after every plane's merge): 2 threads took the 4-plane short session's measure from 4.9 s
#: to 3.0 s
CROSSTALK_THREADS = 2


#: planes' worth of sampled frames that each crosstalk thread beyond the first holds: the source
#: pair it measures at the same time, a moved copy of its source and crosstalk_pair's work
#: arrays. volume_stats at 30 planes x 256² x 3,000 frames peaked at 3,399 MB on one thread and
#: 3,940 MB on two, 262 MB a plane's worth: 2.1 more (an upper bound for the thread: the two runs
#: also differ in machine and in the crosstalk statistic; docs/performance.md); 3 with margin.
CROSSTALK_THREAD_PLANES = 3


def _crosstalk_activity_mb(meta: dict, config: dict, work: int = 3) -> float:
    """The crosstalk measure's frames: the activity (float32) of up to 2 D + 1 planes of the
    sampled frames at a time, plus ``work`` more planes' worth (a moved copy and crosstalk_pair's
    work arrays) and, per thread beyond the first, :data:`CROSSTALK_THREAD_PLANES` more."""
    v = _volume(config)
    held = (min(2 * v["crosstalk_max_separation"] + 1, len(meta["planes"])) + work
            + CROSSTALK_THREAD_PLANES * (CROSSTALK_THREADS - 1))
    return held * min(meta["nframes"], v["crosstalk_frames"]) * _frame_mb(meta, None)


def mem_volume_stats(meta: dict, config: dict, part=None) -> float:
    """The larger of its two phases: first the crosstalk measure on the frames (estimate mode,
    or what is left after subtract), then F and Fneu (float64) of up to 500 candidate ROIs of two
    planes at a time and the mean images of every plane. Measured VmHWM 1,788 MB at 4 planes x
    256² x 2000 frames (1,000 sampled; the former estimate, without the frames, 1,648 MB), 1,576 MB
    at 30 planes x 256² x 600 frames and 3,399 MB (private 3,348) at 30 x 256² x 3000, where the
    former estimate was 2,427 MB and 5 work planes' worth are needed (docs/performance.md); on
    two crosstalk threads 3,940 MB there (private 3,866), over the 3,907 MB the model then gave. A
    session of one plane, or with ``volume.crosstalk: off``, measures no crosstalk: a one-plane
    512² x 10,000-frame session peaked at 214 MB against the 7,840 MB the frames' phase asked."""
    tables = 1500 + 4 * 8 * meta["nframes"] * 500 / 1e6 + 80 * _frame_mb(meta, None) * len(meta["planes"])
    if not crosstalk_on_frames(_volume(config), len(meta["planes"])):
        return tables
    return max(tables, 500 + _crosstalk_activity_mb(meta, config, work=5))


def mem_rigid_shifts(meta: dict, config: dict, part=None) -> float:
    """A batch of frames and the reference sample, no output movie."""
    return 2000 + 4 * 400 * _frame_mb(meta, part)


def mem_shared_motion(meta: dict, config: dict, part=None) -> float:
    """A few shift traces per plane."""
    return 1000 + 0.001 * meta["nframes"] * len(meta["planes"])


def mem_crosstalk(meta: dict, config: dict, part=None) -> float:
    """The activity (float32) of up to 2 D + 1 planes of sampled frames at a time, a moved copy
    and crosstalk_pair's work arrays; measured peak 1.6 GB (3 planes) and 2.3 GB (6 planes) at
    256² x 1000 frames, estimate 2.6 and 3.6 GB."""
    return 1000 + _crosstalk_activity_mb(meta, config)


def mem_crosstalk_subtract(meta: dict, config: dict, part=None) -> float:
    """A chunk of frames of the plane and of every source, float32."""
    nsrc = 2 * _volume(config)["crosstalk_max_separation"]
    return 500 + (3 + nsrc) * 500 * _frame_mb(meta, part)


def mem_qc(meta: dict, config: dict, part=None) -> float:
    """The ops of every plane and a sample of frames of one plane at a time."""
    return 2000 + 3 * min(meta["nframes"], 500) * _frame_mb(meta, None)


def mem_raw_compress(meta: dict, config: dict, part=None) -> float:
    return 200


def mem_nwb_export(meta: dict, config: dict, part=None) -> float:
    """Its ROI tables plus, with the movie, a buffer of frames."""
    opts = config["nwb_export"]
    movie = 0.0
    if opts["include_movie"]:
        movie = 4 * min(opts["chunk_frames"], meta["nframes"]) * _frame_mb(meta, None) / 2
    return 400 + 80 * _frame_mb(meta, None) * len(meta["planes"]) + movie


def mem_mat_export(meta: dict, config: dict, part=None) -> float:
    """F, Fneu and spks (float32) of as many ROIs as detection may find, and scipy's copy of them
    while it writes."""
    return 400 + 2 * 3 * _trace_mb(meta, config)


def mem_cellpose_export(meta: dict, config: dict, part=None) -> float:
    return 1000 + 150 * _frame_mb(meta, None)


def mem_cellpose_import(meta: dict, config: dict, part=None) -> float:
    fm = _frame_mb(meta, None)
    return 1500 + 1700 * fm + 0.6 * meta["nframes"] * fm


#: crosstalk's seconds per sampled frame-pixel, per plane (its activity, once) and per plane
#: pair (moving the source, the slope and its 8-direction null): 20.8 s for 3 planes (6 pairs)
#: and 71.4 s for 6 planes (24 pairs) at 256² x 1000 frames, D = 3, on a busy 2-core machine,
#: i.e. 2.3-2.4 s per (plane + pair) per 65.5 M frame-pixels
CROSSTALK_S_PER_FRAME_PX = 3.6e-8


def crosstalk_pairs(nplanes: int, max_separation: int) -> int:
    """Ordered plane pairs rule crosstalk measures: both directions, up to ``max_separation`` apart."""
    return 2 * sum(nplanes - k for k in range(1, min(max_separation, nplanes - 1) + 1))


# ---- wall time that grows with the data (minutes, added to the step's base in the registry)
def minutes_raw_compress(meta: dict, config: dict) -> float:
    """Checking the binaries and packing at a slow 10 MB/s."""
    return _raw_mb(meta) / 10 / 60


def minutes_crosstalk(meta: dict, config: dict) -> float:
    """(planes + pairs) x frames sampled x pixels, twice the measured rate."""
    v, nplanes = _volume(config), len(meta["planes"])
    Ly, Lx = meta["plane_shape"]
    units = nplanes + crosstalk_pairs(nplanes, v["crosstalk_max_separation"])
    return 2 * CROSSTALK_S_PER_FRAME_PX * units * min(meta["nframes"], v["crosstalk_frames"]) * Ly * Lx / 60


def minutes_crosstalk_subtract(meta: dict, config: dict) -> float:
    """Reads the plane and its sources, writes one binary: 20 MB/s."""
    nsrc = 2 * _volume(config)["crosstalk_max_separation"]
    return (2 + nsrc) * _raw_mb(meta) / max(len(meta["planes"]), 1) / 20 / 60


def minutes_nwb_export(meta: dict, config: dict) -> float:
    """With the movie: gzip at 20 MB/s."""
    return _raw_mb(meta) / 20 / 60 if config["nwb_export"]["include_movie"] else 0.0


# ---- by step name (the registry's record) -------------------------------------------------
def _step(step: str):
    from planeflow.plan.registry import step as registry_step  # the registry imports this module

    return registry_step(step)


def mem_mb(step: str, meta: dict, config: dict, part=None) -> float:
    """Memory of the job's own process in one attempt (MB), by the step's model."""
    return _step(step).memory(meta, config, part)


def minutes(step: str, meta: dict, config: dict) -> float:
    """Wall time of one attempt (minutes)."""
    s = _step(step)
    return s.minutes + (s.extra_minutes(meta, config) if s.extra_minutes else 0)


def estimate(step: str, meta: dict, config: dict, attempt: int, part=None) -> dict:
    """``{"mem_mb": .., "runtime": ..}`` of an attempt (1, 2, ...): both grow with it."""
    return _step(step).estimate(meta, config, attempt, part)


# ---- per subject (``meta`` = registry.subject_meta: the subject's sessions' metadata) ----
def _subject_volume_mb(meta: dict) -> float:
    """MB of one float32 mean-image volume of each of a subject's sessions, summed."""
    return sum(len(m["planes"]) * m["plane_shape"][0] * m["plane_shape"][1] * 4 / 1e6 for m in meta["sessions"])


def mem_tracking(meta: dict, config: dict, part=None) -> float:
    """Every session's mean images (and their high-passed copies) at once, plus the FFTs of one
    registration of two volumes (complex128, four volumes' worth of the largest session), the
    imports and the figure. Not yet measured at the size of a real subject."""
    largest = max(len(m["planes"]) * m["plane_shape"][0] * m["plane_shape"][1] for m in meta["sessions"])
    return 600 + 2 * _subject_volume_mb(meta) + 4 * 16 * largest / 1e6


def minutes_tracking(meta: dict, config: dict) -> float:
    """Pairs of sessions are aligned and matched: grows with their square."""
    n = len(meta["sessions"])
    return n * (n - 1) / 2 * 2
