"""`snakemake --report`: every per-plane and volume figure is in the HTML, byte for byte,
with its caption rendered for its session and plane."""
from __future__ import annotations

import base64
import re

import pytest

from conftest import snakemake

pytestmark = pytest.mark.workflow

PLANE_FIGURES = {"mean_rois": "Green outlines", "registration_shifts": "rigid shift",
                 "traces": "dF/F"}


@pytest.fixture(scope="module")
def report(finished_session):
    out = finished_session["tmp"] / "report.html"
    snakemake(finished_session["cfg"], f"--report={out}", check=True)
    return finished_session, out.read_text()


def _entry(html: str, path: str) -> str:
    """The report's JSON record of one result file (from its key to the next key)."""
    i = html.find(f'"{path}": {{')
    assert i >= 0, f"{path} is not in the report"
    return html[i:i + html[i:].find("}", html[i:].find('"caption"')) + 1]


def test_every_plane_figure_is_embedded_with_its_caption(report):
    run, html = report
    res, s = run["res"], run["session"]
    tmp = run["tmp"]
    for plane in (0, 1):
        for name, phrase in PLANE_FIGURES.items():
            f = res / "postprocess" / f"plane{plane}" / "part0" / "figures" / f"{name}.png"
            assert base64.b64encode(f.read_bytes()).decode() in html, f"{f.name} of plane {plane} not embedded"
            rel = str(f.relative_to(tmp)) if f.is_relative_to(tmp) else str(f)
            rec = _entry(html, str(f)) if f'"{f}"' in html else _entry(html, rel)
            assert f"Session {s}, plane {plane}" in rec
            assert phrase in rec


def test_volume_figures_and_categories(report):
    run, html = report
    res, s = run["res"], run["session"]
    fig = res / "volume_stats" / "summary.png"
    assert base64.b64encode(fig.read_bytes()).decode() in html
    assert "planes.tsv" in html
    # results are grouped per session, then per plane and volume
    for sub in ("plane 0", "plane 1", "volume"):
        assert re.search(rf'"{re.escape(sub)}"', html), f"subcategory {sub!r} missing"
    assert f'"{s}"' in html
    # the workflow description is rendered with the config
    assert "one cluster or local job per plane and step" in html


def test_qc_section(report):
    """The QC table figure (coloured by verdict) and the shifts of every plane, under "qc"."""
    run, html = report
    for name in ("qc_table.png", "shifts.png"):
        fig = run["res"] / "qc" / name
        assert base64.b64encode(fig.read_bytes()).decode() in html, name
    assert re.search(r'"qc"', html)
    assert "quality control, one row per plane" in html
    assert "qc.tsv" in html
