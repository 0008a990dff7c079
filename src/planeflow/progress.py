"""The one progress logger of planeflow's jobs: ``<what>: N% (done/total unit)`` lines in
the job's log, each time another ``every`` percent is done, optionally per part (plane)."""
from __future__ import annotations

import logging

log = logging.getLogger("planeflow")


class Progress:
    """Count work done against a known total and log the percentage as it grows.

    ``total``: the whole job's work (bytes, frames, ...), or ``parts``: the work of each
    part (e.g. {plane: bytes}), whose sum is the total. ``unit``/``scale`` say how the counts
    are printed (bytes as MB by default).
    """

    def __init__(self, what: str, total: int | None = None, *, parts: dict | None = None,
                 every: int = 10, unit: str = "MB", scale: float = 1e6):
        self.parts = {k: max(1, int(v)) for k, v in (parts or {}).items()}
        self.part_done = dict.fromkeys(self.parts, 0)
        self.total = max(1, int(total if total is not None else sum(self.parts.values())))
        self.what, self.every, self.unit, self.scale = what, every, unit, scale
        self.done, self.last = 0, -every

    def add(self, n: int, part=None, note: str | None = None) -> None:
        """Count ``n`` more units (of ``part``). A line is logged when another ``every``
        percent of the total is done, and always when a ``note`` is given."""
        self.done += int(n)
        if part is not None:
            self.part_done[part] += int(n)
        pct = min(100, int(100 * self.done / self.total))
        if note is None and pct < self.last + self.every:
            return
        self.last = max(self.last, pct - pct % self.every)
        where = ""
        if part is not None:
            ppct = min(100, int(100 * self.part_done[part] / self.parts[part]))
            where = f"{part} {ppct}% done, total "
        log.info("%s: %s%s%d%% done (%.1f/%.1f %s)", self.what, f"{note} - " if note else "", where, pct,
                 self.done / self.scale, self.total / self.scale, self.unit)
