"""planeflow.atomic: outputs appear whole or not at all, with ordinary permissions."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from planeflow.atomic import atomic_path, save_json, save_npy


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
