rule detection:
    """suite2p detection, extraction, deconvolution and classification of one plane (part)."""
    input:
        ops=f"{step_dir('registration')}/ops.npy",
        bin=f"{step_dir('registration')}/data.bin",
    output:
        stat=f"{step_dir('detection')}/stat.npy",
        iscell=f"{step_dir('detection')}/iscell.npy",
        F=f"{step_dir('detection')}/F.npy",
        Fneu=f"{step_dir('detection')}/Fneu.npy",
        spks=f"{step_dir('detection')}/spks.npy",
        ops=f"{step_dir('detection')}/ops.npy",
    params:
        suite2p=suite2p_params("detection"),
    log:
        log_path("detection"),
    benchmark:
        bench_path("detection")
    threads: 1
    group:
        group_for("detection")
    conda:
        "../../envs/planeflow.yaml"
    resources:
        mem_mb=mem_mb("detection"),
        runtime=minutes(180),
        **gpu_request(),
    script:
        "../../scripts/detection.py"
