rule raw_compress:
    """Pack the session's raw files into one verified archive once all its binaries check
    out; with raw_compress.delete_originals, delete the raw files afterwards."""
    input:
        unpack(raw_compress_inputs),
    output:
        # protected: the archive may be the only copy of the raw data
        archive=protected(f"{SESSION_DIR}/raw_compress/{{session}}_raw.{config['raw_compress']['format']}"),
        manifest=f"{SESSION_DIR}/raw_compress/manifest.json",
    log:
        f"{SESSION_DIR}/logs/raw_compress/session.log",
    benchmark:
        f"{SESSION_DIR}/benchmarks/raw_compress/session.tsv"
    threads: 1
    conda:
        "../../envs/planeflow.yaml"
    resources:
        mem_mb=lambda wc, attempt: 1000 * attempt,
        runtime=raw_compress_runtime,
    script:
        "../../scripts/raw_compress.py"
