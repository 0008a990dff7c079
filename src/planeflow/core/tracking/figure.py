"""The tracking figure: every session's mean image in the reference frame with the tracks drawn
across sessions, and the fitted model."""
from __future__ import annotations

import numpy as np

from planeflow.core.tracking.cells import SessionCells

MAX_PANELS = 12


def _chosen_plane(result, sessions: list[SessionCells]) -> int:
    """The reference plane (index) holding most cells tracked in two sessions or more."""
    n = len(sessions[0].planes)
    counts = np.zeros(n)
    for c in result.clusters:
        if len(c) > 1:
            zs = [result.positions[(s, i)][2] for s, i in c.items()]
            counts[int(np.clip(np.round(np.mean(zs)), 0, n - 1))] += 1
    return int(np.argmax(counts)) if counts.any() else n // 2


def _contrast(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img[img != 0], (1, 99.5)) if np.any(img != 0) else (0.0, 1.0)
    return np.clip((img - lo) / (hi - lo + 1e-12), 0, 1)


def tracking_figure(result, sessions: list[SessionCells]):
    """A matplotlib Figure (no display needed): one panel per session (at most
    :data:`MAX_PANELS`) with its mean image of the plane nearest to the chosen reference plane,
    moved into the reference frame, and a coloured circle per track of two sessions or more
    near that plane (the same colour and number in every session); a last panel with the
    candidate pairs' footprint correlations and centroid distances coloured by ``P_same``."""
    from matplotlib.figure import Figure

    plane = _chosen_plane(result, sessions)
    shown = list(range(len(sessions)))[:MAX_PANELS]
    ncol = min(len(shown) + 1, 4)
    nrow = int(np.ceil((len(shown) + 1) / ncol))
    fig = Figure(figsize=(3.6 * ncol, 3.6 * nrow), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    colours = __import__("matplotlib").colormaps["tab20"]
    track_of = {}
    for tid, c in enumerate(result.clusters, start=1):
        if len(c) > 1:
            for s, i in c.items():
                track_of[(s, i)] = tid
    for ax, s in zip(axes, shown):
        t = result.transforms[s]
        own = int(np.clip(np.round(plane - t.z_shift), 0, len(sessions[s].planes) - 1))
        ax.imshow(_contrast(t.warp(sessions[s].means[own])), cmap="gray", interpolation="nearest")
        for (ss, i), tid in track_of.items():
            if ss != s:
                continue
            y, x, z = result.positions[(s, i)]
            if abs(z - plane) <= 1.0:
                ax.add_patch(__import__("matplotlib").patches.Circle((x, y), 5, fill=False, lw=1,
                                                                     color=colours(tid % 20)))
                if len(track_of) <= 400:
                    ax.text(x + 5, y - 5, str(tid), color=colours(tid % 20), fontsize=5)
        ax.set_title(f"{sessions[s].session}: plane {sessions[s].planes[own]} (z shift {t.z_shift:+.2f})"
                     + (" reference" if sessions[s].session == result.reference else ""), fontsize=8)
        ax.set_axis_off()
    ax = axes[len(shown)]
    f = np.asarray(result.pair_features).reshape(-1, 3)
    if len(f):
        sc = ax.scatter(f[:, 0], f[:, 1], c=f[:, 2], s=4, cmap="coolwarm", vmin=0, vmax=1)
        fig.colorbar(sc, ax=ax, label="P_same")
    ax.set_xlabel("centroid distance (µm)")
    ax.set_ylabel("footprint correlation")
    ax.set_title(f"candidate pairs ({result.options['model']} model)", fontsize=8)
    for ax in axes[len(shown) + 1:]:
        ax.set_axis_off()
    fig.suptitle(f"tracking: {len([c for c in result.clusters if len(c) > 1])} tracks in 2+ sessions, "
                 f"{len(result.clusters)} in all; reference {result.reference}", fontsize=9)
    return fig
