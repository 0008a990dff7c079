# Config loading, validation and input functions. Runs every time the Snakefile is
# parsed (including inside every cluster job), so it must stay cheap: it reads the
# config, the sessions sheet and each session's cached metadata.json, never raw data.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from snakemake.utils import min_version, validate as sm_validate

from planeflow import PlaneflowError
from planeflow.plan import config as pfconfig
from planeflow.plan import nwb_meta as pfnwb
from planeflow.plan.session import metadata_path, session_metadata

min_version("9.0")

SCHEMAS = Path(workflow.basedir) / "workflow" / "schemas"
SCRIPTS = Path(workflow.basedir) / "scripts"


def _fail(err):
    sys.stderr.write(f"planeflow: error: {err}\n")
    raise SystemExit(1)


try:
    pfconfig.validate(config, pfconfig.load_schema("config.schema.yaml", SCHEMAS), "config")
    pfconfig.validate(config.get("suite2p") or {},
                      pfconfig.load_schema("suite2p_settings.schema.yaml", SCHEMAS), "config suite2p")
    sm_validate(config, str(SCHEMAS / "config.schema.yaml"))  # fills in defaults
    RESULTS = os.path.normpath(config["results_dir"])
    SESSION_ROWS = {r["session_id"]: r for r in pfconfig.read_sessions(config["sessions"])}
    pfconfig.validate_sessions(list(SESSION_ROWS.values()), config["sessions"],
                               pfconfig.load_schema("sessions.schema.yaml", SCHEMAS))
    # NWB subject/session metadata: checked before anything is read or written
    NWB_META = (pfnwb.check_sessions(SESSION_ROWS, config["nwb_export"], config["sessions"])
                if config["nwb_export"]["enabled"] else {})
    # the NWB columns are left out so that editing them keeps the cached metadata valid
    META = {sid: session_metadata(pfnwb.strip_nwb_columns(row), RESULTS, config["acquisition"])
            for sid, row in SESSION_ROWS.items()}
except PlaneflowError as e:
    _fail(e)


wildcard_constraints:
    session="[A-Za-z0-9][A-Za-z0-9_.-]*",
    plane=r"\d+",
    part=r"\d+",


# ---- paths ---------------------------------------------------------------------------
SESSION_DIR = f"{RESULTS}/{{session}}"
PART = "plane{plane}/part{part}"


def step_dir(step):
    """Per-part folder of an intermediate step."""
    return f"{SESSION_DIR}/{step}/{PART}"


def plane_figure(name, label):
    """A per-plane postprocess figure, shown in `snakemake --report` under its session and
    plane with the caption workflow/report/<name>.rst."""
    return report(f"{step_dir('postprocess')}/figures/{name}.png", caption=f"../report/{name}.rst",
                  category="{session}", subcategory="plane {plane}",
                  labels={"figure": label, "part": "{part}"})


def log_path(step):
    return f"{SESSION_DIR}/logs/{step}/plane{{plane}}_part{{part}}.log"


def bench_path(step):
    return f"{SESSION_DIR}/benchmarks/{step}/plane{{plane}}_part{{part}}.tsv"


#: a plane's final suite2p folder: merge's one directory output (the files in it are
#: planeflow.steps.merge.OUTPUT_NAMES)
FINAL_DIR = f"{SESSION_DIR}/suite2p/plane{{plane}}"
#: the session's cached metadata (planeflow.plan.session.metadata_path with a wildcard)
METADATA_FILE = metadata_path(RESULTS, "{session}")


# ---- input functions -----------------------------------------------------------------
def n_parts(session):
    return len(META[session]["parts"])


def session_overrides(session):
    return pfconfig.session_overrides(config, META[session], SESSION_ROWS[session])


def suite2p_params(step):
    """Input function for a rule's params: the suite2p settings that step uses."""
    return lambda wc: pfconfig.step_overrides(session_overrides(wc.session), step)


def gpu_request():
    """Resources of the torch steps (registration, detection, cellpose_import): the GPUs
    they request, or nothing at all when GPUs are off (each declared resource is
    evaluated for every job, so an unused one still costs DAG time)."""
    return {"gpu": config["gpu"]["count"]} if config["gpu"]["enabled"] else {}


#: config group_jobs -> which per-plane steps share one cluster job per plane
GROUPS = {
    "none": (),
    "short": ("postprocess", "merge"),
    "plane": ("binary_write", "registration", "detection", "postprocess", "merge"),
}


def group_for(step):
    """Snakemake group of a step (None = its own job). Grouped jobs of one plane are
    connected, so Snakemake submits one job per plane and group."""
    return "plane_steps" if step in GROUPS[config["group_jobs"]] else None


def merge_inputs(wc):
    files = {}
    for part in range(n_parts(wc.session)):
        d = f"{RESULTS}/{wc.session}/{{step}}/plane{wc.plane}/part{part}"
        for name in ("ops", "stat", "iscell", "dff"):
            files[f"{name}_{part}"] = f"{d.format(step='postprocess')}/{name}.npy"
        for name in ("F", "Fneu", "spks"):
            files[f"{name}_{part}"] = f"{d.format(step='detection')}/{name}.npy"
    return files


def final_plane_dirs(session):
    """The final suite2p folders (merge's directory outputs) of a session's planes."""
    return [f"{RESULTS}/{session}/suite2p/plane{p}" for p in META[session]["planes"]]


def volume_inputs(wc):
    return {"planes": final_plane_dirs(wc.session)}


def raw_compress_inputs(wc):
    """metadata.json (lists the raw files) and every binary_write output of the session."""
    m = META[wc.session]
    parts = [f"{RESULTS}/{wc.session}/binary_write/plane{p}/part{q}"
             for p in m["planes"] for q in range(len(m["parts"]))]
    return {"metadata": metadata_path(RESULTS, wc.session),
            "bins": [f"{d}/data_raw.bin" for d in parts], "ops": [f"{d}/ops.npy" for d in parts]}


def raw_compress_targets(session):
    d = f"{RESULTS}/{session}/raw_compress"
    return [f"{d}/{session}_raw.{config['raw_compress']['format']}", f"{d}/manifest.json"]


def all_outputs():
    # the per-session volume_stats outputs need every plane's final folder, so listing the
    # folders here as well would add nothing but DAG time
    out = []
    for sid in META:
        out += [f"{RESULTS}/{sid}/volume_stats/{n}" for n in ("planes.tsv", "volume.json", "summary.png")]
        if config["raw_compress"]["enabled"]:
            out += raw_compress_targets(sid)
        if config["nwb_export"]["enabled"]:
            out.append(f"{RESULTS}/{sid}/nwb_export/{sid}.nwb")
        if config["cellpose"]["export"]:
            out += cellpose_export_files(sid)
    return out


def cellpose_export_files(session):
    """Outputs of rule cellpose_export for every plane of a session."""
    return [f"{RESULTS}/{session}/cellpose_export/plane{p}/{n}"
            for p in META[session]["planes"]
            for n in ("masks.npy", f"plane{p}.tif", f"plane{p}_seg.npy", "conversion_meta.npy")]


def cellpose_seg_path(session, plane):
    """The edited _seg.npy of a plane (config cellpose.import_seg)."""
    pattern = config["cellpose"]["import_seg"]
    return pattern.replace("{session}", str(session)).replace("{plane}", str(plane))


def cellpose_import_seg(wc):
    return cellpose_seg_path(wc.session, wc.plane)


def cellpose_import_targets():
    """Outputs of rule cellpose_import for every plane whose edited _seg.npy exists
    (one stat() per plane, only when the cellpose_import_all target is asked for)."""
    return [f"{RESULTS}/{sid}/cellpose_import/plane{p}/ops.npy"
            for sid in META for p in META[sid]["planes"]
            if os.path.isfile(cellpose_seg_path(sid, p))]


# ---- resources -------------------------------------------------------------------------
def _frame_mb(session, part):
    m = META[session]
    Ly, Lx = m["parts"][int(part)]["shape"]
    return Ly * Lx * 4 / 1e6


def mem_mb(step):
    """Default memory request (MB) of a step for one part, doubled on each retry.

    Estimates from the frame size: registration holds a batch of frames and the
    reference sample, detection a binned movie of up to 5000 frames; both float32.
    """
    def f(wc, attempt):
        fm = _frame_mb(wc.session, wc.part)
        nframes = META[wc.session]["nframes"]
        bw = config["binary_write"]
        chunk_mb = min(bw["chunk_frames"] * fm / 2, bw["chunk_mb"])  # int16 frames
        need = {
            "binary_write": 500 + 3 * chunk_mb,
            "registration": 2500 + 6 * 400 * fm,
            "detection": 3000 + 4 * min(nframes, 5000) * fm,
            "postprocess": 1500 + 0.05 * nframes,
        }[step]
        return int(need * attempt)

    return f


def minutes(base):
    """Wall time (min, sbatch -t on SLURM) that grows with each retry, so a job killed for
    time gets more. A callable in the rule is cheaper than a profile `set-resources`
    string, which Snakemake evaluates anew for every job (see benchmarks/dag_scale.py)."""
    return lambda wc, attempt: base * attempt


def cellpose_mem_mb(step):
    """Memory (MB) of a cellpose rule: torch/cellpose imports plus float32 frames
    (export: images and flows; import: extraction batches of 500 frames and traces)."""
    def f(wc, attempt):
        Ly, Lx = META[wc.session]["plane_shape"]
        fm = Ly * Lx * 4 / 1e6
        need = {"cellpose_export": 1500 + 40 * fm,
                "cellpose_import": 2000 + 3 * 500 * fm + 0.05 * META[wc.session]["nframes"]}[step]
        return int(need * attempt)

    return f


def raw_compress_runtime(wc, attempt):
    """Minutes for raw_compress: checking the binaries and packing at a slow 10 MB/s."""
    m = META[wc.session]
    raw_mb = len(m["planes"]) * m["nframes"] * m["Ly"] * m["Lx"] * 2 / 1e6
    return int((30 + raw_mb / 10 / 60) * attempt)
