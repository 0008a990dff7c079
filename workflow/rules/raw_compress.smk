rule raw_compress:
    """Pack the session's raw files into one verified archive once all its binaries check
    out; with raw_compress.delete_originals, delete the raw files afterwards."""
    input:
        unpack(raw_compress_inputs),
    output:
        # protected: the archive may be the only copy of the raw data
        archive=protected(LAYOUT.archive(S, config["raw_compress"]["format"])),
        manifest=LAYOUT.manifest(S),
    log:
        LAYOUT.log("raw_compress", S),
    benchmark:
        LAYOUT.benchmark("raw_compress", S)
    conda:
        "../../envs/planeflow.yaml"
    threads: STEP["raw_compress"].threads
    resources:
        **step_resources("raw_compress"),
    script:
        "../../scripts/raw_compress.py"
