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
        fig_rois=plane_figure("mean_rois", "mean image and ROIs"),
        fig_shifts=plane_figure("registration_shifts", "registration shifts"),
        fig_traces=plane_figure("traces", "F and dF/F traces"),
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
        runtime=minutes(30),
    script:
        "../../scripts/postprocess.py"
