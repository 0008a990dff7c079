rule binary_write:
    """Stream one plane (part) of the raw recording into suite2p's int16 binary."""
    input:
        metadata=LAYOUT.metadata(S),
    output:
        **part_outputs("binary_write"),
    log:
        log_path("binary_write"),
    benchmark:
        bench_path("binary_write")
    priority: STEP["binary_write"].priority
    group:
        group_for("binary_write")
    conda:
        "../../envs/planeflow.yaml"
    threads: STEP["binary_write"].threads
    resources:
        **step_resources("binary_write"),
    script:
        "../../scripts/binary_write.py"
