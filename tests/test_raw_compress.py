"""raw_compress: binaries checked against binary_write's checksums, raw files packed and
read back, originals deleted only when configured, and the workflow still parsing (with
nothing to redo) once they are gone."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from planeflow import PlaneflowError
from planeflow.core import archive as rc
from planeflow.plan import session as ps
from planeflow.steps.binary_write import binary_write
from planeflow.steps.raw_compress import raw_compress

from conftest import coded_frames, dry_run_jobs, make_config, snakemake, write_tiff


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def flip_byte(path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0xFF]))


def snapshot(folder: Path) -> dict:
    """{relative path: (sha256, mtime_ns)} of every file under ``folder``."""
    return {str(p.relative_to(folder)): (sha256(p), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def read_members(archive: Path) -> dict:
    """{name: bytes} of every file in a zip or tar archive, read with the standard library."""
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
    with tarfile.open(archive) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf if m.isfile()}


# ---- unit tests: binaries ----------------------------------------------------------------
@pytest.fixture
def tiff_session(tmp_path):
    """2 planes x 60 volumes of 8x6 px in 2 TIFF files, its metadata and both binaries."""
    pages = coded_frames(120)
    write_tiff(tmp_path / "raw" / "r_00001.tif", pages[:50])
    write_tiff(tmp_path / "raw" / "r_00002.tif", pages[50:])
    row = {"session_id": "s", "data_path": str(tmp_path / "raw"), "nplanes": 2, "fs": 5.0}
    ps.session_metadata(row, str(tmp_path / "res"))
    meta = tmp_path / "res" / "s" / "metadata.json"
    bins = []
    for plane in range(2):
        d = tmp_path / "res" / "s" / "binary_write" / f"plane{plane}" / "part0"
        binary_write(str(meta), plane, 0, str(d / "data_raw.bin"), str(d / "ops.npy"), chunk_frames=7)
        bins.append((str(d / "data_raw.bin"), str(d / "ops.npy")))
    return {"tmp": tmp_path, "row": row, "meta": meta, "bins": bins, "res": tmp_path / "res"}


def test_binary_write_checksum_covers_exactly_the_bytes_written(tiff_session):
    for b, o in tiff_session["bins"]:
        ops = np.load(o, allow_pickle=True).item()
        data = Path(b).read_bytes()
        assert ops["raw_bin_checksum"] == {"algorithm": "sha256", "value": hashlib.sha256(data).hexdigest(),
                                           "bytes": len(data)}
        assert len(data) == ops["nframes"] * ops["Ly"] * ops["Lx"] * 2 == 60 * 8 * 6 * 2
        rec = rc.verify_binary(b, o, nframes=60)
        assert rec["bytes"] == len(data) and rec["nframes"] == 60


def test_verify_binary_refuses_damaged_or_unverifiable_binaries(tiff_session):
    b, o = tiff_session["bins"][1]
    flip_byte(b, 100)
    with pytest.raises(PlaneflowError, match=r"binary '.*plane1/part0/data_raw.bin' does not match the sha256"):
        rc.verify_binary(b, o)
    flip_byte(b, 100)  # back
    rc.verify_binary(b, o)
    with pytest.raises(PlaneflowError, match="metadata.json says 61"):
        rc.verify_binary(b, o, nframes=61)
    with open(b, "ab") as fh:
        fh.write(b"\0\0")
    with pytest.raises(PlaneflowError,
                       match=r"has 5762 bytes but its ops promise 60 frames of 8x6 int16 \(5760 bytes\)"):
        rc.verify_binary(b, o)
    b0, o0 = tiff_session["bins"][0]
    ops = np.load(o0, allow_pickle=True).item()
    del ops["raw_bin_checksum"]
    np.save(o0, ops, allow_pickle=True)
    with pytest.raises(PlaneflowError, match="holds no raw_bin_checksum"):
        rc.verify_binary(b0, o0)


# ---- unit tests: archives ----------------------------------------------------------------
@pytest.fixture
def mixed_files(tmp_path):
    """Two TIFF-like files and a zarr-like folder (nested files), compressible and not."""
    rng = np.random.default_rng(0)
    d = tmp_path / "data"
    (d / "rec.zarr" / "0" / "1").mkdir(parents=True)
    (d / "a_00001.tif").write_bytes(rng.integers(0, 50, 20000, dtype=np.int16).tobytes())
    (d / "a_00002.tif").write_bytes(rng.bytes(3000))
    (d / "rec.zarr" / "zarr.json").write_text('{"zarr_format": 3}')
    (d / "rec.zarr" / "0" / "1" / "c0").write_bytes(bytes(5000))
    (d / "rec.zarr" / "0" / "1" / "empty").write_bytes(b"")
    entries = [str(d / "a_00001.tif"), str(d / "a_00002.tif"), str(d / "rec.zarr")]
    return d, entries


@pytest.mark.parametrize("fmt", list(rc.FORMATS))
def test_archive_holds_every_file_relative_to_the_data_folder(tmp_path, mixed_files, fmt):
    d, entries = mixed_files
    root = rc.data_root(entries)
    assert root == str(d)
    members = rc.collect_members(entries, root)
    names = [m["name"] for m in members]
    assert names == ["a_00001.tif", "a_00002.tif", "rec.zarr/zarr.json", "rec.zarr/0/1/c0",
                     "rec.zarr/0/1/empty"]
    out = tmp_path / f"x.{fmt}"
    records = rc.write_archive(str(out), members, fmt, level=1)
    for m, r in zip(members, records):
        assert r == {"name": m["name"], "size": os.path.getsize(m["path"]), "sha256": sha256(m["path"])}
    rc.verify_archive(str(out), records, fmt)
    got = read_members(out)
    assert sorted(got) == sorted(names)
    for n in names:
        assert got[n] == (d / n).read_bytes()


def test_verify_archive_finds_damage_and_missing_members(tmp_path, mixed_files):
    _, entries = mixed_files
    members = rc.collect_members(entries, rc.data_root(entries))
    out = tmp_path / "x.zip"
    records = rc.write_archive(str(out), members, "zip", level=1)
    with pytest.raises(PlaneflowError, match=r"missing: extra.tif"):
        rc.verify_archive(str(out), records + [{"name": "extra.tif", "size": 1, "sha256": "0"}], "zip")
    wrong = [dict(r, sha256="0" * 64) if r["name"] == "a_00002.tif" else r for r in records]
    with pytest.raises(PlaneflowError, match=r"differs: a_00002.tif"):
        rc.verify_archive(str(out), wrong, "zip")
    # damage the stored (compressed) bytes of the incompressible member
    with zipfile.ZipFile(out) as zf:
        info = zf.getinfo("a_00002.tif")
    data = bytearray(out.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + 500] ^= 0xFF
    out.write_bytes(bytes(data))
    with pytest.raises(PlaneflowError, match=r"archive '.*x.zip' (cannot be read back|does not match)"):
        rc.verify_archive(str(out), records, "zip")


def test_bad_format_or_level_is_a_clear_error(tmp_path, mixed_files):
    _, entries = mixed_files
    members = rc.collect_members(entries, rc.data_root(entries))
    with pytest.raises(PlaneflowError, match="raw_compress.format 'rar'"):
        rc.write_archive(str(tmp_path / "x.rar"), members, "rar")
    with pytest.raises(PlaneflowError, match="raw_compress.level 0"):
        rc.write_archive(str(tmp_path / "x.zip"), members, "zip", level=0)


def test_delete_originals_keeps_files_changed_since_archiving(mixed_files):
    d, entries = mixed_files
    members = rc.collect_members(entries, rc.data_root(entries))
    (d / "a_00002.tif").write_bytes(b"changed after archiving")
    deleted, kept = rc.delete_originals(members, entries)
    assert kept == [{"name": "a_00002.tif", "reason": "changed or missing since it was archived"}]
    assert sorted(deleted) == sorted(m["name"] for m in members if m["name"] != "a_00002.tif")
    assert sorted(p.name for p in d.iterdir()) == ["a_00002.tif"]  # zarr folder removed once empty


# ---- the step function, and the metadata cache once the raw files are gone -----------------
def test_step_archives_deletes_and_session_metadata_uses_the_cache(tiff_session, capfd):
    s = tiff_session
    raw = s["tmp"] / "raw"
    before = snapshot(raw)
    out = s["res"] / "s" / "raw_compress"
    manifest = raw_compress(str(s["meta"]), s["bins"], str(out / "s_raw.tar.gz"), str(out / "manifest.json"),
                            fmt="tar.gz", level=1, delete=True)
    assert not raw.exists() or not any(raw.iterdir())
    got = read_members(out / "s_raw.tar.gz")
    assert {n: hashlib.sha256(b).hexdigest() for n, b in got.items()} == {n: v[0] for n, v in before.items()}
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert manifest["deletion"]["status"] == "done"
    assert sorted(manifest["deletion"]["deleted"]) == sorted(before)
    assert (out / "s_raw.tar.gz").stat().st_mode & 0o222 == 0, "the archive is made read-only"

    capfd.readouterr()
    meta = ps.session_metadata(s["row"], str(s["res"]))
    assert meta == json.loads(s["meta"].read_text())
    assert "raw files archived in" in capfd.readouterr().err
    # only one file back (e.g. a partial restore): still the cached metadata, not one built from it
    with tarfile.open(out / "s_raw.tar.gz") as tf:
        tf.extract("r_00002.tif", manifest["data_root"], filter="data")
    assert ps.session_metadata(s["row"], str(s["res"])) == meta
    # a changed sheet value cannot be applied without the raw files
    with pytest.raises(PlaneflowError, match=r"archived in .*s_raw.tar.gz' and deleted.*unpack the archive"):
        ps.session_metadata({**s["row"], "fs": 7.0}, str(s["res"]))
    # unpacked again: the metadata is rebuilt from the files as usual (no manifest needed)
    with tarfile.open(out / "s_raw.tar.gz") as tf:
        tf.extractall(manifest["data_root"], filter="data")
    assert ps.session_metadata({**s["row"], "fs": 7.0}, str(s["res"]))["fs"] == 7.0


def test_raw_files_gone_without_manifest_is_the_usual_error(tiff_session):
    shutil.rmtree(tiff_session["tmp"] / "raw")
    with pytest.raises(PlaneflowError, match="does not exist"):
        ps.session_metadata(tiff_session["row"], str(tiff_session["res"]))


def test_step_on_a_zarr_session(tmp_path):
    zarr = pytest.importorskip("zarr")
    vol = (np.arange(60 * 2 * 6 * 5) % 1000).astype(np.int16).reshape(60, 2, 6, 5)
    z = zarr.create_array(str(tmp_path / "in" / "rec.zarr"), shape=vol.shape, chunks=(16, 1, 6, 5),
                          dtype=vol.dtype)
    z[:] = vol
    row = {"session_id": "z", "data_path": str(tmp_path / "in" / "rec.zarr"), "fs": 5.0}
    meta = ps.session_metadata(row, str(tmp_path / "res"))
    before = snapshot(tmp_path / "in")
    assert len(before) > 5  # zarr.json + chunk files
    mpath = tmp_path / "res" / "z" / "metadata.json"
    bins = []
    for p in meta["planes"]:
        d = tmp_path / "b" / f"plane{p}"
        binary_write(str(mpath), p, 0, str(d / "data_raw.bin"), str(d / "ops.npy"))
        bins.append((str(d / "data_raw.bin"), str(d / "ops.npy")))
    out = tmp_path / "res" / "z" / "raw_compress"
    raw_compress(str(mpath), bins, str(out / "z_raw.zip"), str(out / "manifest.json"), delete=True)
    got = read_members(out / "z_raw.zip")
    assert {n: hashlib.sha256(b).hexdigest() for n, b in got.items()} == {n: v[0] for n, v in before.items()}
    assert all(n.startswith("rec.zarr/") for n in got)
    assert not (tmp_path / "in" / "rec.zarr").exists()
    assert ps.session_metadata(row, str(tmp_path / "res")) == meta


def test_step_needs_every_binary(tiff_session):
    s = tiff_session
    out = s["tmp"] / "out"
    with pytest.raises(PlaneflowError, match=r"every binary must be checked"):
        raw_compress(str(s["meta"]), s["bins"][:1], str(out / "a.zip"), str(out / "m.json"))
    assert not out.exists() or not any(out.iterdir())


# ---- the workflow ----------------------------------------------------------------------------
def _session(tmp: Path, sid: str, **settings) -> tuple[Path, Path, dict]:
    from planeflow.synth.simulate import simulate_session

    sim = simulate_session(tmp / "raw", nplanes=2, nframes=200, Ly=64, Lx=64, cells_per_plane=5, diameter=8,
                           nfiles=2, seed=5, name=sid)
    cfg = make_config(tmp, [{"session_id": sid, "data_path": str(tmp / "raw" / f"{sid}_*.tif"), "nplanes": 2,
                             "fs": 15.0}],
                      raw_compress={"enabled": True, "format": "zip", "level": 1, **settings})
    return cfg, tmp / "results" / sid, sim


def test_workflow_archives_verifies_and_deletes(tmp_path):
    cfg, res, sim = _session(tmp_path, "rc", delete_originals=True)
    raw = tmp_path / "raw"
    before = snapshot(raw)
    tiffs = sorted(n for n in before if n.endswith(".tif"))
    assert len(tiffs) == 2
    targets = [res / "raw_compress" / "rc_raw.zip", res / "raw_compress" / "manifest.json"]
    jobs = dry_run_jobs(cfg, *targets)
    assert sorted(r for r, _ in jobs) == ["binary_write", "binary_write", "raw_compress"]
    snakemake(cfg, *targets, "--cores", "1", check=True)

    got = read_members(targets[0])
    assert sorted(got) == tiffs  # ground_truth.npz is not a raw file of the session
    for n in tiffs:
        assert hashlib.sha256(got[n]).hexdigest() == before[n][0]
    m = json.loads(targets[1].read_text())
    assert [(f["name"], f["size"], f["sha256"]) for f in m["files"]] == [
        (n, len(got[n]), before[n][0]) for n in tiffs]
    assert m["archive"]["sha256"] == sha256(targets[0]) and m["archive"]["bytes"] == targets[0].stat().st_size
    assert m["archive"]["verified"] is True
    assert m["ratio"] == pytest.approx(sum(len(b) for b in got.values()) / targets[0].stat().st_size, rel=1e-3)
    assert m["ratio"] > 1.2 and m["seconds"]["pack"] > 0
    assert m["data_root"] == str(raw)
    assert {(b["plane"], b["nframes"]) for b in m["binaries"]} == {(0, 200), (1, 200)}
    assert m["deletion"] == {"requested": True, "status": "done", "deleted": tiffs, "kept": []}
    assert sorted(p.name for p in raw.iterdir()) == ["ground_truth.npz"]
    log = (res / "logs" / "raw_compress" / "session.log").read_text()
    assert "packing: 100%" in log and "verifying archive: 100%" in log
    assert (res / "benchmarks" / "raw_compress" / "session.tsv").is_file()

    # the raw files are gone: the workflow still parses and has nothing to redo
    proc = snakemake(cfg, "-n", *targets)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "raw files archived in" in proc.stderr
    assert dry_run_jobs(cfg, *targets) == []
    assert dry_run_jobs(cfg, "--until", "binary_write") == []


def test_workflow_refuses_a_damaged_binary_then_archives_without_deleting(tmp_path):
    cfg, res, _ = _session(tmp_path, "bad", delete_originals=True)
    raw = tmp_path / "raw"
    before = snapshot(raw)
    targets = [res / "raw_compress" / "bad_raw.zip", res / "raw_compress" / "manifest.json"]
    snakemake(cfg, "--until", "binary_write", "--cores", "1", check=True)
    damaged = res / "binary_write" / "plane1" / "part0" / "data_raw.bin"
    flip_byte(damaged, 64 * 64 * 2 * 17 + 5)

    proc = snakemake(cfg, *targets, "--cores", "1")
    assert proc.returncode != 0
    log = (res / "logs" / "raw_compress" / "session.log").read_text()
    assert f"binary '{damaged}' does not match the sha256 checksum" in log
    assert "raw files were left untouched" in log
    assert snapshot(raw) == before, "raw files must be untouched"
    assert not (res / "raw_compress").exists() or list((res / "raw_compress").iterdir()) == []

    # repaired, and with delete_originals false: archived, nothing deleted
    flip_byte(damaged, 64 * 64 * 2 * 17 + 5)
    settings = yaml.safe_load(cfg.read_text())
    settings["raw_compress"]["delete_originals"] = False
    cfg.write_text(yaml.safe_dump(settings))
    snakemake(cfg, *targets, "--cores", "1", check=True)
    assert snapshot(raw) == before
    m = json.loads(targets[1].read_text())
    assert m["deletion"] == {"requested": False, "status": "not requested", "deleted": [], "kept": []}
    got = read_members(targets[0])
    assert {n: hashlib.sha256(b).hexdigest() for n, b in got.items()} == {
        n: v[0] for n, v in before.items() if n.endswith(".tif")}
    assert dry_run_jobs(cfg, *targets) == []
