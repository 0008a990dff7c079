"""Writing a volume as OME-Zarr (NGFF 0.5, zarr v3): an image and a labels image.

Layout (one resolution level each)::

    volume.zarr/            group, attrs {"ome": {"version": "0.5", "multiscales": [...]}, ...}
    ├── 0                   float32 (z, y, x) image
    └── labels/             group, attrs {"ome": {"version": "0.5", "labels": ["cells"]}}
        └── cells/          group, multiscales + image-label
            └── 0           int32 (z, y, x) label image

Axes ``z, y, x`` of type space; with every voxel size known they are in micrometres and the
scale is ``[dz, dy, dx]``, otherwise unit-less with scale 1 for the unknown sizes. Written to a
temporary folder and renamed into place (nothing half-written is left under the final name).
"""
from __future__ import annotations

import os
import shutil

import numpy as np

NGFF_VERSION = "0.5"


def _multiscales(name: str, scale: list[float], unit: str | None) -> list[dict]:
    axes = [{"name": a, "type": "space", **({"unit": unit} if unit else {})} for a in ("z", "y", "x")]
    return [{"name": name, "axes": axes,
             "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}]}]


def write_ome_volume(path, image: np.ndarray, labels: np.ndarray, voxel_um, name: str,
                     attrs: dict | None = None, label_name: str = "cells") -> None:
    """Write ``image`` and ``labels`` (both (z, y, x)) as an OME-Zarr 0.5 image with one
    labels image. ``voxel_um``: (dz, dy, dx) in micrometres, None where unknown. ``attrs``:
    extra root attributes (JSON-serialisable)."""
    import zarr

    scale = [float(v) if v is not None else 1.0 for v in voxel_um]
    unit = "micrometer" if all(v is not None for v in voxel_um) else None
    path = os.fspath(path).rstrip("/")
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    nz, ny, nx = image.shape
    chunks = (1, min(ny, 512), min(nx, 512))
    root = zarr.open_group(tmp, mode="w", zarr_format=3)
    root.attrs.update({**(attrs or {}), "ome": {"version": NGFF_VERSION,
                                                "multiscales": _multiscales(name, scale, unit)}})
    a = root.create_array("0", shape=image.shape, dtype="float32", chunks=chunks,
                          dimension_names=["z", "y", "x"])
    a[:] = image.astype(np.float32)
    lab_root = root.create_group("labels")
    lab_root.attrs.update({"ome": {"version": NGFF_VERSION, "labels": [label_name]}})
    g = lab_root.create_group(label_name)
    g.attrs.update({"ome": {"version": NGFF_VERSION, "multiscales": _multiscales(label_name, scale, unit),
                            "image-label": {"source": {"image": "../../"}}}})
    b = g.create_array("0", shape=labels.shape, dtype="int32", chunks=chunks, dimension_names=["z", "y", "x"])
    b[:] = labels.astype(np.int32)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
