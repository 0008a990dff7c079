# volume.crosstalk: subtract only (these jobs exist only then): the crosstalk coefficient
# per plane separation from every plane's registered binary (rule crosstalk, per session),
# then each plane's binary with it taken out (rule crosstalk_subtract), which detection
# reads instead of registration's (workflow/rules/common.smk, detected_binary).


rule crosstalk:
    """Crosstalk coefficient per plane separation from a sample of the registered binaries."""
    input:
        unpack(crosstalk_inputs),
    output:
        table=LAYOUT.crosstalk(S),
    log:
        LAYOUT.log("crosstalk", S),
    benchmark:
        LAYOUT.benchmark("crosstalk", S)
    conda:
        "../../envs/planeflow.yaml"
    threads: STEP["crosstalk"].threads
    resources:
        **step_resources("crosstalk"),
    params:
        index_parts=lambda wc: crosstalk_index_parts(wc.session),
        options=lambda wc: crosstalk_options(wc.session),
    script:
        "../../scripts/crosstalk.py"


rule crosstalk_subtract:
    """One plane's (part's) registered binary minus the crosstalk of the other planes."""
    input:
        unpack(crosstalk_subtract_inputs),
    output:
        **part_outputs("crosstalk_subtract"),
    log:
        log_path("crosstalk_subtract"),
    benchmark:
        bench_path("crosstalk_subtract")
    priority: STEP["crosstalk_subtract"].priority
    conda:
        "../../envs/planeflow.yaml"
    threads: STEP["crosstalk_subtract"].threads
    resources:
        **step_resources("crosstalk_subtract"),
    params:
        sources=crosstalk_sources,
    script:
        "../../scripts/crosstalk_subtract.py"
