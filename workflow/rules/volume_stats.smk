rule volume_stats:
    """A session's planes as one volume: plane offsets, crosstalk between planes, one ID per
    cell across planes (the plane folders are only read), the planes table, voxel size, the
    OME-Zarr volume (mean images aligned by the offsets, labels = cell_id) and figures."""
    input:
        unpack(volume_inputs),
    output:
        offsets=LAYOUT.volume_file("offsets", S),
        crosstalk=LAYOUT.volume_file("crosstalk", S),
        rois=LAYOUT.volume_file("rois", S),
        cells=LAYOUT.volume_file("cells", S),
        view=report(
            LAYOUT.volume_file("view", S),
            caption="../report/volume_view.rst",
            category=S,
            subcategory="volume",
            labels={"figure": "plane offsets and cells"},
        ),
        table=report(
            LAYOUT.volume_file("table", S),
            caption="../report/planes_table.rst",
            category=S,
            subcategory="volume",
            labels={"figure": "planes table"},
        ),
        summary=LAYOUT.volume_file("summary", S),
        zarr=directory(LAYOUT.volume_file("zarr", S)),
        figure=report(
            LAYOUT.volume_file("figure", S),
            caption="../report/volume_summary.rst",
            category=S,
            subcategory="volume",
            labels={"figure": "volume summary"},
        ),
    log:
        LAYOUT.log("volume_stats", S),
    benchmark:
        LAYOUT.benchmark("volume_stats", S)
    conda:
        "../../envs/planeflow.yaml"
    threads: STEP["volume_stats"].threads
    resources:
        **step_resources("volume_stats"),
    params:
        session=lambda wc: volume_session(wc.session),
        options=lambda wc: volume_options(wc.session),
        index_parts=lambda wc: crosstalk_index_parts(wc.session),
    script:
        "../../scripts/volume_stats.py"
