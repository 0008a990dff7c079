"""metadata.json, the contract between planeflow's stages (issue 20, item 5): one schema,
the same keys for every input format, checked when it is written and when a job reads it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import coded_frames, write_tiff
from planeflow import PlaneflowError
from planeflow.plan.config import load_schema
from planeflow.plan.session import METADATA_SCHEMA, load_metadata, metadata_problems, session_metadata


def _tiff_session(tmp_path):
    write_tiff(tmp_path / "raw" / "a.tif", coded_frames(2 * 60, 16, 16))
    row = {"session_id": "t", "data_path": str(tmp_path / "raw"), "nplanes": 2, "fs": 5.0}
    return session_metadata(row, str(tmp_path / "res"))


def _zarr_session(tmp_path):
    import zarr

    z = zarr.create_array(str(tmp_path / "a.zarr"), shape=(60, 2, 16, 16), dtype="int16")
    z[:] = np.arange(60 * 2 * 16 * 16, dtype=np.int64).reshape(60, 2, 16, 16) % 1000
    row = {"session_id": "z", "data_path": str(tmp_path / "a.zarr"), "fs": 5.0}
    return session_metadata(row, str(tmp_path / "res"))


def test_every_input_format_writes_every_key(tmp_path):
    required = set(load_schema(METADATA_SCHEMA)["required"])
    tiff, array = _tiff_session(tmp_path / "t"), _zarr_session(tmp_path / "z")
    assert set(tiff) - {"fingerprint"} == set(array) - {"fingerprint"} == required
    assert tiff["layout"] is not None and array["layout"] is None
    assert array["dataset"] is None or isinstance(array["dataset"], str)
    assert metadata_problems(tiff) is None and metadata_problems(array) is None
    # and what was written is what a job reads
    assert load_metadata(str(tmp_path / "t" / "res" / "t" / "metadata.json")) == tiff


def test_a_job_refuses_metadata_that_breaks_the_contract(tmp_path):
    meta = _tiff_session(tmp_path)
    path = tmp_path / "res" / "t" / "metadata.json"
    path.write_text(json.dumps({**meta, "nframes": "sixty", "extra": 1}))
    with pytest.raises(PlaneflowError, match=r"metadata\.json.*nframes.*Delete it and run snakemake again"):
        load_metadata(str(path))
    path.write_text("{ not json")
    with pytest.raises(PlaneflowError, match="cannot read the session metadata"):
        load_metadata(str(path))


def test_an_outdated_cache_is_rebuilt(tmp_path):
    meta = _tiff_session(tmp_path)
    path = tmp_path / "res" / "t" / "metadata.json"
    stale = {k: v for k, v in meta.items() if k != "dataset"}  # a cache from before the key
    path.write_text(json.dumps(stale))
    row = {"session_id": "t", "data_path": str(tmp_path / "raw"), "nplanes": 2, "fs": 5.0}
    again = session_metadata(row, str(tmp_path / "res"))
    assert again == meta and json.loads(path.read_text()) == meta
