"""GPU parity and speed of planeflow's suite2p steps: one simulated plane registered and
detected through planeflow.steps with torch_device cpu and cuda (the same code a job runs);
prints each step's time, and compares the rigid shifts, the registered movies, the ROIs and
their traces between the two devices.

    python benchmarks/gpu_parity.py OUT_DIR cpu cuda     # GPUCHECK_L (256), GPUCHECK_T (1000)

Needs a CUDA GPU; the CPU run uses one thread, as planeflow's jobs do by default."""
import json
import os
import sys
import time

import numpy as np

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
from planeflow.synth.simulate import simulate_session  # noqa: E402
from planeflow.plan.session import session_metadata  # noqa: E402
from planeflow.plan.config import with_defaults  # noqa: E402
from planeflow.plan.layout import Layout  # noqa: E402
from planeflow.steps.binary_write import binary_write  # noqa: E402
from planeflow.steps.registration import registration  # noqa: E402
from planeflow.steps.detection import detection, OUTPUT_NAMES  # noqa: E402

raw = os.path.join(out, "raw")
L, T = int(os.environ.get("GPUCHECK_L", "256")), int(os.environ.get("GPUCHECK_T", "1000"))
sim = simulate_session(raw, nplanes=1, nframes=T, Ly=L, Lx=L, cells_per_plane=40, diameter=10, seed=3, name="g")
res = os.path.join(out, "results")
meta = session_metadata({"session_id": "g", "data_path": raw, "nplanes": 1, "fs": 15.0}, res,
                        with_defaults("acquisition", {}))
mpath = Layout(res).metadata("g")
b = os.path.join(out, "bw")
os.makedirs(b, exist_ok=True)
binary_write(mpath, 0, 0, f"{b}/data_raw.bin", f"{b}/ops.npy")
over = {"fs": 15.0, "tau": 1.0, "diameter": [10, 10]}
report = {}
for dev in sys.argv[2:]:
    d = os.path.join(out, dev)
    os.makedirs(d, exist_ok=True)
    t0 = time.perf_counter()
    registration(f"{b}/ops.npy", f"{b}/data_raw.bin", f"{d}/data.bin", f"{d}/reg_ops.npy", over, torch_device=dev)
    t1 = time.perf_counter()
    outs = {k: f"{d}/{k}.npy" for k in OUTPUT_NAMES}
    detection(f"{d}/reg_ops.npy", f"{d}/data.bin", outs, over, torch_device=dev)
    t2 = time.perf_counter()
    ops = np.load(f"{d}/reg_ops.npy", allow_pickle=True).item()
    stat = np.load(outs["stat"], allow_pickle=True)
    report[dev] = {"registration_s": round(t1 - t0, 2), "detection_s": round(t2 - t1, 2), "n_rois": len(stat),
                   "yoff": np.asarray(ops["yoff"]).tolist(), "xoff": np.asarray(ops["xoff"]).tolist(),
                   "n_accepted": int(np.load(outs["iscell"])[:, 0].sum())}
    print(dev, {k: v for k, v in report[dev].items() if k not in ("yoff", "xoff")}, flush=True)
if len(report) == 2:
    a, c = report["cpu"], report["cuda"]
    dy = np.abs(np.array(a["yoff"]) - np.array(c["yoff"]))
    dx = np.abs(np.array(a["xoff"]) - np.array(c["xoff"]))
    print(f"rigid shift difference cpu vs cuda: max {max(dy.max(), dx.max()):.2f} px, "
          f"frames differing {int(((dy + dx) > 0).sum())}/{len(dy)}")
    Fa = np.load(os.path.join(out, "cpu", "F.npy"))
    Fc = np.load(os.path.join(out, "cuda", "F.npy"))
    print("F shapes", Fa.shape, Fc.shape)
    sa = np.load(os.path.join(out, "cpu", "stat.npy"), allow_pickle=True)
    sc = np.load(os.path.join(out, "cuda", "stat.npy"), allow_pickle=True)
    ma = np.array([s["med"] for s in sa], float)
    mc = np.array([s["med"] for s in sc], float)
    d = np.sqrt(((ma[:, None, :] - mc[None, :, :]) ** 2).sum(-1))
    j = d.argmin(1)
    print(f"ROI centres cpu -> nearest cuda: max {d.min(1).max():.2f} px; one-to-one {len(set(j)) == len(j)}")
    if Fa.shape == Fc.shape:
        Fc2 = Fc[j]
        rel = np.abs(Fa - Fc2).max() / np.abs(Fa).max()
        r = [np.corrcoef(Fa[i], Fc2[i])[0, 1] for i in range(len(Fa))]
        print(f"F cpu vs cuda (matched ROIs): max abs diff / max |F| = {rel:.2e}; min trace correlation {min(r):.6f}")
    print("registered movies equal:", np.array_equal(np.fromfile(os.path.join(out, "cpu", "data.bin"), np.int16),
                                                     np.fromfile(os.path.join(out, "cuda", "data.bin"), np.int16)))
json.dump({k: {kk: vv for kk, vv in v.items() if kk not in ("yoff", "xoff")} for k, v in report.items()},
          open(os.path.join(out, "report.json"), "w"), indent=1)
