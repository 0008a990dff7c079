"""Synthetic recordings with planted ground truth (simulator, ScanImage writer, scoring); for the demo and tests."""
