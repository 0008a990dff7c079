"""ScanImage header reading, interpretation and synthetic tags (planeflow.io.scanimage)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile

from planeflow import PlaneflowError
from planeflow.io.scanimage.acquisition import acquisition_info
from planeflow.io.scanimage.syntax import format_matlab_value, parse_matlab_value, parse_si_text
from planeflow.synth.scanimage_writer import make_tags, write_scanimage_tiff
from planeflow.io.scanimage.header import read_header

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_FILE = "scanimage/si57_resonant_512px_3frames_2ch.tif"


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / REAL_FILE).is_file():
        pytest.skip(f"real sample data absent: {SHARED_DATA / REAL_FILE} (only the project's "
                    "shared checkout has ../shared/data)")
    return SHARED_DATA


# ------------------------------------------------------------------ MATLAB values

@pytest.mark.parametrize("text, expected", [
    ("1", 1),
    ("-3", -3),
    ("2.5", 2.5),
    ("1e-05", 1e-05),
    ("1.2e+08", 1.2e08),
    ("Inf", math.inf),
    ("-Inf", -math.inf),
    ("true", True),
    ("false", False),
    ("'grab'", "grab"),
    ("'C:\\Users\\x y.usr'", "C:\\Users\\x y.usr"),
    ("'it''s'", "it's"),
    ("''", ""),
    ("[]", []),
    ("{}", []),
    ("zeros(0,2)", []),
    ("[0.25 0.25 0.5 0.5]", [0.25, 0.25, 0.5, 0.5]),
    ("[2023  4 13 17 45 2.164]", [2023, 4, 13, 17, 45, 2.164]),
    ("[1,2,3]", [1, 2, 3]),
    ("[1;2]", [[1], [2]]),
    ("[1 2;3 4]", [[1, 2], [3, 4]]),
    ("[-5.625 -5.625;5.625 -5.625]", [[-5.625, -5.625], [5.625, -5.625]]),
    ("[true false]", [True, False]),
    ("{16 16 16 16}", [16, 16, 16, 16]),
    ("{'red' 'Channel 2'}", ["red", "Channel 2"]),
    ("{[-1 1] [-1 1]}", [[-1, 1], [-1, 1]]),
    ("{[]}", [[]]),
    ("{'a;b' 'c]'}", ["a;b", "c]"]),
    ("@scanimage.util.alignZRoiData", "@scanimage.util.alignZRoiData"),
    ("  7  ", 7),
])
def test_parse_matlab_value(text, expected):
    assert parse_matlab_value(text) == expected


def test_parse_matlab_value_nan_and_invalid_text():
    assert math.isnan(parse_matlab_value("NaN"))
    assert parse_matlab_value("[1 2") == "[1 2"          # unbalanced: raw text, no error
    assert parse_matlab_value("'abc") == "'abc"
    assert parse_matlab_value("[1 2}") == "[1 2}"


@pytest.mark.parametrize("value", [
    1, -2.5, 1e-05, True, "it's", [], [1, 2, 3], [[1], [2]], [[1.5, 2], [3, 4]],
    ["a", "b"], [[-1, 1], [-1, 1]], math.inf,
])
def test_format_parse_round_trip(value):
    assert parse_matlab_value(format_matlab_value(value)) == value


def test_parse_si_text_prefixes_and_continuations():
    text = ("SI.hRoiManager.scanFrameRate = 29.98\n"
            "scanimage.SI.hChannels.channelSave = [1;2]\n"
            "frameNumbers = 4\n"
            "SI.hScan2D.mask = [1 2\n3 4]\n"
            "SI.name = 'x = y'\n\n")
    si = parse_si_text(text)
    assert si == {"SI.hRoiManager.scanFrameRate": 29.98,
                  "SI.hChannels.channelSave": [[1], [2]],
                  "SI.hScan2D.mask": [[1, 2], [3, 4]],
                  "SI.name": "x = y"}


# ------------------------------------------------------------------ synthetic round trips

LBM_ROIS = [
    {"pixel_resolution": [24, 30], "size_deg": [1.2, 1.5], "name": "left"},
    {"pixel_resolution": [24, 26], "size_deg": [1.2, 1.3], "name": "middle"},
    {"pixel_resolution": [24, 30], "size_deg": [1.2, 1.5], "name": "right"},
]


def _pages(n, Ly, Lx):
    return np.arange(n * Ly * Lx, dtype=np.int16).reshape(n, Ly, Lx) % 1000


def test_lbm_mroi_round_trip(tmp_path):
    nplanes, fly, nframes, objres = 4, 5, 2, 157.5
    software, artist = make_tags(fs=17.07, nplanes_as_channels=nplanes, rois=LBM_ROIS,
                                 fly_to_lines=fly, zoom=1.0, objective_resolution=objres,
                                 line_period=4.16e-05)
    Ly = 30 + 26 + 30 + 2 * fly
    path = write_scanimage_tiff(tmp_path / "lbm.tif", _pages(nframes * nplanes, Ly, 24),
                                software=software, artist=artist, pages_per_frame=nplanes,
                                fs=17.07)
    with tifffile.TiffFile(path) as tif:
        # tifffile flags the file as ScanImage (Software starts with "SI.") but finds no
        # ScanImage BigTIFF header block, so its metadata is empty: the tags are parsed.
        assert tif.is_scanimage
        assert not tif.scanimage_metadata
    h = read_header(path)
    assert h["source"] == "tags"
    assert h["n_pages"] == nframes * nplanes and h["page_shape"] == (Ly, 24)
    assert h["dtype"] == "int16" and h["pages_per_frame"] == nplanes
    assert h["RoiGroups"]["imagingRoiGroup"]["rois"][1]["name"] == "middle"

    info = acquisition_info(h)
    assert info["stack_type"] == "lbm"
    assert info["fs"] == pytest.approx(17.07) and info["fs_per_plane"] == pytest.approx(17.07)
    assert info["nplanes"] == nplanes and info["nchannels"] == 1
    assert info["channel_source"] == "header" and info["nframes"] == nframes
    assert info["mroi"] and info["nrois"] == 3
    assert [r["name"] for r in info["rois"]] == ["left", "middle", "right"]
    assert [r["pixel_resolution"] for r in info["rois"]] == [[24, 30], [24, 26], [24, 30]]
    assert [r["size_deg"] for r in info["rois"]] == [[1.2, 1.5], [1.2, 1.3], [1.2, 1.5]]
    assert [r["center_deg"][0] for r in info["rois"]] == pytest.approx([-1.2, 0.0, 1.2])
    assert info["fly_to_lines"] == info["fly_to_lines_header"] == fly
    assert info["roi_rows"] == [[0, 30], [35, 61], [66, 96]]
    assert info["geometry_ok"] and not info["warnings"]
    assert info["dx"] == pytest.approx(objres * 1.2 / 24)
    assert info["dy"] == pytest.approx(objres * 1.5 / 30)
    assert info["dz"] is None and info["zoom"] == 1 and info["bidirectional"] is True
    assert info["line_period"] == pytest.approx(4.16e-05)

    # an explicit hint overrides the "more than two saved channels" LBM rule
    forced = acquisition_info(h, channels_are_planes=False)
    assert forced["stack_type"] == "single_plane" and forced["nchannels"] == nplanes


def test_written_pages_read_back_complete(tmp_path):
    software, artist = make_tags(fs=10.0, nplanes_as_channels=4, page_shape=(8, 8))
    data = _pages(12, 8, 8)
    path = write_scanimage_tiff(tmp_path / "big.tif", data, software=software, artist=artist,
                                pages_per_frame=4)
    np.testing.assert_array_equal(tifffile.imread(path), data)


def test_classic_tiff_with_si_tags_page_count_is_corrected(tmp_path):
    # tifffile computes the pages of classic ScanImage-tagged TIFFs from the file size,
    # which drops the last page of files written by tifffile (IFD before data)
    software, artist = make_tags(fs=10.0, nplanes_as_channels=4, page_shape=(8, 8))
    path = write_scanimage_tiff(tmp_path / "classic.tif", _pages(12, 8, 8), software=software,
                                artist=artist, pages_per_frame=4, bigtiff=False)
    h = read_header(path)
    assert h["n_pages"] == 12 and h["pages_per_frame"] == 4
    assert any("IFD chain holds 12" in w for w in h["warnings"])
    assert acquisition_info(h)["nframes"] == 3


def test_piezo_stack_round_trip(tmp_path):
    nplanes, flyback, nvol, fs = 5, 1, 2, 30.0
    software, artist = make_tags(fs=fs, page_shape=(16, 20), zoom=2.0,
                                 stack={"nplanes": nplanes, "dz": 2.5, "flyback": flyback})
    per_volume = nplanes + flyback
    path = write_scanimage_tiff(tmp_path / "piezo.tif", _pages(nvol * per_volume, 16, 20),
                                software=software, artist=artist, fs=fs)
    info = acquisition_info(read_header(path))
    assert info["stack_type"] == "piezo"
    assert info["nplanes"] == nplanes and info["nchannels"] == 1
    assert info["dz"] == 2.5 and info["flyback_frames"] == flyback
    assert info["frames_per_slice"] == 1
    assert info["pages_per_volume"] == per_volume and info["nframes"] == nvol
    assert info["fs"] == pytest.approx(fs)
    assert info["fs_per_plane"] == pytest.approx(fs / per_volume)
    assert info["nrois"] == 1 and not info["mroi"] and info["roi_rows"] == [[0, 16]]
    assert info["fly_to_lines"] == 0
    assert info["zoom"] == 2
    # default field 18/zoom degrees wide, objective 15 um/deg, square pixels
    assert info["dx"] == pytest.approx(15 * 9 / 20) and info["dy"] == pytest.approx(info["dx"])
    assert info["dxdy_source"] == "imagingFovUm"


def test_plain_tiff_has_empty_header_and_single_plane_defaults(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, _pages(3, 8, 6), photometric="minisblack", metadata=None)
    h = read_header(path)
    assert h["SI"] == {} and h["RoiGroups"] is None and h["source"] is None
    assert h["n_pages"] == 3 and h["page_shape"] == (8, 6) and h["dtype"] == "int16"
    assert h["pages_per_frame"] is None
    info = acquisition_info(h)
    assert info["stack_type"] == "single_plane"
    assert info["nplanes"] == 1 and info["nchannels"] == 1 and info["channel_source"] == "default"
    assert info["nframes"] == 3
    for key in ("fs", "fs_per_plane", "dx", "dy", "dz", "zoom", "line_period", "bidirectional",
                "flyback_frames", "frames_per_slice"):
        assert info[key] is None, key
    assert info["rois"][0]["pixel_resolution"] == [6, 8] and info["roi_rows"] == [[0, 8]]


def test_count_pages_false_leaves_counting_to_the_caller(tmp_path):
    software, artist = make_tags(fs=10.0, page_shape=(8, 8))
    path = write_scanimage_tiff(tmp_path / "a.tif", _pages(4, 8, 8), software=software,
                                artist=artist)
    h = read_header(path, count_pages=False)
    assert h["n_pages"] is None and h["pages_per_frame"] == 1
    assert acquisition_info(h)["nframes"] is None


def test_fly_to_mismatch_uses_page_geometry_and_warns(tmp_path):
    # the header says 3 fly-to lines; the pages were laid out with 5
    software, artist = make_tags(fs=10.0, nplanes_as_channels=3, rois=LBM_ROIS, fly_to_lines=5,
                                 line_period=4e-05,
                                 extra={"SI.hScan2D.flytoTimePerScanfield": 3 * 4e-05})
    path = write_scanimage_tiff(tmp_path / "m.tif", _pages(3, 96, 24), software=software,
                                artist=artist, pages_per_frame=3)
    info = acquisition_info(read_header(path))
    assert info["fly_to_lines_header"] == 3 and info["fly_to_lines"] == 5
    assert info["roi_rows"] == [[0, 30], [35, 61], [66, 96]] and info["geometry_ok"]
    assert any("fly-to" in w for w in info["warnings"])


def test_rois_that_do_not_fit_the_page_are_reported(tmp_path):
    software, artist = make_tags(fs=10.0, nplanes_as_channels=3, rois=LBM_ROIS, fly_to_lines=5)
    path = write_scanimage_tiff(tmp_path / "short.tif", _pages(3, 60, 24), software=software,
                                artist=artist, pages_per_frame=3)
    info = acquisition_info(read_header(path))
    assert info["geometry_ok"] is False and info["roi_rows"] is None
    assert any("rows but pages have 60" in w for w in info["warnings"])


def test_mroi_without_roi_groups_gives_unknown_rois(tmp_path):
    software, _ = make_tags(fs=10.0, nplanes_as_channels=3, rois=LBM_ROIS, fly_to_lines=5)
    path = write_scanimage_tiff(tmp_path / "noartist.tif", _pages(3, 96, 24), software=software,
                                pages_per_frame=3)
    info = acquisition_info(read_header(path))
    assert info["mroi"] and info["rois"] is None and info["nrois"] is None
    assert info["dx"] is None and info["geometry_ok"] is False
    assert any("Artist" in w for w in info["warnings"])


def test_old_scanimage_prefix_in_description(tmp_path):
    desc = ("scanimage.SI.hRoiManager.scanFrameRate = 15.2\n"
            "scanimage.SI.hChannels.channelSave = 1\n"
            "scanimage.SI.hRoiManager.scanZoomFactor = 3\n")
    path = tmp_path / "old.tif"
    tifffile.imwrite(path, _pages(2, 8, 8), description=desc, metadata=None,
                     photometric="minisblack")
    h = read_header(path)
    assert h["source"] == "tags"
    assert h["SI"]["SI.hRoiManager.scanFrameRate"] == 15.2
    info = acquisition_info(h)
    assert info["fs"] == 15.2 and info["zoom"] == 3 and info["nchannels"] == 1


def test_tifffile_metadata_is_used_when_present(tmp_path, monkeypatch):
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, _pages(2, 8, 8), metadata=None, photometric="minisblack")
    meta = {"version": 4,
            "FrameData": {"SI.hRoiManager.scanFramePeriod": 0.05,
                          "scanimage.SI.hChannels.channelSave": [[1], [2]]},
            "RoiGroups": {"imagingRoiGroup": {"rois": []}}}
    monkeypatch.setattr(tifffile.TiffFile, "scanimage_metadata", property(lambda self: meta))
    h = read_header(path)
    assert h["source"] == "tifffile"
    assert h["SI"] == {"SI.hRoiManager.scanFramePeriod": 0.05, "SI.hChannels.channelSave": [[1], [2]]}
    info = acquisition_info(h)
    assert info["fs"] == pytest.approx(20.0) and info["nchannels"] == 2


def test_make_tags_artist_is_scanimage_json():
    _, artist = make_tags(fs=10.0)
    group = json.loads(artist)["RoiGroups"]["imagingRoiGroup"]
    sf = group["rois"]["scanfields"]   # one ROI: an object, as MATLAB's jsonencode writes it
    assert sf["pixelResolutionXY"] == [512, 512] and sf["sizeXY"] == [18.0, 18.0]
    assert sf["pixelToRefTransform"][0] == pytest.approx([18 / 512, 0, -9 - 18 / 1024])
    software, _ = make_tags(fs=10.0)
    assert software.isascii() and software.startswith("SI.")


# ------------------------------------------------------------------ errors

def test_non_tiff_raises_error_naming_the_file(tmp_path):
    bad = tmp_path / "notes.tif"
    bad.write_text("this is not a TIFF\n")
    with pytest.raises(PlaneflowError, match="notes.tif.*not a readable TIFF"):
        read_header(bad)
    with pytest.raises(PlaneflowError, match="missing.tif.*does not exist"):
        read_header(tmp_path / "missing.tif")


# ------------------------------------------------------------------ real ScanImage 5.7 file

def test_real_scanimage_57_file(shared_data):
    path = shared_data / REAL_FILE
    with tifffile.TiffFile(path) as tif:
        assert not tif.scanimage_metadata   # tifffile gives nothing for this classic TIFF
    h = read_header(path)
    assert h["source"] == "tags"
    assert h["n_pages"] == 6 and h["page_shape"] == (512, 512) and h["dtype"] == "int16"
    assert h["RoiGroups"] is None            # no Artist tag in this file
    assert h["SI"]["SI.hChannels.channelSave"] == 1
    assert h["SI"]["SI.hChannels.channelsActive"] == [[1], [2]]
    assert h["pages_per_frame"] == 2         # frameNumbers 1,1,2,2,3,3
    assert h["frame_data"]["frameNumbers"] == 1

    info = acquisition_info(h)
    assert info["fs"] == pytest.approx(29.98, abs=0.01)
    assert info["zoom"] == 2 and info["bidirectional"] is True
    assert info["stack_type"] == "single_plane" and info["nplanes"] == 1  # stack disabled
    assert info["dz"] is None
    # the quirk: header saves channel 1 only, pages hold both active channels
    assert info["saved_channels"] == [1] and info["active_channels"] == [1, 2]
    assert info["nchannels"] == 2 and info["channel_source"] == "pages"
    assert info["nframes"] == 3
    assert any("channelSave" in w for w in info["warnings"])
    assert not info["mroi"] and info["rois"][0]["pixel_resolution"] == [512, 512]
    assert info["dx"] == pytest.approx(168.75 / 512) and info["dxdy_source"] == "imagingFovUm"
    assert info["line_period"] == pytest.approx(6.31764e-05)
    assert info["si_version"] == "5.7.0" and info["scanner_type"] == "RG"
