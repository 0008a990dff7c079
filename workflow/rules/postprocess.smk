rule postprocess:
    """dF/F, optional cell filters, per-ROI statistics and figures of one plane (part)."""
    input:
        **{k: part_file("detection", k) for k in ("ops", "stat", "iscell", "F", "Fneu")},
    output:
        **part_outputs("postprocess"),
        **{key: plane_figure(key) for key in pflayout.FIGURES},
    params:
        options=config["postprocess"],
    log:
        log_path("postprocess"),
    benchmark:
        bench_path("postprocess")
    threads: STEP["postprocess"].threads
    group:
        group_for("postprocess")
    conda:
        "../../envs/planeflow.yaml"
    resources:
        **step_resources("postprocess"),
    script:
        "../../scripts/postprocess.py"
