import numpy as np
import pytest

from planeflow import PlaneflowError
from planeflow.plan import session as ps
from planeflow.io.raw import to_int16
from planeflow.steps.binary_write import binary_write

from conftest import coded_frames, write_tiff


@pytest.fixture
def split_session(tmp_path):
    """3 planes, 101 volumes over 3 files split mid-volume (as ScanImage may)."""
    pages = coded_frames(303)
    write_tiff(tmp_path / "raw" / "r_00001.tif", pages[:100])
    write_tiff(tmp_path / "raw" / "r_00002.tif", pages[100:250])
    write_tiff(tmp_path / "raw" / "r_00003.tif", pages[250:])
    r = {"session_id": "s", "data_path": str(tmp_path / "raw"), "nplanes": 3, "fs": 5.0}
    ps.session_metadata(r, str(tmp_path / "res"))
    return tmp_path, tmp_path / "res" / "s" / "metadata.json"


@pytest.mark.parametrize("chunk", [1, 7, 500])
def test_each_plane_gets_its_own_frames_in_order(split_session, chunk):
    tmp, meta = split_session
    for plane in range(3):
        out = tmp / f"p{plane}_{chunk}"
        ops = binary_write(str(meta), plane, 0, str(out / "data_raw.bin"), str(out / "ops.npy"),
                           chunk_frames=chunk)
        data = np.fromfile(out / "data_raw.bin", np.int16).reshape(-1, 8, 6)
        assert data.shape[0] == 101
        assert np.array_equal(data[:, 0, 0], plane + 3 * np.arange(101))
        saved = np.load(out / "ops.npy", allow_pickle=True).item()
        assert saved["nframes"] == 101 and saved["iplane"] == plane and saved["Ly"] == 8
        assert np.allclose(saved["meanImg"], np.mean(plane + 3 * np.arange(101)))
        assert saved["processing_history"][-1]["step"] == "binary_write"
        assert len(saved["file_list"]) == 3
        assert ops["raw_file"].endswith("data_raw.bin")


def test_int16_conversion_matches_suite2p():
    u = np.array([[[0, 1, 65535]]], np.uint16)
    assert to_int16(u).tolist() == [[[0, 0, 32767]]]
    f = np.array([[[1.7, -2.2]]], np.float32)
    assert to_int16(f).dtype == np.int16


def test_truncated_file_fails_cleanly(split_session):
    tmp, meta = split_session
    f = tmp / "raw" / "r_00003.tif"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])  # cut off after the metadata was cached
    out = tmp / "bad"
    with pytest.raises(PlaneflowError, match="truncated or corrupt"):
        binary_write(str(meta), 1, 0, str(out / "data_raw.bin"), str(out / "ops.npy"), chunk_frames=10)
    assert not (out / "data_raw.bin").exists()
    assert list(out.glob("*")) == [], "no temporary file may be left behind"


def test_unknown_plane_is_an_error(split_session):
    tmp, meta = split_session
    with pytest.raises(PlaneflowError, match="plane 5 does not exist"):
        binary_write(str(meta), 5, 0, str(tmp / "x.bin"), str(tmp / "x.npy"))


def test_assemble_part_stitches_tiles_side_by_side():
    from planeflow.steps.binary_write import assemble_part

    pages = np.arange(2 * 10 * 4).reshape(2, 10, 4)  # two stripes of 4 rows, 2 fly-to rows between
    part = {"shape": [4, 8], "tiles": [{"src": [0, 4, 0, 4], "dst": [0, 0]},
                                       {"src": [6, 10, 0, 4], "dst": [0, 4]}]}
    out = assemble_part(pages, part)
    assert out.shape == (2, 4, 8)
    assert np.array_equal(out[:, :, :4], pages[:, 0:4]) and np.array_equal(out[:, :, 4:], pages[:, 6:10])


def test_piezo_layout_channels_slices_flyback(tmp_path):
    """Piezo stack: per volume, 2 planes x 3 frames per slice x 2 channels, then 1 flyback frame."""
    from planeflow.io.raw import TiffPlaneReader

    nch, fps, nplanes, flyback, nvol = 2, 3, 2, 1, 5
    ppv = nch * (nplanes * fps + flyback)
    pages = coded_frames(ppv * nvol)
    f = write_tiff(tmp_path / "p.tif", pages)
    lay = {"pages_per_volume": ppv, "nchannels": nch, "channel": 1, "frames_per_slice": fps,
           "average_slices": False}
    r = TiffPlaneReader([str(f)], [len(pages)], nplanes, lay)
    assert r.nframes == nvol * fps
    got = np.concatenate(list(r.iter_frames(1, chunk=4)))[:, 0, 0]
    expect = [v * ppv + (1 * fps + k) * nch + 1 for v in range(nvol) for k in range(fps)]
    assert got.tolist() == expect
    r = TiffPlaneReader([str(f)], [len(pages)], nplanes, {**lay, "average_slices": True})
    assert r.nframes == nvol
    got = np.concatenate(list(r.iter_frames(0, chunk=2)))[:, 0, 0]
    assert got.tolist() == [v * ppv + (0 * fps + 1) * nch + 1 for v in range(nvol)]  # mean of k=0..2


def test_scanimage_session_timestamps_and_bidiphase(tmp_path):
    """Frames of a 2-file LBM recording keep ScanImage's per-frame timestamps; the planted
    scan-phase offset is found and removed while writing."""
    from planeflow.synth.scanimage_session import simulate_scanimage_session

    simulate_scanimage_session(tmp_path / "raw", nplanes=3, nframes=60, roi_widths=(40, 40), height=48,
                               fly_to_lines=4, bidiphase=2, nfiles=2, cells_per_plane=5, diameter=6, fs=10.0)
    r = {"session_id": "s", "data_path": str(tmp_path / "raw")}
    ps.session_metadata(r, str(tmp_path / "res"))
    meta = tmp_path / "res" / "s" / "metadata.json"
    ops = binary_write(str(meta), 1, 0, str(tmp_path / "b" / "data_raw.bin"), str(tmp_path / "b" / "ops.npy"),
                       chunk_frames=16)
    assert ops["bidiphase_offset"] == 2.0 and ops["bidi_corrected"]
    ts = ops["frame_timestamps"]
    assert ts.shape == (60,) and np.allclose(np.diff(ts), 0.1)  # one volume per 1/fs
    assert (ops["Ly"], ops["Lx"]) == (48, 80)  # stitched stripes
