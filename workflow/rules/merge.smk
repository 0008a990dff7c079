rule merge:
    """Assemble a plane's final suite2p folder from its part(s)."""
    input:
        unpack(merge_inputs),
    output:
        # one declared folder instead of 11 files: every declared file costs DAG time
        # (see benchmarks/dag_scale.py); merge writes layout.PLANE_FILES into it, each atomically
        folder=directory(LAYOUT.plane_dir(S, P)),
    log:
        LAYOUT.log("merge", S, P),
    benchmark:
        LAYOUT.benchmark("merge", S, P)
    group:
        group_for("merge")
    conda:
        "../../envs/planeflow.yaml"
    threads: STEP["merge"].threads
    resources:
        **step_resources("merge"),
    params:
        geometry=lambda wc: {
            "plane_shape": META[wc.session]["plane_shape"],
            "offsets": [p["offset"] for p in META[wc.session]["parts"]],
        },
    script:
        "../../scripts/merge.py"
