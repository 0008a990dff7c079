# Config loading, validation and input functions. Runs every time the Snakefile is
# parsed (including inside every cluster job), so it must stay cheap: it reads the
# config, the sessions sheet and each session's cached metadata.json, never raw data.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from snakemake.utils import min_version, validate as sm_validate

from planeflow import PlaneflowError
from planeflow import config as pfconfig
from planeflow.session import metadata_path, session_metadata

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
    RESULTS = config["results_dir"]
    SESSION_ROWS = {r["session_id"]: r for r in pfconfig.read_sessions(config["sessions"])}
    pfconfig.validate_sessions(list(SESSION_ROWS.values()), config["sessions"],
                               pfconfig.load_schema("sessions.schema.yaml", SCHEMAS))
    META = {sid: session_metadata(row, RESULTS, config["acquisition"])
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


def log_path(step):
    return f"{SESSION_DIR}/logs/{step}/plane{{plane}}_part{{part}}.log"


def bench_path(step):
    return f"{SESSION_DIR}/benchmarks/{step}/plane{{plane}}_part{{part}}.tsv"


FINAL_DIR = f"{SESSION_DIR}/suite2p/plane{{plane}}"
FINAL_FILES = ("ops", "stat", "iscell", "F", "Fneu", "spks", "dff",
               "db", "settings", "reg_outputs", "detect_outputs")


# ---- input functions -----------------------------------------------------------------
def meta(wc):
    return META[wc.session]


def session_metadata_file(wc):
    return metadata_path(RESULTS, wc.session)


def n_parts(session):
    return len(META[session]["parts"])


def session_overrides(session):
    return pfconfig.session_overrides(config, META[session], SESSION_ROWS[session])


def suite2p_params(step):
    """Input function for a rule's params: the suite2p settings that step uses."""
    return lambda wc: pfconfig.step_overrides(session_overrides(wc.session), step)


def gpus():
    """GPUs requested by the torch steps (registration, detection)."""
    return config["gpu"]["count"] if config["gpu"]["enabled"] else 0


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
        kw = dict(session=wc.session, plane=wc.plane, part=part)
        for name in ("ops", "stat", "iscell", "dff"):
            files[f"{name}_{part}"] = expand(f"{step_dir('postprocess')}/{name}.npy", **kw)[0]
        for name in ("F", "Fneu", "spks"):
            files[f"{name}_{part}"] = expand(f"{step_dir('detection')}/{name}.npy", **kw)[0]
    return files


def final_plane_files(session, names=FINAL_FILES):
    return [f"{RESULTS}/{session}/suite2p/plane{p}/{n}.npy"
            for p in META[session]["planes"] for n in names]


def volume_inputs(wc):
    return {n: final_plane_files(wc.session, (n,)) for n in ("ops", "stat", "iscell")}


def all_outputs():
    out = []
    for sid in META:
        out += final_plane_files(sid)
        out += [f"{RESULTS}/{sid}/volume_stats/{n}" for n in ("planes.tsv", "volume.json", "summary.png")]
    return out


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
        chunk = config["binary_write"]["chunk_frames"]
        need = {
            "binary_write": 500 + 3 * chunk * fm / 2,
            "registration": 2500 + 6 * 400 * fm,
            "detection": 3000 + 4 * min(nframes, 5000) * fm,
            "postprocess": 1500 + 0.05 * nframes,
        }[step]
        return int(need * attempt)

    return f
