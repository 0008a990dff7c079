"""Resource estimates of every step: memory (``mem_mb``) and wall time (``runtime``, minutes).

The one home of these numbers. The rules take them through :func:`estimate`; each grows
with the job's attempt, so a job that SLURM kills for memory or time gets more on its retry.
Estimates come from the session's cached metadata (frame size, frames, planes), never from
the raw data. Override on the command line: ``snakemake --set-resources detection:mem_mb=64000``.
"""
from __future__ import annotations

#: wall time of one attempt, minutes (the per-session steps that scale with the data add to it)
BASE_MINUTES = {
    "binary_write": 60, "registration": 120, "detection": 180, "postprocess": 30, "merge": 30,
    "volume_stats": 30, "nwb_export": 30, "raw_compress": 30, "cellpose_export": 15,
    "cellpose_import": 60, "rigid_shifts": 60, "shared_motion": 15, "qc": 30,
    "crosstalk": 10, "crosstalk_subtract": 30,
}


#: scheduling priority of a step's jobs (Snakemake ``priority:``; steps not named here: 0).
#: When more jobs are ready than cores, Snakemake starts those of the higher priority
#: first: every plane's binary_write, then every plane's registration (the longest job),
#: then detection, so that no plane's registration waits behind another plane's detection
#: and the last registration does not start late (longest jobs first). On a cluster it
#: orders the submissions the same way.
PRIORITY = {"binary_write": 3, "rigid_shifts": 2, "registration": 2, "crosstalk_subtract": 1,
            "detection": 1}


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


def mem_mb(step: str, meta: dict, config: dict, part=None) -> float:
    """Memory of the job's own process in one attempt (MB; :func:`estimate` adds the Snakemake
    process that runs it, ``RUNNER_MB``) from the frame size (fm: MB of one float32 frame) and the
    number of frames (n).

    Fitted to the peak resident memory (VmHWM) of jobs measured on 128² to 512² planes of 500
    to 1500 frames, plus about 15 % (docs/performance-jobs.md): registration holds a batch
    of frames and its reference sample, and its PC metrics a sample of frames; detection a
    binned movie of up to 5000 frames; binary_write three raw chunks; the NWB export its
    ROI tables plus, with the movie, a buffer of frames.
    """
    n = meta["nframes"]
    fm = _frame_mb(meta, part)
    nplanes = len(meta["planes"])
    if step == "binary_write":
        bw = config["binary_write"]
        chunk_mb = min(bw["chunk_frames"] * fm / 2, bw["chunk_mb"])  # int16
        return 150 + 3 * chunk_mb
    if step == "registration":
        return 1100 + 3600 * fm + 1.6 * _metrics_frames(meta, part) * fm
    if step == "detection":
        return 1200 + 1100 * fm + 0.65 * min(n, 5000) * fm
    if step == "postprocess":
        return 300 + 80 * fm + 0.05 * n
    if step == "merge":
        return 300 + 80 * _frame_mb(meta, None) + 0.2 * n
    if step == "volume_stats":  # F and Fneu (float64) of up to 500 candidate ROIs of two planes at
        # a time, then the mean images of every plane
        return 1500 + 4 * 8 * n * 500 / 1e6 + 80 * _frame_mb(meta, None) * nplanes
    if step == "rigid_shifts":  # a batch of frames and the reference sample, no output movie
        return 2000 + 4 * 400 * _frame_mb(meta, part)
    if step == "shared_motion":  # a few shift traces per plane
        return 1000 + 0.001 * n * len(meta["planes"])
    if step == "crosstalk":  # the activity (float32) of up to 2 D + 1 planes of sampled frames at a
        # time, a moved copy and crosstalk_pair's work arrays; measured peak 1.6 GB (3 planes) and
        # 2.3 GB (6 planes) at 256² x 1000 frames, estimate 2.6 and 3.6 GB
        v = _volume(config)
        held = min(2 * v["crosstalk_max_separation"] + 1, nplanes) + 3
        return 1000 + held * min(n, v["crosstalk_frames"]) * _frame_mb(meta, None)
    if step == "crosstalk_subtract":  # a chunk of frames of the plane and of every source, float32
        nsrc = 2 * _volume(config)["crosstalk_max_separation"]
        return 500 + (3 + nsrc) * 500 * fm
    if step == "qc":  # the ops of every plane and a sample of frames of one plane at a time
        return 2000 + 3 * min(n, 500) * _frame_mb(meta, None)
    if step == "raw_compress":
        return 200
    if step == "nwb_export":
        opts = config["nwb_export"]
        movie = 0.0
        if opts["include_movie"]:
            movie = 4 * min(opts["chunk_frames"], n) * _frame_mb(meta, None) / 2
        return 400 + 80 * _frame_mb(meta, None) * nplanes + movie
    if step == "cellpose_export":
        return 1000 + 150 * _frame_mb(meta, None)
    if step == "cellpose_import":
        fm = _frame_mb(meta, None)
        return 1500 + 1700 * fm + 0.6 * n * fm
    raise KeyError(f"no memory estimate for step '{step}'")


#: crosstalk's seconds per sampled frame-pixel, per plane (its activity, once) and per plane
#: pair (moving the source, the slope and its 8-direction null): 20.8 s for 3 planes (6 pairs)
#: and 71.4 s for 6 planes (24 pairs) at 256² x 1000 frames, D = 3, on a busy 2-core machine,
#: i.e. 2.3-2.4 s per (plane + pair) per 65.5 M frame-pixels
CROSSTALK_S_PER_FRAME_PX = 3.6e-8


def crosstalk_pairs(nplanes: int, max_separation: int) -> int:
    """Ordered plane pairs rule crosstalk measures: both directions, up to ``max_separation`` apart."""
    return 2 * sum(nplanes - k for k in range(1, min(max_separation, nplanes - 1) + 1))


def minutes(step: str, meta: dict, config: dict) -> float:
    """Wall time of one attempt (minutes)."""
    base = BASE_MINUTES[step]
    if step == "raw_compress":  # checking the binaries and packing at a slow 10 MB/s
        return base + _raw_mb(meta) / 10 / 60
    if step == "crosstalk":  # (planes + pairs) x frames sampled x pixels, twice the measured rate
        v, nplanes = _volume(config), len(meta["planes"])
        Ly, Lx = meta["plane_shape"]
        units = nplanes + crosstalk_pairs(nplanes, v["crosstalk_max_separation"])
        return base + 2 * CROSSTALK_S_PER_FRAME_PX * units * min(meta["nframes"], v["crosstalk_frames"]) * Ly * Lx / 60
    if step == "crosstalk_subtract":  # reads the plane and its sources, writes one binary: 20 MB/s
        nsrc = 2 * _volume(config)["crosstalk_max_separation"]
        return base + (2 + nsrc) * _raw_mb(meta) / max(len(meta["planes"]), 1) / 20 / 60
    if step == "nwb_export" and config["nwb_export"]["include_movie"]:  # gzip at 20 MB/s
        return base + _raw_mb(meta) / 20 / 60
    return base


def estimate(step: str, meta: dict, config: dict, attempt: int, part=None) -> dict:
    """``{"mem_mb": .., "runtime": ..}`` of an attempt (1, 2, ...): both grow with it."""
    return {"mem_mb": int((mem_mb(step, meta, config, part) + RUNNER_MB) * attempt),
            "runtime": int(minutes(step, meta, config) * attempt)}
