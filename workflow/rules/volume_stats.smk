rule volume_stats:
    """Per-session table, voxel size, zarr volume (mean images, ROI labels) and summary figure."""
    input:
        unpack(volume_inputs),
    output:
        table=report(f"{SESSION_DIR}/volume_stats/planes.tsv", caption="../report/planes_table.rst",
                     category="{session}", subcategory="volume", labels={"figure": "planes table"}),
        summary=f"{SESSION_DIR}/volume_stats/volume.json",
        zarr=directory(f"{SESSION_DIR}/volume_stats/volume.zarr"),
        figure=report(f"{SESSION_DIR}/volume_stats/summary.png", caption="../report/volume_summary.rst",
                      category="{session}", subcategory="volume", labels={"figure": "volume summary"}),
    params:
        session=lambda wc: {k: META[wc.session][k] for k in ("session_id", "fs", "dx", "dy", "dz")},
    log:
        f"{SESSION_DIR}/logs/volume_stats/session.log",
    benchmark:
        f"{SESSION_DIR}/benchmarks/volume_stats/session.tsv"
    threads: 1
    conda:
        "../../envs/planeflow.yaml"
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=minutes(30),
    script:
        "../../scripts/volume_stats.py"
