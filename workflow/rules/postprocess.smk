rule postprocess:
    """dF/F, optional cell filters, per-ROI statistics and figures of one plane (part)."""
    input:
        **{k: part_file("detection", k) for k in ("ops", "stat", "iscell", "F", "Fneu")},
    output:
        **part_outputs("postprocess"),
        **{key: plane_figure(key) for key in pflayout.FIGURES},
    log:
        log_path("postprocess"),
    benchmark:
        bench_path("postprocess")
    group:
        group_for("postprocess")
    conda:
        "../../envs/planeflow.yaml"
    threads: STEP["postprocess"].threads
    resources:
        **step_resources("postprocess"),
    params:
        options=config["postprocess"],
    script:
        "../../scripts/postprocess.py"
