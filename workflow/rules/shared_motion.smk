# Shared rigid motion (config registration.shared_motion): a cheap rigid pass per plane
# (part), one consensus per session, then every plane's registration takes its rigid
# shifts from the consensus (workflow/rules/registration.smk, input "shared").


rule rigid_shifts:
    """suite2p's rigid registration of one plane (part), shifts only: reference + rigid pass."""
    input:
        ops=part_file("binary_write", "ops"),
        bin=part_file("binary_write", "bin"),
    output:
        **part_outputs("rigid_shifts"),
    log:
        log_path("rigid_shifts"),
    benchmark:
        bench_path("rigid_shifts")
    priority: STEP["rigid_shifts"].priority
    group:
        group_for("rigid_shifts")
    conda:
        "../../envs/planeflow.yaml"
    threads: STEP["rigid_shifts"].threads
    resources:
        **step_resources("rigid_shifts"),
    params:
        suite2p=suite2p_params("registration"),
    script:
        "../../scripts/rigid_shifts.py"


rule shared_motion:
    """The consensus rigid motion of a session's planes (weighted median of their rigid shifts)."""
    input:
        shifts=shared_motion_inputs,
    output:
        shifts=LAYOUT.shared_motion(S),
    log:
        LAYOUT.log("shared_motion", S),
    benchmark:
        LAYOUT.benchmark("shared_motion", S)
    conda:
        "../../envs/planeflow.yaml"
    threads: STEP["shared_motion"].threads
    resources:
        **step_resources("shared_motion"),
    params:
        planes_parts=lambda wc: session_planes_parts(wc.session),
    script:
        "../../scripts/shared_motion.py"
