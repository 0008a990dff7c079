rule binary_write:
    """Stream one plane (part) of the raw recording into suite2p's int16 binary."""
    input:
        metadata=METADATA_FILE,
    output:
        bin=f"{step_dir('binary_write')}/data_raw.bin",
        ops=f"{step_dir('binary_write')}/ops.npy",
    log:
        log_path("binary_write"),
    benchmark:
        bench_path("binary_write")
    threads: 1
    group:
        group_for("binary_write")
    conda:
        "../../envs/planeflow.yaml"
    resources:
        mem_mb=mem_mb("binary_write"),
        runtime=minutes(60),
    script:
        "../../scripts/binary_write.py"
