"""ScanImage 3.x (``state.*``) and 4.x (``scanimage.SI4.*``) headers: read from the
ImageDescription, renamed to the modern ``SI.*`` keys (planeflow.io.scanimage.legacy)
and interpreted like any other header, in inspect, init and the workflow."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from conftest import SMALL_S2P, make_config, snakemake
from planeflow.io.scanimage.acquisition import acquisition_info
from planeflow.io.scanimage.header import read_header
from planeflow.io.scanimage.legacy import legacy_si, legacy_version

SI38_FILE = "scanimage/si38_galvo_64px_30frames.tif"
SI38_FS = 8.13802083333333


@pytest.fixture
def si38(shared_data):
    path = shared_data / SI38_FILE
    if not path.is_file():
        pytest.skip(f"real ScanImage 3.8 sample absent: {path}")
    return path


def si3_text(**values) -> str:
    """A ScanImage 3.8-style header: ``state.*=value`` lines ended by carriage returns."""
    base = {"state.configName": "'rig'", "state.software.version": "3.8",
            "state.acq.numberOfZSlices": 1, "state.acq.zStepSize": 0, "state.acq.numAvgFramesSave": 1,
            "state.acq.numberOfFrames": 4, "state.acq.linesPerFrame": 16, "state.acq.pixelsPerLine": 12,
            "state.acq.frameRate": 10.0, "state.acq.zoomFactor": 2, "state.acq.bidirectionalScan": 0,
            "state.acq.msPerLine": 6.25, "state.acq.savingChannel1": 1, "state.acq.savingChannel2": 0,
            "state.acq.acquiringChannel1": 1, "state.acq.acquiringChannel2": 0}
    base.update({k if k.startswith("state.") else "state.acq." + k: v for k, v in values.items()})
    return "".join(f"{k}={v}\r" for k, v in base.items())


def si4_text(frame: int, **values) -> str:
    """A ScanImage 4.x-style ImageDescription: ``scanimage.SI4.x = value`` lines, then the
    per-frame values (``frameNumbers``...), as 4.x wrote them on every page."""
    base = {"VERSION_MAJOR": "'4.2'", "VERSION_MINOR": "'0'", "scanFrameRate": 15.0,
            "scanFramePeriod": 1 / 15.0, "scanLinePeriod": 6.25e-05, "scanLinesPerFrame": 20,
            "scanPixelsPerLine": 16, "scanZoomFactor": 3, "scanMode": "'bidirectional'",
            "channelsSave": "[1;2]", "channelsActive": "[1;2]", "stackNumSlices": 1,
            "stackZStepSize": 2.5, "acqNumFrames": 6, "acqNumAveragedFrames": 1, "fastZEnable": 0,
            "fastZPeriod": 0.5, "fastZDiscardFlybackFrames": 0, "fastZNumDiscardFrames": 0}
    base.update(values)
    lines = [f"scanimage.SI4.{k} = {v}" for k, v in base.items()]
    lines += [f"frameNumbers = {frame}", f"frameTimestamps_sec = {frame / 15:.4f}"]
    return "\n".join(lines) + "\n"


def write_pages(path, pages, descriptions, bigtiff=True):
    """One page per description. BigTIFF: for a classic TIFF whose description starts
    like ScanImage's, tifffile computes "virtual frames" assuming ScanImage's
    data-before-IFD layout, which tifffile's own writer does not follow."""
    with tifffile.TiffWriter(path, bigtiff=bigtiff) as tw:
        for page, desc in zip(pages, descriptions):
            tw.write(page, description=desc, metadata=None, photometric="minisblack", contiguous=False)
    return path


def _pages(n, Ly, Lx):
    return (np.arange(n * Ly * Lx, dtype=np.uint16).reshape(n, Ly, Lx) % 500)


# ------------------------------------------------------------------ the real 3.8 file

def test_real_scanimage_38_file(si38):
    h = read_header(si38)
    assert h["source"] == "legacy"
    assert h["n_pages"] == 30 and h["page_shape"] == (64, 64) and h["dtype"] == "uint16"
    assert h["frame_data"] == {"epoch": [2014, 7, 30, 21, 10, 0.731]}  # state.internal.triggerTimeString
    info = acquisition_info(h)
    assert info["fs"] == pytest.approx(8.138, abs=1e-3) and info["fs_per_plane"] == info["fs"]
    assert info["stack_type"] == "single_plane" and info["nplanes"] == 1
    assert info["nchannels"] == 1 and info["saved_channels"] == [2] and info["channel_source"] == "header"
    assert info["bidirectional"] is True and info["zoom"] == 1.6
    assert info["page_shape"] == (64, 64) and info["nframes"] == 30 and info["frames_per_slice"] == 30
    assert info["line_period"] == pytest.approx(1.92e-3)
    assert info["si_version"] == "3.8" and info["scanner_type"] == "GG"
    assert info["dx"] is None and info["dz"] is None and info["warnings"] == []


def test_inspect_and_init_describe_the_real_38_file(si38, tmp_path, capsys):
    import shutil

    from planeflow.cli import main as cli
    from planeflow.plan.inspect import inspect_session

    rep = inspect_session(str(si38))
    assert rep["format"] == "scanimage-tiff" and rep["scanimage"]["version"] == "3.8"
    assert rep["fs"] == pytest.approx(SI38_FS) and rep["fs_source"] == "header"
    assert rep["nplanes"] == 1 and rep["frames_per_plane"] == 30 and rep["bidirectional"] is True
    assert any("only 30 frames per plane" in p for p in rep["problems"])  # too few to run

    raw = tmp_path / "raw" / "rec1"
    raw.mkdir(parents=True)
    shutil.copy(si38, raw / si38.name)
    sheet = tmp_path / "sessions.tsv"
    assert cli(["init", str(tmp_path / "raw"), "--sheet", str(sheet)]) == 0
    out = capsys.readouterr().out
    assert "8.138 Hz" in out
    header, row = (line.split("\t") for line in sheet.read_text().splitlines()[:2])
    values = dict(zip(header, row))
    assert values["nplanes"] == "1" and float(values["fs"]) == pytest.approx(SI38_FS)


# ------------------------------------------------------------------ synthetic 3.x headers

def test_si3_slow_stack_with_averaging_and_two_channels(tmp_path):
    desc = si3_text(numberOfZSlices=3, zStepSize=5, numberOfFrames=4, numAvgFramesSave=2,
                    savingChannel2=1, acquiringChannel2=1, bidirectionalScan=1)
    nch, nplanes, fps = 2, 3, 2
    n = nch * nplanes * fps * 2  # two volumes
    path = write_pages(tmp_path / "stack.tif", _pages(n, 16, 12), [desc] * n)
    info = acquisition_info(read_header(path))
    assert info["stack_type"] == "piezo" and info["nplanes"] == nplanes and info["dz"] == 5
    assert info["nchannels"] == nch and info["saved_channels"] == [1, 2]
    assert info["fs"] == pytest.approx(5.0)  # 10 Hz scanning, 2 frames averaged per saved frame
    assert info["frames_per_slice"] == fps and info["pages_per_volume"] == n // 2
    assert info["fs_per_plane"] == pytest.approx(5.0 / (nplanes * fps)) and info["nframes"] == 2
    assert info["flyback_frames_per_volume"] == 0 and info["bidirectional"] is True
    assert any("averaged every 2 frames" in w for w in info["warnings"])


def test_si3_channel_count_without_per_channel_flags():
    si = legacy_si("state.software.version=3.6\rstate.acq.frameRate=4\rstate.acq.numberOfChannelsSave=2\r")
    assert si["SI.hChannels.channelSave"] == [1, 2] and si["SI.VERSION_MAJOR"] == "3"
    assert si["SI.VERSION_MINOR"] == "6" and si["SI.hRoiManager.scanFrameRate"] == 4


def test_text_that_is_not_an_old_header_is_left_alone():
    assert legacy_version("SI.hRoiManager.scanFrameRate = 15\n") is None
    assert legacy_si("frameNumbers = 1\nstate = 3\n") == {}
    assert legacy_si("") == {}
    assert legacy_version("scanimage.SI4.scanFrameRate = 15\n") == "4"


# ------------------------------------------------------------------ synthetic 4.x headers

def test_si4_single_plane_two_channels(tmp_path):
    nframes = 6
    descs = [si4_text(i // 2 + 1) for i in range(2 * nframes)]  # pages: ch1, ch2 of each frame
    path = write_pages(tmp_path / "si4.tif", _pages(2 * nframes, 20, 16), descs)
    h = read_header(path)
    assert h["source"] == "legacy" and h["pages_per_frame"] == 2
    assert h["frame_data"] == {"frameNumbers": 1, "frameTimestamps_sec": pytest.approx(1 / 15, abs=1e-4)}
    info = acquisition_info(h)
    assert info["fs"] == 15.0 and info["stack_type"] == "single_plane" and info["nplanes"] == 1
    assert info["nchannels"] == 2 and info["channel_source"] == "header" and info["nframes"] == nframes
    assert info["bidirectional"] is True and info["zoom"] == 3 and info["line_period"] == 6.25e-05
    assert info["si_version"] == "4.2.0" and info["scanner_type"] is None
    assert info["warnings"] == []


def test_si4_slow_multi_slice_stack(tmp_path):
    nplanes, fps = 3, 2
    n = nplanes * fps * 2
    descs = [si4_text(i + 1, stackNumSlices=nplanes, acqNumFrames=fps, channelsSave=1, channelsActive=1,
                      scanMode="'unidirectional'") for i in range(n)]
    path = write_pages(tmp_path / "slow.tif", _pages(n, 20, 16), descs)
    info = acquisition_info(read_header(path))
    assert info["stack_type"] == "piezo" and info["nplanes"] == nplanes and info["dz"] == 2.5
    assert info["frames_per_slice"] == fps and info["flyback_frames_per_volume"] == 0
    assert info["pages_per_volume"] == nplanes * fps and info["nframes"] == 2
    assert info["fs"] == 15.0 and info["fs_per_plane"] == pytest.approx(15.0 / (nplanes * fps))
    assert info["bidirectional"] is False and info["nchannels"] == 1


def test_si4_fast_z_stack_with_flyback(tmp_path):
    nplanes, flyback = 4, 1
    n = (nplanes + flyback) * 3
    descs = [si4_text(i + 1, stackNumSlices=nplanes, fastZEnable=1, fastZPeriod=0.4, acqNumFrames=50,
                      fastZDiscardFlybackFrames=1, fastZNumDiscardFrames=flyback, channelsSave=1)
             for i in range(n)]
    path = write_pages(tmp_path / "fast.tif", _pages(n, 20, 16), descs)
    info = acquisition_info(read_header(path))
    assert info["stack_type"] == "piezo" and info["nplanes"] == nplanes
    assert info["frames_per_slice"] == 1 and info["flyback_frames_per_volume"] == flyback
    assert info["volume_rate"] == pytest.approx(2.5) and info["fs_per_plane"] == pytest.approx(2.5)
    assert info["pages_per_volume"] == nplanes + flyback and info["nframes"] == 3


# ------------------------------------------------------------------ end to end

def session_from_real_frames(si38, dest, nframes=300, seed=0):
    """A ``nframes``-page recording with the real 3.8 header on every page (its
    ``numberOfFrames`` set to ``nframes``): the real 30 frames over and over, each shifted
    by up to 2 px and with Poisson noise, so suite2p has frames enough to work on."""
    from scipy.ndimage import shift

    with tifffile.TiffFile(si38) as tif:
        desc = tif.pages[0].description
        real = tif.asarray().astype(np.float32)
    desc = desc.replace("state.acq.numberOfFrames=30\r", f"state.acq.numberOfFrames={nframes}\r")
    rng = np.random.default_rng(seed)
    frames = np.empty((nframes, *real.shape[1:]), np.uint16)
    for i in range(nframes):
        moved = shift(real[i % len(real)], rng.uniform(-2, 2, size=2), order=1, mode="nearest")
        frames[i] = np.clip(rng.poisson(np.clip(moved, 0, None)), 0, 65535)
    dest.mkdir(parents=True, exist_ok=True)
    return write_pages(dest / "si38_long.tif", frames, [desc] * nframes)


@pytest.mark.workflow
def test_workflow_takes_fs_and_planes_from_a_38_header(si38, tmp_path):
    from planeflow.plan.layout import Layout

    raw = tmp_path / "raw"
    session_from_real_frames(si38, raw)
    cfg = make_config(tmp_path, [{"session_id": "si38", "data_path": str(raw)}],  # no nplanes, no fs
                      suite2p={**SMALL_S2P, "diameter": [6, 6],
                               "registration": {"block_size": [32, 32]}})
    snakemake(cfg, "--until", "detection", "--cores", "2", check=True)
    res = tmp_path / "results" / "si38"
    meta = json.loads((res / "metadata.json").read_text())
    assert meta["nplanes"] == 1 and meta["nframes"] == 300 and meta["fs"] == pytest.approx(SI38_FS)
    assert meta["scanimage"]["si_version"] == "3.8" and meta["bidiphase"]["enabled"] is True
    ops_path = Layout(tmp_path / "results").part_file("detection", "ops", "si38", 0, 0)
    ops = np.load(ops_path, allow_pickle=True).item()
    assert ops["fs"] == pytest.approx(SI38_FS) and ops["nframes"] == 300
