rule volume_stats:
    """Per-session table, voxel size, OME-Zarr volume (mean images aligned by rule volume's
    offsets, labels = cell_id) and summary figure."""
    input:
        planes=final_plane_dirs,
        offsets=LAYOUT.volume_output("offsets", S),
        rois=LAYOUT.volume_output("rois", S),
    output:
        table=report(LAYOUT.volume_file("table", S), caption="../report/planes_table.rst",
                     category=S, subcategory="volume", labels={"figure": "planes table"}),
        summary=LAYOUT.volume_file("summary", S),
        zarr=directory(LAYOUT.volume_file("zarr", S)),
        figure=report(LAYOUT.volume_file("figure", S), caption="../report/volume_summary.rst",
                      category=S, subcategory="volume", labels={"figure": "volume summary"}),
    params:
        session=lambda wc: {k: META[wc.session][k] for k in ("session_id", "planes", "fs", "dx", "dy", "dz")},
    log:
        LAYOUT.log("volume_stats", S),
    benchmark:
        LAYOUT.benchmark("volume_stats", S)
    threads: 1
    conda:
        "../../envs/planeflow.yaml"
    resources:
        **step_resources("volume_stats"),
    script:
        "../../scripts/volume_stats.py"
