"""Archiving a session's raw files: check the binaries, pack, verify, delete.

The functions here do one thing each and are used by the ``raw_compress`` step
(:mod:`planeflow.steps.raw_compress`); :func:`load_manifest` is also used by
:mod:`planeflow.plan.session` while Snakemake parses the workflow, so importing this
module must stay cheap (standard library only at import time).

Archives are plain zip (deflate) or tar.gz / tar.bz2 / tar.xz files that any unzip
or tar opens; members are stored with paths relative to the session's data folder
(the folder that holds its raw files), so unpacking the archive there restores them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tarfile
import zipfile

from planeflow import PlaneflowError
from planeflow.progress import Progress

log = logging.getLogger("planeflow")

#: archive formats (also the file extension) -> tarfile write mode (None = zip)
FORMATS = {"zip": None, "tar.gz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}
#: hash of the binaries (recorded by binary_write) and of every archived file
CHECKSUM = "sha256"
CHUNK = 4 << 20  # bytes read at a time


# ---- manifest ----------------------------------------------------------------------------
def load_manifest(path: str) -> dict | None:
    """A raw_compress manifest (planeflow.plan.layout.Layout.manifest), or None when there is
    none (or it is unreadable)."""
    try:
        with open(path) as fh:
            manifest = json.load(fh)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


# ---- checksums --------------------------------------------------------------
def hash_stream(fh, algorithm: str = CHECKSUM, progress: Progress | None = None) -> tuple[str, int]:
    """(hex digest, number of bytes) of everything left to read in ``fh``."""
    h = hashlib.new(algorithm)
    n = 0
    while chunk := fh.read(CHUNK):
        h.update(chunk)
        n += len(chunk)
        if progress:
            progress.add(len(chunk))
    return h.hexdigest(), n


def hash_file(path: str, algorithm: str = CHECKSUM, progress: Progress | None = None) -> tuple[str, int]:
    with open(path, "rb") as fh:
        return hash_stream(fh, algorithm, progress)


# ---- 1. the binaries ---------------------------------------------------------------------
def verify_binary(bin_path: str, ops_path: str, nframes: int | None = None,
                  progress: Progress | None = None) -> dict:
    """Check a binary_write output against what its ops recorded when it was written.

    Frame count (``ops["nframes"]``, and ``nframes`` from the session metadata when
    given), size (``nframes * Ly * Lx * 2`` bytes) and ``ops["raw_bin_checksum"]``.
    Returns a short record for the manifest; raises :class:`PlaneflowError` naming
    the file on any mismatch.
    """
    from planeflow.io.planefiles import check_binary, load_ops

    ops = load_ops(ops_path)
    redo = (f"Rewrite it with `snakemake --forcerun {bin_path}` (this also redoes that plane's "
            "later steps); the raw files were left untouched.")
    Ly, Lx, n = int(ops["Ly"]), int(ops["Lx"]), int(ops["nframes"])
    if nframes is not None and n != int(nframes):
        raise PlaneflowError(
            f"'{ops_path}' says {n} frames but the session's metadata.json says {nframes}: "
            f"the binary '{bin_path}' is from another version of the raw files. {redo}")
    check_binary(bin_path, n, Ly, Lx, advice=redo)
    size = expected = n * Ly * Lx * 2
    record = ops.get("raw_bin_checksum")
    if not isinstance(record, dict) or not record.get("value"):
        raise PlaneflowError(
            f"'{ops_path}' holds no raw_bin_checksum (the binary was written before planeflow "
            f"recorded one), so '{bin_path}' cannot be verified before archiving. {redo}")
    try:
        value, nbytes = hash_file(bin_path, record["algorithm"], progress)
    except ValueError as e:  # unknown algorithm
        raise PlaneflowError(f"'{ops_path}': unknown checksum algorithm {record['algorithm']!r}. {redo}") from e
    if value != record["value"] or nbytes != expected:
        raise PlaneflowError(
            f"binary '{bin_path}' does not match the {record['algorithm']} checksum recorded when it "
            f"was written ({record['value'][:16]}... expected, {value[:16]}... found): it changed or was "
            f"damaged on disk. {redo}")
    return {"file": os.path.abspath(bin_path), "plane": int(ops.get("iplane", -1)),
            "part": int(ops.get("iroi", 0)), "nframes": n, "Ly": Ly, "Lx": Lx, "bytes": size,
            "checksum": {"algorithm": record["algorithm"], "value": value}}


# ---- 2. what to archive ------------------------------------------------------------------
def data_root(entries: list[str]) -> str:
    """The session's data folder: the deepest folder holding all its raw files (or stores)."""
    return os.path.commonpath([os.path.dirname(os.path.abspath(e)) for e in entries])


def collect_members(entries: list[str], root: str) -> list[dict]:
    """Every file to archive: the raw files, and all files inside zarr folders.

    Each as ``{"path", "name" (relative to root, with /), "size", "mtime_ns"}``.
    """
    paths = []
    for e in entries:
        if os.path.isdir(e):
            for d, dirs, files in os.walk(e):
                dirs.sort()
                paths += [os.path.join(d, f) for f in sorted(files)]
        elif os.path.isfile(e):
            paths.append(e)
        else:
            raise PlaneflowError(
                f"raw file '{e}' listed in the session's metadata.json does not exist, so it cannot "
                "be archived. Restore it (or, if the session was archived before, unpack that "
                "archive into the data folder) and rerun.")
    members = []
    for p in paths:
        st = os.stat(p)
        name = os.path.relpath(p, root).replace(os.sep, "/")
        members.append({"path": os.path.abspath(p), "name": name, "size": st.st_size,
                        "mtime_ns": st.st_mtime_ns})
    if not members:
        raise PlaneflowError(f"no raw file to archive under {entries} (empty zarr folder?).")
    return members


def changed_members(members: list[dict]) -> list[str]:
    """Names of members whose size or modification time differ from when they were listed."""
    out = []
    for m in members:
        try:
            st = os.stat(m["path"])
        except OSError:
            out.append(m["name"])
            continue
        if (st.st_size, st.st_mtime_ns) != (m["size"], m["mtime_ns"]):
            out.append(m["name"])
    return out


# ---- 3. the archive ----------------------------------------------------------------------
def check_format(fmt: str, level: int) -> None:
    if fmt not in FORMATS:
        raise PlaneflowError(f"raw_compress.format '{fmt}' is not one of {', '.join(FORMATS)}.")
    if not 1 <= int(level) <= 9:
        raise PlaneflowError(f"raw_compress.level {level} is out of range: use 1 (fastest) to 9 (smallest).")


class _Hashing:
    """File wrapper that hashes (and counts) what is read through it."""

    def __init__(self, fh, progress: Progress | None):
        self.fh, self.progress = fh, progress
        self.h = hashlib.new(CHECKSUM)
        self.nbytes = 0

    def read(self, n: int = -1) -> bytes:
        b = self.fh.read(n)
        self.h.update(b)
        self.nbytes += len(b)
        if self.progress:
            self.progress.add(len(b))
        return b


def write_archive(path: str, members: list[dict], fmt: str = "zip", level: int = 1,
                  progress: Progress | None = None) -> list[dict]:
    """Pack ``members`` into a new archive at ``path``, reading each file once.

    Returns ``[{"name", "size", "sha256"}]`` of the bytes actually packed.
    """
    check_format(fmt, level)
    records = []
    if fmt == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for m in members:
                info = zipfile.ZipInfo.from_file(m["path"], m["name"], strict_timestamps=False)
                info.compress_type = zipfile.ZIP_DEFLATED
                # ZipFile.open() takes the level from the ZipInfo (attribute renamed in 3.13)
                setattr(info, "compress_level" if hasattr(info, "compress_level") else "_compresslevel",
                        int(level))
                with open(m["path"], "rb") as src, zf.open(info, "w") as dst:
                    reader = _Hashing(src, progress)
                    while chunk := reader.read(CHUNK):
                        dst.write(chunk)
                records.append({"name": m["name"], "size": reader.nbytes, "sha256": reader.h.hexdigest()})
    else:
        key = "preset" if fmt == "tar.xz" else "compresslevel"
        with tarfile.open(path, FORMATS[fmt], dereference=True, copybufsize=CHUNK,
                          **{key: int(level)}) as tf:
            for m in members:
                info = tf.gettarinfo(m["path"], arcname=m["name"])
                with open(m["path"], "rb") as src:
                    reader = _Hashing(src, progress)
                    try:
                        tf.addfile(info, reader)
                    except OSError as e:  # tarfile: the file shrank while it was read
                        raise PlaneflowError(f"raw file '{m['path']}' changed while it was archived ({e}); "
                                             "rerun when nothing writes to the data folder.") from e
                records.append({"name": m["name"], "size": reader.nbytes, "sha256": reader.h.hexdigest()})
    for m, r in zip(members, records):
        if r["size"] != m["size"]:
            raise PlaneflowError(f"raw file '{m['path']}' changed while it was archived ({m['size']} bytes "
                                 f"listed, {r['size']} read); rerun when nothing writes to the data folder.")
    return records


def verify_archive(path: str, records: list[dict], fmt: str = "zip",
                   progress: Progress | None = None) -> None:
    """Re-read every member of the archive and compare its size and sha256 with ``records``.

    Raises :class:`PlaneflowError` naming the archive (and member) on any difference,
    a missing or extra member, or an unreadable archive.
    """
    import lzma
    import zlib

    expected = {r["name"]: r for r in records}
    seen = {}
    try:
        if fmt == "zip":
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if not info.is_dir():
                        with zf.open(info) as fh:  # zipfile also checks each member's CRC-32
                            seen[info.filename] = hash_stream(fh, CHECKSUM, progress)
        else:
            with tarfile.open(path, "r:*") as tf:
                for info in tf:
                    if info.isfile():
                        seen[info.name] = hash_stream(tf.extractfile(info), CHECKSUM, progress)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError, zlib.error,
            lzma.LZMAError) as e:
        raise PlaneflowError(f"archive '{path}' cannot be read back ({e}); the raw files were left "
                             "untouched. Check the disk and rerun.") from e
    missing = sorted(set(expected) - set(seen))
    extra = sorted(set(seen) - set(expected))
    bad = sorted(n for n in set(seen) & set(expected)
                 if seen[n] != (expected[n]["sha256"], expected[n]["size"]))
    if missing or extra or bad:
        what = "; ".join(f"{k}: {', '.join(v[:3])}{' ...' if len(v) > 3 else ''}"
                         for k, v in (("missing", missing), ("unexpected", extra), ("differs", bad)) if v)
        raise PlaneflowError(f"archive '{path}' does not match the raw files ({what}); the raw files were "
                             "left untouched. Check the disk and rerun.")


# ---- 4. deleting the originals -----------------------------------------------------------
def delete_originals(members: list[dict], entries: list[str]) -> tuple[list[str], list[dict]]:
    """Delete the archived files, then the folders of zarr stores that are left empty.

    A file that changed since it was archived is kept. Never raises: returns
    (names deleted, ``[{"name", "reason"}]`` kept).
    """
    deleted, kept = [], []
    for m in members:
        if changed_members([m]):
            kept.append({"name": m["name"], "reason": "changed or missing since it was archived"})
            continue
        try:
            os.remove(m["path"])
            deleted.append(m["name"])
        except OSError as e:
            kept.append({"name": m["name"], "reason": str(e)})
    for e in entries:
        if os.path.isdir(e):
            for d, _, _ in os.walk(e, topdown=False):
                try:
                    os.rmdir(d)  # only empty folders
                except OSError:
                    pass
    return deleted, kept
