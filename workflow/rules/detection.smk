rule detection:
    """suite2p detection, extraction, deconvolution and classification of one plane (part)."""
    input:
        unpack(detection_inputs),
    output:
        **part_outputs("detection"),
    log:
        log_path("detection"),
    benchmark:
        bench_path("detection")
    priority: STEP["detection"].priority
    group:
        group_for("detection")
    conda:
        "../../envs/planeflow.yaml"
    threads: STEP["detection"].threads
    resources:
        **step_resources("detection"),
    params:
        suite2p=suite2p_params("detection"),
    script:
        "../../scripts/detection.py"
