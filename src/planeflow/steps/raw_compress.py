"""raw_compress: pack a session's raw files into one verified archive; optionally delete them.

Order, so that no raw byte is lost on any failure:

1. every binary_write output of the session is re-read and checked against the
   frame count and checksum recorded when it was written (refuse on mismatch);
2. the raw files are packed into a temporary archive, hashing each file as it is
   read; the archive is read back member by member and compared (size, sha256);
3. only then is it made read-only and renamed to its final name, and the manifest
   written;
4. with ``delete_originals``, the archived files are deleted last. Nothing after the
   first deletion may fail the job: Snakemake removes the outputs of a failed job,
   and the archive may by then be the only copy. The archive being read-only also
   makes Snakemake refuse to rerun the job over it (protected output).
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import time

from planeflow import PlaneflowError, __version__
from planeflow.progress import Progress
from planeflow.io.atomic import atomic_path, save_json
from planeflow.core.archive import (
    CHECKSUM,
    changed_members,
    check_format,
    collect_members,
    data_root,
    delete_originals,
    hash_file,
    verify_archive,
    verify_binary,
    write_archive,
)
from planeflow.plan.session import load_metadata

log = logging.getLogger("planeflow")


def raw_compress(metadata: str, binaries: list[tuple[str, str]], out_archive: str, out_manifest: str,
                 fmt: str = "zip", level: int = 1, delete: bool = False) -> dict:
    """Archive the raw files of the session described by ``metadata`` (its metadata.json).

    ``binaries``: (data_raw.bin, ops.npy) of every plane and part of the session.
    Returns the manifest (also written to ``out_manifest``).
    """
    t0 = time.time()
    check_format(fmt, level)
    meta = load_metadata(metadata)
    sid = meta["session_id"]

    # 1. the binaries must be complete and intact before the raw files are touched
    want = {(int(p), q) for p in meta["planes"] for q in range(len(meta["parts"]))}
    total = sum(os.path.getsize(b) for b, _ in binaries if os.path.exists(b))
    progress = Progress(f"raw_compress {sid}: checking binaries", total)
    checked = [verify_binary(b, o, nframes=meta["nframes"], progress=progress) for b, o in binaries]
    got = {(c["plane"], c["part"]) for c in checked}
    if got != want:
        raise PlaneflowError(f"raw_compress {sid}: binaries of planes/parts {sorted(got)} were given but the "
                             f"session has {sorted(want)}; every binary must be checked before archiving.")
    t_check = time.time() - t0
    log.info("raw_compress %s: %d binaries match their frame counts and checksums (%.1f s)",
             sid, len(checked), t_check)

    # 2. pack and verify, under a temporary name
    entries = list(meta["files"])
    sources = []
    for e in entries:
        try:
            st = os.stat(e)
        except OSError as err:
            raise PlaneflowError(f"raw file '{e}' of session '{sid}' cannot be read ({err}); nothing was "
                                 "archived. Restore it and rerun.") from err
        sources.append({"path": e, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    root = data_root(entries)
    members = collect_members(entries, root)
    raw_bytes = sum(m["size"] for m in members)
    log.info("raw_compress %s: packing %d file(s), %.1f MB, from '%s' as %s (level %d)",
             sid, len(members), raw_bytes / 1e6, root, fmt, level)
    t1 = time.time()
    with atomic_path(out_archive) as tmp:
        records = write_archive(str(tmp), members, fmt, level, Progress(f"raw_compress {sid}: packing", raw_bytes))
        t_pack = time.time() - t1
        changed = changed_members(members)
        if changed:
            raise PlaneflowError(f"raw file(s) {changed[:3]} changed while session '{sid}' was archived; "
                                 "nothing was deleted. Rerun when nothing writes to the data folder.")
        t2 = time.time()
        verify_archive(str(tmp), records, fmt, Progress(f"raw_compress {sid}: verifying archive", raw_bytes))
        archive_sha, archive_bytes = hash_file(str(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        t_verify = time.time() - t2
        os.chmod(tmp, 0o444)  # read-only: Snakemake will not overwrite or rerun over it
    ratio = raw_bytes / max(archive_bytes, 1)
    log.info("raw_compress %s: archive '%s' verified: %.1f MB -> %.1f MB (ratio %.2f), packed at %.1f MB/s",
             sid, out_archive, raw_bytes / 1e6, archive_bytes / 1e6, ratio,
             raw_bytes / 1e6 / max(t_pack, 1e-9))

    manifest = {
        "session_id": sid,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "planeflow_version": __version__,
        "data_path": meta["data_path"],
        "data_root": root,
        # the raw paths as metadata.json lists them, with the size and modification time
        # they had when archived: the metadata cache stays valid after deletion
        "sources": sources,
        "files": records,
        "archive": {"file": os.path.basename(out_archive), "format": fmt, "level": int(level),
                    "bytes": archive_bytes, CHECKSUM: archive_sha, "verified": True},
        "raw_bytes": raw_bytes,
        "ratio": round(ratio, 4),
        "seconds": {"check_binaries": round(t_check, 3), "pack": round(t_pack, 3),
                    "verify": round(t_verify, 3)},
        "MB_per_s": round(raw_bytes / 1e6 / max(t_pack, 1e-9), 2),
        "binaries": checked,
        "deletion": {"requested": bool(delete), "status": "started" if delete else "not requested",
                     "deleted": [], "kept": []},
    }
    # written before any deletion so that an interrupted deletion is still on record
    save_json(out_manifest, manifest)

    # 4. delete last; from here on nothing may raise (see the module docstring)
    if delete:
        try:
            deleted, kept = delete_originals(members, entries)
            manifest["deletion"].update(status="done" if not kept else "incomplete", deleted=deleted, kept=kept)
            for k in kept:
                log.warning("raw_compress %s: kept '%s' (%s)", sid, k["name"], k["reason"])
            log.info("raw_compress %s: deleted %d of %d original file(s)", sid, len(deleted), len(members))
            manifest["seconds"]["total"] = round(time.time() - t0, 3)
            save_json(out_manifest, manifest)
        except Exception:  # noqa: BLE001 - the archive is verified; never fail after deleting
            log.exception("raw_compress %s: error while deleting the originals (the archive is complete "
                          "and verified; remove what is left by hand)", sid)
    else:
        manifest["seconds"]["total"] = round(time.time() - t0, 3)
        save_json(out_manifest, manifest)
        log.info("raw_compress %s: originals kept (raw_compress.delete_originals is false)", sid)
    return manifest
