"""tracking: the same neuron followed across the sessions of one subject, in 3-D.

Reads what each session's volume_stats and merge wrote (``cells.tsv``, ``rois.tsv``,
``plane_offsets.tsv``, the final plane folders), hands the sessions to
:mod:`planeflow.core.tracking` (field-of-view alignment between sessions, CellReg's
probabilistic matching within and across neighbouring planes, clustering into tracks) and
writes, in ``<results>/subjects/<subject>/``:

* ``tracked_cells.tsv``: one row per cell of each session (its primary ROI), with its track;
* ``tracks.tsv``: one row per track (sessions present, planes, mean position in µm);
* ``pairs.tsv``: one row per pair of sessions (cells in each, tracked in both, alignment);
* ``tracking.png``: the sessions' aligned mean images with the tracks drawn across them;
* ``tracking.json``: the subject, its sessions, the settings, counts and the library versions.

Every file is written to a temporary name and renamed into place.
"""
from __future__ import annotations

import logging
import time

from planeflow import PlaneflowError, __version__
from planeflow.io.atomic import atomic_path, save_json
from planeflow.io.tables import write_tsv

log = logging.getLogger("planeflow")


def tracking(subject: str, sessions: list[dict], inputs: dict, out: dict, options: dict) -> dict:
    """Track the cells of ``sessions`` (each: session_id, planes, dx, dy, dz; sheet order) of
    ``subject``. ``inputs``: per session its ``cells``, ``rois`` and ``offsets`` table and its
    ``planes`` (final plane folders), each a list in the order of ``sessions``."""
    from planeflow.core import tracking as trk

    t0 = time.time()
    if not sessions:
        raise PlaneflowError(f"subject {subject}: no session to track")
    vols = []
    for i, s in enumerate(sessions):
        vols.append(trk.read_session(
            s["session_id"], cells_tsv=inputs["cells"][i], rois_tsv=inputs["rois"][i],
            offsets_tsv=inputs["offsets"][i], plane_dirs=inputs["planes"][i],
            geometry={k: s.get(k) for k in ("dx", "dy", "dz")}))
    result = trk.track_subject(vols, dict(options))
    cells = [{"subject": subject, **r} for r in result.tracked_cells]
    write_tsv(out["cells"], cells, ("subject", *trk.TRACKED_CELLS_COLUMNS))
    write_tsv(out["tracks"], result.tracks, trk.TRACKS_COLUMNS)
    write_tsv(out["pairs"], result.pairs, trk.PAIRS_COLUMNS)
    fig = trk.tracking_figure(result, vols)
    with atomic_path(out["figure"], suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    import matplotlib.pyplot as plt

    plt.close(fig)
    n_multi = sum(int(r["n_sessions"]) > 1 for r in result.tracks)
    summary = {
        "subject": subject, "sessions": [s["session_id"] for s in sessions],
        "reference_session": result.reference, "n_cells": len(cells), "n_tracks": len(result.tracks),
        "n_tracks_in_several_sessions": n_multi, "options": result.options,
        "method": "CellReg (Sheintuch et al. 2017) on volumes: field-of-view registration, a mixture model "
                  "of centroid distances and footprint correlations (P_same), clustering",
        "planeflow_version": __version__, "seconds": round(time.time() - t0, 2)}
    save_json(out["summary"], summary)
    log.info("tracking: subject %s, %d sessions, %d cells in %d tracks (%d in more than one session)",
             subject, len(sessions), len(cells), len(result.tracks), n_multi)
    return summary
