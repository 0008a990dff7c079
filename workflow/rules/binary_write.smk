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
    threads: 1
    priority: pfres.PRIORITY["binary_write"]
    group:
        group_for("binary_write")
    conda:
        "../../envs/planeflow.yaml"
    resources:
        **step_resources("binary_write"),
    script:
        "../../scripts/binary_write.py"
