# suite2p's Fall.mat of every plane, when the config's suite2p settings ask for it
# (suite2p: {io: {save_mat: true}}), as suite2p's own pipeline writes it then.


rule mat_export:
    """A finished plane as suite2p's Fall.mat (written by suite2p.io.save_mat)."""
    input:
        plane=LAYOUT.plane_dir(S, P),
    output:
        mat=LAYOUT.step_file("mat_export", "mat", S, P),
    log:
        LAYOUT.log("mat_export", S, P),
    benchmark:
        LAYOUT.benchmark("mat_export", S, P)
    conda:
        "../../envs/planeflow.yaml"
    threads: STEP["mat_export"].threads
    resources:
        **step_resources("mat_export"),
    script:
        "../../scripts/mat_export.py"
