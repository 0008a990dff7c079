rule merge:
    """Assemble a plane's final suite2p folder from its part(s)."""
    input:
        unpack(merge_inputs),
    output:
        **{name: f"{FINAL_DIR}/{name}.npy" for name in FINAL_FILES},
    params:
        plane_shape=lambda wc: META[wc.session]["plane_shape"],
        offsets=lambda wc: [p["offset"] for p in META[wc.session]["parts"]],
    log:
        f"{SESSION_DIR}/logs/merge/plane{{plane}}.log",
    benchmark:
        f"{SESSION_DIR}/benchmarks/merge/plane{{plane}}.tsv"
    threads: 1
    group:
        group_for("merge")
    conda:
        "../../envs/planeflow.yaml"
    resources:
        mem_mb=lambda wc, attempt: 1000 * attempt + int(0.2 * META[wc.session]["nframes"]),
        runtime=30,
    script:
        "../../scripts/merge.py"
