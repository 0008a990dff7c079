rule registration:
    """suite2p registration of one plane (part): data_raw.bin -> data.bin + offsets in ops."""
    input:
        ops=f"{step_dir('binary_write')}/ops.npy",
        bin=f"{step_dir('binary_write')}/data_raw.bin",
    output:
        bin=f"{step_dir('registration')}/data.bin",
        ops=f"{step_dir('registration')}/ops.npy",
    params:
        suite2p=suite2p_params("registration"),
    log:
        log_path("registration"),
    benchmark:
        bench_path("registration")
    threads: 1
    group:
        group_for("registration")
    conda:
        "../../envs/planeflow.yaml"
    resources:
        mem_mb=mem_mb("registration"),
        runtime=minutes(120),
        **gpu_request(),
    script:
        "../../scripts/registration.py"
