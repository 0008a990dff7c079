rule volume:
    """Plane offsets, crosstalk and one ID per cell across the session's planes (tables in
    the volume_stats folder; the plane folders are only read)."""
    input:
        planes=final_plane_dirs,
    output:
        offsets=LAYOUT.volume_output("offsets", S),
        crosstalk=LAYOUT.volume_output("crosstalk", S),
        rois=LAYOUT.volume_output("rois", S),
        cells=LAYOUT.volume_output("cells", S),
        figure=report(LAYOUT.volume_output("figure", S), caption="../report/volume_view.rst",
                      category=S, subcategory="volume", labels={"figure": "plane offsets and cells"}),
    params:
        session=lambda wc: {k: META[wc.session][k] for k in ("session_id", "planes", "fs", "dx", "dy", "dz")},
        options=lambda wc: volume_options(wc.session),
    log:
        LAYOUT.log("volume", S),
    benchmark:
        LAYOUT.benchmark("volume", S)
    threads: 1
    conda:
        "../../envs/planeflow.yaml"
    resources:
        **step_resources("volume"),
    script:
        "../../scripts/volume.py"
