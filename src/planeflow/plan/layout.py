"""The results layout: the one place that knows where every output of planeflow lives.

Rules, input functions, scripts, steps, the status command and the tests ask this module
for paths and file names; no other code builds a path under the results folder.

Every method takes ``session``, ``plane`` and ``part``; pass the strings ``"{session}"``,
``"{plane}"`` and ``"{part}"`` to get the wildcard patterns the rules declare::

    lay = Layout("results")
    lay.part_file("registration", "bin", "{session}", "{plane}", "{part}")
    # 'results/{session}/registration/plane{plane}/part{part}/data.bin'
    lay.plane_dir("demo", 3)      # 'results/demo/suite2p/plane3'

Pure standard library and string work: it runs every time the Snakefile is parsed.
"""
from __future__ import annotations

import os

from planeflow.plan import registry

#: per-part steps that run for every session (one job per plane and part), in workflow order
PART_STEPS = tuple(n for n in registry.of_scope("part") if registry.STEPS[n].when == "always")

#: the files each per-part step writes: output name -> file name in its part folder (registry)
PART_FILES = {n: registry.STEPS[n].files for n in registry.of_scope("part")}

#: postprocess figures: output name -> (file stem under the part's figures/, report label)
FIGURES = {
    "fig_rois": ("mean_rois", "mean image and ROIs"),
    "fig_shifts": ("registration_shifts", "registration shifts"),
    "fig_traces": ("traces", "F and dF/F traces"),
}

#: the arrays of a plane's final suite2p folder and the per-part step each comes from
PLANE_ARRAYS = {"ops": "postprocess", "stat": "postprocess", "iscell": "postprocess", "dff": "postprocess",
                "F": "detection", "Fneu": "detection", "spks": "detection"}
#: what merge reads of each part: input name -> (step, output); registration's ops for
#: suite2p's registration metrics, which only it and the final folder keep (io.planefiles.REG_METRICS)
MERGE_INPUTS = {**{name: (step, name) for name, step in PLANE_ARRAYS.items()}, "reg_ops": ("registration", "ops")}
#: suite2p 1.x's split of ops, written next to ops.npy in the final folder
SUITE2P_SPLIT = ("db", "settings", "reg_outputs", "detect_outputs")
#: every file of a final ``suite2p/plane<i>/`` folder, by name (file = name + ".npy")
PLANE_FILES = (*PLANE_ARRAYS, *SUITE2P_SPLIT)

#: the outputs of the per-plane and per-session steps: output name -> file name (the registry's)
VOLUME_FILES = registry.STEPS["volume_stats"].files
QC_FILES = registry.STEPS["qc"].files
CELLPOSE_EXPORT_FILES = registry.STEPS["cellpose_export"].files
CELLPOSE_IMPORT_FILES = registry.STEPS["cellpose_import"].files

METADATA = "metadata.json"
#: the folder under the results folder that holds one folder per subject (per-subject steps)
SUBJECTS = "subjects"

#: how often each step runs: "part" (plane x part), "plane", or "session" (registry)
STEP_SCOPE = {n: st.scope for n, st in registry.STEPS.items()}


class Layout:
    """Paths under one results folder (``results_dir`` of the config)."""

    def __init__(self, results_dir: str | os.PathLike):
        self.root = os.path.normpath(os.fspath(results_dir))

    # ---- per session -------------------------------------------------------------------
    def session_dir(self, session) -> str:
        return f"{self.root}/{session}"

    def step_dir(self, step: str, session) -> str:
        """A step's folder in a session (per-session steps write directly into it)."""
        return f"{self.root}/{session}/{step}"

    def metadata(self, session) -> str:
        """The session's cached metadata (facts read from the raw files' headers)."""
        return f"{self.root}/{session}/{METADATA}"

    def step_file(self, step: str, key: str, session, plane=None, part=None, fmt: str | None = None) -> str:
        """Output ``key`` of ``step`` (its record's ``files``): in the part's folder, the
        step's ``plane<p>/`` folder, or the step's folder, by the step's scope."""
        name = registry.STEPS[step].files[key].replace("{session}", str(session))
        name = name.replace("{plane}", str(plane)).replace("{format}", str(fmt))
        scope = STEP_SCOPE[step]
        if scope == "subject":  # ``session`` is the subject
            return f"{self.subject_dir(session)}/{name}"
        if scope == "part":
            return f"{self.part_dir(step, session, plane, part)}/{name}"
        if scope == "plane":
            return f"{self.step_dir(step, session)}/plane{plane}/{name}"
        return f"{self.step_dir(step, session)}/{name}"

    def volume_file(self, key: str, session) -> str:
        return self.step_file("volume_stats", key, session)

    def qc_file(self, key: str, session) -> str:
        return self.step_file("qc", key, session)

    def shared_motion(self, session) -> str:
        """The consensus rigid shifts of a session (shared motion on)."""
        return self.step_file("shared_motion", "shifts", session)

    def crosstalk(self, session) -> str:
        """The crosstalk coefficients subtracted from a session's binaries (volume.crosstalk: subtract)."""
        return self.step_file("crosstalk", "table", session)

    def nwb(self, session) -> str:
        return self.step_file("nwb_export", "nwb", session)

    def archive(self, session, fmt: str) -> str:
        return self.step_file("raw_compress", "archive", session, fmt=fmt)

    def manifest(self, session) -> str:
        return self.step_file("raw_compress", "manifest", session)

    # ---- per subject -------------------------------------------------------------------
    def subject_dir(self, subject) -> str:
        """A subject's folder: the outputs of its steps (tracking), their logs and benchmarks."""
        return f"{self.root}/{SUBJECTS}/{subject}"

    def subject_file(self, step: str, key: str, subject) -> str:
        return self.step_file(step, key, subject)

    def subject_targets(self, meta: dict, config: dict) -> list[str]:
        """What the default target asks for of a subject (``meta``: registry.subject_meta)."""
        return [f for job in registry.subject_jobs(meta, config)
                for f in self.job_outputs(job, meta["subject"], config)]

    # ---- per plane and part ------------------------------------------------------------
    def part_dir(self, step: str, session, plane, part) -> str:
        return f"{self.root}/{session}/{step}/plane{plane}/part{part}"

    def part_file(self, step: str, key: str, session, plane, part) -> str:
        return self.step_file(step, key, session, plane, part)

    def part_files(self, step: str, session, plane, part) -> dict:
        """Every output of a per-part step: output name -> path."""
        return {k: self.step_file(step, k, session, plane, part) for k in PART_FILES[step]}

    def figure(self, key: str, session, plane, part) -> str:
        return f"{self.part_dir('postprocess', session, plane, part)}/figures/{FIGURES[key][0]}.png"

    def plane_dir(self, session, plane) -> str:
        """A plane's final suite2p folder (merge's one directory output)."""
        return f"{self.root}/{session}/suite2p/plane{plane}"

    def plane_file(self, session, plane, name: str) -> str:
        return f"{self.plane_dir(session, plane)}/{name}.npy"

    def cellpose_export(self, key: str, session, plane) -> str:
        return self.step_file("cellpose_export", key, session, plane)

    def cellpose_import(self, key: str, session, plane) -> str:
        return self.step_file("cellpose_import", key, session, plane)

    # ---- logs and benchmarks -----------------------------------------------------------
    def _job_name(self, step: str, plane, part) -> str:
        scope = STEP_SCOPE[step]
        if scope == "part":
            return f"plane{plane}_part{part}"
        return f"plane{plane}" if scope == "plane" else "session"

    def log(self, step: str, session, plane=None, part=None) -> str:
        """The log of one job (per part, per plane or per session, by the step's scope; per
        subject: ``session`` is the subject)."""
        if STEP_SCOPE[step] == "subject":
            return f"{self.subject_dir(session)}/logs/{step}.log"
        return f"{self.root}/{session}/logs/{step}/{self._job_name(step, plane, part)}.log"

    def benchmark(self, step: str, session, plane=None, part=None) -> str:
        if STEP_SCOPE[step] == "subject":
            return f"{self.subject_dir(session)}/benchmarks/{step}.tsv"
        return f"{self.root}/{session}/benchmarks/{step}/{self._job_name(step, plane, part)}.tsv"

    # ---- jobs ------------------------------------------------------------------------
    def job_outputs(self, job: registry.Job, session, config: dict, kept: bool = False) -> list[str]:
        """Every output a job (planeflow.plan.registry.Job) declares: its step's files (and
        postprocess' figures), merge's final plane folder; folders for merge and the zarr volume.
        ``kept``: only those a finished run keeps (not the intermediates ``cleanup`` removes)."""
        step, p, q = job
        if step == "merge":
            return [self.plane_dir(session, p)]
        fmt = (config.get("raw_compress") or {}).get("format") if step == "raw_compress" else None
        keys = registry.STEPS[step].files
        if kept:
            removed = {k for s, k in registry.removed_outputs(config) if s == step}
            keys = [k for k in keys if k not in removed]
        out = [self.step_file(step, k, session, p, q, fmt) for k in keys]
        return out + [self.figure(k, session, p, q) for k in FIGURES] if step == "postprocess" else out

    # ---- a whole session ---------------------------------------------------------------
    def session_outputs(self, meta: dict, config: dict, optional: bool = False) -> list[str]:
        """Every file and folder a finished run of ``config`` leaves for the session of
        ``meta`` (cached metadata): outputs, logs and benchmarks, one path each (final
        plane folders and the zarr volume as folders), for the jobs of
        :func:`planeflow.plan.registry.session_jobs`. ``optional``: also every output the
        export steps could add (all exports on, cellpose_import of every plane)."""
        sid = meta["session_id"]
        out = [self.metadata(sid)]
        for job in registry.session_jobs(meta, config, exports=optional):
            out += self.job_outputs(job, sid, config, kept=True)
            out += [self.log(job.step, sid, job.plane, job.part), self.benchmark(job.step, sid, job.plane, job.part)]
        return out

    def session_targets(self, meta: dict, config: dict) -> list[str]:
        """What the default target asks for: the files of the session's jobs that are not per
        part, from :func:`planeflow.plan.registry.session_jobs` (they need every plane's final
        folder, so listing the folders too would only cost DAG time)."""
        sid = meta["session_id"]
        folders = {self.volume_file("zarr", sid)}
        return [f for job in registry.session_jobs(meta, config)
                if STEP_SCOPE[job.step] != "part" and job.step != "merge"
                for f in self.job_outputs(job, sid, config) if f not in folders]


def plane_folder_files(folder: str) -> dict:
    """Every file of a final plane folder given by its path: name -> path."""
    return {k: os.path.join(folder, f"{k}.npy") for k in PLANE_FILES}
