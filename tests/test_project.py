"""The parse-time check of a whole project: every problem of the config, the sheet and the
sessions' raw files is reported at once, and a run that stops writes nothing."""
import pytest

from planeflow import PlaneflowError
from planeflow.plan import project as pfproject

from conftest import coded_frames, make_config, snakemake, write_tiff


def _sessions(tmp_path):
    raw = tmp_path / "raw"
    write_tiff(raw / "good" / "a.tif", coded_frames(120))  # 60 frames of 2 planes
    write_tiff(raw / "short" / "a.tif", coded_frames(40))  # 20 frames of 2 planes: too few
    write_tiff(raw / "odd" / "a.tif", coded_frames(121))   # not whole volumes
    return [
        {"session_id": "good", "data_path": str(raw / "good"), "nplanes": 2, "fs": 10},
        {"session_id": "short", "data_path": str(raw / "short"), "nplanes": 2, "fs": 10},
        {"session_id": "odd", "data_path": str(raw / "odd"), "nplanes": 2},  # no fs either
        {"session_id": "gone", "data_path": str(raw / "nowhere"), "nplanes": 2, "fs": 10},
        {"session_id": "badfs", "data_path": str(raw / "good"), "nplanes": 2, "fs": -3},
    ]


def _load(cfg_path):
    import yaml

    return pfproject.load(yaml.safe_load(cfg_path.read_text()))


def test_every_session_problem_is_reported_at_once(tmp_path):
    cfg = make_config(tmp_path, _sessions(tmp_path), nwb_export={"enabled": False})
    with pytest.raises(PlaneflowError) as e:
        _load(cfg)
    msg = str(e.value)
    lines = [ln for ln in msg.splitlines() if ln.startswith("  - ")]
    assert msg.startswith(f"{len(lines)} problems; fix them all"), msg
    assert len(lines) == 5, msg
    assert any("'short': only 20 frames per plane" in ln for ln in lines)
    assert any("'odd'" in ln and "not divisible" in ln for ln in lines)
    assert any("'odd': the frame rate is not in the file header" in ln for ln in lines)
    assert any("'gone'" in ln and "does not exist" in ln for ln in lines)
    assert any("(session 'badfs'), column fs" in ln for ln in lines)
    assert not any("'good'" in ln for ln in lines)
    # nothing written: not even the metadata cache of the good session
    assert not (tmp_path / "results").exists()


def test_config_and_sheet_problems_come_together(tmp_path):
    cfg = make_config(tmp_path, _sessions(tmp_path)[4:],
                      postprocess={"dff": {"percentile": 140}}, volume={"crosstalk": "sometimes"})
    with pytest.raises(PlaneflowError) as e:
        _load(cfg)
    msg = str(e.value)
    assert msg.startswith("3 problems"), msg
    assert "config: setting 'postprocess.dff.percentile'" in msg
    assert "config: setting 'volume.crosstalk'" in msg
    assert "(session 'badfs'), column fs" in msg


def test_a_good_project_loads_and_writes_its_metadata(tmp_path):
    cfg = make_config(tmp_path, _sessions(tmp_path)[:1], nwb_export={"enabled": False})
    project = _load(cfg)
    assert list(project.meta) == ["good"] and project.meta["good"]["nframes"] == 60
    assert project.shared_motion == {"good": False} and project.crosstalk_subtract == {"good": False}
    assert (tmp_path / "results" / "good").is_dir()


@pytest.mark.workflow
def test_dry_run_lists_every_problem_and_stops(tmp_path):
    cfg = make_config(tmp_path, _sessions(tmp_path), nwb_export={"enabled": True})
    proc = snakemake(cfg, "-n")
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Traceback" not in err
    assert "planeflow: error: 6 problems; fix them all" in err, err
    # the NWB check names every session it cannot describe, in the same report
    assert "session 'good': missing" in err and "'short': only 20 frames" in err
    assert not (tmp_path / "results").exists()
