"""The step registry: one record per workflow step, the one home of what a step is.

Everything else asks here: the results layout (:mod:`planeflow.plan.layout`: a per-part step's
files, every step's scope), the resource estimates (:mod:`planeflow.plan.resources`), the rules
(threads, priority, group, GPUs: ``workflow/rules/common.smk``), ``planeflow status``
(:mod:`planeflow.plan.status`) and the job runner's log line (``steps._job``). Which steps run
for a session is decided once, by :func:`enabled` / :func:`session_jobs`; the default target of
the Snakefile and ``planeflow status`` both read that answer, so ``snakemake -n`` and
``planeflow status`` list the same jobs.

Adding a step: a :class:`Step` in ``STEPS`` (with its memory model in ``resources.py``), its
module ``planeflow/steps/<name>.py`` with a thin ``scripts/<name>.py``, and its rule
``workflow/rules/<name>.smk`` (see docs/development.md).

Pure standard library: it is imported every time the Snakefile is parsed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from planeflow import suite2p_api
from planeflow.plan import nwb_meta
from planeflow.plan import resources as res
from planeflow.plan.config import crosstalk_subtract_enabled, shared_motion_enabled

#: how often a step runs: per plane and part, per plane, per session, or per subject (over every
#: session of one animal: the sheet's ``subject_id``)
SCOPES = ("part", "plane", "session", "subject")


@dataclass(frozen=True)
class Step:
    """What the workflow knows of one step.

    ``files``: its outputs, output name -> file name in its folder (a part's, ``<step>/plane<p>/``
    for a per-plane step, ``<step>/`` for a per-session one; ``{session}``, ``{plane}`` and
    ``{format}`` are filled in; :mod:`planeflow.plan.layout` makes the paths). merge has none:
    it writes the final ``suite2p/plane<p>/`` folder. ``memory(meta, config, part)``: MB of the
    job's own process; ``minutes``: wall time of one attempt, plus ``extra_minutes(meta, config)``
    for steps whose time grows with the data. ``priority``: Snakemake's ``priority:`` (higher
    starts first when jobs wait for cores). ``torch``: runs suite2p/cellpose on torch (gets GPUs
    when ``gpu.enabled``). ``imports``: the large packages its job may import. ``suite2p``: the
    names of :mod:`planeflow.suite2p_api` it calls. ``settings``: the
    config sections it reads. ``when``: the condition (:data:`CONDITIONS`) under which it runs
    for a session; ``export``: it only adds files of its own (no other step reads them). ``groups``:
    the ``group_jobs`` values that put it in the per-plane group job.
    """

    name: str
    scope: str
    summary: str
    memory: Callable[[dict, dict, object], float]
    minutes: int
    extra_minutes: Callable[[dict, dict], float] | None = None
    files: dict = field(default_factory=dict)
    priority: int = 0
    threads: int = 1
    torch: bool = False
    imports: tuple = ()
    suite2p: tuple = ()
    settings: tuple = ()
    when: str = "always"
    export: bool = False
    groups: tuple = ()
    #: outputs (keys of ``files``) that ``cleanup`` removes once every step that reads them is done
    removable: tuple = ()

    def estimate(self, meta: dict, config: dict, attempt: int, part=None) -> dict:
        """``{"mem_mb": .., "runtime": ..}`` of an attempt (1, 2, ...): both grow with it; memory
        includes the Snakemake process that runs the job (``resources.RUNNER_MB``)."""
        minutes = self.minutes + (self.extra_minutes(meta, config) if self.extra_minutes else 0)
        return {"mem_mb": int((self.memory(meta, config, part) + res.RUNNER_MB) * attempt),
                "runtime": int(minutes * attempt)}


_S2P = ("suite2p", "torch")
#: the suite2p names (planeflow.suite2p_api) of a registration and of an extraction
_REGISTER = ("BinaryFile", "registration_wrapper", "get_pc_metrics", "highpass_mean_image", "compute_filters_and_norm",
             "shift_frames", "compute_crop", "registration_outputs_to_dict", "rigid_phasecorr", "nonrigid_phasecorr",
             "bidiphase_shift")
_EXTRACT = ("BinaryFile", "extraction_wrapper", "assign_overlaps", "preprocess", "oasis", "classify",
            "builtin_classfile", "user_classfile")
#: every step, in workflow order
STEPS: dict[str, Step] = {s.name: s for s in (
    Step("binary_write", "part", "stream one plane (part) of the raw recording into suite2p's int16 binary",
         res.mem_binary_write, 60, files={"bin": "data_raw.bin", "ops": "ops.npy"}, priority=3, removable=("bin",),
         settings=("binary_write", "acquisition"), groups=("plane",)),
    Step("rigid_shifts", "part", "suite2p's rigid pass of one plane (part), shifts only (shared motion)",
         res.mem_rigid_shifts, 60, files={"shifts": "shifts.npz"}, priority=2, torch=True,
         imports=_S2P, suite2p=("BinaryFile", "compute_reference", "compute_filters_and_norm", "rigid_phasecorr",
                                "bidiphase_compute", "bidiphase_shift"),
         settings=("suite2p", "registration"), when="shared_motion"),
    Step("shared_motion", "session", "the consensus rigid motion of a session's planes",
         res.mem_shared_motion, 15, files={"shifts": "shifts.npz"}, settings=("registration",),
         when="shared_motion"),
    Step("registration", "part", "suite2p registration of one plane (part)",
         res.mem_registration, 120, files={"bin": "data.bin", "ops": "ops.npy"}, priority=2, torch=True,
         imports=(*_S2P, "torchvision"), suite2p=_REGISTER, settings=("suite2p", "registration"),
         groups=("plane",)),
    Step("crosstalk", "session", "crosstalk coefficient per plane separation (volume.crosstalk: subtract)",
         res.mem_crosstalk, 10, extra_minutes=res.minutes_crosstalk, files={"table": "coefficients.tsv"},
         settings=("volume", "suite2p"), when="crosstalk_subtract", threads=res.CROSSTALK_THREADS),
    Step("crosstalk_subtract", "part", "a plane's registered binary minus the other planes' crosstalk",
         res.mem_crosstalk_subtract, 30, extra_minutes=res.minutes_crosstalk_subtract,
         files={"bin": "data.bin", "ops": "ops.npy"}, priority=1, settings=("volume",),
         when="crosstalk_subtract"),
    Step("detection", "part", "suite2p detection, extraction, deconvolution and classification",
         res.mem_detection, 180, files={"stat": "stat.npy", "iscell": "iscell.npy", "F": "F.npy",
                                        "Fneu": "Fneu.npy", "spks": "spks.npy", "ops": "ops.npy"},
         removable=("stat", "iscell", "F", "Fneu", "spks", "ops"), priority=1, torch=True,
         imports=(*_S2P, "sklearn"), suite2p=("detection_wrapper", *_EXTRACT),
         settings=("suite2p",), groups=("plane",)),
    Step("postprocess", "part", "dF/F, cell filters, per-ROI statistics and figures",
         res.mem_postprocess, 30, files={"ops": "ops.npy", "stat": "stat.npy", "iscell": "iscell.npy",
                                         "dff": "dff.npy", "roi_stats": "roi_stats.tsv"},
         removable=("ops", "stat", "iscell", "dff"), settings=("postprocess",), groups=("short", "plane")),
    Step("merge", "plane", "a plane's final suite2p folder from its parts", res.mem_merge, 30,
         groups=("short", "plane")),
    # plane offsets, crosstalk, one ID per cell (rois, cells) and their figure (view); then the planes
    # table, the summary, the aligned OME-Zarr volume (a folder) and the summary figure
    Step("volume_stats", "session", "plane offsets, crosstalk, one ID per cell, the OME-Zarr volume",
         res.mem_volume_stats, 30, settings=("volume",), threads=res.CROSSTALK_THREADS,
         files={"offsets": "plane_offsets.tsv", "crosstalk": "crosstalk.tsv", "rois": "rois.tsv",
                "cells": "cells.tsv", "view": "volume_view.png", "table": "planes.tsv", "summary": "volume.json",
                "zarr": "volume.zarr", "figure": "summary.png"}),
    Step("qc", "session", "a verdict with reasons for every plane", res.mem_qc, 30, settings=("qc",),
         files={"table": "qc.tsv", "json": "qc.json", "shifts": "shifts.png", "table_figure": "qc_table.png"}),
    Step("cellpose_export", "plane", "a plane's ROIs for the cellpose GUI", res.mem_cellpose_export, 15,
         settings=("cellpose",), when="cellpose_export", export=True,
         files={"masks": "masks.npy", "image": "plane{plane}.tif", "seg": "plane{plane}_seg.npy",
                "conversion_meta": "conversion_meta.npy"}),
    Step("cellpose_import", "plane", "an edited cellpose _seg.npy back to suite2p",
         res.mem_cellpose_import, 60, torch=True, imports=(*_S2P, "cellpose", "cellpose.models", "sklearn"),
         suite2p=(*_EXTRACT, "roi_stats", "masks_to_stats"),
         files={k: f"{k}.npy" for k in ("ops", "stat", "iscell", "F", "Fneu", "spks", "conversion_meta")},
         settings=("cellpose", "suite2p"), when="on_request", export=True),
    Step("nwb_export", "session", "a session's results as one NWB file", res.mem_nwb_export, 30,
         extra_minutes=res.minutes_nwb_export, imports=("pynwb",), settings=("nwb_export",),
         when="nwb_export", export=True, files={"nwb": "{session}.nwb"}),
    Step("mat_export", "plane", "a plane's results as suite2p's Fall.mat (MATLAB)", res.mem_mat_export, 15,
         files={"mat": "Fall.mat"}, imports=("suite2p",), suite2p=("save_mat",), settings=("suite2p",),
         when="mat_export", export=True),
    # the same neuron across the sessions of one subject, in 3-D (after every session's volume_stats)
    Step("tracking", "subject", "the same neuron followed across a subject's sessions, in 3-D",
         res.mem_tracking, 30, extra_minutes=res.minutes_tracking, settings=("tracking",), when="tracking",
         files={"cells": "tracked_cells.tsv", "tracks": "tracks.tsv", "pairs": "pairs.tsv",
                "figure": "tracking.png", "summary": "tracking.json"}),
    Step("raw_compress", "session", "the raw files packed into one verified archive",
         res.mem_raw_compress, 30, extra_minutes=res.minutes_raw_compress, settings=("raw_compress",),
         when="raw_compress", export=True, files={"archive": "{session}_raw.{format}", "manifest": "manifest.json"}),
)}

#: when a step runs for a session (``Step.when``): (meta, config) -> bool. ``on_request`` steps
#: are never in the default target (``snakemake cellpose_import_all`` asks for them).
CONDITIONS: dict[str, Callable[[dict, dict], bool]] = {
    "always": lambda meta, config: True,
    # uses suite2p's registration internals: only with the tested suite2p (planeflow.suite2p_api)
    "shared_motion": lambda meta, config: shared_motion_enabled(meta, config) and suite2p_api.private_ok(),
    "crosstalk_subtract": crosstalk_subtract_enabled,
    "cellpose_export": lambda meta, config: bool(config["cellpose"]["export"]),
    "nwb_export": lambda meta, config: meta["session_id"] in nwb_meta.sessions_to_export(config),
    "raw_compress": lambda meta, config: bool(config["raw_compress"]["enabled"]),
    # suite2p's own setting: its pipeline writes Fall.mat then
    "mat_export": lambda meta, config: bool(((config.get("suite2p") or {}).get("io") or {}).get("save_mat")),
    "on_request": lambda meta, config: False,
    # a subject's step: ``meta`` is the subject's (:func:`subject_meta`)
    "tracking": lambda meta, config: bool((config.get("tracking") or {}).get("enabled", True)),
}

#: the large packages any step's job may import (named in each job's log)
HEAVY_PACKAGES = tuple(dict.fromkeys(p for s in STEPS.values() for p in s.imports))


def step(name: str) -> Step:
    try:
        return STEPS[name]
    except KeyError:
        raise KeyError(f"no step '{name}' in planeflow.plan.registry.STEPS") from None


def of_scope(scope: str) -> tuple[str, ...]:
    """Names of the steps of one scope, in workflow order."""
    return tuple(n for n, s in STEPS.items() if s.scope == scope)


#: ``cleanup`` settings (config) -> the step outputs (step, output key) they remove
CLEANUP = {setting: tuple((n, k) for n in steps for k in STEPS[n].removable)
           for setting, steps in (("raw_binary", ("binary_write",)), ("intermediates", ("detection", "postprocess")))}


def removed_outputs(config: dict) -> set:
    """(step, output key) of the intermediates the run removes once every step that reads them
    is done (config ``cleanup``; Snakemake's ``temp()``)."""
    cleanup = dict(config.get("cleanup") or {})
    rc = config.get("raw_compress") or {}
    if rc.get("enabled") and rc.get("delete_originals"):
        cleanup["raw_binary"] = False  # the raw files go: the binaries are what the steps can rerun from
    return {out for k, on in cleanup.items() if on and k in CLEANUP for out in CLEANUP[k]}


def enabled(name: str, meta: dict, config: dict) -> bool:
    """Whether step ``name`` runs for the session of ``meta`` under ``config`` (default target)."""
    return CONDITIONS[step(name).when](meta, config)


class Job(NamedTuple):
    """One job of a session: plane and part are None where the step's scope has none."""

    step: str
    plane: int | None = None
    part: int | None = None


def session_jobs(meta: dict, config: dict | None, exports: bool = False,
                 steps: list[str] | None = None) -> list[Job]:
    """Every job the default target runs for one session under ``config``, in workflow order
    (``exports``: also every export step, switched on or not, and those run only when asked for,
    such as cellpose_import, for every plane). ``steps`` instead of ``config``: the jobs of these
    steps."""
    planes = meta.get("planes") or []
    nparts = len(meta.get("parts") or [None])
    jobs: list[Job] = []
    for name, s in STEPS.items():
        if steps is not None:
            if name not in steps:
                continue
        elif not (enabled(name, meta, config) or exports and s.export):
            continue
        if s.scope == "subject":
            continue  # subject_jobs
        if s.scope == "part":
            jobs += [Job(name, int(p), q) for p in planes for q in range(nparts)]
        elif s.scope == "plane":
            jobs += [Job(name, int(p)) for p in planes]
        else:
            jobs.append(Job(name))
    return jobs


def subject_meta(subject: str, metas: list[dict]) -> dict:
    """What a subject's steps know of it: its id and its sessions' metadata (sheet order)."""
    return {"subject": subject, "sessions": list(metas)}


def subject_jobs(meta: dict, config: dict | None, steps: list[str] | None = None) -> list[Job]:
    """The jobs of one subject (:func:`subject_meta`) under ``config`` (``steps``: of these steps)."""
    return [Job(n) for n, s in STEPS.items() if s.scope == "subject"
            and (n in steps if steps is not None else enabled(n, meta, config))]


def grouped_steps(group_jobs: str, shared_motion: bool, crosstalk_subtract: bool) -> tuple[str, ...]:
    """The steps one cluster job per plane runs together under config ``group_jobs``. With shared
    motion anywhere, registration waits for every plane's binary (through shared_motion), so
    binary_write leaves the group; with crosstalk subtraction, detection waits for every plane's
    registration (through crosstalk), so registration leaves it."""
    names = [n for n, s in STEPS.items() if group_jobs in s.groups]
    if shared_motion:
        names = [n for n in names if n != "binary_write"]
    if crosstalk_subtract:
        names = [n for n in names if n != "registration"]
    return tuple(names)
