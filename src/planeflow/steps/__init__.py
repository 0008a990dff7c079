"""One module per workflow step; each exposes a function named like its rule."""
