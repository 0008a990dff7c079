"""planeflow.io.atomic: outputs appear whole or not at all, with ordinary permissions."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from planeflow.io.atomic import atomic_path, save_json, save_npy


def test_saved_files_get_umask_permissions_not_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        save_npy(tmp_path / "a.npy", np.arange(3))
        save_json(tmp_path / "b.json", {"x": 1})
    finally:
        os.umask(old)
    for name in ("a.npy", "b.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_damaged_npy_gives_one_clear_error(tmp_path):
    """A file that is not a .npy (e.g. overwritten by hand) names itself and the fix."""
    from planeflow import PlaneflowError
    from planeflow.io.planefiles import load_array, load_ops

    bad = tmp_path / "ops.npy"
    bad.write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (), }"
                    + b" " * 53 + b"\n" + b"not a pickle")
    for loader in (load_ops, lambda p: load_array(p, allow_pickle=True)):
        with pytest.raises(PlaneflowError, match="ops.npy.*delete it and rerun"):
            loader(bad)
