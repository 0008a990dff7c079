"""From planes to a volume: plane offsets, crosstalk and one ID per cell.

Pure numpy/scipy on suite2p's per-plane outputs, in four modules: :mod:`.offsets` (plane
offsets), :mod:`.crosstalk` (crosstalk between planes), :mod:`.identity` (one ID per cell) and
:mod:`.fields` (scan fields and parts), on :mod:`.rois` (a plane's ROIs). The steps volume_stats, crosstalk and
crosstalk_subtract do the file work. Conventions:

* **plane offset** ``(dy, dx)`` of plane ``p``: a feature at plane-0 pixel ``(y, x)`` of
  the registered frames lies at ``(y + dy, x + dx)`` in plane ``p``'s registered frames
  (plane 0 has ``(0, 0)``). Volume coordinates of a pixel of plane ``p`` are therefore
  ``(y - dy, x - dx)`` (plane-0 pixels) and ``z = p * dz``.
* **recorded-pixel shift** ``raw[p]``: crosstalk happens at the same *recorded* pixel, not
  at the same tissue point. Registration moves every plane by its own offsets
  ``(yoff, xoff)`` (shared motion, but a reference image of its own), so a recorded
  pixel that is at ``(y, x)`` in plane ``p``'s registered frame is at
  ``(y, x) + raw[p] - raw[q]`` in plane ``q``'s, with ``raw[p] = median_t(yoff_p - yoff_0)``.
* **crosstalk coefficient** ``c`` at separation ``k``: plane ``p + k`` receives
  ``c`` times plane ``p``'s light (``k`` may be negative).
"""
from planeflow.core.volume.crosstalk import (  # noqa: F401 - the package's public face
    ACTIVE_FRACTION,
    GHOST_MAX_RATIO,
    MAX_COEFFICIENT,
    MAX_COLLINEARITY,
    AMBIGUOUS_PX,
    PAIR_SIGMA_FLOOR,
    active_mask,
    activity_frames,
    combine_pairs,
    crosstalk_pair,
    crosstalk_ratios,
    crosstalk_slope,
    crosstalk_table,
    estimate_crosstalk,
    frame_halves,
    ghost_votes,
    half_lag_sums,
    move_frames,
    pixels_by_frames,
    pooled_median,
    source_in_target,
    source_mask,
    split_half_ratios,
    subtract_crosstalk,
    weighted_median,
)
from planeflow.core.volume.fields import (  # noqa: F401 - the package's public face
    field_index,
    field_um,
    move_part_rois,
    part_reference_shifts,
    realign_parts,
    roi_fields,
    volume_um,
)
from planeflow.core.volume.identity import (  # noqa: F401 - the package's public face
    Cells,
    Planes,
    TRACE_CHUNK,
    TraceReader,
    activity,
    cell_and_roi_rows,
    cell_labels,
    correlation,
    clean_means,
    crosstalk_and_clean_means,
    group_cells,
    group_rois,
    identify_cells,
    matching_pairs,
    offset_rows,
    roi_snrs,
    rois_in_common_frame,
    snr,
    typical_diameter,
    roi_correlation,
    unreliable_planes,
)
from planeflow.core.volume.offsets import (  # noqa: F401 - the package's public face
    aligned_image,
    field_plane_offsets,
    pair_displacements,
    phase_offset,
    plane_offsets,
    recorded_shifts,
    shift_image,
    solve_offsets,
)
from planeflow.core.volume.rois import (  # noqa: F401 - the package's public face
    RING_PX,
    Rois,
    candidate_pairs,
    overlap,
    roi_contrast,
)
