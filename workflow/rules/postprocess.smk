rule postprocess:
    """dF/F, optional cell filters, per-ROI statistics and figures of one plane (part)."""
    input:
        ops=f"{step_dir('detection')}/ops.npy",
        stat=f"{step_dir('detection')}/stat.npy",
        iscell=f"{step_dir('detection')}/iscell.npy",
        F=f"{step_dir('detection')}/F.npy",
        Fneu=f"{step_dir('detection')}/Fneu.npy",
    output:
        ops=f"{step_dir('postprocess')}/ops.npy",
        stat=f"{step_dir('postprocess')}/stat.npy",
        iscell=f"{step_dir('postprocess')}/iscell.npy",
        dff=f"{step_dir('postprocess')}/dff.npy",
        roi_stats=f"{step_dir('postprocess')}/roi_stats.tsv",
        fig_rois=f"{step_dir('postprocess')}/figures/mean_rois.png",
        fig_shifts=f"{step_dir('postprocess')}/figures/registration_shifts.png",
        fig_traces=f"{step_dir('postprocess')}/figures/traces.png",
    params:
        options=config["postprocess"],
    log:
        log_path("postprocess"),
    benchmark:
        bench_path("postprocess")
    threads: 1
    group:
        group_for("postprocess")
    conda:
        "../../envs/planeflow.yaml"
    resources:
        mem_mb=mem_mb("postprocess"),
        runtime=30,
    script:
        "../../scripts/postprocess.py"
