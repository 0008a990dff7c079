"""Command-line overrides as users type them (issue 13, item 3): `snakemake --config`
values arrive as strings (or dicts of strings) and are read as the schema's types."""
from __future__ import annotations

import pytest

from conftest import make_config, snakemake
from planeflow import PlaneflowError
from planeflow.plan import config as pfc

@pytest.fixture(scope="module")
def schemas():
    return pfc.load_schema("config.schema.yaml"), pfc.load_schema("suite2p_settings.schema.yaml")


def parse_cli(*entries):
    """What Snakemake 9 makes of `--config entry ...` (its own parser)."""
    from snakemake.cli import parse_config

    return parse_config(list(entries))


def base(**extra):
    return {"sessions": "s.tsv", "results_dir": "results", **extra}


@pytest.mark.parametrize("entry, key, expected", [
    ("nwb_export={enabled: false}", "nwb_export", {"enabled": False}),
    ("nwb_export={enabled: yes}", "nwb_export", {"enabled": True}),
    ("gpu={enabled: true, count: 2}", "gpu", {"enabled": True, "count": 2}),
    ("group_jobs=plane", "group_jobs", "plane"),
    ("binary_write={chunk_frames: 250, chunk_mb: 1.5}", "binary_write", {"chunk_frames": 250, "chunk_mb": 1.5}),
    ("binary_write={chunk_frames: 1e3}", "binary_write", {"chunk_frames": 1000}),
    ("acquisition={channels_are_planes: null, flyback_planes: [0, 5], bidiphase: {enabled: false}}",
     "acquisition", {"channels_are_planes": None, "flyback_planes": [0, 5], "bidiphase": {"enabled": False}}),
    ("acquisition={bidiphase: {enabled: auto}}", "acquisition", {"bidiphase": {"enabled": "auto"}}),
    ("postprocess={dff: {window_s: null, percentile: 8}}", "postprocess", {"dff": {"window_s": None, "percentile": 8}}),
])
def test_cli_strings_become_schema_types(schemas, entry, key, expected):
    cfg = pfc.coerce_config(base(**parse_cli(entry)), *schemas)
    assert cfg[key] == expected
    pfc.validate(cfg, schemas[0], "config")


def test_suite2p_section_uses_the_suite2p_schema(schemas):
    raw = parse_cli("suite2p={registration: {nonrigid: false, block_size: [64, 64], maxregshiftNR: 4}, "
                    "tau: 0.7, diameter: 12}")
    cfg = pfc.coerce_config(base(**raw), *schemas)
    assert cfg["suite2p"] == {"registration": {"nonrigid": False, "block_size": [64, 64], "maxregshiftNR": 4},
                              "tau": 0.7, "diameter": 12}
    pfc.validate(cfg["suite2p"], schemas[1], "config suite2p")


def test_plain_strings_stay_strings_and_input_is_not_modified(schemas):
    raw = base(sessions="123", results_dir="true", group_jobs="short")
    cfg = pfc.coerce_config(raw, *schemas)
    assert cfg["sessions"] == "123" and cfg["results_dir"] == "true" and cfg["group_jobs"] == "short"
    nested = base(nwb_export={"enabled": "false"})
    pfc.coerce_config(nested, *schemas)
    assert nested["nwb_export"]["enabled"] == "false"


@pytest.mark.parametrize("entry, needle", [
    ("nwb_export={enabled: maybe}", "setting 'nwb_export.enabled': 'maybe' is not one of ['auto', True, False]"),
    ("group_jobs=planes", "setting 'group_jobs': 'planes' is not one of"),
    ("gpu={count: two}", "setting 'gpu.count': 'two' is not of type 'integer'"),
    ("nwb_export=false", "setting 'nwb_export': 'false' is not of type 'object'"),
])
def test_overrides_that_do_not_fit_give_the_usual_error(schemas, entry, needle):
    cfg = pfc.coerce_config(base(**parse_cli(entry)), *schemas)
    with pytest.raises(PlaneflowError) as e:
        pfc.validate(cfg, schemas[0], "config")
    assert needle in str(e.value)


def test_dry_run_with_cli_overrides(tmp_path):
    """`snakemake -n --config nwb_export="{enabled: false}" group_jobs=plane` as typed."""
    cfg = make_config(tmp_path, [{"session_id": "a", "data_path": str(tmp_path / "a.tif"), "nplanes": 1,
                                  "fs": 10.0}])
    from conftest import write_tiff, coded_frames

    write_tiff(tmp_path / "a.tif", coded_frames(60, 16, 16))
    proc = snakemake(cfg, "-n", "--config", "nwb_export={enabled: false}", "group_jobs=plane",
                     "acquisition={bidiphase: {enabled: false}}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    bad = snakemake(cfg, "-n", "--config", "nwb_export={enabled: perhaps}")
    assert bad.returncode != 0
    assert "setting 'nwb_export.enabled': 'perhaps' is not one of ['auto', True, False]" in bad.stderr
    assert "Traceback" not in bad.stderr
