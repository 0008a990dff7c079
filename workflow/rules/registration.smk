rule registration:
    """suite2p registration of one plane (part): data_raw.bin -> data.bin + offsets in ops."""
    input:
        unpack(registration_inputs),
    output:
        **part_outputs("registration"),
    params:
        suite2p=suite2p_params("registration"),
    log:
        log_path("registration"),
    benchmark:
        bench_path("registration")
    threads: STEP["registration"].threads
    priority: STEP["registration"].priority
    group:
        group_for("registration")
    conda:
        "../../envs/planeflow.yaml"
    resources:
        **step_resources("registration"),
    script:
        "../../scripts/registration.py"
