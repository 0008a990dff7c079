"""The volume on hard data: plane offsets, crosstalk, one ID per cell and QC against planted truth.

Simulates :data:`planeflow.synth.volume.HARD` (6 simultaneous planes x 160 x 160 px x 900
frames, 3-D cells, shared texture and vessels, subpixel offsets up to 8 px, crosstalk 0.15 into
the plane 3 below, plane 4 about 40x dimmer), runs the whole workflow on it with shared motion on
for both crosstalk modes (estimate, subtract) and with shared motion off (estimate), and prints
per plane and overall: offset error, offset confidence, crosstalk coefficient error, residual
duplicates, false merges, unique recall, the dim plane's shift error and QC verdict, against the
targets of issue 19.

    python benchmarks/volume_accuracy.py [--out DIR] [--seed 11] [--modes on-estimate,on-subtract,off-estimate]
                                         [--frames 900] [--size 160] [--tiny] [--rerun-volume]

``--out`` keeps the runs (default: a temporary folder removed at the end); ``--rerun-volume``
reuses finished runs in ``--out`` and reruns only the volume half (volume_stats and what follows),
which is how the volume method is tuned. ``--tiny`` is the smoke run CI makes (3 planes, 96 px,
200 frames): it checks the script, not the targets. Exit status 1 when a target is missed
(not with --tiny).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "src"))

S2P = {"torch_device": "cpu", "diameter": [10, 10], "tau": 1.0,
       "registration": {"block_size": [64, 64]},
       "detection": {"sparsery_settings": {"spatial_scale": 2}}}
#: issue 19's targets
TARGETS = dict(offset_err_px=1.0, crosstalk_err=0.02, residual_duplicates=0.05, wrong_merges=0.02)
MODES = ("on-estimate", "on-subtract", "off-estimate")


def simulate(raw: Path, args) -> dict:
    from planeflow.synth.volume import HARD, simulate_volume

    params = dict(HARD)
    if args.tiny:
        params.update(nplanes=3, Ly=96, Lx=96, nframes=200, cells_per_plane=6, crosstalk_k=1,
                      max_offset=3.0, brightness=[1.0, 0.05, 1.0])
    else:
        params.update(nframes=args.frames, Ly=args.size, Lx=args.size)
    if (raw / "ground_truth.npz").exists():
        return dict(ground_truth=str(raw / "ground_truth.npz"), **params)
    return simulate_volume(raw, seed=args.seed, name="hard", **params)


def config(run: Path, raw: Path, nplanes: int, mode: str, args) -> Path:
    motion, crosstalk = mode.split("-")
    run.mkdir(parents=True, exist_ok=True)
    sheet = run / "sessions.tsv"
    sheet.write_text("session_id\tdata_path\tnplanes\tfs\tdx\tdy\tdz\n"
                     f"hard\t{raw}\t{nplanes}\t15.0\t1.0\t1.0\t15.0\n")
    s2p = dict(S2P)
    if args.tiny:
        s2p["registration"] = {"block_size": [32, 32]}
    cfg = dict(sessions=str(sheet), results_dir=str(run / "results"), suite2p=s2p,
               registration={"shared_motion": motion}, volume={"crosstalk": crosstalk})
    path = run / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake(cfg: Path, *extra) -> float:
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(cfg.parent),
           f"--configfile={cfg}", "--cores", "all", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-6000:]}")
    return time.perf_counter() - t0


def dim_plane(gt) -> int | None:
    b = np.asarray(gt.get("brightness", np.ones(int(gt["nplanes"]))))
    return int(np.argmin(b)) if b.min() < 0.5 * np.median(b) else None


def score(res: Path, gt_path: str) -> dict:
    from planeflow.io.tables import read_tsv
    from planeflow.synth.groundtruth import load_ground_truth, registration_error
    from planeflow.synth.volume import score_volume

    gt = load_ground_truth(gt_path)
    s = score_volume(res, gt_path)
    c, k = float(gt["crosstalk"]), int(gt["crosstalk_k"])
    measured = s["crosstalk"]
    table = res / "crosstalk" / "coefficients.tsv"
    if table.exists():   # subtract mode: rule crosstalk measured it; volume_stats measures the residual
        s["crosstalk_residual"] = measured
        measured = {int(r["separation"]): float(r["coefficient"]) for r in read_tsv(table) if r["coefficient"]}
        s["crosstalk"] = measured
    s["crosstalk_err"] = abs(measured.get(k, float("nan")) - c) if c else float("nan")
    offs = read_tsv(res / "volume_stats" / "plane_offsets.tsv")
    s["confidence"] = [float(r["confidence"]) for r in offs]
    s["offset_source"] = [r["source"] for r in offs]
    err = np.abs(np.array(s["est_offsets"]) - np.array(s["true_offsets"])).max(axis=1)
    s["offset_err_per_plane"] = err.tolist()
    d = dim_plane(gt)
    s["dim_plane"] = d
    qc = {int(r["plane"]): r for r in read_tsv(res / "qc" / "qc.tsv")}
    s["qc"] = {p: (r.get("verdict"), r.get("reasons")) for p, r in qc.items()}
    rois = read_tsv(res / "volume_stats" / "rois.tsv")
    s["unreliable"] = sorted({int(r["plane"]) for r in rois if r.get("unreliable")})
    if d is not None:
        ops = np.load(res / "suite2p" / f"plane{d}" / "ops.npy", allow_pickle=True).item()
        s["dim_shift_err"] = float(registration_error(ops["yoff"], ops["xoff"], gt["shifts"]))
    return s


def report(mode: str, s: dict, seconds: float) -> list[str]:
    missed = []
    print(f"\n== {mode} ({seconds:.0f} s)")
    print("plane  offset err px  confidence  source        qc")
    for p, (e, c, src) in enumerate(zip(s["offset_err_per_plane"], s["confidence"], s["offset_source"])):
        v, why = s["qc"].get(p, ("", ""))
        mark = "  (dim)" if p == s["dim_plane"] else ""
        print(f"{p:5d}  {e:13.2f}  {c:10.2f}  {src:12s}  {v}: {why}{mark}")
    print(f"crosstalk {s['crosstalk']} (error {s['crosstalk_err']:.3f})"
          + (f"; residual after subtraction {s['crosstalk_residual']}" if "crosstalk_residual" in s else ""))
    print(f"planes marked unreliable: {s['unreliable'] or 'none'}")
    print(f"residual duplicates {s['residual_duplicates']:.3f}, false merges {s['wrong_merges']:.3f}, "
          f"unique recall {s['recall_primary']:.3f} (any ROI {s['recall_all']:.3f}), ghosts {s['n_ghost_rois']} "
          f"({s['ghosts_flagged']} flagged, {s['ghosts_primary']} primary)")
    if "dim_shift_err" in s:
        print(f"dim plane {s['dim_plane']}: shift error {s['dim_shift_err']:.2f} px")
    motion = mode.split("-")[0]
    err = np.array(s["offset_err_per_plane"])
    if motion == "on" and err.max() > TARGETS["offset_err_px"]:
        missed.append(f"{mode}: offset error {err.max():.2f} px > {TARGETS['offset_err_px']}")
    if motion == "off" and s["dim_plane"] is not None:
        d = s["dim_plane"]
        others = np.delete(err, d)
        if others.max() > TARGETS["offset_err_px"]:
            missed.append(f"{mode}: offset error {others.max():.2f} px > 1 outside the dim plane")
        if err[d] > 1.0 and d not in s["unreliable"]:
            missed.append(f"{mode}: dim plane {err[d]:.2f} px off and not marked unreliable")
    for key in ("crosstalk_err", "residual_duplicates", "wrong_merges"):
        if np.isfinite(s[key]) and s[key] > TARGETS[key]:
            missed.append(f"{mode}: {key} {s[key]:.3f} > {TARGETS[key]}")
    return missed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--frames", type=int, default=900)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--rerun-volume", action="store_true")
    ap.add_argument("--json", type=Path, help="write the scores here")
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="volume_accuracy_"))
    try:
        sim = simulate(out / "raw", args)
        nplanes = int(np.load(sim["ground_truth"])["nplanes"])
        missed, scores = [], {}
        for mode in args.modes.split(","):
            if mode not in MODES:
                sys.exit(f"--modes: {mode!r} is none of {', '.join(MODES)}")
            cfg = config(out / mode, out / "raw", nplanes, mode, args)
            extra = ("--forcerun", "volume_stats", "crosstalk") if args.rerun_volume else ()
            seconds = snakemake(cfg, *extra)
            s = score(out / mode / "results" / "hard", sim["ground_truth"])
            scores[mode] = s
            missed += report(mode, s, seconds)
        if args.json:
            args.json.write_text(json.dumps(scores, indent=1, default=str))
        if len(scores) >= 2 and {"on-estimate", "on-subtract"} <= set(scores):
            a, b = scores["on-estimate"]["recall_primary"], scores["on-subtract"]["recall_primary"]
            print(f"\nunique recall: subtract {b:.3f} vs estimate {a:.3f}")
            if b < a - 0.01:
                missed.append(f"unique recall with subtract {b:.3f} < estimate {a:.3f}")
        print("\n" + ("targets missed:\n  " + "\n  ".join(missed) if missed else "all targets met"))
        return 1 if missed and not args.tiny else 0
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
