import pytest
import yaml

from planeflow import PlaneflowError
from planeflow.plan import config as pfc

from conftest import REPO


def write_sheet(tmp_path, text):
    p = tmp_path / "s.tsv"
    p.write_text(text)
    return str(p)


def test_read_sessions_types_and_empty_cells(tmp_path):
    p = write_sheet(tmp_path, "# comment\nsession_id\tdata_path\tnplanes\tfs\tdz\n"
                              "a\t/x\t3\t7.5\t\nb\t/y\t\t\t10\n")
    rows = pfc.read_sessions(p)
    assert rows[0] == {"session_id": "a", "data_path": "/x", "nplanes": 3, "fs": 7.5, "dz": None}
    assert rows[1]["nplanes"] is None and rows[1]["dz"] == 10.0


@pytest.mark.parametrize("text, needle", [
    ("session_id\tnplanes\na\t3\n", "missing column(s) data_path"),
    ("session_id\tdata_path\tframes\na\t/x\t3\n", "unknown column(s) frames"),
    ("session_id\tdata_path\tnplanes\na\t/x\tthree\n",
     "row 2 (session 'a'), column nplanes: 'three' is not an integer"),
    ("session_id\tdata_path\na\t/x\na\t/y\n", "'a' appears twice"),
    ("session_id\tdata_path\n", "lists no session"),
])
def test_read_sessions_errors(tmp_path, text, needle):
    with pytest.raises(PlaneflowError, match=None) as e:
        pfc.read_sessions(write_sheet(tmp_path, text))
    assert needle in str(e.value)


def test_missing_sheet_names_the_setting(tmp_path):
    with pytest.raises(PlaneflowError, match="sessions sheet .* not found"):
        pfc.read_sessions(str(tmp_path / "nope.tsv"))


def test_sessions_schema_rejects_bad_values(tmp_path):
    schema = pfc.load_schema("sessions.schema.yaml")
    sheet = write_sheet(tmp_path, "session_id\tdata_path\tfs\nbad id\t/x\t-1\n")
    with pytest.raises(PlaneflowError) as e:
        pfc.validate_sessions(pfc.read_sessions(sheet), sheet, schema)
    msg = str(e.value)
    assert "2 problems" in msg
    assert "row 2 (session 'bad id'), column session_id" in msg and "row 2 (session 'bad id'), column fs" in msg


def test_every_sheet_problem_is_reported_at_once(tmp_path):
    sheet = write_sheet(tmp_path, "session_id\tdata_path\tnplanes\tfs\toffsets\n"
                                  "a\t/x\tthree\t7\t\n"
                                  "# a comment line\n"
                                  "b\t/y\t2\tfast\t1:2\n"
                                  "c\t/z\t2\t5\t\n"
                                  "c\t/w\t2\t5\t\n")
    problems = []
    rows = pfc.read_sessions(sheet, problems)
    assert [r["session_id"] for r in rows] == ["c"]  # rows with a bad cell are left out
    assert len(problems) == 4, problems
    assert "row 2 (session 'a'), column nplanes: 'three' is not an integer" in problems[0]
    assert "row 4 (session 'b'), column fs: 'fast' is not a number" in problems[1]  # the file's line
    assert "row 4 (session 'b'), column offsets" in problems[2]
    assert "row 6: session_id 'c' appears twice" in problems[3]
    with pytest.raises(PlaneflowError, match=r"^4 problems; fix them all") as e:
        pfc.read_sessions(sheet)
    assert str(e.value).count("\n  - ") == 4


def test_config_schema_names_the_bad_setting():
    schema = pfc.load_schema("config.schema.yaml")
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    pfc.validate(cfg, schema, "config")  # the shipped config is valid
    cfg["postprocess"] = {"dff": {"percentile": 140}}
    with pytest.raises(PlaneflowError, match=r"postprocess\.dff\.percentile"):
        pfc.validate(cfg, schema, "config")


def test_suite2p_schema_catches_typos_and_types():
    schema = pfc.load_schema("suite2p_settings.schema.yaml")
    pfc.validate({"registration": {"nonrigid": False, "block_size": [64, 64]}, "diameter": 8}, schema, "s")
    with pytest.raises(PlaneflowError, match=r"registration.*nonrigd|nonrigd"):
        pfc.validate({"registration": {"nonrigd": False}}, schema, "s")
    with pytest.raises(PlaneflowError, match=r"tau"):
        pfc.validate({"tau": "slow"}, schema, "s")


def test_shipped_suite2p_schema_matches_installed_suite2p():
    from planeflow.plan.suite2p_schema import suite2p_settings_schema

    shipped = pfc.load_schema("suite2p_settings.schema.yaml")
    assert shipped == yaml.safe_load(yaml.safe_dump(suite2p_settings_schema(), sort_keys=False)), \
        "regenerate with: planeflow suite2p-schema --out workflow/schemas/suite2p_settings.schema.yaml"


def test_deep_merge_does_not_modify_inputs():
    a = {"x": {"y": 1, "z": 2}, "k": [1]}
    b = {"x": {"y": 5}}
    out = pfc.deep_merge(a, b)
    assert out == {"x": {"y": 5, "z": 2}, "k": [1]}
    assert a == {"x": {"y": 1, "z": 2}, "k": [1]}


def test_step_overrides_split_settings_by_step():
    ov = {"fs": 30.0, "tau": 0.7, "registration": {"nonrigid": False},
          "detection": {"threshold_scaling": 2.0}, "run": {"do_regmetrics": False, "do_deconvolution": False}}
    reg = pfc.step_overrides(ov, "registration")
    det = pfc.step_overrides(ov, "detection")
    assert reg == {"registration": {"nonrigid": False}, "run": {"do_regmetrics": False}}
    assert det == {"fs": 30.0, "tau": 0.7, "detection": {"threshold_scaling": 2.0},
                   "run": {"do_deconvolution": False}}


def test_session_overrides_take_sheet_values():
    cfg = {"suite2p": {"tau": 1.0, "detection": {"threshold_scaling": 0.8}}}
    ov = pfc.session_overrides(cfg, {"fs": 12.0}, {"tau": 0.5, "diameter": 9.0})
    assert ov == {"tau": 0.5, "fs": 12.0, "diameter": [9.0, 9.0], "detection": {"threshold_scaling": 0.8}}


def test_suite2p_settings_merge_and_unknown_key():
    s = pfc.suite2p_settings({"registration": {"nonrigid": False}, "diameter": 8}, torch_device="cpu")
    assert s["registration"]["nonrigid"] is False
    assert s["registration"]["batch_size"] == 100  # suite2p default kept
    assert list(s["diameter"]) == [8.0, 8.0] and s["torch_device"] == "cpu"
    base = {"fs": 20.0, "registration": {"nonrigid": False, "batch_size": 50}, "Ly": 3}
    s2 = pfc.suite2p_settings({"detection": {"threshold_scaling": 2.0}}, base=base)
    assert s2["fs"] == 20.0 and s2["registration"]["batch_size"] == 50 and "Ly" not in s2
    with pytest.raises(PlaneflowError, match=r"suite2p\.detection\.treshold"):
        pfc.suite2p_settings({"detection": {"treshold": 1}})


def test_defaults_live_only_in_the_schema():
    """config/config.yaml sets only what differs from the schema's defaults; the defaults
    it shows are commented out and equal the schema's (so the two cannot disagree)."""
    import re

    defaults = pfc.schema_defaults(pfc.load_schema("config.schema.yaml"))
    text = (REPO / "config" / "config.yaml").read_text()
    shipped = yaml.safe_load(text)

    def leaves(d, prefix=()):
        for k, v in d.items():
            if isinstance(v, dict) and v:
                yield from leaves(v, prefix + (k,))
            else:
                yield prefix + (k,), v

    def default_at(path):
        d = defaults
        for k in path:
            d = d[k]
        return d

    for path, value in leaves({k: v for k, v in shipped.items() if k != "suite2p"}):
        if path[0] in ("sessions", "results_dir"):
            continue
        assert value != default_at(path), f"{'.'.join(path)} repeats its schema default; comment it out"
    # the commented-out values, read with the indentation that nests them
    stack, shown = [], 0
    for line in text.splitlines():
        m = re.match(r"^(\s*)(?:# )?([A-Za-z_]\w*):(.*)$", line)
        if not m or (line.lstrip().startswith("#") and not re.match(r"^\s*# [a-z_]+:( |$)", line)):
            continue
        indent = len(m[1])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m[2]))
        path = [k for _, k in stack]
        if line.lstrip().startswith("#") and m[3].strip() and path[0] != "suite2p":
            assert yaml.safe_load(m[3]) == default_at(path), f"config.yaml shows a wrong default for {'.'.join(path)}"
            shown += 1
    assert shown >= 30


def test_suite2p_settings_known_to_fail_still_fail_in_suite2p():
    """SUITE2P_BROKEN lists what the installed suite2p cannot run: it must still fail there
    (a fixed suite2p makes this test fail: then drop the entry), and the check names it."""
    import numpy as np
    import torch

    from planeflow import PlaneflowError
    from planeflow._s2p_import import suite2p_module
    from planeflow.io.history import suite2p_version
    from planeflow.plan.config import SUITE2P_BROKEN, check_suite2p_settings

    if suite2p_version() not in SUITE2P_BROKEN:
        pytest.skip(f"no known-broken settings for suite2p {suite2p_version()}")
    register, rigid = (suite2p_module(f"suite2p.registration.{m}") for m in ("register", "rigid"))
    rng = np.random.default_rng(0)
    ref = rng.random((64, 64)).astype(np.float32) * 100
    maskMul, maskOffset, cfRefImg, *_ = register.compute_filters_and_norm(
        ref, norm_frames=True, spatial_smooth=1.15, spatial_taper=3.45, block_size=None,
        device=torch.device("cpu"))
    frames = torch.from_numpy(np.stack([ref] * 4))
    rigid.phasecorr(frames, cfRefImg, maskMul, maskOffset, 0.1, 0)  # the default works
    with pytest.raises(TypeError):
        rigid.phasecorr(frames, cfRefImg, maskMul, maskOffset, 0.1, 1.0)
    with pytest.raises(PlaneflowError, match="smooth_sigma_time = 1.0 does not work"):
        check_suite2p_settings({"registration": {"smooth_sigma_time": 1.0}}, "config")
    check_suite2p_settings({"registration": {"smooth_sigma_time": 0}}, "config")


def test_schemas_read_as_yaml_safe_load_reads_them():
    """The schemas are read with libyaml's C loader where PyYAML has it (every parse of the
    Snakefile reads them): the result is the one yaml.safe_load gives."""
    for path in sorted(pfc.SCHEMA_DIR.glob("*.yaml")):
        with open(path) as fh:
            assert pfc._load_yaml(path) == yaml.safe_load(fh), path.name
