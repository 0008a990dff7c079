"""The same neuron across sessions of one subject, in 3-D (CellReg's method on volumes).

Public face: :class:`SessionCells` and :func:`read_session` (one session's cells from its
volume tables), :func:`track_subject` and its :class:`TrackingResult` (the three tables'
rows, column lists in ``TRACKED_CELLS_COLUMNS``, ``TRACKS_COLUMNS``, ``PAIRS_COLUMNS``; the
options and their defaults in ``DEFAULTS``), and :func:`tracking_figure`.
"""
from planeflow.core.tracking.cells import Cell, Footprint, SessionCells, read_session
from planeflow.core.tracking.figure import tracking_figure
from planeflow.core.tracking.track import (DEFAULTS, PAIRS_COLUMNS, TRACKED_CELLS_COLUMNS, TRACKS_COLUMNS,
                                           TrackingResult, track_subject)

__all__ = ["Cell", "Footprint", "SessionCells", "read_session", "track_subject", "TrackingResult",
           "tracking_figure", "DEFAULTS", "TRACKED_CELLS_COLUMNS", "TRACKS_COLUMNS", "PAIRS_COLUMNS"]
