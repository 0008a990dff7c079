rule merge:
    """Assemble a plane's final suite2p folder from its part(s)."""
    input:
        unpack(merge_inputs),
    output:
        # one declared folder instead of 11 files: every declared file costs DAG time
        # (see benchmarks/dag_scale.py); merge writes planeflow.steps.merge.OUTPUT_NAMES into it, each atomically
        folder=directory(FINAL_DIR),
    params:
        geometry=lambda wc: {"plane_shape": META[wc.session]["plane_shape"],
                             "offsets": [p["offset"] for p in META[wc.session]["parts"]]},
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
        runtime=minutes(30),
    script:
        "../../scripts/merge.py"
