"""qc: a verdict (ok | warn | fail) with reasons for every plane of a session.

Measures per plane, from its final suite2p folder and a sample of its registered binary:

* registration: suite2p's PC metric regDX (mean and max over PCs of the combined
  rigid + non-rigid shift, when suite2p computed it), the largest rigid shift, the
  fraction of frames whose rigid shift is at the limit (``maxregshift`` x frame size:
  phase correlation found nothing better than the edge of its search window), the
  correlation of the plane's own rigid shifts with the consensus (median) of the other
  planes, judged where the planes are simultaneous, and the residual shift: how far the
  non-rigid pass moved the frames on top of the rigid motion (95th percentile over frames of
  the mean block shift). With shared motion the plane was registered with the consensus, not
  its own rigid pass: the at-limit fraction and the correlation of its own pass are reported
  (a dim plane's own pass is noise, which is why the consensus replaced it) but not judged;
  the residual shift and the share of frames where its own pass agreed with the consensus
  (``consensus_agreement``) tell how well the applied motion fits;
* signal: mean brightness (mean image), an image SNR (spatial std of the mean image over
  the median per-pixel frame-to-frame noise std) and the fraction of saturated pixels;
* cells: accepted ROIs against the median of the neighbouring planes;
* volume (from the session's ``volume_stats/rois.tsv`` and ``crosstalk.tsv``, when given):
  the fraction of the plane's accepted ROIs that are second views of a cell brighter in
  another plane (``duplicate_fraction``, reason ``axial``) or crosstalk ghosts
  (``ghost_fraction``), and the crosstalk coefficient into the plane (``crosstalk_in``: sum
  of the significant coefficients of the separations that reach it from a source plane);
* failures: a plane that registration or detection could not handle (``plane_failure``
  in its ops) fails; a plane without ROIs warns; a plane whose detections volume_stats found
  unreliable (too dim, too few ROIs seen in a neighbouring plane: column ``unreliable`` of
  rois.tsv) warns with that reason.

Thresholds are the config's ``qc`` section (docs/qc.md). Writes ``qc.tsv``, ``qc.json``,
a figure of every plane's rigid shifts over time and a table figure coloured by verdict.
"""
from __future__ import annotations

import logging
import os
import time

import numpy as np

from planeflow import PlaneflowError
from planeflow.io.atomic import save_json
from planeflow.io.tables import is_true, read_tsv, write_tsv
from planeflow.io.planefiles import load_array, load_ops, open_binary

log = logging.getLogger("planeflow")

VERDICTS = ("ok", "warn", "fail")
COLUMNS = ("plane", "verdict", "reasons", "n_rois", "n_accepted", "max_shift_px", "at_limit_fraction",
           "regdx_mean", "regdx_max", "consensus_corr", "consensus_agreement", "residual_shift_px",
           "mean_brightness", "snr", "saturated_fraction", "duplicate_fraction", "ghost_fraction", "crosstalk_in",
           "crosstalk_from", "unreliable", "failure")


def own_shifts(ops: dict):
    """The plane's own rigid shifts (y, x): with shared motion those of its rigid pass,
    otherwise suite2p's; None when registration did not run."""
    if "yoff_own" in ops:
        return np.asarray(ops["yoff_own"], float), np.asarray(ops["xoff_own"], float)
    if "yoff" in ops and not ops.get("plane_failure", {}).get("step") == "registration":
        return np.asarray(ops["yoff"], float), np.asarray(ops["xoff"], float)
    return None


def residual_shift(ops: dict) -> float | None:
    """95th percentile over frames of the length of the mean non-rigid block shift (suite2p's
    ``yoff1``/``xoff1``): how far the non-rigid pass moved the frames on top of the rigid motion;
    None without non-rigid registration."""
    y, x = ops.get("yoff1"), ops.get("xoff1")
    if y is None or x is None or np.size(y) == 0:
        return None
    y, x = np.asarray(y, float), np.asarray(x, float)
    if y.ndim < 2:
        return None
    return float(np.percentile(np.hypot(y.mean(axis=1), x.mean(axis=1)), 95))


def shift_limit(ops: dict) -> int:
    """suite2p's rigid search half-window (px): round(maxregshift x min(Ly, Lx)), at most half."""
    m = min(int(ops["Ly"]), int(ops["Lx"]))
    return int(min(np.round(float(ops["registration"]["maxregshift"]) * m), m // 2))


def signal_metrics(bins: list[str], ops_list: list[dict], mean_img, sample: int, sat_value: int) -> dict:
    """Image SNR and saturated fraction from up to ``sample`` consecutive frames (middle of
    the recording) of each part's registered binary."""
    noise, sat, npix = [], 0, 0
    for path, ops in zip(bins, ops_list):
        n = int(ops["nframes"])
        k = min(sample, n)
        t0 = (n - k) // 2
        mov = open_binary(path, ops)
        frames = np.array(mov[t0:t0 + k])
        del mov
        sat += int(np.sum(frames >= sat_value))
        npix += frames.size
        if k > 1:
            d = np.diff(frames.astype(np.float32), axis=0)
            noise.append(np.median(d.std(axis=0)) / np.sqrt(2))
    structure = float(np.std(mean_img))
    nz = float(np.median(noise)) if noise else float("nan")
    return {"snr": structure / nz if nz > 0 else float("nan"),
            "saturated_fraction": sat / npix if npix else float("nan")}


def consensus_correlations(shifts: dict) -> tuple[dict, np.ndarray | None]:
    """Per plane: Pearson correlation of its centred (y, x) rigid shifts with the per-frame
    median of the other planes' centred shifts; and the all-plane median trace (frames, 2)."""
    ok = {p: s for p, s in shifts.items() if s is not None}
    lengths = {len(s[0]) for s in ok.values()}
    if len(ok) < 2 or len(lengths) != 1:
        return {p: None for p in shifts}, None
    centred = {p: np.stack([y - np.median(y), x - np.median(x)], axis=1) for p, (y, x) in ok.items()}
    stack = np.stack(list(centred.values()))
    out = {}
    for p in shifts:
        if p not in centred:
            out[p] = None
            continue
        others = np.median(np.stack([c for q, c in centred.items() if q != p]), axis=0)
        a, b = centred[p].ravel(), others.ravel()
        a, b = a - a.mean(), b - b.mean()
        if np.sum(b * b) == 0:
            out[p] = None  # the others do not move: nothing to compare with
        elif np.sum(a * a) == 0:
            out[p] = 0.0  # the plane's shifts stay put (e.g. pinned at the limit) while the others move
        else:
            out[p] = float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))
    return out, np.median(stack, axis=0)


def read_table(path) -> list[dict] | None:
    """Rows of one of volume_stats' tables, None without a path."""
    if not path:
        return None
    if not os.path.exists(path):
        raise PlaneflowError(f"QC input {path} does not exist; it is written by rule volume_stats. "
                             "Rerun the workflow so that the session's volume tables are made first.")
    return read_tsv(path)


def volume_fractions(roi_rows: list[dict] | None, planes: list[int]) -> dict:
    """Per plane number: ``duplicate_fraction`` and ``ghost_fraction`` of its accepted ROIs
    (rows of rois.tsv): non-primary ROIs with ``duplicate_of_reason`` ``axial`` (a second
    view of a cell seen better in another plane) or ``crosstalk`` (a ghost of a cell of
    another plane). None where there is no table or the plane has no accepted ROI."""
    out = {int(p): {"duplicate_fraction": None, "ghost_fraction": None, "unreliable": None} for p in planes}
    if roi_rows is None:
        return out
    for r in roi_rows:
        p = int(r["plane"])
        if p in out and (r.get("unreliable") or "").strip():
            out[p]["unreliable"] = r["unreliable"].strip()
    counts = {int(p): [0, 0, 0] for p in planes}          # accepted, axial, crosstalk
    for r in roi_rows:
        p = int(r["plane"])
        if p not in counts or not is_true(r["accepted"]):
            continue
        c = counts[p]
        c[0] += 1
        if not is_true(r["primary"]):
            reason = (r.get("duplicate_of_reason") or "").strip()
            c[1] += reason == "axial"
            c[2] += reason == "crosstalk"
    for p, (n, dup, ghost) in counts.items():
        if n:
            out[p].update(duplicate_fraction=dup / n, ghost_fraction=ghost / n)
    return out


def crosstalk_into(xt_rows: list[dict] | None, planes: list[int]) -> dict:
    """Per plane number: ``crosstalk_in``, the summed coefficient of the significant
    separations k (rows of crosstalk.tsv: plane index i + k receives ``coefficient`` x
    plane i's light) that reach the plane from a plane of the session, ``crosstalk_from``
    (the source planes, "plane:coefficient" comma-separated) and ``crosstalk_upper_bound``
    (a coefficient came from the recorded-pixel fit alone, method ``recorded``). None where
    crosstalk was not estimated (no table or no rows: volume.crosstalk off, one plane)."""
    numbers = [int(p) for p in planes]
    if not xt_rows:
        return {p: {"crosstalk_in": None, "crosstalk_from": None, "crosstalk_upper_bound": False}
                for p in numbers}
    out = {p: {"crosstalk_in": 0.0, "crosstalk_from": "", "crosstalk_upper_bound": False} for p in numbers}
    for r in xt_rows:
        if not is_true(r.get("significant")) or not r.get("coefficient"):
            continue
        k, c = int(r["separation"]), float(r["coefficient"])
        if not np.isfinite(c):
            continue
        for i, p in enumerate(numbers):
            src = i - k
            if 0 <= src < len(numbers):
                o = out[p]
                o["crosstalk_in"] += c
                o["crosstalk_from"] += ("," if o["crosstalk_from"] else "") + f"{numbers[src]}:{c:.3g}"
                o["crosstalk_upper_bound"] |= r.get("method") == "recorded"
    return out


def judge(m: dict, opts: dict, simultaneous: bool, shared_motion: bool = False) -> list[tuple[str, str]]:
    """(level, reason) pairs of one plane's measures against the thresholds. With
    ``shared_motion`` the plane's own rigid pass (at-limit fraction, correlation with the
    others) was replaced by the consensus and is not judged."""
    r = []

    def check(value, fail, warn, text, below=False):
        if value is None or not np.isfinite(value):
            return
        bad = (lambda t: value < t) if below else (lambda t: value > t)
        if bad(fail):
            r.append(("fail", text.format(v=value, t=fail)))
        elif bad(warn):
            r.append(("warn", text.format(v=value, t=warn)))

    if m["failure"]:
        r.append(("fail", m["failure"]))
    elif m["n_rois"] == 0:
        r.append(("warn", "no ROIs detected (blank plane?)"))
    if not shared_motion:
        check(m["at_limit_fraction"], opts["at_limit_fail"], opts["at_limit_warn"],
              "{v:.0%} of frames with a rigid shift at the registration limit (> {t:.0%})")
    check(m["regdx_max"], np.inf, opts["regdx_warn"], "regDX max {v:.2f} px (> {t} px)")
    if simultaneous and not shared_motion:
        check(m["consensus_corr"], opts["consensus_corr_fail"], opts["consensus_corr_warn"],
              "rigid shifts correlate {v:.2f} with the other planes' (< {t})", below=True)
    check(m.get("residual_shift_px"), opts["residual_shift_fail"], opts["residual_shift_warn"],
          "non-rigid shifts on top of the " + ("shared (consensus) motion" if shared_motion else "rigid motion")
          + " move the frames by {v:.1f} px (95th percentile; > {t} px)")
    if m.get("unreliable"):
        r.append(("warn", f"detections unreliable ({m['unreliable']})"))
    check(m["snr"], opts["snr_fail"], opts["snr_warn"], "image SNR {v:.2f} (< {t})", below=True)
    check(m["saturated_fraction"], opts["saturation_fail"], opts["saturation_warn"],
          "{v:.2%} of pixels saturated (> {t:.2%})")
    check(m.get("duplicate_fraction"), np.inf, opts["duplicate_fraction_warn"],
          "{v:.0%} of the accepted ROIs are second views of cells seen better in another plane "
          "(> {t:.0%}: planes closer than a cell is tall, a repeated or a much dimmer plane?)")
    check(m.get("ghost_fraction"), np.inf, opts["ghost_fraction_warn"],
          "{v:.0%} of the accepted ROIs are crosstalk ghosts of another plane's cells (> {t:.0%})")
    check(m.get("crosstalk_in"), np.inf, opts["crosstalk_warn"],
          "receives crosstalk {v:.2f} x the light of plane(s) " + (m.get("crosstalk_from") or "") + " (> {t})"
          + (" (an upper bound: recorded-pixel fit)" if m.get("crosstalk_upper_bound") else ""))
    ratio = m.get("cells_vs_neighbours")
    check(ratio, opts["cells_ratio_fail"], opts["cells_ratio_warn"],
          "{v:.2f} x the accepted ROIs of its neighbouring planes (< {t})", below=True)
    return r


def qc(planes: list[dict], out: dict, session: dict, options: dict, volume: dict | None = None) -> dict:
    """``planes``: in plane order, dicts with plane, ops, stat, iscell (final folder) and
    bins (the plane's registered binaries, one per part) and parts_ops (their ops).
    ``session``: session_id, stack_type, simultaneous, shared_motion. ``options``: config qc.
    ``volume``: paths of the session's ``rois`` and ``crosstalk`` tables (rule volume_stats);
    without them the volume measures stay empty."""
    from planeflow.core import figures

    t0 = time.time()
    volume = volume or {}
    numbers = [int(pl["plane"]) for pl in planes]
    fractions = volume_fractions(read_table(volume.get("rois")), numbers)
    leaks = crosstalk_into(read_table(volume.get("crosstalk")), numbers)
    rows, shifts, all_ops = [], {}, {}
    for pl in planes:
        p = int(pl["plane"])
        ops = load_ops(pl["ops"])
        all_ops[p] = ops
        stat = load_array(pl["stat"], allow_pickle=True)
        iscell = load_array(pl["iscell"])
        failure = (ops.get("plane_failure") or {}).get("reason")
        sh = own_shifts(ops)
        shifts[p] = sh
        m = {"plane": p, "n_rois": int(len(stat)),
             "n_accepted": int(iscell[:, 0].sum()) if len(iscell) else 0,
             "max_shift_px": None, "at_limit_fraction": None, "regdx_mean": None, "regdx_max": None,
             "consensus_corr": None, "failure": failure, "residual_shift_px": residual_shift(ops),
             "consensus_agreement": (ops.get("shared_motion") or {}).get("agreement"),
             **fractions[p], **leaks[p]}
        if sh is not None:
            lim = shift_limit(ops)
            m["max_shift_px"] = float(np.max(np.hypot(*sh))) if len(sh[0]) else 0.0
            m["at_limit_fraction"] = float(np.mean((np.abs(sh[0]) >= lim) | (np.abs(sh[1]) >= lim)))
        if ops.get("regDX") is not None and np.size(ops["regDX"]):
            dx = np.asarray(ops["regDX"], float)
            m["regdx_mean"], m["regdx_max"] = float(dx[:, -1].mean()), float(dx[:, -1].max())
        mean_img = np.asarray(ops.get("meanImg", np.zeros((1, 1))), float)
        m["mean_brightness"] = float(mean_img.mean())
        parts_ops = [load_ops(o) for o in pl["parts_ops"]]
        m.update(signal_metrics(pl["bins"], parts_ops, mean_img, int(options["sample_frames"]),
                                int(options["saturation_value"])))
        rows.append(m)

    corr, consensus = consensus_correlations(shifts)
    simultaneous = bool(session["simultaneous"] or session["shared_motion"])
    counts = [r["n_accepted"] for r in rows]
    for i, r in enumerate(rows):
        r["consensus_corr"] = corr[r["plane"]]
        nb = [counts[j] for j in (i - 1, i + 1) if 0 <= j < len(rows)]
        med = float(np.median(nb)) if nb else 0.0
        r["cells_vs_neighbours"] = r["n_accepted"] / med if med >= options["cells_min_neighbours"] else None
        reasons = judge(r, options, simultaneous, all_ops[r["plane"]].get("shared_motion") is not None)
        levels = {lv for lv, _ in reasons}
        r["verdict"] = "fail" if "fail" in levels else "warn" if "warn" in levels else "ok"
        r["reasons"] = [f"{lv}: {text}" for lv, text in reasons]

    write_tsv(out["table"], rows, COLUMNS)
    failed = [r["plane"] for r in rows if r["verdict"] == "fail"]
    summary = {
        "session_id": session["session_id"], "stack_type": session.get("stack_type"),
        "simultaneous": bool(session["simultaneous"]), "shared_motion": bool(session["shared_motion"]),
        "verdicts": {v: [r["plane"] for r in rows if r["verdict"] == v] for v in VERDICTS},
        "thresholds": options,
        "planes": [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()}
                   for r in rows],
        "duration": time.time() - t0,
    }
    figures.qc_shifts(out["shifts"], {p: s for p, s in shifts.items() if s is not None}, consensus,
                      {r["plane"]: r["verdict"] for r in rows},
                      title=f"{session['session_id']}: rigid shifts of every plane"
                            + (" (own rigid pass; registered with the consensus)" if session["shared_motion"] else ""))
    figures.qc_table(out["table_figure"], rows, title=f"{session['session_id']}: QC per plane")
    save_json(out["json"], summary)
    for r in rows:
        log.info("qc plane %d: %s%s", r["plane"], r["verdict"],
                 (" - " + "; ".join(r["reasons"])) if r["reasons"] else "")
    if failed and options["fail_on"] == "fail":
        detail = "; ".join(f"plane {r['plane']}: " + ", ".join(r["reasons"]) for r in rows if r["verdict"] == "fail")
        raise PlaneflowError(
            f"session '{session['session_id']}': QC verdict fail for plane(s) {failed} ({detail}). "
            "The workflow stops here because qc.fail_on is 'fail'; inspect those planes, or set "
            "qc.fail_on: none to report and go on.")
    return summary
