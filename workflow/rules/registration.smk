rule registration:
    """suite2p registration of one plane (part): data_raw.bin -> data.bin + offsets in ops."""
    input:
        unpack(registration_inputs),
    output:
        **part_outputs("registration"),
    log:
        log_path("registration"),
    benchmark:
        bench_path("registration")
    priority: STEP["registration"].priority
    group:
        group_for("registration")
    conda:
        "../../envs/planeflow.yaml"
    threads: STEP["registration"].threads
    resources:
        **step_resources("registration"),
    params:
        suite2p=suite2p_params("registration"),
    script:
        "../../scripts/registration.py"
