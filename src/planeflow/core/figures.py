"""Per-plane and per-volume figures (matplotlib, no display needed)."""
from __future__ import annotations

import numpy as np

from planeflow.io.atomic import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _plt().close(fig)


def label_image(stat, shape) -> np.ndarray:
    """Label image of ROIs (0 = background, k = ROI k-1); overlapping pixels go to the later ROI."""
    lab = np.zeros(shape, np.int32)
    for k, s in enumerate(stat):
        keep = ~s["overlap"] if "overlap" in s and len(s["overlap"]) == len(s["ypix"]) else slice(None)
        lab[np.asarray(s["ypix"])[keep], np.asarray(s["xpix"])[keep]] = k + 1
    return lab


def outline_mask(labels: np.ndarray) -> np.ndarray:
    """Pixels of a label image whose 4-neighbourhood holds another label."""
    edge = np.zeros(labels.shape, bool)
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return edge & (labels > 0)


def _norm(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, [1, 99.5])
    return np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1)


def mean_image_rois(path, mean_img, stat, iscell, title="") -> None:
    plt = _plt()
    labels = label_image(stat, mean_img.shape)
    edges = outline_mask(labels)
    accepted = np.zeros(len(stat) + 1, bool)
    if len(stat):
        accepted[1:] = iscell[:, 0].astype(bool)
    rgb = np.repeat(_norm(np.asarray(mean_img, float))[..., None], 3, axis=2)
    acc = edges & accepted[labels]
    rej = edges & ~accepted[labels]
    rgb[acc] = (0.1, 1.0, 0.2)
    rgb[rej] = (1.0, 0.2, 0.2)
    fig, ax = plt.subplots(figsize=(6, 6 * mean_img.shape[0] / max(mean_img.shape[1], 1)))
    ax.imshow(rgb, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"{title}  accepted (green) {int(accepted.sum())} / "
                 f"rejected (red) {len(stat) - int(accepted.sum())}")
    _save(fig, path)


def registration_shifts(path, ops, title="") -> None:
    plt = _plt()
    fig, axes = plt.subplots(2, 1, figsize=(8, 4), sharex=True)
    fs = float(ops.get("fs", 1.0))
    if "yoff" in ops:
        t = np.arange(len(ops["yoff"])) / fs
        axes[0].plot(t, ops["yoff"], lw=0.7, label="y")
        axes[0].plot(t, ops["xoff"], lw=0.7, label="x")
        axes[0].legend(loc="upper right", fontsize=7)
        if ops.get("yoff1") is not None and np.size(ops.get("yoff1")):
            nr = np.hypot(np.asarray(ops["yoff1"]), np.asarray(ops["xoff1"])).max(axis=1)
            axes[1].plot(t, nr, lw=0.7, color="k")
    axes[0].set_ylabel("rigid shift (px)")
    axes[1].set_ylabel("max non-rigid\nshift (px)")
    axes[1].set_xlabel("time (s)")
    axes[0].set_title(title)
    _save(fig, path)


def example_traces(path, F, dff, iscell, stat, fs, n=8, title="") -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.6 * max(n, 2) + 1), sharey=False)
    if len(stat):
        snr = np.array([s.get("snr", 0.0) for s in stat], float)
        order = np.argsort(-(snr + 10 * iscell[:, 0]))[:n]
        t = np.arange(F.shape[1]) / float(fs)
        for row, k in enumerate(order):
            for ax, y in ((axes[0], F[k]), (axes[1], dff[k])):
                y = np.asarray(y, float)
                rng = np.ptp(y) or 1.0
                ax.plot(t, row + (y - y.min()) / rng * 0.9, lw=0.5,
                        color="g" if iscell[k, 0] else "r")
        for ax in axes:
            ax.set_yticks(np.arange(len(order)) + 0.45, [f"ROI {k}" for k in order], fontsize=7)
            ax.set_xlabel("time (s)")
    axes[0].set_title(f"{title} raw F (normalised)")
    axes[1].set_title("dF/F (normalised)")
    _save(fig, path)


def volume_summary(path, mean_stack, counts_acc, counts_rej, title="") -> None:
    plt = _plt()
    nz = mean_stack.shape[0]
    ncol = min(nz, 6)
    nrow = int(np.ceil(nz / ncol))
    fig = plt.figure(figsize=(2.2 * ncol, 2.2 * nrow + 2.4))
    gs = fig.add_gridspec(nrow + 1, ncol)
    for z in range(nz):
        ax = fig.add_subplot(gs[z // ncol, z % ncol])
        ax.imshow(_norm(mean_stack[z]), cmap="gray")
        ax.set_title(f"plane {z}", fontsize=8)
        ax.set_axis_off()
    ax = fig.add_subplot(gs[nrow, :])
    z = np.arange(nz)
    ax.bar(z, counts_acc, color="g", label="accepted")
    ax.bar(z, counts_rej, bottom=counts_acc, color="r", alpha=0.6, label="rejected")
    ax.set_xticks(z)
    ax.set_xlabel("plane")
    ax.set_ylabel("ROIs")
    ax.legend(fontsize=7)
    fig.suptitle(title)
    _save(fig, path)


def volume_view(path, offsets: list[dict], rois: list[dict], crosstalk: list[dict], title="") -> None:
    """volume_stats' volume view: plane offsets (dy, dx per plane, interpolated/config marked),
    a top view of every accepted cell coloured by depth with lines from each primary ROI
    to its other views (grey: axial, red dashed: crosstalk ghosts), and the crosstalk table."""
    plt = _plt()
    fig = plt.figure(figsize=(13, 4.4))
    gs = fig.add_gridspec(1, 3, width_ratios=[1, 1.4, 1])
    ax = fig.add_subplot(gs[0])
    planes = [int(r["plane"]) for r in offsets]
    for key, colour in (("dy_px", "tab:blue"), ("dx_px", "tab:orange")):
        vals = [float(r[key]) for r in offsets]
        ax.plot(planes, vals, "-", color=colour, label=key)
        for p, v, r in zip(planes, vals, offsets):
            marker = {"estimated": "o", "interpolated": "x", "config": "s"}.get(r["source"], "o")
            ax.plot([p], [v], marker, color=colour, ms=6)
    ax.set_xlabel("plane")
    ax.set_ylabel("offset from plane 0 (px)")
    ax.set_title("plane offsets (o estimated, x interpolated, s config)", fontsize=8)
    ax.legend(fontsize=7)
    ax = fig.add_subplot(gs[1])
    pos = {(r["plane"], r["roi"]): r for r in rois}
    acc = [r for r in rois if r["accepted"] == "true" and r["primary"] == "true"]
    zkey = "z_um" if acc and acc[0].get("z_um") not in (None, "") else "plane"
    if acc:
        sc = ax.scatter([float(r["x_px"]) for r in acc], [float(r["y_px"]) for r in acc],
                        c=[float(r[zkey]) for r in acc], cmap="viridis", s=18, zorder=3)
        fig.colorbar(sc, ax=ax, label="depth (µm)" if zkey == "z_um" else "plane")
    for r in rois:
        if not r["duplicate_of"]:
            continue
        p, i = r["duplicate_of"].split(":")
        src = pos.get((p, i))
        if src is None:
            continue
        ghost = r["duplicate_of_reason"] == "crosstalk"
        ax.plot([float(src["x_px"]), float(r["x_px"])], [float(src["y_px"]), float(r["y_px"])],
                "--" if ghost else "-", color="red" if ghost else "grey", lw=1, zorder=2)
        ax.plot([float(r["x_px"])], [float(r["y_px"])], ".", color="red" if ghost else "grey", ms=3)
    ax.invert_yaxis()
    ax.set_aspect("equal")
    ax.set_xlabel("x (plane-0 px)")
    ax.set_ylabel("y (plane-0 px)")
    ndup = sum(1 for r in rois if r["duplicate_of_reason"] == "axial")
    nghost = sum(1 for r in rois if r["duplicate_of_reason"] == "crosstalk")
    ax.set_title(f"{len(acc)} accepted cells, top view\n{ndup} axial duplicates (grey), {nghost} ghosts (red)",
                 fontsize=8)
    ax = fig.add_subplot(gs[2])
    ax.set_axis_off()
    if crosstalk:
        cells = [[r["separation"], r["coefficient"] or "-", r["votes"], r["votes_against"],
                  "yes" if r["significant"] == "true" else "no"] for r in crosstalk]
        t = ax.table(cellText=cells, colLabels=["k", "coefficient", "votes", "against", "used"],
                     loc="center", cellLoc="center")
        t.auto_set_font_size(False)
        t.set_fontsize(8)
        ax.set_title("crosstalk: plane p+k receives\ncoefficient x plane p", fontsize=8)
    else:
        ax.text(0.5, 0.5, "crosstalk not estimated", ha="center", va="center")
    fig.suptitle(title)
    _save(fig, path)


#: colours of the QC verdicts (tables and shift traces)
VERDICT_COLOURS = {"ok": "#b7e1b0", "warn": "#ffe08a", "fail": "#f4a09a"}


def qc_shifts(path, shifts: dict, consensus, verdicts: dict, title="") -> None:
    """Every plane's rigid shifts (y above, x below), each centred on its median, on one
    axis per direction; the consensus (median of the planes) in black; failed planes dashed."""
    plt = _plt()
    fig, axes = plt.subplots(2, 1, figsize=(9, 4.5), sharex=True)
    cmap = plt.get_cmap("viridis")
    n = max(len(shifts), 1)
    for i, (p, (y, x)) in enumerate(sorted(shifts.items())):
        style = "--" if verdicts.get(p) == "fail" else "-"
        for ax, v in zip(axes, (y, x)):
            ax.plot(np.asarray(v) - np.median(v), style, lw=0.7, color=cmap(i / n), label=f"plane {p}")
    if consensus is not None:
        for ax, k in zip(axes, (0, 1)):
            ax.plot(consensus[:, k], color="k", lw=1.0, alpha=0.8, label="consensus")
    axes[0].set_ylabel("y shift (px)")
    axes[1].set_ylabel("x shift (px)")
    axes[1].set_xlabel("frame")
    axes[0].legend(loc="upper right", fontsize=6, ncol=4)
    axes[0].set_title(title, fontsize=9)
    _save(fig, path)


def qc_table(path, rows: list[dict], title="") -> None:
    """The QC table as a figure: one row per plane, coloured by verdict."""
    plt = _plt()
    cols = ("plane", "verdict", "n_accepted", "max_shift_px", "at_limit_fraction", "consensus_corr",
            "snr", "mean_brightness", "duplicate_fraction", "ghost_fraction", "crosstalk_in", "reasons")

    def fmt(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.3g}" if np.isfinite(v) else ""
        if isinstance(v, list):
            text = "; ".join(s.split(": ", 1)[-1] for s in v)
            return text if len(text) <= 70 else text[:67] + "..."
        return str(v)

    cells = [[fmt(r.get(c)) for c in cols] for r in rows]
    colours = [[VERDICT_COLOURS.get(r["verdict"], "white")] * len(cols) for r in rows]
    fig, ax = plt.subplots(figsize=(14, 0.35 * len(rows) + 1.0))
    ax.set_axis_off()
    table = ax.table(cellText=cells, colLabels=[c.replace("_", " ") for c in cols], cellColours=colours,
                     loc="center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.auto_set_column_width(list(range(len(cols))))
    ax.set_title(title, fontsize=9)
    _save(fig, path)
