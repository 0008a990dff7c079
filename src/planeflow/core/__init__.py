"""Algorithms planeflow adds around suite2p: scan phase, dF/F, figures, cellpose masks, archives."""
