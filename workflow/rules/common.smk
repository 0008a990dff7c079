# Config loading, validation and input functions. Runs every time the Snakefile is
# parsed (including inside every cluster job), so it must stay cheap: it reads the
# config, the sessions sheet and each session's cached metadata.json, never raw data.
import os
import sys

from snakemake.utils import min_version, validate as sm_validate

from planeflow import PlaneflowError
from planeflow.plan import config as pfconfig
from planeflow.plan import nwb_meta as pfnwb
from planeflow.plan import project as pfproject
from planeflow.plan import layout as pflayout
from planeflow.plan import registry as pfreg
from planeflow.plan.session import session_fields

from planeflow import suite2p_api

min_version("9.0")

if _s2p_warning := suite2p_api.version_warning():  # another suite2p than the tested one
    sys.stderr.write(f"planeflow: warning: {_s2p_warning}\n")


def _fail(err):
    sys.stderr.write(f"planeflow: error: {err}\n")
    raise SystemExit(1)


try:
    # `--config key=value` overrides arrive as strings: read them as the schemas' types
    config.update(
        pfconfig.coerce_config(
            config, pfconfig.load_schema("config.schema.yaml"), pfconfig.load_schema("suite2p_settings.schema.yaml")
        )
    )
    # every problem of the config, the sheet and each session's raw files, reported together;
    # Snakemake's validation fills in the schema's defaults once the config is valid
    PROJECT = pfproject.load(config, lambda c: sm_validate(c, str(pfconfig.SCHEMA_DIR / "config.schema.yaml")))
except PlaneflowError as e:
    _fail(e)
for _warning in PROJECT.warnings:
    sys.stderr.write(f"planeflow: warning: {_warning}\n")
LAYOUT = PROJECT.layout
SESSION_ROWS = PROJECT.rows
NWB_MODE, NWB_META = PROJECT.nwb_mode, PROJECT.nwb_meta
META = PROJECT.meta
VOLUME_OFFSETS = PROJECT.volume_offsets
#: sessions whose crosstalk is taken out of the binaries before detection (volume.crosstalk: subtract)
CROSSTALK_SUBTRACT = PROJECT.crosstalk_subtract
#: sessions registered with shared motion (config registration.shared_motion)
SHARED_MOTION = PROJECT.shared_motion
#: subject_id -> its sessions (sheet order) tracked together (config tracking)
SUBJECTS = PROJECT.subjects
SESSION_SUBJECT = {s: sub for sub, sessions in SUBJECTS.items() for s in sessions}


wildcard_constraints:
    session="[A-Za-z0-9][A-Za-z0-9_.-]*",
    plane=r"\d+",
    part=r"\d+",
    subject="[A-Za-z0-9][A-Za-z0-9_.-]*",


# ---- paths: every one comes from planeflow.plan.layout ----------------------------------
S, P, Q = "{session}", "{plane}", "{part}"  # wildcard placeholders for the layout


def part_file(step, key):
    """Pattern of one output of a per-part step."""
    return LAYOUT.part_file(step, key, S, P, Q)


#: (step, output) of the intermediates removed once every job that reads them is done (config cleanup)
REMOVED = pfreg.removed_outputs(config)


def part_outputs(step):
    """Patterns of every output of a per-part step, by output name; the intermediates the
    config's cleanup removes are temp()."""
    files = LAYOUT.part_files(step, S, P, Q)
    return {k: temp(f) if (step, k) in REMOVED else f for k, f in files.items()}


def plane_figure(key):
    """A postprocess figure, shown in `snakemake --report` under its session and plane with
    the caption workflow/report/<name>.rst."""
    name, label = pflayout.FIGURES[key]
    return report(
        LAYOUT.figure(key, S, P, Q),
        caption=f"../report/{name}.rst",
        category=S,
        subcategory="plane {plane}",
        labels={"figure": label, "part": Q},
    )


def log_path(step):
    return LAYOUT.log(step, S, P, Q)


def bench_path(step):
    return LAYOUT.benchmark(step, S, P, Q)


# ---- input functions -----------------------------------------------------------------
def n_parts(session):
    return len(META[session]["parts"])


def session_overrides(session):
    return pfconfig.session_overrides(config, META[session], SESSION_ROWS[session])


def suite2p_params(step):
    """Input function for a rule's params: the suite2p settings that step uses."""
    return lambda wc: pfconfig.step_overrides(session_overrides(wc.session), step)


#: every step's record (planeflow.plan.registry): rules read their threads and priority here
STEP = pfreg.STEPS


def step_resources(step):
    """A rule's resources: memory and wall time from the step's record (both grow with each
    attempt), and the GPUs of the torch steps when GPUs are on (a resource is evaluated for
    every job, so an unused one is not declared at all)."""
    rec = STEP[step]
    per_part = rec.scope == "part"

    def meta(wc):
        return subject_meta(wc.subject) if rec.scope == "subject" else META[wc.session]

    def mem_mb(wc, attempt):
        return rec.estimate(meta(wc), config, attempt, wc.part if per_part else None)["mem_mb"]

    def runtime(wc, attempt):
        return rec.estimate(meta(wc), config, attempt)["runtime"]

    res = {"mem_mb": mem_mb, "runtime": runtime}
    if rec.torch and config["gpu"]["enabled"]:
        res["gpu"] = config["gpu"]["count"]
    return res


#: the steps that share one cluster job per plane (config group_jobs; planeflow.plan.registry)
GROUPED = pfreg.grouped_steps(config["group_jobs"], any(SHARED_MOTION.values()), any(CROSSTALK_SUBTRACT.values()))


def group_for(step):
    """Snakemake group of a step (None = its own job). Grouped jobs of one plane are
    connected, so Snakemake submits one job per plane and group."""
    return "plane_steps" if step in GROUPED else None


def registration_inputs(wc):
    """The plane's binary and its ops; with shared motion also the session's consensus and
    the plane's own rigid pass (its reference image)."""
    files = {
        "ops": LAYOUT.part_file("binary_write", "ops", wc.session, wc.plane, wc.part),
        "bin": LAYOUT.part_file("binary_write", "bin", wc.session, wc.plane, wc.part),
    }
    if SHARED_MOTION[wc.session]:
        files["shared"] = LAYOUT.shared_motion(wc.session)
        files["rigid"] = LAYOUT.part_file("rigid_shifts", "shifts", wc.session, wc.plane, wc.part)
    return files


def detected_binary(session, plane, part, key="bin"):
    """The binary detection reads (``key="ops"``: its ops): registration's, or with
    volume.crosstalk: subtract the one with crosstalk taken out (rule crosstalk_subtract).
    Every step that reads the movie ROIs are found in (detection, cellpose_import) asks here."""
    step = "crosstalk_subtract" if CROSSTALK_SUBTRACT[session] else "registration"
    return LAYOUT.part_file(step, key, session, plane, part)


def detection_inputs(wc):
    """The binary detection reads and its ops (detected_binary)."""
    return {k: detected_binary(wc.session, wc.plane, wc.part, k) for k in ("ops", "bin")}


def cellpose_import_binary(wc):
    """The binary cellpose_import re-extracts traces from: detection's (detected_binary), of
    part 0 (cellpose works on whole planes: roi_mode stitch or whole)."""
    return detected_binary(wc.session, wc.plane, 0)


def crosstalk_inputs(wc):
    """Every plane's and part's registration outputs (session order)."""
    pp = session_planes_parts(wc.session)
    return {
        "ops": [LAYOUT.part_file("registration", "ops", wc.session, p, q) for p, q in pp],
        "bins": [LAYOUT.part_file("registration", "bin", wc.session, p, q) for p, q in pp],
    }


def crosstalk_options(session):
    """Rule crosstalk's settings: the volume settings it uses and the session's ROI diameter
    (its suite2p setting from the config and the sessions sheet; None = suite2p's default).
    Only these, so that changing another volume setting does not rerun it."""
    v = config["volume"]
    return {
        "crosstalk_max_separation": v["crosstalk_max_separation"],
        "crosstalk_frames": v["crosstalk_frames"],
        "crosstalk_min": v["crosstalk_min"],
        "diameter": session_overrides(session).get("diameter"),
    }


def crosstalk_index_parts(session):
    """(plane index, part) of crosstalk_inputs, in the same order."""
    planes = [int(p) for p in META[session]["planes"]]
    return [(planes.index(int(p)), q) for p, q in session_planes_parts(session)]


def crosstalk_sources(wc):
    """The planes whose crosstalk into this one may be subtracted: those within
    volume.crosstalk_max_separation, with their separation (this plane's index minus theirs)."""
    planes = [int(p) for p in META[wc.session]["planes"]]
    i = planes.index(int(wc.plane))
    D = int(config["volume"]["crosstalk_max_separation"])
    return [
        {"plane": planes[j], "separation": i - j} for j in range(max(0, i - D), min(len(planes), i + D + 1)) if j != i
    ]


def crosstalk_subtract_inputs(wc):
    src = crosstalk_sources(wc)
    return {
        "ops": LAYOUT.part_file("registration", "ops", wc.session, wc.plane, wc.part),
        "bin": LAYOUT.part_file("registration", "bin", wc.session, wc.plane, wc.part),
        "table": LAYOUT.crosstalk(wc.session),
        "src_ops": [LAYOUT.part_file("registration", "ops", wc.session, s["plane"], wc.part) for s in src],
        "src_bins": [LAYOUT.part_file("registration", "bin", wc.session, s["plane"], wc.part) for s in src],
    }


def session_planes_parts(session):
    """(plane, part) of every plane and part of a session, plane by plane."""
    m = META[session]
    return [(p, q) for p in m["planes"] for q in range(len(m["parts"]))]


def shared_motion_inputs(wc):
    return [LAYOUT.part_file("rigid_shifts", "shifts", wc.session, p, q) for p, q in session_planes_parts(wc.session)]


def merge_inputs(wc):
    """Each part's arrays of the final folder (and registration's ops), named <input>_<part>."""
    return {
        f"{name}_{q}": LAYOUT.part_file(step, key, wc.session, wc.plane, q)
        for q in range(n_parts(wc.session))
        for name, (step, key) in pflayout.MERGE_INPUTS.items()
    }


def final_plane_dirs(wc):
    """The final suite2p folders (merge's directory outputs) of a session's planes."""
    return [LAYOUT.plane_dir(wc.session, p) for p in META[wc.session]["planes"]]


def raw_compress_inputs(wc):
    """metadata.json (lists the raw files) and every binary_write output of the session."""
    m = META[wc.session]
    parts = [(p, q) for p in m["planes"] for q in range(len(m["parts"]))]
    return {
        "metadata": LAYOUT.metadata(wc.session),
        "bins": [LAYOUT.part_file("binary_write", "bin", wc.session, p, q) for p, q in parts],
        "ops": [LAYOUT.part_file("binary_write", "ops", wc.session, p, q) for p, q in parts],
    }


def nwb_inputs(wc):
    """Every final plane folder, volume_stats' rois.tsv, the subject's tracked_cells.tsv when the
    session is tracked, and with nwb_export.include_movie the registration binaries of every plane and part (plane by plane, part by part).
    """
    m = META[wc.session]
    files = {"planes": final_plane_dirs(wc), "volume_rois": LAYOUT.volume_file("rois", wc.session)}
    if wc.session in SESSION_SUBJECT:  # its track IDs (an added session of the subject reruns the export)
        files["tracked_cells"] = LAYOUT.subject_file("tracking", "cells", SESSION_SUBJECT[wc.session])
    if config["nwb_export"]["include_movie"]:
        files["movie"] = [
            LAYOUT.part_file("registration", "bin", wc.session, p, q)
            for p in m["planes"]
            for q in range(len(m["parts"]))
        ]
    return files


def volume_session(session):
    """What volume_stats needs of a session's metadata (for multi-ROI sessions also their scan fields)."""
    m = META[session]
    return {
        **{k: m[k] for k in ("session_id", "planes", "fs", "dx", "dy", "dz")},
        "nrois": m.get("nrois", 1),
        "fields": session_fields(m),
    }


def volume_options(session):
    """Rule volume_stats' settings (config volume:), the plane offset overrides checked against
    the session's planes at parse time, and the session's ROI diameter (as rule crosstalk's)."""
    return {**config["volume"], "offsets": VOLUME_OFFSETS[session], "diameter": crosstalk_options(session)["diameter"]}


def volume_inputs(wc):
    """Every final plane folder; the binaries detection read and their ops, part by part
    (crosstalk is measured on their frames); with volume.crosstalk: subtract, the
    coefficients that were taken out (rule crosstalk)."""
    pp = session_planes_parts(wc.session)
    files = {
        "planes": final_plane_dirs(wc),
        "bins": [detected_binary(wc.session, p, q) for p, q in pp],
        "parts_ops": [detected_binary(wc.session, p, q, "ops") for p, q in pp],
    }
    if CROSSTALK_SUBTRACT[wc.session]:
        files["subtracted"] = LAYOUT.crosstalk(wc.session)
    return files


def qc_inputs(wc):
    """Every final plane folder, each plane's registered binaries and their ops (part by
    part, plane by plane) for the signal measures, and the session's volume tables (ROI
    duplicates and ghosts, crosstalk)."""
    m = META[wc.session]
    parts = [(p, q) for p in m["planes"] for q in range(len(m["parts"]))]
    return {
        "planes": final_plane_dirs(wc),
        "rois": LAYOUT.volume_file("rois", wc.session),
        "crosstalk": LAYOUT.volume_file("crosstalk", wc.session),
        "bins": [LAYOUT.part_file("registration", "bin", wc.session, p, q) for p, q in parts],
        "parts_ops": [LAYOUT.part_file("registration", "ops", wc.session, p, q) for p, q in parts],
    }


def qc_session(wc):
    m = META[wc.session]
    return {
        "session_id": wc.session,
        "stack_type": m.get("stack_type"),
        "planes": m["planes"],
        "nparts": len(m["parts"]),
        "simultaneous": pfconfig.planes_simultaneous(m),
        "shared_motion": SHARED_MOTION[wc.session],
    }


def subject_meta(subject):
    """A subject's sessions' metadata (planeflow.plan.registry.subject_meta)."""
    return pfreg.subject_meta(subject, [META[s] for s in SUBJECTS[subject]])


def tracking_inputs(wc):
    """Each of the subject's sessions' volume tables and final plane folders (sheet order)."""
    sessions = SUBJECTS[wc.subject]
    files = {k: [LAYOUT.volume_file(k, s) for s in sessions] for k in ("cells", "rois", "offsets")}
    files["planes"] = [LAYOUT.plane_dir(s, p) for s in sessions for p in META[s]["planes"]]
    return files


def tracking_sessions(subject):
    """Rule tracking's view of each session: id, planes and voxel size."""
    return [{k: META[s][k] for k in ("session_id", "planes", "dx", "dy", "dz")} for s in SUBJECTS[subject]]


def tracking_options(subject):
    """Rule tracking's settings (config tracking:, without the switch); the reference session
    only for the subject it belongs to (the others start from their first session)."""
    opts = {k: v for k, v in config["tracking"].items() if k != "enabled"}
    if opts.get("reference") not in SUBJECTS[subject]:
        opts["reference"] = None
    return opts


def all_outputs():
    sessions = [f for sid in META for f in LAYOUT.session_targets(META[sid], config)]
    return sessions + [f for sub in SUBJECTS for f in LAYOUT.subject_targets(subject_meta(sub), config)]


def cellpose_seg_path(session, plane):
    """The edited _seg.npy of a plane (config cellpose.import_seg)."""
    pattern = config["cellpose"]["import_seg"]
    return pattern.replace("{session}", str(session)).replace("{plane}", str(plane))


def cellpose_import_seg(wc):
    return cellpose_seg_path(wc.session, wc.plane)


def cellpose_import_targets():
    """Outputs of rule cellpose_import for every plane whose edited _seg.npy exists
    (one stat() per plane, only when the cellpose_import_all target is asked for)."""
    return [
        LAYOUT.cellpose_import("ops", sid, p)
        for sid in META
        for p in META[sid]["planes"]
        if os.path.isfile(cellpose_seg_path(sid, p))
    ]
